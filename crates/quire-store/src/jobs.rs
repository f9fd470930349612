//! Durable state of the pipeline engine: contexts (jobs) and their event streams, workers,
//! per-queue limits, cron schedules and templates.
//!
//! A worker *claims* contexts: it sets itself as `lease_owner` until `lease_until`, a time it
//! pushes forward by heartbeat. Every later write about a running context names its
//! [`Lease`] — the context, the worker and the attempt number — and matches only while that
//! lease still holds (the fencing token), so a worker that lost its lease (it stalled and
//! another worker took over) can record nothing. A context whose lease lapsed is claimed
//! again by the next worker that asks; on PostgreSQL claims skip rows other claimers hold
//! (`FOR UPDATE SKIP LOCKED`), on SQLite the single writer makes claims atomic.
//!
//! Each context's events are numbered 1, 2, … by `event_seq` on the context's row, which
//! every write that adds events increments in the same `UPDATE`: the row lock orders them,
//! so a reader resuming after seq N misses nothing.

use async_trait::async_trait;
use quire_core::{
    Context, ContextEvent, ContextQuery, JobLimits, NewContext, NewTemplate, Outcome, Page, Principal, Processing,
    Progress, Result, Schedule, Template, WorkerInfo,
};
use serde_json::{Map, Value};
use tokio::sync::watch;

/// A worker's hold on one attempt of a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub context_id: String,
    pub worker_id: String,
    /// The attempt's number, for events and logs.
    pub attempt: i32,
    /// The context's claim count when this worker claimed it: the fence. It only ever grows
    /// (a retry resets `attempts`, a stopping worker gives one back), so an old holder of
    /// the same context never matches a later claim.
    pub claim: i64,
}

/// What a running pipeline records between components. Fields left `None` are unchanged.
#[derive(Debug, Clone, Default)]
pub struct RunningUpdate {
    /// The whole new `data` (the engine merges additions in memory).
    pub data: Option<Map<String, Value>>,
    pub processing: Option<Processing>,
    pub progress: Option<Progress>,
    /// Events to append: `(kind, data)`.
    pub events: Vec<(String, Value)>,
}

/// What a finishing worker claims next: up to `max` contexts of `queues`.
#[derive(Debug, Clone)]
pub struct NextClaim {
    pub queues: Vec<String>,
    pub max: u32,
    pub lease_ms: i64,
}

/// The end of one attempt, as its worker records it.
#[derive(Debug, Clone)]
pub struct Finishing {
    pub lease: Lease,
    pub outcome: Outcome,
    pub processing: Processing,
    /// The final step's data and events, recorded with the end.
    pub last: RunningUpdate,
}

/// A worker process, as it registers.
#[derive(Debug, Clone)]
pub struct NewWorker {
    pub id: String,
    pub name: String,
    pub queues: Vec<String>,
    pub concurrency: i32,
}

/// A submitted context and whether this submission created it (`false`: an earlier one
/// with the same idempotency key did).
pub type Submitted = (Context, bool);

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Submits contexts to the workspace (id or slug) at time `now` (ms), all or none. Needs
    /// the editor role.
    async fn submit_contexts(
        &self,
        who: &Principal,
        workspace: &str,
        new: Vec<NewContext>,
        limits: &JobLimits,
        now: i64,
    ) -> Result<Vec<Submitted>>;
    async fn get_context(&self, who: &Principal, id: &str) -> Result<Context>;
    async fn list_contexts(&self, who: &Principal, query: &ContextQuery) -> Result<Page<Context>>;
    /// A pending or retrying context is cancelled at once; a processing one is flagged and
    /// its worker stops it. `Conflict` when it has already ended.
    async fn cancel_context(&self, who: &Principal, id: &str) -> Result<Context>;
    /// Replays a failed or cancelled context: from the component that failed (keeping what
    /// earlier components added), or with `from_start` from its submitted data.
    async fn retry_context(&self, who: &Principal, id: &str, from_start: bool) -> Result<Context>;
    /// Records that `who` approved the completed context's result into `document_id`, with
    /// the event `event` (`prd.approved`) carrying `data`, in one transaction. The caller
    /// has checked the document and the role. Returns the context and the event's id.
    async fn approve_context(
        &self,
        who: &Principal,
        id: &str,
        document_id: &str,
        event: &str,
        data: serde_json::Value,
    ) -> Result<(Context, i64)>;
    /// The context and up to `limit` of its events after `after`.
    async fn context_events(
        &self,
        who: &Principal,
        id: &str,
        after: i64,
        limit: u32,
    ) -> Result<(Context, Vec<ContextEvent>)>;

    /// Stores a template in the workspace, or a new version of one (`new.id`). Editor role.
    async fn create_template(&self, who: &Principal, workspace: &str, new: NewTemplate) -> Result<Template>;
    /// The latest version of every template the workspace sees (built-in ones included).
    async fn list_templates(&self, who: &Principal, workspace: &str) -> Result<Vec<Template>>;
    /// One version (the latest when `None`) of a template.
    async fn get_template(&self, who: &Principal, id: &str, version: Option<i32>) -> Result<Template>;
    /// For the engine: by id (any version of it, latest by default), else the newest template
    /// of `kind` with `tone` (then with no tone), the workspace's before the built-in ones.
    async fn find_template(
        &self,
        workspace_id: &str,
        id: Option<&str>,
        version: Option<i32>,
        kind: &str,
        tone: Option<&str>,
    ) -> Result<Option<Template>>;
    /// Stores a built-in template version if it is not stored yet.
    async fn ensure_template(&self, template: &Template) -> Result<()>;

    /// Workers with their current contexts; instance administrators only. A worker is shown
    /// alive when it heartbeat within `stale_after_ms` of `now` (a lease's length).
    async fn list_workers(&self, who: &Principal, now: i64, stale_after_ms: i64) -> Result<Vec<WorkerInfo>>;
    async fn register_worker(&self, worker: &NewWorker, now: i64) -> Result<()>;
    /// Records the heartbeat, extends the leases the worker holds, and returns the ids of
    /// those whose cancellation was asked for.
    async fn heartbeat_worker(&self, worker_id: &str, lease_ms: i64, now: i64) -> Result<Vec<String>>;
    /// The contexts this worker holds whose cancellation was asked for (a cheap read).
    async fn cancel_requests(&self, worker_id: &str) -> Result<Vec<String>>;
    /// Marks the worker stopped and hands the contexts it still holds back to the queue.
    async fn stop_worker(&self, worker_id: &str, now: i64) -> Result<()>;

    /// Claims up to `max` due contexts (pending, or retrying past their backoff) of `queues`,
    /// in that order of preference, highest priority first within a queue. Honours each
    /// queue's `max_running` across all workers.
    async fn claim_contexts(
        &self,
        worker_id: &str,
        queues: &[String],
        max: u32,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<Context>>;
    /// Contexts whose lease lapsed by `now` (their worker died or stalled) go back to the
    /// queue as `retrying` with the error `worker_lost`, or fail if that was their last
    /// attempt. Workers sweep this every third of a lease. Returns how many were recovered.
    async fn recover_lapsed(&self, now: i64) -> Result<u64>;
    /// Records progress of a running attempt; `Conflict` when the lease no longer holds.
    async fn update_running(&self, lease: &Lease, update: RunningUpdate, limits: &JobLimits, now: i64) -> Result<()>;
    /// Ends attempts of one worker in one transaction, each with its final step's data and
    /// events, and with `next` claims up to `next.max` of the worker's next contexts in the
    /// same transaction, at most one per end recorded (so a busy worker commits once for all
    /// the contexts that finished while its previous commit was in flight). Returns, in the
    /// order given, whether each lease still held (an end whose lease did not is not
    /// recorded: another worker owns that context now), and the contexts claimed.
    async fn finish_contexts(
        &self,
        finishes: &[Finishing],
        next: Option<&NextClaim>,
        now: i64,
    ) -> Result<(Vec<bool>, Vec<Context>)>;
    /// [`JobStore::finish_contexts`] for one attempt; `Conflict` when its lease no longer holds.
    async fn finish_context(
        &self,
        lease: &Lease,
        outcome: Outcome,
        processing: Processing,
        last: RunningUpdate,
        next: Option<&NextClaim>,
        now: i64,
    ) -> Result<Vec<Context>> {
        let finishing = [Finishing { lease: lease.clone(), outcome, processing, last }];
        let (held, claimed) = self.finish_contexts(&finishing, next, now).await?;
        if held != [true] {
            return Err(lease_lost(lease));
        }
        Ok(claimed)
    }
    /// Sets (or with `None` lifts) the limit on contexts of `queue` running at once.
    async fn set_queue_limit(&self, queue: &str, max_running: Option<u32>) -> Result<()>;

    /// Creates or updates a schedule by name; its next run moves only when the cron changed.
    async fn upsert_schedule(&self, schedule: &Schedule) -> Result<()>;
    /// Schedules whose next run is due by `now`.
    async fn due_schedules(&self, now: i64) -> Result<Vec<Schedule>>;
    /// Moves the schedule from `expected_next` to `new_next` and submits its context, once
    /// across all processes: `None` when another process fired it first.
    async fn fire_schedule(
        &self,
        schedule: &Schedule,
        expected_next: i64,
        new_next: i64,
        now: i64,
    ) -> Result<Option<String>>;
    /// Deletes contexts that ended before `before` (ms) but for those of the types `keep`
    /// names, their events and build logs, and workers stopped or silent since then.
    /// Returns the number of contexts.
    async fn purge_contexts(&self, before: i64, keep: &[String]) -> Result<u64>;

    /// Ticks when contexts may have changed (in this process, and on PostgreSQL in others).
    fn job_signal(&self) -> watch::Receiver<u64>;
}

macro_rules! job_columns {
    () => {
        "id, workspace_id, kind, queue, status, pipeline, data, processing, progress, error, priority, attempts, \
         max_attempts, run_at, cancel_requested, idempotency_key, created_by, created_at, updated_at, claims, \
         approved_at, approved_by"
    };
}

macro_rules! template_columns {
    () => {
        "id, version, workspace_id, name, kind, tone, description, sections, created_by, created_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub(crate) id: String,
    workspace_id: String,
    kind: String,
    queue: String,
    status: String,
    pipeline: String,
    data: String,
    processing: Option<String>,
    progress: Option<String>,
    error: Option<String>,
    priority: i32,
    attempts: i32,
    max_attempts: i32,
    run_at: i64,
    cancel_requested: bool,
    idempotency_key: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    claims: i64,
    approved_at: Option<i64>,
    approved_by: Option<String>,
}

pub(crate) fn json_col<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| quire_core::Error::Internal(format!("stored {what} is not valid: {e}")))
}

impl TryFrom<JobRow> for Context {
    type Error = quire_core::Error;
    fn try_from(r: JobRow) -> Result<Context> {
        Ok(Context {
            id: r.id,
            workspace_id: r.workspace_id,
            kind: r.kind,
            status: r.status.parse()?,
            pipeline: json_col("pipeline", &r.pipeline)?,
            data: json_col("data", &r.data)?,
            processing: r.processing.as_deref().map(|s| json_col("processing", s)).transpose()?,
            progress: r.progress.as_deref().map(|s| json_col("progress", s)).transpose()?,
            error: r.error.as_deref().map(|s| json_col("error", s)).transpose()?,
            priority: r.priority,
            queue: r.queue,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            claims: r.claims,
            idempotency_key: r.idempotency_key,
            run_at: quire_core::timestamp_from_ms(r.run_at),
            cancel_requested: r.cancel_requested,
            created_by: r.created_by,
            created_at: quire_core::timestamp_from_ms(r.created_at),
            updated_at: quire_core::timestamp_from_ms(r.updated_at),
            approved_at: r.approved_at.map(quire_core::timestamp_from_ms),
            approved_by: r.approved_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TemplateRow {
    id: String,
    version: i32,
    workspace_id: Option<String>,
    name: String,
    kind: String,
    tone: Option<String>,
    description: String,
    sections: String,
    created_by: String,
    created_at: i64,
}

impl TryFrom<TemplateRow> for Template {
    type Error = quire_core::Error;
    fn try_from(r: TemplateRow) -> Result<Template> {
        Ok(Template {
            id: r.id,
            workspace_id: r.workspace_id,
            name: r.name,
            kind: r.kind,
            tone: r.tone,
            version: r.version,
            description: r.description,
            sections: json_col("sections", &r.sections)?,
            created_by: r.created_by,
            created_at: quire_core::timestamp_from_ms(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ScheduleRow {
    name: String,
    cron: String,
    kind: String,
    pipeline: String,
    data: String,
    queue: String,
    next_run_at: i64,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = quire_core::Error;
    fn try_from(r: ScheduleRow) -> Result<Schedule> {
        Ok(Schedule {
            name: r.name,
            cron: r.cron,
            kind: r.kind,
            pipeline: json_col("pipeline", &r.pipeline)?,
            data: json_col("data", &r.data)?,
            queue: r.queue,
            next_run_at: r.next_run_at,
        })
    }
}

/// The workspace id of contexts Quire submits for itself (cron schedules); only instance
/// administrators see them.
pub const SYSTEM_WORKSPACE: &str = "";

/// The status event for a context.
pub(crate) fn status_event(status: &str, extra: Value) -> (String, Value) {
    let mut data = serde_json::json!({ "status": status });
    if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), extra) {
        d.extend(extra);
    }
    ("status".to_string(), data)
}

macro_rules! impl_job_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Inserts event rows `(context, seq, kind, data)` in one statement.
            async fn insert_events(
                tx: &mut sqlx::Transaction<'static, $db>,
                rows: Vec<(String, i64, String, String)>,
                now: i64,
            ) -> quire_core::Result<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO job_events (job_id, seq, kind, data, created_at) ");
                qb.push_values(rows, |mut b, (id, seq, kind, data)| {
                    b.push_bind(id).push_bind(seq).push_bind(kind).push_bind(data).push_bind(now);
                });
                qb.build().execute(&mut **tx).await.map_err($crate::rows::db_err)?;
                Ok(())
            }

            /// Appends `events` to context `id`, numbered after `last_seq` (the row's
            /// `event_seq` after the caller's `UPDATE` raised it by `events.len()`).
            async fn append_job_events(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: &str,
                last_seq: i64,
                events: &[(String, serde_json::Value)],
                now: i64,
            ) -> quire_core::Result<()> {
                Self::insert_events(tx, $crate::jobs::event_rows(id, last_seq, events), now).await
            }

            /// Commits, wakes this process's workers and streams, and has other processes
            /// told (on PostgreSQL, by a coalesced `NOTIFY`).
            async fn commit_jobs(&self, tx: sqlx::Transaction<'static, $db>) -> quire_core::Result<()> {
                tx.commit().await.map_err($crate::rows::db_err)?;
                self.jobs_committed();
                Ok(())
            }

            fn jobs_committed(&self) {
                self.job_signal.send_modify(|n| *n = n.wrapping_add(1));
                self.announce_jobs();
            }

            /// Inserts new contexts, each with its first event: one statement for the rows,
            /// one for the events. Returns them in the order given.
            async fn insert_contexts(
                tx: &mut sqlx::Transaction<'static, $db>,
                who: &quire_core::Principal,
                workspace_id: &str,
                news: &[&quire_core::NewContext],
                now: i64,
            ) -> quire_core::Result<Vec<quire_core::Context>> {
                if news.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<String> = news.iter().map(|_| quire_core::new_id("ctx")).collect();
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO jobs (id, workspace_id, kind, queue, status, pipeline, input, data, priority, max_attempts, \
                     run_at, idempotency_key, fingerprint, event_seq, created_by, created_at, updated_at, document_id) ",
                );
                qb.push_values(news.iter().zip(&ids), |mut b, (new, id)| {
                    let data = serde_json::Value::Object(new.data.clone()).to_string();
                    b.push_bind(id.clone())
                        .push_bind(workspace_id.to_string())
                        .push_bind(new.kind.clone())
                        .push_bind(new.queue.clone().unwrap_or_else(|| "default".into()))
                        .push("'pending'")
                        .push_bind(serde_json::json!(new.pipeline).to_string())
                        .push_bind(data.clone())
                        .push_bind(data)
                        .push_bind(new.priority)
                        .push_bind(new.max_attempts.unwrap_or(5))
                        .push_bind(now + new.delay_ms.unwrap_or(0) as i64)
                        .push_bind(new.idempotency_key.clone())
                        // Only a keyed submission is ever compared with a later one.
                        .push_bind(new.idempotency_key.as_ref().map(|_| new.fingerprint()).unwrap_or_default())
                        .push("1")
                        .push_bind(who.actor().to_string())
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(new.data.get("document_id").and_then(serde_json::Value::as_str).map(String::from));
                });
                qb.push(concat!(" RETURNING ", job_columns!()));
                let rows: Vec<$crate::jobs::JobRow> =
                    qb.build_query_as().fetch_all(&mut **tx).await.map_err($crate::rows::db_err)?;
                let mut by_id: std::collections::HashMap<String, quire_core::Context> = rows
                    .into_iter()
                    .map(|r| quire_core::Context::try_from(r).map(|c| (c.id.clone(), c)))
                    .collect::<quire_core::Result<_>>()?;
                let events = news
                    .iter()
                    .zip(&ids)
                    .map(|(new, id)| {
                        let run_at = quire_core::timestamp_from_ms(now + new.delay_ms.unwrap_or(0) as i64);
                        let rfc = run_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
                        let (kind, data) = $crate::jobs::status_event("pending", serde_json::json!({ "run_at": rfc }));
                        (id.clone(), 1, kind, data.to_string())
                    })
                    .collect();
                Self::insert_events(tx, events, now).await?;
                ids.iter()
                    .map(|id| by_id.remove(id).ok_or_else(|| quire_core::Error::Internal(format!("context {id} was not returned by its insert"))))
                    .collect()
            }

            /// A context `who` may see, with their role in its workspace.
            async fn visible_context(&self, who: &quire_core::Principal, id: &str) -> quire_core::Result<(quire_core::Context, quire_core::Role)> {
                let not_found = || quire_core::Error::not_found("context", id);
                let row: Option<$crate::jobs::JobRow> = sqlx::query_as(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                let ctx: quire_core::Context = row.ok_or_else(not_found)?.try_into()?;
                let role = if who.is_superuser() {
                    quire_core::Role::Owner
                } else if ctx.workspace_id == $crate::jobs::SYSTEM_WORKSPACE {
                    return Err(not_found());
                } else {
                    let (_, role) = self.visible_workspace(who, &ctx.workspace_id, Some(false)).await.map_err(|_| not_found())?;
                    role
                };
                Ok((ctx, role))
            }

            /// A conditional write on one context (`sql` binds its id and the time, and
            /// returns `event_seq` and the row), with one status event; `None` when the
            /// condition no longer holds. The caller has checked the principal's role.
            async fn change_context(
                &self,
                id: &str,
                sql: &'static str,
                event: (String, serde_json::Value),
            ) -> quire_core::Result<Option<quire_core::Context>> {
                let now = quire_core::now_ms();
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::jobs::SeqJobRow> = sqlx::query_as(sql)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                let Some(row) = row else { return Ok(None) };
                Self::append_job_events(&mut tx, id, row.event_seq, &[event], now).await?;
                self.commit_jobs(tx).await?;
                row.row.try_into().map(Some)
            }

            /// Whether any context of `queues` is due by `now`: a read, so that an idle
            /// worker's poll takes no write lock and commits nothing.
            async fn any_due(&self, queues: &[String], now: i64) -> quire_core::Result<bool> {
                for queue in queues {
                    let due: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM jobs WHERE queue = $1 AND status IN ('pending', 'retrying') AND run_at <= $2 LIMIT 1",
                    )
                    .bind(queue)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                    if due.is_some() {
                        return Ok(true);
                    }
                }
                Ok(false)
            }

            /// Claims from one queue within `tx`; the claims' `processing` events are added
            /// to `events` for the caller to insert with its own.
            #[allow(clippy::too_many_arguments)]
            async fn claim_from(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                worker_id: &str,
                queue: &str,
                max: i64,
                lease_ms: i64,
                now: i64,
                events: &mut Vec<(String, i64, String, String)>,
            ) -> quire_core::Result<Vec<quire_core::Context>> {
                let limit = match self.queue_limits.get(queue) {
                    Some(limit) => limit,
                    None => {
                        let limit: Option<Option<i32>> =
                            sqlx::query_scalar("SELECT max_running FROM job_queues WHERE name = $1")
                                .bind(queue)
                                .fetch_optional(&mut **tx)
                                .await
                                .map_err($crate::rows::db_err)?;
                        let limit = limit.flatten();
                        self.queue_limits.put(queue, limit);
                        limit
                    }
                };
                let mut max = max;
                if let Some(limit) = limit {
                    if let Some(lock) = Self::QUEUE_LOCK {
                        sqlx::query(lock).bind(queue).execute(&mut **tx).await.map_err($crate::rows::db_err)?;
                    }
                    let running: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM jobs WHERE queue = $1 AND status = 'processing' AND lease_until >= $2",
                    )
                    .bind(queue)
                    .bind(now)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                    max = max.min(i64::from(limit) - running);
                }
                if max <= 0 {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    concat!(
                        "UPDATE jobs SET status = 'processing', lease_owner = $1, lease_until = $4 + $5, ",
                        "attempts = attempts + 1, claims = claims + 1, event_seq = event_seq + 1, updated_at = $4 ",
                        "WHERE id IN (SELECT id FROM jobs WHERE queue = $2 AND status IN ('pending', 'retrying') ",
                        "AND run_at <= $4 ORDER BY priority DESC, run_at, id LIMIT $3{}) RETURNING event_seq, ",
                        job_columns!()
                    ),
                    Self::CLAIM_SKIP_LOCKED
                );
                let rows: Vec<$crate::jobs::SeqJobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(worker_id)
                    .bind(queue)
                    .bind(max)
                    .bind(now)
                    .bind(lease_ms)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                let mut claimed = Vec::with_capacity(rows.len());
                for r in rows {
                    let ctx: quire_core::Context = r.row.try_into()?;
                    let (kind, data) = $crate::jobs::status_event(
                        "processing",
                        serde_json::json!({ "attempt": ctx.attempts, "worker": worker_id }),
                    );
                    events.push((ctx.id.clone(), r.event_seq, kind, data.to_string()));
                    claimed.push(ctx);
                }
                claimed.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)));
                Ok(claimed)
            }

            async fn fetch_workers(&self, now: i64, stale_after_ms: i64) -> quire_core::Result<Vec<quire_core::WorkerInfo>> {
                let rows: Vec<(String, String, String, i32, i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT id, name, queues, concurrency, started_at, heartbeat_at, stopped_at FROM workers \
                     ORDER BY stopped_at IS NOT NULL, started_at DESC LIMIT 500",
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                let jobs: Vec<(String, String, String, String, Option<String>, i32, i64)> = sqlx::query_as(
                    "SELECT lease_owner, id, workspace_id, kind, processing, attempts, lease_until FROM jobs \
                     WHERE status = 'processing' AND lease_owner IS NOT NULL ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for (id, name, queues, concurrency, started, beat, stopped) in rows {
                    let current = jobs
                        .iter()
                        .filter(|j| j.0 == id)
                        .map(|j| {
                            let component = j
                                .4
                                .as_deref()
                                .and_then(|p| serde_json::from_str::<quire_core::Processing>(p).ok())
                                .and_then(|p| p.current_component);
                            quire_core::WorkerJob {
                                id: j.1.clone(),
                                workspace_id: j.2.clone(),
                                kind: j.3.clone(),
                                component,
                                attempt: j.5,
                                lease_until: quire_core::timestamp_from_ms(j.6),
                            }
                        })
                        .collect();
                    out.push(quire_core::WorkerInfo {
                        id,
                        name,
                        queues: $crate::jobs::json_list(&queues),
                        concurrency,
                        started_at: quire_core::timestamp_from_ms(started),
                        heartbeat_at: quire_core::timestamp_from_ms(beat),
                        alive: stopped.is_none() && now - beat <= stale_after_ms,
                        stopped_at: stopped.map(quire_core::timestamp_from_ms),
                        current,
                    });
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::JobStore for $store {
            async fn submit_contexts(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                new: Vec<quire_core::NewContext>,
                limits: &quire_core::JobLimits,
                now: i64,
            ) -> quire_core::Result<Vec<$crate::jobs::Submitted>> {
                if new.is_empty() || new.len() > limits.max_batch {
                    return Err(quire_core::Error::invalid("contexts", format!("submit 1 to {} contexts at once", limits.max_batch)));
                }
                for (i, n) in new.iter().enumerate() {
                    n.validate(limits).map_err(|e| match e {
                        quire_core::Error::Invalid { field, message } if new.len() > 1 => {
                            quire_core::Error::invalid(format!("contexts[{i}].{field}"), message)
                        }
                        e => e,
                    })?;
                }
                let mut keys = std::collections::HashSet::new();
                for (i, n) in new.iter().enumerate() {
                    if let Some(key) = &n.idempotency_key
                        && !keys.insert(key.as_str())
                    {
                        return Err(quire_core::Error::invalid(
                            format!("contexts[{i}].idempotency_key"),
                            format!("'{key}' appears twice in the batch"),
                        ));
                    }
                }
                let (ws, role) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "submit contexts")?;
                // Two submissions racing with one idempotency key: the loser's insert
                // violates the unique index, and its second pass finds the winner's row.
                for _ in 0..2 {
                    let mut tx = self.begin_write().await?;
                    let mut out: Vec<Option<$crate::jobs::Submitted>> = Vec::with_capacity(new.len());
                    let mut fresh = Vec::with_capacity(new.len());
                    for n in &new {
                        if let Some(key) = &n.idempotency_key {
                            let found: Option<$crate::jobs::KeyedJobRow> = sqlx::query_as(concat!(
                                "SELECT fingerprint, ", job_columns!(), " FROM jobs WHERE workspace_id = $1 AND idempotency_key = $2"
                            ))
                            .bind(&ws.id)
                            .bind(key)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err($crate::rows::db_err)?;
                            if let Some(found) = found {
                                if found.fingerprint != n.fingerprint() {
                                    return Err(quire_core::Error::Conflict(format!(
                                        "idempotency key '{key}' was used for a different request (context '{}'); use a new key",
                                        found.row.id
                                    )));
                                }
                                out.push(Some((found.row.try_into()?, false)));
                                continue;
                            }
                        }
                        out.push(None);
                        fresh.push(n);
                    }
                    match Self::insert_contexts(&mut tx, who, &ws.id, &fresh, now).await {
                        Ok(made) => {
                            let mut made = made.into_iter();
                            let out = out
                                .into_iter()
                                .map(|o| o.or_else(|| made.next().map(|c| (c, true))))
                                .collect::<Option<Vec<_>>>()
                                .ok_or_else(|| quire_core::Error::Internal("a submitted context went missing".into()))?;
                            self.commit_jobs(tx).await?;
                            return Ok(out);
                        }
                        // Another submission with one of these keys won the race: look again.
                        Err(quire_core::Error::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(quire_core::Error::Conflict("the idempotency key is being used by a concurrent request; retry".into()))
            }

            async fn approve_context(
                &self,
                who: &quire_core::Principal,
                id: &str,
                document_id: &str,
                event: &str,
                data: serde_json::Value,
            ) -> quire_core::Result<(quire_core::Context, i64)> {
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::jobs::JobRow> = sqlx::query_as(concat!(
                    "UPDATE jobs SET approved_at = $2, approved_by = $3 WHERE id = $1 AND status = 'completed' RETURNING ",
                    job_columns!()
                ))
                .bind(id)
                .bind(quire_core::now_ms())
                .bind(who.actor().to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some(row) = row else {
                    return Err(quire_core::Error::Conflict(format!("context '{id}' is not complete")));
                };
                let ctx: quire_core::Context = row.try_into()?;
                let event_id = Self::append_raw(&mut tx, who, event, Some(&ctx.workspace_id), Some(document_id), data).await?;
                self.commit(tx).await?;
                Ok((ctx, event_id))
            }

            async fn get_context(&self, who: &quire_core::Principal, id: &str) -> quire_core::Result<quire_core::Context> {
                Ok(self.visible_context(who, id).await?.0)
            }

            async fn list_contexts(
                &self,
                who: &quire_core::Principal,
                q: &quire_core::ContextQuery,
            ) -> quire_core::Result<quire_core::Page<quire_core::Context>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", job_columns!(), " FROM jobs WHERE 1 = 1"));
                if let Some(key) = &q.workspace {
                    let (ws, _) = self.visible_workspace(who, key, Some(false)).await?;
                    qb.push(" AND workspace_id = ").push_bind(ws.id);
                } else {
                    match who {
                        p if p.is_superuser() => {}
                        quire_core::Principal::User { id, .. } => {
                            qb.push(" AND workspace_id IN (SELECT m.workspace_id FROM memberships m JOIN workspaces w ON w.id = m.workspace_id WHERE w.deleted_at IS NULL AND m.user_id = ")
                                .push_bind(id.clone())
                                .push(")");
                        }
                        quire_core::Principal::ApiKey { workspace_id, .. } => {
                            qb.push(" AND workspace_id = ").push_bind(workspace_id.clone());
                        }
                        _ => return Err(quire_core::Error::Unauthenticated("sign in to list contexts".into())),
                    }
                }
                if let Some(s) = q.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(k) = &q.kind {
                    qb.push(" AND kind = ").push_bind(k.clone());
                }
                if let Some(d) = &q.document {
                    qb.push(" AND document_id = ").push_bind(d.clone());
                }
                let col = match q.page.sort.field {
                    quire_core::SortField::CreatedAt => "created_at",
                    quire_core::SortField::UpdatedAt => "updated_at",
                    quire_core::SortField::Name => "kind",
                };
                push_keyset!(qb, col, &q.page);
                let rows: Vec<$crate::jobs::JobRow> =
                    qb.build_query_as().fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                let items = rows.into_iter().map(TryInto::try_into).collect::<quire_core::Result<Vec<quire_core::Context>>>()?;
                Ok($crate::sql::into_page(items, &q.page, |c| (&c.kind, &c.created_at, &c.updated_at, &c.id)))
            }

            async fn cancel_context(&self, who: &quire_core::Principal, id: &str) -> quire_core::Result<quire_core::Context> {
                // A worker may claim or finish the context between the read and the write:
                // decide again on what is there now.
                for _ in 0..4 {
                    let (ctx, role) = self.visible_context(who, id).await?;
                    $crate::sql::require(role, quire_core::Role::Editor, "cancel contexts")?;
                    let (sql, event) = match ctx.status {
                        quire_core::ContextStatus::Processing if !ctx.cancel_requested => (
                            concat!(
                                "UPDATE jobs SET cancel_requested = TRUE, event_seq = event_seq + 1, updated_at = $2 ",
                                "WHERE id = $1 AND status = 'processing' AND NOT cancel_requested RETURNING event_seq, ",
                                job_columns!()
                            ),
                            $crate::jobs::status_event("processing", serde_json::json!({ "cancel_requested": true })),
                        ),
                        quire_core::ContextStatus::Pending | quire_core::ContextStatus::Retrying => (
                            concat!(
                                "UPDATE jobs SET status = 'cancelled', finished_at = $2, event_seq = event_seq + 1, updated_at = $2 ",
                                "WHERE id = $1 AND status IN ('pending', 'retrying') RETURNING event_seq, ",
                                job_columns!()
                            ),
                            $crate::jobs::status_event("cancelled", serde_json::json!({})),
                        ),
                        status => {
                            let why = if ctx.cancel_requested { "its cancellation is under way" } else { "it has ended" };
                            return Err(quire_core::Error::Conflict(format!(
                                "context '{id}' is {} and cannot be cancelled: {why}",
                                status.as_str()
                            )));
                        }
                    };
                    if let Some(ctx) = self.change_context(id, sql, event).await? {
                        return Ok(ctx);
                    }
                }
                Err(quire_core::Error::Conflict(format!("context '{id}' kept changing; retry the cancellation")))
            }

            async fn retry_context(&self, who: &quire_core::Principal, id: &str, from_start: bool) -> quire_core::Result<quire_core::Context> {
                let (_, role) = self.visible_context(who, id).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "retry contexts")?;
                let sql = if from_start {
                    concat!(
                        "UPDATE jobs SET status = 'retrying', attempts = 0, run_at = $2, data = input, processing = NULL, ",
                        "progress = NULL, error = NULL, cancel_requested = FALSE, finished_at = NULL, lease_owner = NULL, ",
                        "lease_until = NULL, event_seq = event_seq + 1, updated_at = $2 ",
                        "WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING event_seq, ",
                        job_columns!()
                    )
                } else {
                    concat!(
                        "UPDATE jobs SET status = 'retrying', attempts = 0, run_at = $2, progress = NULL, ",
                        "cancel_requested = FALSE, finished_at = NULL, lease_owner = NULL, lease_until = NULL, ",
                        "event_seq = event_seq + 1, updated_at = $2 ",
                        "WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING event_seq, ",
                        job_columns!()
                    )
                };
                let event = $crate::jobs::status_event("retrying", serde_json::json!({ "from": if from_start { "start" } else { "failed" } }));
                match self.change_context(id, sql, event).await? {
                    Some(ctx) => Ok(ctx),
                    None => {
                        let now = self.visible_context(who, id).await?.0;
                        Err(quire_core::Error::Conflict(format!(
                            "context '{id}' is {}: only failed and cancelled contexts can be retried",
                            now.status.as_str()
                        )))
                    }
                }
            }

            async fn context_events(
                &self,
                who: &quire_core::Principal,
                id: &str,
                after: i64,
                limit: u32,
            ) -> quire_core::Result<(quire_core::Context, Vec<quire_core::ContextEvent>)> {
                let (ctx, _) = self.visible_context(who, id).await?;
                let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
                    "SELECT seq, kind, data, created_at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                let events = rows
                    .into_iter()
                    .map(|(seq, kind, data, at)| {
                        Ok(quire_core::ContextEvent { seq, kind, data: $crate::jobs::json_col("event", &data)?, at: quire_core::timestamp_from_ms(at) })
                    })
                    .collect::<quire_core::Result<Vec<_>>>()?;
                Ok((ctx, events))
            }

            async fn create_template(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                new: quire_core::NewTemplate,
            ) -> quire_core::Result<quire_core::Template> {
                new.validate()?;
                let (ws, role) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "create templates")?;
                for _ in 0..$crate::sql::MAX_ATTEMPTS {
                    let (id, version) = match &new.id {
                        None => (quire_core::new_id("tmpl"), 1),
                        Some(id) => {
                            let found: Option<(Option<String>, i32)> = sqlx::query_as(
                                "SELECT workspace_id, MAX(version) FROM templates WHERE id = $1 GROUP BY workspace_id",
                            )
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err($crate::rows::db_err)?;
                            match found {
                                Some((Some(w), v)) if w == ws.id => (id.clone(), v + 1),
                                Some((None, _)) => {
                                    return Err(quire_core::Error::Forbidden(format!(
                                        "template '{id}' is built into Quire; create a template of your own from it instead"
                                    )));
                                }
                                _ => return Err(quire_core::Error::not_found("template", id)),
                            }
                        }
                    };
                    let row: std::result::Result<$crate::jobs::TemplateRow, _> = sqlx::query_as(concat!(
                        "INSERT INTO templates (id, version, workspace_id, name, kind, tone, description, sections, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
                        template_columns!()
                    ))
                    .bind(&id)
                    .bind(version)
                    .bind(&ws.id)
                    .bind(new.name.trim())
                    .bind(&new.kind)
                    .bind(new.tone.as_deref())
                    .bind(&new.description)
                    .bind(serde_json::json!(new.sections).to_string())
                    .bind(who.actor())
                    .bind(quire_core::now_ms())
                    .fetch_one(&self.writer_pool())
                    .await;
                    match row.map_err($crate::rows::db_err) {
                        Ok(row) => return row.try_into(),
                        Err(quire_core::Error::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(quire_core::Error::Conflict("the template changed during the update; retry".into()))
            }

            async fn list_templates(&self, who: &quire_core::Principal, workspace: &str) -> quire_core::Result<Vec<quire_core::Template>> {
                let (ws, _) = self.visible_workspace(who, workspace, Some(false)).await?;
                let rows: Vec<$crate::jobs::TemplateRow> = sqlx::query_as(concat!(
                    "SELECT ", template_columns!(), " FROM templates t WHERE (workspace_id IS NULL OR workspace_id = $1) \
                     AND version = (SELECT MAX(version) FROM templates u WHERE u.id = t.id) ORDER BY kind, name, id LIMIT 1000"
                ))
                .bind(&ws.id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn get_template(&self, who: &quire_core::Principal, id: &str, version: Option<i32>) -> quire_core::Result<quire_core::Template> {
                let not_found = || quire_core::Error::not_found("template", id);
                let row: Option<$crate::jobs::TemplateRow> = sqlx::query_as(concat!(
                    "SELECT ", template_columns!(), " FROM templates WHERE id = $1 AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1"
                ))
                .bind(id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                let t: quire_core::Template = row.ok_or_else(not_found)?.try_into()?;
                match (&t.workspace_id, who) {
                    (_, quire_core::Principal::Anonymous) => Err(not_found()),
                    (None, _) => Ok(t),
                    (Some(ws), who) => {
                        self.visible_workspace(who, ws, Some(false)).await.map_err(|_| not_found())?;
                        Ok(t)
                    }
                }
            }

            async fn find_template(
                &self,
                workspace_id: &str,
                id: Option<&str>,
                version: Option<i32>,
                kind: &str,
                tone: Option<&str>,
            ) -> quire_core::Result<Option<quire_core::Template>> {
                let row: Option<$crate::jobs::TemplateRow> = match id {
                    Some(id) => sqlx::query_as(concat!(
                        "SELECT ", template_columns!(), " FROM templates WHERE id = $1 AND (workspace_id IS NULL OR workspace_id = $2) \
                         AND ($3 IS NULL OR version = $3) ORDER BY version DESC LIMIT 1"
                    ))
                    .bind(id)
                    .bind(workspace_id)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await,
                    None => sqlx::query_as(concat!(
                        "SELECT ", template_columns!(), " FROM templates WHERE kind = $1 AND (workspace_id IS NULL OR workspace_id = $2) \
                         AND ($3 IS NULL OR tone = $3 OR tone IS NULL) \
                         ORDER BY CASE WHEN tone = $3 THEN 0 WHEN tone IS NULL THEN 1 ELSE 2 END, CASE WHEN workspace_id IS NULL THEN 1 ELSE 0 END, \
                         created_at DESC, version DESC LIMIT 1"
                    ))
                    .bind(kind)
                    .bind(workspace_id)
                    .bind(tone)
                    .fetch_optional(&self.pool)
                    .await,
                }
                .map_err($crate::rows::db_err)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn ensure_template(&self, t: &quire_core::Template) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO templates (id, version, workspace_id, name, kind, tone, description, sections, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id, version) DO NOTHING",
                )
                .bind(&t.id)
                .bind(t.version)
                .bind(t.workspace_id.as_deref())
                .bind(&t.name)
                .bind(&t.kind)
                .bind(t.tone.as_deref())
                .bind(&t.description)
                .bind(serde_json::json!(t.sections).to_string())
                .bind(&t.created_by)
                .bind($crate::sql::ms_of(&t.created_at))
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn list_workers(&self, who: &quire_core::Principal, now: i64, stale_after_ms: i64) -> quire_core::Result<Vec<quire_core::WorkerInfo>> {
                if !who.is_superuser() {
                    return Err(quire_core::Error::Forbidden("only instance administrators may list workers".into()));
                }
                self.fetch_workers(now, stale_after_ms).await
            }

            async fn register_worker(&self, w: &$crate::jobs::NewWorker, now: i64) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO workers (id, name, queues, concurrency, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&w.id)
                .bind(&w.name)
                .bind(serde_json::json!(w.queues).to_string())
                .bind(w.concurrency)
                .bind(now)
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn heartbeat_worker(&self, worker_id: &str, lease_ms: i64, now: i64) -> quire_core::Result<Vec<String>> {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE workers SET heartbeat_at = $2 WHERE id = $1")
                    .bind(worker_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                // In id order, as finishing workers lock them (no cycle of waits).
                let sql = format!(
                    "UPDATE jobs SET lease_until = $2 + $3 WHERE id IN (SELECT id FROM jobs \
                     WHERE lease_owner = $1 AND status = 'processing' ORDER BY id{}) RETURNING id, cancel_requested",
                    Self::ROW_LOCK
                );
                let held: Vec<(String, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker_id)
                .bind(now)
                .bind(lease_ms)
                .fetch_all(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                tx.commit().await.map_err($crate::rows::db_err)?;
                Ok(held.into_iter().filter(|h| h.1).map(|h| h.0).collect())
            }

            async fn cancel_requests(&self, worker_id: &str) -> quire_core::Result<Vec<String>> {
                sqlx::query_scalar("SELECT id FROM jobs WHERE lease_owner = $1 AND status = 'processing' AND cancel_requested")
                    .bind(worker_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)
            }

            async fn stop_worker(&self, worker_id: &str, now: i64) -> quire_core::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE workers SET stopped_at = $2, heartbeat_at = $2 WHERE id = $1")
                    .bind(worker_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                // The attempt was not the context's fault: it does not count.
                let sql = format!(
                    "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_until = NULL, run_at = $2, \
                     attempts = attempts - 1, event_seq = event_seq + 1, updated_at = $2 WHERE id IN (SELECT id FROM jobs \
                     WHERE lease_owner = $1 AND status = 'processing' ORDER BY id{}) RETURNING id, event_seq",
                    Self::ROW_LOCK
                );
                let released: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                for (id, seq) in released {
                    let event = $crate::jobs::status_event("pending", serde_json::json!({ "released_by": worker_id }));
                    Self::append_job_events(&mut tx, &id, seq, &[event], now).await?;
                }
                self.commit_jobs(tx).await
            }

            async fn claim_contexts(
                &self,
                worker_id: &str,
                queues: &[String],
                max: u32,
                lease_ms: i64,
                now: i64,
            ) -> quire_core::Result<Vec<quire_core::Context>> {
                if max == 0 || !self.any_due(queues, now).await? {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin_write().await?;
                let mut claimed = Vec::new();
                let mut events = Vec::new();
                for queue in queues {
                    let left = i64::from(max) - claimed.len() as i64;
                    if left <= 0 {
                        break;
                    }
                    claimed.extend(self.claim_from(&mut tx, worker_id, queue, left, lease_ms, now, &mut events).await?);
                }
                Self::insert_events(&mut tx, events, now).await?;
                if claimed.is_empty() {
                    // Nothing changed: waking this process's workers (and, on PostgreSQL,
                    // every other process's) would only make them claim nothing again.
                    tx.commit().await.map_err($crate::rows::db_err)?;
                } else {
                    self.commit_jobs(tx).await?;
                }
                Ok(claimed)
            }

            async fn recover_lapsed(&self, now: i64) -> quire_core::Result<u64> {
                let lapsed: Vec<(String, i32, i32)> = sqlx::query_as(
                    "SELECT id, attempts, max_attempts FROM jobs WHERE status = 'processing' AND lease_until < $1 ORDER BY id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                if lapsed.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                let mut recovered = 0;
                for (id, attempt, max_attempts) in lapsed {
                    let last = attempt >= max_attempts;
                    let error = quire_core::ContextError {
                        code: "worker_lost".into(),
                        message: "the worker running this attempt stopped answering (its lease lapsed)".into(),
                        component: None,
                        permanent: false,
                        attempt,
                    };
                    let status = if last { "failed" } else { "retrying" };
                    let seq: Option<i64> = sqlx::query_scalar(
                        "UPDATE jobs SET status = $2, error = $3, lease_owner = NULL, lease_until = NULL, run_at = $4, \
                         finished_at = $5, event_seq = event_seq + 1, updated_at = $4 \
                         WHERE id = $1 AND status = 'processing' AND lease_until < $4 RETURNING event_seq",
                    )
                    .bind(&id)
                    .bind(status)
                    .bind(serde_json::json!(error).to_string())
                    .bind(now)
                    .bind(last.then_some(now))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                    if let Some(seq) = seq {
                        let event = $crate::jobs::status_event(status, serde_json::json!({ "error": error }));
                        Self::append_job_events(&mut tx, &id, seq, &[event], now).await?;
                        recovered += 1;
                    }
                }
                self.commit_jobs(tx).await?;
                Ok(recovered)
            }

            async fn update_running(
                &self,
                lease: &$crate::jobs::Lease,
                update: $crate::jobs::RunningUpdate,
                limits: &quire_core::JobLimits,
                now: i64,
            ) -> quire_core::Result<()> {
                let data = update.data.map(|d| serde_json::Value::Object(d).to_string());
                if let Some(d) = &data
                    && d.len() > limits.max_data_bytes
                {
                    return Err(quire_core::Error::invalid(
                        "data",
                        format!("grew to {} bytes of JSON; at most {} bytes", d.len(), limits.max_data_bytes),
                    ));
                }
                let mut tx = self.begin_write().await?;
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT event_seq FROM jobs WHERE id = $1 AND lease_owner = $2 AND claims = $3 AND status = 'processing'",
                )
                .bind(&lease.context_id)
                .bind(&lease.worker_id)
                .bind(lease.claim)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some(seq) = seq else { return Err($crate::jobs::lease_lost(lease)) };
                // Past the cap, log lines are dropped; status and component events are kept.
                let room = (limits.max_events_per_context - seq).max(0) as usize;
                let mut events = update.events;
                let mut logs_kept = 0usize;
                events.retain(|(kind, _)| {
                    if kind != "log" {
                        return true;
                    }
                    logs_kept += 1;
                    logs_kept <= room
                });
                let matched: Option<i64> = sqlx::query_scalar(
                    "UPDATE jobs SET data = COALESCE($4, data), processing = COALESCE($5, processing), \
                     progress = COALESCE($6, progress), event_seq = event_seq + $7, updated_at = $8 \
                     WHERE id = $1 AND lease_owner = $2 AND claims = $3 AND status = 'processing' RETURNING event_seq",
                )
                .bind(&lease.context_id)
                .bind(&lease.worker_id)
                .bind(lease.claim)
                .bind(data)
                .bind(update.processing.map(|p| serde_json::json!(p).to_string()))
                .bind(update.progress.map(|p| serde_json::json!(p).to_string()))
                .bind(events.len() as i64)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some(seq) = matched else { return Err($crate::jobs::lease_lost(lease)) };
                Self::append_job_events(&mut tx, &lease.context_id, seq, &events, now).await?;
                self.commit_jobs(tx).await
            }

            async fn finish_contexts(
                &self,
                finishes: &[$crate::jobs::Finishing],
                next: Option<&$crate::jobs::NextClaim>,
                now: i64,
            ) -> quire_core::Result<(Vec<bool>, Vec<quire_core::Context>)> {
                if finishes.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let ends: Vec<$crate::jobs::End> = finishes.iter().map(|f| $crate::jobs::End::new(f, now)).collect();
                // A worker taking from one queue without a limit: finish and claim in one
                // statement where the backend can (PostgreSQL).
                if let Some(next) = next
                    && let [queue] = next.queues.as_slice()
                    && self.queue_limits.get(queue) == Some(None)
                {
                    let batch = $crate::jobs::FinishBatch { ends: &ends, queue, max: next.max, lease_ms: next.lease_ms, now };
                    if let Some(done) = self.finish_and_claim_at_once(&batch).await? {
                        self.jobs_committed();
                        return Ok(done);
                    }
                }
                let mut tx = self.begin_write().await?;
                let mut held = vec![false; ends.len()];
                let mut events = Vec::new();
                // Rows are locked in id order, as the heartbeat locks them, so that the two
                // never wait on each other in a cycle.
                let mut order: Vec<usize> = (0..ends.len()).collect();
                order.sort_by(|a, b| ends[*a].lease.context_id.cmp(&ends[*b].lease.context_id));
                for i in order {
                    let end = &ends[i];
                    let seq: Option<i64> = sqlx::query_scalar(concat!(
                        "UPDATE jobs SET status = $4, error = COALESCE($5, error), run_at = COALESCE($6, run_at), finished_at = $7, ",
                        "processing = $8, lease_owner = NULL, lease_until = NULL, event_seq = event_seq + $10, updated_at = $9, ",
                        "data = COALESCE($11, data) ",
                        "WHERE id = $1 AND lease_owner = $2 AND claims = $3 AND status = 'processing' RETURNING event_seq"
                    ))
                    .bind(&end.lease.context_id)
                    .bind(&end.lease.worker_id)
                    .bind(end.lease.claim)
                    .bind(end.status)
                    .bind(&end.error)
                    .bind(end.run_at)
                    .bind(end.finished)
                    .bind(&end.processing)
                    .bind(now)
                    .bind(end.events.len() as i64)
                    .bind(&end.data)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                    if let Some(seq) = seq {
                        held[i] = true;
                        events.extend($crate::jobs::event_rows(&end.lease.context_id, seq, &end.events));
                    }
                }
                // The ends' events and those of the contexts claimed next: one insert.
                let mut claimed = Vec::new();
                if let Some(next) = next {
                    let max = i64::from(next.max).min(held.iter().filter(|h| **h).count() as i64);
                    let worker = &ends[0].lease.worker_id;
                    for queue in &next.queues {
                        let left = max - claimed.len() as i64;
                        if left <= 0 {
                            break;
                        }
                        claimed.extend(self.claim_from(&mut tx, worker, queue, left, next.lease_ms, now, &mut events).await?);
                    }
                }
                Self::insert_events(&mut tx, events, now).await?;
                self.commit_jobs(tx).await?;
                Ok((held, claimed))
            }

            async fn set_queue_limit(&self, queue: &str, max_running: Option<u32>) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO job_queues (name, max_running) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running",
                )
                .bind(queue)
                .bind(max_running.map(|m| m.min(i32::MAX as u32) as i32))
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                self.queue_limits.forget(queue);
                Ok(())
            }

            async fn upsert_schedule(&self, s: &quire_core::Schedule) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO job_schedules (name, cron, kind, pipeline, data, queue, next_run_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, pipeline = excluded.pipeline, data = excluded.data, \
                     queue = excluded.queue, next_run_at = CASE WHEN job_schedules.cron = excluded.cron \
                     THEN job_schedules.next_run_at ELSE excluded.next_run_at END, cron = excluded.cron",
                )
                .bind(&s.name)
                .bind(&s.cron)
                .bind(&s.kind)
                .bind(serde_json::json!(s.pipeline).to_string())
                .bind(serde_json::Value::Object(s.data.clone()).to_string())
                .bind(&s.queue)
                .bind(s.next_run_at)
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn due_schedules(&self, now: i64) -> quire_core::Result<Vec<quire_core::Schedule>> {
                let rows: Vec<$crate::jobs::ScheduleRow> = sqlx::query_as(
                    "SELECT name, cron, kind, pipeline, data, queue, next_run_at FROM job_schedules WHERE next_run_at <= $1 ORDER BY next_run_at",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn fire_schedule(
                &self,
                s: &quire_core::Schedule,
                expected_next: i64,
                new_next: i64,
                now: i64,
            ) -> quire_core::Result<Option<String>> {
                let mut tx = self.begin_write().await?;
                let moved = sqlx::query(
                    "UPDATE job_schedules SET next_run_at = $3, last_run_at = $4 WHERE name = $1 AND next_run_at = $2",
                )
                .bind(&s.name)
                .bind(expected_next)
                .bind(new_next)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                if moved.rows_affected() != 1 {
                    return Ok(None);
                }
                let mut new = quire_core::NewContext::new(s.kind.clone(), &[], s.data.clone());
                new.pipeline = s.pipeline.clone();
                new.queue = Some(s.queue.clone());
                new.idempotency_key = Some(format!("cron:{}:{expected_next}", s.name));
                let made = Self::insert_contexts(&mut tx, &quire_core::Principal::System, $crate::jobs::SYSTEM_WORKSPACE, &[&new], now).await?;
                self.commit_jobs(tx).await?;
                Ok(made.into_iter().next().map(|c| c.id))
            }

            async fn purge_contexts(&self, before: i64, keep: &[String]) -> quire_core::Result<u64> {
                // The types kept, as placeholders after `before` ($1): `$2, $3, …`.
                let kept = if keep.is_empty() {
                    String::new()
                } else {
                    let list: Vec<String> = (0..keep.len()).map(|i| format!("${}", i + 2)).collect();
                    format!(" AND kind NOT IN ({})", list.join(", "))
                };
                let ended = format!("SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1{kept}");
                let mut tx = self.begin_write().await?;
                for sql in [
                    format!("DELETE FROM build_logs WHERE context_id IN ({ended})"),
                    format!("DELETE FROM job_events WHERE job_id IN ({ended})"),
                ] {
                    // Only placeholders are spliced in; the types are bound.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before);
                    for k in keep {
                        q = q.bind(k);
                    }
                    q.execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                }
                let sql = format!("DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1{kept}");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before);
                for k in keep {
                    q = q.bind(k);
                }
                let done = q.execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                tx.commit().await.map_err($crate::rows::db_err)?;
                Ok(done.rows_affected())
            }

            fn job_signal(&self) -> tokio::sync::watch::Receiver<u64> {
                self.job_signal.subscribe()
            }
        }
    };
}

/// Each queue's `max_running`, as this process last read it. Claims read it from here for a
/// few seconds rather than once per claim; a limit set by another process applies within
/// that time, one set by this process at once.
#[derive(Default)]
pub(crate) struct QueueLimits(std::sync::Mutex<std::collections::HashMap<String, (Option<i32>, std::time::Instant)>>);

impl QueueLimits {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(5);

    pub(crate) fn get(&self, queue: &str) -> Option<Option<i32>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(queue).filter(|(_, at)| at.elapsed() < Self::FRESH).map(|(limit, _)| *limit)
    }

    pub(crate) fn put(&self, queue: &str, limit: Option<i32>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(queue.to_string(), (limit, std::time::Instant::now()));
    }

    pub(crate) fn forget(&self, queue: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(queue);
    }
}

/// The error for a write whose lease no longer holds.
pub fn lease_lost(lease: &Lease) -> quire_core::Error {
    quire_core::Error::Conflict(format!(
        "worker '{}' no longer holds attempt {} of context '{}'",
        lease.worker_id, lease.attempt, lease.context_id
    ))
}

/// Event rows for `events` of context `id`, numbered so that the last is `last_seq`.
pub(crate) fn event_rows(id: &str, last_seq: i64, events: &[(String, Value)]) -> Vec<(String, i64, String, String)> {
    let first = last_seq - events.len() as i64 + 1;
    events
        .iter()
        .enumerate()
        .map(|(i, (kind, data))| (id.to_string(), first + i as i64, kind.clone(), data.to_string()))
        .collect()
}

pub(crate) fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// An attempt's end as the row records it: its columns, and its events with the status
/// event last.
pub(crate) struct End<'a> {
    pub(crate) lease: &'a Lease,
    pub(crate) status: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) run_at: Option<i64>,
    pub(crate) finished: Option<i64>,
    pub(crate) processing: String,
    pub(crate) data: Option<String>,
    pub(crate) events: Vec<(String, Value)>,
}

impl<'a> End<'a> {
    pub(crate) fn new(f: &'a Finishing, now: i64) -> Self {
        let (status, error, run_at, finished) = match &f.outcome {
            Outcome::Completed => ("completed", None, None, Some(now)),
            Outcome::Retry { error, run_at } => ("retrying", Some(error), Some(*run_at), None),
            Outcome::Failed { error } => ("failed", Some(error), None, Some(now)),
            Outcome::Cancelled => ("cancelled", None, None, Some(now)),
        };
        let mut extra = serde_json::json!({ "attempt": f.lease.attempt });
        if let Some(e) = error {
            extra["error"] = serde_json::json!(e);
        }
        if let Some(r) = run_at {
            let rfc = quire_core::timestamp_from_ms(r).format(&time::format_description::well_known::Rfc3339);
            extra["run_at"] = serde_json::json!(rfc.unwrap_or_default());
        }
        let mut events = f.last.events.clone();
        events.push(status_event(status, extra));
        End {
            lease: &f.lease,
            status,
            error: error.map(|e| serde_json::json!(e).to_string()),
            run_at,
            finished,
            processing: serde_json::json!(f.processing).to_string(),
            data: f.last.data.as_ref().map(|d| serde_json::to_string(d).unwrap_or_default()),
            events,
        }
    }
}

/// Attempts' ends (all of one worker), for a backend's single-statement finish-and-claim.
pub(crate) struct FinishBatch<'a> {
    pub(crate) ends: &'a [End<'a>],
    pub(crate) queue: &'a str,
    pub(crate) max: u32,
    pub(crate) lease_ms: i64,
    pub(crate) now: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SeqJobRow {
    pub(crate) event_seq: i64,
    #[sqlx(flatten)]
    pub(crate) row: JobRow,
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyedJobRow {
    pub(crate) fingerprint: String,
    #[sqlx(flatten)]
    pub(crate) row: JobRow,
}
