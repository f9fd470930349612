//! Reading and replacing a document's content outside the editor, per document kind.
//!
//! The CRDT layout of each kind (what editors bind to):
//! * `prd` — an `XmlFragment` named `default`, the rich text that ProseMirror/TipTap's
//!   collaboration binding (y-prosemirror) edits: one `XmlElement` per node, named after the
//!   node type (`paragraph`, `heading` with a `level` attribute, lists, tables, `image`, …;
//!   the list is in `docs/crdt-layout.md`), text in `XmlText` whose formatting attributes
//!   are the marks (`bold`, `italic`, `strike`, `code`, `link`).
//! * `board-config` and `moodboard` — a `Map` named `content` holding the JSON object, each
//!   nested object a `Map` of its own (a board's items, each item's fields), so that
//!   concurrent changes to different fields merge.
//!
//! Content comes out as ProseMirror JSON (`json`), plain text (`text`) or Markdown
//! (`markdown`, PRDs). Replacing content changes only what differs: the blocks shared at the
//! start and the end of the document stay, so editors keep their cursors there.

use quire_core::{DocumentKind, Error, Result};
use serde_json::{Map as JsonMap, Value, json};
use yrs::types::ToJson;
use yrs::types::text::YChange;
use yrs::{
    Any, Doc, Map, MapPrelim, MapRef, Out, ReadTxn, Text, Transact, TransactionMut, WriteTxn, Xml, XmlElementPrelim,
    XmlFragment, XmlFragmentRef, XmlOut, XmlTextPrelim,
};

/// The name of the rich-text fragment of PRDs (TipTap's default field).
pub const PRD_FRAGMENT: &str = "default";
/// The name of the map holding board configurations and moodboards.
pub const OBJECT_MAP: &str = "content";

fn any_to_json(a: &Any) -> Value {
    serde_json::to_value(a).unwrap_or(Value::Null)
}

fn json_to_any(v: &Value) -> Any {
    serde_json::from_value(v.clone()).unwrap_or(Any::Null)
}

/// ProseMirror JSON of one node.
fn node_json<T: ReadTxn>(txn: &T, node: &XmlOut) -> Option<Value> {
    match node {
        XmlOut::Element(el) => {
            let mut out = JsonMap::new();
            out.insert("type".into(), json!(el.tag().to_string()));
            let attrs: JsonMap<String, Value> =
                el.attributes(txn).map(|(k, v)| (k.to_string(), out_to_json(txn, &v))).collect();
            if !attrs.is_empty() {
                out.insert("attrs".into(), Value::Object(attrs));
            }
            let content: Vec<Value> =
                el.children(txn).filter_map(|c| node_json(txn, &c)).flat_map(flatten_text).collect();
            if !content.is_empty() {
                out.insert("content".into(), Value::Array(content));
            }
            Some(Value::Object(out))
        }
        XmlOut::Text(t) => {
            let runs: Vec<Value> = t
                .diff(txn, YChange::identity)
                .into_iter()
                .filter_map(|d| {
                    let Out::Any(Any::String(s)) = &d.insert else { return None };
                    let mut run = json!({"type": "text", "text": s.to_string()});
                    if let Some(attrs) = &d.attributes {
                        // By name: the attributes are a map, whose order is no order.
                        let mut attrs: Vec<_> = attrs.iter().collect();
                        attrs.sort_by(|a, b| a.0.cmp(b.0));
                        let marks: Vec<Value> = attrs
                            .into_iter()
                            .map(|(k, v)| match any_to_json(v) {
                                Value::Object(a) if !a.is_empty() => json!({"type": k.to_string(), "attrs": a}),
                                _ => json!({"type": k.to_string()}),
                            })
                            .collect();
                        if !marks.is_empty() {
                            run["marks"] = Value::Array(marks);
                        }
                    }
                    Some(run)
                })
                .collect();
            Some(json!({"type": "__runs", "content": runs}))
        }
        XmlOut::Fragment(_) => None,
    }
}

/// Text nodes come back as a list of runs; splice them into their parent's content.
fn flatten_text(v: Value) -> Vec<Value> {
    if v["type"] == "__runs" { v["content"].as_array().cloned().unwrap_or_default() } else { vec![v] }
}

fn out_to_json<T: ReadTxn>(txn: &T, out: &Out) -> Value {
    match out {
        Out::Any(a) => any_to_json(a),
        other => Value::String(other.clone().to_string(txn)),
    }
}

/// The document's content as JSON: a ProseMirror `doc` node for PRDs, the object otherwise.
pub fn read_json(doc: &Doc, kind: DocumentKind) -> Value {
    crate::kinds::of(kind).read_json(doc)
}

/// A PRD's blocks as a ProseMirror `doc` node.
pub(crate) fn read_blocks(doc: &Doc) -> Value {
    let txn = doc.transact();
    let Some(frag) = txn.get_xml_fragment(PRD_FRAGMENT) else { return json!({"type": "doc", "content": []}) };
    let content: Vec<Value> = frag.children(&txn).filter_map(|c| node_json(&txn, &c)).flat_map(flatten_text).collect();
    json!({"type": "doc", "content": content})
}

/// An object kind's content map as JSON.
pub(crate) fn read_object(doc: &Doc) -> Value {
    let txn = doc.transact();
    match txn.get_map(OBJECT_MAP) {
        Some(map) => map.to_json(&txn).into_json(),
        None => json!({}),
    }
}

trait IntoJson {
    fn into_json(self) -> Value;
}

impl IntoJson for Any {
    fn into_json(self) -> Value {
        any_to_json(&self)
    }
}

fn inline_text(node: &Value) -> String {
    match node["type"].as_str() {
        Some("text") => node["text"].as_str().unwrap_or_default().to_string(),
        Some("hardBreak") => "\n".into(),
        _ => node["content"].as_array().map(|c| c.iter().map(inline_text).collect()).unwrap_or_default(),
    }
}

/// Plain text: blocks separated by blank lines (PRDs), or pretty JSON.
pub fn read_text(doc: &Doc, kind: DocumentKind) -> String {
    crate::kinds::of(kind).read_text(doc)
}

/// A ProseMirror `doc`'s blocks as text, separated by blank lines.
pub(crate) fn blocks_text(json: &Value) -> String {
    json["content"].as_array().map(|b| b.iter().map(inline_text).collect::<Vec<_>>().join("\n\n")).unwrap_or_default()
}

/// Builds one node (and its children) at the end of `parent`'s children.
fn build<P: XmlFragment>(txn: &mut TransactionMut, parent: &P, node: &Value) -> Result<()> {
    let kind = node["type"].as_str().ok_or_else(|| Error::invalid("content", "every node needs a \"type\""))?;
    if kind == "text" {
        let text = node["text"].as_str().unwrap_or_default();
        let t = parent.push_back(txn, XmlTextPrelim::new(""));
        let marks: std::collections::HashMap<std::sync::Arc<str>, Any> = node["marks"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|mark| {
                        Some((mark["type"].as_str()?.into(), json_to_any(mark.get("attrs").unwrap_or(&json!({})))))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if marks.is_empty() {
            t.insert(txn, 0, text);
        } else {
            t.insert_with_attributes(txn, 0, text, marks);
        }
        return Ok(());
    }
    let el = parent.push_back(txn, XmlElementPrelim::empty(kind));
    if let Some(attrs) = node["attrs"].as_object() {
        for (k, v) in attrs {
            el.insert_attribute(txn, k.as_str(), json_to_any(v));
        }
    }
    if let Some(children) = node["content"].as_array() {
        for child in children {
            build(txn, &el, child)?;
        }
    }
    Ok(())
}

/// Replaces a PRD's blocks with `target` (ProseMirror `doc` JSON), keeping the blocks that
/// are the same at the start and at the end.
fn replace_blocks(txn: &mut TransactionMut, frag: &XmlFragmentRef, target: &[Value]) -> Result<()> {
    let current: Vec<Value> = frag.children(txn).filter_map(|c| node_json(txn, &c)).flat_map(flatten_text).collect();
    let same_start = current.iter().zip(target).take_while(|(a, b)| a == b).count();
    let rest = current.len().min(target.len()) - same_start;
    let same_end = current.iter().rev().zip(target.iter().rev()).take(rest).take_while(|(a, b)| a == b).count();
    let remove = current.len() - same_start - same_end;
    if remove > 0 {
        frag.remove_range(txn, same_start as u32, remove as u32);
    }
    // New blocks go after the kept start: build them at the end, then move is not possible in
    // Yjs, so insert them one by one at their place.
    for (offset, node) in target[same_start..target.len() - same_end].iter().enumerate() {
        let index = (same_start + offset) as u32;
        let kind = node["type"].as_str().ok_or_else(|| Error::invalid("content", "every node needs a \"type\""))?;
        if kind == "text" {
            return Err(Error::invalid("content", "a document's top level holds blocks, not text"));
        }
        let el = frag.insert(txn, index, XmlElementPrelim::empty(kind));
        if let Some(attrs) = node["attrs"].as_object() {
            for (k, v) in attrs {
                el.insert_attribute(txn, k.as_str(), json_to_any(v));
            }
        }
        for child in node["content"].as_array().into_iter().flatten() {
            build(txn, &el, child)?;
        }
    }
    Ok(())
}

/// Replaces the content from JSON (a ProseMirror `doc` for PRDs, an object otherwise),
/// changing only what differs; the kind checks it first.
pub fn write_json(doc: &Doc, kind: DocumentKind, content: &Value) -> Result<()> {
    crate::kinds::of(kind).write_json(doc, content)
}

/// Replaces a PRD's blocks from a ProseMirror `doc`.
pub(crate) fn write_blocks(doc: &Doc, content: &Value) -> Result<()> {
    if content["type"] != "doc" {
        return Err(Error::invalid(
            "content",
            "a PRD's JSON is a ProseMirror document: {\"type\":\"doc\",\"content\":[…]}",
        ));
    }
    let blocks = content["content"].as_array().cloned().unwrap_or_default();
    let mut txn = doc.transact_mut();
    let frag = txn.get_or_insert_xml_fragment(PRD_FRAGMENT);
    replace_blocks(&mut txn, &frag, &blocks)
}

/// Replaces an object kind's content field by field.
pub(crate) fn write_object(doc: &Doc, content: &Value) -> Result<()> {
    let Value::Object(target) = content else {
        return Err(Error::invalid("content", "this document's content is a JSON object"));
    };
    let mut txn = doc.transact_mut();
    let map: MapRef = txn.get_or_insert_map(OBJECT_MAP);
    write_map(&mut txn, &map, target, 0);
    Ok(())
}

/// Makes the maps `keys` of an object kind's content, where they are missing (a new
/// document's first update, so that no two editors make the same map at once).
pub(crate) fn make_maps(doc: &Doc, keys: &[&str]) {
    let mut txn = doc.transact_mut();
    let map: MapRef = txn.get_or_insert_map(OBJECT_MAP);
    for key in keys {
        if !matches!(map.get(&txn, key), Some(Out::YMap(_))) {
            map.insert(&mut txn, *key, MapPrelim::default());
        }
    }
}

/// Objects nested deeper than this are kept as one value (a field of a field of an item is
/// as deep as a board goes).
const MAX_MAP_DEPTH: usize = 6;

/// Writes `target` into `map` field by field: every JSON object becomes a map of its own, so
/// that two people changing different fields of one item (a board item's position and its
/// caption, a configuration's `BOARD` and `RELEASE`) both keep their change. Only what
/// differs is written; an object kept as one value (by an older Quire) becomes a map the
/// first time it is written.
fn write_map(txn: &mut TransactionMut, map: &MapRef, target: &JsonMap<String, Value>, depth: usize) {
    let keys: Vec<String> = map.keys(txn).map(String::from).collect();
    for key in keys {
        if !target.contains_key(&key) {
            map.remove(txn, &key);
        }
    }
    for (k, v) in target {
        write_entry(txn, map, k, v, depth);
    }
}

/// Writes one field of `map`, if it differs.
fn write_entry(txn: &mut TransactionMut, map: &MapRef, k: &str, v: &Value, depth: usize) {
    match (map.get(txn, k), v) {
        (Some(Out::YMap(child)), Value::Object(fields)) if depth < MAX_MAP_DEPTH => {
            write_map(txn, &child, fields, depth + 1)
        }
        (_, Value::Object(fields)) if depth < MAX_MAP_DEPTH => {
            let child = map.insert(txn, k, MapPrelim::default());
            write_map(txn, &child, fields, depth + 1)
        }
        (Some(old), v) if out_to_json(txn, &old) == *v => {}
        _ => {
            map.insert(txn, k, json_to_any(v));
        }
    }
}

/// Writes `fields` into `map` (the content map or an object within it, `depth` levels
/// down), keeping the fields it does not name; a `null` field is removed. An object field is
/// written as [`write_map`] writes one: whole, field by field.
pub(crate) fn patch_map(txn: &mut TransactionMut, map: &MapRef, fields: &JsonMap<String, Value>, depth: usize) {
    for (k, v) in fields {
        if v.is_null() {
            map.remove(txn, k);
        } else {
            write_entry(txn, map, k, v, depth);
        }
    }
}

/// Plain text for a PRD: each blank-line-separated block becomes a paragraph.
pub fn text_to_json(text: &str) -> Value {
    let blocks: Vec<Value> = text
        .split("\n\n")
        .map(str::trim_end)
        .filter(|b| !b.is_empty())
        .map(|b| json!({"type": "paragraph", "content": [{"type": "text", "text": b}]}))
        .collect();
    json!({"type": "doc", "content": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a text's marks came back in the order of a hash map, so the same
    /// document read differently from one write to the next.
    #[test]
    fn marks_read_back_in_one_order() {
        for order in [["italic", "bold"], ["bold", "italic"]] {
            let marks: Vec<Value> = order.iter().map(|m| json!({"type": m})).collect();
            let content = json!({"type": "doc", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "one", "marks": marks}]}]});
            let doc = Doc::new();
            write_json(&doc, DocumentKind::Prd, &content).unwrap();
            let read = read_json(&doc, DocumentKind::Prd);
            assert_eq!(read["content"][0]["content"][0]["marks"], json!([{"type": "bold"}, {"type": "italic"}]));
        }
    }

    fn board(items: Value) -> Value {
        json!({"brief": {"room_type": "living room", "style": "japandi", "palette": ["#d8cfc4", "#5b6b5a"]}, "items": items})
    }

    fn sync(a: &Doc, b: &Doc) {
        use yrs::Update;
        use yrs::updates::decoder::Decode;
        for (from, to) in [(a, b), (b, a)] {
            let sv = to.transact().state_vector();
            let update = from.transact().encode_state_as_update_v1(&sv);
            to.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        }
    }

    /// Two people change different fields of one board item at once (one moves it, the other
    /// captions it), and a third field of the brief: every change is kept.
    #[test]
    fn concurrent_changes_to_different_fields_of_one_item_merge() {
        let start = board(json!({"i1": {"type": "image", "x": 0, "y": 0, "w": 320, "h": 240, "caption": ""}}));
        let (a, b) = (Doc::new(), Doc::new());
        write_json(&a, DocumentKind::Moodboard, &start).unwrap();
        sync(&a, &b);
        let mut moved = start.clone();
        moved["items"]["i1"]["x"] = json!(140);
        moved["items"]["i1"]["y"] = json!(60);
        write_json(&a, DocumentKind::Moodboard, &moved).unwrap();
        let mut captioned = start.clone();
        captioned["items"]["i1"]["caption"] = json!("Oak sideboard");
        captioned["brief"]["notes"] = json!("Warm, low light");
        write_json(&b, DocumentKind::Moodboard, &captioned).unwrap();
        sync(&a, &b);
        let both = read_json(&a, DocumentKind::Moodboard);
        assert_eq!(both, read_json(&b, DocumentKind::Moodboard));
        assert_eq!(
            both["items"]["i1"],
            json!({"type": "image", "x": 140, "y": 60, "w": 320, "h": 240, "caption": "Oak sideboard"})
        );
        assert_eq!(both["brief"]["notes"], "Warm, low light");
    }

    #[test]
    fn writing_the_same_board_again_changes_nothing_and_old_objects_become_maps() {
        let items: JsonMap<String, Value> = (0..1000)
            .map(|i| {
                (format!("i{i}"), json!({"type": "note", "x": i * 10, "y": i % 7, "z": i, "text": format!("Note {i}")}))
            })
            .collect();
        let content = board(Value::Object(items));
        let doc = Doc::new();
        write_json(&doc, DocumentKind::Moodboard, &content).unwrap();
        assert_eq!(read_json(&doc, DocumentKind::Moodboard), content);
        let before = doc.transact().state_vector();
        write_json(&doc, DocumentKind::Moodboard, &content).unwrap();
        assert_eq!(doc.transact().state_vector(), before, "nothing written");
        // One field of one item: one small change, not the board.
        let mut one = content.clone();
        one["items"]["i500"]["x"] = json!(1);
        write_json(&doc, DocumentKind::Moodboard, &one).unwrap();
        let update = doc.transact().encode_state_as_update_v1(&before);
        assert!(update.len() < 100, "{} bytes for one field", update.len());
        // A board kept by an older Quire held each top-level object as one value.
        let old = Doc::new();
        {
            let mut txn = old.transact_mut();
            let map = txn.get_or_insert_map(OBJECT_MAP);
            map.insert(&mut txn, "items", json_to_any(&json!({"i1": {"type": "note", "x": 1}})));
        }
        write_json(&old, DocumentKind::Moodboard, &json!({"items": {"i1": {"type": "note", "x": 2}}})).unwrap();
        let txn = old.transact();
        let items = txn.get_map(OBJECT_MAP).unwrap().get(&txn, "items").unwrap();
        assert!(matches!(items, Out::YMap(_)), "now a map of its own");
        drop(txn);
        assert_eq!(read_json(&old, DocumentKind::Moodboard), json!({"items": {"i1": {"type": "note", "x": 2}}}));
    }
}
