//! The pipeline components that call AI providers: `ai_generator` (text) and
//! `image_generator` (images). Each renders a prompt template from the context's data, calls
//! the workspace's provider (or the one `data.provider` names), passes the result through the
//! quality gate, logs the interaction with the context's id, and records what it made with
//! `model_used` and `generation_parameters`.
//!
//! A provider that fails for a while (timeout, rate limit, unavailable, open circuit) and a
//! result that fails the gate are retryable: the engine tries the context again with backoff
//! and fails it with the reason when its attempts run out. A request no retry can fix (an
//! unknown template, a missing variable, a provider that refuses it) fails at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use quire_ai::prompt::{Output, PromptTemplate, Rendered, Surroundings};
use quire_ai::{AiError, AiErrorKind, Section, TextEvent};
use quire_jobs::{Component, ComponentError, ComponentInfo, Run};
use serde_json::{Map, Value, json};

use super::Ai;
use super::log::{interaction, prompt_text};

/// The most generated text kept; more fails the quality gate.
pub const MAX_TEXT_CHARS: usize = 200_000;
/// How often a running generation reports its progress, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The components of this module, for the registry.
pub fn register(registry: &mut quire_jobs::Registry, ai: Arc<Ai>, assets: Arc<crate::assets::Assets>) {
    registry
        .register(AiGenerator { ai: ai.clone() })
        .register(ImageGenerator { ai: ai.clone(), assets: assets.clone() })
        .register(super::board::BoardImages { ai, assets });
}

pub(super) fn invalid(message: impl Into<String>) -> ComponentError {
    ComponentError::permanent("invalid_input", message)
}

/// A provider's failure: retried unless the provider refused the request itself.
pub(super) fn provider_failed(e: &AiError) -> ComponentError {
    match e.kind {
        AiErrorKind::Rejected => ComponentError::permanent("provider_rejected", e.to_string()),
        _ => ComponentError::retryable("provider_failed", e.to_string()),
    }
}

/// A store or provider-lookup error: a missing provider is the request's fault.
pub(super) fn lookup_failed(e: quire_core::Error) -> ComponentError {
    match e {
        quire_core::Error::NotFound { what, id } => {
            invalid(format!("no {what} '{id}'; GET /api/v1/ai/providers lists them"))
        }
        quire_core::Error::Invalid { message, .. } => invalid(message),
        other => other.into(),
    }
}

/// The optional string `key` of `data`.
pub(super) fn opt_str<'a>(data: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ComponentError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("data.{key} must be a string"))),
    }
}

/// The optional whole number `key` of `data`, within `range`.
pub(super) fn opt_u32(
    data: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, ComponentError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| range.contains(n)).map(Some).ok_or_else(|| {
                invalid(format!("data.{key} must be a whole number from {} to {}", range.start(), range.end()))
            })
        }
    }
}

/// What the caller chose: the prompt template, the provider and the model's settings.
pub(super) struct Choice {
    pub(super) template: PromptTemplate,
    pub(super) provider: Option<String>,
    pub(super) model: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
}

impl Choice {
    pub(super) async fn read(
        ai: &Ai,
        workspace_id: &str,
        data: &Map<String, Value>,
        default_template: &str,
        output: Output,
    ) -> Result<Choice, ComponentError> {
        let name = opt_str(data, "prompt_template")?.unwrap_or(default_template);
        let version = opt_u32(data, "prompt_template_version", 1..=u32::MAX)?;
        let template = ai
            .prompt_template(workspace_id, name, version)
            .await?
            .map_err(|m| ComponentError::permanent("template_not_found", m))?;
        if template.output != output {
            let wants = if output == Output::Text { "ai_generator makes text" } else { "image_generator makes images" };
            return Err(invalid(format!("prompt template '{name}' does not fit: {wants}")));
        }
        let temperature = match data.get("temperature") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|t| (0.0..=2.0).contains(t))
                    .ok_or_else(|| invalid("data.temperature must be a number from 0 to 2"))? as f32,
            ),
        };
        Ok(Choice {
            template,
            provider: opt_str(data, "provider")?.map(String::from),
            model: opt_str(data, "model")?.map(String::from),
            temperature,
            max_tokens: opt_u32(data, "max_tokens", 1..=32_768)?,
        })
    }

    /// The template's declared variables, read from `data` (lists joined with commas).
    fn values(&self, data: &Map<String, Value>) -> Result<BTreeMap<String, String>, ComponentError> {
        let mut out = BTreeMap::new();
        for v in &self.template.variables {
            let text = match data.get(&v.name) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(invalid(format!("data.{} must be a list of strings", v.name))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(", "),
                Some(Value::Object(_)) => return Err(invalid(format!("data.{} must be text, not an object", v.name))),
            };
            out.insert(v.name.clone(), text);
        }
        Ok(out)
    }

    /// The template rendered with the context's data: the values, the surroundings, the
    /// rendering.
    pub(super) async fn render(
        &self,
        ai: &Ai,
        run: &Run,
        data: &Map<String, Value>,
        outline: Option<Vec<Section>>,
    ) -> Result<(BTreeMap<String, String>, Surroundings, Rendered), ComponentError> {
        let values = self.values(data)?;
        let around = surroundings(ai, run, outline).await?;
        let rendered = self
            .template
            .render(&values, &around)
            .map_err(|e| ComponentError::permanent(e.code, format!("{}: {}", e.code, e.message)))?;
        Ok((values, around, rendered))
    }

    /// `generation_parameters`: what was asked for, as sent.
    pub(super) fn parameters(&self, provider: &str) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("provider".into(), provider.into());
        p.insert("prompt_template".into(), self.template.name.clone().into());
        p.insert("prompt_template_version".into(), self.template.version.into());
        if let Some(m) = &self.model {
            p.insert("model".into(), m.clone().into());
        }
        if let Some(t) = self.temperature {
            p.insert("temperature".into(), json!((f64::from(t) * 1000.0).round() / 1000.0));
        }
        if let Some(m) = self.max_tokens {
            p.insert("max_tokens".into(), m.into());
        }
        p
    }
}

/// The interactions-log entry of a component's provider call, with its context.
#[allow(clippy::too_many_arguments)]
pub(super) fn call_log(
    ai: &Ai,
    run: &Run,
    kind: &str,
    provider: &str,
    rendered: &Rendered,
    choice: &Choice,
    parameters: &Map<String, Value>,
    prompt: String,
) -> super::log::Log {
    let ctx = run.context();
    let mut entry = interaction(&ctx.workspace_id, &ctx.created_by, kind, provider);
    entry.context_id = Some(ctx.id.clone());
    entry.template = Some(rendered.template.clone());
    entry.template_version = Some(rendered.version as i32);
    entry.model = choice.model.clone().unwrap_or_default();
    entry.parameters = Value::Object(parameters.clone());
    entry.prompt = prompt;
    ai.log(entry)
}

/// The outline a pipeline's template gives (`data.template.sections`): each section's
/// `type`, `title` and `instructions`; a `sections: n` count asks for that many parts.
fn outline(data: &Map<String, Value>) -> Option<Vec<Section>> {
    let sections = data.get("template")?.get("sections")?.as_array()?;
    let out: Vec<Section> = sections
        .iter()
        .filter_map(|s| {
            let key = s.get("type")?.as_str()?;
            let mut instructions = s.get("instructions").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(n) = s.get("sections").and_then(Value::as_u64).filter(|n| *n > 1) {
                instructions.push_str(&format!(" (in {n} parts, each under a level-3 heading)"));
            }
            Some(Section::of_template(key, s.get("title").and_then(Value::as_str), Some(&instructions)))
        })
        .collect();
    Some(out).filter(|o| !o.is_empty())
}

/// The prompt's surroundings: the workspace, the outline, and the document `data.document_id`
/// names (which must be in the context's workspace).
async fn surroundings(ai: &Ai, run: &Run, outline: Option<Vec<Section>>) -> Result<Surroundings, ComponentError> {
    let ctx = run.context();
    let workspace = ai.store.get_workspace(&quire_core::Principal::System, &ctx.workspace_id, false).await?;
    let mut around = Surroundings { workspace: Some(workspace.name), outline, ..Default::default() };
    if let Some(id) = opt_str(run.data(), "document_id")? {
        let doc = match ai.store.get_document(&quire_core::Principal::System, id, false).await {
            Ok(doc) if doc.workspace_id == ctx.workspace_id => doc,
            Ok(_) | Err(quire_core::Error::NotFound { .. }) => {
                return Err(invalid(format!("data.document_id: no document '{id}' in this context's workspace")));
            }
            Err(e) => return Err(e.into()),
        };
        around.document = Some(ai.document_context(&doc).await?);
    }
    Ok(around)
}

/// The outline's sections written in parts (`sections: n` with n > 1 in `data.template`).
fn parted(data: &Map<String, Value>) -> Vec<String> {
    let Some(sections) = data.get("template").and_then(|t| t.get("sections")).and_then(Value::as_array) else {
        return Vec::new();
    };
    sections
        .iter()
        .filter(|s| s.get("sections").and_then(Value::as_u64).is_some_and(|n| n > 1))
        .filter_map(|s| s.get("type").and_then(Value::as_str).map(String::from))
        .collect()
}

/// A section written in parts as seed 004 gives it: `[{"heading", "content"}]`, one item per
/// level-3 heading. Text before the first one is a part under the section's own title.
fn headed_parts(text: &str, title: &str) -> Value {
    let mut parts = Vec::new();
    let mut heading = title.to_string();
    let mut buffer = String::new();
    let mut push = |heading: &str, buffer: &mut String| {
        let content = buffer.trim();
        if !content.is_empty() {
            parts.push(json!({ "heading": heading, "content": content }));
        }
        buffer.clear();
    };
    for line in text.lines() {
        match line.strip_prefix("### ") {
            Some(h) => {
                push(&heading, &mut buffer);
                heading = h.trim().trim_end_matches(':').trim_end().to_string();
            }
            None => {
                buffer.push_str(line);
                buffer.push('\n');
            }
        }
    }
    push(&heading, &mut buffer);
    Value::Array(parts)
}

/// Generated Markdown as `generated_content`: with an outline, an object of each section's
/// text by its key (a heading the outline lacks keeps its own, slugged), a section in
/// `parted` as a list of its `{heading, content}` parts; without one, the text itself. A
/// leading `# title` line is dropped either way (the transformer writes the title).
pub fn split_sections(text: &str, outline: &[Section], parted: &[String]) -> Value {
    let text = text.trim();
    let body = match text.strip_prefix("# ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, b)| b),
        None => text,
    };
    if outline.is_empty() {
        return Value::String(body.trim().to_string());
    }
    let mut out: Map<String, Value> = Map::new();
    let mut current: Option<String> = None;
    let mut buffer = String::new();
    let mut flush = |key: &Option<String>, buffer: &mut String| {
        if let Some(k) = key {
            let text = buffer.trim();
            let merged = match out.get(k).and_then(Value::as_str) {
                Some(prev) if !text.is_empty() => format!("{prev}\n\n{text}"),
                Some(prev) => prev.to_string(),
                None => text.to_string(),
            };
            out.insert(k.clone(), Value::String(merged));
        }
        buffer.clear();
    };
    for line in body.lines() {
        let heading = line.strip_prefix("## ").or_else(|| line.strip_prefix("# "));
        if let Some(h) = heading {
            flush(&current, &mut buffer);
            let h = h.trim().trim_end_matches(':');
            let lower = h.to_lowercase();
            let key = match quire_ai::gate::section_for(outline, &lower) {
                Some(s) => s.key.clone(),
                None => {
                    let slug: String =
                        lower.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect::<String>();
                    slug.split('_').filter(|w| !w.is_empty()).collect::<Vec<_>>().join("_")
                }
            };
            current = Some(key);
        } else if current.is_some() {
            buffer.push_str(line);
            buffer.push('\n');
        }
    }
    flush(&current, &mut buffer);
    for key in parted {
        if let Some(Value::String(text)) = out.get(key) {
            let title = outline.iter().find(|s| &s.key == key).map_or(key.as_str(), |s| s.title.as_str());
            let parts = headed_parts(text, title);
            out.insert(key.clone(), parts);
        }
    }
    Value::Object(out)
}

/// The temperature a generation uses when its data names none (seed 004's example).
pub const DEFAULT_TEMPERATURE: f32 = 0.7;
/// The most tokens a generation writes when its data names no limit (seed 004's example).
pub const DEFAULT_MAX_TOKENS: u32 = 2000;

/// `ai_generator`: text from a prompt template, streamed from the workspace's provider.
pub struct AiGenerator {
    ai: Arc<Ai>,
}

#[async_trait]
impl Component for AiGenerator {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "ai_generator",
            "Generates text with the workspace's AI provider from a prompt template (prd.draft for PRDs, \
             content.draft otherwise) in the sections of data.template; checks it with the quality gate",
            &[
                "template",
                "title",
                "request",
                "keywords",
                "target_audience",
                "tone",
                "document_id",
                "prompt_template",
                "prompt_template_version",
                "provider",
                "model",
                "temperature",
                "max_tokens",
            ],
            &["generated_content", "model_used", "generation_parameters", "relevance"],
        )
    }

    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        let started = Instant::now();
        let result = self.generate(&run).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(out) => {
                let data = json!({"model": out.get("model_used"), "duration_ms": ms});
                emit(&run, "ai.generation.completed", run.str("document_id"), data).await;
            }
            Err(e) => {
                let data = json!({"code": e.code, "message": e.message, "retryable": !e.permanent, "duration_ms": ms});
                emit(&run, "ai.generation.failed", None, data).await;
            }
        }
        result
    }
}

/// Raises an `ai.generation.*` event for the running context (in the outbox, for the
/// workspace's followers); a failure to record it is logged, not the generation's.
async fn emit(run: &Run, name: &str, document_id: Option<&str>, mut data: Value) {
    let ctx = run.context();
    data["context_id"] = json!(ctx.id);
    data["attempt"] = json!(ctx.attempts);
    let store = run.store();
    if let Err(e) = store.record_event(&quire_core::Principal::System, name, &ctx.workspace_id, document_id, data).await
    {
        tracing::warn!(context = %ctx.id, event = name, error = %e, "recording an AI event failed");
    }
}

impl AiGenerator {
    async fn generate(&self, run: &Run) -> Result<Map<String, Value>, ComponentError> {
        let run = run.clone();
        let ctx = run.context();
        let data = run.data();
        let default = if ctx.kind == "prd" { "prd.draft" } else { "content.draft" };
        let mut choice = Choice::read(&self.ai, &ctx.workspace_id, data, default, Output::Text).await?;
        // Sent and recorded always, so that generation_parameters says what was used.
        choice.temperature.get_or_insert(DEFAULT_TEMPERATURE);
        choice.max_tokens.get_or_insert(DEFAULT_MAX_TOKENS);
        let (values, around, rendered) = choice.render(&self.ai, &run, data, outline(data)).await?;
        let title = values.get("title").cloned().or_else(|| around.document.as_ref().map(|d| d.title.clone()));
        let mut request = rendered.text_request(title, values.get("request").map_or("", String::as_str));
        request.model = choice.model.clone();
        request.temperature = choice.temperature;
        request.max_tokens = choice.max_tokens;
        let provider =
            self.ai.text_provider(&ctx.workspace_id, choice.provider.as_deref()).await.map_err(lookup_failed)?;

        let parameters = choice.parameters(provider.name());
        let prompt = prompt_text(&request.messages);
        let mut log = call_log(&self.ai, &run, "text", provider.name(), &rendered, &choice, &parameters, prompt);
        run.log(
            "info",
            format!(
                "generating with {} from prompt template {} v{}",
                provider.name(),
                rendered.template,
                rendered.version
            ),
        )
        .await;

        let started = json!({"provider": provider.name(), "prompt_template": rendered.template, "model": choice.model});
        // The document is the context's own by now: rendering the prompt checked it.
        emit(&run, "ai.generation.started", run.str("document_id"), started).await;
        let mut stream = log.check(provider.stream_text(&request).await).await.map_err(|e| provider_failed(&e))?;
        let sections = &rendered.sections;
        let mut text = String::new();
        // The text is streamed as `chunk` events with each progress report: `sent` bytes of
        // it (`sent_chars` characters) have gone out. The first report starts it anew, so a
        // retried attempt's follower drops the previous attempt's text.
        let (mut sent, mut sent_chars) = (0usize, 0usize);
        let mut reported = Instant::now();
        let (model, usage) = loop {
            match stream.next().await {
                Some(Ok(TextEvent::Delta(d))) => {
                    log.first_chunk();
                    text.push_str(&d);
                    if text.len() > MAX_TEXT_CHARS * 4 {
                        log.close("gate_failed", Some("the text grew past every limit".into()), None).await;
                        return Err(ComponentError::retryable(
                            "quality_gate_failed",
                            format!("the generated text passed {MAX_TEXT_CHARS} characters; lower max_tokens"),
                        ));
                    }
                    if reported.elapsed() >= PROGRESS_EVERY {
                        reported = Instant::now();
                        let (percent, message) = progress(&text, sections);
                        let fresh = &text[sent..];
                        run.progress_with_text(percent, message, sent_chars, fresh).await;
                        sent_chars += fresh.chars().count();
                        sent = text.len();
                    }
                }
                Some(Ok(TextEvent::Done { model, usage, .. })) => break (model, usage),
                Some(Err(e)) => return Err(provider_failed(&log.failed(e).await)),
                None => {
                    let message = format!("{}: the stream ended without its end", provider.name());
                    log.close("failed", Some(message.clone()), None).await;
                    return Err(ComponentError::retryable("provider_failed", message));
                }
            }
        };
        log.answered_by(&model);
        let (percent, message) = progress(&text, sections);
        run.progress_with_text(percent.min(99.0), message, sent_chars, &text[sent..]).await;
        // The request as the gate reads it: the title and what was asked (a section's
        // rewrite has none: its instruction is not what the section is about; the built-in
        // provider writes nothing of its own to judge, only the request and questions).
        let asked = request
            .outline
            .as_ref()
            .filter(|o| !o.request.trim().is_empty() && provider.name() != quire_ai::builtin::MODEL)
            .map(|o| format!("{}. {}", o.title.as_deref().unwrap_or_default(), o.request))
            .unwrap_or_default();
        let embedder = match self.ai.embedding_provider(&ctx.workspace_id, None).await {
            Ok(e) => e,
            Err(_) => Arc::new(quire_ai::builtin::Builtin),
        };
        let asked = quire_ai::relevance::Asked {
            request: &asked,
            instructions: request.messages.iter().map(|m| m.content.as_str()).collect(),
        };
        let judged =
            match quire_ai::relevance::check_draft(&text, sections, MAX_TEXT_CHARS, &asked, &*embedder, None).await {
                Ok(j) => j,
                Err(f) => {
                    log.close("gate_failed", Some(f.reason.clone()), usage).await;
                    run.log("warn", format!("the quality gate refused the text ({}): {}", f.check, f.reason)).await;
                    return Err(ComponentError::retryable("quality_gate_failed", f.reason));
                }
            };
        match (&judged.relevance, &judged.unjudged) {
            (Some(r), _) => {
                let kept = r.sections.iter().filter(|s| !s.strays()).count();
                let message = format!(
                    "{} judged the draft on topic: of the request and {} requests for other products, the request \
                     is the {} closest to it, and {kept} of {} sections are about it or about what they are for",
                    r.model,
                    r.compared - 1,
                    ordinal(r.request_rank),
                    r.sections.len()
                );
                run.log("info", message).await;
            }
            (None, Some(why)) if !asked.request.is_empty() => {
                run.log("warn", format!("relevance was not judged: {why}")).await;
            }
            _ => {}
        }
        log.close("ok", None, usage).await;
        let words = quire_ai::gate::word_count(&text);
        run.progress(100.0, format!("{model} wrote {words} words")).await;
        let mut out = Map::new();
        out.insert("generated_content".into(), split_sections(&text, sections, &parted(data)));
        out.insert("model_used".into(), model.into());
        out.insert("generation_parameters".into(), Value::Object(parameters));
        if let Some(r) = judged.relevance {
            out.insert("relevance".into(), serde_json::to_value(r).unwrap_or_default());
        }
        Ok(out)
    }
}

/// 1st, 2nd, 3rd, 4th, …
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// How far a draft is: the outline's sections begun so far, and the one being written.
fn progress(text: &str, sections: &[Section]) -> (f32, String) {
    let headings = quire_ai::gate::headings(text);
    let words = quire_ai::gate::word_count(text);
    if sections.is_empty() {
        return (50.0, format!("{words} words so far"));
    }
    let begun = sections
        .iter()
        .filter(|s| headings.iter().any(|h| quire_ai::gate::heads(sections, s, &h.to_lowercase())))
        .count();
    let current = headings.last().map(String::as_str).unwrap_or("the start");
    let percent = (100.0 * begun as f32 / (sections.len() + 1) as f32).min(95.0);
    (percent, format!("writing '{current}' ({begun} of {} sections, {words} words)", sections.len()))
}

/// The most images one run makes.
pub const MAX_IMAGES: u32 = 8;

/// An image's width or height (`data.<key>`): 64 to 2048 pixels in steps of 8, 512 unless
/// given.
pub(super) fn image_side(data: &Map<String, Value>, key: &str) -> Result<u32, ComponentError> {
    let v = opt_u32(data, key, 64..=2048)?.unwrap_or(512);
    if v % 8 != 0 {
        return Err(invalid(format!("data.{key} must be a multiple of 8 (image models work in steps of 8)")));
    }
    Ok(v)
}

/// `data.seed`, a whole number, when given.
pub(super) fn opt_seed(data: &Map<String, Value>) -> Result<Option<u64>, ComponentError> {
    match data.get("seed") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(v.as_u64().ok_or_else(|| invalid("data.seed must be a whole number from 0"))?)),
    }
}

/// The interactions-log entry of an image request, and its `generation_parameters`: what was
/// asked for, as sent (the prompts, size, count, seed, style).
pub(super) fn image_call(
    ai: &Ai,
    run: &Run,
    choice: &Choice,
    rendered: &Rendered,
    provider: &str,
    request: &quire_ai::ImageRequest,
) -> (super::log::Log, Map<String, Value>) {
    let mut parameters = choice.parameters(provider);
    parameters.insert("width".into(), request.width.into());
    parameters.insert("height".into(), request.height.into());
    parameters.insert("count".into(), request.count.into());
    if let Some(seed) = request.seed {
        parameters.insert("seed".into(), seed.into());
    }
    if let Some(style) = &request.style {
        parameters.insert("style".into(), style.clone().into());
    }
    if let Some(init) = &request.init_image {
        parameters.insert("strength".into(), init.strength.into());
    }
    let prompt = match &request.negative_prompt {
        Some(n) => format!("{}\n\n[negative] {n}", request.prompt),
        None => request.prompt.clone(),
    };
    let log = call_log(ai, run, "image", provider, rendered, choice, &parameters, prompt);
    parameters.insert("prompt".into(), request.prompt.clone().into());
    if let Some(n) = &request.negative_prompt {
        parameters.insert("negative_prompt".into(), n.clone().into());
    }
    (log, parameters)
}

/// Calls the image provider, passing its progress (0 to 1) to `on_progress` at most every
/// 250 ms, and records the call in `log`: the images, or the provider's failure (a provider
/// that answers no image failed the gate). `log` stays open for the quality gate's verdict.
pub(super) async fn paint(
    provider: &dyn quire_ai::ImageProvider,
    request: &quire_ai::ImageRequest,
    log: &mut super::log::Log,
    mut on_progress: impl FnMut(f32) -> futures_util::future::BoxFuture<'static, ()> + Send,
) -> Result<quire_ai::Images, ComponentError> {
    let (tx, mut rx) = tokio::sync::watch::channel(0f32);
    let report = move |p: f32| {
        let _ = tx.send(p);
    };
    let generation = provider.generate_images(request, &report);
    tokio::pin!(generation);
    let mut reported = Instant::now();
    let result = loop {
        tokio::select! {
            r = &mut generation => break r,
            Ok(()) = rx.changed() => {
                let p = *rx.borrow_and_update();
                if reported.elapsed() >= PROGRESS_EVERY {
                    reported = Instant::now();
                    on_progress(p).await;
                }
            }
        }
    };
    let made = log.check(result).await.map_err(|e| provider_failed(&e))?;
    log.answered_by(&made.model);
    if made.images.is_empty() {
        let reason = format!("{} returned no image", provider.name());
        log.close("gate_failed", Some(reason.clone()), None).await;
        return Err(ComponentError::retryable("quality_gate_failed", reason));
    }
    Ok(made)
}

/// `image_generator`: images from a prompt template (`moodboard.image` by default) with the
/// workspace's image provider, each checked by the gate and kept as a blob of the workspace.
pub struct ImageGenerator {
    ai: Arc<Ai>,
    /// Where the images it makes are kept.
    assets: Arc<crate::assets::Assets>,
}

#[async_trait]
impl Component for ImageGenerator {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "image_generator",
            "Generates images with the workspace's AI provider from a prompt template (moodboard.image: \
             room_type, style, notes), checks each with the quality gate and keeps it as a workspace blob",
            &[
                "room_type",
                "style",
                "notes",
                "width",
                "height",
                "count",
                "seed",
                "prompt_template",
                "prompt_template_version",
                "provider",
                "model",
            ],
            &["generated_images", "model_used", "generation_parameters"],
        )
    }

    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        let ctx = run.context();
        let data = run.data();
        let choice = Choice::read(&self.ai, &ctx.workspace_id, data, "moodboard.image", Output::Image).await?;
        let (width, height) = (image_side(data, "width")?, image_side(data, "height")?);
        let count = opt_u32(data, "count", 1..=MAX_IMAGES)?.unwrap_or(4);
        let seed = opt_seed(data)?;
        let (_, _, rendered) = choice.render(&self.ai, &run, data, None).await?;
        let mut request = rendered.image_request(width, height, count, seed);
        request.model = choice.model.clone();
        let provider =
            self.ai.image_provider(&ctx.workspace_id, choice.provider.as_deref()).await.map_err(lookup_failed)?;
        let (mut log, parameters) = image_call(&self.ai, &run, &choice, &rendered, provider.name(), &request);
        run.log("info", format!("painting {count} image(s) of {width}x{height} with {}", provider.name())).await;

        let reporter = run.clone();
        let made = paint(&*provider, &request, &mut log, move |p: f32| {
            let run = reporter.clone();
            Box::pin(async move { run.progress(p * 90.0, format!("painting: {:.0}%", p * 100.0)).await })
        })
        .await?;
        let mut sizes = Vec::with_capacity(made.images.len());
        for (i, image) in made.images.iter().enumerate() {
            match quire_ai::gate::check_image(image, width, height) {
                Ok(size) => sizes.push(size),
                Err(f) => {
                    let reason = format!("image {} of {}: {}", i + 1, made.images.len(), f.reason);
                    log.close("gate_failed", Some(reason.clone()), None).await;
                    run.log("warn", format!("the quality gate refused an image ({}): {reason}", f.check)).await;
                    return Err(ComponentError::retryable("quality_gate_failed", reason));
                }
            }
        }
        log.close("ok", None, None).await;
        let mut kept = Vec::with_capacity(made.images.len());
        for (image, (w, h)) in made.images.iter().zip(sizes) {
            let asset = self.assets.keep_generated(&ctx.workspace_id, image.bytes.clone()).await?;
            kept.push(json!({
                "sha256": asset.sha256,
                "media_type": asset.media_type,
                "size": asset.size,
                "width": w,
                "height": h,
                "url": format!("/api/v1/workspaces/{}/assets/{}/original", ctx.workspace_id, asset.sha256),
            }));
        }
        run.progress(100.0, format!("{} painted {} image(s)", made.model, kept.len())).await;
        let mut out = Map::new();
        out.insert("generated_images".into(), Value::Array(kept));
        out.insert("model_used".into(), made.model.into());
        out.insert("generation_parameters".into(), Value::Object(parameters));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_markdown_splits_into_the_outlines_sections() {
        let outline = vec![
            Section::of_template("introduction", None, Some("Introduce it")),
            Section::of_template("body", Some("Main points"), Some("Cover them")),
            Section::of_template("conclusion", None, None),
        ];
        let text = "# Microservices\n\nA preamble.\n\n## Introduction\nHello.\n\n## The main points\n### One\nFirst.\n\n\
                    ## Appendix: extras\nMore.\n## Conclusion:\nBye.\n";
        assert_eq!(
            split_sections(text, &outline, &[]),
            json!({
                "introduction": "Hello.",
                "body": "### One\nFirst.",
                "appendix_extras": "More.",
                "conclusion": "Bye."
            })
        );
        // A heading holding another section's title is still its own section: "Non-goals"
        // holds "goals" (the non-goals text was merged into the goals).
        let prd: Vec<Section> = ["goals", "non_goals"].iter().map(|k| Section::from_key(k)).collect();
        assert_eq!(
            split_sections(
                "## Goals
Fast.
## Non-goals
Offline edits.
",
                &prd,
                &[]
            ),
            json!({"goals": "Fast.", "non_goals": "Offline edits."})
        );
        assert_eq!(split_sections("# T\nJust text.\n", &[], &[]), json!("Just text."));
        assert_eq!(split_sections("No title.", &[], &[]), json!("No title."));
        // A section written in parts is a list of them, as seed 004 gives `body`.
        let text = "## Introduction\nHi.\n## Main points\nLead-in.\n### Key Principles\nFirst.\n\n### Common Challenges:\nSecond.\n";
        assert_eq!(
            split_sections(text, &outline, &["body".into()]),
            json!({
                "introduction": "Hi.",
                "body": [
                    {"heading": "Main points", "content": "Lead-in."},
                    {"heading": "Key Principles", "content": "First."},
                    {"heading": "Common Challenges", "content": "Second."}
                ]
            })
        );
    }

    #[test]
    fn progress_counts_the_sections_begun() {
        let outline = quire_ai::taxonomy::prd_outline();
        let (p, m) = progress("# T\n## Problem\nx\n## Goals\ny", &outline);
        assert!((p - 100.0 * 2.0 / 12.0).abs() < 0.01, "{p}");
        assert_eq!(m, "writing 'Goals' (2 of 11 sections, 5 words)");
    }
}
