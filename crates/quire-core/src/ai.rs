//! The AI interactions log: one entry per call to a provider, whatever made it (the
//! generate endpoint or a pipeline component).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{Error, Limits, Result};

/// One call to an AI provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Interaction {
    /// `ai_` followed by a ULID; ids sort by time.
    pub id: String,
    pub workspace_id: String,
    /// The user or key that asked, or `system`.
    pub actor: String,
    /// The pipeline context it ran for, when a component made it.
    pub context_id: Option<String>,
    /// `text`, `image` or `embedding`.
    pub kind: String,
    /// The prompt template and its version, when one was used.
    pub template: Option<String>,
    pub template_version: Option<i32>,
    pub provider: String,
    /// The model that answered (or was asked, when none answered).
    pub model: String,
    /// Temperature, max tokens, size, seed, … as sent.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The prompt as sent (the system and user messages, or the image prompt), cut at 64 KiB.
    pub prompt: String,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    /// From the call to its end.
    pub latency_ms: i64,
    /// From the call to the first chunk of text.
    pub first_chunk_ms: Option<i64>,
    /// `ok`, `failed`, `cancelled` (the caller went away) or `gate_failed`.
    pub status: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// A version of a workspace's own prompt template. `body` is the template as the AI layer
/// defines and checks it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredPrompt {
    pub workspace_id: String,
    pub name: String,
    pub version: i32,
    #[schema(value_type = Object)]
    pub body: Value,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// The most prompt template versions a workspace keeps, all names together.
pub const MAX_PROMPT_VERSIONS: i64 = 1000;

/// The most of a prompt an entry keeps.
pub const MAX_LOGGED_PROMPT: usize = 64 * 1024;

/// A validated request for a page of a workspace's interactions, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InteractionQuery {
    /// The workspace, by id or slug.
    pub workspace: String,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub context_id: Option<String>,
    pub limit: u32,
    /// Strictly older than this id (the previous page's `next_cursor`).
    pub before: Option<String>,
}

impl InteractionQuery {
    pub fn new(
        workspace: String,
        status: Option<String>,
        kind: Option<String>,
        context_id: Option<String>,
        limit: Option<u32>,
        cursor: Option<String>,
        limits: &Limits,
    ) -> Result<InteractionQuery> {
        let limit = limit.unwrap_or(limits.default_page_size);
        if limit == 0 || limit > limits.max_page_size {
            return Err(Error::invalid("limit", format!("must be 1 to {}", limits.max_page_size)));
        }
        if let Some(s) = status.as_deref().filter(|s| !["ok", "failed", "cancelled", "gate_failed"].contains(s)) {
            return Err(Error::invalid("status", format!("'{s}' is not ok, failed, cancelled or gate_failed")));
        }
        if let Some(k) = kind.as_deref().filter(|k| !["text", "image", "embedding"].contains(k)) {
            return Err(Error::invalid("kind", format!("'{k}' is not text, image or embedding")));
        }
        if let Some(c) = cursor.as_deref().filter(|c| !c.starts_with("ai_") || c.len() != 29) {
            return Err(Error::BadCursor(format!("'{c}' is not an interactions cursor")));
        }
        Ok(InteractionQuery { workspace, status, kind, context_id, limit, before: cursor })
    }
}
