//! The audit trail: what was done or refused, by whom, from where.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{Cursor, Error, Limits, Result, Sort, SortField};

/// One audited request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Assigned when stored; 0 before.
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// A user or key id, `anonymous` or `system`.
    pub actor: String,
    /// The method and route, e.g. `POST /api/v1/workspaces/{ws}/documents`.
    pub action: String,
    /// The path acted on, e.g. `/api/v1/workspaces/ws_…/documents`.
    pub resource: String,
    pub status: u16,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// What changed: the fields sent, the id created or changed, or the error code.
    #[schema(value_type = Object)]
    pub summary: Value,
    pub duration_ms: u64,
}

/// A validated request for a page of the audit trail, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// Matches actions that start with this, e.g. `DELETE` or `POST /api/v1/auth`.
    pub action: Option<String>,
    /// Matches resources that start with this.
    pub resource: Option<String>,
    /// From this time (milliseconds since the epoch), inclusive.
    pub since_ms: Option<i64>,
    /// Before this time, exclusive.
    pub until_ms: Option<i64>,
    pub limit: u32,
    /// Strictly older than this (at, id).
    pub before: Option<(i64, i64)>,
}

fn sort() -> Sort {
    Sort { field: SortField::CreatedAt, descending: true }
}

impl AuditQuery {
    /// `limit` up to `max` (exports ask for more than a page).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        actor: Option<String>,
        action: Option<String>,
        resource: Option<String>,
        since: Option<time::OffsetDateTime>,
        until: Option<time::OffsetDateTime>,
        limit: Option<u32>,
        cursor: Option<&str>,
        max: u32,
        limits: &Limits,
    ) -> Result<AuditQuery> {
        let limit = limit.unwrap_or(limits.default_page_size);
        if limit == 0 || limit > max {
            return Err(Error::invalid("limit", format!("must be 1 to {max}")));
        }
        let before = cursor
            .map(|c| {
                let c = Cursor::decode(c, &sort())?;
                let at = c.key.as_i64().unwrap_or_default();
                let id = c.id.parse::<i64>().map_err(|_| Error::BadCursor("not an audit cursor".into()))?;
                Ok::<_, Error>((at, id))
            })
            .transpose()?;
        let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        Ok(AuditQuery {
            actor: actor.filter(|s| !s.is_empty()),
            action: action.filter(|s| !s.is_empty()),
            resource: resource.filter(|s| !s.is_empty()),
            since_ms: since.map(ms),
            until_ms: until.map(ms),
            limit,
            before,
        })
    }

    /// The cursor for the page after `last`.
    pub fn cursor_after(last: &AuditEntry) -> String {
        let at = (last.at.unix_timestamp_nanos() / 1_000_000) as i64;
        Cursor { key: serde_json::json!(at), id: last.id.to_string() }.encode(&sort())
    }
}
