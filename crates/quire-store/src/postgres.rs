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
        Ok(PgStore {
            pool,
            limits: options.limits,
            signal,
            job_signal,
            queue_limits: Default::default(),
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

    async fn close_pools(&self) {
        self.pool.close().await;
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
