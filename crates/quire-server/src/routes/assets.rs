//! A workspace's images: upload, list, describe, and the files themselves — by bearer token
//! under the API, or by signed URL under `/files/` (no token, so an `<img>` tag or a CDN can
//! fetch them; cached for good, since a file's URL names its content).

use std::ops::Range;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use quire_app::assets::{Delivery, UploadError, Variant};
use quire_core::Asset;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Actor;

/// An asset with URLs for its files that work without a token until `urls_expire_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetView {
    #[serde(flatten)]
    pub asset: Asset,
    pub urls: AssetUrls,
    /// When the URLs stop working (seconds since the epoch): ask again for new ones.
    pub urls_expire_at: i64,
}

/// Signed URLs of an asset's files; the thumbnails' once they are made.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetUrls {
    pub original: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub small: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub large: Option<String>,
}

fn view(app: &App, asset: Asset) -> AssetView {
    let assets = app.assets();
    let (original, expires) = assets.signed_url(&asset.workspace_id, &asset.sha256, Variant::Original);
    let thumb = |v: Variant| {
        asset
            .thumbnails
            .iter()
            .any(|t| t.variant == v.as_str())
            .then(|| assets.signed_url(&asset.workspace_id, &asset.sha256, v).0)
    };
    let urls = AssetUrls { original, small: thumb(Variant::Small), large: thumb(Variant::Large) };
    AssetView { asset, urls, urls_expire_at: expires }
}

pub(crate) fn check_sha(sha256: &str) -> ApiResult<()> {
    if quire_assets::objects::is_sha256(sha256) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "sha256: an asset is named by 64 lower-case hex digits",
        ))
    }
}

fn variant(s: &str) -> ApiResult<Variant> {
    Variant::parse(s).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no file '{s}': use original, small or large"))
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name, kept for people (the type is read from the bytes, never the name).
    pub name: Option<String>,
}

/// Upload an image (the raw bytes as the body: PNG, JPEG, WebP or GIF). Its type is read from
/// the bytes; it is decoded before it is kept, and its metadata (EXIF with GPS, XMP, comments)
/// is removed. Thumbnails follow from a pipeline. The same image again answers 200 with the
/// asset already kept.
#[utoipa::path(post, operation_id = "upload_asset", path = "/api/v1/workspaces/{ws}/assets", tag = "assets",
    params(("ws" = String, Path, description = "Workspace id or slug"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The image's bytes"),
    responses((status = 201, body = AssetView), (status = 200, body = AssetView, description = "Already kept"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "Larger than the upload limit, or too many pixels"),
        (status = 415, body = ErrorBody, description = "Not a PNG, JPEG, WebP or GIF (SVG is refused)"),
        (status = 422, body = ErrorBody, description = "Unreadable (truncated, damaged), or the workspace's quota is full")))]
pub async fn upload(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Response> {
    let max = app.assets().config().limits.max_bytes;
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("an image may be at most {max} bytes: make it smaller or export it at a lower quality"),
            ));
        }
    };
    let (asset, fresh) =
        app.assets().upload(&who, &ws, q.name.as_deref().unwrap_or(""), bytes).await.map_err(|e| match e {
            UploadError::Rejected(r) => {
                let status = match r.code() {
                    "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
                    "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError { field: Some("file".into()), ..ApiError::new(status, r.code(), r.to_string()) }
            }
            UploadError::Other(e) => e.into(),
        })?;
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("/api/v1/workspaces/{}/assets/{}", asset.workspace_id, asset.sha256);
    Ok((status, [(header::LOCATION, location)], Json(view(&app, asset))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Assets per page, 1 to 200 [default: 50].
    pub limit: Option<u32>,
}

/// A page of a workspace's images, and what they take of its quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetPage {
    pub items: Vec<AssetView>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
    pub used_bytes: i64,
    pub quota_bytes: i64,
}

/// List a workspace's images, newest first.
#[utoipa::path(get, operation_id = "list_assets", path = "/api/v1/workspaces/{ws}/assets", tag = "assets",
    params(("ws" = String, Path, description = "Workspace id or slug"), ListQuery),
    responses((status = 200, body = AssetPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AssetPage>> {
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            let parsed = c.split_once('.').and_then(|(at, sha)| Some((at.parse::<i64>().ok()?, sha.to_string())));
            Some(parsed.filter(|(_, sha)| quire_assets::objects::is_sha256(sha)).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", "cursor: use the `next` of the previous page")
            })?)
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let (items, used) = app.assets().list(&who, &ws, before, limit).await?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|a| format!("{}.{}", quire_core::ms_of(&a.created_at), a.sha256)))
        .flatten();
    let quota = app.assets().config().quota_bytes;
    Ok(Json(AssetPage {
        items: items.into_iter().map(|a| view(&app, a)).collect(),
        next,
        used_bytes: used,
        quota_bytes: quota,
    }))
}

/// One image: its size, thumbnails and signed URLs.
#[utoipa::path(get, operation_id = "get_asset", path = "/api/v1/workspaces/{ws}/assets/{sha256}", tag = "assets",
    params(("ws" = String, Path, description = "Workspace id or slug"), ("sha256" = String, Path, description = "The asset's SHA-256")),
    responses((status = 200, body = AssetView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, sha256)): Path<(String, String)>,
) -> ApiResult<Json<AssetView>> {
    check_sha(&sha256)?;
    Ok(Json(view(&app, app.assets().get(&who, &ws, &sha256).await?)))
}

/// One file of an image (`original`, `small` or `large`), for members with a token;
/// `Range` and `If-None-Match` are honoured.
#[utoipa::path(get, operation_id = "asset_file", path = "/api/v1/workspaces/{ws}/assets/{sha256}/{variant}", tag = "assets",
    params(("ws" = String, Path, description = "Workspace id or slug"), ("sha256" = String, Path, description = "The asset's SHA-256"),
        ("variant" = String, Path, description = "original, small or large")),
    responses((status = 200, description = "The file"), (status = 206, description = "Part of it"), (status = 304, description = "Not modified"),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn file(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, sha256, v)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_sha(&sha256)?;
    let v = variant(&v)?;
    let (ws, _) = app.store().role_in_workspace(&who, &ws).await?;
    deliver(&headers, "private, max-age=31536000, immutable", app.assets().open(&ws.id, &sha256, v).await?).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Signed {
    /// Seconds since the epoch when the URL stops working.
    pub expires: i64,
    /// The URL's signature.
    pub sig: String,
}

/// One file of an image by signed URL (from an asset's `urls`): no token needed until it
/// expires; cached for good by browsers and CDNs.
#[utoipa::path(get, operation_id = "signed_asset_file", path = "/files/{ws}/{sha256}/{variant}", tag = "assets",
    params(("ws" = String, Path, description = "Workspace id"), ("sha256" = String, Path, description = "The asset's SHA-256"),
        ("variant" = String, Path, description = "original, small or large"), Signed),
    responses((status = 200, description = "The file"), (status = 206, description = "Part of it"), (status = 304, description = "Not modified"),
        (status = 403, body = ErrorBody, description = "Expired or not signed for this file"), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody)))]
pub async fn signed_file(
    State(app): State<App>,
    Path((ws, sha256, v)): Path<(String, String, String)>,
    Query(s): Query<Signed>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_sha(&sha256)?;
    let v = variant(&v)?;
    let whole = app.assets().open_signed(&ws, &sha256, v, s.expires, &s.sig).await?;
    deliver(&headers, "public, max-age=31536000, immutable", whole).await
}

/// A single `bytes=` range of a file of `size` bytes (end exclusive), or `None` for the whole
/// file (no header, or several ranges, which are answered whole as RFC 9110 allows);
/// `Err(())` for a range that cannot be satisfied.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let n: u64 = end.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let s: u64 = start.parse().map_err(|_| ())?;
        let e = if end.is_empty() { size } else { end.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(size) };
        if s >= size || e <= s {
            return Err(());
        }
        s..e
    };
    Ok(Some(range))
}

/// A file as HTTP sends it: its ETag (the content's hash), `If-None-Match`, one `Range`.
/// Images are read whole (at most the upload limit) and a range is cut from them.
/// Sends a file, whole or the range asked for, streamed as it is read; 304 for a copy the
/// client has (nothing is read then).
pub(crate) async fn deliver(headers: &HeaderMap, cache: &'static str, whole: Delivery) -> ApiResult<Response> {
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(String::from);
    let etag = format!("\"{}\"", whole.sha256);
    let common = |b: axum::http::response::Builder| {
        b.header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, cache)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_SECURITY_POLICY, "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
    };
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if matches.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return Ok(common(Response::builder().status(StatusCode::NOT_MODIFIED)).body(Body::empty()).unwrap());
    }
    let size = whole.size;
    let media_type =
        HeaderValue::from_str(&whole.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let range = match range_header.as_deref().map(|r| parse_range(r, size)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(r))) => Some(r),
        Some(Err(())) => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range asked for is outside the file's {size} bytes"),
            )
            .into_response();
            e.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).unwrap());
            return Ok(e);
        }
    };
    let response = match &range {
        None => common(Response::builder().status(StatusCode::OK)).header(header::CONTENT_LENGTH, size),
        Some(r) => common(Response::builder().status(StatusCode::PARTIAL_CONTENT))
            .header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end - 1))
            .header(header::CONTENT_LENGTH, r.end - r.start),
    };
    let chunks = whole.read(range.unwrap_or(0..size)).await?;
    Ok(response.header(header::CONTENT_TYPE, media_type).body(Body::from_stream(chunks)).unwrap())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some(0..1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(parse_range("bytes=0-1,5-9", 1000), Ok(None), "several ranges: the whole file");
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-2", 1000), Err(()));
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
        assert_eq!(parse_range("bytes=a-b", 1000), Err(()));
    }
}
