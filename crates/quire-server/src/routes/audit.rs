//! `GET /api/v1/audit`: the audit trail for instance administrators, as pages or an export.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_core::{AuditEntry, AuditQuery, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json, Query};

/// The most rows one export returns.
const EXPORT_MAX: u32 = 100_000;

/// Query parameters of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// A user or API key id, `anonymous` or `system`.
    actor: Option<String>,
    /// Actions starting with this, e.g. `DELETE` or `POST /api/v1/auth`.
    action: Option<String>,
    /// Resources (paths) starting with this.
    resource: Option<String>,
    /// From this time (RFC 3339), inclusive.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    since: Option<time::OffsetDateTime>,
    /// Before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    until: Option<time::OffsetDateTime>,
    /// Page size (default 50, at most 200); for exports, rows (default 10000, at most 100000).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `json` (pages, the default), `jsonl` or `csv` (exports).
    format: Option<String>,
}

/// The audit trail, newest first (instance administrators). `format=jsonl` or `csv` exports
/// every matching entry (up to `limit`) as a download.
#[utoipa::path(get, path = "/api/v1/audit", tag = "operations", params(AuditParams),
    responses((status = 200, body = Page<AuditEntry>, description = "A page, or with format=jsonl|csv an export"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_audit(
    State(app): State<App>,
    Actor(who): Actor,
    Query(p): Query<AuditParams>,
) -> ApiResult<Response> {
    let store = app.store();
    let format = p.format.as_deref().unwrap_or("json");
    let export = match format {
        "json" => false,
        "jsonl" | "csv" => true,
        other => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("unknown format '{other}'; use json, jsonl or csv"),
            ));
        }
    };
    let (limit, max) =
        if export { (Some(p.limit.unwrap_or(10_000)), EXPORT_MAX) } else { (p.limit, store.limits().max_page_size) };
    let query = AuditQuery::new(
        p.actor,
        p.action,
        p.resource,
        p.since,
        p.until,
        limit,
        p.cursor.as_deref(),
        max,
        store.limits(),
    )?;
    if !export {
        return Ok(Json(store.list_audit(&who, &query).await?).into_response());
    }
    // Read the export in pages of a thousand.
    let mut rows: Vec<AuditEntry> = Vec::new();
    let mut page_query = AuditQuery { limit: query.limit.min(1000), ..query.clone() };
    loop {
        let page = store.list_audit(&who, &page_query).await?;
        rows.extend(page.items);
        match (page.next_cursor, rows.last()) {
            (Some(_), Some(last)) if rows.len() < query.limit as usize => {
                page_query.before = Some(((last.at.unix_timestamp_nanos() / 1_000_000) as i64, last.id));
                page_query.limit = (query.limit as usize - rows.len()).min(1000) as u32;
            }
            _ => break,
        }
    }
    let (body, content_type, ext) = if format == "jsonl" {
        let mut out = String::new();
        for row in &rows {
            out.push_str(&serde_json::to_string(row).expect("entries serialise"));
            out.push('\n');
        }
        (out.into_bytes(), "application/x-ndjson", "jsonl")
    } else {
        (
            to_csv(&rows).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?,
            "text/csv; charset=utf-8",
            "csv",
        )
    };
    let mut res = body.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"quire-audit.{ext}\"");
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII"));
    Ok(res)
}

/// A cell a spreadsheet shows as text: one that begins with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be run as a formula (a user agent or a path is the caller's to
/// write), so it gets a leading `'`, as OWASP advises for CSV exports.
fn inert(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell.to_string() }
}

fn to_csv(rows: &[AuditEntry]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| e.to_string();
    w.write_record([
        "id",
        "at",
        "actor",
        "action",
        "resource",
        "status",
        "ip",
        "user_agent",
        "request_id",
        "summary",
        "duration_ms",
    ])
    .map_err(fail)?;
    for r in rows {
        let at = r.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        w.write_record([
            r.id.to_string(),
            at,
            inert(&r.actor),
            inert(&r.action),
            inert(&r.resource),
            r.status.to_string(),
            inert(r.ip.as_deref().unwrap_or_default()),
            inert(r.user_agent.as_deref().unwrap_or_default()),
            inert(r.request_id.as_deref().unwrap_or_default()),
            inert(&r.summary.to_string()),
            r.duration_ms.to_string(),
        ])
        .map_err(fail)?;
    }
    w.into_inner().map_err(|e| e.to_string())
}
