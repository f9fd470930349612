//! Quire's pipeline engine.
//!
//! Every long task — AI drafts, image generation, imports, exports, board builds, clean-up —
//! is a **context** run through a **pipeline** of [`Component`]s by a **worker**. Contexts
//! live in the store ([`quire_store::JobStore`]), so they survive restarts and any process
//! may run them:
//!
//! * a worker claims contexts with a lease and keeps it by heartbeat; when its process dies
//!   the lease lapses and another worker claims the context, resuming after the last
//!   component whose additions were recorded;
//! * a failed attempt is retried after an exponential backoff with jitter, up to the
//!   context's `max_attempts` ([`RetryPolicy`]); permanent errors fail at once;
//! * cancellation reaches a running component within moments (its future is dropped);
//! * [`Scheduler`] submits contexts on cron schedules, once across all processes.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn quire_store::Store>) -> quire_core::Result<()> {
//! use quire_jobs::{Engine, EngineConfig, WorkerConfig};
//! let engine = Engine::new(store, quire_jobs::components::builtin(), EngineConfig::default());
//! engine.prepare().await?;
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! let worker = engine.start_worker(WorkerConfig::default(), stopped).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use quire_core::{JobLimits, NewContext, Principal, Result};
use quire_store::{Store, Submitted};

mod component;
pub mod components;
mod schedule;
mod worker;

pub use component::{Component, ComponentError, ComponentInfo, Registry, Run, Submitters};
pub use schedule::{Scheduler, next_after};
pub use worker::{WorkerConfig, WorkerHandle, WorkerStats};

/// Where the engine reads the time. Tests substitute a [`ManualClock`] to check retry
/// timing and schedules without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        quire_core::now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// When a failed attempt runs again: `base · 2^(attempt-1)`, capped at `max`, of which
/// the upper half is jitter (so that contexts failing together do not retry together).
/// The jitter is derived from the context id and attempt, so it is reproducible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_secs(2), max: Duration::from_secs(300) }
    }
}

impl RetryPolicy {
    /// The pause before the attempt after `attempt` (1-based) of context `id`.
    pub fn delay(&self, id: &str, attempt: i32) -> Duration {
        let exp = attempt.clamp(1, 32) as u32 - 1;
        let full = self.base.saturating_mul(2u32.saturating_pow(exp)).min(self.max);
        let half = full / 2;
        let hash = quire_core::stable_hash(id.bytes().chain(attempt.to_le_bytes()));
        let span = (full - half).as_millis() as u64;
        half + Duration::from_millis(if span == 0 { 0 } else { hash % (span + 1) })
    }
}

/// Engine settings shared by every worker of a process.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub limits: JobLimits,
    pub retry: RetryPolicy,
    /// How long a claim holds without a heartbeat; a worker heartbeats every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work when no wake-up came.
    pub poll_interval: Duration,
    /// How often a busy worker checks for cancellations asked for on other processes.
    pub cancel_check: Duration,
    /// The longest one component may run before its attempt fails as `timeout`.
    pub component_timeout: Duration,
    /// Completed, failed and cancelled contexts are deleted this long after they end.
    pub retention: Duration,
    /// Context types that are records of their own (a board build, with its log and
    /// artifacts): the clean-up leaves them.
    pub kept_types: Vec<String>,
    /// Most contexts of a queue running at once across every worker, by queue; `prepare`
    /// stores them (queues not named keep what is stored).
    pub queue_limits: Vec<(String, u32)>,
    /// Queues only Quire itself submits to (its services' own, such as version history):
    /// a user's context there could hold up every workspace's work.
    pub system_queues: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: JobLimits::default(),
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            cancel_check: Duration::from_millis(500),
            component_timeout: Duration::from_secs(3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            kept_types: Vec::new(),
            queue_limits: Vec::new(),
            system_queues: Vec::new(),
        }
    }
}

/// The engine of one process: the store, the registry of components, the clock.
#[derive(Clone)]
pub struct Engine(Arc<EngineInner>);

struct EngineInner {
    store: Arc<dyn Store>,
    registry: Registry,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, registry: Registry, config: EngineConfig) -> Engine {
        Engine::with_clock(store, registry, config, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<dyn Store>,
        registry: Registry,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Engine {
        Engine(Arc::new(EngineInner { store, registry, config, clock }))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    pub fn config(&self) -> &EngineConfig {
        &self.0.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    /// Stores the built-in templates, the built-in schedules (the nightly clean-up) and the
    /// configured queue limits. Every process may call it.
    pub async fn prepare(&self) -> Result<()> {
        for (queue, max) in &self.config().queue_limits {
            self.store().set_queue_limit(queue, Some(*max)).await?;
        }
        for t in components::builtin_templates() {
            self.store().ensure_template(&t).await?;
        }
        if self.registry().get(components::CLEANUP).is_some() {
            let mut data = serde_json::Map::new();
            let days = (self.config().retention.as_secs() / 86_400).clamp(1, components::MAX_RETENTION_DAYS);
            data.insert("retention_days".into(), days.into());
            data.insert("keep_types".into(), self.config().kept_types.clone().into());
            self.schedule("cleanup.contexts", "0 3 * * *", "maintenance", &[components::CLEANUP], data).await?;
        }
        Ok(())
    }

    /// Submits contexts to a workspace after checking that every component exists here and
    /// that `who` may submit it and use the queue (system components and queues are Quire's).
    pub async fn submit(&self, who: &Principal, workspace: &str, new: Vec<NewContext>) -> Result<Vec<Submitted>> {
        let many = new.len() > 1;
        let at = |i: usize, field: &str| if many { format!("contexts[{i}].{field}") } else { field.to_string() };
        for (i, n) in new.iter().enumerate() {
            let named = |e| match e {
                quire_core::Error::Invalid { field, message } => quire_core::Error::invalid(at(i, &field), message),
                quire_core::Error::Forbidden(message) if many => {
                    quire_core::Error::Forbidden(format!("contexts[{i}].{message}"))
                }
                e => e,
            };
            self.registry().check(&n.pipeline, who).map_err(named)?;
            for name in &n.pipeline {
                if let Some(component) = self.registry().get(name) {
                    component.admit(who, n.workspace.as_deref().unwrap_or(workspace), &n.data).await.map_err(named)?;
                }
            }
            if let Some(queue) = &n.queue
                && !who.is_system()
                && self.config().system_queues.contains(queue)
            {
                return Err(quire_core::Error::Forbidden(format!(
                    "{}: the queue '{queue}' is Quire's own; submit to 'default' or a queue of yours",
                    at(i, "queue")
                )));
            }
        }
        self.store().submit_contexts(who, workspace, new, &self.config().limits, self.clock().now_ms()).await
    }

    /// Creates or updates the cron schedule `name` (five fields, UTC) that submits a
    /// system context of `kind` through `pipeline`.
    pub async fn schedule(
        &self,
        name: &str,
        cron: &str,
        kind: &str,
        pipeline: &[&str],
        data: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        self.registry().check(&pipeline.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &Principal::System)?;
        let next = next_after(cron, self.clock().now_ms())?;
        let schedule = quire_core::Schedule {
            name: name.into(),
            cron: cron.into(),
            kind: kind.into(),
            pipeline: pipeline.iter().map(|s| s.to_string()).collect(),
            data,
            queue: "default".into(),
            next_run_at: next,
        };
        self.store().upsert_schedule(&schedule).await
    }

    /// Starts a worker (and its process's scheduler) until `shutdown` turns true.
    pub async fn start_worker(
        &self,
        config: WorkerConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<WorkerHandle> {
        worker::start(self.clone(), config, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_with_jitter_and_a_cap() {
        let p = RetryPolicy { base: Duration::from_secs(2), max: Duration::from_secs(60) };
        for attempt in 1..=10 {
            let full = (2u64 << (attempt - 1)).min(60) * 1000;
            let d = p.delay("ctx_a", attempt).as_millis() as u64;
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} not in [{}, {full}]", full / 2);
        }
        assert_eq!(p.delay("ctx_a", 3), p.delay("ctx_a", 3), "reproducible");
        let spread: std::collections::HashSet<_> = (0..20).map(|i| p.delay(&format!("ctx_{i}"), 4)).collect();
        assert!(spread.len() > 10, "jitter spreads contexts apart: {spread:?}");
    }
}
