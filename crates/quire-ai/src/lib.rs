//! Quire's AI providers: one interface for text generation with token streaming, image
//! generation and embeddings, whatever serves them.
//!
//! * [`TextProvider`], [`ImageProvider`], [`EmbeddingProvider`]: what the pipeline
//!   components and the HTTP layer call. A text stream ends with [`TextEvent::Done`]
//!   (the model that answered, usage, why it stopped); dropping it stops the provider's
//!   work (the HTTP connection is closed).
//! * [`openai::OpenAi`]: any server that speaks OpenAI's API (OpenAI, Ollama, vLLM,
//!   llama.cpp's server, LM Studio) at a configurable base URL.
//! * [`resilience::Guard`]: what every remote provider calls through: timeouts, retries with
//!   backoff on 429 and 5xx honouring `Retry-After`, and a circuit breaker per provider.
//!
//! Every error is an [`AiError`] that names the provider and says what failed and why.

pub mod automatic1111;
pub mod builtin;
pub mod comfyui;
pub mod gate;
pub mod openai;
pub mod prompt;
pub mod relevance;
mod remote;
pub mod resilience;
pub mod taxonomy;

pub use remote::Credentials;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

/// Who says a message in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Speaker,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: Speaker::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Speaker::User, content: content.into() }
    }
}

/// A text generation request. `model: None` uses the provider's default model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// What is being drafted, for a provider that writes without a model (the built-in one);
    /// a model reads the same from the messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outline: Option<Outline>,
}

/// The shape of a draft: its title, the user's own request, and its sections (taxonomy keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outline {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub request: String,
    pub sections: Vec<Section>,
}

/// One section of a draft: a taxonomy section, or one a pipeline template defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// The taxonomy key (`user_stories`), or the template's own type (`introduction`).
    pub key: String,
    /// Its heading.
    pub title: String,
    /// What to write in it.
    pub prompt: String,
    /// A draft without it fails the quality gate.
    pub required: bool,
    /// What it says is a fact about today (the problem, the personas): figures in it must
    /// come from the request (the gate's `invented_figures`).
    #[serde(default)]
    pub facts: bool,
}

impl Section {
    /// The section `key` names: the taxonomy's, or else one titled after the key.
    pub fn from_key(key: &str) -> Section {
        match taxonomy::prd_section(key) {
            Some(s) => Section {
                key: s.key.into(),
                title: s.title.into(),
                prompt: s.prompt.into(),
                required: s.required,
                facts: s.facts,
            },
            None => {
                let words = key.replace(['_', '-'], " ");
                let mut title: String = words.trim().to_string();
                if let Some(first) = title.get(..1) {
                    title = first.to_uppercase() + &title[1..];
                }
                Section { key: key.into(), title, prompt: String::new(), required: false, facts: false }
            }
        }
    }

    /// A pipeline template's section: the taxonomy's where it knows the key, with the
    /// template's own title and instructions over it; required either way (the template
    /// asks for it).
    pub fn of_template(key: &str, title: Option<&str>, instructions: Option<&str>) -> Section {
        let mut s = Section::from_key(key);
        if let Some(t) = title.map(str::trim).filter(|t| !t.is_empty()) {
            s.title = t.to_string();
        }
        if let Some(i) = instructions.map(str::trim).filter(|i| !i.is_empty()) {
            s.prompt = i.to_string();
        }
        s.required = true;
        s
    }
}

/// Tokens read and written by one call, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// None for embeddings (OpenAI then sends only `prompt_tokens` and `total_tokens`).
    #[serde(default)]
    pub completion_tokens: u32,
}

/// One item of a text stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TextEvent {
    /// The next piece of the generated text.
    Delta(String),
    /// The end: the model that answered, the usage (when the provider reports it), and why
    /// generation stopped (`stop`, `length`, …).
    Done { model: String, usage: Option<Usage>, finish_reason: Option<String> },
}

pub type TextStream = Pin<Box<dyn Stream<Item = Result<TextEvent, AiError>> + Send>>;

/// An image generation request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Images to make (1 by default).
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The design style's taxonomy key, when the request has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// The colours asked for (`#rrggbb`), for providers that paint from colours rather than
    /// words (the built-in: wall, floor, then accents); the prompt names them in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub palette: Vec<String>,
    /// The image to paint from (image-to-image), for providers that can
    /// ([`ImageProvider::paints_from_images`]); the others paint from the prompt alone.
    #[serde(skip)]
    pub init_image: Option<InitImage>,
}

/// The image an image-to-image request starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct InitImage {
    /// A PNG of exactly the size the request asks for.
    pub png: bytes::Bytes,
    /// How far the result may stray from it: 0 keeps it as it is, 1 paints anew
    /// (Automatic1111's `denoising_strength`, ComfyUI's `denoise`).
    pub strength: f64,
}

impl InitImage {
    /// `bytes` (PNG, JPEG, WebP or GIF) made to cover `width`×`height` and cropped to it
    /// about its centre, so that every provider gets the size the request asks for.
    pub fn fitted(bytes: &[u8], width: u32, height: u32, strength: f64) -> Result<InitImage, String> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(format!("the strength must be from 0 to 1, not {strength}"));
        }
        let image =
            image::load_from_memory(bytes).map_err(|e| format!("the image to paint from does not decode: {e}"))?;
        let fitted = image.resize_to_fill(width.max(1), height.max(1), image::imageops::FilterType::CatmullRom);
        let mut png = std::io::Cursor::new(Vec::new());
        fitted
            .to_rgb8()
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| format!("the image to paint from could not be encoded: {e}"))?;
        Ok(InitImage { png: png.into_inner().into(), strength })
    }
}

/// A generated image: its encoded bytes and their media type.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    /// Why the provider's own safety system flagged it, where the provider says so (Azure
    /// OpenAI's `content_filter_results`); `None` when it raised nothing or says nothing.
    pub flagged: Option<String>,
}

impl Image {
    /// An image whose media type is read from its first bytes.
    pub fn sniffed(bytes: bytes::Bytes) -> Image {
        Image { media_type: sniff(&bytes).to_string(), bytes, flagged: None }
    }
}

/// An image's media type, from its first bytes.
fn sniff(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub model: String,
    pub images: Vec<Image>,
}

/// Embeddings, one vector per input in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    pub usage: Option<Usage>,
}

#[async_trait]
pub trait TextProvider: Send + Sync {
    /// The provider's name, as errors and records show it.
    fn name(&self) -> &str;
    /// The circuit breaker's state, for a provider behind one.
    fn circuit(&self) -> Option<resilience::Circuit> {
        None
    }
    /// Starts generating; the stream yields the text as it comes and ends with `Done`.
    async fn stream_text(&self, request: &TextRequest) -> Result<TextStream, AiError>;
}

/// Where a provider reports how far an image generation has come (0.0 to 1.0), as often as
/// it learns of it.
pub type Progress<'a> = &'a (dyn Fn(f32) + Send + Sync);

/// A [`Progress`] for callers that do not follow it.
pub fn no_progress(_: f32) {}

#[async_trait]
pub trait ImageProvider: Send + Sync {
    fn name(&self) -> &str;
    /// The circuit breaker's state, for a provider behind one.
    fn circuit(&self) -> Option<resilience::Circuit> {
        None
    }
    /// Whether it paints from [`ImageRequest::init_image`] (image-to-image); a provider that
    /// cannot ignores it.
    fn paints_from_images(&self) -> bool {
        false
    }
    /// Generates `request.count` images; dropping the future stops waiting for them (and, where
    /// the server allows it, the work on the server).
    async fn generate_images(&self, request: &ImageRequest, progress: Progress<'_>) -> Result<Images, AiError>;
}

#[async_trait]
pub trait EmbeddingProvider: Send + Sync {
    fn name(&self) -> &str;
    async fn embed(&self, model: Option<&str>, inputs: &[String]) -> Result<Embeddings, AiError>;
}

/// What went wrong with a provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AiErrorKind {
    /// 429: the provider asks to slow down (retried, after `Retry-After` when given).
    RateLimited,
    /// 5xx, a refused or broken connection (retried).
    Unavailable,
    /// No answer, or no next chunk, within the time allowed (retried before the stream
    /// starts).
    Timeout,
    /// The provider refused the request: bad parameters, unknown model, bad key (not retried).
    Rejected,
    /// The provider answered something that is not its protocol (not retried).
    Protocol,
    /// The provider failed too often lately; calls fail at once until it cools down.
    CircuitOpen,
}

/// An error from a provider, naming it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("AI provider '{provider}': {message}")]
pub struct AiError {
    pub provider: String,
    pub kind: AiErrorKind,
    pub message: String,
    /// How long the provider asked to wait before trying again.
    pub retry_after: Option<Duration>,
}

impl AiError {
    pub fn new(provider: &str, kind: AiErrorKind, message: impl Into<String>) -> Self {
        AiError { provider: provider.to_string(), kind, message: message.into(), retry_after: None }
    }

    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, AiErrorKind::RateLimited | AiErrorKind::Unavailable | AiErrorKind::Timeout)
    }
}
