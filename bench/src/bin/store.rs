//! Store throughput and latency on SQLite and PostgreSQL, side by side.
//!
//! `cargo run --release -p quire-bench --bin store [-- N]` (N documents, default 2000).
//! PostgreSQL is the one `QUIRE_TEST_DATABASE_URL` names (default: local `test`); each run
//! uses a fresh schema and a fresh SQLite file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_core::{DocumentKind, DocumentQuery, EventFilter, Limits, NewDocument, NewWorkspace, Principal};
use quire_store::testing::Backend;
use quire_store::{Store, StoreOptions};

const ME: Principal = Principal::Anonymous;

struct Figure {
    name: &'static str,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figure {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
    }
}

async fn timed<F, Fut>(name: &'static str, ops: usize, mut f: F) -> Figure
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        f(i).await;
        latencies.push(t.elapsed());
    }
    Figure { name, ops, elapsed: start.elapsed(), latencies }
}

async fn run(backend: Backend, n: usize) -> Vec<Figure> {
    let limits = Limits { max_documents_per_workspace: 10_000_000, ..Limits::default() };
    let t = backend.open(StoreOptions { limits, max_connections: 16 }).await;
    let s: Arc<dyn Store> = t.store.clone();
    let ws = s.create_workspace(&ME, NewWorkspace { name: "Bench".into(), ..Default::default() }).await.unwrap();
    let new = |i: usize| NewDocument {
        kind: DocumentKind::Prd,
        title: format!("Document {i:06}"),
        metadata: Some(serde_json::json!({"owner": "bench", "n": i})),
    };
    let mut ids = Vec::with_capacity(n);
    let mut figures = Vec::new();

    let created = {
        let mut latencies = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            ids.push(s.create_document(&ME, &ws.id, new(i)).await.unwrap().id);
            latencies.push(t.elapsed());
        }
        Figure { name: "create (1 writer)", ops: n, elapsed: start.elapsed(), latencies }
    };
    figures.push(created);

    // 8 concurrent writers, n documents in all.
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            let ws = ws.id.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in (w..n).step_by(8) {
                    let t = Instant::now();
                    let doc = NewDocument {
                        kind: DocumentKind::Moodboard,
                        title: format!("Concurrent {i:06}"),
                        metadata: None,
                    };
                    s.create_document(&ME, &ws, doc).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    figures.push(Figure { name: "create (8 writers)", ops: n, elapsed: start.elapsed(), latencies });

    if backend == Backend::Postgres {
        // As autovacuum would soon: without statistics for the freshly filled table the
        // planner sorts instead of walking the index backwards.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&t.url).await.unwrap();
        sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    }
    figures.push(
        timed("get by id", n, |i| {
            let (s, id) = (s.clone(), ids[(i * 7919) % ids.len()].clone());
            async move {
                s.get_document(&ME, &id, false).await.unwrap();
            }
        })
        .await,
    );
    figures.push(
        timed("update title", n, |i| {
            let (s, id) = (s.clone(), ids[(i * 104_729) % ids.len()].clone());
            async move {
                let patch = quire_core::DocumentPatch { title: Some(format!("Renamed {i}")), metadata: None };
                s.update_document(&ME, &id, patch, None).await.unwrap();
            }
        })
        .await,
    );
    let pages = (n / 10).max(10);
    figures.push(
        timed("list first page (50)", pages, |_| {
            let (s, ws) = (s.clone(), ws.id.clone());
            async move {
                let q = DocumentQuery::new(None, None, None, None, None, false, &Limits::default()).unwrap();
                assert_eq!(s.list_documents(&ME, &ws, &q).await.unwrap().items.len(), 50);
            }
        })
        .await,
    );
    // Walk every page by title: each page must cost the same however deep it is.
    let mut cursor: Option<String> = None;
    let mut latencies = Vec::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let q = DocumentQuery::new(None, None, Some("title"), Some(50), cursor.as_deref(), false, &Limits::default())
            .unwrap();
        let page = s.list_documents(&ME, &ws.id, &q).await.unwrap();
        latencies.push(t.elapsed());
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    figures.push(Figure { name: "walk all pages by title", ops: latencies.len(), elapsed: start.elapsed(), latencies });
    figures.push(
        timed("read 256 events", pages, |i| {
            let s = s.clone();
            async move {
                let after = ((i * 256) % (n * 2)) as i64;
                s.events_after(&ME, after, &EventFilter::default(), 256).await.unwrap();
            }
        })
        .await,
    );
    figures
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    println!("Quire store benchmark: {n} documents per backend (release build: {})", !cfg!(debug_assertions));
    let sqlite = run(Backend::Sqlite, n).await;
    let postgres = run(Backend::Postgres, n).await;
    println!(
        "{:<26} {:>12} {:>9} {:>9} {:>12} {:>9} {:>9} {:>10}",
        "operation", "sqlite op/s", "p50", "p99", "postgres op/s", "p50", "p99", "pg/sqlite"
    );
    for (a, b) in sqlite.iter().zip(&postgres) {
        println!(
            "{:<26} {:>12.0} {:>9.2?} {:>9.2?} {:>12.0} {:>9.2?} {:>9.2?} {:>9.2}x",
            a.name,
            a.per_sec(),
            a.percentile(0.5),
            a.percentile(0.99),
            b.per_sec(),
            b.percentile(0.5),
            b.percentile(0.99),
            b.per_sec() / a.per_sec()
        );
    }
    println!("peak RSS: {:.1} MiB", peak_rss_mib());
}
