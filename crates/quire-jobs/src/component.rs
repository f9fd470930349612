//! Components: the steps of a pipeline, and the registry that names them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use quire_core::{Context, JobLimits, Principal, Progress};
use quire_store::{Lease, RunningUpdate, Store};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::Clock;

/// What a component says about itself, for `GET /api/v1/components`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ComponentInfo {
    pub name: String,
    pub description: String,
    /// Keys of `data` it reads.
    pub reads: Vec<String>,
    /// Keys it adds to `data`.
    pub writes: Vec<String>,
    /// Who may put it in a pipeline: `users` (anyone who may submit contexts to the
    /// workspace) or `system` (Quire itself: schedules, version history).
    pub submitted_by: Submitters,
}

/// Who may submit a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Submitters {
    /// Anyone who may submit contexts to the workspace.
    Users,
    /// Only Quire itself (its schedules and services): the component acts beyond what a
    /// workspace's members may ask for (the whole instance, another service's queue).
    System,
}

impl ComponentInfo {
    pub fn new(name: &str, description: &str, reads: &[&str], writes: &[&str]) -> ComponentInfo {
        ComponentInfo {
            name: name.into(),
            description: description.into(),
            reads: reads.iter().map(|s| s.to_string()).collect(),
            writes: writes.iter().map(|s| s.to_string()).collect(),
            submitted_by: Submitters::Users,
        }
    }

    /// The same component, submitted by Quire itself only.
    pub fn system_only(mut self) -> ComponentInfo {
        self.submitted_by = Submitters::System;
        self
    }
}

/// Why a component failed. Retryable errors are tried again with backoff until the
/// context's attempts run out; permanent ones fail the context at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentError {
    pub code: String,
    pub message: String,
    pub permanent: bool,
}

impl ComponentError {
    /// A failure that may pass on another attempt (a timeout, an unavailable service).
    pub fn retryable(code: &str, message: impl Into<String>) -> ComponentError {
        ComponentError { code: code.into(), message: message.into(), permanent: false }
    }

    /// A failure no retry can fix (missing input, an invalid template).
    pub fn permanent(code: &str, message: impl Into<String>) -> ComponentError {
        ComponentError { code: code.into(), message: message.into(), permanent: true }
    }
}

impl From<quire_core::Error> for ComponentError {
    fn from(e: quire_core::Error) -> ComponentError {
        use quire_core::Error as E;
        match e {
            E::Unavailable(m) | E::Internal(m) | E::Conflict(m) => ComponentError::retryable("store_unavailable", m),
            other => ComponentError::permanent("invalid", other.to_string()),
        }
    }
}

/// A pipeline step. It reads the context (its data so far) and returns additions, which the
/// engine merges into `data` and records together with the step's completion. A step that
/// ran but whose additions were not recorded (its worker died) runs again on the next
/// attempt, so a step with effects outside `data` must make them idempotent (key them by
/// the context id).
#[async_trait]
pub trait Component: Send + Sync + 'static {
    fn info(&self) -> ComponentInfo;
    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError>;

    /// Checks, when a context is submitted, that `who` may ask this of it in `workspace` (id
    /// or slug): a component that changes a document checks the submitter may edit it, and
    /// may refuse data it would fail on at once. Its error answers the submission (the field
    /// named as `data.<key>`). By default everything is admitted.
    async fn admit(&self, _who: &Principal, _workspace: &str, _data: &Map<String, Value>) -> quire_core::Result<()> {
        Ok(())
    }
}

/// The components a worker can run, by name. Later layers register their own.
#[derive(Default, Clone)]
pub struct Registry {
    components: BTreeMap<String, Arc<dyn Component>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds (or replaces) a component under its own name.
    pub fn register(&mut self, component: impl Component) -> &mut Self {
        let name = component.info().name;
        self.components.insert(name, Arc::new(component));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Component>> {
        self.components.get(name)
    }

    /// Every component's description, by name.
    pub fn describe(&self) -> Vec<ComponentInfo> {
        self.components.values().map(|c| c.info()).collect()
    }

    /// `Invalid` naming the first pipeline entry no component answers to; `Forbidden` for a
    /// system component when `who` is not Quire itself.
    pub fn check(&self, pipeline: &[String], who: &Principal) -> quire_core::Result<()> {
        for (i, name) in pipeline.iter().enumerate() {
            let Some(component) = self.components.get(name) else {
                let known: Vec<&str> = self
                    .components
                    .iter()
                    .filter(|(_, c)| who.is_system() || c.info().submitted_by == Submitters::Users)
                    .map(|(n, _)| n.as_str())
                    .collect();
                return Err(quire_core::Error::invalid(
                    format!("pipeline[{i}]"),
                    format!("unknown component '{name}'; this instance has: {}", known.join(", ")),
                ));
            };
            if !who.is_system() && component.info().submitted_by == Submitters::System {
                return Err(quire_core::Error::Forbidden(format!(
                    "pipeline[{i}]: the component '{name}' is run by Quire itself and cannot be submitted"
                )));
            }
        }
        Ok(())
    }
}

/// What a running component can see and do: its context, the store, progress and logs,
/// and the cancellation signal.
#[derive(Clone)]
pub struct Run {
    pub(crate) context: Arc<Context>,
    pub(crate) component: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) lease: Lease,
    pub(crate) limits: JobLimits,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cancel: watch::Receiver<bool>,
    /// Set when a write found the lease gone: the attempt belongs to another worker now.
    pub(crate) lost: Arc<AtomicBool>,
    /// The component's start, until something writes it: the first progress or log line
    /// carries it, so that a context's events stay in the order they happened. Held while
    /// a write is on its way, so the worker's own writing of the start (for a component that
    /// says nothing for a while) cannot overtake the component's first line, nor follow it.
    pub(crate) unwritten_start: Arc<tokio::sync::Mutex<Option<RunningUpdate>>>,
}

impl Run {
    /// The context as it stands before this component: `data` holds earlier components'
    /// additions.
    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn data(&self) -> &Map<String, Value> {
        &self.context.data
    }

    /// A string field of `data`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.context.data.get(key).and_then(Value::as_str)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Now, by the engine's clock (tests drive it by hand).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Reports progress (0–100) with a message; shown on the context and streamed.
    pub async fn progress(&self, percent: f32, message: impl Into<String>) {
        self.report(percent, message.into(), None).await;
    }

    /// Reports progress together with the text written since the last report, as a `chunk`
    /// event `{offset, text, component}` (`offset`: the characters written before it; 0 starts
    /// the text anew, as a retried attempt does). Followers of the context's events see the
    /// text grow as it is written, and one who comes back with `Last-Event-ID` loses none.
    pub async fn progress_with_text(&self, percent: f32, message: impl Into<String>, offset: usize, text: &str) {
        let chunk = (!text.is_empty() || offset == 0)
            .then(|| ("chunk".to_string(), json!({ "offset": offset, "text": text, "component": self.component })));
        self.report(percent, message.into(), chunk).await;
    }

    /// Records progress, after `before` when given, in one write.
    async fn report(&self, percent: f32, message: String, before: Option<(String, Value)>) {
        let percent = percent.clamp(0.0, 100.0);
        let event =
            ("progress".to_string(), json!({ "percent": percent, "message": message, "component": self.component }));
        let progress = Progress { percent, message, component: Some(self.component.clone()) };
        let events = before.into_iter().chain([event]).collect();
        self.record(RunningUpdate { progress: Some(progress), events, ..Default::default() }).await;
    }

    /// Appends a log line (`level`: debug, info, warn or error) to the context's events.
    pub async fn log(&self, level: &str, message: impl Into<String>) {
        let mut message = message.into();
        if message.len() > self.limits.max_log_bytes {
            let mut cut = self.limits.max_log_bytes;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let event = ("log".to_string(), json!({ "level": level, "message": message, "component": self.component }));
        self.record(RunningUpdate { events: vec![event], ..Default::default() }).await;
    }

    async fn record(&self, update: RunningUpdate) {
        let mut unwritten = self.unwritten_start.lock().await;
        let update = match unwritten.take() {
            Some(mut start) => {
                start.events.extend(update.events);
                start.progress = update.progress;
                start
            }
            None => update,
        };
        match self.store.update_running(&self.lease, update, &self.limits, self.clock.now_ms()).await {
            Ok(()) => {}
            Err(quire_core::Error::Conflict(m)) => {
                tracing::warn!(context = %self.lease.context_id, "{m}");
                self.lost.store(true, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(context = %self.lease.context_id, error = %e, "recording progress failed"),
        }
    }

    /// Whether the context was cancelled (or this attempt lost its lease): stop soon.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow() || self.lost.load(Ordering::Relaxed)
    }

    /// Resolves when the context is cancelled. The engine also drops a cancelled
    /// component's future, so awaiting this is only needed to clean up first.
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}
