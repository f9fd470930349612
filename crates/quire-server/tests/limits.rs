//! Rate limits over HTTP: headers on every counted response, 429 past the limit, budgets
//! per caller and per route class.

mod common;

use axum::http::{Method, StatusCode, header};
use common::{Api, assert_error};
use quire_server::ServerConfig;
use quire_server::ratelimit::{RateLimits, parse_windows};
use quire_store::StoreOptions;
use quire_store::testing::Backend;

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_count_callers_apart() {
    let rate_limits = RateLimits {
        // Hour and day windows: a minute boundary falling mid-test must not reset counts.
        default: parse_windows("3/h,1000/day").unwrap(),
        auth: parse_windows("4/h").unwrap(),
        ai: parse_windows("off").unwrap(),
    };
    let api =
        Api::with(Backend::Sqlite, StoreOptions::default(), ServerConfig { rate_limits, ..ServerConfig::default() })
            .await;
    // The harness's sign-up was one auth request; this is the second.
    let (_, other, _) = api.signup("other@example.com").await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = api.get("/api/v1/workspaces").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-ratelimit-limit"], "3", "the hour window is the tightest");
        remaining.push(r.headers["x-ratelimit-remaining"].to_str().unwrap().to_string());
        let reset: u64 = r.headers["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert_eq!(reset % 3600, 0, "resets at the window's end");
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let over = api.get("/api/v1/workspaces").await;
    assert_error(&over, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = over.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait));
    assert_eq!(over.headers["x-ratelimit-remaining"], "0");
    // Another caller has a budget of its own; health checks are never limited.
    assert_eq!(api.call_as(Some(&other), Method::GET, "/api/v1/workspaces", None, &[]).await.status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(api.call_as(None, Method::GET, "/healthz", None, &[]).await.status, StatusCode::OK);
    }
    // Sign-in routes have their own, tighter budget, counted by address.
    let login = serde_json::json!({"email": "other@example.com", "password": "correct horse battery"});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login.clone()), &[]).await.status.as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 429]);
}

/// Guessing bearer tokens is limited by address like guessing passwords, and a flood of
/// refusals leaves one audit entry per kind of answer, not one per request.
#[tokio::test]
async fn bad_tokens_are_rate_limited_and_a_flood_is_audited_once() {
    let rate_limits = RateLimits {
        default: parse_windows("off").unwrap(),
        auth: parse_windows("3/h").unwrap(),
        ai: parse_windows("off").unwrap(),
    };
    let api =
        Api::with(Backend::Sqlite, StoreOptions::default(), ServerConfig { rate_limits, ..ServerConfig::default() })
            .await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let r = api.call_as(Some(&format!("guess.{i}.token")), Method::GET, "/api/v1/workspaces", None, &[]).await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses[..4], [401, 401, 401, 429], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");
    // The harness's own token still works: the budget is for refused credentials.
    assert_eq!(api.get("/api/v1/workspaces").await.status, StatusCode::OK);

    let audited = api.drained_audit().await;
    let refused: Vec<u16> = audited.iter().filter(|e| e.action == "GET /api/v1/workspaces").map(|e| e.status).collect();
    assert_eq!(refused.iter().filter(|s| **s == 401).count(), 3, "{refused:?}");
    assert_eq!(refused.iter().filter(|s| **s == 429).count(), 1, "{refused:?}");
}
