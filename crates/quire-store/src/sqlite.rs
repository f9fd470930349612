//! The embedded default: SQLite in one file.

use std::str::FromStr;
use std::time::Duration;

use quire_core::{Error, Limits, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::watch;

use crate::StoreOptions;
use crate::rows::db_err;

/// The [`Store`](crate::Store) on SQLite: WAL journal, `synchronous=FULL`, foreign keys on.
/// Reads share a pool of read-only connections; writes go through one dedicated connection,
/// so writers queue fairly in the pool instead of sleeping in SQLite's busy handler (which
/// makes tail latency under concurrent writes a hundred times worse).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    limits: Limits,
    signal: watch::Sender<u64>,
    job_signal: watch::Sender<u64>,
    queue_limits: crate::jobs::QueueLimits,
}

impl SqliteStore {
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    /// SQLite has one writer at a time: event ids already commit in order.
    const OUTBOX_LOCK: Option<&'static str> = None;
    /// Every subscriber lives in this process and is ticked by `commit`.
    const OUTBOX_NOTIFY: Option<&'static str> = None;
    /// The one writer makes claims atomic: nothing to skip, nothing to lock.
    const CLAIM_SKIP_LOCKED: &'static str = "";
    const QUEUE_LOCK: Option<&'static str> = None;
    /// One writer: a write transaction already excludes every other.
    const DOC_LOCK: Option<&'static str> = None;
    /// One writer: recording an asset already excludes every other.
    const ASSET_LOCK: Option<&'static str> = None;
    const ROW_LOCK: &'static str = "";

    /// Opens (creating if needed, with its directory) the database file `url` names.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database_url", format!("not a SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = connect.get_filename().to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Unavailable(format!("cannot create the data directory {}: {e}", dir.display())))?;
        }
        let open = |max: u32, options: SqliteConnectOptions| {
            SqlitePoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(30)).connect_with(options)
        };
        let unavailable =
            |e: sqlx::Error| Error::Unavailable(format!("cannot open the SQLite database {}: {e}", path.display()));
        // The writer first: it creates the file and its WAL. Readers are opened read-only, so
        // a write sent to them by mistake fails at once instead of taking SQLite's write
        // lock behind the writer's back (and sleeping in the busy handler for it).
        let writer = open(1, connect.clone()).await.map_err(unavailable)?;
        let pool = open(options.max_connections.max(1), connect.read_only(true)).await.map_err(unavailable)?;
        Ok(SqliteStore {
            pool,
            writer,
            limits: options.limits,
            signal: watch::channel(0).0,
            job_signal: watch::channel(0).0,
            queue_limits: Default::default(),
        })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        // IMMEDIATE: the write lock is taken up front, never upgraded from a read lock.
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }

    /// Where single-statement writes go.
    fn writer_pool(&self) -> SqlitePool {
        self.writer.clone()
    }

    /// SQLite keeps the audit trail in one table.
    async fn prepare_audit_partitions(&self, _months: &[i64]) {}

    async fn drop_audit_partitions_before(&self, _before_ms: i64) -> Result<u64> {
        Ok(0)
    }

    /// SQLite finishes and claims in one transaction of several statements (its one writer
    /// makes that cheap); see `PgStore::finish_and_claim_at_once`.
    async fn finish_and_claim_at_once(
        &self,
        _batch: &crate::jobs::FinishBatch<'_>,
    ) -> Result<Option<(Vec<bool>, Vec<quire_core::Context>)>> {
        Ok(None)
    }

    /// Every follower of contexts lives in this process and is ticked by the commit.
    fn announce_jobs(&self) {}

    async fn close_pools(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

impl_store!(SqliteStore, Sqlite, "sqlite");
impl_identity_store!(SqliteStore, Sqlite);
impl_audit_store!(SqliteStore, Sqlite);
impl_ai_store!(SqliteStore, Sqlite);
impl_blob_store!(SqliteStore);
impl_build_log_store!(SqliteStore);
impl_asset_index!(SqliteStore);
impl_history_store!(SqliteStore, Sqlite);
impl_collab_store!(SqliteStore, Sqlite);
impl_job_store!(SqliteStore, Sqlite);
