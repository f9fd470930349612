//! `GET /collab/{document_id}`: the y-websocket endpoint. Any Yjs client connects with
//! `new WebsocketProvider('ws://HOST/collab', DOCUMENT_ID, ydoc, { params: { token } })`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use quire_core::{Document, PresenceUser, Principal, Role};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{MaybeActor, Query, cookie};
use crate::ws::{Socket, Upgrade, close, send_all};

/// Close codes sent to clients (4000–4999 are the application's).
pub const CLOSE_EXPIRED: u16 = 4401;
pub const CLOSE_NO_ACCESS: u16 = 4403;
pub const CLOSE_BEHIND: u16 = 4408;
/// The client sent more than its limits allow (messages per frame or per second, sync
/// requests, update bytes); it may reconnect, more slowly.
pub const CLOSE_TOO_MUCH: u16 = 4429;

/// Query of `GET /collab/{document_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CollabParams {
    /// An access token or API key (browsers cannot set headers on WebSockets); the
    /// `Authorization` header and the session cookie work too.
    token: Option<String>,
}

/// A change that may alter who may be on a document's socket.
#[derive(Debug, Clone, Default)]
pub struct AccessChange {
    pub workspace_id: Option<String>,
    pub document_id: Option<String>,
    pub user_id: Option<String>,
    /// Sessions ended.
    pub sessions: Vec<String>,
    /// An API key revoked.
    pub key_id: Option<String>,
    /// The whole workspace or document went away.
    pub deleted: bool,
    /// A member was added, changed or removed (`user_id` says who).
    pub member_changed: bool,
}

impl AccessChange {
    /// The events that may change access, as the outbox names them.
    pub const EVENTS: [&'static str; 8] = [
        "api_key.revoked",
        "workspace.member.*",
        "document.share.*",
        "session.revoked",
        "workspace.deleted",
        "prd.deleted",
        "moodboard.deleted",
        "board-config.deleted",
    ];

    pub fn from_event(e: &quire_core::Event) -> AccessChange {
        AccessChange {
            workspace_id: e.workspace_id.clone(),
            document_id: e.document_id.clone(),
            user_id: e.data["user_id"].as_str().map(String::from),
            sessions: e.data["sessions"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            key_id: e.data["key_id"].as_str().map(String::from),
            deleted: e.name.ends_with(".deleted"),
            member_changed: e.name.starts_with("workspace.member."),
        }
    }

    /// Whether this ends `who`'s access outright: their API key was revoked, or the key's
    /// creator left its workspace or changed role there (a key acts with no more than its
    /// creator's role; a client reconnects to act with what the key may do now).
    pub(crate) fn revokes(&self, who: &Principal) -> bool {
        match who {
            Principal::ApiKey { id, workspace_id, created_by, .. } => {
                self.key_id.as_deref() == Some(id.as_str())
                    || (self.member_changed
                        && created_by.is_some()
                        && self.user_id.as_deref() == created_by.as_deref()
                        && self.workspace_id.as_deref() == Some(workspace_id.as_str()))
            }
            _ => false,
        }
    }

    /// Whether `who` on `doc` must be looked at again.
    fn concerns(&self, who: &Principal, doc: &Document) -> bool {
        if let Principal::User { session: Some(sid), .. } = who
            && self.sessions.contains(sid)
        {
            return true;
        }
        let here = self.document_id.as_deref() == Some(doc.id.as_str())
            || (self.document_id.is_none() && self.workspace_id.as_deref() == Some(doc.workspace_id.as_str()));
        here && (self.deleted || self.user_id.is_none() || self.user_id.as_deref() == who.user_id())
    }
}

/// Who opens a WebSocket, and until when (seconds since the epoch) their credential holds:
/// `token` (`?token=`, as browsers cannot set headers on sockets), the `Authorization` header,
/// or the session cookie from a page Quire trusts.
pub(crate) async fn socket_principal(
    app: &App,
    who: Principal,
    token: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<(Principal, Option<u64>)> {
    if by_cookie(token, headers) && !origin_allowed(app, headers) {
        // A page on another site cannot ride on the browser's cookie (WebSockets are not
        // covered by CORS, so the origin is checked here).
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_refused",
            "this page's origin may not open sockets with the session cookie; \
             add it to the CORS origins (--cors-origins) or connect with ?token=",
        ));
    }
    let (who, expires) = match credential(token, headers) {
        Some(token) => app.auth().authenticate_until(&token).await.map_err(|e| match e {
            quire_core::Error::Unauthenticated(m) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", m),
            other => other.into(),
        })?,
        None => (who, None),
    };
    if who == Principal::Anonymous {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "connect with ?token=<access token or API key>",
        ));
    }
    Ok((who, expires))
}

/// The credential of this request: `?token=`, the `Authorization` header, or the cookie.
fn credential(token: Option<&str>, headers: &HeaderMap) -> Option<String> {
    token.map(String::from).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(String::from)
            .or_else(|| cookie(headers, crate::routes::auth::ACCESS_COOKIE).map(String::from))
    })
}

/// Whether the socket's credential is the session cookie (no token given otherwise).
fn by_cookie(token: Option<&str>, headers: &HeaderMap) -> bool {
    token.is_none()
        && !headers.contains_key(header::AUTHORIZATION)
        && cookie(headers, crate::routes::auth::ACCESS_COOKIE).is_some()
}

/// Whether a cookie-authenticated upgrade comes from a page Quire trusts: no `Origin` (not a
/// browser), the origin of the host it was sent to, of the public URL, or a CORS origin.
fn origin_allowed(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let origin = origin.trim_end_matches('/');
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let same_host =
        host.is_some_and(|h| origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(h)));
    let public = app.auth().config().sso.public_url.trim_end_matches('/');
    same_host
        || origin.eq_ignore_ascii_case(public)
        || app.config().cors_origins.iter().any(|o| o.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Open the document's y-websocket session. Editors (and above) write; viewers read, and
/// their updates are dropped with a `read-only` auth message. The socket closes with 4401
/// when the credential expires, 4403 when access is withdrawn, 4408 when the client fell too
/// far behind (it reconnects and resynchronises).
#[utoipa::path(get, path = "/collab/{document_id}", tag = "documents",
    params(("document_id" = String, Path, description = "Document id"), CollabParams),
    responses((status = 101, description = "Switching to the y-websocket protocol"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn collab_socket(
    State(app): State<App>,
    Path(document_id): Path<String>,
    MaybeActor(who): MaybeActor,
    Query(params): Query<CollabParams>,
    headers: HeaderMap,
    ws: Upgrade,
) -> ApiResult<Response> {
    let (who, expires) = socket_principal(&app, who, params.token.as_deref(), &headers).await?;
    let (doc, role) = app.store().role_on_document(&who, &document_id).await?;
    let slot = app.open_connection(&who)?;
    let max = app.config().max_ws_message_bytes;
    // A small read buffer: the default (128 KiB) is allocated per socket and zero-filled on
    // every read attempt, which made an idle socket cost 150 KiB and a broadcast to 500
    // sockets spend most of its time in memset. Larger messages still arrive in one read once
    // their header is in. Frames are written as they are queued (write buffer 0).
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    Ok(ws.on_upgrade(config, move |socket| async move {
        let _open = slot; // given back when the socket ends
        run(app, socket, who, doc, role, expires).await
    }))
}

const READ_BUFFER: usize = 4 * 1024;

/// Most broadcast frames written to one socket before it is flushed.
const BATCH: usize = 64;

/// Who a principal is to the other editors of a document.
pub(crate) async fn presence_user(app: &App, who: &Principal) -> PresenceUser {
    match who {
        Principal::User { id, .. } => {
            let name = app.store().user_by_id(id).await.ok().flatten().map_or_else(|| id.clone(), |u| u.name);
            PresenceUser { id: id.clone(), name }
        }
        other => PresenceUser { id: other.actor().to_string(), name: "API key".into() },
    }
}

async fn run(app: App, mut socket: Socket, who: Principal, doc: Document, role: Role, expires: Option<u64>) {
    let user = presence_user(&app, &who).await;
    let (mut session, first, mut feed) = match app.collab().join(&doc.id, role < Role::Editor, user.clone()).await {
        Ok(joined) => joined,
        Err(e) => {
            tracing::error!(document = %doc.id, error = %e, "opening a document for a socket failed");
            close(&mut socket, 1011, "the document could not be opened").await;
            return;
        }
    };
    metrics::gauge!("collab_sockets").increment(1.0);
    let _ = send_all(&mut socket, first).await;
    // After the first sync: the client never waits on this write.
    let room = session.room().clone();
    if room.live_sessions_of(&user.id) == 1 {
        arrival(&app, &who, &doc, &user, "user.joined").await;
    }
    let mut access = app.access_changes();
    let mut shutdown = app.shutdown_signal();
    let expiry = crate::ws::expiry(expires);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Binary(data))) => match session.handle(&data).await {
                    Ok(replies) => {
                        if send_all(&mut socket, replies).await.is_err() {
                            break;
                        }
                    }
                    Err(quire_core::Error::TooManyRequests { message, .. }) => {
                        tracing::info!(document = %doc.id, %message, "closing a socket that asked too much");
                        metrics::counter!("collab_sockets_refused_total", "reason" => "limits").increment(1);
                        close(&mut socket, CLOSE_TOO_MUCH, &message).await;
                        break;
                    }
                    Err(quire_core::Error::Invalid { message, .. }) => {
                        tracing::info!(document = %doc.id, %message, "closing a socket that sent a bad message");
                        close(&mut socket, 1003, "not a y-websocket message").await;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(document = %doc.id, error = %e, "a document update could not be stored");
                        close(&mut socket, 1011, "the update could not be stored; reconnect").await;
                        break;
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            frame = feed.recv() => match frame {
                Ok(f) => {
                    // What else is already queued goes out in the same write.
                    let me = session.id();
                    let queued = std::iter::from_fn(|| feed.try_recv().ok());
                    let batch = std::iter::once(f).chain(queued).take(BATCH).filter(|f| f.origin != me).map(|f| f.bytes);
                    if send_all(&mut socket, batch).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    close(&mut socket, CLOSE_BEHIND, "fell behind; reconnect to resynchronise").await;
                    break;
                }
                Err(RecvError::Closed) => break,
            },
            change = access.recv() => {
                let recheck = match change {
                    Ok(c) if c.revokes(&who) => {
                        close(&mut socket, CLOSE_NO_ACCESS, "the API key was revoked").await;
                        break;
                    }
                    Ok(c) => c.concerns(&who, &doc),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => false,
                };
                if recheck {
                    // Asked of the store, not the revocation cache: the event may arrive here
                    // before the process that revoked has updated its cache.
                    let live = match &who {
                        Principal::User { session: Some(sid), .. } => app.store().session_is_live(sid).await.unwrap_or(false),
                        _ => true,
                    };
                    match app.store().role_on_document(&who, &doc.id).await {
                        Ok((_, role)) if live => session.set_read_only(role < Role::Editor),
                        _ => {
                            close(&mut socket, CLOSE_NO_ACCESS, "your access to this document was withdrawn").await;
                            break;
                        }
                    }
                }
            },
            _ = &mut expiry => {
                close(&mut socket, CLOSE_EXPIRED, "the token expired; reconnect with a fresh one").await;
                break;
            },
            _ = shutdown.changed() => {
                close(&mut socket, 1001, "the server is restarting").await;
                break;
            },
        }
    }
    session.leave().await;
    metrics::gauge!("collab_sockets").decrement(1.0);
    if room.live_sessions_of(&user.id) == 0 {
        arrival(&app, &who, &doc, &user, "user.left").await;
    }
}

/// Raises `user.joined` when a person's first socket on a document opens (on this process)
/// and `user.left` when their last one closes (seed 002 §5.2).
async fn arrival(app: &App, who: &Principal, doc: &Document, user: &PresenceUser, name: &str) {
    let data = serde_json::json!({ "user_id": user.id, "name": user.name, "document_id": doc.id, "kind": doc.kind });
    if let Err(e) = app.store().record_event(who, name, &doc.workspace_id, Some(&doc.id), data).await {
        tracing::warn!(document = %doc.id, event = name, error = %e, "recording a presence event failed");
    }
}

/// Who is on a document now: one entry per user with `status` (`online`, `away`, or
/// `offline` for those who left recently), `lastSeen` and what they said they are doing.
#[utoipa::path(get, path = "/api/v1/documents/{id}/presence", tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = Vec<quire_core::ConnectionState>), (status = 404, body = ErrorBody)))]
pub async fn presence(
    State(app): State<App>,
    crate::extract::Actor(who): crate::extract::Actor,
    Path(id): Path<String>,
) -> ApiResult<crate::extract::Json<Vec<quire_core::ConnectionState>>> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    Ok(crate::extract::Json(app.collab().presence(&doc.id)))
}

/// Query of `GET …/content`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContentParams {
    /// `json` (default: a ProseMirror document for PRDs, the object otherwise), `text`, or
    /// `markdown` (PRDs).
    format: Option<String>,
}

/// The body of `PUT …/content`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentBody {
    /// `json`, `text` (PRDs: blank-line-separated paragraphs) or `markdown` (PRDs).
    #[schema(example = "markdown")]
    pub format: String,
    /// A string for `text` and `markdown`; for `json`, the document as `GET …/content`
    /// answers it (ProseMirror JSON for a PRD, the board or configuration object otherwise).
    #[schema(schema_with = content_schema)]
    pub content: serde_json::Value,
}

fn content_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).description(Some("`text` or `markdown` content")))
        .item(ObjectBuilder::new().schema_type(Type::Object).description(Some("`json` content")))
        .examples([serde_json::json!("# Checkout redesign\n\n## Goals\n\n- Pay in one step\n")])
        .build();
    Schema::OneOf(one_of).into()
}

fn check_format(format: &str, kind: quire_core::DocumentKind) -> ApiResult<()> {
    match format {
        "json" | "text" => Ok(()),
        "markdown" if quire_collab::kinds::of(kind).markdown() => Ok(()),
        "markdown" => {
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", quire_collab::kinds::NOT_MARKDOWN))
        }
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("format '{other}' is not supported; use json, text or markdown"),
        )),
    }
}

/// A document's current content, as editors have it now.
#[utoipa::path(get, path = "/api/v1/documents/{id}/content", tag = "documents",
    params(("id" = String, Path, description = "Document id"), ContentParams),
    responses((status = 200, description = "JSON content, or text/plain"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn read_content(
    State(app): State<App>,
    crate::extract::Actor(who): crate::extract::Actor,
    Path(id): Path<String>,
    Query(p): Query<ContentParams>,
) -> ApiResult<Response> {
    use axum::response::IntoResponse;
    let format = p.format.unwrap_or_else(|| "json".into());
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let kind = doc.kind;
    check_format(&format, kind)?;
    if format == "text" {
        let text = app.collab().read(&doc.id, |d| quire_collab::content::read_text(d, kind)).await?;
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    if format == "markdown" {
        let kind = quire_collab::kinds::of(kind);
        let md = app.collab().read(&doc.id, |d| kind.to_file(&kind.read_json(d))).await?;
        return Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], md).into_response());
    }
    let json = app.collab().read(&doc.id, |d| quire_collab::content::read_json(d, kind)).await?;
    Ok(crate::extract::Json(json).into_response())
}

/// Replace a document's content. Only the difference is applied to the live document, so
/// open editors keep their cursors where nothing changed. Needs the editor role.
#[utoipa::path(put, path = "/api/v1/documents/{id}/content", tag = "documents", request_body = ContentBody,
    params(("id" = String, Path, description = "Document id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn write_content(
    State(app): State<App>,
    crate::extract::Actor(who): crate::extract::Actor,
    Path(id): Path<String>,
    crate::extract::Json(body): crate::extract::Json<ContentBody>,
) -> ApiResult<StatusCode> {
    let (doc, role) = app.store().role_on_document(&who, &id).await?;
    check_format(&body.format, doc.kind)?;
    if role < Role::Editor {
        return Err(quire_core::Error::Forbidden("changing a document's content needs the editor role".into()).into());
    }
    let content = if body.format != "json" {
        let text = body.content.as_str().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "with format text or markdown, content is a string",
            )
        })?;
        quire_collab::kinds::of(doc.kind).parse_text(&body.format, text)?
    } else {
        body.content
    };
    let kind = doc.kind;
    let writer = presence_user(&app, &who).await;
    app.collab().edit(&doc.id, writer, move |d| quire_collab::content::write_json(d, kind, &content)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change some fields of a board or configuration: a JSON merge patch (RFC 7386) — the
/// fields named are set, `null` removes one, nested objects merge — applied to the content
/// as it is now, so fields others changed since you read it stay theirs. Needs the editor
/// role; PRDs are replaced with PUT.
#[utoipa::path(patch, path = "/api/v1/documents/{id}/content", tag = "documents",
    request_body(content = Object, content_type = "application/merge-patch+json", description = "The fields to change"),
    params(("id" = String, Path, description = "Document id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch_content(
    State(app): State<App>,
    crate::extract::Actor(who): crate::extract::Actor,
    Path(id): Path<String>,
    crate::extract::Json(patch): crate::extract::Json<serde_json::Value>,
) -> ApiResult<StatusCode> {
    let (doc, role) = app.store().role_on_document(&who, &id).await?;
    if role < Role::Editor {
        return Err(quire_core::Error::Forbidden("changing a document's content needs the editor role".into()).into());
    }
    let kind = quire_collab::kinds::of(doc.kind);
    let writer = presence_user(&app, &who).await;
    app.collab().edit(&doc.id, writer, move |d| kind.patch_json(d, &patch)).await?;
    Ok(StatusCode::NO_CONTENT)
}
