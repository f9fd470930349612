//! A workspace's blobs (the images its pipelines generated), by content hash.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Actor;

/// A blob's bytes, for the workspace's members. Its content never changes, so it may be
/// cached for good; `If-None-Match` with its ETag answers 304.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/blobs/{sha256}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug"),
        ("sha256" = String, Path, description = "The blob's SHA-256, 64 lower-case hex digits")),
    responses((status = 200, description = "The bytes, with their media type"), (status = 304, description = "Not modified"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_blob(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, sha256)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "sha256: a blob is named by 64 lower-case hex digits",
        ));
    }
    let (ws, _) = app.store().role_in_workspace(&who, &ws).await?;
    let blob = app.store().get_blob(&ws.id, &sha256).await?;
    let etag = format!("\"{sha256}\"");
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if matches.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)], [cache]).into_response());
    }
    let media_type =
        HeaderValue::from_str(&blob.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(([(header::CONTENT_TYPE, media_type), cache], [(header::ETAG, etag)], blob.bytes).into_response())
}
