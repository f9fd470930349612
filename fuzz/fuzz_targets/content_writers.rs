//! The content writers: Markdown to ProseMirror JSON and back, plain text, and any JSON
//! written into a document of each kind and read back. A panic is a finding; so is a
//! document whose written content does not read back as written twice (the writers must
//! reach a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quire_collab::content::{read_json, read_text, text_to_json, write_json};
use quire_collab::markdown::{from_markdown, to_markdown};
use quire_core::DocumentKind;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let json = from_markdown(text);
        let markdown = to_markdown(&json);
        // Markdown Quire wrote reads back to the same document. Known limit: emphasis
        // nested in runs of three or more `*`/`_` may be read back nested otherwise
        // (docs/fuzzing.md); such inputs are checked for panics only.
        let ambiguous = ["***", "___", "**_", "_**", "*__", "__*"].iter().any(|r| markdown.contains(r));
        let again = from_markdown(&markdown);
        if !ambiguous {
            assert_eq!(to_markdown(&again), markdown, "Markdown is not a fixed point after one round");
        }
        let doc = yrs::Doc::new();
        if write_json(&doc, DocumentKind::Prd, &json).is_ok() {
            let read = read_json(&doc, DocumentKind::Prd);
            let _ = read_text(&doc, DocumentKind::Prd);
            let again = yrs::Doc::new();
            write_json(&again, DocumentKind::Prd, &read).expect("what was read writes again");
            assert_eq!(read_json(&again, DocumentKind::Prd), read, "a PRD does not read back as written");
        }
        let _ = text_to_json(text);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        for kind in [DocumentKind::Prd, DocumentKind::Moodboard, DocumentKind::BoardConfig] {
            let doc = yrs::Doc::new();
            if write_json(&doc, kind, &value).is_ok() {
                let _ = read_json(&doc, kind);
                let _ = read_text(&doc, kind);
            }
        }
    }
});
