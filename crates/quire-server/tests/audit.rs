//! The audit trail over HTTP: what is recorded, filters, exports, and the drain on shutdown.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use common::{Api, assert_error};
use quire_store::testing::Backend;
use serde_json::{Value, json};

quire_store::for_each_backend!(changes_and_refusals_are_recorded, the_queue_is_drained_on_shutdown);

/// Waits until the audit trail holds at least `n` entries matching `query`.
async fn entries(api: &Api, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let r = api.get(&format!("/api/v1/audit?limit=200&{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().unwrap().clone();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} audit entries for {query}");
}

async fn changes_and_refusals_are_recorded(b: Backend) {
    let api = Api::new(b).await;
    let (ada_id, ada, _) = api.signup("ada@example.com").await;
    let ws = api.post("/api/v1/workspaces", json!({"name": "Audited"})).await;
    let ws_id = ws.body["id"].as_str().unwrap().to_string();
    let refused = api
        .call_as(Some(&ada), Method::PATCH, &format!("/api/v1/workspaces/{ws_id}"), Some(json!({"name": "Mine"})), &[])
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "not hers: she may not know it exists");
    let denied = api.call_as(Some(&ada), Method::GET, "/api/v1/users", None, &[]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let bad = api
        .call_as(
            Some("forged.token.here"),
            Method::GET,
            "/api/v1/workspaces",
            None,
            &[("user-agent", "=HYPERLINK(\"http://evil.example\",\"open\")")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    api.get("/api/v1/workspaces").await; // a successful read: not audited

    let all = entries(&api, "", 6).await;
    let find = |action: &str, status: u64| {
        all.iter()
            .find(|e| e["action"] == action && e["status"] == status)
            .unwrap_or_else(|| panic!("no {action} {status} in {all:?}"))
            .clone()
    };
    let created = find("POST /api/v1/workspaces", 201);
    assert_eq!(created["resource"], "/api/v1/workspaces");
    assert_eq!(created["summary"], json!({"fields": ["name"], "id": ws_id}));
    assert!(created["request_id"].as_str().is_some_and(|r| r.len() == 36));
    assert!(created["duration_ms"].is_u64());
    let signup = find("POST /api/v1/auth/signup", 201);
    assert_eq!(signup["summary"]["fields"], json!(["email", "name", "password"]));
    assert!(!signup.to_string().contains("correct horse battery"), "passwords are never recorded");
    let patch = find("PATCH /api/v1/workspaces/{ws}", 404);
    assert_eq!(
        (patch["actor"].as_str(), patch["summary"]["error"].as_str()),
        (Some(ada_id.as_str()), Some("not_found"))
    );
    assert_eq!(find("GET /api/v1/users", 403)["actor"], json!(ada_id));
    assert_eq!(find("GET /api/v1/workspaces", 401)["actor"], "anonymous");
    assert!(all.iter().all(|e| !(e["action"] == "GET /api/v1/workspaces" && e["status"] == 200)));

    // Filters and paging.
    let hers = entries(&api, &format!("actor={ada_id}"), 2).await;
    assert!(hers.iter().all(|e| e["actor"] == json!(ada_id)));
    let posts = entries(&api, "action=POST%20/api/v1/auth", 2).await;
    assert!(posts.iter().all(|e| e["action"].as_str().unwrap().starts_with("POST /api/v1/auth")));
    let page = api.get("/api/v1/audit?limit=2").await;
    let next = page.body["next_cursor"].as_str().unwrap();
    let page2 = api.get(&format!("/api/v1/audit?limit=2&cursor={next}")).await;
    assert_ne!(page.body["items"][0]["id"], page2.body["items"][0]["id"]);
    assert_error(
        &api.call_as(Some(&ada), Method::GET, "/api/v1/audit", None, &[]).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(&api.get("/api/v1/audit?format=xml").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_error(&api.get("/api/v1/audit?since=yesterday").await, StatusCode::BAD_REQUEST, "invalid_query");

    // Exports.
    let jsonl = api.get("/api/v1/audit?format=jsonl").await;
    assert_eq!(jsonl.headers[header::CONTENT_TYPE], "application/x-ndjson");
    assert!(jsonl.headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("quire-audit.jsonl"));
    let text = jsonl.body.as_str().unwrap();
    assert!(text.lines().count() >= 6 && text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    let csv = api.get("/api/v1/audit?format=csv&limit=3").await;
    assert!(csv.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let text = csv.body.as_str().unwrap();
    assert!(text.starts_with("id,at,actor,action,resource,status"));
    assert_eq!(text.lines().count(), 4, "a header and three rows");
    // A cell a spreadsheet would run as a formula is written as text.
    let all_csv = api.get("/api/v1/audit?format=csv&limit=200").await;
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(all_csv.body.as_str().unwrap().as_bytes()).records().map(Result::unwrap).collect();
    let agents: Vec<&str> = rows.iter().map(|r| &r[7]).collect();
    assert!(agents.contains(&"'=HYPERLINK(\"http://evil.example\",\"open\")"), "{agents:?}");
    assert!(rows.iter().all(|r| r.iter().all(|c| !c.starts_with(['=', '+', '-', '@']))), "{rows:?}");
}

async fn the_queue_is_drained_on_shutdown(b: Backend) {
    let api = Api::new(b).await;
    for i in 0..20 {
        api.post("/api/v1/workspaces", json!({"name": format!("W{i}")})).await;
    }
    // Shutting down stores what is queued (batch.rs tests it with entries still queued;
    // here, that the app's audit queue is the one drained).
    let creates = api.drained_audit().await.iter().filter(|e| e.action == "POST /api/v1/workspaces").count();
    assert_eq!(creates, 20);
}
