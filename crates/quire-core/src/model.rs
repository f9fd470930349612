//! Workspaces and documents, the inputs that create and change them, and their validation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{Error, Limits, Result};

/// What a document is. Later layers attach behaviour per kind (PRD drafting, moodboard
/// generation, board builds); here it names the kind and its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum DocumentKind {
    #[serde(rename = "prd")]
    Prd,
    #[serde(rename = "moodboard")]
    Moodboard,
    #[serde(rename = "board-config")]
    BoardConfig,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 3] = [DocumentKind::Prd, DocumentKind::Moodboard, DocumentKind::BoardConfig];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Prd => "prd",
            DocumentKind::Moodboard => "moodboard",
            DocumentKind::BoardConfig => "board-config",
        }
    }

    /// The outbox event name for `action` on a document of this kind, e.g. `prd.created`.
    pub fn event_name(self, action: &str) -> String {
        format!("{}.{action}", self.as_str())
    }
}

impl std::str::FromStr for DocumentKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DocumentKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::invalid("kind", format!("unknown kind '{s}'; expected prd, moodboard or board-config"))
        })
    }
}

impl std::fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workspace: the unit of membership that documents live in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    /// `ws_` followed by a ULID.
    pub id: String,
    /// Unique, URL-safe name; `{ws}` in paths accepts the id or the slug.
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner_id: Option<String>,
    /// Documents ever created here and not purged (deleted ones included).
    pub document_count: i64,
    /// Increases by one on every change; the ETag is derived from it.
    pub revision: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<time::OffsetDateTime>,
}

/// A document: a PRD, a moodboard or a board configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Document {
    /// `doc_` followed by a ULID.
    pub id: String,
    pub workspace_id: String,
    pub kind: DocumentKind,
    pub title: String,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub owner_id: Option<String>,
    /// Increases by one on every change; the ETag is derived from it.
    pub revision: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<time::OffsetDateTime>,
}

/// The body of `POST /api/v1/workspaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    pub name: String,
    /// Lowercase letters, digits and hyphens; derived from the name when absent.
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The body of `PATCH /api/v1/workspaces/{ws}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The body of `POST /api/v1/workspaces/{ws}/documents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    pub kind: DocumentKind,
    pub title: String,
    /// A JSON object; `{}` when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// The body of `PATCH /api/v1/documents/{id}`. `metadata` is a JSON merge patch (RFC 7386):
/// keys set to `null` are removed, objects merge recursively, anything else replaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

fn check_len(field: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(Error::invalid(field, format!("is {n} characters long; the limit is {max}")));
    }
    Ok(())
}

fn check_required(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    check_len(field, value, max)
}

fn check_slug(slug: &str) -> Result<()> {
    let ok = !slug.is_empty()
        && slug.len() <= 64
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(Error::invalid(
            "slug",
            "must be 1 to 64 lowercase letters, digits or inner hyphens, e.g. 'product-team'",
        ));
    }
    if slug.starts_with("ws_") || slug.contains('_') {
        return Err(Error::invalid("slug", "must not look like a workspace id"));
    }
    Ok(())
}

/// A slug made from a name: lowercase ASCII letters and digits, other runs become one hyphen.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() { "workspace".to_string() } else { trimmed.to_string() }
}

fn check_metadata(value: &Value, limits: &Limits) -> Result<()> {
    if !value.is_object() {
        return Err(Error::invalid("metadata", "must be a JSON object"));
    }
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > limits.max_metadata_bytes {
        return Err(Error::invalid(
            "metadata",
            format!("is {size} bytes of JSON; the limit is {}", limits.max_metadata_bytes),
        ));
    }
    Ok(())
}

impl NewWorkspace {
    /// Checks every field against `limits`; trims the name.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        check_required("name", &self.name, limits.max_name_chars)?;
        if let Some(slug) = &self.slug {
            check_slug(slug)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, limits.max_description_chars)?;
        }
        Ok(())
    }

    /// The slug to store: the given one, or one derived from the name.
    pub fn slug_or_derived(&self) -> String {
        self.slug.clone().unwrap_or_else(|| slugify(&self.name))
    }
}

impl WorkspacePatch {
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        if let Some(name) = &self.name {
            check_required("name", name, limits.max_name_chars)?;
        }
        if let Some(slug) = &self.slug {
            check_slug(slug)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, limits.max_description_chars)?;
        }
        Ok(())
    }

    pub fn changed_fields(&self, current: &Workspace) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.name.as_ref().is_some_and(|v| v.trim() != current.name) {
            changed.push("name");
        }
        if self.slug.as_ref().is_some_and(|v| *v != current.slug) {
            changed.push("slug");
        }
        if self.description.as_ref().is_some_and(|v| *v != current.description) {
            changed.push("description");
        }
        changed
    }
}

impl NewDocument {
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        check_required("title", &self.title, limits.max_title_chars)?;
        if let Some(m) = &self.metadata {
            check_metadata(m, limits)?;
        }
        Ok(())
    }
}

impl DocumentPatch {
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        if let Some(title) = &self.title {
            check_required("title", title, limits.max_title_chars)?;
        }
        if let Some(m) = &self.metadata
            && !m.is_object()
        {
            return Err(Error::invalid("metadata", "must be a JSON object (a merge patch)"));
        }
        Ok(())
    }

    /// The title and metadata after applying this patch to `current`, with the names of the
    /// fields that actually changed. The merged metadata is checked against `limits`.
    pub fn apply(&self, current: &Document, limits: &Limits) -> Result<(String, Value, Vec<&'static str>)> {
        let mut changed = Vec::new();
        let title = match &self.title {
            Some(t) if t.trim() != current.title => {
                changed.push("title");
                t.trim().to_string()
            }
            _ => current.title.clone(),
        };
        let metadata = match &self.metadata {
            Some(patch) => {
                let mut merged = current.metadata.clone();
                merge_patch(&mut merged, patch);
                check_metadata(&merged, limits)?;
                if merged != current.metadata {
                    changed.push("metadata");
                }
                merged
            }
            None => current.metadata.clone(),
        };
        Ok((title, metadata, changed))
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target` in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { unreachable!("target was made an object above") };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":{"b":"c"}}), json!({"a":{"b":"d","c":null}}), json!({"a":{"b":"d"}})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn kinds_round_trip_and_reject_unknown() {
        for kind in DocumentKind::ALL {
            assert_eq!(kind.as_str().parse::<DocumentKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert!(matches!("wiki".parse::<DocumentKind>(), Err(Error::Invalid { .. })));
    }

    #[test]
    fn slugs_are_derived_and_checked() {
        assert_eq!(slugify("  Product Team: Q3 / Roadmap "), "product-team-q3-roadmap");
        assert_eq!(slugify("日本"), "workspace");
        let limits = Limits::default();
        for bad in ["", "Upper", "-lead", "trail-", "has space", "ws_01abc", "a_b"] {
            let w = NewWorkspace { name: "x".into(), slug: Some(bad.into()), description: None };
            assert!(w.validate(&limits).is_err(), "slug {bad:?} accepted");
        }
        let w = NewWorkspace { name: "x".into(), slug: Some("team-7".into()), description: None };
        assert!(w.validate(&limits).is_ok());
    }

    #[test]
    fn surrounding_spaces_are_not_a_change() {
        let doc = Document {
            id: "doc_1".into(),
            workspace_id: "ws_1".into(),
            kind: DocumentKind::Prd,
            title: "Spec".into(),
            metadata: json!({"a": 1}),
            owner_id: None,
            revision: 1,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            deleted_at: None,
        };
        let patch = DocumentPatch { title: Some("  Spec ".into()), metadata: Some(json!({"a": 1})) };
        let (title, _, changed) = patch.apply(&doc, &Limits::default()).unwrap();
        assert_eq!((title.as_str(), changed.len()), ("Spec", 0));
        let patch = DocumentPatch { title: Some(" Spec 2 ".into()), metadata: None };
        assert_eq!(patch.apply(&doc, &Limits::default()).unwrap().2, ["title"]);
    }

    #[test]
    fn validation_enforces_limits() {
        let limits = Limits { max_title_chars: 5, max_metadata_bytes: 10, ..Limits::default() };
        let doc = |title: &str, metadata| NewDocument { kind: DocumentKind::Prd, title: title.into(), metadata };
        assert!(doc("12345", None).validate(&limits).is_ok());
        assert!(doc("éééééé", None).validate(&limits).is_err());
        assert!(doc("   ", None).validate(&limits).is_err());
        assert!(doc("a", Some(json!([1]))).validate(&limits).is_err());
        assert!(doc("a", Some(json!({"k":"0123456789"}))).validate(&limits).is_err());
    }
}
