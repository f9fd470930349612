//! The AI interactions log: one entry per provider call, recorded once — at the call's end,
//! or as `cancelled` when whoever made it (a client, a pipeline) goes away first — through a
//! batch writer, so that no call waits for the database to end.

use std::sync::Arc;
use std::time::Instant;

use quire_ai::{Message, Usage};
use quire_core::Interaction;
use quire_store::Store;
use serde_json::Value;

use crate::batch::BatchWriter;

/// The queue the log's entries are stored from.
pub type Writer = BatchWriter<Interaction>;

/// Starts the log's writer over `store`.
pub fn writer(store: Arc<dyn Store>) -> Writer {
    Writer::start("ai_interactions", store, 10_000, |store, batch| store.record_interactions(batch))
}

/// An interaction being made.
pub struct Log {
    writer: Arc<Writer>,
    started: Instant,
    entry: Option<Interaction>,
}

/// A new entry: `kind` (text, image, embedding) by `actor` in a workspace, through
/// `provider`; `cancelled` until it is closed.
pub fn interaction(workspace_id: &str, actor: &str, kind: &str, provider: &str) -> Interaction {
    Interaction {
        id: quire_core::new_id("ai"),
        workspace_id: workspace_id.to_string(),
        actor: actor.to_string(),
        context_id: None,
        kind: kind.into(),
        template: None,
        template_version: None,
        provider: provider.to_string(),
        model: String::new(),
        parameters: Value::Null,
        prompt: String::new(),
        tokens_in: None,
        tokens_out: None,
        latency_ms: 0,
        first_chunk_ms: None,
        status: "cancelled".into(),
        error: None,
        created_at: time::OffsetDateTime::now_utc(),
    }
}

/// A chat as the log keeps it: each message after its role.
pub fn prompt_text(messages: &[Message]) -> String {
    let role = |m: &Message| serde_json::to_value(m.role).ok().and_then(|v| v.as_str().map(String::from));
    messages.iter().map(|m| format!("[{}] {}", role(m).unwrap_or_default(), m.content)).collect::<Vec<_>>().join("\n\n")
}

impl Log {
    /// Starts timing the call `entry` describes.
    pub fn start(writer: Arc<Writer>, entry: Interaction) -> Log {
        Log { writer, started: Instant::now(), entry: Some(entry) }
    }

    /// The entry, until it is closed.
    pub fn entry(&mut self) -> Option<&mut Interaction> {
        self.entry.as_mut()
    }

    /// Closes the interaction as `failed` with `e`; `e`.
    pub async fn failed(&mut self, e: quire_ai::AiError) -> quire_ai::AiError {
        self.close("failed", Some(e.to_string()), None).await;
        e
    }

    /// `result` as it is, the interaction closed as `failed` when it is an error.
    pub async fn check<T>(&mut self, result: Result<T, quire_ai::AiError>) -> Result<T, quire_ai::AiError> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.failed(e).await),
        }
    }

    /// Notes the model that answered.
    pub fn answered_by(&mut self, model: &str) {
        if let Some(e) = self.entry.as_mut() {
            e.model = model.to_string();
        }
    }

    /// Notes the first chunk's time (once).
    pub fn first_chunk(&mut self) {
        let at = self.started.elapsed().as_millis() as i64;
        if let Some(e) = self.entry.as_mut().filter(|e| e.first_chunk_ms.is_none()) {
            e.first_chunk_ms = Some(at);
        }
    }

    fn finish(&mut self, status: &str, error: Option<String>, usage: Option<Usage>) -> Option<Interaction> {
        let mut e = self.entry.take()?;
        e.status = status.into();
        e.error = error;
        e.latency_ms = self.started.elapsed().as_millis() as i64;
        if let Some(u) = usage {
            e.tokens_in = Some(i64::from(u.prompt_tokens));
            e.tokens_out = Some(i64::from(u.completion_tokens));
        }
        Some(e)
    }

    /// Ends the interaction and queues it; its id.
    pub async fn close(&mut self, status: &str, error: Option<String>, usage: Option<Usage>) -> Option<String> {
        let e = self.finish(status, error, usage)?;
        let id = e.id.clone();
        self.writer.record(e).await;
        Some(id)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Some(e) = self.finish("cancelled", Some("the caller went away".into()), None) {
            self.writer.try_record(e);
        }
    }
}
