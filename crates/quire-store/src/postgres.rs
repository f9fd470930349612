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
    const OUTBOX_NOTIFY: Option<&'static str> = Some("SELECT pg_notify('quire_events', '')");
    /// Claimers pass over rows another claimer's transaction holds instead of waiting.
    const CLAIM_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// Serialises claims on a queue with a concurrency limit, so the running count holds.
    const QUEUE_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7421, hashtext($1))");

    /// Connects to the database `url` names and starts listening for other processes' events.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database_url", format!("not a PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| {
                Error::Unavailable(format!("cannot connect to PostgreSQL at {}: {e}", crate::redact_url(url)))
            })?;
        let signal = watch::channel(0).0;
        let job_signal = watch::channel(0).0;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(listen(pool.clone(), signal.clone(), job_signal.clone(), stop_rx));
        let jobs_changed = std::sync::Arc::new(tokio::sync::Notify::new());
        tokio::spawn(notify_jobs(pool.clone(), jobs_changed.clone()));
        Ok(PgStore {
            pool,
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

    /// Ends an attempt and claims the worker's next contexts from one queue in a single
    /// statement (one round trip, one commit): update the finished row (matching its
    /// lease), insert its events, claim with `SKIP LOCKED` only if the finish matched, and
    /// insert the claims' events. `Some` always: PostgreSQL has this path.
    async fn finish_and_claim_at_once(&self, f: &crate::jobs::Finish<'_>) -> Result<Option<Vec<quire_core::Context>>> {
        const SQL: &str = concat!(
            "WITH fin AS (UPDATE jobs SET status = $4, error = COALESCE($5, error), run_at = COALESCE($6, run_at), ",
            "finished_at = $7, processing = $8, lease_owner = NULL, lease_until = NULL, event_seq = event_seq + $10, ",
            "updated_at = $9, data = COALESCE($11, data) ",
            "WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'processing' RETURNING *), ",
            "fin_events AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) ",
            "SELECT fin.id, fin.event_seq - $10 + e.ord, e.kind, e.data, $9 FROM fin, ",
            "unnest($12::text[], $13::text[]) WITH ORDINALITY AS e(kind, data, ord)), ",
            "nxt AS (UPDATE jobs SET status = 'processing', lease_owner = $2, lease_until = $9 + $14, ",
            "attempts = attempts + 1, event_seq = event_seq + 1, updated_at = $9 ",
            "WHERE id IN (SELECT id FROM jobs WHERE queue = $15 AND status IN ('pending', 'retrying') AND run_at <= $9 ",
            "AND EXISTS (SELECT 1 FROM fin) ORDER BY priority DESC, run_at, id LIMIT $16 FOR UPDATE SKIP LOCKED) RETURNING *), ",
            "nxt_events AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) ",
            "SELECT nxt.id, nxt.event_seq, 'status', ",
            "json_build_object('attempt', nxt.attempts, 'status', 'processing', 'worker', $2::text)::text, $9 FROM nxt) ",
            "SELECT TRUE AS claimed, event_seq, ",
            job_columns!(),
            // The finished row only has to say that the lease held: placeholders, not its data.
            " FROM nxt UNION ALL SELECT FALSE, event_seq, id, '', '', '', '', '[]', '{}', NULL, NULL, NULL, 0, 0, 0, 0, ",
            "FALSE, NULL, '', 0, 0 FROM fin"
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            claimed: bool,
            #[sqlx(flatten)]
            job: crate::jobs::SeqJobRow,
        }
        let (kinds, datas): (Vec<String>, Vec<String>) =
            f.events.iter().map(|(k, d)| (k.clone(), d.to_string())).unzip();
        let rows: Vec<Row> = sqlx::query_as(SQL)
            .bind(&f.lease.context_id)
            .bind(&f.lease.worker_id)
            .bind(f.lease.attempt)
            .bind(f.status)
            .bind(f.error)
            .bind(f.run_at)
            .bind(f.finished)
            .bind(f.processing)
            .bind(f.now)
            .bind(f.events.len() as i64)
            .bind(f.data)
            .bind(kinds)
            .bind(datas)
            .bind(f.lease_ms)
            .bind(f.queue)
            .bind(i64::from(f.max))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        // The finished row only says that the lease held; it is not decoded.
        let mut finished = false;
        let mut claimed = Vec::new();
        for r in rows {
            if r.claimed {
                claimed.push(r.job.row.try_into()?);
            } else {
                finished = true;
            }
        }
        if !finished {
            return Err(crate::jobs::lease_lost(f.lease));
        }
        Ok(Some(claimed))
    }

    /// Contexts changed: other processes hear of it within [`NOTIFY_EVERY`].
    fn announce_jobs(&self) {
        self.jobs_changed.notify_one();
    }

    async fn close_pools(&self) {
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
        if let Err(e) = sqlx::query("SELECT pg_notify('quire_jobs', '')").execute(&pool).await {
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
            loop {
                let n = listener.recv().await?;
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
impl_collab_store!(PgStore, Postgres);
impl_job_store!(PgStore, Postgres);
