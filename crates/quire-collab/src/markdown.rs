//! Markdown for PRDs, to and from the ProseMirror JSON of [`crate::content`]: headings,
//! paragraphs, bullet and ordered lists, block quotes, code blocks, rules, and the marks
//! bold, italic, code and link.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::{Value, json};

fn marks_of(node: &Value) -> Vec<String> {
    node["marks"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["type"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn inline(nodes: &[Value]) -> String {
    let mut out = String::new();
    for n in nodes {
        match n["type"].as_str() {
            Some("text") => {
                let mut t = n["text"].as_str().unwrap_or_default().to_string();
                let marks = marks_of(n);
                if marks.iter().any(|m| m == "code") {
                    t = format!("`{t}`");
                }
                if marks.iter().any(|m| m == "bold") {
                    t = format!("**{t}**");
                }
                if marks.iter().any(|m| m == "italic") {
                    t = format!("*{t}*");
                }
                if let Some(link) = n["marks"].as_array().and_then(|m| m.iter().find(|m| m["type"] == "link")) {
                    t = format!("[{t}]({})", link["attrs"]["href"].as_str().unwrap_or_default());
                }
                out.push_str(&t);
            }
            Some("hardBreak") => out.push_str("  \n"),
            _ => out.push_str(&inline(n["content"].as_array().map(Vec::as_slice).unwrap_or_default())),
        }
    }
    out
}

fn block(node: &Value, out: &mut Vec<String>, prefix: &str) {
    let content = node["content"].as_array().map(Vec::as_slice).unwrap_or_default();
    match node["type"].as_str().unwrap_or_default() {
        "heading" => {
            let level = node["attrs"]["level"].as_u64().unwrap_or(1).clamp(1, 6) as usize;
            out.push(format!("{prefix}{} {}", "#".repeat(level), inline(content)));
        }
        "bulletList" | "orderedList" => {
            let ordered = node["type"] == "orderedList";
            let mut items = Vec::new();
            for (i, item) in content.iter().enumerate() {
                let marker = if ordered { format!("{}. ", i + 1) } else { "- ".to_string() };
                let mut inner = Vec::new();
                for b in item["content"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    block(b, &mut inner, "");
                }
                let pad = " ".repeat(marker.len());
                let text = inner
                    .join("\n")
                    .lines()
                    .enumerate()
                    .map(|(j, l)| if j == 0 { format!("{prefix}{marker}{l}") } else { format!("{prefix}{pad}{l}") })
                    .collect::<Vec<_>>()
                    .join("\n");
                items.push(text);
            }
            out.push(items.join("\n"));
        }
        "blockquote" => {
            let mut inner = Vec::new();
            for b in content {
                block(b, &mut inner, "");
            }
            out.push(
                inner
                    .join("\n\n")
                    .lines()
                    .map(|l| format!("{prefix}> {l}").trim_end().to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        "codeBlock" => {
            let lang = node["attrs"]["language"].as_str().unwrap_or_default();
            out.push(format!("{prefix}```{lang}\n{}\n```", inline(content)));
        }
        "horizontalRule" => out.push(format!("{prefix}---")),
        _ => out.push(format!("{prefix}{}", inline(content))),
    }
}

/// The Markdown of a ProseMirror document.
pub fn to_markdown(doc: &Value) -> String {
    let mut blocks = Vec::new();
    for b in doc["content"].as_array().map(Vec::as_slice).unwrap_or_default() {
        block(b, &mut blocks, "");
    }
    let mut md = blocks.join("\n\n");
    if !md.is_empty() {
        md.push('\n');
    }
    md
}

/// The ProseMirror document of some Markdown.
pub fn from_markdown(md: &str) -> Value {
    // A stack of open nodes; the root is the document.
    let mut stack: Vec<Value> = vec![json!({"type": "doc", "content": []})];
    let mut marks: Vec<Value> = Vec::new();
    let push_child = |stack: &mut Vec<Value>, child: Value| {
        let top = stack.last_mut().expect("the document stays open");
        if !top["content"].is_array() {
            top["content"] = json!([]);
        }
        top["content"].as_array_mut().expect("an array").push(child);
    };
    let text_node = |text: &str, marks: &[Value]| {
        let mut t = json!({"type": "text", "text": text});
        if !marks.is_empty() {
            t["marks"] = Value::Array(marks.to_vec());
        }
        t
    };
    for event in Parser::new_ext(md, Options::empty()) {
        match event {
            Event::Start(tag) => {
                let node = match tag {
                    Tag::Paragraph => Some(json!({"type": "paragraph"})),
                    Tag::Heading { level, .. } => {
                        let level = match level {
                            HeadingLevel::H1 => 1,
                            HeadingLevel::H2 => 2,
                            HeadingLevel::H3 => 3,
                            HeadingLevel::H4 => 4,
                            HeadingLevel::H5 => 5,
                            HeadingLevel::H6 => 6,
                        };
                        Some(json!({"type": "heading", "attrs": {"level": level}}))
                    }
                    Tag::BlockQuote(_) => Some(json!({"type": "blockquote"})),
                    Tag::CodeBlock(kind) => {
                        let lang = match kind {
                            CodeBlockKind::Fenced(l) if !l.is_empty() => Some(l.to_string()),
                            _ => None,
                        };
                        Some(match lang {
                            Some(l) => json!({"type": "codeBlock", "attrs": {"language": l}}),
                            None => json!({"type": "codeBlock"}),
                        })
                    }
                    Tag::List(Some(_)) => Some(json!({"type": "orderedList"})),
                    Tag::List(None) => Some(json!({"type": "bulletList"})),
                    Tag::Item => Some(json!({"type": "listItem"})),
                    Tag::Strong => {
                        marks.push(json!({"type": "bold"}));
                        None
                    }
                    Tag::Emphasis => {
                        marks.push(json!({"type": "italic"}));
                        None
                    }
                    Tag::Link { dest_url, .. } => {
                        marks.push(json!({"type": "link", "attrs": {"href": dest_url.to_string()}}));
                        None
                    }
                    _ => None,
                };
                if let Some(node) = node {
                    stack.push(node);
                }
            }
            Event::End(end) => match end {
                TagEnd::Strong | TagEnd::Emphasis | TagEnd::Link => {
                    marks.pop();
                }
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::List(_)
                | TagEnd::Item => {
                    let mut node = stack.pop().expect("opened above");
                    // Tight list items hold bare text: wrap it in a paragraph, as ProseMirror does.
                    if node["type"] == "listItem" {
                        let children = node["content"].as_array().cloned().unwrap_or_default();
                        let (inline, blocks): (Vec<_>, Vec<_>) =
                            children.into_iter().partition(|c| c["type"] == "text");
                        let mut content = Vec::new();
                        if !inline.is_empty() {
                            content.push(json!({"type": "paragraph", "content": inline}));
                        }
                        content.extend(blocks);
                        node["content"] = Value::Array(content);
                    }
                    if node["type"] == "codeBlock"
                        && let Some(text) = node["content"][0]["text"].as_str()
                    {
                        node["content"][0]["text"] = json!(text.trim_end_matches('\n'));
                    }
                    push_child(&mut stack, node);
                }
                _ => {}
            },
            Event::Text(t) => {
                let t = text_node(&t, &marks);
                push_child(&mut stack, t);
            }
            Event::Code(t) => {
                let mut with = marks.clone();
                with.push(json!({"type": "code"}));
                let t = text_node(&t, &with);
                push_child(&mut stack, t);
            }
            Event::SoftBreak => push_child(&mut stack, text_node(" ", &marks)),
            Event::HardBreak => push_child(&mut stack, json!({"type": "hardBreak"})),
            Event::Rule => push_child(&mut stack, json!({"type": "horizontalRule"})),
            _ => {}
        }
    }
    merge_text(stack.pop().expect("the document"))
}

/// Adjacent text nodes with the same marks become one (as ProseMirror keeps them).
fn merge_text(mut node: Value) -> Value {
    if let Some(children) = node["content"].as_array().cloned() {
        let mut merged: Vec<Value> = Vec::new();
        for child in children.into_iter().map(merge_text) {
            if let Some(last) = merged.last_mut()
                && last["type"] == "text"
                && child["type"] == "text"
                && last.get("marks") == child.get("marks")
            {
                let joined = format!(
                    "{}{}",
                    last["text"].as_str().unwrap_or_default(),
                    child["text"].as_str().unwrap_or_default()
                );
                last["text"] = json!(joined);
                continue;
            }
            merged.push(child);
        }
        node["content"] = Value::Array(merged);
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_round_trips_through_prosemirror_json() {
        let md = "# Checkout\n\nThe **checkout** is *slow* and `sync`.\n\n## Goals\n\n- Halve the time\n- Keep [the API](https://example.com)\n\n1. First\n2. Second\n\n> Customers leave.\n\n```sql\nselect 1;\n```\n\n---\n";
        let doc = from_markdown(md);
        assert_eq!(
            doc["content"][0],
            json!({"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Checkout"}]})
        );
        assert_eq!(
            doc["content"][1]["content"][1],
            json!({"type": "text", "text": "checkout", "marks": [{"type": "bold"}]})
        );
        assert_eq!(doc["content"][3]["type"], "bulletList");
        assert_eq!(doc["content"][3]["content"][0]["content"][0]["type"], "paragraph");
        assert_eq!(doc["content"][4]["type"], "orderedList");
        assert_eq!(
            doc["content"][6],
            json!({"type": "codeBlock", "attrs": {"language": "sql"}, "content": [{"type": "text", "text": "select 1;"}]})
        );
        assert_eq!(to_markdown(&doc), md);
        assert_eq!(from_markdown(&to_markdown(&doc)), doc);
    }
}
