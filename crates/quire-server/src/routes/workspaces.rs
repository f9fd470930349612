use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_core::{NewWorkspace, Page, Workspace, WorkspacePatch, WorkspaceQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{created, tagged};
use crate::App;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Actor, IfMatch, Json, Query, not_modified};

/// Query parameters of `GET /api/v1/workspaces`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWorkspaces {
    /// Case-insensitive text in the name.
    q: Option<String>,
    /// `name` (default), `created_at` or `updated_at`; prefix `-` for descending.
    sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `true` lists deleted workspaces (the trash) instead.
    #[serde(default)]
    deleted: bool,
}

/// List workspaces, a page at a time.
#[utoipa::path(get, operation_id = "list_workspaces", path = "/api/v1/workspaces", tag = "workspaces", params(ListWorkspaces),
    responses((status = 200, body = Page<Workspace>), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(State(app): State<App>, Actor(who): Actor, Query(p): Query<ListWorkspaces>) -> ApiResult<Response> {
    let store = app.store();
    let query = WorkspaceQuery::new(p.q, p.sort.as_deref(), p.limit, p.cursor.as_deref(), p.deleted, store.limits())?;
    Ok(Json(store.list_workspaces(&who, &query).await?).into_response())
}

/// Create a workspace. Emits `workspace.created`.
#[utoipa::path(post, operation_id = "create_workspace", path = "/api/v1/workspaces", tag = "workspaces", request_body = NewWorkspace,
    responses((status = 201, body = Workspace, headers(("ETag" = String), ("Location" = String))),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(State(app): State<App>, Actor(who): Actor, Json(new): Json<NewWorkspace>) -> ApiResult<Response> {
    let ws = app.store().create_workspace(&who, new).await?;
    Ok(created(format!("/api/v1/workspaces/{}", ws.id), ws.revision, ws))
}

/// Get a workspace by id or slug. Answers 304 to a matching `If-None-Match`.
#[utoipa::path(get, operation_id = "get_workspace", path = "/api/v1/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Workspace, headers(("ETag" = String))), (status = 304), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(app): State<App>,
    Actor(who): Actor,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ws = app.store().get_workspace(&who, &key, false).await?;
    if not_modified(&headers, ws.revision) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(tagged(ws.revision, ws))
}

/// Change a workspace's name, slug or description. Takes `If-Match`; emits `workspace.updated`.
#[utoipa::path(patch, operation_id = "update_workspace", path = "/api/v1/workspaces/{ws}", tag = "workspaces", request_body = WorkspacePatch,
    params(("ws" = String, Path, description = "Workspace id or slug"),
        ("If-Match" = Option<String>, Header, description = "The ETag of your last read; 412 if stale")),
    responses((status = 200, body = Workspace, headers(("ETag" = String))), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(app): State<App>,
    Actor(who): Actor,
    Path(key): Path<String>,
    IfMatch(if_match): IfMatch,
    Json(patch): Json<WorkspacePatch>,
) -> ApiResult<Response> {
    let ws = app.store().update_workspace(&who, &key, patch, if_match).await?;
    Ok(tagged(ws.revision, ws))
}

/// Soft-delete a workspace: it and its documents disappear until restored. Takes `If-Match`;
/// emits `workspace.deleted`.
#[utoipa::path(delete, operation_id = "delete_workspace", path = "/api/v1/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug"),
        ("If-Match" = Option<String>, Header, description = "The ETag of your last read; 412 if stale")),
    responses((status = 200, body = Workspace), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    Actor(who): Actor,
    Path(key): Path<String>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<Response> {
    let ws = app.store().delete_workspace(&who, &key, if_match).await?;
    Ok(tagged(ws.revision, ws))
}

/// Restore a deleted workspace (a live one is returned unchanged). Emits `workspace.restored`.
#[utoipa::path(post, operation_id = "restore_workspace", path = "/api/v1/workspaces/{ws}/restore", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Workspace), (status = 404, body = ErrorBody)))]
pub async fn restore(State(app): State<App>, Actor(who): Actor, Path(key): Path<String>) -> ApiResult<Response> {
    let ws = app.store().restore_workspace(&who, &key).await?;
    Ok(tagged(ws.revision, ws))
}
