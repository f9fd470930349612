//! Test helpers: a fresh, migrated store per test, on SQLite (a temporary file) or
//! PostgreSQL (a schema of its own in the database `QUIRE_TEST_DATABASE_URL` names,
//! default `postgres://postgres@127.0.0.1:5432/test`), so tests run in parallel.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Store, StoreOptions};

/// The PostgreSQL database tests use.
pub fn postgres_url() -> String {
    std::env::var("QUIRE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A store for one test, with the database URL that reaches the same data; the SQLite file
/// is removed when it is dropped, PostgreSQL schemas are swept by later runs.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: String,
    dir: Option<PathBuf>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Expands each named `async fn name(backend: Backend)` into two tests, `sqlite::name` and
/// `postgres::name`, so one suite covers both backends.
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::testing::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::testing::Backend::Postgres).await } )*
        }
    };
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh, migrated store of this backend.
    pub async fn open(self, options: StoreOptions) -> TestStore {
        match self {
            Backend::Sqlite => sqlite(options).await,
            Backend::Postgres => postgres(options).await,
        }
    }
}

/// A fresh, migrated SQLite store in a temporary directory.
pub async fn sqlite(options: StoreOptions) -> TestStore {
    let dir = std::env::temp_dir().join(quire_core::new_id("quire-test"));
    let url = format!("sqlite://{}/quire.db", dir.display());
    let store = crate::connect(&url, options).await.expect("open SQLite");
    store.migrate().await.expect("migrate SQLite");
    TestStore { store, url, dir: Some(dir) }
}

/// A fresh, migrated PostgreSQL store in a schema of its own. Its pools are small (4, and
/// up to 4 for generic plans): tests run side by side, each with its own store, and the
/// server's `max_connections` (100 by default) is shared by all of them.
pub async fn postgres(options: StoreOptions) -> TestStore {
    let url = empty_postgres_schema().await;
    let store = crate::connect(&url, StoreOptions { max_connections: 4, ..options }).await.expect("open PostgreSQL");
    store.migrate().await.expect("migrate PostgreSQL");
    TestStore { store, url, dir: None }
}

/// The URL of a new, empty PostgreSQL schema (nothing migrated), for tests of migration.
pub async fn empty_postgres_schema() -> String {
    let base = postgres_url();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed for the storage tests and was not reachable at {base}: {e}. \
             Start it (bash .ci/run does) or point QUIRE_TEST_DATABASE_URL at one."
        )
    });
    let now = quire_core::now_ms();
    let schema = format!("qt_{now}_{}", &quire_core::new_id("x")[20..]);
    // Sweep schemas that earlier runs left behind (older than an hour).
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'qt\\_%' AND split_part(nspname, '_', 2)::bigint < $1",
    )
    .bind(now - 3_600_000)
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for s in old {
        let _ =
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {s} CASCADE"))).execute(&mut admin).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
