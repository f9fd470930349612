//! What a board configuration (`board-config`) may hold before any schema is asked: the
//! flat `KEY=value` settings Armbian's `./compile.sh` takes, one CRDT entry per field
//! (`docs/crdt-layout.md`). Whether the values make a buildable image is the schema's
//! business (`quire_armbian::Checker`), answered beside the configuration, not by refusing
//! the write: a configuration is saved while people are still filling it in.

use quire_core::{Error, Result};
use serde_json::Value;

/// Most fields one configuration holds.
pub const MAX_FIELDS: usize = 200;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 4_096;
/// Longest field name.
pub const MAX_KEY_CHARS: usize = 64;

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
}
