//! The files that go with a board configuration into Armbian's `userpatches/`: list, write
//! (the raw bytes as the body), read, rename or change mode, remove, and a file's versions.
//! A file's path is one URL segment, percent-encoded (`overlay%2Fetc%2Fmotd`), as GitLab's
//! files API takes it. A file's `ETag` is its SHA-256; writes take it back as `If-Match`
//! (409 when someone saved in between), and `If-None-Match: *` to create only.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use quire_app::config_files::{ConfigFile, Expect, FileVersion, Writer};
use quire_collab::build_config::{MAX_FILE_BYTES, MAX_FILES};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json, Query};
use crate::routes::collab::presence_user;

/// A file of a configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    /// Its path inside `userpatches/` (`overlay/etc/motd`).
    pub path: String,
    /// The SHA-256 of its bytes (its `ETag`).
    pub sha256: String,
    pub size: u64,
    /// `755` for a program, `644` otherwise.
    pub mode: String,
    /// Whether it is UTF-8 text (editable in the web app).
    pub text: bool,
    /// Who wrote this version: their id and name.
    pub updated_by: String,
    pub updated_by_name: String,
    /// When (milliseconds since the epoch).
    pub updated_at: i64,
}

impl From<ConfigFile> for FileView {
    fn from(f: ConfigFile) -> Self {
        let e = f.entry;
        FileView {
            path: f.path,
            sha256: e.sha256,
            size: e.size,
            mode: e.mode,
            text: e.text,
            updated_by: e.updated_by,
            updated_by_name: e.updated_by_name,
            updated_at: e.updated_at,
        }
    }
}

/// A configuration's files and the limits they live within.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub items: Vec<FileView>,
    /// Bytes all the files take.
    pub total_bytes: u64,
    pub max_files: usize,
    pub max_file_bytes: u64,
}

fn expectation(headers: &HeaderMap) -> ApiResult<Expect> {
    let value = |h: header::HeaderName| headers.get(h).map(|v| v.to_str().unwrap_or_default().trim().to_string());
    if let Some(v) = value(header::IF_MATCH) {
        if v == "*" {
            return Ok(Expect::Any);
        }
        let sha = v.trim_start_matches("W/").trim_matches('"');
        if !quire_assets::objects::is_sha256(sha) {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("If-Match {v} names no version of a file: send the file's ETag, its SHA-256 in quotes"),
            ));
        }
        return Ok(Expect::Sha(sha.to_string()));
    }
    Ok(match value(header::IF_NONE_MATCH) {
        Some(v) if v == "*" => Expect::Absent,
        _ => Expect::Any,
    })
}

/// The files that go with a board configuration into Armbian's `userpatches/`, in path order.
#[utoipa::path(get, operation_id = "list_config_files", path = "/api/v1/documents/{id}/files", tag = "board-configs",
    params(("id" = String, Path, description = "A board-config document")),
    responses((status = 200, body = FileList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let items: Vec<FileView> = app.config_files().list(&who, &id).await?.into_iter().map(FileView::from).collect();
    let total_bytes = items.iter().map(|f| f.size).sum();
    Ok(Json(FileList { items, total_bytes, max_files: MAX_FILES, max_file_bytes: MAX_FILE_BYTES }).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// `755` for a program, `644` otherwise; a new file ending `.sh` is `755`, a new version
    /// keeps the file's mode.
    pub mode: Option<String>,
}

/// Write a file (the raw bytes as the body, at most 32 MiB): a new file, or a new version of
/// one. `If-Match: "<sha256>"` writes only over that version (409 if someone saved in
/// between); `If-None-Match: *` only where there is no file. Editors.
#[utoipa::path(put, operation_id = "put_config_file", path = "/api/v1/documents/{id}/files/{path}", tag = "board-configs",
    params(("id" = String, Path, description = "A board-config document"),
        ("path" = String, Path, description = "The path inside userpatches/, percent-encoded (overlay%2Fetc%2Fmotd)"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version you read"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only if there is no such file"), PutQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses((status = 201, body = FileView), (status = 200, body = FileView, description = "A new version"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let expect = expectation(&headers)?;
    let bytes = match http_body_util::Limited::new(body, MAX_FILE_BYTES as usize).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "a configuration's file is at most {MAX_FILE_BYTES} bytes: install larger things from customize-image.sh"
                ),
            ));
        }
    };
    let by = Writer { who: &who, presence: presence_user(&app, &who).await };
    let (file, created) = app.config_files().put(by, &id, &path, bytes, q.mode.as_deref(), expect).await?;
    let etag = format!("\"{}\"", file.entry.sha256);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [(header::ETAG, etag)], Json(FileView::from(file))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// A version of the file by its SHA-256 (from its versions); the current one otherwise.
    pub sha256: Option<String>,
}

/// A file's bytes: `ETag` (its SHA-256), one `Range`, `If-None-Match`.
#[utoipa::path(get, operation_id = "read_config_file", path = "/api/v1/documents/{id}/files/{path}", tag = "board-configs",
    params(("id" = String, Path, description = "A board-config document"),
        ("path" = String, Path, description = "The path inside userpatches/, percent-encoded"), ReadQuery),
    responses((status = 200, description = "The file"), (status = 206, description = "The range asked for"),
        (status = 304, description = "The copy the client has"), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(sha) = &q.sha256 {
        crate::routes::assets::check_sha(sha)?;
    }
    let delivery = app.config_files().open(&who, &id, &path, q.sha256.as_deref()).await?;
    let cache = if q.sha256.is_some() { "private, max-age=31536000, immutable" } else { "private, no-cache" };
    let mut response = crate::routes::assets::deliver(&headers, cache, delivery).await?;
    let name = path.rsplit('/').next().unwrap_or(&path).replace(['"', '\\'], "_");
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// The body of `PATCH /api/v1/documents/{id}/files/{path}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeFile {
    /// A new path (a rename or a move to another folder); 409 if a file has it.
    pub path: Option<String>,
    /// `644` or `755`.
    pub mode: Option<String>,
}

/// Rename a file or change its mode. Takes `If-Match`. Editors.
#[utoipa::path(patch, operation_id = "change_config_file", path = "/api/v1/documents/{id}/files/{path}", tag = "board-configs",
    request_body = ChangeFile,
    params(("id" = String, Path, description = "A board-config document"),
        ("path" = String, Path, description = "The path inside userpatches/, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version you read")),
    responses((status = 200, body = FileView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<ChangeFile>,
) -> ApiResult<Response> {
    let expect = expectation(&headers)?;
    let by = Writer { who: &who, presence: presence_user(&app, &who).await };
    let file = app.config_files().update(by, &id, &path, body.path.as_deref(), body.mode.as_deref(), expect).await?;
    let etag = format!("\"{}\"", file.entry.sha256);
    Ok(([(header::ETAG, etag)], Json(FileView::from(file))).into_response())
}

/// Remove a file from the configuration (its versions stay in the history). Takes
/// `If-Match`. Editors.
#[utoipa::path(delete, operation_id = "delete_config_file", path = "/api/v1/documents/{id}/files/{path}", tag = "board-configs",
    params(("id" = String, Path, description = "A board-config document"),
        ("path" = String, Path, description = "The path inside userpatches/, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version you read")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expect = expectation(&headers)?;
    let by = Writer { who: &who, presence: presence_user(&app, &who).await };
    app.config_files().delete(by, &id, &path, expect).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One version of a file.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileVersionView {
    /// The configuration's version that holds it (`major.minor.patch`).
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    /// Who made that version: `[{id, name, email}]`.
    #[schema(value_type = Vec<Object>)]
    pub authors: serde_json::Value,
    /// The file as that version holds it; absent where the version removed it.
    pub file: Option<FileView>,
}

/// The versions of the configuration in which a file changed, newest first (the last 100
/// versions of the configuration looked through). Read an old one with `?sha256=`.
#[utoipa::path(get, operation_id = "config_file_versions", path = "/api/v1/documents/{id}/files/{path}/versions", tag = "board-configs",
    params(("id" = String, Path, description = "A board-config document"),
        ("path" = String, Path, description = "The path inside userpatches/, percent-encoded")),
    responses((status = 200, body = Vec<FileVersionView>), (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let versions: Vec<FileVersionView> = app
        .config_files()
        .history(&who, &id, &path)
        .await?
        .into_iter()
        .map(|v: FileVersion| FileVersionView {
            version: v.version,
            created_at: v.created_at,
            authors: v.authors,
            file: v.file.map(|entry| FileView::from(ConfigFile { path: path.clone(), entry })),
        })
        .collect();
    Ok(Json(versions).into_response())
}
