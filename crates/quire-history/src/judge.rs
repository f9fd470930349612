//! Whether a change makes a version, which number it bumps, and its message.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::sections::{Section, collapse, sections};
use crate::{Bump, Format, Thresholds};

/// What happened to one section (or, in JSON, one field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Added {
        section: String,
    },
    Removed {
        section: String,
    },
    Renamed {
        from: String,
        to: String,
    },
    Edited {
        section: String,
    },
    /// A JSON field whose type changed (a schema-level change).
    Retyped {
        section: String,
    },
}

/// A change worth a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub bump: Bump,
    /// "Added section 'Risks'; edited 'Goals'".
    pub message: String,
    pub changes: Vec<Change>,
    /// Characters inserted plus deleted, whitespace runs counted as one.
    pub changed_chars: usize,
}

/// Judges the change from `old` (the last version's file; `None` for a document's first
/// version) to `new`. `None` when it is not worth a version.
pub fn judge(format: Format, old: Option<&str>, new: &str, t: &Thresholds) -> Option<Judgement> {
    let Some(old) = old else {
        if new.trim().is_empty() {
            return None;
        }
        return Some(Judgement {
            bump: Bump::Major,
            message: "First version".into(),
            changes: Vec::new(),
            changed_chars: collapse(new).chars().count(),
        });
    };
    let (old, new) = match format {
        Format::Markdown => (old.to_string(), new.to_string()),
        Format::Json => (canonical(old), canonical(new)),
    };
    let (old, new) = (old.as_str(), new.as_str());
    let changed_chars = changed_chars(old, new);
    if changed_chars == 0 {
        return None;
    }
    let changes = match format {
        Format::Markdown => markdown_changes(old, new),
        Format::Json => json_changes(old, new),
    };
    let structural = changes.iter().any(|c| !matches!(c, Change::Edited { .. }));
    let bump = if structural {
        Bump::Major
    } else if changed_chars <= t.patch_max_chars {
        Bump::Patch
    } else {
        Bump::Minor
    };
    let mut message = describe(&changes);
    if message.is_empty() {
        message = "Edited the text".into();
    }
    Some(Judgement { bump, message, changes, changed_chars })
}

/// JSON as Quire writes it: fields in order, pretty-printed (text that is not JSON as it is).
pub(crate) fn canonical(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.to_string(),
    }
}

/// Characters inserted plus deleted between the two texts with whitespace runs collapsed
/// (so re-wrapping or re-indenting counts for nothing).
fn changed_chars(old: &str, new: &str) -> usize {
    let (a, b) = (collapse(old), collapse(new));
    if a == b {
        return 0;
    }
    let diff = TextDiff::configure().timeout(std::time::Duration::from_millis(200)).diff_chars(&a, &b);
    diff.iter_all_changes().filter(|c| c.tag() != ChangeTag::Equal).map(|c| c.value().chars().count()).sum()
}

/// How alike two texts are, 0 to 1.
fn similarity(a: &str, b: &str) -> f32 {
    let (a, b) = (collapse(a), collapse(b));
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    TextDiff::configure().timeout(std::time::Duration::from_millis(100)).diff_words(&a, &b).ratio()
}

fn markdown_changes(old: &str, new: &str) -> Vec<Change> {
    let before = sections(Format::Markdown, old);
    let after = sections(Format::Markdown, new);
    let index = |list: &[Section]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (i, s) in list.iter().enumerate() {
            m.entry(s.key()).or_insert(i);
        }
        m
    };
    let (old_keys, new_keys) = (index(&before), index(&after));
    let mut removed: Vec<usize> = (0..before.len())
        .filter(|i| new_keys.get(&before[*i].key()).is_none_or(|_| old_keys[&before[*i].key()] != *i))
        .collect();
    let mut added: Vec<usize> = (0..after.len())
        .filter(|i| old_keys.get(&after[*i].key()).is_none_or(|_| new_keys[&after[*i].key()] != *i))
        .collect();
    let mut changes = Vec::new();
    // A section that left and one that came with much the same text (or in the same place
    // with the same level) is one section renamed.
    let mut renamed: Vec<(usize, usize)> = Vec::new();
    for &r in &removed {
        let best = added
            .iter()
            .filter(|a| !renamed.iter().any(|(_, x)| x == *a))
            .map(|&a| {
                let same_place = before.len() == after.len() && r == a && before[r].level == after[a].level;
                let score = similarity(&before[r].body, &after[a].body) + if same_place { 0.5 } else { 0.0 };
                (a, score)
            })
            .max_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((a, _)) = best.filter(|(_, s)| *s >= 0.6) {
            renamed.push((r, a));
        }
    }
    removed.retain(|r| !renamed.iter().any(|(x, _)| x == r));
    added.retain(|a| !renamed.iter().any(|(_, x)| x == a));
    for &a in &added {
        changes.push(Change::Added { section: after[a].title.clone() });
    }
    for &r in &removed {
        changes.push(Change::Removed { section: before[r].title.clone() });
    }
    for &(r, a) in &renamed {
        changes.push(Change::Renamed { from: before[r].title.clone(), to: after[a].title.clone() });
        if collapse(&before[r].body) != collapse(&after[a].body) {
            changes.push(Change::Edited { section: after[a].title.clone() });
        }
    }
    for (key, &i) in &old_keys {
        if let Some(&j) = new_keys.get(key)
            && !removed.contains(&i)
            && !renamed.iter().any(|(x, _)| *x == i)
            && !added.contains(&j)
            && collapse(&before[i].body) != collapse(&after[j].body)
        {
            changes.push(Change::Edited { section: after[j].title.clone() });
        }
    }
    changes
}

/// Every field path of a JSON value with the kind of value there (`build.flags[]` → array);
/// list items share one path, so lengths do not count, shapes do. The root is not a path.
pub fn field_paths(value: &Value) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    schema(value, "", &mut out);
    out
}

fn schema(value: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(items) => {
            for item in items {
                schema(item, &format!("{path}[]"), out);
            }
            "array"
        }
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                schema(v, &p, out);
            }
            "object"
        }
    };
    if !path.is_empty() {
        out.insert(path.to_string(), kind);
    }
}

/// The leaf paths whose values differ.
fn edited_leaves(a: &Value, b: &Value, path: &str, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if let Some(w) = y.get(k) {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    edited_leaves(v, w, &p, out);
                }
            }
        }
        (x, y) if x != y => {
            out.insert(if path.is_empty() { "the document".into() } else { path.to_string() });
        }
        _ => {}
    }
}

fn json_changes(old: &str, new: &str) -> Vec<Change> {
    let (Ok(a), Ok(b)) = (serde_json::from_str::<Value>(old), serde_json::from_str::<Value>(new)) else {
        return vec![Change::Edited { section: "the document".into() }];
    };
    let (mut sa, mut sb) = (BTreeMap::new(), BTreeMap::new());
    schema(&a, "", &mut sa);
    schema(&b, "", &mut sb);
    // Only the outermost path of a subtree that came or went.
    let top = |path: &String, other: &BTreeMap<String, &'static str>| {
        !other.contains_key(path)
            && !other.is_empty()
            && !path.char_indices().any(|(i, c)| (c == '.' || c == '[') && !other.contains_key(&path[..i]) && i > 0)
    };
    let mut changes = Vec::new();
    for path in sb.keys().filter(|p| top(p, &sa)) {
        changes.push(Change::Added { section: path.clone() });
    }
    for path in sa.keys().filter(|p| top(p, &sb)) {
        changes.push(Change::Removed { section: path.clone() });
    }
    for (path, kind) in &sa {
        if sb.get(path).is_some_and(|k| k != kind) {
            changes.push(Change::Retyped { section: path.clone() });
        }
    }
    let mut edited = BTreeSet::new();
    edited_leaves(&a, &b, "", &mut edited);
    let structural: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Retyped { section } => Some(section.clone()),
            _ => None,
        })
        .collect();
    for path in edited {
        if !structural.contains(&path) {
            changes.push(Change::Edited { section: path });
        }
    }
    changes
}

/// The message of a change: what was added, removed, renamed, then edited.
fn describe(changes: &[Change]) -> String {
    let list = |names: Vec<String>| -> String {
        const MOST: usize = 5;
        let n = names.len();
        let shown: Vec<String> = names.into_iter().take(MOST).map(|s| format!("'{s}'")).collect();
        let mut s = shown.join(", ");
        if n > MOST {
            s.push_str(&format!(" and {} more", n - MOST));
        }
        s
    };
    let pick = |f: &dyn Fn(&Change) -> Option<String>| changes.iter().filter_map(f).collect::<Vec<String>>();
    let added = pick(&|c| if let Change::Added { section } = c { Some(section.clone()) } else { None });
    let removed = pick(&|c| if let Change::Removed { section } = c { Some(section.clone()) } else { None });
    let retyped = pick(&|c| if let Change::Retyped { section } = c { Some(section.clone()) } else { None });
    let edited = pick(&|c| if let Change::Edited { section } = c { Some(section.clone()) } else { None });
    let mut parts = Vec::new();
    let noun = |n: usize| if n == 1 { "section" } else { "sections" };
    if !added.is_empty() {
        parts.push(format!("Added {} {}", noun(added.len()), list(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("Removed {} {}", noun(removed.len()), list(removed)));
    }
    for c in changes {
        if let Change::Renamed { from, to } = c {
            parts.push(format!("Renamed '{from}' to '{to}'"));
        }
    }
    if !retyped.is_empty() {
        parts.push(format!("Changed the type of {}", list(retyped)));
    }
    if !edited.is_empty() {
        parts.push(format!("Edited {}", list(edited)));
    }
    let mut message = parts.join("; ");
    // "Added …; edited …": only the first part keeps its capital.
    for word in ["; Removed", "; Renamed", "; Changed", "; Edited"] {
        message = message.replace(word, &word.to_lowercase());
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRD: &str = "# Checkout\n\n## Problem\nPaying takes six steps and half the users give up.\n\n\
                       ## Goals\n- Pay in two steps.\n- Keep the card on file.\n";

    fn md(old: &str, new: &str) -> Option<Judgement> {
        judge(Format::Markdown, Some(old), new, &Thresholds::default())
    }

    #[test]
    fn whitespace_and_undone_edits_make_no_version() {
        assert_eq!(md(PRD, PRD), None);
        let rewrapped = PRD.replace("six steps and", "six steps\n  and").replace("\n- Pay", "\n\n-   Pay");
        assert_eq!(md(PRD, &rewrapped), None, "re-wrapping is not a change");
        assert_eq!(judge(Format::Markdown, None, "  \n", &Thresholds::default()), None, "nothing to keep yet");
        let first = judge(Format::Markdown, None, PRD, &Thresholds::default()).unwrap();
        assert_eq!((first.bump, first.message.as_str()), (Bump::Major, "First version"));
    }

    #[test]
    fn a_few_characters_are_a_patch_more_is_minor() {
        let typo = PRD.replace("Pay in two steps", "Pay in two stesp");
        let j = md(PRD, &typo).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Patch, "Edited 'Goals'"));
        let more =
            PRD.replace("- Keep the card on file.", "- Keep the card on file.\n- Offer Apple Pay and Google Pay.");
        let j = md(PRD, &more).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Minor, "Edited 'Goals'"));
        let strict = judge(Format::Markdown, Some(PRD), &typo, &Thresholds { patch_max_chars: 0 }).unwrap();
        assert_eq!(strict.bump, Bump::Minor, "the threshold is a setting");
    }

    #[test]
    fn sections_added_removed_or_renamed_are_major() {
        let added = format!("{PRD}\n## Risks\nFraud rises.\n");
        let j = md(PRD, &added).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Major, "Added section 'Risks'"));
        let both = added.replace("Pay in two steps", "Pay in one step");
        assert_eq!(md(PRD, &both).unwrap().message, "Added section 'Risks'; edited 'Goals'");
        let removed = PRD.replace("## Goals\n- Pay in two steps.\n- Keep the card on file.\n", "");
        let j = md(PRD, &removed).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Major, "Removed section 'Goals'"));
        let renamed = PRD.replace("## Goals", "## Objectives");
        let j = md(PRD, &renamed).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Major, "Renamed 'Goals' to 'Objectives'"));
        assert_eq!(j.changes, [Change::Renamed { from: "Goals".into(), to: "Objectives".into() }]);
        let case = PRD.replace("## Goals", "## goals:");
        assert_eq!(md(PRD, &case).unwrap().bump, Bump::Patch, "a heading's case or colon is no rename");
    }

    #[test]
    fn json_fields_added_removed_or_retyped_are_major_values_are_not() {
        let cfg = r#"{"board": "esp32-s3", "build": {"flags": ["-O2"], "jobs": 4}}"#;
        let j =
            judge(Format::Json, Some(cfg), &cfg.replace("\"jobs\": 4", "\"jobs\": 8"), &Thresholds::default()).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Patch, "Edited 'build.jobs'"));
        let j = judge(
            Format::Json,
            Some(cfg),
            &cfg.replace("esp32-s3", "nrf52840-dongle-with-usb"),
            &Thresholds::default(),
        )
        .unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Minor, "Edited 'board'"));
        let added = r#"{"board": "esp32-s3", "build": {"flags": ["-O2"], "jobs": 4, "target": {"arch": "xtensa"}}}"#;
        let j = judge(Format::Json, Some(cfg), added, &Thresholds::default()).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Major, "Added section 'build.target'"));
        let retyped = cfg.replace("\"jobs\": 4", "\"jobs\": \"4\"");
        let j = judge(Format::Json, Some(cfg), &retyped, &Thresholds::default()).unwrap();
        assert_eq!((j.bump, j.message.as_str()), (Bump::Major, "Changed the type of 'build.jobs'"));
        let removed = r#"{"board": "esp32-s3"}"#;
        assert_eq!(
            judge(Format::Json, Some(cfg), removed, &Thresholds::default()).unwrap().message,
            "Removed section 'build'"
        );
        let reordered = r#"{"build": {"jobs": 4, "flags": ["-O2"]}, "board": "esp32-s3"}"#;
        assert_eq!(judge(Format::Json, Some(cfg), reordered, &Thresholds::default()), None, "key order is no change");
    }

    #[test]
    fn long_lists_are_summed_up() {
        let old = "# T\n".to_string();
        let new: String = (1..=7).fold(old.clone(), |s, i| format!("{s}## S{i}\nx\n"));
        assert_eq!(md(&old, &new).unwrap().message, "Added sections 'S1', 'S2', 'S3', 'S4', 'S5' and 2 more");
    }
}
