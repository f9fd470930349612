//! The pipeline engine on SQLite and PostgreSQL: pipelines in the seed's shape, leases and
//! their fencing, retries on a hand-driven clock, cancellation, idempotency, priorities,
//! delays, queue limits, cron, replay, workers and templates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use quire_core::{
    Context, ContextQuery, ContextStatus, Error, NewContext, NewTemplate, NewUser, NewWorkspace, Outcome, PageRequest,
    Principal, Processing, Role,
};
use quire_jobs::{
    Clock, Component, ComponentError, ComponentInfo, Engine, EngineConfig, ManualClock, Registry, RetryPolicy, Run,
    Scheduler, WorkerConfig, components,
};
use quire_store::testing::{Backend, TestStore};
use quire_store::{Finishing, Lease, NextClaim, RunningUpdate, StoreOptions};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

quire_store::for_each_backend!(
    a_pipeline_runs_in_the_seed_shape,
    failed_attempts_back_off_on_the_clock_then_fail,
    permanent_errors_fail_at_once,
    cancelling_pending_and_running_contexts,
    idempotency_keys_return_the_first_context,
    priorities_and_delays_order_claims,
    lapsed_leases_are_claimed_again_and_fenced,
    queue_limits_hold_across_claimers,
    cron_schedules_fire_once,
    retry_replays_from_the_failed_component_or_the_start,
    workers_register_and_show_what_they_run,
    contexts_are_scoped_to_their_workspace,
    templates_are_versioned_and_found_by_type_and_tone,
    events_resume_after_a_sequence_number,
    finishing_claims_the_next_context_at_once,
    ends_finished_together_commit_once_and_claim_one_each,
    a_busy_worker_finishes_contexts_together,
    an_idle_worker_claims_once_per_poll,
    cleanup_refuses_retentions_that_would_purge_everything,
    cleanup_leaves_the_types_that_are_records_of_their_own,
    a_component_holding_the_database_is_not_starved_by_its_own_start,
);

const SYS: Principal = Principal::System;

/// Writes `generated_content` as the seed's AI generator would.
struct FakeGenerator;

#[async_trait]
impl Component for FakeGenerator {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("fake_generator", "Writes fixed content for tests", &["template"], &["generated_content"])
    }
    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        assert!(run.data().contains_key("template"), "the template ran first");
        run.progress(50.0, "half way").await;
        run.log("info", "generating").await;
        Ok(obj(json!({
            "generated_content": {
                "introduction": "Microservices architecture has revolutionized...",
                "body": [{"heading": "Key Principles", "content": "The fundamental principles include..."}],
                "conclusion": "By following these best practices, developers can..."
            },
            "model_used": "fake"
        })))
    }
}

/// Fails its first `fail_first` runs (permanently or not), counting every run.
struct Flaky {
    runs: Arc<AtomicUsize>,
    fail_first: usize,
    permanent: bool,
}

#[async_trait]
impl Component for Flaky {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("flaky", "Fails its first runs", &[], &["flaky_ok"])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        if n < self.fail_first {
            return Err(if self.permanent {
                ComponentError::permanent("broken", format!("run {n} failed for good"))
            } else {
                ComponentError::retryable("busy", format!("run {n} failed"))
            });
        }
        Ok(obj(json!({ "flaky_ok": true })))
    }
}

/// Adds more than a context may hold.
struct Bloat;

#[async_trait]
impl Component for Bloat {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("bloat", "Adds 2 MB", &[], &["blob"])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        Ok(obj(json!({ "blob": "x".repeat(2 * 1024 * 1024) })))
    }
}

/// Panics.
struct Panicky;

#[async_trait]
impl Component for Panicky {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("panicky", "Panics", &[], &[])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        panic!("a component bug");
    }
}

/// Counts its runs and records the count.
struct Stamp(Arc<AtomicUsize>);

#[async_trait]
impl Component for Stamp {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("stamp", "Counts its runs", &[], &["stamped"])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(obj(json!({ "stamped": n })))
    }
}

/// Waits until as many contexts as its barrier counts run it, then lets them all go.
struct Together(Arc<tokio::sync::Barrier>);

#[async_trait]
impl Component for Together {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("together", "Ends with the others of its barrier", &[], &[])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        self.0.wait().await;
        Ok(Map::new())
    }
}

/// Holds the database's write lock from a connection of its own for `hold`, past the moment
/// the worker writes the component's start, then lets it go.
struct HoldsTheDatabase {
    url: String,
    hold: Duration,
}

#[async_trait]
impl Component for HoldsTheDatabase {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("holds_the_database", "Holds the write lock for a while", &[], &["held"])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        use sqlx::Connection;
        let fail = |e: sqlx::Error| ComponentError::permanent("database", e.to_string());
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.map_err(fail)?;
            let mut tx = c.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
            tokio::time::sleep(self.hold).await;
            sqlx::query("SELECT 1").execute(&mut *tx).await.map_err(fail)?;
            tx.commit().await.map_err(fail)?;
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.map_err(fail)?;
            let mut tx = c.begin().await.map_err(fail)?;
            sqlx::query("LOCK TABLE jobs IN EXCLUSIVE MODE").execute(&mut *tx).await.map_err(fail)?;
            tokio::time::sleep(self.hold).await;
            tx.commit().await.map_err(fail)?;
        }
        Ok(obj(json!({ "held": true })))
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn fast() -> EngineConfig {
    EngineConfig {
        poll_interval: Duration::from_millis(20),
        cancel_check: Duration::from_millis(50),
        retry: RetryPolicy { base: Duration::from_secs(2), max: Duration::from_secs(60) },
        kept_types: vec!["record".into()],
        ..EngineConfig::default()
    }
}

struct Setup {
    t: TestStore,
    engine: Engine,
    ws: String,
    stop: watch::Sender<bool>,
}

async fn setup(b: Backend, registry: Registry, clock: Option<Arc<ManualClock>>) -> Setup {
    let t = b.open(StoreOptions::default()).await;
    let ws = t.store.create_workspace(&SYS, NewWorkspace { name: "Jobs".into(), ..Default::default() }).await.unwrap();
    let engine = match clock {
        Some(c) => Engine::with_clock(t.store.clone(), registry, fast(), c),
        None => Engine::new(t.store.clone(), registry, fast()),
    };
    engine.prepare().await.unwrap();
    Setup { t, engine, ws: ws.id, stop: watch::channel(false).0 }
}

impl Setup {
    async fn worker(&self) -> quire_jobs::WorkerHandle {
        self.worker_with(WorkerConfig::default()).await
    }

    async fn worker_with(&self, config: WorkerConfig) -> quire_jobs::WorkerHandle {
        let config = WorkerConfig { schedules: false, grace: Duration::from_millis(300), ..config };
        self.engine.start_worker(config, self.stop.subscribe()).await.unwrap()
    }

    async fn submit(&self, new: NewContext) -> Context {
        self.engine.submit(&SYS, &self.ws, vec![new]).await.unwrap().remove(0).0
    }

    /// Waits (up to 20 s) until the context satisfies `ok`.
    async fn until(&self, id: &str, what: &str, ok: impl Fn(&Context) -> bool) -> Context {
        for _ in 0..1000 {
            let c = self.t.store.get_context(&SYS, id).await.unwrap();
            if ok(&c) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("context {id} never became {what}: {:?}", self.t.store.get_context(&SYS, id).await.unwrap());
    }
}

fn with(kind: &str, pipeline: &[&str], data: Value) -> NewContext {
    NewContext::new(kind, pipeline, obj(data))
}

fn registry() -> Registry {
    let mut r = components::builtin();
    r.register(FakeGenerator);
    r
}

async fn a_pipeline_runs_in_the_seed_shape(b: Backend) {
    let s = setup(b, registry(), None).await;
    let data = json!({"title": "Example Article", "keywords": ["microservices"], "target_audience": "developers", "tone": "technical"});
    let ctx = s.submit(with("article", &["template", "fake_generator", "transformer"], data)).await;
    assert_eq!((ctx.status, ctx.attempts, ctx.max_attempts), (ContextStatus::Pending, 0, 5));
    assert!(ctx.processing.is_none());
    let _w = s.worker().await;
    let done = s.until(&ctx.id, "completed", |c| c.status == ContextStatus::Completed).await;
    let d = &done.data;
    assert_eq!(d["title"], "Example Article", "the submitted data stays");
    assert_eq!(d["template"]["id"], "tmpl_article_technical");
    assert_eq!(d["template"]["sections"][1]["sections"], 3);
    assert_eq!(d["model_used"], "fake");
    let f = &d["formatted_content"];
    assert_eq!((f["format"].as_str(), f["reading_time"].as_str()), (Some("markdown"), Some("1 minute")));
    assert!(f["content"].as_str().unwrap().starts_with("# Example Article\n\n## Introduction\n\n"));
    assert_eq!(f["word_count"], 21);
    let p = done.processing.clone().unwrap();
    assert_eq!(p.completed_components, ["template", "fake_generator", "transformer"]);
    assert!(p.current_component.is_none(), "the final context has no current component");
    assert!(p.start_time.is_some() && p.end_time >= p.start_time);
    assert_eq!(p.duration_ms, Some(((p.end_time.unwrap() - p.start_time.unwrap()).whole_milliseconds()) as i64));
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["type"], "article");
    assert_eq!(json["progress"]["message"], "half way");
    assert!(json["processing"].get("current_component").is_none());

    let (_, events) = s.t.store.context_events(&SYS, &ctx.id, 0, 100).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>(), "numbered 1, 2, … without gaps");
    let statuses: Vec<&str> =
        events.iter().filter(|e| e.kind == "status").filter_map(|e| e.data["status"].as_str()).collect();
    assert_eq!(statuses, ["pending", "processing", "completed"]);
    let steps: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "component")
        .map(|e| format!("{}:{}", e.data["component"].as_str().unwrap(), e.data["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            "template:started",
            "template:completed",
            "fake_generator:started",
            "fake_generator:completed",
            "transformer:started",
            "transformer:completed"
        ]
    );
    // The generator's own progress and log line sit between its start and its end.
    let generator: Vec<String> = events
        .iter()
        .filter(|e| e.data["component"] == "fake_generator")
        .map(|e| format!("{}:{}", e.kind, e.data["state"].as_str().or(e.data["message"].as_str()).unwrap_or("")))
        .collect();
    assert_eq!(generator, ["component:started", "progress:half way", "log:generating", "component:completed"]);
}

async fn failed_attempts_back_off_on_the_clock_then_fail(b: Backend) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut r = registry();
    r.register(Flaky { runs: runs.clone(), fail_first: 100, permanent: false });
    let clock = ManualClock::new(quire_core::now_ms());
    let s = setup(b, r, Some(clock.clone())).await;
    let mut new = with("test", &["flaky"], json!({}));
    new.max_attempts = Some(3);
    let ctx = s.submit(new).await;
    let _w = s.worker().await;
    let policy = s.engine.config().retry;
    let mut due = clock.now_ms();
    for attempt in 1..=2 {
        let c = s.until(&ctx.id, "retrying", |c| c.status == ContextStatus::Retrying && c.attempts == attempt).await;
        let err = c.error.clone().unwrap();
        assert_eq!((err.code.as_str(), err.attempt, err.permanent), ("busy", attempt, false));
        assert_eq!(err.component.as_deref(), Some("flaky"));
        let wait = policy.delay(&ctx.id, attempt).as_millis() as i64;
        let run_at = (c.run_at.unix_timestamp_nanos() / 1_000_000) as i64;
        assert_eq!(run_at, due + wait, "attempt {attempt} retries after the policy's delay");
        // Just before the backoff ends nothing runs; at its end the next attempt does.
        clock.set(run_at - 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(runs.load(Ordering::SeqCst), attempt as usize, "no attempt before the backoff ends");
        clock.set(run_at);
        due = run_at;
    }
    let failed = s.until(&ctx.id, "failed", |c| c.status == ContextStatus::Failed).await;
    assert_eq!((failed.attempts, failed.error.unwrap().attempt), (3, 3));
    assert_eq!(runs.load(Ordering::SeqCst), 3, "max_attempts bounds the runs");
    assert!(failed.processing.unwrap().end_time.is_some());
}

async fn permanent_errors_fail_at_once(b: Backend) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut r = registry();
    r.register(Flaky { runs: runs.clone(), fail_first: 100, permanent: true }).register(Panicky).register(Bloat);
    let s = setup(b, r, None).await;
    let ctx = s.submit(with("test", &["flaky", "noop"], json!({}))).await;
    let _w = s.worker().await;
    let c = s.until(&ctx.id, "failed", |c| c.status == ContextStatus::Failed).await;
    let e = c.error.unwrap();
    assert_eq!((e.code.as_str(), e.permanent, c.attempts), ("broken", true, 1));
    assert_eq!(c.processing.unwrap().current_component.as_deref(), Some("flaky"), "a failed context names where");
    // A component missing from the transformer's input is a permanent, explained failure too.
    let t = s.submit(with("test", &["transformer"], json!({}))).await;
    let c = s.until(&t.id, "failed", |c| c.status == ContextStatus::Failed).await;
    assert!(c.error.unwrap().message.contains("generated_content"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A panicking component fails its attempt (retryable) without taking the worker down.
    let mut once = with("test", &["panicky"], json!({}));
    once.max_attempts = Some(1);
    let p = s.submit(once).await;
    let c = s.until(&p.id, "failed", |c| c.status == ContextStatus::Failed).await;
    assert_eq!(c.error.unwrap().code, "component_panicked");
    let after = s.submit(with("test", &["noop"], json!({}))).await;
    s.until(&after.id, "completed", |c| c.status == ContextStatus::Completed).await;
    // Data past the limit (1 MiB) fails the context for good, whether the last component or
    // an earlier one grew it, and nothing of it is stored.
    for pipeline in [&["noop", "bloat"][..], &["bloat", "noop"][..]] {
        let big = s.submit(with("test", pipeline, json!({}))).await;
        let c = s.until(&big.id, "failed", |c| c.status == ContextStatus::Failed).await;
        let e = c.error.unwrap();
        assert_eq!((e.code.as_str(), e.permanent, e.component.as_deref()), ("data_too_large", true, Some("bloat")));
        assert!(!c.data.contains_key("blob"), "{pipeline:?}");
        assert!(!c.processing.unwrap().completed_components.contains(&"bloat".to_string()));
    }
}

async fn cancelling_pending_and_running_contexts(b: Backend) {
    let s = setup(b, registry(), None).await;
    let mut later = with("test", &["noop"], json!({}));
    later.delay_ms = Some(3_600_000);
    let pending = s.submit(later).await;
    let c = s.t.store.cancel_context(&SYS, &pending.id).await.unwrap();
    assert_eq!(c.status, ContextStatus::Cancelled);
    assert!(matches!(s.t.store.cancel_context(&SYS, &pending.id).await, Err(Error::Conflict(_))), "once");
    // A cancelled context may be retried, once: a retrying one is not retried again.
    let again = s.t.store.retry_context(&SYS, &pending.id, false).await.unwrap();
    assert_eq!((again.status, again.attempts), (ContextStatus::Retrying, 0));
    assert!(matches!(s.t.store.retry_context(&SYS, &pending.id, false).await, Err(Error::Conflict(_))), "only once");
    s.t.store.cancel_context(&SYS, &pending.id).await.unwrap();

    let long = s.submit(with("test", &["wait", "noop"], json!({"wait_ms": 600_000}))).await;
    let _w = s.worker().await;
    s.until(&long.id, "waiting", |c| {
        c.processing.as_ref().and_then(|p| p.current_component.as_deref()) == Some("wait")
    })
    .await;
    let asked = s.t.store.cancel_context(&SYS, &long.id).await.unwrap();
    assert_eq!((asked.status, asked.cancel_requested), (ContextStatus::Processing, true));
    let done = s.until(&long.id, "cancelled", |c| c.status == ContextStatus::Cancelled).await;
    let p = done.processing.unwrap();
    assert_eq!(p.completed_components, Vec::<String>::new(), "the wait never finished");
    assert!(p.end_time.is_some());
    assert!(matches!(s.t.store.cancel_context(&SYS, &long.id).await, Err(Error::Conflict(_))));
}

async fn idempotency_keys_return_the_first_context(b: Backend) {
    let s = setup(b, registry(), None).await;
    let mut new = with("test", &["noop"], json!({"n": 1}));
    new.idempotency_key = Some("order-42".into());
    let first = s.engine.submit(&SYS, &s.ws, vec![new.clone()]).await.unwrap().remove(0);
    let again = s.engine.submit(&SYS, &s.ws, vec![new.clone()]).await.unwrap().remove(0);
    assert!(first.1 && !again.1, "the second submission created nothing");
    assert_eq!(first.0.id, again.0.id);
    let mut other = new.clone();
    other.data.insert("n".into(), json!(2));
    let err = s.engine.submit(&SYS, &s.ws, vec![other]).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(m) if m.contains("order-42")), "{err:?}");
    // Racing submissions with one key make one context.
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (engine, ws) = (s.engine.clone(), s.ws.clone());
        let mut n = with("test", &["noop"], json!({}));
        n.idempotency_key = Some("race".into());
        racers.push(tokio::spawn(async move { engine.submit(&SYS, &ws, vec![n]).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for r in racers {
        if let Ok(mut v) = r.await.unwrap() {
            ids.insert(v.remove(0).0.id);
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    // A key may appear once in a batch.
    let mut twice = with("test", &["noop"], json!({}));
    twice.idempotency_key = Some("dup".into());
    let err = s.engine.submit(&SYS, &s.ws, vec![twice.clone(), twice]).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "contexts[1].idempotency_key"), "{err:?}");
    // A batch is all or nothing.
    let bad = vec![with("test", &["noop"], json!({})), with("test", &["nope"], json!({}))];
    let err = s.engine.submit(&SYS, &s.ws, bad).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "contexts[1].pipeline[0]"), "{err:?}");
    let q = ContextQuery {
        document: None,
        workspace: Some(s.ws.clone()),
        status: None,
        kind: None,
        page: PageRequest::parse(None, "-created_at", "type", None, None, &Default::default()).unwrap(),
    };
    assert_eq!(s.t.store.list_contexts(&SYS, &q).await.unwrap().items.len(), 2);
}

async fn priorities_and_delays_order_claims(b: Backend) {
    let s = setup(b, registry(), None).await;
    let mut ids = Vec::new();
    for p in [0, 10, -5, 10] {
        let mut n = with("test", &["noop"], json!({}));
        n.priority = p;
        ids.push(s.submit(n).await.id);
    }
    let mut later = with("test", &["noop"], json!({}));
    later.priority = 100;
    later.delay_ms = Some(60_000);
    let delayed = s.submit(later).await;
    let now = quire_core::now_ms();
    let store = &s.t.store;
    let mut order = Vec::new();
    for _ in 0..4 {
        let got = store.claim_contexts("wrk_t", &["default".into()], 1, 3_600_000, now).await.unwrap();
        order.push(got[0].id.clone());
    }
    assert_eq!(order, [ids[1].clone(), ids[3].clone(), ids[0].clone(), ids[2].clone()], "priority, then age");
    assert!(store.claim_contexts("wrk_t", &["default".into()], 5, 3_600_000, now).await.unwrap().is_empty(), "delayed");
    let got = store.claim_contexts("wrk_t", &["default".into()], 5, 3_600_000, now + 60_001).await.unwrap();
    assert_eq!(got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [delayed.id.as_str()]);
    // Other queues are not touched.
    let mut elsewhere = with("test", &["noop"], json!({}));
    elsewhere.queue = Some("builds".into());
    let e = s.submit(elsewhere).await;
    let now = quire_core::now_ms();
    assert!(store.claim_contexts("wrk_t", &["default".into()], 5, 3_600_000, now).await.unwrap().is_empty());
    let got = store.claim_contexts("wrk_t", &["default".into(), "builds".into()], 5, 3_600_000, now).await.unwrap();
    assert_eq!(got[0].id, e.id);
}

async fn lapsed_leases_are_claimed_again_and_fenced(b: Backend) {
    let s = setup(b, registry(), None).await;
    let store = &s.t.store;
    let mut n = with("test", &["noop"], json!({}));
    n.max_attempts = Some(2);
    let ctx = s.submit(n).await;
    let q = ["default".to_string()];
    let t0 = quire_core::now_ms();
    let a = store.claim_contexts("wrk_a", &q, 1, 1_000, t0).await.unwrap();
    assert_eq!(a[0].attempts, 1);
    assert_eq!(store.recover_lapsed(t0 + 500).await.unwrap(), 0, "the lease holds");
    assert!(store.claim_contexts("wrk_b", &q, 1, 1_000, t0 + 500).await.unwrap().is_empty());
    assert_eq!(store.recover_lapsed(t0 + 1_001).await.unwrap(), 1);
    let back = store.get_context(&SYS, &ctx.id).await.unwrap();
    assert_eq!((back.status, back.error.unwrap().code.as_str()), (ContextStatus::Retrying, "worker_lost"));
    let b_ = store.claim_contexts("wrk_b", &q, 1, 1_000, t0 + 1_001).await.unwrap();
    assert_eq!((b_[0].id.as_str(), b_[0].attempts), (ctx.id.as_str(), 2), "a lapsed lease is claimed again");
    let stale = Lease { context_id: ctx.id.clone(), worker_id: "wrk_a".into(), attempt: 1, claim: 1 };
    let update = RunningUpdate { events: vec![("log".into(), json!({"message": "late"}))], ..Default::default() };
    let limits = Default::default();
    assert!(matches!(store.update_running(&stale, update, &limits, t0 + 1_100).await, Err(Error::Conflict(_))));
    let r = store
        .finish_context(&stale, Outcome::Completed, Processing::default(), Default::default(), None, t0 + 1_100)
        .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "the old holder can record nothing");
    // The last attempt's worker dies too: the context fails as worker_lost instead of running a third time.
    assert_eq!(store.recover_lapsed(t0 + 2_200).await.unwrap(), 1);
    assert!(store.claim_contexts("wrk_c", &q, 1, 1_000, t0 + 2_200).await.unwrap().is_empty());
    let c = store.get_context(&SYS, &ctx.id).await.unwrap();
    assert_eq!((c.status, c.error.unwrap().code.as_str()), (ContextStatus::Failed, "worker_lost"));

    // A retry starts the attempts again; the worker that lost the first attempt claims it
    // anew. Its old hold (attempt 1, like the new one) still records nothing.
    let retried = store.retry_context(&SYS, &ctx.id, false).await.unwrap();
    assert_eq!(retried.attempts, 0);
    let again = store.claim_contexts("wrk_a", &q, 1, 60_000, quire_core::now_ms()).await.unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempts), (ctx.id.as_str(), 1));
    assert_eq!(again[0].claims, 3, "claimed by a, then b, then a again");
    let update = RunningUpdate { events: vec![("log".into(), json!({"message": "late"}))], ..Default::default() };
    let r = store.update_running(&stale, update, &limits, quire_core::now_ms()).await;
    assert!(matches!(r, Err(Error::Conflict(_))), "an old lease does not match a later claim: {r:?}");
    let fresh = Lease { context_id: ctx.id.clone(), worker_id: "wrk_a".into(), attempt: 1, claim: again[0].claims };
    store.update_running(&fresh, RunningUpdate::default(), &limits, quire_core::now_ms()).await.unwrap();
}

async fn queue_limits_hold_across_claimers(b: Backend) {
    let s = setup(b, registry(), None).await;
    let store = &s.t.store;
    // The limit is a setting (`--queue-limits gpu=2`) each process stores as it starts.
    let config = EngineConfig { queue_limits: vec![("gpu".into(), 2)], ..fast() };
    Engine::new(store.clone(), registry(), config).prepare().await.unwrap();
    for _ in 0..5 {
        let mut n = with("test", &["noop"], json!({}));
        n.queue = Some("gpu".into());
        s.submit(n).await;
    }
    let now = quire_core::now_ms();
    let q = vec!["gpu".to_string()];
    // Four claimers at once get two contexts between them.
    let mut claims = Vec::new();
    for w in 0..4 {
        let (store, q, name) = (store.clone(), q.clone(), format!("wrk_{w}"));
        claims.push(tokio::spawn(async move {
            let got = store.claim_contexts(&name, &q, 5, 30_000, now).await.unwrap();
            got.into_iter().map(move |c| (name.clone(), c)).collect::<Vec<_>>()
        }));
    }
    let mut held = Vec::new();
    for c in claims {
        held.extend(c.await.unwrap());
    }
    assert_eq!(held.len(), 2, "the queue's limit holds");
    let (worker_id, first) = &held[0];
    let lease = Lease { context_id: first.id.clone(), worker_id: worker_id.clone(), attempt: 1, claim: 1 };
    let next = NextClaim { queues: q.clone(), max: 5, lease_ms: 30_000 };
    let then = store
        .finish_context(&lease, Outcome::Completed, Processing::default(), Default::default(), Some(&next), now)
        .await
        .unwrap();
    assert_eq!(store.get_context(&SYS, &first.id).await.unwrap().status, ContextStatus::Completed);
    assert_eq!(then.len(), 1, "finishing claims the slot it freed, in the same transaction, within the limit");
    assert_eq!(then[0].attempts, 1);
    assert!(store.claim_contexts("wrk_x", &q, 5, 30_000, now).await.unwrap().is_empty(), "the queue is full again");
    store.set_queue_limit("gpu", None).await.unwrap();
    assert_eq!(store.claim_contexts("wrk_x", &q, 5, 30_000, now).await.unwrap().len(), 2, "no limit");
}

async fn cron_schedules_fire_once(b: Backend) {
    let start = 1_795_000_000_000; // 2026-11-18T…Z
    let clock = ManualClock::new(start);
    let s = setup(b, registry(), Some(clock.clone())).await;
    s.engine.schedule("test.minutely", "* * * * *", "maintenance", &["noop"], Map::new()).await.unwrap();
    let err = s.engine.schedule("bad", "61 * * * *", "maintenance", &["noop"], Map::new()).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { ref field, .. } if field == "cron"), "{err:?}");
    let first = quire_jobs::next_after("* * * * *", start).unwrap();
    let scheduler = Scheduler::new(s.engine.clone());
    assert!(scheduler.tick(first - 1).await.unwrap().is_empty(), "not due yet");
    // Two processes tick at the same moment: one firing.
    let other = Scheduler::new(s.engine.clone());
    let (a, b_) = tokio::join!(scheduler.tick(first), other.tick(first));
    let fired: Vec<String> = a.unwrap().into_iter().chain(b_.unwrap()).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let ctx = s.t.store.get_context(&SYS, &fired[0]).await.unwrap();
    assert_eq!((ctx.kind.as_str(), ctx.created_by.as_str()), ("maintenance", "system"));
    assert!(scheduler.tick(first).await.unwrap().is_empty(), "not twice");
    // Hours of downtime collapse into one firing, and the next is computed from now.
    let late = first + 3 * 3_600_000 + 30_000;
    assert_eq!(scheduler.tick(late).await.unwrap().len(), 1);
    assert!(scheduler.tick(late + 1_000).await.unwrap().is_empty());
    // The nightly clean-up was scheduled by prepare() and deletes what ended long ago.
    let due = s.t.store.due_schedules(start + 2 * 86_400_000).await.unwrap();
    assert!(due.iter().any(|d| d.name == "cleanup.contexts" && d.cron == "0 3 * * *"), "{due:?}");
    // Users do not see system contexts.
    let _root = user(&s, "root@example.com").await; // the first user is the instance admin
    let (_, user) = user(&s, "u@example.com").await;
    assert!(matches!(s.t.store.get_context(&user, &ctx.id).await, Err(Error::NotFound { .. })));
}

async fn retry_replays_from_the_failed_component_or_the_start(b: Backend) {
    let stamps = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut r = registry();
    r.register(Stamp(stamps.clone())).register(Flaky { runs: runs.clone(), fail_first: 2, permanent: true });
    let s = setup(b, r, None).await;
    let _w = s.worker().await;
    let ctx = s.submit(with("test", &["stamp", "flaky"], json!({"input": 1}))).await;
    let failed = s.until(&ctx.id, "failed", |c| c.status == ContextStatus::Failed).await;
    assert_eq!(failed.data["stamped"], 1);
    assert!(
        matches!(s.t.store.retry_context(&SYS, &ctx.id, false).await, Ok(c) if c.status == ContextStatus::Retrying)
    );
    let failed = s
        .until(&ctx.id, "failed again", |c| c.status == ContextStatus::Failed && runs.load(Ordering::SeqCst) == 2)
        .await;
    assert_eq!(stamps.load(Ordering::SeqCst), 1, "replaying from the failed component keeps earlier work");
    assert_eq!(failed.processing.unwrap().completed_components, ["stamp"]);
    s.t.store.retry_context(&SYS, &ctx.id, true).await.unwrap();
    let done = s.until(&ctx.id, "completed", |c| c.status == ContextStatus::Completed).await;
    assert_eq!(stamps.load(Ordering::SeqCst), 2, "from the start, every component runs again");
    assert_eq!(done.data["stamped"], 2);
    assert_eq!(done.data["input"], 1);
    assert_eq!(done.processing.unwrap().completed_components, ["stamp", "flaky"]);
    let c = s.t.store.get_context(&SYS, &ctx.id).await.unwrap();
    assert!(matches!(s.t.store.retry_context(&SYS, &c.id, false).await, Err(Error::Conflict(_))), "completed stays");
}

async fn workers_register_and_show_what_they_run(b: Backend) {
    let s = setup(b, registry(), None).await;
    let w = s.worker().await;
    let ctx = s.submit(with("test", &["wait"], json!({"wait_ms": 600_000}))).await;
    // A component's start is written once it has run for a moment.
    s.until(&ctx.id, "in wait", |c| c.processing.as_ref().and_then(|p| p.current_component.as_deref()) == Some("wait"))
        .await;
    let workers = s.t.store.list_workers(&SYS, quire_core::now_ms(), 30_000).await.unwrap();
    let me = workers.iter().find(|x| x.id == w.id).unwrap();
    assert!(me.alive && me.stopped_at.is_none());
    assert_eq!(me.current.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [ctx.id.as_str()]);
    assert_eq!(me.current[0].component.as_deref(), Some("wait"));
    let _root = user(&s, "root@example.com").await;
    let (_, user) = user(&s, "u@example.com").await;
    assert!(matches!(s.t.store.list_workers(&user, 0, 30_000).await, Err(Error::Forbidden(_))));
    // Stopping hands the context back (its attempt uncounted) and marks the worker stopped.
    s.stop.send_replace(true);
    let id = w.id.clone();
    tokio::time::timeout(Duration::from_secs(20), w.join()).await.unwrap();
    let back = s.t.store.get_context(&SYS, &ctx.id).await.unwrap();
    assert_eq!((back.status, back.attempts), (ContextStatus::Pending, 0));
    let me =
        s.t.store
            .list_workers(&SYS, quire_core::now_ms(), 30_000)
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.id == id)
            .unwrap();
    assert!(!me.alive && me.stopped_at.is_some() && me.current.is_empty());
}

async fn user(s: &Setup, email: &str) -> (quire_core::User, Principal) {
    let new = NewUser { email: email.into(), name: "U".into(), password_hash: None, admin: false };
    let (u, _) = s.t.store.create_user(new).await.unwrap();
    let p = Principal::User { id: u.id.clone(), admin: u.admin, session: None };
    (u, p)
}

async fn contexts_are_scoped_to_their_workspace(b: Backend) {
    let s = setup(b, registry(), None).await;
    let (_, _root) = user(&s, "root@example.com").await; // the first user is the instance admin
    let (_, owner) = user(&s, "owner@example.com").await;
    let (bob_u, bob) = user(&s, "bob@example.com").await;
    let store = &s.t.store;
    let ws = store.create_workspace(&owner, NewWorkspace { name: "Team".into(), ..Default::default() }).await.unwrap();
    let mine = s.engine.submit(&owner, &ws.id, vec![with("test", &["noop"], json!({}))]).await.unwrap().remove(0).0;
    assert_eq!(mine.created_by, owner.actor());
    assert!(matches!(store.get_context(&bob, &mine.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.cancel_context(&bob, &mine.id).await, Err(Error::NotFound { .. })));
    let all = |who: Principal| {
        let store = store.clone();
        async move {
            let q = ContextQuery {
                document: None,
                workspace: None,
                status: None,
                kind: None,
                page: PageRequest::parse(None, "-created_at", "type", None, None, &Default::default()).unwrap(),
            };
            store.list_contexts(&who, &q).await.unwrap().items.len()
        }
    };
    assert_eq!(all(bob.clone()).await, 0);
    assert_eq!(all(owner.clone()).await, 1);
    store.set_member(&owner, &ws.id, &bob_u.id, Role::Viewer).await.unwrap();
    assert_eq!(store.get_context(&bob, &mine.id).await.unwrap().id, mine.id);
    assert_eq!(all(bob.clone()).await, 1);
    let err = s.engine.submit(&bob, &ws.id, vec![with("test", &["noop"], json!({}))]).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert!(matches!(store.cancel_context(&bob, &mine.id).await, Err(Error::Forbidden(_))));
    let key =
        Principal::ApiKey { id: "key_x".into(), workspace_id: s.ws.clone(), role: Role::Editor, created_by: None };
    assert!(matches!(store.get_context(&key, &mine.id).await, Err(Error::NotFound { .. })), "keys see their workspace");
}

async fn templates_are_versioned_and_found_by_type_and_tone(b: Backend) {
    let s = setup(b, registry(), None).await;
    let store = &s.t.store;
    let new = |id: Option<String>, tone: Option<&str>, first: &str| NewTemplate {
        id,
        name: "Release notes".into(),
        kind: "article".into(),
        tone: tone.map(String::from),
        description: String::new(),
        sections: vec![json!({"type": first})],
    };
    let v1 = store.create_template(&SYS, &s.ws, new(None, Some("casual"), "summary")).await.unwrap();
    let v2 = store.create_template(&SYS, &s.ws, new(Some(v1.id.clone()), Some("casual"), "highlights")).await.unwrap();
    assert_eq!((v1.version, v2.version, v2.id.as_str()), (1, 2, v1.id.as_str()));
    assert_eq!(store.get_template(&SYS, &v1.id, None).await.unwrap().version, 2);
    assert_eq!(store.get_template(&SYS, &v1.id, Some(1)).await.unwrap().sections[0]["type"], "summary");
    let listed = store.list_templates(&SYS, &s.ws).await.unwrap();
    let ids: Vec<(&str, i32)> = listed.iter().map(|t| (t.id.as_str(), t.version)).collect();
    assert!(ids.contains(&(v1.id.as_str(), 2)) && !ids.contains(&(v1.id.as_str(), 1)), "latest versions: {ids:?}");
    assert!(ids.contains(&("tmpl_article_technical", 1)) && ids.contains(&("tmpl_prd_standard", 1)));
    let find = |tone: Option<&'static str>| {
        let (store, ws) = (store.clone(), s.ws.clone());
        async move { store.find_template(&ws, None, None, "article", tone).await.unwrap().map(|t| (t.id, t.version)) }
    };
    assert_eq!(find(Some("casual")).await, Some((v1.id.clone(), 2)));
    assert_eq!(find(Some("technical")).await, Some(("tmpl_article_technical".into(), 1)));
    assert!(find(Some("formal")).await.is_none(), "no template of that tone and none without a tone");
    let by_id = store.find_template(&s.ws, Some(&v1.id), Some(1), "x", None).await.unwrap().unwrap();
    assert_eq!(by_id.version, 1);
    // Built-in templates are read-only; bad templates are refused.
    let err = store.create_template(&SYS, &s.ws, new(Some("tmpl_prd_standard".into()), None, "x")).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let mut bad = new(None, None, "x");
    bad.sections = vec![json!("not an object")];
    assert!(matches!(store.create_template(&SYS, &s.ws, bad).await, Err(Error::Invalid { .. })));
    // The template component resolves by id and version too.
    let _w = s.worker().await;
    let ctx = s.submit(with("article", &["template"], json!({"template_id": v1.id, "template_version": 1}))).await;
    let done = s.until(&ctx.id, "completed", |c| c.status == ContextStatus::Completed).await;
    assert_eq!(
        (done.data["template"]["version"].as_i64(), done.data["template"]["sections"][0]["type"].as_str()),
        (Some(1), Some("summary"))
    );
    let none = s.submit(with("poem", &["template"], json!({}))).await;
    let failed = s.until(&none.id, "failed", |c| c.status == ContextStatus::Failed).await;
    let e = failed.error.unwrap();
    assert_eq!((e.code.as_str(), e.permanent), ("template_not_found", true));
}

async fn events_resume_after_a_sequence_number(b: Backend) {
    let s = setup(b, registry(), None).await;
    let ctx = s.submit(with("test", &["wait"], json!({"wait_ms": 100}))).await;
    let _w = s.worker().await;
    s.until(&ctx.id, "completed", |c| c.status == ContextStatus::Completed).await;
    let (_, all) = s.t.store.context_events(&SYS, &ctx.id, 0, 1000).await.unwrap();
    assert!(all.iter().filter(|e| e.kind == "progress").count() == 10, "wait reports ten steps");
    let (_, rest) = s.t.store.context_events(&SYS, &ctx.id, 5, 3).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7, 8]);
}

async fn finishing_claims_the_next_context_at_once(b: Backend) {
    let s = setup(b, registry(), None).await;
    let store = &s.t.store;
    let mut ids = Vec::new();
    for p in [3, 2, 1] {
        let mut n = with("test", &["noop"], json!({}));
        n.priority = p;
        ids.push(s.submit(n).await.id);
    }
    let q = vec!["default".to_string()];
    let now = quire_core::now_ms();
    let first = store.claim_contexts("wrk_a", &q, 1, 30_000, now).await.unwrap().remove(0);
    assert_eq!(first.id, ids[0]);
    let next = NextClaim { queues: q.clone(), max: 1, lease_ms: 30_000 };
    let lease = Lease { context_id: first.id.clone(), worker_id: "wrk_a".into(), attempt: 1, claim: 1 };
    let last = RunningUpdate {
        data: Some(obj(json!({"result": 42}))),
        events: vec![("log".into(), json!({"message": "done"}))],
        ..Default::default()
    };
    // A stale lease finishes nothing and claims nothing.
    let stale = Lease { attempt: 7, claim: 7, ..lease.clone() };
    let r = store
        .finish_context(&stale, Outcome::Completed, Processing::default(), Default::default(), Some(&next), now)
        .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    let then =
        store.finish_context(&lease, Outcome::Completed, Processing::default(), last, Some(&next), now).await.unwrap();
    let done = store.get_context(&SYS, &first.id).await.unwrap();
    assert_eq!((done.status, done.data["result"].as_i64()), (ContextStatus::Completed, Some(42)));
    assert_eq!(then.iter().map(|c| (c.id.as_str(), c.attempts)).collect::<Vec<_>>(), [(ids[1].as_str(), 1)]);
    let (_, events) = store.context_events(&SYS, &first.id, 0, 100).await.unwrap();
    let kinds: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(kinds, [(1, "status"), (2, "status"), (3, "log"), (4, "status")]);
    assert_eq!(events[3].data["status"], "completed");
    let (_, events) = store.context_events(&SYS, &ids[1], 0, 100).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[1].seq, events[1].data["status"].as_str()), (2, Some("processing")));
    assert_eq!((events[1].data["worker"].as_str(), events[1].data["attempt"].as_i64()), (Some("wrk_a"), Some(1)));
    // The third is still there for the next claim; nothing else was taken.
    let rest = store.claim_contexts("wrk_b", &q, 5, 30_000, now).await.unwrap();
    assert_eq!(rest.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [ids[2].as_str()]);
}

async fn ends_finished_together_commit_once_and_claim_one_each(b: Backend) {
    let s = setup(b, registry(), None).await;
    let store = &s.t.store;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(s.submit(with("test", &["noop"], json!({ "i": i }))).await.id);
    }
    let q = vec!["default".to_string()];
    let now = quire_core::now_ms();
    let held = store.claim_contexts("wrk_a", &q, 4, 30_000, now).await.unwrap();
    assert_eq!(held.len(), 4);
    let end = |ctx: &Context, attempt: i32, outcome: Outcome, n: i64| Finishing {
        lease: Lease { context_id: ctx.id.clone(), worker_id: "wrk_a".into(), attempt, claim: attempt.into() },
        outcome,
        processing: Processing::default(),
        last: RunningUpdate {
            data: Some(obj(json!({ "n": n }))),
            events: vec![("log".into(), json!({ "message": format!("end {n}") }))],
            ..Default::default()
        },
    };
    let failed = quire_core::ContextError {
        code: "bad".into(),
        message: "no".into(),
        component: Some("noop".into()),
        permanent: true,
        attempt: 1,
    };
    // Given out of id order; the third's lease is stale and records nothing.
    let ends = vec![
        end(&held[3], 1, Outcome::Completed, 3),
        end(&held[0], 1, Outcome::Failed { error: failed }, 0),
        end(&held[2], 9, Outcome::Completed, 2),
        end(&held[1], 1, Outcome::Completed, 1),
    ];
    let next = NextClaim { queues: q.clone(), max: 4, lease_ms: 30_000 };
    let (recorded, claimed) = store.finish_contexts(&ends, Some(&next), now).await.unwrap();
    assert_eq!(recorded, [true, true, false, true]);
    assert_eq!(claimed.len(), 3, "one next context per end recorded, not per end given");
    assert!(claimed.iter().all(|c| c.status == ContextStatus::Processing && !held.iter().any(|h| h.id == c.id)));
    for (ctx, status, n) in [
        (&held[3], ContextStatus::Completed, Some(3)),
        (&held[0], ContextStatus::Failed, Some(0)),
        (&held[1], ContextStatus::Completed, Some(1)),
        (&held[2], ContextStatus::Processing, None),
    ] {
        let got = store.get_context(&SYS, &ctx.id).await.unwrap();
        assert_eq!((got.status, got.data.get("n").and_then(Value::as_i64)), (status, n), "{}", ctx.id);
        let (_, events) = store.context_events(&SYS, &ctx.id, 0, 100).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>(), "{}: numbered without gaps", ctx.id);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        if let Some(n) = n {
            assert_eq!(kinds, ["status", "status", "log", "status"], "{}", ctx.id);
            assert_eq!(events[2].data["message"], format!("end {n}"));
        } else {
            assert_eq!(kinds, ["status", "status"], "{}: the stale end wrote nothing", ctx.id);
        }
    }
    for c in &claimed {
        let (_, events) = store.context_events(&SYS, &c.id, 0, 100).await.unwrap();
        assert_eq!(events.last().map(|e| e.data["worker"].clone()), Some(json!("wrk_a")));
    }
    // Without `next` nothing is claimed; an empty batch is a no-op.
    let ends = vec![end(&held[2], 1, Outcome::Completed, 2)];
    assert_eq!(store.finish_contexts(&ends, None, now).await.unwrap(), (vec![true], vec![]));
    assert_eq!(store.finish_contexts(&[], Some(&next), now).await.unwrap(), (vec![], vec![]));
    let left = store.claim_contexts("wrk_b", &q, 10, 30_000, now).await.unwrap();
    assert_eq!(left.len(), 2, "nine submitted: four claimed, then three more");
}

/// A worker running several contexts at once records their ends together (a group commit)
/// and every context completes once, with its events in order.
async fn a_busy_worker_finishes_contexts_together(b: Backend) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut r = registry();
    // Eight at a time end together: each waits for the other seven.
    r.register(Stamp(runs.clone())).register(Together(Arc::new(tokio::sync::Barrier::new(8))));
    let s = setup(b, r, None).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(s.submit(with("test", &["stamp", "together"], json!({ "i": i }))).await.id);
    }
    let w = s.worker_with(WorkerConfig { concurrency: 8, ..Default::default() }).await;
    for id in &ids {
        s.until(id, "completed", |c| c.status == ContextStatus::Completed).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 40, "each ran once");
    // Ends that arrive while a commit is in flight share the next one.
    assert_eq!(w.stats().ends(), 40);
    assert!(w.stats().commits() <= 20, "{} commits for 40 ends arriving eight at a time", w.stats().commits());
    for id in &ids {
        let (_, events) = s.t.store.context_events(&SYS, id, 0, 100).await.unwrap();
        let kinds: Vec<String> = events
            .iter()
            .map(|e| format!("{}:{}", e.kind, e.data["status"].as_str().or(e.data["state"].as_str()).unwrap_or("")))
            .collect();
        assert_eq!(
            kinds,
            [
                "status:pending",
                "status:processing",
                "component:started",
                "component:completed",
                "component:started",
                "component:completed",
                "status:completed"
            ],
            "{id}"
        );
    }
}

/// On PostgreSQL, a context submitted through one process wakes the workers and streams of
/// another (a coalesced `NOTIFY`), without waiting for their poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_postgres_processes_hear_of_new_contexts() {
    let s = setup(Backend::Postgres, registry(), None).await;
    let other = quire_store::connect(&s.t.url, StoreOptions::default()).await.unwrap();
    let mut heard = other.job_signal();
    heard.borrow_and_update();
    // The other process LISTENs from a connection of its own, which may not be up yet: the
    // first round submits until it is heard; from then on every submission must be.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        s.submit(with("test", &["noop"], json!({ "round": "first" }))).await;
        if tokio::time::timeout(Duration::from_millis(500), heard.changed()).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the other process never started listening");
    }
    heard.borrow_and_update();
    for round in 0..3 {
        s.submit(with("test", &["noop"], json!({ "round": round }))).await;
        tokio::time::timeout(Duration::from_secs(5), heard.changed())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the other process was not told"))
            .unwrap();
        heard.borrow_and_update();
    }
}

/// An idle worker with the default settings looks for work once per poll interval: its own
/// empty claims do not wake it (they once did, thousands of times a second). It still hears
/// of a new context at once.
async fn an_idle_worker_claims_once_per_poll(b: Backend) {
    let s = setup(b, registry(), None).await;
    let engine = Engine::new(s.t.store.clone(), registry(), EngineConfig::default());
    let config = WorkerConfig { schedules: false, grace: Duration::from_millis(300), ..Default::default() };
    let w = engine.start_worker(config, s.stop.subscribe()).await.unwrap();
    // It is running: a context submitted now completes.
    let first = s.submit(with("test", &["noop"], json!({}))).await;
    s.until(&first.id, "completed", |c| c.status == ContextStatus::Completed).await;
    let (claims, wakeups) = (w.stats().claims(), w.stats().wakeups());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_claims = w.stats().claims() - claims;
    let idle_wakeups = w.stats().wakeups() - wakeups;
    assert!(idle_claims <= 5, "{idle_claims} claims in 3 idle seconds with a 1 s poll");
    assert!(idle_wakeups <= 8, "{idle_wakeups} wake-ups in 3 idle seconds");
    // And a context submitted while it idles is still taken.
    let second = s.submit(with("test", &["noop"], json!({}))).await;
    s.until(&second.id, "completed", |c| c.status == ContextStatus::Completed).await;
    assert!(w.stats().claims() > claims + idle_claims, "the new context was claimed");
}

/// `retention_days` is multiplied into milliseconds: a huge one once wrapped around and
/// purged every finished context. It is refused, and nothing is purged.
async fn cleanup_refuses_retentions_that_would_purge_everything(b: Backend) {
    let s = setup(b, registry(), None).await;
    let _w = s.worker().await;
    let done = s.submit(with("test", &["noop"], json!({}))).await;
    s.until(&done.id, "completed", |c| c.status == ContextStatus::Completed).await;
    let purge = s.submit(with("maintenance", &["cleanup"], json!({ "retention_days": 213503982334u64 }))).await;
    let failed = s.until(&purge.id, "failed", |c| c.status == ContextStatus::Failed).await;
    assert_eq!(failed.error.as_ref().map(|e| e.code.as_str()), Some("invalid_input"), "{failed:?}");
    assert_eq!(s.t.store.get_context(&SYS, &done.id).await.unwrap().status, ContextStatus::Completed, "still there");
}

/// Board builds are records (their log, their artifacts): the nightly clean-up leaves the
/// types it is told to keep, and deletes the rest that ended before the retention.
async fn cleanup_leaves_the_types_that_are_records_of_their_own(b: Backend) {
    let start = 1_795_000_000_000;
    let clock = ManualClock::new(start);
    let s = setup(b, registry(), Some(clock.clone())).await;
    let _w = s.worker().await;
    let passing = s.submit(with("test", &["noop"], json!({}))).await;
    let record = s.submit(with("record", &["noop"], json!({}))).await;
    for c in [&passing, &record] {
        s.until(&c.id, "completed", |c| c.status == ContextStatus::Completed).await;
    }
    clock.set(start + 31 * 86_400_000);
    let purge =
        s.submit(with("maintenance", &["cleanup"], json!({ "retention_days": 30, "keep_types": ["record"] }))).await;
    let done = s.until(&purge.id, "completed", |c| c.status == ContextStatus::Completed).await;
    assert_eq!(done.data["purged_contexts"], 1, "{done:?}");
    assert!(matches!(s.t.store.get_context(&SYS, &passing.id).await, Err(Error::NotFound { .. })));
    assert_eq!(s.t.store.get_context(&SYS, &record.id).await.unwrap().status, ContextStatus::Completed, "kept");
    // The nightly schedule carries the engine's kept types.
    let due = s.t.store.due_schedules(start + 40 * 86_400_000).await.unwrap();
    let nightly = due.iter().find(|d| d.name == "cleanup.contexts").unwrap();
    assert_eq!(nightly.data["keep_types"], json!(["record"]), "{nightly:?}");
}

/// The worker writes a quiet component's start after a moment. That write once ran in place
/// of the component, which was then not polled: a component holding the database (SQLite's
/// one writer) kept it until the write gave up, and every write of the instance waited 30 s.
async fn a_component_holding_the_database_is_not_starved_by_its_own_start(b: Backend) {
    let t = b.open(StoreOptions::default()).await;
    let mut r = registry();
    r.register(HoldsTheDatabase { url: t.url.clone(), hold: Duration::from_millis(800) });
    let ws = t.store.create_workspace(&SYS, NewWorkspace { name: "Jobs".into(), ..Default::default() }).await.unwrap();
    let engine = Engine::new(t.store.clone(), r, fast());
    engine.prepare().await.unwrap();
    let s = Setup { t, engine, ws: ws.id, stop: watch::channel(false).0 };
    let _w = s.worker().await;
    let ctx = s.submit(with("test", &["holds_the_database"], json!({}))).await;
    let done = s.until(&ctx.id, "completed", |c| c.status.is_terminal()).await;
    assert_eq!((done.status, done.attempts), (ContextStatus::Completed, 1), "{done:?}");
    assert_eq!(done.data["held"], true);
    // The start was written once, before the end.
    let (_, events) = s.t.store.context_events(&SYS, &ctx.id, 0, 100).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind.as_str(), e.data["state"].as_str().unwrap_or(""))).collect();
    let starts = kinds.iter().filter(|k| **k == ("component", "started")).count();
    assert_eq!(starts, 1, "{kinds:?}");
}
