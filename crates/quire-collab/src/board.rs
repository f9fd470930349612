//! What a moodboard's content may hold (its layout is in `docs/crdt-layout.md`): the brief
//! and the items, each field with its type and size, and a bound on the number of items.
//! Writes through the API are checked here before any of them is applied; fields Quire does
//! not know are kept (editors may add their own).

use quire_core::{Error, Result};
use serde_json::{Map as JsonMap, Value};
use yrs::{Doc, Map, MapPrelim, MapRef, Out, Transact, WriteTxn};

use crate::content::{OBJECT_MAP, patch_map};

/// Most items one board holds.
pub const MAX_ITEMS: usize = 5_000;
/// Longest caption or note text, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Most tags on one item.
pub const MAX_TAGS: usize = 50;
/// Most reference images a brief holds.
pub const MAX_REFERENCES: usize = 4;
/// Most earlier images one item keeps (the web app drops the oldest beyond).
pub const MAX_VERSIONS: usize = 20;

const KINDS: [&str; 4] = ["image", "note", "swatch", "link"];
const NUMBERS: [&str; 6] = ["x", "y", "w", "h", "z", "rotation"];

fn invalid(field: String, message: impl Into<String>) -> Error {
    Error::invalid(field, message)
}

/// Checks a moodboard's content; the error names the field (`items.<id>.x`).
pub fn validate(content: &Value) -> Result<()> {
    let Value::Object(board) = content else {
        return Err(invalid("content".into(), "a moodboard's content is a JSON object"));
    };
    if let Some(brief) = board.get("brief") {
        let Value::Object(brief) = brief else {
            return Err(invalid("brief".into(), "the brief is an object (room_type, style, palette, notes)"));
        };
        for key in ["room_type", "style", "notes"] {
            if let Some(v) = brief.get(key)
                && !v.is_string()
                && !v.is_null()
            {
                return Err(invalid(format!("brief.{key}"), "a string"));
            }
        }
        if let Some(references) = brief.get("references") {
            let ok = references
                .as_array()
                .is_some_and(|r| r.len() <= MAX_REFERENCES && r.iter().all(|s| s.as_str().is_some_and(is_sha256)));
            if !ok {
                return Err(invalid(
                    "brief.references".into(),
                    format!("at most {MAX_REFERENCES} images, each the SHA-256 of an image in the workspace"),
                ));
            }
        }
        if let Some(palette) = brief.get("palette") {
            let ok = palette.as_array().is_some_and(|p| p.len() <= 32 && p.iter().all(is_colour));
            if !ok {
                return Err(invalid("brief.palette".into(), "at most 32 colours, each #rrggbb"));
            }
        }
    }
    let Some(items) = board.get("items") else { return Ok(()) };
    let Value::Object(items) = items else {
        return Err(invalid("items".into(), "items are an object keyed by item id"));
    };
    if items.len() > MAX_ITEMS {
        return Err(Error::LimitExceeded(format!(
            "a board holds at most {MAX_ITEMS} items; this one has {}: split it into several boards",
            items.len()
        )));
    }
    for (id, item) in items {
        let at = |field: &str| format!("items.{id}.{field}");
        if id.is_empty() || id.len() > 64 {
            return Err(invalid(format!("items.{id}"), "an item id is 1 to 64 characters"));
        }
        let Value::Object(item) = item else {
            return Err(invalid(format!("items.{id}"), "an item is an object"));
        };
        match item.get("type").and_then(Value::as_str) {
            Some(t) if KINDS.contains(&t) => {}
            _ => return Err(invalid(at("type"), "one of image, note, swatch, link")),
        }
        for key in NUMBERS {
            if let Some(v) = item.get(key)
                && !v.as_f64().is_some_and(|n| n.is_finite() && n.abs() <= 1e7)
            {
                return Err(invalid(at(key), "a number (pixels, or degrees for rotation)"));
            }
        }
        for key in ["w", "h"] {
            if item.get(key).and_then(Value::as_f64).is_some_and(|n| n <= 0.0) {
                return Err(invalid(at(key), "greater than 0"));
            }
        }
        if let Some(asset) = item.get("asset")
            && !asset.is_null()
            && !asset.as_str().is_some_and(is_sha256)
        {
            return Err(invalid(at("asset"), "the SHA-256 of an image in the workspace (64 hex digits)"));
        }
        for key in ["caption", "text", "url"] {
            if let Some(v) = item.get(key) {
                match v.as_str() {
                    Some(s) if s.chars().count() <= MAX_TEXT_CHARS => {}
                    Some(_) => return Err(invalid(at(key), format!("at most {MAX_TEXT_CHARS} characters"))),
                    None if v.is_null() => {}
                    None => return Err(invalid(at(key), "a string")),
                }
            }
        }
        if let Some(colour) = item.get("color")
            && !is_colour(colour)
        {
            return Err(invalid(at("color"), "a colour, #rrggbb"));
        }
        if let Some(tags) = item.get("tags") {
            let ok = tags.as_array().is_some_and(|t| {
                t.len() <= MAX_TAGS && t.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 64))
            });
            if !ok {
                return Err(invalid(at("tags"), format!("at most {MAX_TAGS} tags, each 1 to 64 characters")));
            }
        }
        if let Some(versions) = item.get("versions") {
            let one = |v: &Value| {
                v.get("asset").and_then(Value::as_str).is_some_and(is_sha256)
                    && ["w", "h"].iter().all(|k| v.get(*k).and_then(Value::as_f64).is_some_and(|n| n > 0.0 && n <= 1e7))
                    && v.get("by").is_none_or(|b| b.as_str().is_some_and(|b| b.chars().count() <= 200))
            };
            if !versions.as_array().is_some_and(|l| l.len() <= MAX_VERSIONS && l.iter().all(one)) {
                return Err(invalid(
                    at("versions"),
                    format!("at most {MAX_VERSIONS} earlier images, each {{asset, w, h}} (asset a SHA-256)"),
                ));
            }
        }
    }
    Ok(())
}

/// Every asset a board's content names: its items' images and their earlier versions.
pub fn assets(content: &Value) -> Vec<String> {
    let Some(items) = content.get("items").and_then(Value::as_object) else { return Vec::new() };
    let mut out = Vec::new();
    for item in items.values() {
        out.extend(item.get("asset").and_then(Value::as_str).map(String::from));
        for v in item.get("versions").and_then(Value::as_array).into_iter().flatten() {
            out.extend(v.get("asset").and_then(Value::as_str).map(String::from));
        }
    }
    out
}

/// Changes items of a board outside any editor (a generation filling its placeholders),
/// in one transaction: each `(id, fields)` writes those fields of the item and keeps its
/// others (a `null` field is removed). An item that is not on the board is made when
/// `create`, and otherwise left alone: someone removed it, and it stays removed. Returns the
/// ids written.
pub fn patch_items(doc: &Doc, changes: &[(String, JsonMap<String, Value>)], create: bool) -> Vec<String> {
    let mut txn = doc.transact_mut();
    let content: MapRef = txn.get_or_insert_map(OBJECT_MAP);
    let items = match content.get(&txn, "items") {
        Some(Out::YMap(items)) => items,
        _ if !create => return Vec::new(),
        _ => content.insert(&mut txn, "items", MapPrelim::default()),
    };
    let mut written = Vec::with_capacity(changes.len());
    for (id, fields) in changes {
        let item = match items.get(&txn, id) {
            Some(Out::YMap(item)) => item,
            Some(_) | None if !create => continue,
            _ => items.insert(&mut txn, id.as_str(), MapPrelim::default()),
        };
        patch_map(&mut txn, &item, fields, 2);
        written.push(id.clone());
    }
    written
}

/// Changes fields of one nested map of items (`field`: an item's `generation`, say),
/// keeping its other fields; items without that map are left alone.
pub fn patch_fields(doc: &Doc, changes: &[(String, JsonMap<String, Value>)], field: &str) {
    let mut txn = doc.transact_mut();
    let content: MapRef = txn.get_or_insert_map(OBJECT_MAP);
    let Some(Out::YMap(items)) = content.get(&txn, "items") else { return };
    for (id, fields) in changes {
        if let Some(Out::YMap(item)) = items.get(&txn, id)
            && let Some(Out::YMap(nested)) = item.get(&txn, field)
        {
            patch_map(&mut txn, &nested, fields, 3);
        }
    }
}

/// A colour as boards keep them: `#rrggbb`.
pub fn is_colour(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(content: Value) -> String {
        match validate(&content) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{content} was not refused by field: {other:?}"),
        }
    }

    #[test]
    fn boards_are_checked_field_by_field() {
        let sha = "ab".repeat(32);
        let good = json!({
            "brief": {"room_type": "living room", "style": "japandi", "palette": ["#d8cfc4"], "notes": "warm"},
            "items": {
                "i1": {"type": "image", "x": 10, "y": -4.5, "w": 320, "h": 240, "z": 1, "rotation": 3,
                       "asset": sha, "caption": "Oak", "tags": ["wood"], "source": {"prompt": "oak sideboard"}},
                "n1": {"type": "note", "x": 0, "y": 0, "text": "Keep it low", "mine": "kept"},
                "s1": {"type": "swatch", "color": "#5b6b5a"}
            },
            "anything_else": [1, 2]
        });
        validate(&good).unwrap();
        assert_eq!(field_of(json!([])), "content");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "video"}}})), "items.i1.type");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "image", "x": "10px"}}})), "items.i1.x");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "image", "w": 0}}})), "items.i1.w");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "image", "asset": "cat.png"}}})), "items.i1.asset");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "note", "text": "x".repeat(10_001)}}})), "items.i1.text");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "swatch", "color": "red"}}})), "items.i1.color");
        assert_eq!(field_of(json!({"items": {"i1": {"type": "image", "tags": [""]}}})), "items.i1.tags");
        assert_eq!(field_of(json!({"brief": {"palette": ["#fff"]}})), "brief.palette");
        assert_eq!(field_of(json!({"brief": {"references": ["kitchen.jpg"]}})), "brief.references");
        assert_eq!(
            field_of(json!({"brief": {"references": vec![sha.clone(); MAX_REFERENCES + 1]}})),
            "brief.references"
        );
        validate(&json!({"brief": {"references": [sha]}})).unwrap();
        let version =
            json!({"asset": "cd".repeat(32), "w": 300, "h": 200, "by": "Ada", "replaced_at": "2026-12-05T10:00:00Z"});
        validate(&json!({"items": {"i1": {"type": "image", "asset": sha, "versions": [version]}}})).unwrap();
        for bad in
            [json!({"asset": "cat.png", "w": 1, "h": 1}), json!({"asset": sha, "w": 0, "h": 1}), json!("old.png")]
        {
            assert_eq!(field_of(json!({"items": {"i1": {"type": "image", "versions": [bad]}}})), "items.i1.versions");
        }
        let too_many = vec![version.clone(); MAX_VERSIONS + 1];
        assert_eq!(field_of(json!({"items": {"i1": {"type": "image", "versions": too_many}}})), "items.i1.versions");
        assert_eq!(field_of(json!({"items": {"": {"type": "note"}}})), "items.");
        let many: serde_json::Map<String, Value> =
            (0..=MAX_ITEMS).map(|i| (format!("i{i}"), json!({"type": "note"}))).collect();
        assert!(matches!(validate(&json!({"items": many})), Err(Error::LimitExceeded(_))));
    }

    #[test]
    fn a_boards_assets_are_its_images_and_their_versions() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let board = json!({"items": {
            "i1": {"type": "image", "asset": a, "versions": [{"asset": b, "w": 1, "h": 1}]},
            "i2": {"type": "image", "asset": c},
            "n1": {"type": "note", "text": "no image"}
        }});
        let mut found = assets(&board);
        found.sort();
        assert_eq!(found, [a, b, c]);
        assert!(assets(&json!({"brief": {}})).is_empty());
    }

    fn fields(v: Value) -> JsonMap<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// A generation fills its placeholders field by field: what an editor changed on the item
    /// meanwhile stays, and an item someone removed is not brought back.
    #[test]
    fn patched_items_keep_their_other_fields_and_removed_ones_stay_removed() {
        use crate::content::{read_json, write_json};
        use quire_core::DocumentKind::Moodboard;
        let doc = Doc::new();
        let placeholder = json!({"type": "image", "x": 0, "y": 0, "w": 240, "h": 240,
            "generation": {"context": "ctx1", "status": "queued", "progress": 0}});
        let made =
            patch_items(&doc, &[("a".into(), fields(placeholder.clone())), ("b".into(), fields(placeholder))], true);
        assert_eq!(made, ["a", "b"]);
        // Meanwhile one person moves `a` and another removes `b`.
        let mut board = read_json(&doc, Moodboard);
        board["items"]["a"]["x"] = json!(500);
        board["items"].as_object_mut().unwrap().remove("b");
        write_json(&doc, Moodboard, &board).unwrap();
        let done =
            fields(json!({"asset": "ab".repeat(32), "generation": null, "source": {"prompt": "oak", "seed": 7}}));
        let written = patch_items(&doc, &[("a".into(), done.clone()), ("b".into(), done)], false);
        assert_eq!(written, ["a"]);
        let board = read_json(&doc, Moodboard);
        assert_eq!(
            board["items"],
            json!({"a": {"type": "image", "x": 500, "y": 0, "w": 240, "h": 240, "asset": "ab".repeat(32),
                "source": {"prompt": "oak", "seed": 7}}})
        );
        // A nested field written alone keeps its siblings in the nested map.
        patch_items(&doc, &[("a".into(), fields(json!({"source": {"prompt": "oak", "seed": 8}})))], false);
        assert_eq!(read_json(&doc, Moodboard)["items"]["a"]["source"]["seed"], 8);
    }
}
