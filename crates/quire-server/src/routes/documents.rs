use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_core::{Document, DocumentPatch, DocumentQuery, NewDocument, Page, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{created, tagged};
use crate::App;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Actor, IfMatch, Json, Query, not_modified};

/// Query parameters of `GET /api/v1/workspaces/{ws}/documents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDocuments {
    /// `prd`, `moodboard` or `board-config`.
    kind: Option<String>,
    /// Case-insensitive text in the title.
    q: Option<String>,
    /// `-updated_at` (default), `updated_at`, `created_at`, `title`; prefix `-` for descending.
    sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `true` lists deleted documents (the trash) instead.
    #[serde(default)]
    deleted: bool,
}

/// List a workspace's documents, a page at a time, filtered by kind and title.
#[utoipa::path(get, operation_id = "list_documents", path = "/api/v1/workspaces/{ws}/documents", tag = "documents",
    params(("ws" = String, Path, description = "Workspace id or slug"), ListDocuments),
    responses((status = 200, body = Page<Document>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Query(p): Query<ListDocuments>,
) -> ApiResult<Response> {
    let store = app.store();
    let query = DocumentQuery::new(
        p.kind.as_deref(),
        p.q,
        p.sort.as_deref(),
        p.limit,
        p.cursor.as_deref(),
        p.deleted,
        store.limits(),
    )?;
    Ok(Json(store.list_documents(&who, &ws, &query).await?).into_response())
}

/// Create a document in a workspace. Emits `<kind>.created`, e.g. `prd.created`.
#[utoipa::path(post, operation_id = "create_document", path = "/api/v1/workspaces/{ws}/documents", tag = "documents", request_body = NewDocument,
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 201, body = Document, headers(("ETag" = String), ("Location" = String))), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Json(new): Json<NewDocument>,
) -> ApiResult<Response> {
    let doc = app.store().create_document(&who, &ws, new).await?;
    // What the kind starts with goes in before anyone can open it.
    let kind = quire_collab::kinds::of(doc.kind);
    if kind.initializes() {
        let writer = crate::routes::collab::presence_user(&app, &who).await;
        app.collab()
            .edit(&doc.id, writer, move |d| {
                kind.initialize(d);
                Ok(())
            })
            .await?;
    }
    Ok(created(format!("/api/v1/documents/{}", doc.id), doc.revision, doc))
}

/// A document with what the caller may do with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    #[serde(flatten)]
    pub document: Document,
    /// The caller's role on it: `viewer` reads (the web app shows it read-only), `editor`
    /// and above change it.
    pub role: Role,
}

/// Get a document, with the caller's role on it. Answers 304 to a matching `If-None-Match`.
#[utoipa::path(get, operation_id = "get_document", path = "/api/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentView, headers(("ETag" = String))), (status = 304), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (document, role) = app.store().role_on_document(&who, &id).await?;
    if not_modified(&headers, document.revision) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(tagged(document.revision, DocumentView { document, role }))
}

/// Change a document's title, or merge-patch its metadata (RFC 7386: `null` removes a key).
/// Takes `If-Match`; emits `<kind>.updated` with the changed fields.
#[utoipa::path(patch, operation_id = "update_document", path = "/api/v1/documents/{id}", tag = "documents", request_body = DocumentPatch,
    params(("id" = String, Path, description = "Document id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of your last read; 412 if stale")),
    responses((status = 200, body = Document, headers(("ETag" = String))), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    Json(patch): Json<DocumentPatch>,
) -> ApiResult<Response> {
    let doc = app.store().update_document(&who, &id, patch, if_match).await?;
    Ok(tagged(doc.revision, doc))
}

/// Soft-delete a document. Takes `If-Match`; emits `<kind>.deleted`.
#[utoipa::path(delete, operation_id = "delete_document", path = "/api/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "Document id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of your last read; 412 if stale")),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub async fn delete(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<Response> {
    let doc = app.store().delete_document(&who, &id, if_match).await?;
    Ok(tagged(doc.revision, doc))
}

/// Restore a deleted document (a live one is returned unchanged). Emits `<kind>.restored`.
#[utoipa::path(post, operation_id = "restore_document", path = "/api/v1/documents/{id}/restore", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody)))]
pub async fn restore(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let doc = app.store().restore_document(&who, &id).await?;
    Ok(tagged(doc.revision, doc))
}
