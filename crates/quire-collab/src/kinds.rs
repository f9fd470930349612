//! Each document kind in one place: how its content lies in the CRDT (`docs/crdt-layout.md`),
//! how it is read and written as JSON and text, what a write must satisfy, what it is as a
//! file, and what a new document of the kind starts with. Everything else asks [`of`].

use quire_core::{DocumentKind, Error, Result};
use serde_json::Value;
use yrs::Doc;

use crate::content;

/// Why markdown is refused for a kind that does not take it.
pub const NOT_MARKDOWN: &str = "markdown is for PRDs; use json or text";

/// What Quire needs to know of one document kind.
pub trait Kind: Send + Sync {
    /// The content as JSON: a ProseMirror `doc` for rich text, the object otherwise.
    fn read_json(&self, doc: &Doc) -> Value;
    /// The content as plain text.
    fn read_text(&self, doc: &Doc) -> String;
    /// Checks `content` and replaces the document's content with it, changing only what
    /// differs.
    fn write_json(&self, doc: &Doc, content: &Value) -> Result<()>;
    /// Whether the content reads and writes as Markdown (and is kept as a Markdown file).
    fn markdown(&self) -> bool {
        false
    }
    /// Content given as text (`text`, or `markdown` where the kind takes it) as JSON.
    fn parse_text(&self, format: &str, text: &str) -> Result<Value>;
    /// The content as its file: Markdown, or pretty JSON with a final newline.
    fn to_file(&self, content: &Value) -> String;
    /// Whether a new document of the kind starts with something ([`Kind::initialize`]).
    fn initializes(&self) -> bool {
        false
    }
    /// Writes what a new document of the kind starts with (its first update).
    fn initialize(&self, _doc: &Doc) {}
}

/// The kind's behaviour.
pub fn of(kind: DocumentKind) -> &'static dyn Kind {
    match kind {
        DocumentKind::Prd => &RichText,
        DocumentKind::Moodboard => &MOODBOARD,
        DocumentKind::BoardConfig => &CONFIG,
    }
}

/// PRDs: rich text that TipTap's collaboration binding edits.
struct RichText;

impl Kind for RichText {
    fn read_json(&self, doc: &Doc) -> Value {
        content::read_blocks(doc)
    }
    fn read_text(&self, doc: &Doc) -> String {
        content::blocks_text(&content::read_blocks(doc))
    }
    fn write_json(&self, doc: &Doc, value: &Value) -> Result<()> {
        content::write_blocks(doc, value)
    }
    fn markdown(&self) -> bool {
        true
    }
    fn parse_text(&self, format: &str, text: &str) -> Result<Value> {
        Ok(if format == "markdown" { crate::markdown::from_markdown(text) } else { content::text_to_json(text) })
    }
    fn to_file(&self, value: &Value) -> String {
        crate::markdown::to_markdown(value)
    }
}

/// Kinds whose content is one JSON object, every nested object a map of its own.
struct Object {
    /// Checks a write before any of it is applied.
    check: fn(&Value) -> Result<()>,
    /// Maps a new document starts with (so that editors fill them rather than each making
    /// its own, which would keep only one).
    maps: &'static [&'static str],
}

static MOODBOARD: Object = Object { check: crate::board::validate, maps: &["brief", "items"] };
static CONFIG: Object = Object { check: |_| Ok(()), maps: &[] };

impl Kind for Object {
    fn read_json(&self, doc: &Doc) -> Value {
        content::read_object(doc)
    }
    fn read_text(&self, doc: &Doc) -> String {
        serde_json::to_string_pretty(&content::read_object(doc)).unwrap_or_default()
    }
    fn write_json(&self, doc: &Doc, value: &Value) -> Result<()> {
        (self.check)(value)?;
        content::write_object(doc, value)
    }
    fn parse_text(&self, format: &str, text: &str) -> Result<Value> {
        if format == "markdown" {
            return Err(Error::invalid("format", NOT_MARKDOWN));
        }
        serde_json::from_str(text).map_err(|e| Error::invalid("content", format!("this document's text is JSON: {e}")))
    }
    fn to_file(&self, value: &Value) -> String {
        let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
        s.push('\n');
        s
    }
    fn initializes(&self) -> bool {
        !self.maps.is_empty()
    }
    fn initialize(&self, doc: &Doc) {
        content::make_maps(doc, self.maps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_board_starts_with_its_brief_and_items_as_maps() {
        let doc = Doc::new();
        of(DocumentKind::Moodboard).initialize(&doc);
        assert_eq!(of(DocumentKind::Moodboard).read_json(&doc), json!({"brief": {}, "items": {}}));
        // Writing into them keeps them the same maps.
        of(DocumentKind::Moodboard).write_json(&doc, &json!({"brief": {}, "items": {"i1": {"type": "note"}}})).unwrap();
        of(DocumentKind::Moodboard).initialize(&doc);
        assert_eq!(of(DocumentKind::Moodboard).read_json(&doc)["items"]["i1"]["type"], "note");
        // Other kinds start empty.
        assert!(of(DocumentKind::Moodboard).initializes());
        assert!(!of(DocumentKind::BoardConfig).initializes() && !of(DocumentKind::Prd).initializes());
    }

    #[test]
    fn each_kind_says_which_text_it_takes() {
        assert!(of(DocumentKind::Prd).markdown());
        assert_eq!(of(DocumentKind::Prd).parse_text("markdown", "# Goals").unwrap()["content"][0]["type"], "heading");
        let err = of(DocumentKind::Moodboard).parse_text("markdown", "# Goals").unwrap_err();
        assert!(err.to_string().contains("markdown is for PRDs"), "{err}");
        let err = of(DocumentKind::BoardConfig).parse_text("text", "{oops").unwrap_err();
        assert!(err.to_string().contains("JSON"), "{err}");
        assert_eq!(of(DocumentKind::BoardConfig).to_file(&json!({"A": 1})), "{\n  \"A\": 1\n}\n");
    }
}
