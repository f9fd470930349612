//! The embedded default: SQLite in one file.

use std::str::FromStr;
use std::time::Duration;

use quire_core::{Error, Limits, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::watch;

use crate::StoreOptions;
use crate::rows::db_err;

/// The [`Store`](crate::Store) on SQLite: WAL journal, `synchronous=FULL`, foreign keys on,
/// writers serialised by `BEGIN IMMEDIATE` with a busy timeout.
pub struct SqliteStore {
    pool: SqlitePool,
    limits: Limits,
    signal: watch::Sender<u64>,
}

impl SqliteStore {
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    /// SQLite has one writer at a time: event ids already commit in order.
    const OUTBOX_LOCK: Option<&'static str> = None;
    /// Every subscriber lives in this process and is ticked by `commit`.
    const OUTBOX_NOTIFY: Option<&'static str> = None;

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
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Unavailable(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "cannot open the SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        Ok(SqliteStore {
            pool,
            limits: options.limits,
            signal: watch::channel(0).0,
        })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }
}

impl_store!(SqliteStore, Sqlite, "sqlite");
