//! Liveness, readiness and metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::App;
use crate::extract::Json;

/// `{"status":"ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    status: &'static str,
}

/// Liveness: the process serves requests. Checks no dependency.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Liveness)))]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// Overall readiness and one check per dependency.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `healthy`, `degraded` (an optional dependency is failing) or `down`.
    pub status: &'static str,
    /// By dependency: `database`, `redis`, `history.push` while a workspace's pushes fail,
    /// and `ai.<provider>` for each remote AI provider this process has called. Shown to
    /// instance admins only (they name workspaces and remotes); others see the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<String, Check>>,
}

/// One dependency's state.
#[derive(Serialize, ToSchema)]
pub struct Check {
    /// `healthy`, `degraded` (an AI provider failing lately) or `down`.
    pub status: &'static str,
    /// What the dependency is, e.g. `sqlite`, `postgres`, `redis` or `ai-provider`.
    pub kind: &'static str,
    /// How long the check took (0 for AI providers, read from their circuit breaker).
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Readiness: 200 when Quire can serve, 503 when a required dependency is down. The checks
/// behind the status are shown to an instance admin's token only.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(app): State<App>, crate::extract::MaybeActor(who): crate::extract::MaybeActor) -> Response {
    let store = app.store();
    let started = Instant::now();
    let result = match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 2 s".to_string()),
    };
    let database = Check {
        status: if result.is_ok() { "healthy" } else { "down" },
        kind: store.backend(),
        latency_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        error: result.err(),
    };
    let mut status = if database.status == "healthy" { "healthy" } else { "down" };
    let mut checks = BTreeMap::from([("database".to_string(), database)]);
    // Redis holds only rate counters: without it requests still pass, so it degrades.
    let started = Instant::now();
    let redis = match tokio::time::timeout(Duration::from_secs(2), app.rate_counters().ping()).await {
        Ok(r) => r,
        Err(_) => Some(Err("no answer within 2 s".to_string())),
    };
    if let Some(result) = redis {
        if result.is_err() && status == "healthy" {
            status = "degraded";
        }
        let check = Check {
            status: if result.is_ok() { "healthy" } else { "down" },
            kind: "redis",
            latency_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            error: result.err(),
        };
        checks.insert("redis".into(), check);
    }
    // A history push that keeps failing degrades readiness (edits go on; it is retried).
    if let Ok(failing) = app.history().failing_pushes().await
        && !failing.is_empty()
    {
        if status == "healthy" {
            status = "degraded";
        }
        let error = failing.iter().map(|(ws, e)| format!("{ws}: {e}")).collect::<Vec<_>>().join("; ");
        checks.insert(
            "history.push".into(),
            Check { status: "down", kind: "git-remote", latency_ms: 0.0, error: Some(error) },
        );
    }
    // AI providers are optional: one whose circuit is open degrades readiness, no more.
    for (name, circuit) in app.ai().circuits() {
        use quire_ai::resilience::Circuit;
        let (state, error) = match circuit {
            Circuit::Closed { failures: 0 } => ("healthy", None),
            Circuit::Closed { failures } => ("degraded", Some(format!("{failures} call(s) in a row failed"))),
            Circuit::Trying => ("degraded", Some("trying the provider again after its circuit opened".to_string())),
            Circuit::Open { until, failures, last_error } => {
                let left = until.saturating_duration_since(Instant::now()).as_secs();
                ("down", Some(format!("circuit open after {failures} failures ({last_error}); next try in {left} s")))
            }
        };
        if state != "healthy" && status == "healthy" {
            status = "degraded";
        }
        checks.insert(format!("ai.{name}"), Check { status: state, kind: "ai-provider", latency_ms: 0.0, error });
    }
    let code = if status == "down" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let checks = who.is_superuser().then_some(checks);
    (code, Json(Readiness { status, checks })).into_response()
}

/// Prometheus metrics in the text exposition format: requests by route, method and status,
/// their latency histograms, and process figures.
/// With a metrics token configured, scrapers send it as `Authorization: Bearer …`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String), (status = 401, body = crate::error::ErrorBody)))]
pub async fn metrics(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &app.config().metrics_token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| quire_auth::secrets_equal(g.as_bytes(), token.as_bytes()));
        if !ok {
            return crate::error::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the metrics token as 'Authorization: Bearer <token>'",
            )
            .into_response();
        }
    }
    let text = crate::metrics::render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
