//! AI: the taxonomy, prompt templates, providers and a workspace's choice of them, streamed
//! generation, and the interactions log.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, Stream, StreamExt};
use quire_ai::prompt::{PromptTemplate, Surroundings, builtin_templates};
use quire_ai::{AiError, AiErrorKind, Message, Section, TextEvent, TextRequest, TextStream};
use quire_core::{Interaction, InteractionQuery, Page, Principal, Role};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json, Query};
use crate::routes::contexts::workspace_of;
use quire_app::ai::log::{Log, interaction, prompt_text};
use quire_app::ai::{AiChoice, ProviderInfo, ProviderSpec, WorkspaceAi};

/// The sections of a PRD, each with its prompt fragment and whether drafts need it.
#[utoipa::path(get, path = "/api/v1/taxonomy/prd-sections", tag = "ai",
    responses((status = 200, description = "The PRD sections", body = Object)))]
pub async fn prd_sections() -> Response {
    Json(json!({ "items": quire_ai::taxonomy::prd_sections() })).into_response()
}

/// The room types of moodboards, each with its prompt fragment.
#[utoipa::path(get, path = "/api/v1/taxonomy/room-types", tag = "ai",
    responses((status = 200, description = "The room types", body = Object)))]
pub async fn room_types() -> Response {
    Json(json!({ "items": quire_ai::taxonomy::room_types() })).into_response()
}

/// The design styles of moodboards: prompt fragments, palettes, materials.
#[utoipa::path(get, path = "/api/v1/taxonomy/design-styles", tag = "ai",
    responses((status = 200, description = "The design styles", body = Object)))]
pub async fn design_styles() -> Response {
    Json(json!({ "items": quire_ai::taxonomy::design_styles() })).into_response()
}

/// Query of `GET /api/v1/ai/templates`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTemplates {
    /// A workspace (id or slug) whose own templates are listed too.
    workspace: Option<String>,
}

/// The prompt templates: Quire's (`source: builtin`), and with `workspace` every version of
/// that workspace's own (`source: workspace`); name, version, declared variables, sources.
#[utoipa::path(get, path = "/api/v1/ai/templates", tag = "ai", params(ListTemplates),
    responses((status = 200, description = "The prompt templates", body = Object), (status = 404, body = ErrorBody)))]
pub async fn templates(
    State(app): State<App>,
    Actor(who): Actor,
    Query(q): Query<ListTemplates>,
) -> ApiResult<Response> {
    let items = app.ai().prompt_templates(&who, q.workspace.as_deref()).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// A workspace's own prompt template: stored as the next version of its name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPromptTemplate {
    /// The workspace (id or slug); optional as for contexts.
    #[serde(default)]
    workspace: Option<String>,
    /// 1 to 64 letters, digits, '.', '_' or '-'; not a built-in template's name.
    name: String,
    #[serde(default)]
    description: String,
    /// `text` or `image`.
    #[schema(value_type = String)]
    output: quire_ai::prompt::Output,
    /// Each `{name, description, required, max_chars, choices}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    variables: Vec<quire_ai::prompt::Variable>,
    #[serde(default)]
    system: String,
    /// minijinja; may use the declared variables, `document`, `workspace`, `sections` and
    /// `taxonomy`.
    prompt: String,
    #[serde(default)]
    negative_prompt: String,
    /// Taxonomy keys of the draft's sections (text templates).
    #[serde(default)]
    sections: Vec<String>,
}

/// Define a prompt template of the workspace's own (its editors), or the next version of
/// one. Checked before it is stored: it parses, uses only names it declares, stays within
/// the limits. Pipelines name it with `prompt_template`, generation with `template`.
#[utoipa::path(post, operation_id = "create_prompt_template", path = "/api/v1/ai/templates", tag = "ai", request_body = NewPromptTemplate,
    responses((status = 201, description = "The stored template, with its version", body = Object,
        headers(("Location" = String))),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_template(
    State(app): State<App>,
    Actor(who): Actor,
    Json(t): Json<NewPromptTemplate>,
) -> ApiResult<Response> {
    let ws = workspace_of(&app, &who, t.workspace).await?;
    let template = PromptTemplate {
        name: t.name,
        version: 0,
        description: t.description,
        output: t.output,
        variables: t.variables,
        system: t.system,
        prompt: t.prompt,
        negative_prompt: t.negative_prompt,
        sections: t.sections,
    };
    if builtin_templates().iter().any(|b| b.name == template.name) {
        return Err(unprocessable(
            "invalid_template",
            format!("'{}' is a built-in template's name; give yours a name of its own", template.name),
        ));
    }
    template.validate().map_err(|e| unprocessable(e.code, e.message))?;
    let body = serde_json::to_value(&template).map_err(|e| quire_core::Error::Internal(e.to_string()))?;
    let stored = app.store().create_prompt(&who, &ws, &template.name, &body).await?;
    let made = quire_app::ai::stored_template(&stored)?;
    let location =
        format!("/api/v1/ai/templates/{}?workspace={}&version={}", made.name, stored.workspace_id, made.version);
    let mut out = serde_json::to_value(&made).unwrap_or_default();
    out["source"] = "workspace".into();
    out["created_by"] = stored.created_by.into();
    let mut res = (StatusCode::CREATED, Json(out)).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&location) {
        res.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(res)
}

/// Query of `GET /api/v1/ai/templates/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetTemplate {
    /// The workspace whose template it is (id or slug); not needed for built-in ones.
    workspace: Option<String>,
    /// The version; the latest by default.
    version: Option<u32>,
}

/// One prompt template: a built-in one, or a version of a workspace's own.
#[utoipa::path(get, operation_id = "get_prompt_template", path = "/api/v1/ai/templates/{name}", tag = "ai", params(("name" = String, Path), GetTemplate),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_template(
    State(app): State<App>,
    Actor(who): Actor,
    Path(name): Path<String>,
    Query(q): Query<GetTemplate>,
) -> ApiResult<Response> {
    let ws = match &q.workspace {
        Some(ws) => app.store().role_in_workspace(&who, ws).await?.0.id,
        None => String::new(),
    };
    let found = app.ai().prompt_template(&ws, &name, q.version).await?;
    let t = found.map_err(|m| ApiError::new(StatusCode::NOT_FOUND, "not_found", m))?;
    Ok(Json(t).into_response())
}

/// Every AI provider of the instance (`quire-builtin` first), without secrets.
#[utoipa::path(get, path = "/api/v1/ai/providers", tag = "ai",
    responses((status = 200, body = Vec<ProviderInfo>), (status = 401, body = ErrorBody)))]
pub async fn providers(State(app): State<App>, Actor(who): Actor) -> ApiResult<Response> {
    if who == Principal::Anonymous {
        return Err(quire_core::Error::Unauthenticated("sign in to list AI providers".into()).into());
    }
    Ok(Json(app.ai().providers().await?).into_response())
}

/// Define or replace a provider (instance administrators). Its key is stored sealed with the
/// instance's secret keys and never shown again.
#[utoipa::path(put, path = "/api/v1/ai/providers/{name}", tag = "ai", request_body = ProviderSpec,
    params(("name" = String, Path, description = "a-z, 0-9 and '-'")),
    responses((status = 200, body = ProviderInfo), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_provider(
    State(app): State<App>,
    Actor(who): Actor,
    Path(name): Path<String>,
    Json(spec): Json<ProviderSpec>,
) -> ApiResult<Response> {
    if !who.is_superuser() {
        return Err(quire_core::Error::Forbidden("only instance administrators define AI providers".into()).into());
    }
    Ok(Json(app.ai().put_provider(&name, &spec).await?).into_response())
}

/// Remove a provider (instance administrators); refused while the instance's default or a
/// workspace still chooses it.
#[utoipa::path(delete, path = "/api/v1/ai/providers/{name}", tag = "ai",
    params(("name" = String, Path, description = "The provider's name")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_provider(
    State(app): State<App>,
    Actor(who): Actor,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    if !who.is_superuser() {
        return Err(quire_core::Error::Forbidden("only instance administrators remove AI providers".into()).into());
    }
    app.ai().delete_provider(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The instance's default providers: what a workspace uses for a purpose it chose nothing
/// for (`quire-builtin` for a purpose the default leaves out).
#[utoipa::path(get, path = "/api/v1/ai/default", tag = "ai",
    responses((status = 200, body = AiChoice), (status = 401, body = ErrorBody)))]
pub async fn get_default(State(app): State<App>, Actor(who): Actor) -> ApiResult<Response> {
    if who == Principal::Anonymous {
        return Err(quire_core::Error::Unauthenticated("sign in to read the AI defaults".into()).into());
    }
    Ok(Json(app.ai().default_choice().await?).into_response())
}

/// Set the instance's default providers (instance administrators).
#[utoipa::path(put, path = "/api/v1/ai/default", tag = "ai", request_body = AiChoice,
    responses((status = 200, body = AiChoice), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_default(
    State(app): State<App>,
    Actor(who): Actor,
    Json(choice): Json<AiChoice>,
) -> ApiResult<Response> {
    if !who.is_superuser() {
        return Err(quire_core::Error::Forbidden("only instance administrators set the AI defaults".into()).into());
    }
    Ok(Json(app.ai().set_default(&choice).await?).into_response())
}

/// The providers a workspace uses for text, images and embeddings.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/ai", tag = "ai",
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = WorkspaceAi), (status = 404, body = ErrorBody)))]
pub async fn get_workspace_ai(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
) -> ApiResult<Response> {
    let (ws, _) = app.store().role_in_workspace(&who, &ws).await?;
    Ok(Json(app.ai().workspace(&ws.id).await?).into_response())
}

/// Choose a workspace's providers (its admins).
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/ai", tag = "ai", request_body = AiChoice,
    params(("ws" = String, Path, description = "Workspace id or slug")),
    responses((status = 200, body = WorkspaceAi), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_workspace_ai(
    State(app): State<App>,
    Actor(who): Actor,
    Path(ws): Path<String>,
    Json(choice): Json<AiChoice>,
) -> ApiResult<Response> {
    let (ws, role) = app.store().role_in_workspace(&who, &ws).await?;
    if role < Role::Admin {
        return Err(quire_core::Error::Forbidden("only the workspace's admins choose its AI providers".into()).into());
    }
    Ok(Json(app.ai().set_workspace(&ws.id, &choice).await?).into_response())
}

/// A generation request: a template with its variables, or messages of one's own.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The workspace (id or slug); optional as for contexts.
    #[serde(default)]
    workspace: Option<String>,
    /// A text template's name (`prd.draft`); `messages` instead when none.
    #[serde(default)]
    template: Option<String>,
    /// The template's version; its latest by default.
    #[serde(default)]
    template_version: Option<u32>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// A document whose kind, title and sections enrich the prompt.
    #[serde(default)]
    document_id: Option<String>,
    /// 1 to 50 messages, when no template is used.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    messages: Option<Vec<Message>>,
    /// A provider other than the workspace's.
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

/// The most a request's own messages may hold.
const MAX_MESSAGES_CHARS: usize = 65_536;

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// The workspace a call to a provider is for (named, or the caller's only one), when the
/// caller may edit in it: provider calls cost.
async fn editor_workspace(
    app: &App,
    who: &Principal,
    named: Option<String>,
    doing: &str,
) -> ApiResult<quire_core::Workspace> {
    let ws = workspace_of(app, who, named).await?;
    let (ws, role) = app.store().role_in_workspace(who, &ws).await?;
    if role < Role::Editor {
        return Err(quire_core::Error::Forbidden(format!("{doing} needs the editor role in the workspace")).into());
    }
    Ok(ws)
}

/// A provider failure as HTTP: 504 for a timeout, 503 while its circuit is open, else 502.
fn provider_error(e: &AiError) -> ApiError {
    let status = match e.kind {
        AiErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        AiErrorKind::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut err = ApiError::new(status, "provider_failed", e.to_string());
    err.retry_after = e.retry_after.map(|d| d.as_secs().max(1));
    err
}

/// Generate text, streamed as Server-Sent Events: `chunk` events (`{"text"}`) as the
/// provider writes, then `done` (`{provider, model, usage, finish_reason, interaction_id,
/// quality}`) or `error` (`{"error": {code, message}}`). Closing the connection stops the
/// provider's generation. Errors before the first chunk are JSON responses: 422 for bad
/// variables, 502/503/504 when the provider fails.
#[utoipa::path(post, path = "/api/v1/ai/generate", tag = "ai", request_body = GenerateRequest,
    responses((status = 200, description = "text/event-stream of chunk events, then done or error"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
pub async fn generate(
    State(app): State<App>,
    Actor(who): Actor,
    Json(body): Json<GenerateRequest>,
) -> ApiResult<Response> {
    let ws = editor_workspace(&app, &who, body.workspace.clone(), "generating").await?;
    if let Some(t) = body.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(unprocessable("invalid_request", format!("temperature: {t} is not from 0 to 2")));
    }
    if let Some(m) = body.max_tokens.filter(|m| !(1..=32_768).contains(m)) {
        return Err(unprocessable("invalid_request", format!("max_tokens: {m} is not from 1 to 32768")));
    }
    let mut around = Surroundings { workspace: Some(ws.name.clone()), ..Default::default() };
    if let Some(id) = &body.document_id {
        let (doc, _) = app.store().role_on_document(&who, id).await?;
        around.document = Some(app.ai().document_context(&doc).await?);
    }
    let (mut request, template, sections) = match (&body.template, &body.messages) {
        (Some(name), None) => {
            let t = app
                .ai()
                .prompt_template(&ws.id, name, body.template_version)
                .await?
                .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, "not_found", m))?;
            if t.output != quire_ai::prompt::Output::Text {
                return Err(unprocessable(
                    "invalid_request",
                    format!("template '{name}' makes images; run it in a pipeline with image_generator"),
                ));
            }
            let rendered = t.render(&body.variables, &around).map_err(|e| unprocessable(e.code, e.message))?;
            let title =
                body.variables.get("title").cloned().or_else(|| around.document.as_ref().map(|d| d.title.clone()));
            let said = body.variables.get("request").cloned().unwrap_or_default();
            (rendered.text_request(title, &said), Some((t.name.clone(), t.version)), rendered.sections)
        }
        (None, Some(messages)) => {
            let total: usize = messages.iter().map(|m| m.content.len()).sum();
            if messages.is_empty() || messages.len() > 50 || total > MAX_MESSAGES_CHARS {
                return Err(unprocessable(
                    "invalid_request",
                    format!("messages: 1 to 50, at most {MAX_MESSAGES_CHARS} characters in all"),
                ));
            }
            (TextRequest { messages: messages.clone(), ..Default::default() }, None, Vec::new())
        }
        _ => return Err(unprocessable("invalid_request", "give either template (with variables) or messages")),
    };
    request.model = body.model.clone();
    request.temperature = body.temperature;
    request.max_tokens = body.max_tokens;
    let provider = app.ai().text_provider(&ws.id, body.provider.as_deref()).await?;
    let mut entry = interaction(&ws.id, who.actor(), "text", provider.name());
    entry.template = template.as_ref().map(|t| t.0.clone());
    entry.template_version = template.as_ref().map(|t| t.1 as i32);
    entry.model = request.model.clone().unwrap_or_default();
    entry.parameters =
        json!({ "temperature": request.temperature, "max_tokens": request.max_tokens, "model": request.model });
    entry.prompt = prompt_text(&request.messages);
    let mut log = app.ai().log(entry);
    let stream = log.check(provider.stream_text(&request).await).await.map_err(|e| provider_error(&e))?;
    let keep_alive = KeepAlive::new().interval(app.config().sse_keep_alive);
    Ok(Sse::new(events(stream, log, sections)).keep_alive(keep_alive).into_response())
}

/// The most text one `chunk` event gathers from deltas that arrived together.
const MERGED_CHUNK_BYTES: usize = 16 * 1024;

fn frame(name: &str, data: &Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().event(name).data(data.to_string()))
}

/// The SSE events of one generation.
fn events(stream: TextStream, log: Log, sections: Vec<Section>) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct State {
        stream: TextStream,
        log: Log,
        sections: Vec<Section>,
        text: String,
        /// What the provider sent after the deltas merged into the last chunk.
        pending: Option<Option<Result<TextEvent, AiError>>>,
        over: bool,
    }
    let state = State { stream, log, sections, text: String::new(), pending: None, over: false };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.over {
            return None;
        }
        let item = match s.pending.take() {
            Some(item) => item,
            None => s.stream.next().await,
        };
        let event = match item {
            Some(Ok(TextEvent::Delta(mut text))) => {
                s.log.first_chunk();
                // Deltas that have already arrived go out as one chunk: the same text in
                // fewer frames, and never a wait for one that has not.
                while text.len() < MERGED_CHUNK_BYTES {
                    match s.stream.next().now_or_never() {
                        None => break,
                        Some(Some(Ok(TextEvent::Delta(more)))) => text.push_str(&more),
                        Some(other) => {
                            s.pending = Some(other);
                            break;
                        }
                    }
                }
                s.text.push_str(&text);
                frame("chunk", &json!({ "text": text }))
            }
            Some(Ok(TextEvent::Done { model, usage, finish_reason })) => {
                s.over = true;
                let gate = quire_ai::gate::check_text(&s.text, &s.sections, quire_app::ai::components::MAX_TEXT_CHARS);
                let (status, error) = match &gate {
                    Ok(()) => ("ok", None),
                    Err(f) => ("gate_failed", Some(f.reason.clone())),
                };
                let provider = s.log.entry().map(|e| e.provider.clone()).unwrap_or_default();
                s.log.answered_by(&model);
                let id = s.log.close(status, error, usage).await;
                let quality = match gate {
                    Ok(()) => json!({ "passed": true }),
                    Err(f) => json!({ "passed": false, "check": f.check, "reason": f.reason }),
                };
                frame(
                    "done",
                    &json!({ "provider": provider, "model": model, "usage": usage, "finish_reason": finish_reason, "interaction_id": id, "quality": quality }),
                )
            }
            Some(Err(e)) => {
                s.over = true;
                let e = s.log.failed(e).await;
                frame("error", &json!({ "error": { "code": "provider_failed", "message": e.to_string() } }))
            }
            None => {
                s.over = true;
                let message = "the provider's stream ended without its end";
                s.log.close("failed", Some(message.into()), None).await;
                frame("error", &json!({ "error": { "code": "provider_failed", "message": message } }))
            }
        };
        Some((event, s))
    })
}

/// The most inputs one embeddings call takes, and the longest input.
pub const MAX_EMBED_INPUTS: usize = 256;
pub const MAX_EMBED_CHARS: usize = 32_768;

/// Texts to embed: one, or a list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

/// An embeddings request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// The workspace (id or slug); optional as for contexts.
    #[serde(default)]
    workspace: Option<String>,
    /// 1 to 256 texts of at most 32,768 characters.
    #[schema(value_type = Object)]
    input: EmbedInput,
    /// A provider other than the workspace's embedding provider.
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

/// Embed texts with the workspace's embedding provider: `{provider, model, dimensions, data:
/// [{index, embedding}], usage}`, one vector per input in order. Logged as an interaction of
/// kind `embedding`.
#[utoipa::path(post, path = "/api/v1/ai/embeddings", tag = "ai", request_body = EmbedRequest,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn embeddings(
    State(app): State<App>,
    Actor(who): Actor,
    Json(body): Json<EmbedRequest>,
) -> ApiResult<Response> {
    let ws = editor_workspace(&app, &who, body.workspace.clone(), "embedding").await?;
    let inputs = match body.input {
        EmbedInput::One(s) => vec![s],
        EmbedInput::Many(v) => v,
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBED_INPUTS {
        return Err(unprocessable("invalid_request", format!("input: 1 to {MAX_EMBED_INPUTS} texts")));
    }
    if let Some(i) = inputs.iter().position(|t| t.trim().is_empty() || t.chars().count() > MAX_EMBED_CHARS) {
        return Err(unprocessable(
            "invalid_request",
            format!("input[{i}]: a text is 1 to {MAX_EMBED_CHARS} characters, not blank"),
        ));
    }
    let provider = app.ai().embedding_provider(&ws.id, body.provider.as_deref()).await?;
    let mut entry = interaction(&ws.id, who.actor(), "embedding", provider.name());
    entry.model = body.model.clone().unwrap_or_default();
    entry.parameters = json!({ "model": body.model, "inputs": inputs.len() });
    entry.prompt = inputs.join("\n\n");
    let mut log = app.ai().log(entry);
    let made = log.check(provider.embed(body.model.as_deref(), &inputs).await).await.map_err(|e| provider_error(&e))?;
    log.answered_by(&made.model);
    log.close("ok", None, made.usage).await;
    let dimensions = made.vectors.first().map_or(0, Vec::len);
    let data: Vec<Value> =
        made.vectors.into_iter().enumerate().map(|(index, v)| json!({ "index": index, "embedding": v })).collect();
    Ok(Json(json!({
        "provider": provider.name(),
        "model": made.model,
        "dimensions": dimensions,
        "data": data,
        "usage": made.usage,
    }))
    .into_response())
}

/// Query of `GET /api/v1/ai/interactions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInteractions {
    /// The workspace (id or slug); optional as for contexts.
    workspace: Option<String>,
    /// ok, failed, cancelled or gate_failed.
    status: Option<String>,
    /// text, image or embedding.
    kind: Option<String>,
    /// Only those a pipeline context made.
    context_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A workspace's AI interactions, newest first: prompt, template and version, provider,
/// model, parameters, tokens, latency and status of each.
#[utoipa::path(get, path = "/api/v1/ai/interactions", tag = "ai", params(ListInteractions),
    responses((status = 200, body = Page<Interaction>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn interactions(
    State(app): State<App>,
    Actor(who): Actor,
    Query(p): Query<ListInteractions>,
) -> ApiResult<Response> {
    let ws = workspace_of(&app, &who, p.workspace).await?;
    let q = InteractionQuery::new(ws, p.status, p.kind, p.context_id, p.limit, p.cursor, app.store().limits())?;
    Ok(Json(app.store().list_interactions(&who, &q).await?).into_response())
}
