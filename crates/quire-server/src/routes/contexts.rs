//! The contexts API: submit pipelines, follow them, cancel and retry them; templates, the
//! component registry and the workers.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use quire_core::{
    Context, ContextEvent, ContextQuery, NewContext, NewTemplate, Page, PageRequest, Principal, Template, WorkerInfo,
};
use quire_jobs::ComponentInfo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json, Query};

/// The workspace a request acts in: the one named, else the API key's, else the caller's
/// default (the first workspace they joined that still exists).
pub(crate) async fn workspace_of(app: &App, who: &Principal, named: Option<String>) -> ApiResult<String> {
    if let Some(ws) = named.filter(|w| !w.is_empty()) {
        return Ok(ws);
    }
    if let Principal::ApiKey { workspace_id, .. } = who {
        return Ok(workspace_id.clone());
    }
    let default = match who.user_id() {
        Some(user) => app.store().default_workspace(user).await?,
        None => None,
    };
    default.ok_or_else(|| {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "you belong to no workspace: create one (POST /api/v1/workspaces) or accept an invitation, then name it \
             (its id or slug) in 'workspace'",
        );
        e.field = Some("workspace".into());
        e
    })
}

/// 202 with the context and its `Location`; 200 (and `Idempotent-Replayed: true`) when an
/// earlier submission with the same idempotency key made it.
fn submitted(ctx: Context, created: bool) -> Response {
    let location = format!("/api/v1/contexts/{}", ctx.id);
    let mut res = Json(ctx).into_response();
    *res.status_mut() = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    if !created {
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// Submit a context: its data runs through the pipeline's components in order. Answers 202
/// with the context (`status: pending`); a repeated `idempotency_key` answers 200 with the
/// context the first submission made (409 if the request differs).
#[utoipa::path(post, path = "/api/v1/contexts", tag = "contexts", request_body = NewContext,
    responses((status = 202, body = Context, headers(("Location" = String))),
        (status = 200, body = Context, description = "An earlier submission with this idempotency key"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn submit(State(app): State<App>, Actor(who): Actor, Json(mut new): Json<NewContext>) -> ApiResult<Response> {
    let ws = workspace_of(&app, &who, new.workspace.take()).await?;
    let (ctx, created) = app.engine().submit(&who, &ws, vec![new]).await?.remove(0);
    if created {
        prompt_submitted(&app, &who, &ctx).await;
    }
    Ok(submitted(ctx, created))
}

/// The generating components: a context running one of them was a prompt submitted to AI.
const GENERATORS: [&str; 2] = ["ai_generator", "image_generator"];

/// Raises `ai.prompt.submitted` for a new context that runs an AI generator (seed 002
/// §5.2): its type, pipeline, template and the start of its request.
async fn prompt_submitted(app: &App, who: &Principal, ctx: &Context) {
    if !ctx.pipeline.iter().any(|c| GENERATORS.contains(&c.as_str())) {
        return;
    }
    let request: String =
        ctx.data.get("request").and_then(|r| r.as_str()).unwrap_or_default().chars().take(280).collect();
    let data = serde_json::json!({
        "context_id": ctx.id,
        "type": ctx.kind,
        "pipeline": ctx.pipeline,
        "template_id": ctx.data.get("template_id"),
        "document_id": ctx.data.get("document_id"),
        "request": request,
    });
    if let Err(e) = app.store().record_event(who, "ai.prompt.submitted", &ctx.workspace_id, None, data).await {
        tracing::warn!(context = %ctx.id, error = %e, "recording ai.prompt.submitted failed");
    }
}

/// Many contexts at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextBatch {
    /// The workspace for every context (id or slug); optional as for one context.
    #[serde(default)]
    workspace: Option<String>,
    /// 1 to 100 contexts.
    contexts: Vec<NewContext>,
}

/// The contexts a batch made, in the order submitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmittedBatch {
    contexts: Vec<Context>,
}

/// Submit up to 100 contexts in one request, all or none: one invalid context refuses the
/// batch and names it (`contexts[3].pipeline[0]`).
#[utoipa::path(post, path = "/api/v1/contexts/batch", tag = "contexts", request_body = ContextBatch,
    responses((status = 202, body = SubmittedBatch), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn submit_batch(
    State(app): State<App>,
    Actor(who): Actor,
    Json(batch): Json<ContextBatch>,
) -> ApiResult<Response> {
    let ws = workspace_of(&app, &who, batch.workspace).await?;
    let made = app.engine().submit(&who, &ws, batch.contexts).await?;
    for (ctx, created) in &made {
        if *created {
            prompt_submitted(&app, &who, ctx).await;
        }
    }
    let body = SubmittedBatch { contexts: made.into_iter().map(|m| m.0).collect() };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Query parameters of `GET /api/v1/contexts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListContexts {
    /// Only this workspace's (id or slug); by default every workspace you belong to.
    workspace: Option<String>,
    /// pending, processing, completed, failed, retrying or cancelled.
    status: Option<String>,
    /// The context type, e.g. `article`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Only those working on this document (submitted with it as `data.document_id`).
    document: Option<String>,
    /// `-created_at` (default), `created_at`, `updated_at`, `type`; `-` for descending.
    sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List contexts, newest first, filtered by status, type and document.
#[utoipa::path(get, operation_id = "list_contexts", path = "/api/v1/contexts", tag = "contexts", params(ListContexts),
    responses((status = 200, body = Page<Context>), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(State(app): State<App>, Actor(who): Actor, Query(p): Query<ListContexts>) -> ApiResult<Response> {
    let limits = app.store().limits();
    let query = ContextQuery {
        workspace: p.workspace,
        status: p.status.as_deref().map(str::parse).transpose()?,
        kind: p.kind.filter(|k| !k.is_empty()),
        document: p.document.filter(|d| !d.is_empty()),
        page: PageRequest::parse(p.sort.as_deref(), "-created_at", "type", p.limit, p.cursor.as_deref(), limits)?,
    };
    Ok(Json(app.store().list_contexts(&who, &query).await?).into_response())
}

/// Get a context: its status, data so far, processing record, progress and last error.
#[utoipa::path(get, operation_id = "get_context", path = "/api/v1/contexts/{id}", tag = "contexts",
    params(("id" = String, Path, description = "Context id")),
    responses((status = 200, body = Context), (status = 404, body = ErrorBody)))]
pub async fn get(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(app.store().get_context(&who, &id).await?).into_response())
}

/// Cancel a context. A pending or retrying one is cancelled at once (200); a processing one
/// is flagged (202, `cancel_requested: true`) and its worker stops the running component
/// within moments, then records `cancelled`. 409 once it has ended.
#[utoipa::path(post, path = "/api/v1/contexts/{id}/cancel", tag = "contexts",
    params(("id" = String, Path, description = "Context id")),
    responses((status = 200, body = Context), (status = 202, body = Context), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let ctx = app.store().cancel_context(&who, &id).await?;
    let status = if ctx.cancel_requested { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(ctx)).into_response())
}

/// Approve a completed AI draft into the document it was made for (`data.document_id`, a
/// PRD): the draft replaces the document's content as one change in the caller's name, live
/// for everyone editing it, makes a version ("Approved the AI draft by <model>") and raises
/// `prd.approved`. Needs the editor role; 409 while the draft is being written or when it failed.
#[utoipa::path(post, path = "/api/v1/contexts/{id}/approve", tag = "contexts",
    params(("id" = String, Path, description = "Context id")),
    responses((status = 200, body = quire_app::drafts::Approval), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn approve(State(app): State<App>, Actor(who): Actor, Path(id): Path<String>) -> ApiResult<Response> {
    let writer = crate::routes::collab::presence_user(&app, &who).await;
    Ok(Json(app.drafts().approve(&who, writer, &id).await?).into_response())
}

/// Where a retry starts.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// `failed` (default): from the component that failed, keeping what earlier components
    /// added; `start`: from the submitted data, running every component again.
    #[serde(default)]
    from: Option<String>,
}

/// Retry a failed or cancelled context (`status` becomes `retrying`, attempts start over).
#[utoipa::path(post, path = "/api/v1/contexts/{id}/retry", tag = "contexts", request_body(content = Option<RetryRequest>),
    params(("id" = String, Path, description = "Context id")),
    responses((status = 202, body = Context), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn retry(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    body: Option<Json<RetryRequest>>,
) -> ApiResult<Response> {
    let from_start = match body.and_then(|Json(b)| b.from).as_deref() {
        None | Some("failed") => false,
        Some("start") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("from: '{other}' is neither 'failed' nor 'start'"),
            ));
        }
    };
    let ctx = app.store().retry_context(&who, &id, from_start).await?;
    Ok((StatusCode::ACCEPTED, Json(ctx)).into_response())
}

/// Query parameters of `GET /api/v1/contexts/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamContextEvents {
    /// Start after this event number (0, the default, replays from the submission).
    /// `Last-Event-ID` wins when both are given.
    after: Option<i64>,
}

/// Follow a context as Server-Sent Events: `id` is the event's number, `event` its kind
/// (`status`, `component`, `progress`, `log`), `data` the event as JSON. The stream replays
/// from the start (or after `Last-Event-ID`) and ends after the context completes, fails
/// or is cancelled.
#[utoipa::path(get, path = "/api/v1/contexts/{id}/events", tag = "contexts",
    params(("id" = String, Path, description = "Context id"), StreamContextEvents,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event number")),
    responses((status = 200, content_type = "text/event-stream", body = ContextEvent), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn events(
    State(app): State<App>,
    Actor(who): Actor,
    crate::extract::Expires(expires): crate::extract::Expires,
    Path(id): Path<String>,
    Query(p): Query<StreamContextEvents>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = crate::extract::last_event_id(&headers, "an event number")?.unwrap_or(p.after.unwrap_or(0));
    // Refuse at once (404) what the caller may not see, rather than inside the stream.
    app.store().get_context(&who, &id).await?;
    let keep_alive = KeepAlive::new().interval(app.config().sse_keep_alive);
    let slot = app.open_connection(&who)?;
    let ended = app.credential_ended(who.clone(), expires);
    let events = context_stream(app, who, id, after.max(0)).take_until(ended).map(move |e| {
        let _open = &slot; // held as long as the stream is
        Ok::<_, Infallible>(
            SseEvent::default()
                .id(e.seq.to_string())
                .event(&e.kind)
                .data(serde_json::to_string(&e).expect("events serialise")),
        )
    });
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

struct Follow {
    app: App,
    who: Principal,
    id: String,
    after: i64,
    queue: std::collections::VecDeque<ContextEvent>,
    done: bool,
    signal: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

/// A context's events after `after`, as they come, until it has ended (or the server stops).
pub(crate) fn context_stream(app: App, who: Principal, id: String, after: i64) -> impl Stream<Item = ContextEvent> {
    let signal = app.store().job_signal();
    let shutdown = app.shutdown_signal();
    let state = Follow { app, who, id, after, queue: Default::default(), done: false, signal, shutdown };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.queue.pop_front() {
                s.after = e.seq;
                return Some((e, s));
            }
            if s.done || *s.shutdown.borrow() {
                return None;
            }
            s.signal.borrow_and_update();
            match s.app.store().context_events(&s.who, &s.id, s.after, 200).await {
                Ok((ctx, events)) => {
                    // The context is read before its events, and its final status commits
                    // with its last event: once it has ended, this read holds the rest.
                    s.done = ctx.status.is_terminal() && events.len() < 200;
                    if !events.is_empty() || s.done {
                        s.queue.extend(events);
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(context = %s.id, error = %e, "reading context events failed");
                }
            }
            tokio::select! {
                _ = until_contexts_change(&mut s.signal) => {}
                _ = s.shutdown.changed() => {}
            }
        }
    })
}

/// The least time between two reads of a followed context.
const STREAM_SPACING: Duration = Duration::from_millis(25);

/// Waits until contexts may have changed (or a second passed), for a follower of one to read
/// it again. Every context change in the process wakes every follower: they read at most
/// every STREAM_SPACING, so a busy worker does not cost each follower a read per commit.
pub(crate) async fn until_contexts_change(signal: &mut tokio::sync::watch::Receiver<u64>) {
    let read_at = tokio::time::Instant::now();
    tokio::select! {
        _ = signal.changed() => tokio::time::sleep_until(read_at + STREAM_SPACING).await,
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// Query parameters of `GET /api/v1/templates`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTemplates {
    /// The workspace (id or slug); the API key's or the caller's default when left out.
    workspace: Option<String>,
}

/// The templates a workspace can use: its own and Quire's built-in ones, each at its latest version.
#[utoipa::path(get, path = "/api/v1/templates", tag = "contexts", params(ListTemplates),
    responses((status = 200, body = Vec<Template>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_templates(
    State(app): State<App>,
    Actor(who): Actor,
    Query(p): Query<ListTemplates>,
) -> ApiResult<Response> {
    let ws = workspace_of(&app, &who, p.workspace).await?;
    Ok(Json(app.store().list_templates(&who, &ws).await?).into_response())
}

/// A template to store, with the workspace it belongs to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// The workspace (id or slug); the API key's or the caller's default when left out.
    #[serde(default)]
    workspace: Option<String>,
    /// A new version of this template (give its id); a new template when absent.
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    tone: Option<String>,
    #[serde(default)]
    description: String,
    #[schema(value_type = Vec<Object>)]
    sections: Vec<serde_json::Value>,
}

/// Store a template (version 1), or with `id` a new version of one. Versions are kept; the
/// `template` component uses the latest unless a context names `template_version`.
#[utoipa::path(post, operation_id = "create_pipeline_template", path = "/api/v1/templates", tag = "contexts", request_body = TemplateRequest,
    responses((status = 201, body = Template, headers(("Location" = String))), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_template(
    State(app): State<App>,
    Actor(who): Actor,
    Json(t): Json<TemplateRequest>,
) -> ApiResult<Response> {
    let ws = workspace_of(&app, &who, t.workspace).await?;
    let new = NewTemplate {
        id: t.id,
        name: t.name,
        kind: t.kind,
        tone: t.tone,
        description: t.description,
        sections: t.sections,
    };
    let made = app.store().create_template(&who, &ws, new).await?;
    let location = format!("/api/v1/templates/{}?version={}", made.id, made.version);
    let mut res = (StatusCode::CREATED, Json(made)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Query parameters of `GET /api/v1/templates/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetTemplate {
    /// A version number; the latest by default.
    version: Option<i32>,
}

/// Get a template at its latest version or at `version`.
#[utoipa::path(get, operation_id = "get_pipeline_template", path = "/api/v1/templates/{id}", tag = "contexts",
    params(("id" = String, Path, description = "Template id"), GetTemplate),
    responses((status = 200, body = Template), (status = 404, body = ErrorBody)))]
pub async fn get_template(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
    Query(p): Query<GetTemplate>,
) -> ApiResult<Response> {
    Ok(Json(app.store().get_template(&who, &id, p.version).await?).into_response())
}

/// The components pipelines can name on this instance.
#[utoipa::path(get, path = "/api/v1/components", tag = "contexts",
    responses((status = 200, body = Vec<ComponentInfo>), (status = 401, body = ErrorBody)))]
pub async fn components(State(app): State<App>, Actor(_who): Actor) -> ApiResult<Response> {
    Ok(Json(app.engine().registry().describe()).into_response())
}

/// The workers that registered, live ones first, with the contexts they hold now.
/// Instance administrators only.
#[utoipa::path(get, path = "/api/v1/workers", tag = "contexts",
    responses((status = 200, body = Vec<WorkerInfo>), (status = 403, body = ErrorBody)))]
pub async fn workers(State(app): State<App>, Actor(who): Actor) -> ApiResult<Response> {
    let stale_after = app.engine().config().lease.as_millis() as i64;
    Ok(Json(app.store().list_workers(&who, quire_core::now_ms(), stale_after).await?).into_response())
}
