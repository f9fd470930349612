//! Who may do what: workspace members, invitations, API keys, and document shares.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quire_core::{ApiKey, Invitation, Member, Role, Share};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::App;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Actor, Json};

fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// The members of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "access",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Vec<Member>), (status = 404, body = ErrorBody)))]
pub async fn list_members(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(app.store().list_members(&who, &ws).await?))
}

/// A role to grant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// Add a member or change their role. Admins manage viewers and editors; owners anyone.
/// A workspace always keeps an owner.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/members/{user_id}", tag = "access", request_body = SetRole,
    params(("ws" = String, Path, description = "Workspace id or slug"), ("user_id" = String, Path, description = "User id")),
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_member(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, user_id)): Path<(String, String)>,
    Json(body): Json<SetRole>,
) -> ApiResult<Json<Member>> {
    Ok(Json(app.store().set_member(&who, &ws, &user_id, body.role).await?))
}

/// Remove a member (anyone may remove themselves). A workspace always keeps an owner.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{user_id}", tag = "access",
    params(("ws" = String, Path, description = "Workspace id or slug"), ("user_id" = String, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.store().remove_member(&who, &ws, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST …/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// Only this address may accept, when given.
    #[serde(default)]
    pub email: Option<String>,
    pub role: Role,
}

/// A new invitation and its token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    /// Give it to the invitee: they accept it at `POST /api/v1/invitations/accept`, or sign
    /// up with it.
    pub token: String,
}

/// Invite someone to the workspace (admins; owners for admin and owner roles).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/invitations", tag = "access", request_body = NewInvitation,
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 201, body = CreatedInvitation), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_invitation(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Json(body): Json<NewInvitation>,
) -> ApiResult<Response> {
    let (invitation, token) = app.auth().create_invitation(&who, &ws, body.email, body.role).await?;
    Ok(created(CreatedInvitation { invitation, token }))
}

/// The workspace's invitations (admins).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/invitations", tag = "access",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Vec<Invitation>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_invitations(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
) -> ApiResult<Json<Vec<Invitation>>> {
    Ok(Json(app.store().list_invitations(&who, &ws).await?))
}

/// Withdraw an invitation that was not accepted yet (admins).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/invitations/{id}", tag = "access",
    params(("ws" = String, Path, description = "Workspace id or slug"), ("id" = String, Path, description = "Invitation id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_invitation(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.store().revoke_invitation(&who, &ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /api/v1/invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    pub token: String,
}

/// Join a workspace with an invitation token.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "access", request_body = Accept,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn accept_invitation(
    State(app): State<App>,
    Actor(who): Actor,
    Json(body): Json<Accept>,
) -> ApiResult<Json<Member>> {
    Ok(Json(app.auth().accept_invitation(&who, &body.token).await?))
}

/// The body of `POST …/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    /// viewer, editor or admin (at most your own role).
    pub role: Role,
}

/// A new API key and its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub api_key: ApiKey,
    /// Send as `Authorization: Bearer …`. Store it now: Quire keeps only its hash.
    pub secret: String,
}

/// Create an API key for programs acting in this workspace (admins).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/api-keys", tag = "access", request_body = NewKey,
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_api_key(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Json(body): Json<NewKey>,
) -> ApiResult<Response> {
    let (api_key, secret) = app.auth().create_api_key(&who, &ws, &body.name, body.role).await?;
    Ok(created(CreatedKey { api_key, secret }))
}

/// The workspace's API keys, with their visible prefixes and last use (admins).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/api-keys", tag = "access",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Vec<ApiKey>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_api_keys(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    Ok(Json(app.store().list_api_keys(&who, &ws).await?))
}

/// Revoke an API key; it stops working at once (admins).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/api-keys/{id}", tag = "access",
    params(("ws" = String, Path, description = "Workspace id or slug"), ("id" = String, Path, description = "API key id")),
    responses((status = 200, body = ApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(app.store().revoke_api_key(&who, &ws, &id).await?))
}

/// Who a document is shared with (workspace editors and above).
#[utoipa::path(get, path = "/api/v1/documents/{id}/shares", tag = "access",
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = Vec<Share>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_shares(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Share>>> {
    Ok(Json(app.store().list_shares(&who, &id).await?))
}

/// The body of `PUT /api/v1/documents/{id}/shares`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// The account to share with.
    pub email: String,
    /// viewer or editor.
    pub role: Role,
}

/// Share a document with one account, inside or outside the workspace (workspace editors
/// and above).
#[utoipa::path(put, path = "/api/v1/documents/{id}/shares", tag = "access", request_body = NewShare,
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = Share), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_share(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    Json(body): Json<NewShare>,
) -> ApiResult<Json<Share>> {
    Ok(Json(app.store().put_share(&who, &id, &body.email, body.role).await?))
}

/// Stop sharing a document with one account (anyone may drop their own share).
#[utoipa::path(delete, path = "/api/v1/documents/{id}/shares/{user_id}", tag = "access",
    params(("id" = String, Path, description = "Document id"), ("user_id" = String, Path, description = "User id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_share(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.store().remove_share(&who, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
