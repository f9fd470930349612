//! The pipeline engine's enqueue and run rates on SQLite and PostgreSQL, and graphile-worker
//! on the same PostgreSQL in the same run.
//!
//! `cargo run --release -p quire-bench --bin jobs [-- N]` (N jobs per run figure, default
//! 5000). PostgreSQL is the one `QUIRE_TEST_DATABASE_URL` names (default: local `test`);
//! each run uses a fresh schema and a fresh SQLite file. graphile-worker runs from
//! `bench/jobs` (installed with `npm ci` on first use) in a schema of its own.
//!
//! Figures: enqueue one context per call (one caller), enqueue 100 per call, and run no-op
//! contexts (pipeline `["noop"]`) with 1 and with 4 at once, from the first claim until the
//! last is recorded completed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quire_core::{NewContext, NewWorkspace, Principal};
use quire_jobs::{Component, ComponentError, ComponentInfo, Engine, EngineConfig, Run, WorkerConfig};
use quire_store::testing::Backend;
use serde_json::{Map, Value};

/// Counts runs and wakes the bench at the target.
struct Count(Arc<AtomicUsize>, Arc<tokio::sync::Notify>, usize);

#[async_trait]
impl Component for Count {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("count", "Counts its runs", &[], &[])
    }
    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        if self.0.fetch_add(1, Ordering::SeqCst) + 1 == self.2 {
            self.1.notify_one();
        }
        Ok(Map::new())
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct Rates {
    enqueue_single_per_s: f64,
    enqueue_batch_per_s: f64,
    run1_per_s: f64,
    run4_per_s: f64,
    /// PostgreSQL's write-ahead log written per job in the run with 4 at once (bytes): what
    /// every commit must flush, and so what a queue on PostgreSQL pays for each job.
    #[serde(default)]
    run4_wal_per_job: f64,
}

async fn quire(backend: Backend, n: usize) -> Rates {
    let t = backend.open(Default::default()).await;
    let ws = t.store.create_workspace(&Principal::System, NewWorkspace { name: "Bench".into(), ..Default::default() });
    let ws = ws.await.unwrap().id;
    let engine = Engine::new(t.store.clone(), quire_jobs::components::builtin(), EngineConfig::default());
    let job = || NewContext::new("bench", &["noop"], Map::new());
    let single = (n / 5).max(100);
    let start = Instant::now();
    for _ in 0..single {
        engine.submit(&Principal::System, &ws, vec![job()]).await.unwrap();
    }
    let enqueue_single_per_s = single as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for first in (0..n).step_by(100) {
        let batch = (first..n.min(first + 100)).map(|_| job()).collect();
        engine.submit(&Principal::System, &ws, batch).await.unwrap();
    }
    let enqueue_batch_per_s = n as f64 / start.elapsed().as_secs_f64();
    // Each run figure starts from an empty table (a store of its own), as graphile-worker's
    // start from an empty schema.
    let (run1_per_s, _) = run_rate(backend, n, 1).await;
    let (run4_per_s, run4_wal_per_job) = run_rate(backend, n, 4).await;
    Rates { enqueue_single_per_s, enqueue_batch_per_s, run1_per_s, run4_per_s, run4_wal_per_job }
}

/// The server's current write-ahead log position, in bytes (PostgreSQL only).
async fn wal_position(backend: Backend) -> Option<i64> {
    if backend != Backend::Postgres {
        return None;
    }
    let pool = sqlx::PgPool::connect(&quire_store::testing::postgres_url()).await.ok()?;
    let at = sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetch_one(&pool).await;
    pool.close().await;
    at.ok()
}

/// Contexts per second through `["count"]` with `concurrency` at once, on a fresh store, and
/// the write-ahead log written per context meanwhile (0 on SQLite).
async fn run_rate(backend: Backend, n: usize, concurrency: usize) -> (f64, f64) {
    let t = backend.open(Default::default()).await;
    let ws = t.store.create_workspace(&Principal::System, NewWorkspace { name: "Bench".into(), ..Default::default() });
    let ws = ws.await.unwrap().id;
    let counted = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut registry = quire_jobs::components::builtin();
    registry.register(Count(counted.clone(), reached.clone(), n));
    let config = EngineConfig { poll_interval: Duration::from_millis(100), ..EngineConfig::default() };
    let engine = Engine::new(t.store.clone(), registry, config);
    for start in (0..n).step_by(100) {
        let batch = (start..n.min(start + 100)).map(|_| NewContext::new("bench", &["count"], Map::new())).collect();
        engine.submit(&Principal::System, &ws, batch).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = WorkerConfig { concurrency, schedules: false, ..Default::default() };
    let wal_before = wal_position(backend).await;
    let start = Instant::now();
    let handle = engine.start_worker(worker, stopped).await.unwrap();
    reached.notified().await;
    // The last component has run; wait until its context is recorded completed.
    let query = quire_core::ContextQuery {
        document: None,
        workspace: None,
        status: Some(quire_core::ContextStatus::Processing),
        kind: None,
        page: quire_core::PageRequest::parse(None, "-created_at", "type", Some(1), None, &Default::default()).unwrap(),
    };
    while !t.store.list_contexts(&Principal::System, &query).await.unwrap().items.is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let wal = match (wal_before, wal_position(backend).await) {
        (Some(a), Some(b)) => (b - a) as f64 / n as f64,
        _ => 0.0,
    };
    stop.send_replace(true);
    handle.join().await;
    (rate, wal)
}

fn graphile(url: &str, n: usize) -> Option<Rates> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
    if !dir.join("node_modules/graphile-worker").exists() {
        let ok = std::process::Command::new("npm").arg("ci").current_dir(&dir).status().map(|s| s.success());
        if !matches!(ok, Ok(true)) {
            eprintln!("npm ci in bench/jobs failed; graphile-worker is left out");
            return None;
        }
    }
    let out = std::process::Command::new("node")
        .arg("graphile.mjs")
        .arg(url)
        .arg(n.to_string())
        .current_dir(&dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("graphile-worker failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.lines().last()?).ok()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    println!("no-op jobs, N = {n}; rates in jobs per second (higher is better)\n");
    let sqlite = quire(Backend::Sqlite, n).await;
    let postgres = quire(Backend::Postgres, n).await;
    let peer = graphile(&quire_store::testing::postgres_url(), n).unwrap_or_default();
    println!("| figure | Quire SQLite | Quire PostgreSQL | graphile-worker 0.18 (PostgreSQL) | Quire PG / graphile |");
    println!("|---|---:|---:|---:|---:|");
    let rows = [
        ("enqueue, 1 per call", sqlite.enqueue_single_per_s, postgres.enqueue_single_per_s, peer.enqueue_single_per_s),
        ("enqueue, 100 per call", sqlite.enqueue_batch_per_s, postgres.enqueue_batch_per_s, peer.enqueue_batch_per_s),
        ("run, 1 at once", sqlite.run1_per_s, postgres.run1_per_s, peer.run1_per_s),
        ("run, 4 at once", sqlite.run4_per_s, postgres.run4_per_s, peer.run4_per_s),
    ];
    for (name, s, p, g) in rows {
        let ratio = if g > 0.0 { format!("{:.2}", p / g) } else { "–".into() };
        println!("| {name} | {s:.0} | {p:.0} | {g:.0} | {ratio} |");
    }
    let (p, g) = (postgres.run4_wal_per_job, peer.run4_wal_per_job);
    let ratio = if g > 0.0 { format!("{:.2}", p / g) } else { "–".into() };
    println!("| WAL bytes per job, 4 at once (lower is better) | – | {p:.0} | {g:.0} | {ratio} |");
}
