//! Prometheus metrics: one process-wide recorder, a middleware that counts and times every
//! request by matched route, and process figures gathered at each scrape.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const DURATION: &str = "http_request_duration_seconds";
const REQUESTS: &str = "http_requests_total";
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

struct Registry {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only what reaches Quire's");
        }
        metrics::describe_counter!(REQUESTS, "HTTP requests served, by method, matched route and status");
        metrics::describe_histogram!(
            DURATION,
            metrics::Unit::Seconds,
            "Time to the response head, by method, matched route and status"
        );
        metrics::describe_counter!(
            "jobs_claims_total",
            "Claims workers asked of the job store (an idle worker: one per poll)"
        );
        metrics::describe_counter!("jobs_worker_wakeups_total", "Times a worker's loop woke up to look for work");
        let process = metrics_process::Collector::default();
        process.describe();
        Registry { handle, process }
    })
}

/// Installs the recorder; idempotent. Call before serving so the first requests count.
pub fn init() {
    registry();
}

/// The exposition text for `GET /metrics`.
pub fn render() -> String {
    let r = registry();
    r.process.collect();
    r.handle.run_upkeep();
    r.handle.render()
}

/// Counts and times each request under its matched route (`/api/v1/documents/{id}`, not the
/// raw path, so that label cardinality stays bounded).
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}
