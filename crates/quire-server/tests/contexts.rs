//! The contexts API over HTTP, on SQLite and PostgreSQL: submit, follow (poll and SSE),
//! list, cancel, retry, idempotency, templates, components, workers and every refusal.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, Reply, assert_error};
use http_body_util::BodyExt;
use quire_store::testing::Backend;
use serde_json::{Value, json};
use tower::ServiceExt;

quire_store::for_each_backend!(
    a_context_runs_and_streams_its_events,
    bad_submissions_are_refused_with_reasons,
    idempotent_submissions_and_batches,
    cancel_and_retry_over_http,
    templates_components_and_workers,
    contexts_belong_to_their_workspace,
    pipelines_stay_inside_their_workspace,
);

struct Setup {
    api: Api,
    ws: String,
    _worker: quire_jobs::WorkerHandle,
}

async fn setup(b: Backend) -> Setup {
    let mut config = common::relaxed();
    config.jobs.poll_interval = Duration::from_millis(20);
    config.jobs.cancel_check = Duration::from_millis(50);
    let api = Api::with(b, Default::default(), config).await;
    let r = api.post("/api/v1/workspaces", json!({"name": "Pipelines"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ws = r.body["id"].as_str().unwrap().to_string();
    let worker = quire_jobs::WorkerConfig { schedules: false, grace: Duration::from_millis(200), ..Default::default() };
    let worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();
    Setup { api, ws, _worker: worker }
}

impl Setup {
    async fn until(&self, id: &str, status: &str) -> Value {
        self.until_where(id, status, |c| c["status"] == status).await
    }

    /// Until the context is in `component` (its start is written once it has run a moment).
    async fn until_in(&self, id: &str, component: &str) -> Value {
        self.until_where(id, component, |c| c["processing"]["current_component"] == component).await
    }

    async fn until_where(&self, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1000 {
            let r = self.api.get(&format!("/api/v1/contexts/{id}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if ok(&r.body) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("context {id} never became {what}");
    }
}

/// The frames of a finished SSE body: (id, event, data).
async fn sse(api: &Api, uri: &str, headers: &[(&str, &str)]) -> Vec<(i64, String, Value)> {
    let mut req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {}", api.admin));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let bytes = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
        .await
        .expect("the stream ends once the context has ended")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    text.split("\n\n")
        .filter(|f| f.contains("data:"))
        .map(|frame| {
            let field = |name: &str| {
                frame.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
            };
            (field("id:").parse().unwrap(), field("event:"), serde_json::from_str(&field("data:")).unwrap())
        })
        .collect()
}

async fn a_context_runs_and_streams_its_events(b: Backend) {
    let s = setup(b).await;
    let body = json!({
        "workspace": s.ws, "type": "article", "pipeline": ["template", "wait", "transformer"],
        "data": {"title": "Example Article", "tone": "technical", "wait_ms": 50,
                 "generated_content": {"introduction": "Hello there.", "conclusion": "Bye now."}}
    });
    let r = s.api.post("/api/v1/contexts", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ctx_"));
    assert_eq!(r.headers[header::LOCATION], format!("/api/v1/contexts/{id}").as_str());
    assert_eq!((r.body["status"].as_str(), r.body["type"].as_str()), (Some("pending"), Some("article")));
    assert_eq!(r.body["pipeline"], json!(["template", "wait", "transformer"]));

    let done = s.until(&id, "completed").await;
    assert_eq!(done["data"]["template"]["id"], "tmpl_article_technical");
    let f = &done["data"]["formatted_content"];
    assert_eq!(f["content"], "# Example Article\n\n## Introduction\n\nHello there.\n\n## Conclusion\n\nBye now.");
    assert_eq!((f["word_count"].as_i64(), f["reading_time"].as_str()), (Some(8), Some("1 minute")));
    assert_eq!(done["processing"]["completed_components"], json!(["template", "wait", "transformer"]));
    assert!(done["processing"]["duration_ms"].is_i64() && done["processing"]["end_time"].is_string());

    // The stream replays everything from the submission and ends with the final status.
    let frames = sse(&s.api, &format!("/api/v1/contexts/{id}/events"), &[]).await;
    let ids: Vec<i64> = frames.iter().map(|f| f.0).collect();
    assert_eq!(ids, (1..=frames.len() as i64).collect::<Vec<_>>());
    assert_eq!((frames[0].1.as_str(), frames[0].2["data"]["status"].as_str()), ("status", Some("pending")));
    let last = frames.last().unwrap();
    assert_eq!((last.1.as_str(), last.2["data"]["status"].as_str()), ("status", Some("completed")));
    assert_eq!(frames.iter().filter(|f| f.1 == "progress").count(), 10, "the wait reports its progress");
    // Resuming after an id sends only what follows it.
    let resumed = sse(&s.api, &format!("/api/v1/contexts/{id}/events"), &[("Last-Event-ID", "3")]).await;
    assert_eq!(resumed[0].0, 4);
    assert_eq!(resumed.len(), frames.len() - 3);
    let r = s.api.call(Method::GET, &format!("/api/v1/contexts/{id}/events"), None, &[("Last-Event-ID", "x")]).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    // Listing filters by status and type.
    let r = s.api.get("/api/v1/contexts?status=completed&type=article").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.body);
    let r = s.api.get("/api/v1/contexts?status=failed").await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
    let r = s.api.get("/api/v1/contexts?status=done").await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

async fn bad_submissions_are_refused_with_reasons(b: Backend) {
    let s = setup(b).await;
    let post = |body: Value| s.api.post("/api/v1/contexts", body);
    let r = post(json!({"workspace": s.ws, "type": "article", "pipeline": ["template", "ai_writer"]})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(m.contains("pipeline[1]") && m.contains("ai_writer") && m.contains("transformer"), "{m}");
    let r = post(json!({"workspace": s.ws, "type": "article", "pipeline": []})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = post(json!({"workspace": s.ws, "type": "article", "pipeline": vec!["noop"; 33]})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = post(json!({"workspace": s.ws, "type": "Article!", "pipeline": ["noop"]})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = post(json!({"workspace": s.ws, "type": "a", "pipeline": ["noop"], "priority": 1000})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = post(json!({"workspace": s.ws, "type": "a", "pipeline": ["noop"], "colour": "red"})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = post(json!({"workspace": "nowhere", "type": "a", "pipeline": ["noop"]})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let huge = "x".repeat(1024 * 1024);
    let r = post(json!({"workspace": s.ws, "type": "a", "pipeline": ["noop"], "data": {"blob": huge}})).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Left unnamed, the workspace is the caller's default: the first they joined. With none,
    // a 422 says so, on the field.
    let (_, user, _) = s.api.signup("solo@example.com").await;
    let submit = json!({"type": "a", "pipeline": ["noop"]});
    let r = call(&s.api, &user, Method::POST, "/api/v1/contexts".into(), Some(submit.clone())).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(r.body["error"]["field"], "workspace", "{}", r.body);
    let solo = call(&s.api, &user, Method::POST, "/api/v1/workspaces".into(), Some(json!({"name": "Solo"}))).await;
    let r = call(&s.api, &user, Method::POST, "/api/v1/contexts".into(), Some(submit.clone())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["workspace_id"], solo.body["id"]);
    let duo = call(&s.api, &user, Method::POST, "/api/v1/workspaces".into(), Some(json!({"name": "Duo"}))).await;
    let r = call(&s.api, &user, Method::POST, "/api/v1/contexts".into(), Some(submit.clone())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["workspace_id"], solo.body["id"], "still the first one joined");
    // Once the first is deleted, the next one joined is the default.
    let gone =
        call(&s.api, &user, Method::DELETE, format!("/api/v1/workspaces/{}", solo.body["id"].as_str().unwrap()), None)
            .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    let r = call(&s.api, &user, Method::POST, "/api/v1/contexts".into(), Some(submit)).await;
    assert_eq!(r.body["workspace_id"], duo.body["id"]);
    let r = s.api.get("/api/v1/contexts/ctx_nope").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s.api.call_as(None, Method::GET, "/api/v1/contexts", None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn idempotent_submissions_and_batches(b: Backend) {
    let s = setup(b).await;
    let body =
        json!({"workspace": s.ws, "type": "a", "pipeline": ["noop"], "idempotency_key": "k-1", "data": {"n": 1}});
    let first = s.api.post("/api/v1/contexts", body.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = s.api.post("/api/v1/contexts", body.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], first.body["id"]);
    let mut changed = body.clone();
    changed["data"]["n"] = json!(2);
    let r = s.api.post("/api/v1/contexts", changed).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    let many: Vec<Value> = (0..3).map(|i| json!({"type": "a", "pipeline": ["noop"], "priority": i})).collect();
    let r = s.api.post("/api/v1/contexts/batch", json!({"workspace": s.ws, "contexts": many})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let made = r.body["contexts"].as_array().unwrap();
    assert_eq!(made.iter().map(|c| c["priority"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    for c in made {
        s.until(c["id"].as_str().unwrap(), "completed").await;
    }
    let bad = json!({"workspace": s.ws, "contexts": [{"type": "a", "pipeline": ["noop"]}, {"type": "a", "pipeline": ["nope"]}]});
    let r = s.api.post("/api/v1/contexts/batch", bad).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(r.body["error"]["message"].as_str().unwrap().starts_with("contexts[1].pipeline[0]"), "{}", r.body);
    let too_many: Vec<Value> = (0..101).map(|_| json!({"type": "a", "pipeline": ["noop"]})).collect();
    let r = s.api.post("/api/v1/contexts/batch", json!({"workspace": s.ws, "contexts": too_many})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = s.api.get(&format!("/api/v1/contexts?workspace={}&limit=2", s.ws)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let next = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = s.api.get(&format!("/api/v1/contexts?workspace={}&limit=2&cursor={next}", s.ws)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "4 contexts in all, two pages");
    assert!(r.body["next_cursor"].is_null());
}

async fn cancel_and_retry_over_http(b: Backend) {
    let s = setup(b).await;
    let body =
        json!({"workspace": s.ws, "type": "a", "pipeline": ["wait", "transformer"], "data": {"wait_ms": 600000}});
    let id = s.api.post("/api/v1/contexts", body).await.body["id"].as_str().unwrap().to_string();
    s.until(&id, "processing").await;
    let r = s.api.call(Method::POST, &format!("/api/v1/contexts/{id}/cancel"), None, &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["cancel_requested"], true);
    s.until(&id, "cancelled").await;
    let r = s.api.call(Method::POST, &format!("/api/v1/contexts/{id}/cancel"), None, &[]).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let r = s.api.post(&format!("/api/v1/contexts/{id}/retry"), json!({"from": "middle"})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    // Retried without the wait (from the start would wait again): the transformer fails for
    // good, since nothing generated content.
    let r = s.api.call(Method::POST, &format!("/api/v1/contexts/{id}/retry"), None, &[]).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::ACCEPTED, Some("retrying")), "{}", r.body);
    let r = s.api.call(Method::POST, &format!("/api/v1/contexts/{id}/cancel"), None, &[]).await;
    assert!(r.status == StatusCode::OK || r.status == StatusCode::ACCEPTED, "{}", r.body);
    let ended = s.until(&id, "cancelled").await;
    assert_eq!(ended["status"], "cancelled");
}

async fn templates_components_and_workers(b: Backend) {
    let s = setup(b).await;
    let t = json!({"workspace": s.ws, "name": "Launch note", "type": "note", "tone": "upbeat",
                   "sections": [{"type": "headline"}, {"type": "details"}]});
    let r = s.api.post("/api/v1/templates", t.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tid = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["version"], 1);
    let mut v2 = t.clone();
    v2["id"] = json!(tid);
    v2["sections"] = json!([{"type": "headline"}]);
    let r = s.api.post("/api/v1/templates", v2).await;
    assert_eq!((r.status, r.body["version"].as_i64()), (StatusCode::CREATED, Some(2)));
    let r = s.api.get(&format!("/api/v1/templates/{tid}?version=1")).await;
    assert_eq!(r.body["sections"].as_array().unwrap().len(), 2);
    let r = s.api.get(&format!("/api/v1/templates?workspace={}", s.ws)).await;
    let listed: Vec<(String, i64)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().into(), t["version"].as_i64().unwrap()))
        .collect();
    assert!(listed.contains(&(tid.clone(), 2)) && listed.iter().any(|t| t.0 == "tmpl_prd_standard"), "{listed:?}");
    let r =
        s.api.post("/api/v1/templates", json!({"workspace": s.ws, "name": "x", "type": "note", "sections": []})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = s.api.get("/api/v1/templates/tmpl_missing").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let r = s.api.get("/api/v1/components").await;
    let names: Vec<&str> = r.body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for n in ["cleanup", "noop", "template", "transformer", "wait"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let by =
        |name: &str| r.body.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["submitted_by"].clone();
    assert_eq!((by("noop"), by("cleanup"), by("version")), (json!("users"), json!("system"), json!("system")));
    let r = s.api.call_as(None, Method::GET, "/api/v1/components", None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let body = json!({"workspace": s.ws, "type": "a", "pipeline": ["wait"], "data": {"wait_ms": 600000}});
    let id = s.api.post("/api/v1/contexts", body).await.body["id"].as_str().unwrap().to_string();
    s.until_in(&id, "wait").await;
    let r = s.api.get("/api/v1/workers").await;
    let me = r.body.as_array().unwrap().iter().find(|w| w["alive"] == true).cloned().expect("a live worker");
    assert_eq!(me["current"][0]["id"], id.as_str());
    assert_eq!(me["current"][0]["component"], "wait");
    let (_, user, _) = s.api.signup("someone@example.com").await;
    let r = s.api.call_as(Some(&user), Method::GET, "/api/v1/workers", None, &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

async fn contexts_belong_to_their_workspace(b: Backend) {
    let s = setup(b).await;
    let (uid, user, _) = s.api.signup("viewer@example.com").await;
    let body = json!({"workspace": s.ws, "type": "a", "pipeline": ["noop"]});
    let id = s.api.post("/api/v1/contexts", body.clone()).await.body["id"].as_str().unwrap().to_string();
    let r: Reply = call(&s.api, &user, Method::GET, format!("/api/v1/contexts/{id}"), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = call(&s.api, &user, Method::GET, format!("/api/v1/contexts/{id}/events"), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = call(&s.api, &user, Method::GET, "/api/v1/contexts".into(), None).await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
    let r = s
        .api
        .call(Method::PUT, &format!("/api/v1/workspaces/{}/members/{uid}", s.ws), Some(json!({"role": "viewer"})), &[])
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = call(&s.api, &user, Method::GET, format!("/api/v1/contexts/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&s.api, &user, Method::POST, "/api/v1/contexts".into(), Some(body)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = call(&s.api, &user, Method::POST, format!("/api/v1/contexts/{id}/cancel"), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

async fn call(api: &Api, token: &str, method: Method, uri: String, body: Option<Value>) -> Reply {
    api.call_as(Some(token), method, &uri, body, &[]).await
}

/// Two users, each the owner of a workspace: neither may submit Quire's own components
/// (the instance-wide clean-up, versions, pushes) or use its queues, and a system
/// component given another workspace's document refuses it.
async fn pipelines_stay_inside_their_workspace(b: Backend) {
    let s = setup(b).await;
    let (_, alice, _) = s.api.signup("alice@example.com").await;
    let (_, bob, _) = s.api.signup("bob@example.com").await;
    let mk = |token: String, name: &'static str| {
        let api = &s.api;
        async move {
            let r = call(api, &token, Method::POST, "/api/v1/workspaces".into(), Some(json!({"name": name}))).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let (ws_a, ws_b) = (mk(alice.clone(), "Alice's").await, mk(bob.clone(), "Bob's").await);
    let doc_b = call(
        &s.api,
        &bob,
        Method::POST,
        format!("/api/v1/workspaces/{ws_b}/documents"),
        Some(json!({"kind": "prd", "title": "Secret plan"})),
    )
    .await;
    let doc_b = doc_b.body["id"].as_str().unwrap().to_string();
    // Bob's finished context, which an instance-wide clean-up would purge.
    let mine = call(
        &s.api,
        &bob,
        Method::POST,
        "/api/v1/contexts".into(),
        Some(json!({"workspace": ws_b, "type": "a", "pipeline": ["noop"]})),
    )
    .await;
    let mine = mine.body["id"].as_str().unwrap().to_string();
    s.until(&mine, "completed").await;

    let submit = |body: Value| call(&s.api, &alice, Method::POST, "/api/v1/contexts".into(), Some(body));
    let cleanup = submit(
        json!({"workspace": ws_a, "type": "x", "pipeline": ["cleanup"], "data": {"retention_days": 213503982334u64}}),
    )
    .await;
    assert_error(&cleanup, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        cleanup.body["error"]["message"].as_str().unwrap().contains("'cleanup' is run by Quire itself"),
        "{}",
        cleanup.body
    );
    let version = submit(json!({"workspace": ws_a, "type": "x", "pipeline": ["version"],
        "data": {"document_id": doc_b, "authors": ["usr_forged"]}}))
    .await;
    assert_error(&version, StatusCode::FORBIDDEN, "forbidden");
    let push =
        submit(json!({"workspace": ws_a, "type": "x", "pipeline": ["push"], "data": {"workspace_id": ws_b}})).await;
    assert_error(&push, StatusCode::FORBIDDEN, "forbidden");
    let queue = submit(json!({"workspace": ws_a, "type": "x", "pipeline": ["wait"], "queue": "history", "priority": 100, "data": {"wait_ms": 3600000}})).await;
    assert_error(&queue, StatusCode::FORBIDDEN, "forbidden");
    assert!(queue.body["error"]["message"].as_str().unwrap().contains("queue 'history'"), "{}", queue.body);
    let batch = call(
        &s.api,
        &alice,
        Method::POST,
        "/api/v1/contexts/batch".into(),
        Some(json!({"workspace": ws_a,
        "contexts": [{"type": "x", "pipeline": ["noop"]}, {"type": "x", "pipeline": ["noop", "cleanup"]}]})),
    )
    .await;
    assert_error(&batch, StatusCode::FORBIDDEN, "forbidden");
    assert!(batch.body["error"]["message"].as_str().unwrap().starts_with("contexts[1].pipeline[1]"), "{}", batch.body);
    // What users may run still runs.
    let ok = submit(json!({"workspace": ws_a, "type": "x", "pipeline": ["noop"]})).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
    s.until(ok.body["id"].as_str().unwrap(), "completed").await;
    // Bob's context is still there.
    assert_eq!(call(&s.api, &bob, Method::GET, format!("/api/v1/contexts/{mine}"), None).await.status, StatusCode::OK);

    // Quire's own version component, pointed at another workspace's document, refuses it.
    let mut data = serde_json::Map::new();
    data.insert("document_id".into(), json!(doc_b));
    let forged = quire_core::NewContext::new("x", &["version"], data);
    let (ctx, _) =
        s.api.app.engine().submit(&quire_core::Principal::System, &ws_a, vec![forged]).await.unwrap().remove(0);
    let failed = s.until(&ctx.id, "failed").await;
    assert!(failed["error"]["message"].as_str().unwrap().contains("not in this context's workspace"), "{failed}");
    let versions = call(&s.api, &bob, Method::GET, format!("/api/v1/documents/{doc_b}/versions"), None).await;
    assert_eq!(versions.status, StatusCode::OK);
    assert!(versions.body["items"].as_array().unwrap().is_empty(), "{}", versions.body);
}
