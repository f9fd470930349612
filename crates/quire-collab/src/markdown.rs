//! Markdown for PRDs, to and from the ProseMirror JSON of [`crate::content`]: headings,
//! paragraphs, bullet, ordered and task lists, block quotes, code blocks, rules, tables and
//! images, and the marks bold, italic, strike, code and link. Node and mark names are
//! TipTap's (`taskList`/`taskItem` with `checked`, `table`/`tableRow`/`tableHeader`/
//! `tableCell`, `image` with `src`, `alt` and `title`, `strike`).

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
                if marks.iter().any(|m| m == "strike") {
                    t = format!("~~{t}~~");
                }
                if let Some(link) = n["marks"].as_array().and_then(|m| m.iter().find(|m| m["type"] == "link")) {
                    t = format!("[{t}]({})", link["attrs"]["href"].as_str().unwrap_or_default());
                }
                out.push_str(&t);
            }
            Some("hardBreak") => out.push_str("  \n"),
            Some("image") => out.push_str(&image(n)),
            _ => out.push_str(&inline(n["content"].as_array().map(Vec::as_slice).unwrap_or_default())),
        }
    }
    out
}

fn image(node: &Value) -> String {
    let attr = |k: &str| node["attrs"][k].as_str().unwrap_or_default();
    match attr("title") {
        "" => format!("![{}]({})", attr("alt"), attr("src")),
        title => format!("![{}]({} \"{}\")", attr("alt"), attr("src"), title.replace('"', "\\\"")),
    }
}

/// One table row in Markdown: the cells' text, pipes escaped.
fn table_row(row: &Value) -> (String, usize) {
    let cells: Vec<String> = row["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|cell| {
            let paragraphs = cell["content"].as_array().map(Vec::as_slice).unwrap_or_default();
            let text: Vec<String> = paragraphs
                .iter()
                .map(|p| inline(p["content"].as_array().map(Vec::as_slice).unwrap_or_default()))
                .collect();
            text.join(" ").replace('|', "\\|")
        })
        .collect();
    (format!("| {} |", cells.join(" | ")), cells.len())
}

fn block(node: &Value, out: &mut Vec<String>, prefix: &str) {
    let content = node["content"].as_array().map(Vec::as_slice).unwrap_or_default();
    match node["type"].as_str().unwrap_or_default() {
        "heading" => {
            let level = node["attrs"]["level"].as_u64().unwrap_or(1).clamp(1, 6) as usize;
            out.push(format!("{prefix}{} {}", "#".repeat(level), inline(content)));
        }
        "bulletList" | "orderedList" | "taskList" => {
            let ordered = node["type"] == "orderedList";
            let mut items = Vec::new();
            for (i, item) in content.iter().enumerate() {
                let marker = if ordered {
                    format!("{}. ", i + 1)
                } else if item["type"] == "taskItem" {
                    if item["attrs"]["checked"] == true { "- [x] " } else { "- [ ] " }.to_string()
                } else {
                    "- ".to_string()
                };
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
        "image" => out.push(format!("{prefix}{}", image(node))),
        "table" => {
            let mut lines = Vec::new();
            for (i, row) in content.iter().enumerate() {
                let (line, cells) = table_row(row);
                lines.push(format!("{prefix}{line}"));
                if i == 0 {
                    lines.push(format!("{prefix}|{}", " --- |".repeat(cells.max(1))));
                }
            }
            out.push(lines.join("\n"));
        }
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
    let options = Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS | Options::ENABLE_STRIKETHROUGH;
    let mut in_head = false;
    for event in Parser::new_ext(md, options) {
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
                    Tag::Table(_) => Some(json!({"type": "table"})),
                    Tag::TableHead => {
                        in_head = true;
                        Some(json!({"type": "tableRow"}))
                    }
                    Tag::TableRow => Some(json!({"type": "tableRow"})),
                    Tag::TableCell => Some(json!({"type": if in_head { "tableHeader" } else { "tableCell" }})),
                    Tag::Image { dest_url, title, .. } => {
                        let mut attrs = json!({"src": dest_url.to_string(), "alt": ""});
                        if !title.is_empty() {
                            attrs["title"] = json!(title.to_string());
                        }
                        Some(json!({"type": "image", "attrs": attrs}))
                    }
                    Tag::Strikethrough => {
                        marks.push(json!({"type": "strike"}));
                        None
                    }
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
                TagEnd::Strong | TagEnd::Emphasis | TagEnd::Link | TagEnd::Strikethrough => {
                    marks.pop();
                }
                TagEnd::Image => {
                    // The image's text is its alt text.
                    let mut node = stack.pop().expect("opened above");
                    let alt: String = node["content"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|t| t["text"].as_str())
                        .collect();
                    node["attrs"]["alt"] = json!(alt);
                    node.as_object_mut().expect("an object").remove("content");
                    push_child(&mut stack, node);
                }
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::List(_)
                | TagEnd::Item
                | TagEnd::Table
                | TagEnd::TableHead
                | TagEnd::TableRow
                | TagEnd::TableCell => {
                    if end == TagEnd::TableHead {
                        in_head = false;
                    }
                    let mut node = stack.pop().expect("opened above");
                    // Tight list items and table cells hold bare inline nodes: wrap them in a
                    // paragraph, as ProseMirror does.
                    if matches!(node["type"].as_str(), Some("listItem" | "taskItem" | "tableCell" | "tableHeader")) {
                        let children = node["content"].as_array().cloned().unwrap_or_default();
                        let (inline, blocks): (Vec<_>, Vec<_>) = children
                            .into_iter()
                            .partition(|c| matches!(c["type"].as_str(), Some("text" | "hardBreak" | "image")));
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
                    // A paragraph that is only an image is the image block (TipTap's `image`).
                    if node["type"] == "paragraph"
                        && let Some([only]) = node["content"].as_array().map(Vec::as_slice)
                        && only["type"] == "image"
                    {
                        node = only.clone();
                    }
                    // A list whose items carry check boxes is a task list.
                    if node["type"] == "bulletList"
                        && node["content"].as_array().is_some_and(|items| items.iter().any(|i| i["type"] == "taskItem"))
                    {
                        node["type"] = json!("taskList");
                        for item in node["content"].as_array_mut().into_iter().flatten() {
                            if item["type"] == "listItem" {
                                item["type"] = json!("taskItem");
                                item["attrs"] = json!({"checked": false});
                            }
                        }
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
            Event::TaskListMarker(checked) => {
                // In a loose list the marker comes inside the item's paragraph.
                if let Some(item) = stack.iter_mut().rev().find(|n| n["type"] == "listItem") {
                    item["type"] = json!("taskItem");
                    item["attrs"] = json!({"checked": checked});
                }
            }
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

    #[test]
    fn tables_task_lists_images_and_strike_map_to_tiptap_nodes() {
        let md = "| Metric | Target |\n| --- | --- |\n| p99 **latency** | 200 ms |\n| a \\| b | ~~old~~ |\n\n- [x] Draft\n- [ ] Review\n\n![Flow](https://example.com/flow.png \"Checkout flow\")\n\nSee ![icon](i.png) here.\n";
        let doc = from_markdown(md);
        let table = &doc["content"][0];
        assert_eq!(table["type"], "table");
        assert_eq!(table["content"].as_array().unwrap().len(), 3, "{table}");
        assert_eq!(
            table["content"][0]["content"][0],
            json!({"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Metric"}]}]})
        );
        assert_eq!(table["content"][1]["content"][0]["type"], "tableCell");
        assert_eq!(
            table["content"][1]["content"][0]["content"][0]["content"][1],
            json!({"type": "text", "text": "latency", "marks": [{"type": "bold"}]})
        );
        assert_eq!(table["content"][2]["content"][0]["content"][0]["content"][0]["text"], "a | b");
        assert_eq!(
            table["content"][2]["content"][1]["content"][0]["content"][0],
            json!({"type": "text", "text": "old", "marks": [{"type": "strike"}]})
        );
        let tasks = &doc["content"][1];
        assert_eq!(tasks["type"], "taskList");
        assert_eq!(
            tasks["content"][0],
            json!({"type": "taskItem", "attrs": {"checked": true}, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Draft"}]}]})
        );
        assert_eq!(tasks["content"][1]["attrs"]["checked"], false);
        assert_eq!(
            doc["content"][2],
            json!({"type": "image", "attrs": {"src": "https://example.com/flow.png", "alt": "Flow", "title": "Checkout flow"}})
        );
        assert_eq!(doc["content"][3]["content"][1], json!({"type": "image", "attrs": {"src": "i.png", "alt": "icon"}}));
        assert_eq!(to_markdown(&doc), md);
        assert_eq!(from_markdown(&to_markdown(&doc)), doc);
        // A loose task list (items apart) is still a task list.
        let loose = from_markdown("- [ ] One\n\n- [x] Two\n");
        assert_eq!(loose["content"][0]["type"], "taskList");
        assert_eq!(loose["content"][0]["content"][1]["attrs"]["checked"], true);
    }
}
