//! Board builds: start one from a configuration, list a configuration's builds, one build
//! with its place in the queue, and its log — live over Server-Sent Events, resumable by line
//! number, or whole as text. Cancelling is the context's (`POST /api/v1/contexts/{id}/cancel`).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use quire_app::builds::{KIND, LogBatch, LogLine, decode};
use quire_core::{Context, ContextQuery, PageRequest, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json, Query};

/// A build: its context (status, progress, `data` — the configuration snapshot, and once
/// done its stages and artifacts —, error) and, while it waits, how many builds are ahead.
#[derive(Debug, Serialize, ToSchema)]
pub struct Build {
    #[serde(flatten)]
    pub context: Context,
    /// Builds that run before it (0: it is next); absent once it runs.
    pub queue_position: Option<u32>,
    /// Each artifact's URL that needs no token until `artifact_urls_expire_at` (for a device,
    /// a CI job or a colleague to fetch), by name; empty until the build kept its artifacts.
    #[schema(value_type = Object)]
    pub artifact_urls: serde_json::Map<String, serde_json::Value>,
    /// When those URLs stop working (seconds since the epoch): ask again for new ones.
    pub artifact_urls_expire_at: Option<i64>,
}

/// The body of `POST /api/v1/documents/{id}/builds`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBuild {
    /// -100 to 100; higher runs first. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// How an image Armbian leaves uncompressed is compressed: `zstd` (default) or `xz`.
    #[serde(default)]
    pub compress: quire_app::builds::Codec,
}

async fn build_view(app: &App, context: Context) -> ApiResult<Build> {
    let queue_position = app.builds().queue_position(&context).await?;
    let (artifact_urls, expires) = app.builds().artifact_urls(&context);
    let artifact_urls_expire_at = (!artifact_urls.is_empty()).then_some(expires);
    Ok(Build { context, queue_position, artifact_urls, artifact_urls_expire_at })
}

/// Build the image a board configuration describes: its settings are checked (a
/// configuration with errors is refused, 422 naming the first setting, `config.BRANCH`),
/// snapshotted with the schema version, and queued on the `builds` queue. Editors.
#[utoipa::path(post, operation_id = "start_build", path = "/api/v1/documents/{id}/builds", tag = "builds", request_body = StartBuild,
    params(("id" = String, Path, description = "A board-config document")),
    responses((status = 202, body = Build), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    body: Option<Json<StartBuild>>,
) -> ApiResult<Response> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let priority = body.priority;
    if !(-100..=100).contains(&priority) {
        return Err(quire_core::Error::invalid("priority", "priority is -100 to 100").into());
    }
    let context = app.builds().start(app.engine(), &who, &id, priority, body.compress).await?;
    let location = format!("/api/v1/builds/{}", context.id);
    let view = build_view(&app, context).await?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// Query of `GET /api/v1/documents/{id}/builds`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListBuilds {
    /// 1 to 200; 50 by default.
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A board configuration's builds, newest first.
#[utoipa::path(get, operation_id = "list_builds", path = "/api/v1/documents/{id}/builds", tag = "builds",
    params(("id" = String, Path, description = "A board-config document"), ListBuilds),
    responses((status = 200, body = quire_core::Page<Context>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    Query(p): Query<ListBuilds>,
) -> ApiResult<Response> {
    let (doc, _) = app.store().role_on_document(&who, &id).await?;
    let query = ContextQuery {
        workspace: Some(doc.workspace_id.clone()),
        status: None,
        kind: Some(KIND.into()),
        document: Some(doc.id.clone()),
        page: PageRequest::parse(None, "-created_at", "type", p.limit, p.cursor.as_deref(), app.store().limits())?,
    };
    Ok(Json(app.store().list_contexts(&who, &query).await?).into_response())
}

/// The build as it stands.
pub(crate) async fn visible_build(app: &App, who: &Principal, id: &str) -> ApiResult<Context> {
    let context = app.store().get_context(who, id).await?;
    if context.kind != KIND {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{id} is not a build")));
    }
    Ok(context)
}

/// One build, with its place in the queue while it waits.
#[utoipa::path(get, operation_id = "get_build", path = "/api/v1/builds/{id}", tag = "builds",
    params(("id" = String, Path, description = "The build's context id")),
    responses((status = 200, body = Build), (status = 404, body = ErrorBody)))]
pub async fn get(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let context = visible_build(&app, &who, &id).await?;
    Ok(Json(build_view(&app, context).await?).into_response())
}

/// Download an artifact of a finished build by name (`….img.zst`, `….img.sha`): `ETag` (its
/// SHA-256), one `Range`, `If-None-Match`; sent as it is read from the asset store.
#[utoipa::path(get, operation_id = "build_artifact", path = "/api/v1/builds/{id}/artifacts/{name}", tag = "builds",
    params(("id" = String, Path, description = "The build's context id"), ("name" = String, Path, description = "The artifact's file name")),
    responses((status = 200, description = "The file"), (status = 206, description = "The range asked for"),
        (status = 304, description = "The copy the client has"), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn artifact(
    State(app): State<App>,
    Actor(who): Actor,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let context = visible_build(&app, &who, &id).await?;
    let delivery = app.builds().artifact(&context, &name)?;
    let mut response =
        crate::routes::assets::deliver(&headers, "private, max-age=31536000, immutable", delivery).await?;
    attachment(&mut response, &name);
    Ok(response)
}

/// Download an artifact by the signed URL a build gives (`artifact_urls`): no token needed
/// until it expires; `Range` and `If-None-Match` as with the API's own download.
#[utoipa::path(get, operation_id = "signed_build_artifact", path = "/files/builds/{id}/{name}", tag = "builds",
    params(("id" = String, Path, description = "The build's context id"), ("name" = String, Path, description = "The artifact's file name"),
        crate::routes::assets::Signed),
    responses((status = 200, description = "The file"), (status = 206, description = "Part of it"), (status = 304, description = "Not modified"),
        (status = 403, body = ErrorBody, description = "Expired or not signed for this file"), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody)))]
pub async fn signed_artifact(
    State(app): State<App>,
    Path((id, name)): Path<(String, String)>,
    Query(s): Query<crate::routes::assets::Signed>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let delivery = app.builds().open_signed_artifact(&id, &name, s.expires, &s.sig).await?;
    let mut response =
        crate::routes::assets::deliver(&headers, "private, max-age=31536000, immutable", delivery).await?;
    attachment(&mut response, &name);
    Ok(response)
}

fn attachment(response: &mut Response, name: &str) {
    let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"));
    if let Ok(v) = header::HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
}

/// Query of `GET /api/v1/builds/{id}/log`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// `text` answers the whole log as it stands, as a file; the default is a live stream.
    format: Option<String>,
    /// Start after this line (0, the default, from the first). `Last-Event-ID` wins.
    after: Option<i64>,
}

/// A build's log. Live: Server-Sent Events `lines`, each a JSON array of `[number, time ms,
/// "out"|"err", text]` (ANSI colours kept), its `id` the last line's number — come back
/// with `Last-Event-ID` and nothing is lost —, before them `stages` when they begin stages of
/// the build (`[{name, at, line}]`, Armbian's alerts read as the build reads them), then `end`
/// with the build's status once it ended. `?format=text`: the whole log as it stands, one line per line.
#[utoipa::path(get, operation_id = "build_log", path = "/api/v1/builds/{id}/log", tag = "builds",
    params(("id" = String, Path, description = "The build's context id"), LogParams,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this line")),
    responses((status = 200, description = "text/event-stream, or text/plain with format=text"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log(
    State(app): State<App>,
    Actor(who): Actor,
    crate::extract::Expires(expires): crate::extract::Expires,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = crate::extract::last_event_id(&headers, "a line number")?.unwrap_or(p.after.unwrap_or(0)).max(0);
    visible_build(&app, &who, &id).await?;
    match p.format.as_deref() {
        Some("text") => {
            let body = Body::from_stream(text_stream(app, id.clone()));
            let disposition = format!("attachment; filename=\"{id}.log\"");
            return Ok((
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response());
        }
        None | Some("events") => {}
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("format '{other}' is not one; use text, or leave it out for the live stream"),
            ));
        }
    }
    let keep_alive = KeepAlive::new().interval(app.config().sse_keep_alive);
    let slot = app.open_connection(&who)?;
    let ended = app.credential_ended(who.clone(), expires);
    let events = log_stream(app, who, id, after).take_until(ended).map(move |e| {
        let _open = &slot;
        Ok::<_, Infallible>(e.sse())
    });
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// What a follower of a build's log is sent, over SSE, the WebSocket API or GraphQL. Lines
/// travel as a batch whose JSON is encoded once, for every follower of a live batch.
pub(crate) enum LogEvent {
    /// A batch of lines (`[[number, time, stream, text], …]`), up to its last line's number.
    Lines(LogBatch),
    /// The stages the batch's lines begin (`[{name, at, line}, …]`); sent before the lines, so
    /// a stream dropped between the two sends them again with the lines.
    Stages(LogBatch),
    /// The build ended with this status.
    End(quire_core::ContextStatus),
}

impl LogEvent {
    /// The last line's number of a `Lines` event.
    pub(crate) fn last(batch: &LogBatch) -> i64 {
        batch.lines.last().map_or(0, |l| l.n)
    }

    fn sse(&self) -> SseEvent {
        match self {
            LogEvent::Lines(b) => SseEvent::default().id(Self::last(b).to_string()).event("lines").data(&b.json),
            LogEvent::Stages(b) => SseEvent::default().event("stages").data(b.stages_json.as_deref().unwrap_or("[]")),
            LogEvent::End(status) => {
                SseEvent::default().event("end").data(serde_json::json!({ "status": status }).to_string())
            }
        }
    }
}

/// A batch's events: its stages, if it begins any, then its lines.
fn batch_events(batch: LogBatch) -> Vec<LogEvent> {
    let mut out = Vec::with_capacity(2);
    if batch.stages_json.is_some() {
        out.push(LogEvent::Stages(batch.clone()));
    }
    out.push(LogEvent::Lines(batch));
    out
}

fn lines_events(lines: Vec<LogLine>) -> Vec<LogEvent> {
    batch_events(std::sync::Arc::new(quire_app::builds::Batch::new(lines)))
}

/// Chunks read from the store per look.
const CHUNKS_PER_READ: u32 = 64;

struct Follow {
    app: App,
    who: Principal,
    id: String,
    after: i64,
    live: Option<tokio::sync::broadcast::Receiver<quire_app::builds::LogBatch>>,
    /// The last live batch followed on from what was sent: wait for the next one without
    /// reading the store or the build again (per batch and follower, that was the hot path).
    caught_up: bool,
    ended: bool,
}

/// A build's log from line `after` on: what is kept, then live, then its end.
pub(crate) fn log_stream(app: App, who: Principal, id: String, after: i64) -> impl Stream<Item = LogEvent> {
    let state = Follow { app, who, id, after, live: None, caught_up: false, ended: false };
    let batches = stream::unfold(state, |mut s| async move {
        loop {
            if s.ended {
                return None;
            }
            if s.caught_up
                && let Some(rx) = s.live.as_mut()
            {
                if let Some(events) = next_live(rx, &mut s.after).await {
                    return Some((events, s));
                }
                // A gap, a lag, a quiet spell or the build ended here: back to the store.
                s.caught_up = false;
            }
            // Listen first, then read what is kept: a batch sent meanwhile is in one or the other.
            if s.live.is_none() {
                s.live = s.app.builds().follow(&s.id);
            }
            let chunks = match s.app.store().build_log(&s.id, s.after, CHUNKS_PER_READ).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(build = %s.id, error = %e, "reading a build's log failed");
                    Vec::new()
                }
            };
            let lines: Vec<LogLine> = chunks.iter().flat_map(decode).filter(|l| l.n > s.after).collect();
            if !lines.is_empty() {
                s.after = lines.last().map_or(s.after, |l| l.n);
                return Some((lines_events(lines), s));
            }
            // Nothing more kept: the build ended, or more is on its way.
            let status = match s.app.store().get_context(&s.who, &s.id).await {
                Ok(c) => c.status,
                Err(_) => return None,
            };
            if status.is_terminal() {
                // Its last lines were kept before it finished; read once more, then end.
                let rest = s.app.store().build_log(&s.id, s.after, CHUNKS_PER_READ).await.unwrap_or_default();
                let lines: Vec<LogLine> = rest.iter().flat_map(decode).filter(|l| l.n > s.after).collect();
                if !lines.is_empty() {
                    s.after = lines.last().map_or(s.after, |l| l.n);
                    return Some((lines_events(lines), s));
                }
                s.ended = true;
                return Some((vec![LogEvent::End(status)], s));
            }
            match s.live.as_mut() {
                Some(rx) => {
                    if let Some(events) = next_live(rx, &mut s.after).await {
                        s.caught_up = true;
                        return Some((events, s));
                    }
                    // Lagged behind, or the build ended on this process: listen anew.
                    if rx.is_closed() {
                        s.live = None;
                    }
                }
                // Running elsewhere (or not yet): look again shortly.
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    });
    batches.flat_map(stream::iter)
}

/// The next live batch as events, when it follows on from line `after` (moved past it);
/// `None` on a gap, a lag, two quiet seconds or the end of the build on this process.
async fn next_live(
    rx: &mut tokio::sync::broadcast::Receiver<quire_app::builds::LogBatch>,
    after: &mut i64,
) -> Option<Vec<LogEvent>> {
    let batch = match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        Ok(Ok(batch)) => batch,
        Ok(Err(_)) | Err(_) => return None,
    };
    let (first, last) = (batch.lines.first()?, batch.lines.last()?);
    // The whole batch follows on: its JSON as encoded once for every follower.
    if first.n == *after + 1 {
        *after = last.n;
        return Some(batch_events(batch.clone()));
    }
    // Part of it was read from the store: the rest, if it follows on; a gap is read from the store.
    let lines: Vec<LogLine> = batch.lines.iter().filter(|l| l.n > *after).cloned().collect();
    if lines.first().is_some_and(|l| l.n == *after + 1) {
        *after = last.n;
        return Some(lines_events(lines));
    }
    None
}

/// The whole log as text, read chunk by chunk.
fn text_stream(app: App, id: String) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    stream::unfold((app, id, 0i64, false), |(app, id, after, done)| async move {
        if done {
            return None;
        }
        let chunks = match app.store().build_log(&id, after, CHUNKS_PER_READ).await {
            Ok(c) => c,
            Err(e) => return Some((Err(std::io::Error::other(e.to_string())), (app, id, after, true))),
        };
        let lines: Vec<LogLine> = chunks.iter().flat_map(decode).filter(|l| l.n > after).collect();
        let last = lines.last().map(|l| l.n)?;
        let mut text = String::new();
        for l in &lines {
            text.push_str(&l.text);
            text.push('\n');
        }
        Some((Ok(bytes::Bytes::from(text)), (app, id, last, false)))
    })
}
