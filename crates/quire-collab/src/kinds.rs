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
    /// Applies a JSON merge patch (RFC 7386) to the content: only the fields it names change,
    /// so a writer who read a while ago does not undo others' changes to the fields it left
    /// alone. Object kinds only.
    fn patch_json(&self, _doc: &Doc, _patch: &Value) -> Result<()> {
        Err(Error::invalid("content", "a merge patch applies to JSON objects; replace a PRD's content with PUT"))
    }
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
static CONFIG: Object = Object { check: crate::build_config::validate, maps: &[] };

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
    fn patch_json(&self, doc: &Doc, patch: &Value) -> Result<()> {
        if !patch.is_object() {
            return Err(Error::invalid(
                "content",
                "a merge patch is a JSON object of the fields to change (null removes one)",
            ));
        }
        let mut content = content::read_object(doc);
        quire_core::merge_patch(&mut content, patch);
        self.write_json(doc, &content)
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

    #[test]
    fn a_merge_patch_changes_only_the_fields_it_names() {
        let doc = Doc::new();
        let config = of(DocumentKind::BoardConfig);
        config.write_json(&doc, &json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"})).unwrap();
        config.patch_json(&doc, &json!({"BRANCH": "edge", "RELEASE": null, "BUILD_MINIMAL": "yes"})).unwrap();
        assert_eq!(config.read_json(&doc), json!({"BOARD": "rock-5b", "BRANCH": "edge", "BUILD_MINIMAL": "yes"}));
        // The configuration's rules hold for what the patch makes; nothing is applied otherwise.
        assert!(config.patch_json(&doc, &json!({"board": "x"})).is_err());
        assert!(config.patch_json(&doc, &json!(["BOARD"])).is_err());
        assert_eq!(config.read_json(&doc)["BOARD"], "rock-5b");
        assert!(of(DocumentKind::Prd).patch_json(&doc, &json!({})).is_err());
    }

    /// Two engineers change BOARD and RELEASE at once, each on their own copy: when their
    /// updates cross, both changes are there.
    #[test]
    fn concurrent_edits_of_two_fields_both_win() {
        use yrs::updates::decoder::Decode;
        use yrs::{ReadTxn, StateVector, Transact, Update};
        let config = of(DocumentKind::BoardConfig);
        let (ada, grace) = (Doc::with_client_id(1), Doc::with_client_id(2));
        config.write_json(&ada, &json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "jammy"})).unwrap();
        let first = ada.transact().encode_state_as_update_v1(&StateVector::default());
        grace.transact_mut().apply_update(Update::decode_v1(&first).unwrap()).unwrap();
        let before = ada.transact().state_vector();

        config.write_json(&ada, &json!({"BOARD": "orangepi5", "BRANCH": "current", "RELEASE": "jammy"})).unwrap();
        config.patch_json(&grace, &json!({"RELEASE": "noble"})).unwrap();
        let from_ada = ada.transact().encode_state_as_update_v1(&before);
        let from_grace = grace.transact().encode_state_as_update_v1(&before);
        ada.transact_mut().apply_update(Update::decode_v1(&from_grace).unwrap()).unwrap();
        grace.transact_mut().apply_update(Update::decode_v1(&from_ada).unwrap()).unwrap();
        let merged = json!({"BOARD": "orangepi5", "BRANCH": "current", "RELEASE": "noble"});
        assert_eq!(config.read_json(&ada), merged);
        assert_eq!(config.read_json(&grace), merged);
    }
}
