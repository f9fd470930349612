//! The HTTP API end to end (in-process, no socket), on SQLite and on PostgreSQL.

use std::time::Duration;

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, assert_error, etag};
use http_body_util::BodyExt;
use quire_core::Limits;
use quire_server::ServerConfig;
use quire_store::StoreOptions;
use quire_store::testing::Backend;
use serde_json::{Value, json};
use tower::ServiceExt;

quire_store::for_each_backend!(
    workspace_crud_with_etags,
    document_crud_with_etags,
    lists_page_filter_and_sort,
    bad_input_gets_a_json_error_with_the_right_status,
    limits_are_enforced,
    events_stream_live_and_resume,
    readiness_reports_the_database,
    event_streams_end_with_their_credential,
    streams_and_sockets_per_caller_are_capped,
);

async fn workspace_crud_with_etags(b: Backend) {
    let api = Api::new(b).await;
    let created = api.post("/api/v1/workspaces", json!({"name": "Product", "description": "PRDs"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.headers[header::LOCATION], format!("/api/v1/workspaces/{id}").as_str());
    assert_eq!(etag(&created), "\"r1\"");
    assert!(created.headers.contains_key("x-request-id"));

    let by_slug = api.get("/api/v1/workspaces/product").await;
    assert_eq!((by_slug.status, by_slug.body["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    let cached = api.call(Method::GET, &format!("/api/v1/workspaces/{id}"), None, &[("if-none-match", "\"r1\"")]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);

    let path = format!("/api/v1/workspaces/{id}");
    let patched = api.call(Method::PATCH, &path, Some(json!({"name": "Product Org"})), &[("if-match", "\"r1\"")]).await;
    assert_eq!((patched.status, etag(&patched)), (StatusCode::OK, "\"r2\"".to_string()));
    assert_eq!(patched.body["name"], "Product Org");
    let stale = api.call(Method::PATCH, &path, Some(json!({"name": "Lost"})), &[("if-match", "\"r1\"")]).await;
    assert_error(&stale, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(api.get(&path).await.body["name"], "Product Org", "a stale write changes nothing");
    let garbled = api.call(Method::PATCH, &path, Some(json!({"name": "Lost"})), &[("if-match", "yesterday")]).await;
    assert_error(&garbled, StatusCode::PRECONDITION_FAILED, "precondition_failed");

    let deleted = api.call(Method::DELETE, &path, None, &[("if-match", "\"r2\"")]).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(deleted.body["deleted_at"].is_string());
    assert_error(&api.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    let trash = api.get("/api/v1/workspaces?deleted=true").await;
    assert_eq!(trash.body["items"].as_array().unwrap().len(), 1);
    let restored = api.post(&format!("{path}/restore"), json!({})).await;
    assert_eq!((restored.status, restored.body["deleted_at"].clone()), (StatusCode::OK, Value::Null));
    assert_eq!(api.get(&path).await.status, StatusCode::OK);

    let conflict = api.post("/api/v1/workspaces", json!({"name": "Again", "slug": "product"})).await;
    assert_error(&conflict, StatusCode::CONFLICT, "conflict");
}

async fn document_crud_with_etags(b: Backend) {
    let api = Api::new(b).await;
    api.post("/api/v1/workspaces", json!({"name": "Team"})).await;
    let created = api
        .post(
            "/api/v1/workspaces/team/documents",
            json!({"kind": "prd", "title": "Checkout", "metadata": {"owner": "ana", "tags": ["pay"]}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/documents/{id}");
    assert_eq!(created.headers[header::LOCATION], path.as_str());
    for field in [
        "id",
        "workspace_id",
        "kind",
        "title",
        "metadata",
        "owner_id",
        "revision",
        "created_at",
        "updated_at",
        "deleted_at",
    ] {
        assert!(created.body.get(field).is_some(), "missing {field}: {}", created.body);
    }
    assert_eq!(created.body["kind"], "prd");

    let got = api.get(&path).await;
    assert_eq!((got.status, etag(&got)), (StatusCode::OK, "\"r1\"".to_string()));
    // The document as created, with the caller's role on it.
    let mut with_role = created.body.clone();
    with_role["role"] = json!("owner");
    assert_eq!(got.body, with_role);

    let patched = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"title": "Checkout v2", "metadata": {"owner": null, "status": "draft"}})),
            &[("if-match", "\"r1\"")],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["metadata"], json!({"tags": ["pay"], "status": "draft"}));
    assert_eq!(patched.body["revision"], 2);
    let stale = api.call(Method::PATCH, &path, Some(json!({"title": "x"})), &[("if-match", "\"r1\"")]).await;
    assert_error(&stale, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert!(stale.body["error"]["message"].as_str().unwrap().contains("\"r2\""));
    // Kind is fixed at creation.
    let kind = api.call(Method::PATCH, &path, Some(json!({"kind": "moodboard"})), &[]).await;
    assert_error(&kind, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    let stale_delete = api.call(Method::DELETE, &path, None, &[("if-match", "\"r1\"")]).await;
    assert_error(&stale_delete, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(api.call(Method::DELETE, &path, None, &[]).await.status, StatusCode::OK);
    assert_error(&api.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&api.call(Method::DELETE, &path, None, &[]).await, StatusCode::NOT_FOUND, "not_found");
    let restored = api.post(&format!("{path}/restore"), json!({})).await;
    assert_eq!((restored.status, restored.body["revision"].clone()), (StatusCode::OK, json!(4)));
    assert_error(&api.post("/api/v1/documents/doc_nope/restore", json!({})).await, StatusCode::NOT_FOUND, "not_found");
}

async fn lists_page_filter_and_sort(b: Backend) {
    let api = Api::new(b).await;
    api.post("/api/v1/workspaces", json!({"name": "Lists"})).await;
    for (kind, title) in
        [("prd", "Beta"), ("moodboard", "Alpha"), ("prd", "Gamma"), ("board-config", "Delta"), ("prd", "alpha two")]
    {
        let r = api.post("/api/v1/workspaces/lists/documents", json!({"kind": kind, "title": title})).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut titles = Vec::new();
    let mut uri = "/api/v1/workspaces/lists/documents?sort=title&limit=2".to_string();
    loop {
        let page = api.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        titles.extend(page.body["items"].as_array().unwrap().iter().map(|d| d["title"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/workspaces/lists/documents?sort=title&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(titles, ["Alpha", "Beta", "Delta", "Gamma", "alpha two"]);
    let prds = api.get("/api/v1/workspaces/lists/documents?kind=prd&sort=-title").await;
    let got: Vec<_> = prds.body["items"].as_array().unwrap().iter().map(|d| d["title"].clone()).collect();
    assert_eq!(got, [json!("alpha two"), json!("Gamma"), json!("Beta")]);
    let found = api.get("/api/v1/workspaces/lists/documents?q=ALPHA").await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 2);
    // The newest change comes first by default.
    let recent = api.get("/api/v1/workspaces/lists/documents").await;
    assert_eq!(recent.body["items"][0]["title"], "alpha two");
    assert_eq!(recent.body["next_cursor"], Value::Null);
    let workspaces = api.get("/api/v1/workspaces?q=list").await;
    assert_eq!(workspaces.body["items"].as_array().unwrap().len(), 1);
}

async fn bad_input_gets_a_json_error_with_the_right_status(b: Backend) {
    let config = ServerConfig { max_body_bytes: 512, ..common::relaxed() };
    let api = Api::with(b, StoreOptions::default(), config).await;
    api.post("/api/v1/workspaces", json!({"name": "Errors"})).await;
    let docs = "/api/v1/workspaces/errors/documents";

    let malformed =
        Request::post(docs).header(header::CONTENT_TYPE, "application/json").body(Body::from("{\"kind\": ")).unwrap();
    assert_error(&api.raw(malformed).await, StatusCode::BAD_REQUEST, "invalid_json");
    let unknown = api.post(docs, json!({"kind": "prd", "title": "x", "colour": "red"})).await;
    assert_error(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains("colour"));
    assert_eq!(unknown.body["error"]["field"], "colour", "{}", unknown.body);
    let mistyped = api.post(docs, json!({"kind": "prd", "title": 7})).await;
    assert_error(&mistyped, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(mistyped.body["error"]["field"], "title", "{}", mistyped.body);
    let bad_kind = api.post(docs, json!({"kind": "wiki", "title": "x"})).await;
    assert_error(&bad_kind, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(bad_kind.body["error"]["field"], "kind", "{}", bad_kind.body);
    let message = bad_kind.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("kind: unknown variant `wiki`") && message.contains("prd"), "{message}");
    let missing = api.post(docs, json!({"title": "x"})).await;
    assert_eq!(missing.body["error"]["field"], "kind", "{}", missing.body);
    let empty_title = api.post(docs, json!({"kind": "prd", "title": "  "})).await;
    assert_error(&empty_title, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(empty_title.body["error"]["field"], "title");
    let not_object = api.post(docs, json!({"kind": "prd", "title": "x", "metadata": [1]})).await;
    assert_error(&not_object, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(not_object.body["error"]["field"], "metadata", "{}", not_object.body);
    let no_type = Request::post(docs).body(Body::from(json!({"kind": "prd", "title": "x"}).to_string())).unwrap();
    assert_error(&api.raw(no_type).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = api.post(docs, json!({"kind": "prd", "title": "x", "metadata": {"blob": "x".repeat(2000)}})).await;
    assert_error(&huge, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let chunked = Request::post(docs)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_util::stream::iter(
            (0..8).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 100]))),
        )))
        .unwrap();
    assert_error(&api.raw(chunked).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Unknown objects and routes, and malformed query parameters.
    let cases = [
        (Method::GET, "/api/v1/documents/doc_missing".to_string(), StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/workspaces/nowhere/documents".to_string(), StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/nothing-here".to_string(), StatusCode::NOT_FOUND, "not_found"),
        (Method::PUT, "/api/v1/workspaces".to_string(), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (Method::GET, format!("{docs}?limit=lots"), StatusCode::BAD_REQUEST, "invalid_query"),
        (Method::GET, format!("{docs}?colour=red"), StatusCode::BAD_REQUEST, "invalid_query"),
        (Method::GET, format!("{docs}?limit=0"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (Method::GET, format!("{docs}?limit=201"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (Method::GET, format!("{docs}?sort=colour"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (Method::GET, format!("{docs}?cursor=garbage"), StatusCode::BAD_REQUEST, "invalid_cursor"),
    ];
    for (method, uri, status, code) in cases {
        assert_error(&api.call(method, &uri, None, &[]).await, status, code);
    }
    let bad_resume = api.call(Method::GET, "/api/v1/events", None, &[("last-event-id", "ten")]).await;
    assert_error(&bad_resume, StatusCode::BAD_REQUEST, "invalid_request");
    // Nothing above was stored.
    let listed = api.get(docs).await;
    assert_eq!(listed.body["items"], json!([]));
}

async fn limits_are_enforced(b: Backend) {
    let limits = Limits { max_documents_per_workspace: 1, max_title_chars: 10, ..Limits::default() };
    let api = Api::with(b, StoreOptions { limits, ..Default::default() }, common::relaxed()).await;
    api.post("/api/v1/workspaces", json!({"name": "Small"})).await;
    let long = api.post("/api/v1/workspaces/small/documents", json!({"kind": "prd", "title": "eleven chars"})).await;
    assert_error(&long, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(
        api.post("/api/v1/workspaces/small/documents", json!({"kind": "prd", "title": "one"})).await.status,
        StatusCode::CREATED
    );
    let over = api.post("/api/v1/workspaces/small/documents", json!({"kind": "prd", "title": "two"})).await;
    assert_error(&over, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded");
}

/// Reads SSE frames from a streaming body until `n` events arrived.
async fn read_events(body: &mut Body, n: usize) -> Vec<(i64, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut name, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            if let (Some(id), Some(name), Some(data)) = (id, name, data) {
                events.push((id, name, data));
            }
        }
    }
    events
}

async fn open_stream(api: &Api, uri: &str, headers: &[(&str, &str)]) -> Body {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.header(header::AUTHORIZATION, format!("Bearer {}", api.admin));
    let res = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    res.into_body()
}

async fn events_stream_live_and_resume(b: Backend) {
    // Polling is slowed to a minute: the stream must wake on commits, not on polls.
    let config = ServerConfig { events_poll_interval: Duration::from_secs(60), ..common::relaxed() };
    let api = Api::with(b, StoreOptions::default(), config).await;
    let config_poll = Duration::from_secs(5);
    let mut live = open_stream(&api, "/api/v1/events", &[]).await;
    let mut prd_only = open_stream(&api, "/api/v1/events?names=prd.*", &[]).await;
    // Start reading first, so that the stream is idle, waiting, when the writes commit.
    let reader = tokio::spawn(async move {
        let events = read_events(&mut live, 4).await;
        (events, std::time::Instant::now(), live)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let ws = api.post("/api/v1/workspaces", json!({"name": "Stream"})).await;
    let ws_id = ws.body["id"].as_str().unwrap().to_string();
    let doc = api.post("/api/v1/workspaces/stream/documents", json!({"kind": "prd", "title": "Live"})).await;
    let doc_id = doc.body["id"].as_str().unwrap().to_string();
    api.call(Method::PATCH, &format!("/api/v1/documents/{doc_id}"), Some(json!({"title": "Live 2"})), &[]).await;
    api.post("/api/v1/workspaces/stream/documents", json!({"kind": "moodboard", "title": "Mood"})).await;

    let (events, received, mut live) = reader.await.unwrap();
    assert!(received - started < config_poll, "events arrive on commit, not on the poll interval");
    let names: Vec<_> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["workspace.created", "prd.created", "prd.updated", "moodboard.created"]);
    assert_eq!(events[1].2["document_id"], json!(doc_id));
    assert_eq!(events[1].2["workspace_id"], json!(ws_id));
    assert_eq!(events[1].2["data"]["document"]["title"], "Live");
    assert_eq!(events[2].2["data"]["changes"], json!(["title"]));
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
    let prd_names: Vec<_> = read_events(&mut prd_only, 2).await.into_iter().map(|e| e.1).collect();
    assert_eq!(prd_names, ["prd.created", "prd.updated"]);

    // Resuming after the first event replays exactly the rest.
    let first = events[0].0.to_string();
    let mut resumed = open_stream(&api, "/api/v1/events", &[("last-event-id", &first)]).await;
    let replay: Vec<_> = read_events(&mut resumed, 3).await.into_iter().map(|e| e.0).collect();
    assert_eq!(replay, events[1..].iter().map(|e| e.0).collect::<Vec<_>>());
    let mut from_start = open_stream(&api, &format!("/api/v1/events?after=0&workspace={ws_id}"), &[]).await;
    assert_eq!(read_events(&mut from_start, 4).await.len(), 4);

    // Shutting down ends open streams so a graceful stop can finish.
    api.app.begin_shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = live.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ended on shutdown");
}

async fn readiness_reports_the_database(b: Backend) {
    let api = Api::new(b).await;
    let live = api.get("/healthz").await;
    assert_eq!((live.status, live.body.clone()), (StatusCode::OK, json!({"status": "ok"})));
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "healthy");
    assert_eq!(ready.body["checks"]["database"]["status"], "healthy");
    assert_eq!(ready.body["checks"]["database"]["kind"], api.app.store().backend());
    api.app.store().close().await;
    let down = api.get("/readyz").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body["status"], "down");
    assert_eq!(down.body["checks"]["database"]["status"], "down");
    assert!(down.body["checks"]["database"]["error"].is_string());
    // With the database gone, API calls say so instead of failing obscurely.
    assert_error(&api.get("/api/v1/workspaces").await, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_include_process_figures() {
    // The recorder is process-wide and other tests run beside this one: counts only grow.
    let api = Api::new(Backend::Sqlite).await;
    api.get("/api/v1/documents/doc_counted").await;
    api.get("/api/v1/documents/doc_counted").await;
    let res = api.router.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert!(res.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
    let text = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("method=\"GET\"")
                && l.contains("route=\"/api/v1/documents/{id}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{line}");
    assert!(text.contains("http_request_duration_seconds_bucket{"), "latency is a histogram");
    assert!(text.contains("process_resident_memory_bytes"), "process figures are exported");
}

/// Every operation the OpenAPI document describes is served, by that method, at that path.
#[tokio::test]
async fn openapi_describes_exactly_the_served_routes() {
    let api = Api::new(Backend::Sqlite).await;
    let doc = api.get("/api/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    // Probing includes signing out, so it uses an account of its own.
    let (_, probe, _) = api.signup("probe@example.com").await;
    let mut described: Vec<String> = Vec::new();
    // Operation ids are unique (OpenAPI requires it; clients generated from the document,
    // the web app's among them, name operations by them and merge duplicates).
    let mut ids = std::collections::HashMap::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            described.push(format!("{} {path}", method.to_uppercase()));
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            if let Some(other) = ids.insert(id.to_string(), format!("{method} {path}")) {
                panic!("operationId {id} names both {other} and {method} {path}");
            }
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
            let uri = path
                .replace("{ws}", "ws_none")
                .replace("{id}", "doc_none")
                .replace("{user_id}", "usr_none")
                .replace("{provider}", "oidc")
                .replace("{document_id}", "doc_none");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(m, Method::POST | Method::PATCH).then(|| json!({}));
            let res = if path == "/api/v1/events" {
                // A stream never ends; only its head matters here.
                let r = api.router.clone().oneshot(Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
                r.status()
            } else {
                let r = api.call_as(Some(&probe), m, &uri, body, &[]).await;
                assert_ne!(
                    r.body["error"]["message"].as_str().map(|m| m.starts_with("no route")),
                    Some(true),
                    "{method} {path}"
                );
                r.status
            };
            assert_ne!(res, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    described.sort();
    let expected = [
        "DELETE /api/v1/ai/providers/{name}",
        "DELETE /api/v1/documents/{id}",
        "DELETE /api/v1/documents/{id}/files/{path}",
        "DELETE /api/v1/documents/{id}/shares/{user_id}",
        "DELETE /api/v1/me/preferences/{key}",
        "DELETE /api/v1/me/sessions/{id}",
        "DELETE /api/v1/workspaces/{ws}",
        "DELETE /api/v1/workspaces/{ws}/api-keys/{id}",
        "DELETE /api/v1/workspaces/{ws}/history/remote",
        "DELETE /api/v1/workspaces/{ws}/invitations/{id}",
        "DELETE /api/v1/workspaces/{ws}/members/{user_id}",
        "GET /api/v1/ai/default",
        "GET /api/v1/ai/interactions",
        "GET /api/v1/ai/providers",
        "GET /api/v1/ai/templates",
        "GET /api/v1/ai/templates/{name}",
        "GET /api/v1/audit",
        "GET /api/v1/auth/sso",
        "GET /api/v1/auth/sso/{provider}/callback",
        "GET /api/v1/auth/sso/{provider}/start",
        "GET /api/v1/board-configs/schema",
        "GET /api/v1/builds/{id}",
        "GET /api/v1/builds/{id}/artifacts/{name}",
        "GET /api/v1/builds/{id}/log",
        "GET /api/v1/components",
        "GET /api/v1/contexts",
        "GET /api/v1/contexts/{id}",
        "GET /api/v1/contexts/{id}/events",
        "GET /api/v1/documents/{id}",
        "GET /api/v1/documents/{id}/builds",
        "GET /api/v1/documents/{id}/changelog",
        "GET /api/v1/documents/{id}/content",
        "GET /api/v1/documents/{id}/diff",
        "GET /api/v1/documents/{id}/files",
        "GET /api/v1/documents/{id}/files/{path}",
        "GET /api/v1/documents/{id}/files/{path}/versions",
        "GET /api/v1/documents/{id}/presence",
        "GET /api/v1/documents/{id}/sections",
        "GET /api/v1/documents/{id}/shares",
        "GET /api/v1/documents/{id}/validation",
        "GET /api/v1/documents/{id}/versions",
        "GET /api/v1/documents/{id}/versions/{version}",
        "GET /api/v1/events",
        "GET /api/v1/graphql/schema",
        "GET /api/v1/graphql/ws",
        "GET /api/v1/me",
        "GET /api/v1/me/preferences/{key}",
        "GET /api/v1/me/sessions",
        "GET /api/v1/taxonomy/design-styles",
        "GET /api/v1/taxonomy/prd-sections",
        "GET /api/v1/taxonomy/room-types",
        "GET /api/v1/templates",
        "GET /api/v1/templates/{id}",
        "GET /api/v1/users",
        "GET /api/v1/workers",
        "GET /api/v1/workspaces",
        "GET /api/v1/workspaces/{ws}",
        "GET /api/v1/workspaces/{ws}/ai",
        "GET /api/v1/workspaces/{ws}/api-keys",
        "GET /api/v1/workspaces/{ws}/assets",
        "GET /api/v1/workspaces/{ws}/assets/{sha256}",
        "GET /api/v1/workspaces/{ws}/assets/{sha256}/{variant}",
        "GET /api/v1/workspaces/{ws}/blobs/{sha256}",
        "GET /api/v1/workspaces/{ws}/documents",
        "GET /api/v1/workspaces/{ws}/history/remote",
        "GET /api/v1/workspaces/{ws}/invitations",
        "GET /api/v1/workspaces/{ws}/members",
        "GET /api/v1/ws",
        "GET /collab/{document_id}",
        "GET /files/builds/{id}/{name}",
        "GET /files/{ws}/{sha256}/{variant}",
        "GET /healthz",
        "GET /metrics",
        "GET /readyz",
        "PATCH /api/v1/documents/{id}",
        "PATCH /api/v1/documents/{id}/content",
        "PATCH /api/v1/documents/{id}/files/{path}",
        "PATCH /api/v1/documents/{id}/versions/{version}",
        "PATCH /api/v1/workspaces/{ws}",
        "POST /api/v1/ai/embeddings",
        "POST /api/v1/ai/generate",
        "POST /api/v1/ai/templates",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/signup",
        "POST /api/v1/board-configs/schema/refresh",
        "POST /api/v1/board-configs/validate",
        "POST /api/v1/contexts",
        "POST /api/v1/contexts/batch",
        "POST /api/v1/contexts/{id}/approve",
        "POST /api/v1/contexts/{id}/cancel",
        "POST /api/v1/contexts/{id}/retry",
        "POST /api/v1/documents/{id}/builds",
        "POST /api/v1/documents/{id}/restore",
        "POST /api/v1/documents/{id}/versions/{version}/restore",
        "POST /api/v1/graphql",
        "POST /api/v1/invitations/accept",
        "POST /api/v1/templates",
        "POST /api/v1/users/{id}/revoke-sessions",
        "POST /api/v1/workspaces",
        "POST /api/v1/workspaces/{ws}/api-keys",
        "POST /api/v1/workspaces/{ws}/assets",
        "POST /api/v1/workspaces/{ws}/documents",
        "POST /api/v1/workspaces/{ws}/invitations",
        "POST /api/v1/workspaces/{ws}/restore",
        "PUT /api/v1/ai/default",
        "PUT /api/v1/ai/providers/{name}",
        "PUT /api/v1/documents/{id}/content",
        "PUT /api/v1/documents/{id}/files/{path}",
        "PUT /api/v1/documents/{id}/shares",
        "PUT /api/v1/me/preferences/{key}",
        "PUT /api/v1/workspaces/{ws}/ai",
        "PUT /api/v1/workspaces/{ws}/history/remote",
        "PUT /api/v1/workspaces/{ws}/members/{user_id}",
    ];
    assert_eq!(described, expected);
    for schema in
        ["Workspace", "Document", "Event", "ErrorBody", "NewDocument", "DocumentPatch", "Context", "NewContext"]
    {
        assert!(doc.body["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
    }
    let page = api.get("/api/docs/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.as_str().is_some_and(|html| html.contains("swagger")), "the reference page is served");
}

#[tokio::test]
async fn metrics_may_require_a_token_of_their_own() {
    let config = ServerConfig { metrics_token: Some("scrape-me".into()), ..common::relaxed() };
    let api = Api::with(Backend::Sqlite, StoreOptions::default(), config).await;
    let open = api.call_as(None, Method::GET, "/metrics", None, &[]).await;
    assert_error(&open, StatusCode::UNAUTHORIZED, "unauthenticated");
    // A user's token is not the metrics token.
    assert_eq!(api.get("/metrics").await.status, StatusCode::UNAUTHORIZED);
    let scraped = api.call_as(Some("scrape-me"), Method::GET, "/metrics", None, &[]).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.body.as_str().unwrap().contains("http_requests_total"));
    // Health checks stay open.
    assert_eq!(api.call_as(None, Method::GET, "/readyz", None, &[]).await.status, StatusCode::OK);
}

/// What the request log writes: a buffer a `tracing` subscriber fills for one future.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A credential sent in the query (`/collab/{doc}?token=…`, an SSO callback's `code`) or in a
/// header never reaches the request log; the rest of the URI does.
#[tokio::test]
async fn request_logs_carry_no_credentials() {
    let api = Api::new(Backend::Sqlite).await;
    let logs = LogBuffer::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let key = "qk_verysecretapikeyvalue";
    let req = Request::get(format!("/api/v1/workspaces?limit=7&token={key}&code=oauth-code-123"))
        .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
        .header(header::COOKIE, "quire_session=cookie-secret-456")
        .body(Body::empty())
        .unwrap();
    // The process's subscriber, not one scoped to this future: a scoped one missed the
    // request's span now and then, when another test's thread had registered the span's
    // callsite first, with no subscriber, and its interest was cached as "never". Other
    // tests' lines land in the buffer too; none of them carries these secrets.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");
    // The listing refuses parameters it does not know (400); the log line is what matters.
    api.send(req).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("/api/v1/workspaces?limit=7&token=[redacted]&code=[redacted]"), "{text}");
    for secret in [key, "oauth-code-123", "cookie-secret-456", api.admin.as_str()] {
        assert!(!text.contains(secret), "{secret} was logged: {text}");
    }
}

/// Reads an SSE body until its text holds `needle` (or 10 s pass); returns the body.
async fn read_until(body: &mut Body, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("in time");
        let Some(Ok(frame)) = frame else { panic!("the stream ended before {needle}: {seen}") };
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    seen
}

/// Whether the SSE body ends within 10 s.
async fn ends(body: &mut Body) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The event stream ends when its credential does: an API key revoked, a session signed
/// out, an access token expired (the client's reconnection then gets 401).
async fn event_streams_end_with_their_credential(b: Backend) {
    let auth = quire_auth::AuthConfig { access_ttl: Duration::from_secs(2), ..Default::default() };
    let api = Api::with_auth(b, Default::default(), common::relaxed(), auth).await;
    let ws = api.post("/api/v1/workspaces", json!({"name": "Streams"})).await.body["id"].as_str().unwrap().to_string();
    let key = api.post(&format!("/api/v1/workspaces/{ws}/api-keys"), json!({"name": "feed", "role": "viewer"})).await;
    let (secret, key_id) =
        (key.body["secret"].as_str().unwrap().to_string(), key.body["api_key"]["id"].as_str().unwrap().to_string());
    let open = |token: String| {
        let router = api.router.clone();
        async move {
            let req = Request::get("/api/v1/events?after=0").header(header::AUTHORIZATION, format!("Bearer {token}"));
            let res = router.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.into_body()
        }
    };
    // Revoking the key ends its stream, once the stream is shown to be live.
    let mut by_key = open(secret.clone()).await;
    read_until(&mut by_key, "workspace.created").await;
    let revoked = api.call(Method::DELETE, &format!("/api/v1/workspaces/{ws}/api-keys/{key_id}"), None, &[]).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(ends(&mut by_key).await, "the revoked key's stream ended");
    // Signing out ends the session's stream.
    let (_, token, _) = api.signup("streamer@example.com").await;
    let mut by_session = open(token.clone()).await;
    let own = api.call_as(Some(&token), Method::POST, "/api/v1/workspaces", Some(json!({"name": "Mine"})), &[]).await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    read_until(&mut by_session, "workspace.created").await;
    let out = api.call_as(Some(&token), Method::POST, "/api/v1/auth/logout", None, &[]).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert!(ends(&mut by_session).await, "the signed-out session's stream ended");
    // An access token's stream ends when the token expires (2 s here).
    let (_, short, _) = api.signup("brief@example.com").await;
    let mut by_token = open(short).await;
    assert!(ends(&mut by_token).await, "the expired token's stream ended");
}

/// One caller holds at most `max_connections_per_caller` streams (and sockets: see
/// collab.rs); closing one frees its place, and other callers have places of their own.
async fn streams_and_sockets_per_caller_are_capped(b: Backend) {
    let config = quire_server::ServerConfig { max_connections_per_caller: 2, ..common::relaxed() };
    let api = Api::with(b, Default::default(), config).await;
    let open = |token: String| {
        let router = api.router.clone();
        async move {
            let req = Request::get("/api/v1/events").header(header::AUTHORIZATION, format!("Bearer {token}"));
            router.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
        }
    };
    let first = open(api.admin.clone()).await;
    let second = open(api.admin.clone()).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let third = open(api.admin.clone()).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key(header::RETRY_AFTER));
    let body: Value = serde_json::from_slice(&third.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Someone else is not held back by it.
    let (_, other, _) = api.signup("other@example.com").await;
    assert_eq!(open(other).await.status(), StatusCode::OK);
    // Closing a stream gives its place back.
    drop(first);
    assert_eq!(open(api.admin.clone()).await.status(), StatusCode::OK);
}

/// The served OpenAPI document passes a real validator (swagger-parser, against the OpenAPI
/// 3.1 schema), says how to authenticate, and describes a document's content as it is sent.
#[tokio::test]
async fn openapi_passes_a_real_validator() {
    let api = Api::new(Backend::Sqlite).await;
    let doc = api.get("/api/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.body.to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg("validate-openapi.mjs")
        .arg(&file)
        .current_dir(common::node_clients())
        .output()
        .expect("node runs the validator");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid: OpenAPI 3.1"));

    let spec = &doc.body;
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(spec["components"]["securitySchemes"]["cookie"]["in"], "cookie");
    assert_eq!(spec["security"], json!([{"bearer": []}, {"cookie": []}]));
    assert_eq!(spec["paths"]["/api/v1/auth/login"]["post"]["security"], json!([{}]), "sign-in needs no credential");
    assert!(spec["paths"]["/api/v1/workspaces"]["get"].get("security").is_none(), "the default applies");
    let content = &spec["components"]["schemas"]["ContentBody"]["properties"]["content"]["oneOf"];
    assert_eq!(content[0]["type"], "string", "{content}");
    assert_eq!(content[1]["type"], "object", "{content}");
}

/// Every route is registered through utoipa-axum's `routes!`, which documents it: a route
/// added to the axum router directly would be served undocumented. (The probe above checks
/// the other direction: everything documented is served.)
#[test]
fn routes_are_only_added_where_they_are_documented() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    if [".route(", ".route_service(", ".nest(", ".nest_service("].iter().any(|m| code.contains(m))
                        || (code.contains(".merge(") && !code.contains("SwaggerUi::new"))
                    {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "routes added outside routes!(…): {found:#?}");
}
