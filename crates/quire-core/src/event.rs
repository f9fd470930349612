//! Events: the transactional outbox. Every change to a workspace or document writes one event
//! in the same transaction as the change; consumers (the SSE stream now; notifications,
//! search indexing and webhooks later) read them in id order and resume from the last id.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One entry of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Strictly increasing in commit order; the SSE `id:` and the resume point.
    pub id: i64,
    /// `prd.created`, `moodboard.updated`, `workspace.deleted`, …
    pub name: String,
    pub workspace_id: Option<String>,
    pub document_id: Option<String>,
    /// The principal that caused it: a user id, `anonymous` or `system`.
    pub actor: String,
    /// The object after the change, and for updates the names of the changed fields.
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// Which events a consumer wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only events of this workspace.
    pub workspace_id: Option<String>,
    /// Only events whose name matches one of these: exact (`prd.created`) or a prefix
    /// ending in `.*` (`prd.*`). Empty means all.
    pub names: Vec<String>,
}

impl EventFilter {
    /// Whether `name` passes the name patterns.
    pub fn matches_name(&self, name: &str) -> bool {
        self.names.is_empty()
            || self.names.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            })
    }
}
