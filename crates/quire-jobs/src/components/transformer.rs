//! The `transformer` component: generated content to Markdown, with word count and
//! reading time.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{Component, ComponentError, ComponentInfo, Run};

/// Reading speed used for `reading_time`, in words per minute.
const WORDS_PER_MINUTE: usize = 200;

/// Renders `data.generated_content` (under `data.title`) to Markdown in
/// `data.formatted_content`: `{format, word_count, reading_time, content}`.
pub struct Transformer;

#[async_trait]
impl Component for Transformer {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "transformer",
            "Renders data.generated_content to Markdown with word count and reading time",
            &["title", "generated_content", "template"],
            &["formatted_content"],
        )
    }

    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        let Some(content) = run.data().get("generated_content") else {
            return Err(ComponentError::permanent(
                "invalid_input",
                "data.generated_content is missing: put a generating component before the transformer",
            ));
        };
        let outline = outline_of(run.data().get("template"));
        let markdown = render_markdown(run.str("title"), content, &outline);
        let words = count_words(&markdown);
        let minutes = ((words as f64 / WORDS_PER_MINUTE as f64).round() as usize).max(1);
        let mut out = Map::new();
        out.insert(
            "formatted_content".into(),
            json!({
                "format": "markdown",
                "word_count": words,
                "reading_time": format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" }),
                "content": markdown,
            }),
        );
        Ok(out)
    }
}

/// A template's sections as `(type, title)`, in order (`data.template` as the `template`
/// component loads it); empty without one.
pub fn outline_of(template: Option<&Value>) -> Vec<(&str, Option<&str>)> {
    template
        .and_then(|t| t.get("sections"))
        .and_then(Value::as_array)
        .map(|s| {
            s.iter().filter_map(|s| Some((s.get("type")?.as_str()?, s.get("title").and_then(Value::as_str)))).collect()
        })
        .unwrap_or_default()
}

/// Markdown for generated content: a string is taken as Markdown already; an object's
/// fields become `##` sections (in the outline's order first, under the outline's titles,
/// then the rest under their keys), a list of `{heading, content}` becomes one section per
/// item, nested objects `###` subsections.
pub fn render_markdown(title: Option<&str>, content: &Value, outline: &[(&str, Option<&str>)]) -> String {
    let mut out = String::new();
    if let Some(t) = title.filter(|t| !t.trim().is_empty()) {
        out.push_str("# ");
        out.push_str(t.trim());
        out.push_str("\n\n");
    }
    match content {
        Value::Object(fields) => {
            let mut keys: Vec<&String> =
                outline.iter().filter_map(|(k, _)| fields.get_key_value(*k).map(|(k, _)| k)).collect();
            keys.extend(fields.keys().filter(|k| !outline.iter().any(|(o, _)| o == k)));
            for key in keys {
                let titled =
                    outline.iter().find(|(k, _)| k == key).and_then(|(_, t)| t.filter(|t| !t.trim().is_empty()));
                let heading = titled.map_or_else(|| heading_of(key), |t| t.trim().to_string());
                section(&mut out, 2, &heading, &fields[key.as_str()]);
            }
        }
        other => body(&mut out, 2, other),
    }
    out.truncate(out.trim_end().len());
    out
}

fn section(out: &mut String, level: usize, heading: &str, value: &Value) {
    match value {
        // A list of headed items stands for sections of its own (the seed's `body`).
        Value::Array(items) if items.iter().all(|i| item_heading(i).is_some()) && !items.is_empty() => {
            for item in items {
                let text = item.get("content").or_else(|| item.get("text")).unwrap_or(&Value::Null);
                section(out, level, item_heading(item).unwrap_or_default(), text);
            }
        }
        _ => {
            out.push_str(&"#".repeat(level));
            out.push(' ');
            out.push_str(heading);
            out.push_str("\n\n");
            body(out, level, value);
        }
    }
}

fn body(out: &mut String, level: usize, value: &Value) {
    match value {
        Value::Null => {}
        Value::String(s) => {
            out.push_str(s.trim());
            out.push_str("\n\n");
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => {
                        out.push_str("- ");
                        out.push_str(s.trim());
                        out.push('\n');
                    }
                    other => body(out, level, other),
                }
            }
            out.push('\n');
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                section(out, (level + 1).min(6), &heading_of(k), v);
            }
        }
        other => {
            out.push_str(&other.to_string());
            out.push_str("\n\n");
        }
    }
}

fn item_heading(item: &Value) -> Option<&str> {
    item.get("heading").or_else(|| item.get("title")).and_then(Value::as_str)
}

/// `success_metrics` → `Success metrics`.
fn heading_of(key: &str) -> String {
    let spaced = key.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Words of the text, not counting Markdown markers (`#`, `-`, `>`, `|`, …).
fn count_words(markdown: &str) -> usize {
    markdown.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_seed_article() {
        let content = json!({
            "introduction": "Microservices architecture has revolutionized...",
            "body": [
                {"heading": "Key Principles", "content": "The fundamental principles include..."},
                {"heading": "Implementation Strategies", "content": "When implementing microservices..."},
                {"heading": "Common Challenges", "content": "Organizations often face challenges such as..."}
            ],
            "conclusion": "By following these best practices, developers can..."
        });
        let md = render_markdown(
            Some("Example Article"),
            &content,
            &[("introduction", None), ("body", None), ("conclusion", None)],
        );
        assert_eq!(
            md,
            "# Example Article\n\n## Introduction\n\nMicroservices architecture has revolutionized...\n\n\
             ## Key Principles\n\nThe fundamental principles include...\n\n## Implementation Strategies\n\n\
             When implementing microservices...\n\n## Common Challenges\n\nOrganizations often face challenges such as...\n\n\
             ## Conclusion\n\nBy following these best practices, developers can..."
        );
        assert_eq!(count_words(&md), 34);
    }

    #[test]
    fn other_shapes_render_too() {
        assert_eq!(render_markdown(None, &json!("Already *markdown*"), &[]), "Already *markdown*");
        let md = render_markdown(
            None,
            &json!({"open_questions": ["Who owns billing?", "When?"], "risks": {"legal": "GDPR"}}),
            &[],
        );
        assert_eq!(md, "## Open questions\n\n- Who owns billing?\n- When?\n\n## Risks\n\n### Legal\n\nGDPR");
        // The template's titles head its sections ("Non-goals", not "Non goals").
        let template = json!({"sections": [{"type": "non_goals", "title": "Non-goals"}, {"type": "goals"}]});
        let outline = outline_of(Some(&template));
        assert_eq!(outline, [("non_goals", Some("Non-goals")), ("goals", None)]);
        let md = render_markdown(None, &json!({"goals": "Fast.", "non_goals": "Offline."}), &outline);
        assert_eq!(md, "## Non-goals\n\nOffline.\n\n## Goals\n\nFast.");
        assert_eq!(count_words("# A\n\n- b c | d\n> e"), 5);
    }
}
