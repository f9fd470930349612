//! The `local` provider: models run in this process (`quire-local`), found in the models
//! folder or named by path. Where a local chat model is there, it is the default text
//! provider; where none is, `quire-builtin` stays the default.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quire_core::{Error, Result};
use quire_local::catalog::{self, Found, Kind};
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
    text_file: Option<Found>,
    /// The loaded model, by the file it came from.
    text: Option<(PathBuf, Arc<LocalText>)>,
    /// A file that failed to load, and why (not tried again until it changes).
    failed: Option<(PathBuf, u64, String)>,
}

impl Local {
    pub fn new(config: LocalConfig) -> Local {
        Local { config, state: Mutex::new(State::default()), loading: tokio::sync::Mutex::new(()) }
    }

    /// The chat model file to use, looked for at most once per `RESCAN`.
    fn text_file(&self) -> Option<Found> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.looked.is_none_or(|t| t.elapsed() >= RESCAN) {
            state.text_file = match &self.config.text {
                Some(path) => catalog::inspect(path).filter(|f| f.kind == Kind::Text),
                None => self.config.dir.as_deref().and_then(|d| catalog::choose(d, Kind::Text)),
            };
            state.looked = Some(Instant::now());
        }
        let file = state.text_file.clone()?;
        let failed = state.failed.as_ref().is_some_and(|(p, bytes, _)| *p == file.path && *bytes == file.bytes);
        (file.problem.is_none() && !failed).then_some(file)
    }

    /// Whether a local chat model is there to use (cheap: no model is loaded).
    pub fn has_text(&self) -> bool {
        self.text_file().is_some()
    }

    /// The chat model, loaded on first use (on a blocking thread; a small model takes well
    /// under a second).
    pub async fn text(&self) -> Result<Arc<LocalText>> {
        let Some(file) = self.text_file() else {
            let why = self.state.lock().unwrap_or_else(|e| e.into_inner()).failed.as_ref().map(|f| f.2.clone());
            return Err(Error::Unavailable(why.unwrap_or_else(|| {
                "no local chat model: run `quire models fetch`, or give one with --text-model".into()
            })));
        };
        if let Some(loaded) = self.loaded(&file) {
            return Ok(loaded);
        }
        let _one = self.loading.lock().await;
        if let Some(loaded) = self.loaded(&file) {
            return Ok(loaded);
        }
        let path = file.path.clone();
        let result = tokio::task::spawn_blocking(move || LocalText::load(LOCAL, &path))
            .await
            .map_err(|e| Error::Internal(format!("loading the local model stopped: {e}")))?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(model) => {
                let model = Arc::new(model);
                tracing::info!(model = model.model_name(), path = %file.path.display(), "local chat model loaded");
                state.text = Some((file.path, model.clone()));
                Ok(model)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the local chat model cannot be loaded");
                state.failed = Some((file.path, file.bytes, e.0.clone()));
                Err(Error::Unavailable(e.0))
            }
        }
    }

    fn loaded(&self, file: &Found) -> Option<Arc<LocalText>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.text.as_ref().filter(|(p, _)| *p == file.path).map(|(_, m)| m.clone())
    }

    /// How `GET /api/v1/ai/providers` shows it, when there is a model.
    pub fn info(&self) -> Option<ProviderInfo> {
        let file = self.text_file()?;
        Some(ProviderInfo {
            name: LOCAL.into(),
            kind: "local".into(),
            base_url: None,
            text: true,
            image: false,
            embedding: false,
            api_key_set: false,
            text_model: Some(file.name),
            image_model: None,
            embedding_model: None,
        })
    }
}
