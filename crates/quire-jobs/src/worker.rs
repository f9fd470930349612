//! A worker: claims contexts, runs their pipelines, keeps their leases, stops what is
//! cancelled, and fires cron schedules.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Fuse, FusedFuture};
use quire_core::{Context, ContextError, Outcome, Result, timestamp_from_ms};
use quire_store::{Finishing, Lease, NewWorker, NextClaim, RunningUpdate};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::{ComponentError, Engine, Run, Scheduler};

/// How long a component runs before its start is written (with `current_component`), so
/// that listings show where a slow context is; otherwise the start goes with the component's
/// first progress or log line, or with its end.
const SHOW_START_AFTER: Duration = Duration::from_millis(200);
/// How often a worker looks for due schedules: cron's resolution is a minute, so a firing is
/// at most this late, and an idle worker does not ask every second.
const SCHEDULE_EVERY: Duration = Duration::from_secs(15);

/// One worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues it takes contexts from, in order of preference.
    pub queues: Vec<String>,
    /// Contexts it runs at once.
    pub concurrency: usize,
    /// How long a stopping worker lets running contexts finish before handing them back.
    pub grace: Duration,
    /// Whether this worker also fires cron schedules (one per process is enough).
    pub schedules: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig { queues: vec!["default".into()], concurrency: 4, grace: Duration::from_secs(10), schedules: true }
    }
}

/// A started worker. It stops when the shutdown signal given to `start_worker` turns true;
/// [`WorkerHandle::join`] waits until it has.
pub struct WorkerHandle {
    pub id: String,
    stats: Arc<WorkerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub async fn join(self) {
        let _ = self.task.await;
    }

    /// What the worker's loop has done so far.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }
}

/// Counts of a worker's loop, also exported as the metrics `jobs_claims_total` (claims
/// asked of the store) and `jobs_worker_wakeups_total` (times the loop woke up). An idle
/// worker wakes once per poll interval and per heartbeat, and claims once per poll.
#[derive(Debug, Default)]
pub struct WorkerStats {
    claims: AtomicU64,
    wakeups: AtomicU64,
    commits: AtomicU64,
    ends: AtomicU64,
}

impl WorkerStats {
    /// Claims asked of the store (whether or not they found anything).
    pub fn claims(&self) -> u64 {
        self.claims.load(Ordering::Relaxed)
    }

    /// Times the loop woke up to look again.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Commits that recorded ends of attempts (a group commit records several).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Ends of attempts recorded.
    pub fn ends(&self) -> u64 {
        self.ends.load(Ordering::Relaxed)
    }

    fn committed(&self, ends: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.ends.fetch_add(ends as u64, Ordering::Relaxed);
    }

    fn claimed(&self) {
        self.claims.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("jobs_claims_total").increment(1);
    }

    fn woke(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("jobs_worker_wakeups_total").increment(1);
    }
}

pub(crate) async fn start(
    engine: Engine,
    config: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<WorkerHandle> {
    if config.concurrency == 0 || config.queues.is_empty() {
        return Err(quire_core::Error::invalid(
            "workers",
            "a worker needs at least one queue and a concurrency of 1 or more",
        ));
    }
    let id = quire_core::new_id("wrk");
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into());
    let worker = NewWorker {
        id: id.clone(),
        name: format!("{host}:{}", std::process::id()),
        queues: config.queues.clone(),
        concurrency: config.concurrency as i32,
    };
    engine.store().register_worker(&worker, engine.clock().now_ms()).await?;
    tracing::info!(worker = %id, queues = ?config.queues, concurrency = config.concurrency, "worker started");
    let stats = Arc::new(WorkerStats::default());
    let task = tokio::spawn(run(engine, id.clone(), config, shutdown, stats.clone()));
    Ok(WorkerHandle { id, stats, task })
}

/// The worker's loop: claim while there are free slots, then wait for a wake-up (a new
/// context, a finished one, a tick) and go round again.
async fn run(
    engine: Engine,
    id: String,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<WorkerStats>,
) {
    let store = engine.store().clone();
    let lease_ms = engine.config().lease.as_millis() as i64;
    let mut signal = store.job_signal();
    let scheduler = Scheduler::new(engine.clone());
    let mut running: HashMap<String, watch::Sender<bool>> = HashMap::new();
    let mut tasks: JoinSet<Finished> = JoinSet::new();
    let mut heartbeat = tokio::time::interval(engine.config().lease / 3);
    let mut cancel_check = tokio::time::interval(engine.config().cancel_check);
    let mut schedules = tokio::time::interval(SCHEDULE_EVERY);
    for t in [&mut heartbeat, &mut cancel_check, &mut schedules] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let next = NextClaim { queues: config.queues.clone(), max: 0, lease_ms };
    let (finish, finishing) = mpsc::unbounded_channel();
    let finisher = tokio::spawn(finisher(engine.clone(), finishing, next, shutdown.clone(), stats.clone()));
    let mut failures = 0u32;
    let idle = tokio::time::sleep(engine.config().poll_interval);
    tokio::pin!(idle);
    while !*shutdown.borrow() {
        while let Some(done) = tasks.try_join_next() {
            reap(done, &engine, &id, &finish, &mut running, &mut tasks);
        }
        let free = config.concurrency.saturating_sub(running.len());
        let mut full_batch = false;
        if free > 0 {
            stats.claimed();
            match store.claim_contexts(&id, &config.queues, free as u32, lease_ms, engine.clock().now_ms()).await {
                Ok(claimed) => {
                    failures = 0;
                    full_batch = claimed.len() == free;
                    for ctx in claimed {
                        spawn(&engine, &id, &finish, ctx, &mut running, &mut tasks);
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(worker = %id, error = %e, "claiming contexts failed");
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
        }
        // Finished while claiming: reap them and claim again for the slots they freed.
        let mut freed = false;
        while let Some(done) = tasks.try_join_next() {
            reap(done, &engine, &id, &finish, &mut running, &mut tasks);
            freed = true;
        }
        if (full_batch || freed) && running.len() < config.concurrency {
            continue;
        }
        idle.as_mut().reset(tokio::time::Instant::now() + engine.config().poll_interval);
        tokio::select! {
            // New contexts may be due. A full worker does not listen (its own commits would
            // wake it hundreds of times a second): finishing contexts claim the next ones,
            // and cancellations are checked on the interval below.
            _ = signal.changed(), if running.len() < config.concurrency => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                reap(done, &engine, &id, &finish, &mut running, &mut tasks);
            }
            _ = &mut idle => {}
            _ = heartbeat.tick() => {
                match store.heartbeat_worker(&id, lease_ms, engine.clock().now_ms()).await {
                    Ok(cancelled) => cancel(&running, &cancelled),
                    Err(e) => tracing::warn!(worker = %id, error = %e, "heartbeat failed"),
                }
                // Contexts whose worker died go back to the queue (any worker may sweep).
                match store.recover_lapsed(engine.clock().now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(worker = %id, recovered = n, "took back contexts whose worker stopped answering"),
                    Err(e) => tracing::warn!(worker = %id, error = %e, "recovering lapsed contexts failed"),
                }
            }
            _ = cancel_check.tick(), if !running.is_empty() => check_cancels(&engine, &id, &running).await,
            _ = schedules.tick(), if config.schedules => {
                if let Err(e) = scheduler.tick(engine.clock().now_ms()).await {
                    tracing::warn!(worker = %id, error = %e, "firing schedules failed");
                }
            }
            _ = shutdown.changed() => {}
        }
        stats.woke();
    }
    // Stopping: let running contexts finish for a while (heartbeating), then hand back the rest.
    let deadline = tokio::time::sleep(config.grace);
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            _ = heartbeat.tick() => {
                if let Err(e) = store.heartbeat_worker(&id, lease_ms, engine.clock().now_ms()).await {
                    tracing::warn!(worker = %id, error = %e, "a heartbeat while stopping failed; leases may lapse");
                }
            }
            _ = &mut deadline => break,
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Ends already handed to the finisher are recorded before the worker stops.
    drop(finish);
    let _ = finisher.await;
    if let Err(e) = store.stop_worker(&id, engine.clock().now_ms()).await {
        tracing::warn!(worker = %id, error = %e, "recording the worker's stop failed; its leases will lapse");
    }
    tracing::info!(worker = %id, "worker stopped");
}

/// A finished attempt: its context, and the contexts claimed in the same transaction.
type Finished = (String, Vec<Context>);

/// An attempt's end on its way to the finisher, and where the contexts claimed for its slot go.
type Ending = (Finishing, oneshot::Sender<Vec<Context>>);

/// Starts running a claimed context.
fn spawn(
    engine: &Engine,
    worker: &str,
    finish: &mpsc::UnboundedSender<Ending>,
    ctx: Context,
    running: &mut HashMap<String, watch::Sender<bool>>,
    tasks: &mut JoinSet<Finished>,
) {
    let (cancel, cancelled) = watch::channel(ctx.cancel_requested);
    running.insert(ctx.id.clone(), cancel);
    let (engine, worker, finish) = (engine.clone(), worker.to_string(), finish.clone());
    tasks.spawn(async move {
        let ctx_id = ctx.id.clone();
        let next = run_context(engine, worker, ctx, cancelled, finish).await;
        (ctx_id, next)
    });
}

/// Records the worker's ends. While one commit is in flight the ends that follow queue up,
/// and the next commit takes them all, with a next context claimed for each freed slot
/// unless the worker is stopping (a group commit): a worker running many contexts at once
/// commits far less than once per context, and one running them one at a time commits as
/// often as before, since nothing waits for a batch to fill.
async fn finisher(
    engine: Engine,
    mut ends: mpsc::UnboundedReceiver<Ending>,
    mut next: NextClaim,
    shutdown: watch::Receiver<bool>,
    stats: Arc<WorkerStats>,
) {
    // One commit at a time: measured, two in flight made smaller batches and a lower rate.
    while let Some(first) = ends.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = ends.try_recv() {
            batch.push(more);
        }
        stats.committed(batch.len());
        next.max = if *shutdown.borrow() { 0 } else { batch.len() as u32 };
        finish_batch(&engine, batch, &next).await;
    }
}

/// Commits one batch of ends and hands each slot what was claimed for it (the store claims
/// at most one per end it recorded).
async fn finish_batch(engine: &Engine, batch: Vec<Ending>, next: &NextClaim) {
    let (finishes, replies): (Vec<Finishing>, Vec<_>) = batch.into_iter().unzip();
    let claim = (next.max > 0).then_some(next);
    match engine.store().finish_contexts(&finishes, claim, engine.clock().now_ms()).await {
        Ok((held, claimed)) => {
            let mut claimed = claimed.into_iter();
            for ((f, reply), held) in finishes.iter().zip(replies).zip(held) {
                if held {
                    let _ = reply.send(claimed.next().into_iter().collect());
                } else {
                    note_lost(&f.lease, &quire_store::lease_lost(&f.lease));
                }
            }
        }
        Err(e) => {
            for f in &finishes {
                note_lost(&f.lease, &e);
            }
        }
    }
}

/// Frees a finished context's slot and starts what its finish claimed.
fn reap(
    done: Result<Finished, tokio::task::JoinError>,
    engine: &Engine,
    worker: &str,
    finish: &mpsc::UnboundedSender<Ending>,
    running: &mut HashMap<String, watch::Sender<bool>>,
    tasks: &mut JoinSet<Finished>,
) {
    let Ok((ctx_id, next)) = done else { return };
    running.remove(&ctx_id);
    for ctx in next {
        spawn(engine, worker, finish, ctx, running, tasks);
    }
}

async fn check_cancels(engine: &Engine, id: &str, running: &HashMap<String, watch::Sender<bool>>) {
    match engine.store().cancel_requests(id).await {
        Ok(ids) => cancel(running, &ids),
        Err(e) => tracing::warn!(worker = %id, error = %e, "checking for cancellations failed"),
    }
}

fn cancel(running: &HashMap<String, watch::Sender<bool>>, ids: &[String]) {
    for ctx in ids {
        if let Some(tx) = running.get(ctx) {
            tx.send_replace(true);
        }
    }
}

/// How far a pipeline got: the number of leading components already recorded as done.
fn resume_index(ctx: &Context) -> usize {
    let done = ctx.processing.as_ref().map(|p| p.completed_components.as_slice()).unwrap_or_default();
    ctx.pipeline.iter().zip(done).take_while(|(a, b)| a == b).count()
}

/// Runs one attempt of a context's pipeline and records how it ended. An attempt whose
/// lease was lost records nothing more: another worker owns the context now.
async fn run_context(
    engine: Engine,
    worker: String,
    mut ctx: Context,
    cancelled: watch::Receiver<bool>,
    finish: mpsc::UnboundedSender<Ending>,
) -> Vec<Context> {
    let store = engine.store().clone();
    let clock = engine.clock().clone();
    let lease = Lease { context_id: ctx.id.clone(), worker_id: worker, attempt: ctx.attempts, claim: ctx.claims };
    let lost = Arc::new(AtomicBool::new(false));
    let mut processing = ctx.processing.clone().unwrap_or_default();
    let start = processing.start_time.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64).unwrap_or(clock.now_ms());
    processing.start_time = Some(timestamp_from_ms(start));
    processing.end_time = None;
    processing.duration_ms = None;
    // The data lives here from now on; `ctx` keeps the rest (each component's snapshot
    // clones it without the data, then takes a copy of the data so far).
    let mut data = std::mem::take(&mut ctx.data);
    let first = resume_index(&ctx);
    processing.completed_components.truncate(first);
    let fail = |code: &str, message: String, component: Option<&str>, permanent: bool| {
        let error = ContextError {
            code: code.into(),
            message,
            component: component.map(String::from),
            permanent,
            attempt: ctx.attempts,
        };
        if permanent || ctx.attempts >= ctx.max_attempts {
            Outcome::Failed { error }
        } else {
            let run_at = clock.now_ms() + engine.config().retry.delay(&ctx.id, ctx.attempts).as_millis() as i64;
            Outcome::Retry { error, run_at }
        }
    };
    let mut outcome = Outcome::Completed;
    // Steps not yet written. A component's start is written with the first thing that is:
    // its own first progress or log line, the show-start timer (so a slow one shows where it
    // is), or its end (so a quick pipeline costs its claim and its finish). A finished
    // component is written at once, except the last, which is written with the context's end.
    let mut pending = RunningUpdate::default();
    let last = ctx.pipeline.len().saturating_sub(1);
    for (index, name) in ctx.pipeline.iter().enumerate().skip(first) {
        if *cancelled.borrow() {
            outcome = Outcome::Cancelled;
            break;
        }
        let Some(component) = engine.registry().get(name).cloned() else {
            outcome = fail("unknown_component", format!("no component '{name}' on this worker"), Some(name), true);
            break;
        };
        processing.current_component = Some(name.clone());
        let started = clock.now_ms();
        // The start is written by whichever comes first: the component's own first progress
        // or log line (so the stream keeps its order), the show-start timer, or its end.
        let start_event =
            ("component".into(), json!({ "component": name, "state": "started", "attempt": ctx.attempts }));
        let unwritten_start = Arc::new(tokio::sync::Mutex::new(Some(RunningUpdate {
            processing: Some(processing.clone()),
            events: vec![start_event],
            ..Default::default()
        })));
        let snapshot = Context { data: data.clone(), processing: Some(processing.clone()), ..ctx.clone() };
        let run = Run {
            context: Arc::new(snapshot),
            component: name.clone(),
            store: store.clone(),
            lease: lease.clone(),
            limits: engine.config().limits.clone(),
            clock: clock.clone(),
            cancel: cancelled.clone(),
            lost: lost.clone(),
            unwritten_start: unwritten_start.clone(),
        };
        // Run in this task; a panic becomes the component's failure, and leaving the loop
        // below (cancelled, timed out, lease lost) drops the component's future.
        let work = std::panic::AssertUnwindSafe(async move { component.run(run).await }).catch_unwind();
        tokio::pin!(work);
        let show_start = tokio::time::sleep(SHOW_START_AFTER);
        tokio::pin!(show_start);
        let timeout = tokio::time::sleep(engine.config().component_timeout);
        tokio::pin!(timeout);
        let cancel = until_cancelled(cancelled.clone());
        tokio::pin!(cancel);
        // The start's write, when the timer asks for it. It is polled beside the component,
        // never instead of it: the component may hold the store's connection (SQLite has one
        // writer) while this write waits for it, and a component left unpolled would hold it
        // until the write gave up (30 s, every other write of the instance waiting too).
        let mut start_write: Fuse<BoxFuture<'static, bool>> = Fuse::terminated();
        let mut shown = false;
        let result = loop {
            tokio::select! {
                joined = &mut work => break match joined {
                    Ok(r) => Some(r),
                    Err(_) => Some(Err(ComponentError::retryable("component_panicked", format!("component '{name}' panicked")))),
                },
                _ = &mut cancel => break None,
                _ = &mut timeout => {
                    break Some(Err(ComponentError::retryable("timeout", format!(
                        "component '{name}' ran longer than {} s", engine.config().component_timeout.as_secs()
                    ))));
                }
                _ = &mut show_start, if !shown => {
                    shown = true;
                    let (engine, lease, unwritten) = (engine.clone(), lease.clone(), unwritten_start.clone());
                    start_write = async move {
                        let mut unwritten = unwritten.lock().await;
                        match unwritten.take() {
                            Some(start) => record(&engine, &lease, start).await,
                            None => true,
                        }
                    }
                    .boxed()
                    .fuse();
                }
                written = &mut start_write => if !written {
                    return Vec::new();
                },
            }
        };
        // A start write still on its way ends first (the component no longer holds anything).
        if !start_write.is_terminated() && !start_write.await {
            return Vec::new();
        }
        if lost.load(Ordering::Relaxed) {
            return Vec::new();
        }
        // A start nothing wrote yet goes with what comes next.
        if let Some(start) = unwritten_start.lock().await.take() {
            pending.processing = start.processing;
            pending.events.extend(start.events);
        }
        match result {
            None => {
                outcome = Outcome::Cancelled;
                break;
            }
            Some(Ok(additions)) => {
                // A component that added nothing leaves the stored data as it is.
                if !additions.is_empty() {
                    data.extend(additions);
                    pending.data = Some(data.clone());
                }
                processing.completed_components.push(name.clone());
                let took = clock.now_ms() - started;
                pending.processing = Some(processing.clone());
                pending.events.push((
                    "component".into(),
                    json!({ "component": name, "state": "completed", "duration_ms": took, "attempt": ctx.attempts }),
                ));
                if index == last {
                    let size = match &pending.data {
                        Some(d) => serde_json::to_string(d).map_or(usize::MAX, |d| d.len()),
                        None => 0,
                    };
                    if size > engine.config().limits.max_data_bytes {
                        processing.completed_components.pop();
                        pending = RunningUpdate::default();
                        let message = format!(
                            "component '{name}': data grew to {size} bytes of JSON; at most {} bytes",
                            engine.config().limits.max_data_bytes
                        );
                        outcome = fail("data_too_large", message, Some(name), true);
                    }
                    break;
                }
                match store
                    .update_running(&lease, std::mem::take(&mut pending), &engine.config().limits, clock.now_ms())
                    .await
                {
                    Ok(()) => {}
                    Err(quire_core::Error::Invalid { message, .. }) => {
                        processing.completed_components.pop();
                        outcome =
                            fail("data_too_large", format!("component '{name}': data {message}"), Some(name), true);
                        break;
                    }
                    Err(e) => {
                        note_lost(&lease, &e);
                        return Vec::new();
                    }
                }
            }
            Some(Err(e)) => {
                outcome = fail(&e.code, e.message, Some(name), e.permanent);
                break;
            }
        }
    }
    let now = clock.now_ms();
    if !matches!(outcome, Outcome::Retry { .. }) {
        processing.end_time = Some(timestamp_from_ms(now));
        processing.duration_ms = Some(now - start);
    }
    if matches!(outcome, Outcome::Completed) {
        processing.current_component = None;
    }
    // A worker that is not stopping claims its next context as it finishes this one.
    let (reply, claimed) = oneshot::channel();
    let end = Finishing { lease, outcome, processing, last: pending };
    if finish.send((end, reply)).is_err() {
        return Vec::new();
    }
    claimed.await.unwrap_or_default()
}

/// Resolves when cancellation is asked for (never, if the worker dropped the sender).
async fn until_cancelled(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Records a running update; `false` when the lease is gone (or the store failed), after
/// which the attempt stops.
async fn record(engine: &Engine, lease: &Lease, update: RunningUpdate) -> bool {
    match engine.store().update_running(lease, update, &engine.config().limits, engine.clock().now_ms()).await {
        Ok(()) => true,
        Err(e) => {
            note_lost(lease, &e);
            false
        }
    }
}

fn note_lost(lease: &Lease, e: &quire_core::Error) {
    match e {
        quire_core::Error::Conflict(m) => {
            tracing::warn!(context = %lease.context_id, "{m}; leaving it to its new worker")
        }
        e => {
            tracing::warn!(context = %lease.context_id, error = %e, "recording the context failed; its lease will lapse and another attempt run")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_core::Processing;

    #[test]
    fn pipelines_resume_after_recorded_components() {
        let mut ctx: Context = serde_json::from_value(json!({
            "id": "ctx_1", "workspace_id": "ws", "type": "article", "status": "processing",
            "pipeline": ["template", "wait", "transformer"], "data": {}, "priority": 0, "queue": "default",
            "attempts": 2, "max_attempts": 5, "run_at": "2026-01-01T00:00:00Z", "cancel_requested": false,
            "created_by": "system", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(resume_index(&ctx), 0);
        ctx.processing = Some(Processing { completed_components: vec!["template".into()], ..Default::default() });
        assert_eq!(resume_index(&ctx), 1);
        ctx.processing = Some(Processing { completed_components: vec!["other".into()], ..Default::default() });
        assert_eq!(resume_index(&ctx), 0, "a record that does not match the pipeline restarts it");
    }
}
