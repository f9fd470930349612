//! The `local` embedding provider: a BERT-family sentence model (all-MiniLM-L6-v2 by
//! default) run by llama.cpp, mean-pooled (or as the model's pooling says) and normalised,
//! as sentence-transformers computes them.
//!
//! A Hugging Face folder is converted to GGUF once (`convert`); a GGUF encoder file is used
//! as it is. Inputs are embedded many to a batch, each cut to the model's sequence limit
//! (sentence-transformers' `max_seq_length`, else the model's context).

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use quire_ai::{AiError, AiErrorKind, EmbeddingProvider, Embeddings, Usage};

use crate::{LocalError, Slots, backend};

/// Tokens decoded in one step (sequences are packed up to this; a longer input gets a step
/// of its own). llama.cpp attends across a whole step under a mask, so a step costs the
/// square of its tokens: small steps are faster (384 measured best on 2 cores, bench
/// local-models).
const BATCH_TOKENS: usize = 384;
/// Sequences in one step.
const BATCH_SEQUENCES: usize = 24;

/// A loaded embedding model (cheap to clone: the model is shared).
#[derive(Clone)]
pub struct LocalEmbeddings {
    provider: String,
    model_name: String,
    model: Arc<LlamaModel>,
    /// The most tokens of an input that are read ([CLS] and [SEP] included).
    max_tokens: usize,
    slots: Slots,
    opening: Arc<Mutex<()>>,
}

impl std::fmt::Debug for LocalEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbeddings").field("provider", &self.provider).field("model", &self.model_name).finish()
    }
}

impl LocalEmbeddings {
    /// Loads the model at `path`: a Hugging Face BERT folder (converted to GGUF in it, once)
    /// or a GGUF encoder file.
    pub fn load(provider: &str, path: &Path) -> Result<LocalEmbeddings, LocalError> {
        let (file, model_name) = if path.is_dir() {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            (crate::convert::converted(path)?, name)
        } else {
            let name = path.file_stem().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            (path.to_path_buf(), name)
        };
        let header = crate::gguf::read_header(&file).map_err(|e| LocalError(e.to_string()))?;
        let model = LlamaModel::load_from_file(backend()?, &file, &LlamaModelParams::default()).map_err(|e| {
            LocalError(format!(
                "{}: llama.cpp cannot load it ({e}): damaged, truncated or not an encoder",
                file.display()
            ))
        })?;
        let context = header.context_length().unwrap_or(512).max(8) as usize;
        // sentence-transformers reads at most `max_seq_length` tokens of an input.
        let max_tokens = std::fs::read(path.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c["max_seq_length"].as_u64())
            .map_or(context, |m| (m as usize).min(context));
        Ok(LocalEmbeddings {
            provider: provider.to_string(),
            model_name,
            model: Arc::new(model),
            max_tokens,
            slots: Slots::shared(),
            opening: Arc::new(Mutex::new(())),
        })
    }

    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// Vector length.
    pub fn dimensions(&self) -> usize {
        self.model.n_embd() as usize
    }

    /// An input's tokens, cut to the model's limit (ending with its separator).
    fn tokens(&self, text: &str) -> Vec<LlamaToken> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > self.max_tokens {
            let last = *tokens.last().expect("longer than the limit");
            tokens.truncate(self.max_tokens - 1);
            tokens.push(last);
        }
        tokens
    }

    /// Embeds `inputs` on this thread (blocking), computing on `threads` threads.
    pub fn embed_blocking(&self, inputs: &[String], threads: i32) -> Result<(Vec<Vec<f32>>, u32), LocalError> {
        let all: Vec<Vec<LlamaToken>> = inputs.iter().map(|t| self.tokens(t)).collect();
        let longest = all.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let per_step = BATCH_TOKENS.max(longest);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(per_step as u32))
            .with_n_batch(per_step as u32)
            .with_n_ubatch(per_step as u32)
            .with_n_seq_max(BATCH_SEQUENCES as u32)
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Unspecified)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = {
            let _one = self.opening.lock().unwrap_or_else(|e| e.into_inner());
            self.model.new_context(backend()?, params).map_err(|e| LocalError(format!("cannot open a context: {e}")))?
        };
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut batch = LlamaBatch::new(per_step, BATCH_SEQUENCES as i32);
        let mut start = 0;
        while start < all.len() {
            // Pack sequences up to the step's limits.
            let mut end = start;
            let mut tokens = 0;
            while end < all.len() && end - start < BATCH_SEQUENCES && tokens + all[end].len() <= per_step {
                tokens += all[end].len();
                end += 1;
            }
            batch.clear();
            for (seq, input) in all[start..end].iter().enumerate() {
                batch.add_sequence(input, seq as i32, false).map_err(|e| LocalError(e.to_string()))?;
            }
            ctx.clear_kv_cache();
            ctx.decode(&mut batch).map_err(|e| LocalError(format!("embedding failed: {e}")))?;
            for seq in 0..(end - start) {
                let v = ctx.embeddings_seq_ith(seq as i32).map_err(|e| LocalError(format!("no embedding: {e}")))?;
                vectors.push(normalised(v));
            }
            start = end;
        }
        let used = all.iter().map(Vec::len).sum::<usize>() as u32;
        Ok((vectors, used))
    }
}

/// `v / |v|` (a zero vector stays zero).
fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    if norm == 0.0 { v.to_vec() } else { v.iter().map(|x| (*x as f64 / norm) as f32).collect() }
}

#[async_trait]
impl EmbeddingProvider for LocalEmbeddings {
    fn name(&self) -> &str {
        &self.provider
    }

    async fn embed(&self, model: Option<&str>, inputs: &[String]) -> Result<Embeddings, AiError> {
        if let Some(asked) = model.filter(|m| *m != self.model_name) {
            return Err(AiError::new(
                &self.provider,
                AiErrorKind::Rejected,
                format!("this provider runs the local model '{}', not '{asked}'", self.model_name),
            ));
        }
        let (slot, threads) = self.slots.take().await;
        let me = self.clone();
        let inputs = inputs.to_vec();
        let (vectors, used) = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            me.embed_blocking(&inputs, threads)
        })
        .await
        .map_err(|e| AiError::new(&self.provider, AiErrorKind::Unavailable, e.to_string()))?
        .map_err(|e| AiError::new(&self.provider, AiErrorKind::Unavailable, e.0))?;
        Ok(Embeddings {
            model: self.model_name.clone(),
            vectors,
            usage: Some(Usage { prompt_tokens: used, completion_tokens: 0 }),
        })
    }
}
