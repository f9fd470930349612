//! A document's versions: list, read, diff, restore, name, and the changelog.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_core::{DocumentVersion, Page, Role};
use quire_history::{Format, Semver, diff};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json, Query};
use quire_app::history::{History, format_of};

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}

/// A version number from a path or query, checked.
fn number(v: &str) -> Result<Semver, ApiError> {
    v.parse::<Semver>().map_err(|e| unprocessable(e.to_string()))
}

fn not_found(document: &str, version: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("document {document} has no version {version}; GET /api/v1/documents/{document}/versions lists them"),
    )
}

/// Query of `GET /api/v1/documents/{id}/versions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVersions {
    /// 1 to 200; 50 by default.
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A document's versions, newest first: number, message, authors, commit, name.
#[utoipa::path(get, path = "/api/v1/documents/{id}/versions", tag = "documents", params(("id" = String, Path), ListVersions),
    responses((status = 200, body = Page<DocumentVersion>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_versions(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    Query(q): Query<ListVersions>,
) -> ApiResult<Response> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(unprocessable("limit: must be 1 to 200"));
    }
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", format!("'{c}' is not a versions cursor"))
        })?),
    };
    let mut items = app.store().list_versions(&doc.id, before, limit + 1).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|v| v.seq.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }).into_response())
}

/// One version and its content (Markdown for a PRD, JSON otherwise).
#[utoipa::path(get, path = "/api/v1/documents/{id}/versions/{version}", tag = "documents",
    params(("id" = String, Path), ("version" = String, Path, description = "major.minor.patch")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_version(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let v = number(&version)?.to_string();
    let (found, content) = app.store().get_version(&doc.id, &v).await?.ok_or_else(|| not_found(&doc.id, &v))?;
    Ok(Json(json!({ "version": found, "content": content })).into_response())
}

/// Naming a version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameVersion {
    /// 1 to 100 characters; `null` clears the name.
    name: Option<String>,
}

/// Name (or tag) a version, or clear its name (editors).
#[utoipa::path(patch, path = "/api/v1/documents/{id}/versions/{version}", tag = "documents", request_body = NameVersion,
    params(("id" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = DocumentVersion), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn name_version(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, version)): Path<(String, String)>,
    Json(body): Json<NameVersion>,
) -> ApiResult<Response> {
    let (doc, role) = app.store().role_on_document(&who, &id).await?;
    if role < Role::Editor {
        return Err(quire_core::Error::Forbidden("naming versions needs the editor role".into()).into());
    }
    let v = number(&version)?.to_string();
    let name = body.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 100) {
        return Err(unprocessable("name: at most 100 characters"));
    }
    match app.store().name_version(&doc.id, &v, name).await {
        Ok(named) => Ok(Json(named).into_response()),
        Err(quire_core::Error::NotFound { .. }) => Err(not_found(&doc.id, &v)),
        Err(e) => Err(e.into()),
    }
}

/// Query of `GET /api/v1/documents/{id}/diff`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// A version number, or `current`.
    from: String,
    /// A version number, or `current` (the default).
    to: Option<String>,
}

/// The difference between two versions (or a version and the current content): a unified
/// diff of the document's file, and the sections added, removed or edited, each with its own.
#[utoipa::path(get, path = "/api/v1/documents/{id}/diff", tag = "documents", params(("id" = String, Path), DiffQuery),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn diff_versions(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Response> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let to = q.to.unwrap_or_else(|| "current".into());
    let mut texts = Vec::with_capacity(2);
    for side in [&q.from, &to] {
        let text = if side == "current" {
            app.history().current(&doc).await?
        } else {
            let v = number(side)?.to_string();
            app.store().get_version(&doc.id, &v).await?.ok_or_else(|| not_found(&doc.id, &v))?.1
        };
        texts.push(text);
    }
    let format = format_of(doc.kind);
    let file = History::file_of(&doc.id, format);
    let (from_name, to_name) = (format!("a/{file}@{}", q.from), format!("b/{file}@{to}"));
    // Diffing is CPU work of up to diff::DEADLINE per part: off the async threads.
    let (unified, sections) = tokio::task::spawn_blocking(move || {
        let unified = diff::unified(&texts[0], &texts[1], &from_name, &to_name);
        (unified, diff::by_section(format, &texts[0], &texts[1]))
    })
    .await
    .map_err(|e| quire_core::Error::Internal(format!("the diff stopped: {e}")))?;
    Ok(Json(json!({ "from": q.from, "to": to, "unified": unified, "sections": sections })).into_response())
}

/// Restore a version (editors): the document's content becomes that version's again, live
/// for everyone editing it, and that makes a new version ("Restored version 1.2.0"). History
/// is never rewritten. 409 when the document already equals it.
#[utoipa::path(post, path = "/api/v1/documents/{id}/versions/{version}/restore", tag = "documents",
    params(("id" = String, Path), ("version" = String, Path)),
    responses((status = 201, body = DocumentVersion), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn restore_version(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (doc, role) = app.store().role_on_document(&who, &id).await?;
    if role < Role::Editor {
        return Err(quire_core::Error::Forbidden("restoring versions needs the editor role".into()).into());
    }
    let v = number(&version)?.to_string();
    let (_, text) = app.store().get_version(&doc.id, &v).await?.ok_or_else(|| not_found(&doc.id, &v))?;
    let content = match format_of(doc.kind) {
        Format::Markdown => quire_collab::markdown::from_markdown(&text),
        Format::Json => serde_json::from_str(&text)
            .map_err(|e| quire_core::Error::Internal(format!("version {v} is not JSON: {e}")))?,
    };
    let kind = doc.kind;
    let writer = crate::routes::collab::presence_user(&app, &who).await;
    let author = writer.id.clone();
    app.collab().edit(&doc.id, writer, move |d| quire_collab::content::write_json(d, kind, &content)).await?;
    let made = app.history().version(&doc.id, &[author], Some(format!("Restored version {v}"))).await?;
    match made {
        Some(made) => Ok((StatusCode::CREATED, Json(made)).into_response()),
        None => {
            Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("the document already equals version {v}")))
        }
    }
}

/// The most versions read back to find who last changed each section.
const AUTHORSHIP_DEPTH: u32 = 30;

/// Who last changed a section, as the versions tell it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SectionAuthorship {
    /// The section's heading (empty for what comes before the first) and its level.
    pub title: String,
    pub level: u8,
    /// The version that last changed it; with `settled`, the oldest version read (the
    /// section is that old or older).
    pub version: String,
    #[schema(value_type = Vec<Object>)]
    pub authors: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: time::OffsetDateTime,
    /// True when it did not change within the versions read.
    pub settled: bool,
}

/// Who last changed each section of the document's latest version, and when (read from up
/// to its 30 latest versions). The outline shows it beside each heading.
#[utoipa::path(get, path = "/api/v1/documents/{id}/sections", tag = "documents", params(("id" = String, Path)),
    responses((status = 200, body = Vec<SectionAuthorship>), (status = 404, body = ErrorBody)))]
pub async fn section_authors(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let listed = app.store().list_versions(&doc.id, None, AUTHORSHIP_DEPTH).await?;
    let mut versions = Vec::with_capacity(listed.len());
    for v in listed {
        if let Some((found, text)) = app.store().get_version(&doc.id, &v.version).await? {
            versions.push((found, text));
        }
    }
    let texts: Vec<&str> = versions.iter().map(|(_, t)| t.as_str()).collect();
    let format = format_of(doc.kind);
    let out: Vec<SectionAuthorship> = quire_history::last_changed(format, &texts)
        .into_iter()
        .map(|(section, at)| {
            let (v, _) = &versions[at];
            SectionAuthorship {
                title: section.title,
                level: section.level,
                version: v.version.clone(),
                authors: v.authors.clone(),
                changed_at: v.created_at,
                settled: at + 1 == versions.len() && versions.len() as u32 == AUTHORSHIP_DEPTH,
            }
        })
        .collect();
    Ok(Json(out).into_response())
}

/// The document's changelog as Markdown: each version, newest first, with its date, name,
/// message and authors.
#[utoipa::path(get, path = "/api/v1/documents/{id}/changelog", tag = "documents", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/markdown", body = String), (status = 404, body = ErrorBody)))]
pub async fn changelog(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let mut out = format!("# Changelog: {}\n", doc.title);
    let mut before = None;
    loop {
        let page = app.store().list_versions(&doc.id, before, 500).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        for v in &page {
            let date = v.created_at.date();
            let name = v.name.as_ref().map(|n| format!(" — {n}")).unwrap_or_default();
            let authors: Vec<&str> =
                v.authors.as_array().into_iter().flatten().filter_map(|a| a["name"].as_str()).collect();
            let by = if authors.is_empty() { String::new() } else { format!(" ({})", authors.join(", ")) };
            out.push_str(&format!("\n## {} — {date}{name}\n\n- {}{by}\n", v.version, v.message));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], out).into_response())
}

/// The workspace `ws`, when `who` is one of its admins.
async fn admin_of(app: &App, who: &quire_core::Principal, ws: &str) -> Result<quire_core::Workspace, ApiError> {
    let (ws, role) = app.store().role_in_workspace(who, ws).await?;
    if role < Role::Admin {
        return Err(quire_core::Error::Forbidden("only the workspace's admins set its history remote".into()).into());
    }
    Ok(ws)
}

/// Where a workspace's history is pushed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// The `https://` (or `http://`) URL of a repository on a git server (GitHub, GitLab,
    /// Gitea, …), or an absolute path or `file://` URL of one on this machine.
    url: String,
    /// The account pushed as; with a token alone, `x-access-token`.
    #[serde(default)]
    username: Option<String>,
    /// Its password or, better, an access token allowed to push. Stored sealed with the
    /// instance's secret keys and never shown again.
    #[serde(default)]
    password: Option<String>,
}

/// What the API shows of a remote: never its password.
async fn remote_json(app: &App, workspace_id: &str) -> Result<Value, ApiError> {
    let remote = app.history().remote(workspace_id).await?;
    let last_push = app.history().push_state(workspace_id).await?;
    let credentials = remote.as_ref().and_then(|r| r.credentials.as_ref());
    Ok(json!({
        "url": remote.as_ref().map(|r| r.url.as_str()),
        "username": credentials.map(|c| c.username.as_str()),
        "has_password": credentials.is_some(),
        "last_push": last_push,
    }))
}

/// The remote a workspace's history repository is pushed to (its URL and username; never
/// its password), and how the last push went.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/history/remote", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_remote(State(app): State<App>, Actor(who): Actor, Path(ws): Path<String>) -> ApiResult<Response> {
    let (ws, _) = app.store().role_in_workspace(&who, &ws).await?;
    Ok(Json(remote_json(&app, &ws.id).await?).into_response())
}

/// Push the workspace's history to a remote from now on (its admins): after every version,
/// and now; a failed push is retried with backoff and shown in `/readyz`, never blocking edits.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/history/remote", tag = "workspaces", request_body = Remote,
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_remote(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Json(body): Json<Remote>,
) -> ApiResult<Response> {
    let ws = admin_of(&app, &who, &ws).await?;
    let remote = quire_history::remote::Remote::parse(&body.url, body.username.as_deref(), body.password.as_deref())
        .map_err(|r| quire_core::Error::invalid(r.field, r.message))?;
    if remote.is_local() && !who.is_superuser() {
        // A path on this machine could be another workspace's repository under the data
        // directory, force-pushed over.
        return Err(quire_core::Error::Forbidden(
            "only an instance admin may push history to a path on this machine; give an https:// URL of a git server"
                .into(),
        )
        .into());
    }
    if !remote.is_local() {
        // Refused addresses written out are refused now; names are checked at each push.
        app.config().outbound.check(&remote.url).map_err(|r| quire_core::Error::invalid("url", r.0))?;
    }
    app.history().set_remote(&ws.id, Some(&remote)).await?;
    Ok(Json(remote_json(&app, &ws.id).await?).into_response())
}

/// Stop pushing the workspace's history (its admins).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/history/remote", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 204, description = "No remote any more"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_remote(State(app): State<App>, Actor(who): Actor, Path(ws): Path<String>) -> ApiResult<Response> {
    let ws = admin_of(&app, &who, &ws).await?;
    app.history().set_remote(&ws.id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
