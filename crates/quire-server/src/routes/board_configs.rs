//! Board configurations: the schema of an Armbian image build (versioned, with an ETag),
//! checking a configuration against it, and a document's configuration checked as it is now.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::App;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Actor, Json};
use quire_app::board_configs::Validation;

/// The header naming the schema's version beside its ETag.
pub const SCHEMA_VERSION_HEADER: &str = "x-quire-schema-version";

/// The JSON Schema (draft-07) of an Armbian image build: boards, branches, releases and the
/// build switches, with the rules between them. Its ETag is its version; send it back in
/// `If-None-Match` to be answered 304 while it has not changed. The browser validates with
/// this very file (AJV); the server with the same (`POST /api/v1/board-configs/validate`).
#[utoipa::path(get, path = "/api/v1/board-configs/schema", tag = "board-configs",
    responses((status = 200, description = "The schema", content_type = "application/schema+json", body = Object),
              (status = 304, description = "The copy the client has is current"),
              (status = 401, body = ErrorBody)))]
pub async fn get_build_schema(State(app): State<App>, Actor(_who): Actor, headers: HeaderMap) -> ApiResult<Response> {
    let schema = app.board_configs().schema();
    let etag = format!("\"{}\"", schema.version);
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let status = if matches.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if status == StatusCode::OK { schema.body.clone() } else { bytes::Bytes::new() };
    Ok((
        status,
        [
            (header::ETAG, etag.clone()),
            (header::CACHE_CONTROL, "private, no-cache".to_string()),
            (header::CONTENT_TYPE, "application/schema+json".to_string()),
            (header::HeaderName::from_static(SCHEMA_VERSION_HEADER), schema.version.clone()),
        ],
        body,
    )
        .into_response())
}

/// Where the schema in force came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaInfo {
    /// `82a0c923f9` (the shipped snapshot's commit), or `<commit>-<hash>` / `local-<hash>` for a
    /// configured checkout.
    pub version: String,
    /// `shipped`, or the Armbian checkout's directory.
    pub source: String,
    pub boards: usize,
    pub releases: usize,
}

fn info(s: &quire_app::board_configs::BuildSchema) -> SchemaInfo {
    SchemaInfo { version: s.version.clone(), source: s.source.clone(), boards: s.boards, releases: s.releases }
}

/// Derive the schema from the configured Armbian checkout again (after updating it).
/// Instance administrators. Without a checkout, the shipped schema stays.
#[utoipa::path(post, path = "/api/v1/board-configs/schema/refresh", tag = "board-configs",
    responses((status = 200, body = SchemaInfo), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn refresh_build_schema(State(app): State<App>, Actor(who): Actor) -> ApiResult<Json<SchemaInfo>> {
    let schema = app.board_configs().refresh(&who).await?;
    Ok(Json(info(&schema)))
}

/// A configuration to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// `{"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", …}`
    pub config: Value,
}

/// Check a configuration without saving it: every problem with the field it is about
/// (`/BRANCH`), a message, and whether it is an error or a warning. Results are cached by
/// schema version and configuration hash.
#[utoipa::path(post, path = "/api/v1/board-configs/validate", tag = "board-configs", request_body = ValidateBody,
    responses((status = 200, body = Validation), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn validate_board_config(
    State(app): State<App>,
    Actor(_who): Actor,
    Json(body): Json<ValidateBody>,
) -> ApiResult<Response> {
    quire_collab::build_config::validate(&body.config)?;
    Ok(Json(app.board_configs().validate(&body.config).as_ref()).into_response())
}

/// The configuration a `board-config` document holds now, checked against the schema in force.
#[utoipa::path(get, path = "/api/v1/documents/{id}/validation", tag = "board-configs",
    params(("id" = String, Path, description = "A board-config document")),
    responses((status = 200, body = Validation), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn board_config_validation(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(app.board_configs().validate_document(&who, &id).await?.as_ref()).into_response())
}
