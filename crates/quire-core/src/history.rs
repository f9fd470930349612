//! Document versions: each significant change to a document, numbered `major.minor.patch`.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One version of a document, without its content.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DocumentVersion {
    pub document_id: String,
    pub workspace_id: String,
    /// 1 for a document's first version, then one more each time.
    pub seq: i64,
    /// `major.minor.patch`.
    pub version: String,
    /// `major`, `minor` or `patch` (`major` for the first).
    pub bump: String,
    /// What changed: "Added section 'Risks'; edited 'Goals'".
    pub message: String,
    /// Who made it: `[{id, name, email}]`.
    #[schema(value_type = Vec<Object>)]
    pub authors: Value,
    /// A name a user gave it ("Sent to legal").
    pub name: Option<String>,
    /// Its commit in the workspace's history repository, once committed.
    pub commit: Option<String>,
    /// `md` or `json`: how the content is written.
    pub format: String,
    /// The content's length in bytes.
    pub size: i64,
    /// Stored compressed (an older version past the archive limit); read and diffed alike.
    pub archived: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// A version to record; the store numbers its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub document_id: String,
    pub workspace_id: String,
    pub version: String,
    pub bump: String,
    pub message: String,
    pub authors: Value,
    pub format: String,
    pub content: String,
}
