//! A provider for any server that speaks OpenAI's HTTP API: `POST /chat/completions` with
//! `stream: true` (Server-Sent Events, `data: [DONE]` at the end), `POST /embeddings` and
//! `POST /images/generations` (`response_format: b64_json`; `POST /images/edits`, multipart, to
//! paint from an image). OpenAI, Ollama (`/v1`), vLLM, llama.cpp's server and LM Studio all
//! serve these at a base URL of their own.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::remote::{Credentials, Remote};
use crate::resilience::GuardSettings;
use crate::{
    AiError, AiErrorKind, EmbeddingProvider, Embeddings, Image, ImageProvider, ImageRequest, Images, Progress,
    TextEvent, TextProvider, TextRequest, TextStream, Usage,
};

/// One OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// The provider's name in errors and records (`openai`, `ollama`, …).
    pub name: String,
    /// Where the API lives, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// Models used when a request names none.
    pub text_model: String,
    pub embedding_model: String,
    pub image_model: String,
    /// How long to wait for the answer to start (the response's headers).
    pub first_byte_timeout: Duration,
    /// How long a stream may go without a chunk.
    pub idle_timeout: Duration,
    /// How long a call that does not stream (embeddings, images) may take in all.
    pub request_timeout: Duration,
    pub guard: GuardSettings,
}

impl OpenAiSettings {
    pub fn new(name: &str, base_url: &str) -> Self {
        OpenAiSettings {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: None,
            text_model: "gpt-4o-mini".into(),
            embedding_model: "text-embedding-3-small".into(),
            image_model: "gpt-image-1".into(),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(300),
            guard: GuardSettings::default(),
        }
    }
}

pub struct OpenAi {
    settings: OpenAiSettings,
    remote: Remote,
}

impl OpenAi {
    pub fn new(settings: OpenAiSettings) -> Result<Self, AiError> {
        let credentials = settings.api_key.clone().map(Credentials::Bearer).unwrap_or_default();
        let remote = Remote::new(&settings.name, &settings.base_url, credentials, settings.guard.clone())?;
        Ok(OpenAi { settings, remote })
    }

    fn error(&self, kind: AiErrorKind, message: impl Into<String>) -> AiError {
        self.remote.error(kind, message)
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Value, AiError> {
        self.remote.json(path, Some(body), self.settings.request_timeout).await
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// What a stream has said so far, for its `Done`.
struct Reading {
    events: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<eventsource_stream::Event, String>> + Send>>,
    provider: String,
    idle: Duration,
    model: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    chunks: usize,
    done: bool,
}

impl Reading {
    fn fail(&mut self, kind: AiErrorKind, message: String) -> Option<Result<TextEvent, AiError>> {
        self.done = true;
        Some(Err(AiError::new(&self.provider, kind, message)))
    }

    fn finish(&mut self) -> Option<Result<TextEvent, AiError>> {
        self.done = true;
        Some(Ok(TextEvent::Done {
            model: std::mem::take(&mut self.model),
            usage: self.usage,
            finish_reason: self.finish_reason.take(),
        }))
    }

    /// The stream's next item: a piece of text, the end, or why it broke.
    async fn next(&mut self) -> Option<Result<TextEvent, AiError>> {
        while !self.done {
            let event = match tokio::time::timeout(self.idle, self.events.next()).await {
                Err(_) => {
                    let message = format!("the stream stalled: no chunk for {} s", self.idle.as_secs_f32());
                    return self.fail(AiErrorKind::Timeout, message);
                }
                Ok(None) if self.finish_reason.is_some() => return self.finish(),
                Ok(None) => {
                    let message = format!("the stream ended after {} chunks without saying it was done", self.chunks);
                    return self.fail(AiErrorKind::Unavailable, message);
                }
                Ok(Some(Err(e))) => {
                    return self
                        .fail(AiErrorKind::Unavailable, format!("the stream broke after {} chunks: {e}", self.chunks));
                }
                Ok(Some(Ok(event))) => event,
            };
            if event.data.trim() == "[DONE]" {
                return self.finish();
            }
            let chunk: Chunk = match serde_json::from_str(&event.data) {
                Ok(c) => c,
                Err(e) => {
                    return self.fail(AiErrorKind::Protocol, format!("a stream chunk is not a completion chunk: {e}"));
                }
            };
            self.chunks += 1;
            if let Some(m) = chunk.model.filter(|m| !m.is_empty()) {
                self.model = m;
            }
            if chunk.usage.is_some() {
                self.usage = chunk.usage;
            }
            let mut text = String::new();
            for choice in chunk.choices {
                if let Some(r) = choice.finish_reason {
                    self.finish_reason = Some(r);
                }
                if let Some(c) = choice.delta.and_then(|d| d.content) {
                    text.push_str(&c);
                }
            }
            if !text.is_empty() {
                return Some(Ok(TextEvent::Delta(text)));
            }
        }
        None
    }
}

#[async_trait]
impl TextProvider for OpenAi {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn circuit(&self) -> Option<crate::resilience::Circuit> {
        Some(self.remote.guard.circuit())
    }

    async fn stream_text(&self, request: &TextRequest) -> Result<TextStream, AiError> {
        let model = request.model.clone().unwrap_or_else(|| self.settings.text_model.clone());
        let mut body = json!({
            "model": model,
            "messages": request.messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = request.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        let timeout = self.settings.first_byte_timeout;
        let response = self.remote.guard.call(|| self.remote.send("/chat/completions", Some(&body), timeout)).await?;
        let events = response.bytes_stream().eventsource().map(|e| e.map_err(|e| e.to_string()));
        let reading = Reading {
            events: Box::pin(events),
            provider: self.settings.name.clone(),
            idle: self.settings.idle_timeout,
            model,
            usage: None,
            finish_reason: None,
            chunks: 0,
            done: false,
        };
        // Dropping the stream drops the response, which closes the connection: the server
        // stops generating.
        Ok(Box::pin(futures_util::stream::unfold(reading, |mut r| async move { r.next().await.map(|item| (item, r)) })))
    }
}

#[async_trait]
impl EmbeddingProvider for OpenAi {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn embed(&self, model: Option<&str>, inputs: &[String]) -> Result<Embeddings, AiError> {
        let model = model.unwrap_or(&self.settings.embedding_model);
        let answer = self.post_json("/embeddings", &json!({ "model": model, "input": inputs })).await?;
        #[derive(Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }
        let items: Vec<Item> = serde_json::from_value(answer["data"].clone()).map_err(|e| {
            self.error(AiErrorKind::Protocol, format!("/embeddings answered no list of embeddings: {e}"))
        })?;
        let mut vectors = vec![Vec::new(); inputs.len()];
        for item in items {
            match vectors.get_mut(item.index) {
                Some(slot) => *slot = item.embedding,
                None => {
                    return Err(self.error(AiErrorKind::Protocol, format!("/embeddings answered index {}", item.index)));
                }
            }
        }
        if let Some(i) = vectors.iter().position(Vec::is_empty) {
            return Err(self.error(AiErrorKind::Protocol, format!("/embeddings left input {i} without a vector")));
        }
        Ok(Embeddings {
            model: answer["model"].as_str().unwrap_or(model).to_string(),
            vectors,
            usage: serde_json::from_value(answer["usage"].clone()).ok(),
        })
    }
}

/// The categories a safety filter flagged in an image's `content_filter_results` (as Azure
/// OpenAI annotates each image: `{"violence": {"filtered": true, "severity": "medium"}, …}`).
fn flagged(results: &Value) -> Option<String> {
    let flagged: Vec<String> = results
        .as_object()?
        .iter()
        .filter(|(_, r)| r["filtered"].as_bool() == Some(true))
        .map(|(category, r)| match r["severity"].as_str() {
            Some(severity) => format!("{} ({severity})", category.replace('_', " ")),
            None => category.replace('_', " "),
        })
        .collect();
    (!flagged.is_empty()).then(|| format!("the provider's safety filter flagged it: {}", flagged.join(", ")))
}

#[async_trait]
impl ImageProvider for OpenAi {
    fn name(&self) -> &str {
        &self.settings.name
    }

    /// `/images/edits` paints from an image (`gpt-image-1`, `dall-e-2`); OpenAI takes no
    /// strength: the prompt says how far to go.
    fn paints_from_images(&self) -> bool {
        true
    }

    async fn generate_images(&self, request: &ImageRequest, _progress: Progress<'_>) -> Result<Images, AiError> {
        let model = request.model.clone().unwrap_or_else(|| self.settings.image_model.clone());
        let size = format!("{}x{}", request.width, request.height);
        let n = request.count.max(1);
        let (path, answer) = match &request.init_image {
            None => {
                let body = json!({
                    "model": model, "prompt": request.prompt, "n": n, "size": size, "response_format": "b64_json",
                });
                ("/images/generations", self.post_json("/images/generations", &body).await?)
            }
            Some(init) => {
                let form = || {
                    let image = reqwest::multipart::Part::bytes(init.png.to_vec())
                        .file_name("image.png")
                        .mime_str("image/png")
                        .expect("a valid media type");
                    reqwest::multipart::Form::new()
                        .text("model", model.clone())
                        .text("prompt", request.prompt.clone())
                        .text("n", n.to_string())
                        .text("size", size.clone())
                        .text("response_format", "b64_json")
                        .part("image", image)
                };
                ("/images/edits", self.remote.form("/images/edits", form, self.settings.request_timeout).await?)
            }
        };
        let items = answer["data"].as_array().cloned().unwrap_or_default();
        let mut images = Vec::with_capacity(items.len());
        for item in items {
            let b64 = item["b64_json"].as_str().ok_or_else(|| {
                self.error(AiErrorKind::Protocol, format!("{path} answered an image without b64_json"))
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| self.error(AiErrorKind::Protocol, format!("an image is not base64: {e}")))?;
            let mut image = Image::sniffed(bytes.into());
            image.flagged = flagged(&item["content_filter_results"]);
            images.push(image);
        }
        if images.is_empty() {
            return Err(self.error(AiErrorKind::Protocol, format!("{path} answered no image")));
        }
        Ok(Images { model, images })
    }
}
