//! PostgreSQL, for several Quire processes sharing one database.

use std::str::FromStr;
use std::time::Duration;

use quire_core::{Error, Limits, Result};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::watch;

use crate::StoreOptions;
use crate::rows::db_err;

/// The channel on which event inserts wake every process's subscribers.
const CHANNEL: &str = "quire_events";
/// The channel on which context changes wake workers and context streams.
const JOBS_CHANNEL: &str = "quire_jobs";

/// The [`Store`](crate::Store) on PostgreSQL. Event inserts take a transaction-scoped
/// advisory lock, so event ids become visible in increasing order (a consumer that resumes
/// after id N never skips an event committed later with a smaller id), and send
/// `NOTIFY quire_events` so other processes' streams wake at once.
pub struct PgStore {
    pool: PgPool,
    /// Connections that plan each statement once (`plan_cache_mode = force_generic_plan`),
    /// for the finish-and-claim statement: its array parameters make PostgreSQL's default
    /// choice re-plan it on every call, which took longer than running it.
    generic_plans: PgPool,
    limits: Limits,
    signal: watch::Sender<u64>,
    job_signal: watch::Sender<u64>,
    queue_limits: crate::jobs::QueueLimits,
    /// Asks the notifier task to tell other processes that contexts changed.
    jobs_changed: std::sync::Arc<tokio::sync::Notify>,
    /// Dropping the store drops this and stops the listener task.
    _stop_listener: tokio::sync::oneshot::Sender<()>,
}

impl PgStore {
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    /// Serialises event inserts until commit; taken last in a transaction, held briefly.
    const OUTBOX_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7420)");
    /// The payload names the schema: processes of another Quire sharing the database (in
    /// another schema) are not woken.
    const OUTBOX_NOTIFY: Option<&'static str> = Some("SELECT pg_notify('quire_events', current_schema())");
    /// Claimers pass over rows another claimer's transaction holds instead of waiting.
    const CLAIM_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// Serialises claims on a queue with a concurrency limit, so the running count holds.
    const QUEUE_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7421, hashtext($1))");
    /// Serialises a document's log appends and its compaction, so that no update can take a
    /// sequence number a snapshot already covers.
    const DOC_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7422, hashtext($1))");
    /// Serialises asset recording per workspace, so the quota holds.
    const ASSET_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7423, hashtext($1))");
    /// Statements that update several of a worker's rows lock them first, in id order.
    const ROW_LOCK: &'static str = " FOR UPDATE";

    /// Connects to the database `url` names and starts listening for other processes' events.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database_url", format!("not a PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect.clone())
            .await
            .map_err(|e| {
                Error::Unavailable(format!("cannot connect to PostgreSQL at {}: {e}", crate::redact_url(url)))
            })?;
        let generic_plans = PgPoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 4))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect.options([("plan_cache_mode", "force_generic_plan")]));
        let signal = watch::channel(0).0;
        let job_signal = watch::channel(0).0;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(listen(pool.clone(), signal.clone(), job_signal.clone(), stop_rx));
        let jobs_changed = std::sync::Arc::new(tokio::sync::Notify::new());
        tokio::spawn(notify_jobs(pool.clone(), jobs_changed.clone()));
        Ok(PgStore {
            pool,
            generic_plans,
            limits: options.limits,
            signal,
            job_signal,
            queue_limits: Default::default(),
            jobs_changed,
            _stop_listener: stop_tx,
        })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }

    /// Where single-statement writes go.
    fn writer_pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Creates the monthly partitions of the audit trail for these times, if missing. A
    /// failure is only logged: rows then land in the default partition.
    async fn prepare_audit_partitions(&self, months: &[i64]) {
        for ms in months {
            let (start, end, suffix) = crate::audit::month_of(*ms);
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS audit_log_{suffix} PARTITION OF audit_log FOR VALUES FROM ({start}) TO ({end})"
            );
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&self.pool).await {
                tracing::warn!(error = %e, partition = %suffix, "creating an audit partition failed; using the default one");
            }
        }
    }

    /// Drops monthly partitions that end at or before `before_ms`; returns their row count.
    async fn drop_audit_partitions_before(&self, before_ms: i64) -> Result<u64> {
        let parts: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'audit_log' AND p.relnamespace = current_schema()::regnamespace AND c.relname <> 'audit_log_default'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut dropped = 0;
        for name in parts {
            let Some(suffix) = name.strip_prefix("audit_log_y") else { continue };
            let Some((y, m)) = suffix.split_once('m') else { continue };
            let (Ok(y), Ok(m)) = (y.parse::<i32>(), m.parse::<u8>()) else { continue };
            let Ok(month) = time::Month::try_from(m) else { continue };
            let Ok(first) = time::Date::from_calendar_date(y, month, 1) else { continue };
            let (_, end, _) = crate::audit::month_of(first.midnight().assume_utc().unix_timestamp() * 1000);
            if end <= before_ms {
                let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {name}")))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err)?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {name}")))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                dropped += rows as u64;
            }
        }
        Ok(dropped)
    }

    /// Ends attempts and claims the worker's next contexts from one queue in a single
    /// statement (one round trip, one commit): lock the finished rows in id order (as the
    /// heartbeat does), update those whose lease held, insert their events, claim with
    /// `SKIP LOCKED` at most one context per end recorded, and insert the claims' events.
    /// `Some` always: PostgreSQL has this path.
    async fn finish_and_claim_at_once(
        &self,
        b: &crate::jobs::FinishBatch<'_>,
    ) -> Result<Option<(Vec<bool>, Vec<quire_core::Context>)>> {
        const SQL: &str = concat!(
            "WITH f AS (SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::int8[], ",
            "$7::text[], $8::text[], $9::int8[]) AS f(id, claim, status, error, run_at, finished, processing, data, n_events)), ",
            // Locked by id alone (only the primary key can serve that), and the lease checked on
            // the locked row: with the lease in an UPDATE's own WHERE the planner may scan a
            // partial index full of entries for rows long finished.
            "locked AS (SELECT id, lease_owner, claims, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE), ",
            "fin AS (UPDATE jobs j SET status = f.status, error = COALESCE(f.error, j.error), run_at = COALESCE(f.run_at, j.run_at), ",
            "finished_at = f.finished, processing = f.processing, lease_owner = NULL, lease_until = NULL, ",
            "event_seq = j.event_seq + f.n_events, updated_at = $10, data = COALESCE(f.data, j.data) ",
            "FROM locked l JOIN f ON f.id = l.id WHERE j.id = l.id AND l.lease_owner = $11 ",
            "AND l.claims = f.claim AND l.status = 'processing' RETURNING j.id, j.event_seq, f.n_events), ",
            "fin_events AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) ",
            "SELECT fin.id, fin.event_seq - fin.n_events + e.ord, e.kind, e.data, $10 FROM fin ",
            "JOIN unnest($12::text[], $13::int8[], $14::text[], $15::text[]) AS e(id, ord, kind, data) ON e.id = fin.id), ",
            "nxt AS (UPDATE jobs SET status = 'processing', lease_owner = $11, lease_until = $10 + $16, ",
            "attempts = attempts + 1, claims = claims + 1, event_seq = event_seq + 1, updated_at = $10 ",
            "WHERE id IN (SELECT id FROM jobs WHERE queue = $17 AND status IN ('pending', 'retrying') AND run_at <= $10 ",
            "ORDER BY priority DESC, run_at, id LIMIT LEAST($18, (SELECT count(*) FROM fin)) FOR UPDATE SKIP LOCKED) RETURNING *), ",
            "nxt_events AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) ",
            "SELECT nxt.id, nxt.event_seq, 'status', ",
            "json_build_object('attempt', nxt.attempts, 'status', 'processing', 'worker', $11::text)::text, $10 FROM nxt) ",
            "SELECT TRUE AS claimed, event_seq, ",
            job_columns!(),
            // A finished row only has to say that its lease held: its id, not its data.
            " FROM nxt UNION ALL SELECT FALSE, event_seq, id, '', '', '', '', '[]', '{}', NULL, NULL, NULL, 0, 0, 0, 0, ",
            "FALSE, NULL, '', 0, 0, 0, NULL::int8, NULL::text FROM fin"
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            claimed: bool,
            #[sqlx(flatten)]
            job: crate::jobs::SeqJobRow,
        }
        let ends = b.ends;
        let mut events: (Vec<&str>, Vec<i64>, Vec<&str>, Vec<String>) = Default::default();
        for end in ends {
            for (ord, (kind, data)) in end.events.iter().enumerate() {
                events.0.push(&end.lease.context_id);
                events.1.push(ord as i64 + 1);
                events.2.push(kind);
                events.3.push(data.to_string());
            }
        }
        let worker = &ends[0].lease.worker_id;
        let rows: Vec<Row> = sqlx::query_as(SQL)
            .bind(ends.iter().map(|e| e.lease.context_id.as_str()).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.lease.claim).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.status).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.error.as_deref()).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.run_at).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.finished).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.processing.as_str()).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.data.as_deref()).collect::<Vec<_>>())
            .bind(ends.iter().map(|e| e.events.len() as i64).collect::<Vec<_>>())
            .bind(b.now)
            .bind(worker)
            .bind(events.0)
            .bind(events.1)
            .bind(events.2)
            .bind(events.3)
            .bind(b.lease_ms)
            .bind(b.queue)
            .bind(i64::from(b.max))
            .fetch_all(&self.generic_plans)
            .await
            .map_err(db_err)?;
        // A finished row only says that its lease held; it is not decoded.
        let mut held = vec![false; ends.len()];
        let mut claimed = Vec::new();
        for r in rows {
            if r.claimed {
                claimed.push(r.job.row.try_into()?);
            } else if let Some(i) = ends.iter().position(|e| e.lease.context_id == r.job.row.id) {
                held[i] = true;
            }
        }
        Ok(Some((held, claimed)))
    }

    /// Contexts changed: other processes hear of it within [`NOTIFY_EVERY`].
    fn announce_jobs(&self) {
        self.jobs_changed.notify_one();
    }

    async fn close_pools(&self) {
        self.generic_plans.close().await;
        self.pool.close().await;
    }
}

/// At most one `NOTIFY quire_jobs` per this interval, however many contexts change: a busy
/// worker commits hundreds of times a second, and a notification per commit would cost
/// every listening process (and PostgreSQL) more than the work itself.
const NOTIFY_EVERY: Duration = Duration::from_millis(20);

/// Sends `NOTIFY quire_jobs` when asked, at once if it has been quiet, else at the end of
/// the current interval; stops when the store is dropped.
async fn notify_jobs(pool: PgPool, changed: std::sync::Arc<tokio::sync::Notify>) {
    loop {
        // The store may go away while this waits: look now and then whether it has.
        if tokio::time::timeout(Duration::from_secs(5), changed.notified()).await.is_err() {
            if std::sync::Arc::strong_count(&changed) == 1 {
                return;
            }
            continue;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify('quire_jobs', current_schema())").execute(&pool).await {
            tracing::warn!(error = %e, "notifying other processes of context changes failed; they will poll");
        }
        tokio::time::sleep(NOTIFY_EVERY).await;
    }
}

/// Ticks `signal` (outbox) or `jobs` (contexts) on every notification; reconnects with
/// backoff until the store is dropped. Streams and workers also poll, so a lost listener
/// only delays wake-ups, never loses anything.
async fn listen(
    pool: PgPool,
    signal: watch::Sender<u64>,
    jobs: watch::Sender<u64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let session = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen_all([CHANNEL, JOBS_CHANNEL]).await?;
            let schema: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(&pool).await?;
            loop {
                let n = listener.recv().await?;
                if n.payload() != schema {
                    // Another schema's Quire.
                    continue;
                }
                let target = if n.channel() == JOBS_CHANNEL { &jobs } else { &signal };
                target.send_modify(|n| *n = n.wrapping_add(1));
            }
        };
        let result: Result<(), sqlx::Error> = tokio::select! {
            _ = &mut stop => return,
            r = session => r,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

impl_store!(PgStore, Postgres, "postgres");
impl_identity_store!(PgStore, Postgres);
impl_audit_store!(PgStore, Postgres);
impl_ai_store!(PgStore, Postgres);
impl_blob_store!(PgStore);
impl_build_log_store!(PgStore);
impl_asset_index!(PgStore);
impl_history_store!(PgStore, Postgres);
impl_collab_store!(PgStore, Postgres);
impl_job_store!(PgStore, Postgres);
