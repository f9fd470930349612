//! What a board configuration (`board-config`) may hold before any schema is asked: the
//! flat `KEY=value` settings Armbian's `./compile.sh` takes, one CRDT entry per field
//! (`docs/crdt-layout.md`). Whether the values make a buildable image is the schema's
//! business (`quire_armbian::Checker`), answered beside the configuration, not by refusing
//! the write: a configuration is saved while people are still filling it in.
//!
//! Beside the settings, the entry [`FILES`] (lower case, so no setting can take its name)
//! lists the files that go with the configuration into Armbian's `userpatches/`
//! (`customize-image.sh`, `overlay/…`, kernel config fragments): one entry per path, its
//! bytes in the asset store by SHA-256.

use quire_core::{Error, Result};
use serde_json::Value;

/// Most fields one configuration holds.
pub const MAX_FIELDS: usize = 200;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 4_096;
/// Longest field name.
pub const MAX_KEY_CHARS: usize = 64;

/// The entry holding the configuration's files.
pub const FILES: &str = "files";
/// Most files one configuration holds.
pub const MAX_FILES: usize = 200;
/// Largest file, in bytes.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Longest file path, in bytes.
pub const MAX_PATH_BYTES: usize = 240;
/// Deepest file path, in folders.
pub const MAX_PATH_DEPTH: usize = 16;

/// One file of a configuration, as its entry in [`FILES`] holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// The SHA-256 of its bytes in the asset store.
    pub sha256: String,
    pub size: u64,
    /// `755` for a program (a script Armbian runs), `644` otherwise.
    pub mode: String,
    /// Whether the bytes are UTF-8 text (editable in the browser).
    pub text: bool,
    /// Who wrote this version (a user id, or `system`).
    #[serde(default)]
    pub updated_by: String,
    /// Their name, as people read it.
    #[serde(default)]
    pub updated_by_name: String,
    /// When, in milliseconds since the epoch.
    #[serde(default)]
    pub updated_at: i64,
}

/// The settings alone: the configuration without its files (what the schema checks and
/// `./compile.sh` takes).
pub fn settings(content: &Value) -> Value {
    match content {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(k, _)| *k != FILES).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        other => other.clone(),
    }
}

/// The configuration's files by path, in path order (entries that do not read as files are
/// left out; writes never make them).
pub fn files(content: &Value) -> Vec<(String, FileEntry)> {
    let mut out: Vec<(String, FileEntry)> = content
        .get(FILES)
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(p, v)| serde_json::from_value(v.clone()).ok().map(|f| (p.clone(), f))).collect())
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Checks a file's path inside `userpatches/`: relative, `/` between folders, each part
/// letters, digits and `._+-@=,~` (no `.` or `..` parts, no spaces), not Quire's own
/// `.quire…` names at the top. Answers why not, for the person who typed it.
pub fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("a file needs a path, as customize-image.sh or overlay/etc/motd".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("a path is at most {MAX_PATH_BYTES} characters"));
    }
    if path.starts_with('/') {
        return Err(format!("'{path}' is absolute: paths are inside userpatches/, as overlay/etc/motd"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > MAX_PATH_DEPTH + 1 {
        return Err(format!("'{path}' is deeper than {MAX_PATH_DEPTH} folders"));
    }
    for part in &parts {
        if part.is_empty() {
            return Err(format!("'{path}' has an empty folder name (//, or a / at the end)"));
        }
        if *part == "." || *part == ".." {
            return Err(format!("'{path}' may not use . or .. : name the folders inside userpatches/"));
        }
        if let Some(c) = part.chars().find(|c| !(c.is_ascii_alphanumeric() || "._+-@=,~".contains(*c))) {
            return Err(format!(
                "'{path}' has '{}': paths take letters, digits and ._+-@=,~ (no spaces)",
                c.escape_default()
            ));
        }
    }
    if parts[0].starts_with(".quire") {
        return Err(format!("'{path}': names starting .quire are Quire's own in userpatches/"));
    }
    Ok(())
}

fn check_files(files: &Value) -> Result<()> {
    let Value::Object(map) = files else {
        return Err(Error::invalid(FILES, "files is an object of path: file"));
    };
    if map.len() > MAX_FILES {
        return Err(Error::invalid(FILES, format!("a configuration holds at most {MAX_FILES} files")));
    }
    for (path, entry) in map {
        let field = format!("{FILES}.{path}");
        check_path(path).map_err(|m| Error::invalid(field.as_str(), m))?;
        let f: FileEntry = serde_json::from_value(entry.clone())
            .map_err(|e| Error::invalid(field.as_str(), format!("a file is {{sha256, size, mode, text}}: {e}")))?;
        if !crate::board::is_sha256(&f.sha256) {
            return Err(Error::invalid(format!("{field}.sha256"), "a file is named by 64 lower-case hex digits"));
        }
        if f.size > MAX_FILE_BYTES {
            return Err(Error::invalid(format!("{field}.size"), format!("a file is at most {MAX_FILE_BYTES} bytes")));
        }
        if f.mode != "644" && f.mode != "755" {
            return Err(Error::invalid(format!("{field}.mode"), "mode is 644, or 755 for a program"));
        }
    }
    // A path that is also another's folder cannot be laid out.
    for path in map.keys() {
        let mut prefix = String::new();
        for part in path.split('/').collect::<Vec<_>>().iter().rev().skip(1).rev() {
            prefix.push_str(part);
            if map.contains_key(&prefix) {
                return Err(Error::invalid(
                    format!("{FILES}.{path}"),
                    format!("'{prefix}' is a file, so it cannot also be a folder of '{path}'"),
                ));
            }
            prefix.push('/');
        }
    }
    Ok(())
}

/// Whether `key` is a name Armbian reads as a variable: capitals, digits and `_`, not
/// starting with a digit.
pub fn is_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && key.len() <= MAX_KEY_CHARS
}

/// Checks a configuration's shape; the error names the field.
pub fn validate(content: &Value) -> Result<()> {
    let Value::Object(fields) = content else {
        return Err(Error::invalid("content", "a board configuration is a JSON object of KEY: value settings"));
    };
    if fields.len() > MAX_FIELDS {
        return Err(Error::invalid("content", format!("a configuration holds at most {MAX_FIELDS} settings")));
    }
    for (key, value) in fields {
        if key == FILES {
            check_files(value)?;
            continue;
        }
        if !is_key(key) {
            return Err(Error::invalid(
                key.as_str(),
                format!(
                    "'{key}' is not a setting name: capitals, digits and _ (as BOARD or FIXED_IMAGE_SIZE), at most {MAX_KEY_CHARS}"
                ),
            ));
        }
        match value {
            Value::String(s) if s.chars().count() > MAX_VALUE_CHARS => {
                return Err(Error::invalid(key.as_str(), format!("a value is at most {MAX_VALUE_CHARS} characters")));
            }
            Value::String(s) if s.chars().any(char::is_control) => {
                return Err(Error::invalid(key.as_str(), "a value is one line, without control characters"));
            }
            Value::String(_) | Value::Bool(_) => {}
            Value::Number(n) if n.is_i64() || n.is_u64() => {}
            _ => {
                return Err(Error::invalid(key.as_str(), "a value is text, a whole number, true or false"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_flat_named_and_bounded() {
        validate(&json!({"BOARD": "rock-5b", "FIXED_IMAGE_SIZE": 7000, "EXPERT": true, "_X1": ""})).unwrap();
        let field = |v: Value| match validate(&v).unwrap_err() {
            Error::Invalid { field, .. } => field,
            e => panic!("{e}"),
        };
        assert_eq!(field(json!([1])), "content");
        assert_eq!(field(json!({"board": "x"})), "board");
        assert_eq!(field(json!({"1BOARD": "x"})), "1BOARD");
        assert_eq!(field(json!({"BOARD": {"id": "x"}})), "BOARD");
        assert_eq!(field(json!({"BOARD": 1.5})), "BOARD");
        assert_eq!(field(json!({"BOARD": "a\nb"})), "BOARD");
        assert_eq!(field(json!({"BOARD": "x".repeat(MAX_VALUE_CHARS + 1)})), "BOARD");
        let many: serde_json::Map<String, Value> = (0..=MAX_FIELDS).map(|i| (format!("K{i}"), json!("v"))).collect();
        assert_eq!(field(Value::Object(many)), "content");
        assert!(!is_key(&"K".repeat(MAX_KEY_CHARS + 1)));
    }

    fn file(sha: &str) -> Value {
        json!({"sha256": sha.repeat(64 / sha.len()), "size": 10, "mode": "755", "text": true})
    }

    #[test]
    fn files_are_named_inside_userpatches_and_bounded() {
        let ok = json!({"BOARD": "rock-5b", "files": {
            "customize-image.sh": file("a"), "overlay/etc/motd": file("b"), "overlay/root/.bashrc": file("c"),
            "linux-rockchip64-current.config": file("d")}});
        validate(&ok).unwrap();
        assert_eq!(settings(&ok), json!({"BOARD": "rock-5b"}));
        let listed: Vec<String> = files(&ok).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            listed,
            ["customize-image.sh", "linux-rockchip64-current.config", "overlay/etc/motd", "overlay/root/.bashrc"]
        );
        for bad in [
            "",
            "/etc/motd",
            "overlay//motd",
            "overlay/",
            "../x",
            "overlay/../../x",
            "a b",
            "ü",
            ".quire-files",
            "x/./y",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} was taken");
        }
        check_path("a/".repeat(MAX_PATH_DEPTH + 1).trim_end_matches('/')).unwrap();
        assert!(check_path("a/".repeat(MAX_PATH_DEPTH + 2).trim_end_matches('/')).is_err());
        assert!(check_path(&"a".repeat(MAX_PATH_BYTES + 1)).is_err());
        let field = |v: Value| match validate(&v).unwrap_err() {
            Error::Invalid { field, .. } => field,
            e => panic!("{e}"),
        };
        assert_eq!(field(json!({"files": []})), "files");
        assert_eq!(field(json!({"files": {"../x": file("a")}})), "files.../x");
        assert_eq!(
            field(json!({"files": {"x": {"sha256": "zz", "size": 1, "mode": "644", "text": false}}})),
            "files.x.sha256"
        );
        assert_eq!(
            field(json!({"files": {"x": {"sha256": "a".repeat(64), "size": 1, "mode": "777", "text": false}}})),
            "files.x.mode"
        );
        assert_eq!(
            field(
                json!({"files": {"x": {"sha256": "a".repeat(64), "size": MAX_FILE_BYTES + 1, "mode": "644", "text": false}}})
            ),
            "files.x.size"
        );
        assert_eq!(
            field(json!({"files": {"overlay": file("a"), "overlay/etc/motd": file("b")}})),
            "files.overlay/etc/motd"
        );
        let many: serde_json::Map<String, Value> = (0..=MAX_FILES).map(|i| (format!("f{i}"), file("a"))).collect();
        assert_eq!(field(json!({"files": many})), "files");
    }
}
