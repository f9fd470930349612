//! The `local` provider: models run in this process (`quire-local`), found in the models
//! folder or named by path. Where a local chat (embedding) model is there, it is the default
//! text (embedding) provider; where none is, `quire-builtin` stays the default.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quire_ai::{EmbeddingProvider, Embeddings, TextProvider, TextRequest, TextStream};
use quire_core::{Error, Result};
use quire_local::catalog::{self, Found, Kind};
use quire_local::embed::LocalEmbeddings;
use quire_local::text::LocalText;

use super::ProviderInfo;

/// The provider's name.
pub const LOCAL: &str = "local";

/// How long a look at the models folder is trusted (a fetch finishing is seen within this).
const RESCAN: Duration = Duration::from_secs(5);

/// Where local models are found.
#[derive(Debug, Clone, Default)]
pub struct LocalConfig {
    /// The models folder (`<data dir>/models`); `None`: no local models.
    pub dir: Option<PathBuf>,
    /// A GGUF chat model by path, over what the folder holds.
    pub text: Option<PathBuf>,
    /// An embedding model by path (a BERT-family folder or GGUF), over the folder's.
    pub embedding: Option<PathBuf>,
}

pub struct Local {
    config: LocalConfig,
    state: Mutex<State>,
    /// One load at a time.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    looked: Option<Instant>,
    files: [Option<Found>; 2],
    text: Option<(PathBuf, Arc<LocalText>)>,
    embedding: Option<(PathBuf, LocalEmbeddings)>,
    /// Files that failed to load, and why (not tried again until they change).
    failed: Vec<(PathBuf, u64, String)>,
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Text => 0,
        Kind::Embedding => 1,
    }
}

impl Local {
    pub fn new(config: LocalConfig) -> Local {
        Local { config, state: Mutex::new(State::default()), loading: tokio::sync::Mutex::new(()) }
    }

    /// The model file of `kind` to use, looked for at most once per `RESCAN`.
    fn file(&self, kind: Kind) -> Option<Found> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.looked.is_none_or(|t| t.elapsed() >= RESCAN) {
            for kind in [Kind::Text, Kind::Embedding] {
                let named = match kind {
                    Kind::Text => &self.config.text,
                    Kind::Embedding => &self.config.embedding,
                };
                state.files[slot(kind)] = match named {
                    Some(path) => catalog::inspect(path).filter(|f| f.kind == kind),
                    None => self.config.dir.as_deref().and_then(|d| catalog::choose(d, kind)),
                };
            }
            state.looked = Some(Instant::now());
        }
        let file = state.files[slot(kind)].clone()?;
        let failed = state.failed.iter().any(|(p, bytes, _)| *p == file.path && *bytes == file.bytes);
        (file.problem.is_none() && !failed).then_some(file)
    }

    /// Whether a local model of `kind` is there to use (cheap: nothing is loaded).
    pub fn has(&self, kind: Kind) -> bool {
        self.file(kind).is_some()
    }

    /// The chat model, loaded on first use.
    pub async fn text(&self) -> Result<Arc<LocalText>> {
        self.load(Kind::Text, |s| &mut s.text, |p| LocalText::load(LOCAL, p).map(Arc::new)).await
    }

    /// The embedding model, loaded (and, from a Hugging Face folder, converted) on first use.
    pub async fn embedding(&self) -> Result<LocalEmbeddings> {
        self.load(Kind::Embedding, |s| &mut s.embedding, |p| LocalEmbeddings::load(LOCAL, p)).await
    }

    /// The model of `kind`, from `place` in the state when it was loaded from the file in
    /// use, else loaded by `load` on a blocking thread (a small model takes well under a
    /// second) and kept there.
    async fn load<T: Clone + Send + 'static>(
        &self,
        kind: Kind,
        place: fn(&mut State) -> &mut Option<(PathBuf, T)>,
        load: fn(&std::path::Path) -> std::result::Result<T, quire_local::LocalError>,
    ) -> Result<T> {
        let loaded = |file: &Found| {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            place(&mut state).as_ref().filter(|(p, _)| *p == file.path).map(|(_, m)| m.clone())
        };
        let Some(file) = self.file(kind) else {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let why = state.failed.last().map(|f| f.2.clone());
            return Err(Error::Unavailable(why.unwrap_or_else(|| {
                format!("no local {} model: run `quire models fetch`, or name one by path", kind_name(kind))
            })));
        };
        if let Some(m) = loaded(&file) {
            return Ok(m);
        }
        let _one = self.loading.lock().await;
        if let Some(m) = loaded(&file) {
            return Ok(m);
        }
        let path = file.path.clone();
        let result = tokio::task::spawn_blocking(move || load(&path))
            .await
            .map_err(|e| Error::Internal(format!("loading the local model stopped: {e}")))?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(model) => {
                tracing::info!(kind = kind_name(kind), model = %file.name, path = %file.path.display(), "local model loaded");
                *place(&mut state) = Some((file.path, model.clone()));
                Ok(model)
            }
            Err(e) => {
                tracing::warn!(error = %e, "a local model cannot be loaded");
                state.failed.push((file.path, file.bytes, e.0.clone()));
                Err(Error::Unavailable(e.0))
            }
        }
    }

    /// How a chat model drafts, where Quire measured it.
    fn drafting(file: &Found) -> Option<super::Drafting> {
        let m = catalog::measured(&file.name)?;
        Some(super::Drafting {
            model: file.name.clone(),
            passed: m.passed,
            of: m.of,
            seconds_per_draft: m.seconds_per_draft,
            acceptable: m.readable,
            verdict: m.verdict.to_string(),
        })
    }

    /// How `GET /api/v1/ai/providers` shows it, when it has a model.
    pub fn info(&self) -> Option<ProviderInfo> {
        let (text, embedding) = (self.file(Kind::Text), self.file(Kind::Embedding));
        if text.is_none() && embedding.is_none() {
            return None;
        }
        Some(ProviderInfo {
            name: LOCAL.into(),
            kind: "local".into(),
            base_url: None,
            text: text.is_some(),
            image: false,
            embedding: embedding.is_some(),
            api_key_set: false,
            drafting: text.as_ref().and_then(Self::drafting),
            text_model: text.map(|f| f.name),
            image_model: None,
            embedding_model: embedding.map(|f| f.name),
        })
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "chat",
        Kind::Embedding => "embedding",
    }
}

fn unavailable(e: Error) -> quire_ai::AiError {
    quire_ai::AiError::new(LOCAL, quire_ai::AiErrorKind::Unavailable, e.to_string())
}

/// The local chat model as a provider, loaded at its first call.
pub struct LazyText(pub Arc<Local>);

#[async_trait::async_trait]
impl TextProvider for LazyText {
    fn name(&self) -> &str {
        LOCAL
    }

    async fn stream_text(&self, request: &TextRequest) -> std::result::Result<TextStream, quire_ai::AiError> {
        self.0.text().await.map_err(unavailable)?.stream_text(request).await
    }
}

/// The local embedding model as a provider, loaded at its first call.
pub struct LazyEmbedding(pub Arc<Local>);

#[async_trait::async_trait]
impl EmbeddingProvider for LazyEmbedding {
    fn name(&self) -> &str {
        LOCAL
    }

    async fn embed(
        &self,
        model: Option<&str>,
        inputs: &[String],
    ) -> std::result::Result<Embeddings, quire_ai::AiError> {
        self.0.embedding().await.map_err(unavailable)?.embed(model, inputs).await
    }
}
