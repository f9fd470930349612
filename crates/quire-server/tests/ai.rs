//! AI over HTTP, on SQLite and PostgreSQL: the taxonomy and templates, streamed generation
//! with the built-in provider and with a remote one (a fake OpenAI server), sealed provider
//! keys, a workspace's choice, a caller that goes away, refusals, and the interactions log.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, assert_error};
use futures_util::StreamExt;
use quire_store::testing::Backend;
use serde_json::{Value, json};
use tower::ServiceExt;

quire_store::for_each_backend!(
    a_prd_draft_streams_from_the_builtin_provider_and_is_logged,
    bad_generations_are_refused,
    a_remote_provider_is_sealed_chosen_and_streamed,
    a_caller_that_goes_away_stops_the_provider,
);

async fn workspace(api: &Api) -> String {
    let r = api.post("/api/v1/workspaces", json!({"name": "Studio"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// The events of an SSE body: (event, data).
fn frames(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|f| {
            let event = f.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = f.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

async fn generate(api: &Api, body: Value) -> (StatusCode, Vec<(String, Value)>, Value) {
    let r = api.post("/api/v1/ai/generate", body).await;
    match &r.body {
        Value::String(s) => {
            assert_eq!(r.headers[header::CONTENT_TYPE], "text/event-stream");
            (r.status, frames(s), Value::Null)
        }
        other => (r.status, Vec::new(), other.clone()),
    }
}

fn text_of(frames: &[(String, Value)]) -> String {
    frames.iter().filter(|(e, _)| e == "chunk").map(|(_, d)| d["text"].as_str().unwrap()).collect()
}

async fn a_prd_draft_streams_from_the_builtin_provider_and_is_logged(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    let r = api.get("/api/v1/taxonomy/prd-sections").await;
    assert_eq!(r.body["items"][0]["key"], "problem");
    assert_eq!(
        api.get("/api/v1/taxonomy/design-styles").await.body["items"][0]["palette"].as_array().unwrap().len(),
        5
    );
    assert!(api.get("/api/v1/taxonomy/room-types").await.body["items"].as_array().unwrap().len() >= 8);
    let t = api.get("/api/v1/ai/templates").await;
    assert_eq!(
        (t.body["items"][0]["name"].as_str(), t.body["items"][0]["version"].as_u64()),
        (Some("prd.draft"), Some(1))
    );

    let request = "Field teams lose notes when offline. It must sync edits when the connection returns.";
    let (status, frames, _) = generate(
        &api,
        json!({"workspace": ws, "template": "prd.draft", "variables": {"request": request, "title": "Offline sync"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = text_of(&frames);
    assert!(text.starts_with("# Offline sync\n"), "{text}");
    assert!(text.contains("## Problem\n\n- Field teams lose notes when offline."), "{text}");
    assert!(text.contains("## Functional requirements\n\n- It must sync edits when the connection returns."), "{text}");
    let (last, done) = frames.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!((done["provider"].as_str(), done["model"].as_str()), (Some("quire-builtin"), Some("quire-builtin")));
    assert_eq!(done["quality"]["passed"], true, "{done}");
    assert!(done["usage"]["completion_tokens"].as_u64().unwrap() > 10);

    let log = api.get(&format!("/api/v1/ai/interactions?workspace={ws}")).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let entry = &log.body["items"][0];
    assert_eq!(entry["id"], done["interaction_id"]);
    assert_eq!(
        (&entry["status"], &entry["template"], &entry["template_version"], &entry["kind"], &entry["provider"]),
        (&json!("ok"), &json!("prd.draft"), &json!(1), &json!("text"), &json!("quire-builtin"))
    );
    assert!(entry["prompt"].as_str().unwrap().starts_with("[system] You are a senior product manager at Studio."));
    assert!(entry["prompt"].as_str().unwrap().contains(request));
    assert_eq!(entry["tokens_out"], done["usage"]["completion_tokens"]);
    assert!(entry["latency_ms"].as_i64().unwrap() >= 0 && entry["first_chunk_ms"].as_i64().is_some());
}

async fn bad_generations_are_refused(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    let cases = [
        (json!({"workspace": ws, "template": "prd.draft"}), StatusCode::UNPROCESSABLE_ENTITY, "missing_variable"),
        (
            json!({"workspace": ws, "template": "prd.draft", "variables": {"request": "x", "tone": "y"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_variable",
        ),
        (
            json!({"workspace": ws, "template": "prd.draft", "template_version": 7, "variables": {"request": "x"}}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"workspace": ws, "template": "moodboard.image", "variables": {"room_type": "bedroom", "style": "japandi"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (json!({"workspace": ws}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"workspace": ws, "messages": []}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (
            json!({"workspace": ws, "messages": [{"role": "user", "content": "hi"}], "temperature": 5.0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"workspace": ws, "messages": [{"role": "user", "content": "hi"}], "provider": "nope"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"workspace": ws, "messages": [{"role": "user", "content": "x".repeat(70_000)}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (json!({"workspace": ws, "prompt": "hi"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = api.post("/api/v1/ai/generate", body.clone()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{body}: {}", r.body);
    }
    // A viewer reads the workspace but does not generate.
    let (viewer, token, _) = api.signup("viewer@example.com").await;
    let r = api
        .call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{viewer}"), Some(json!({"role": "viewer"})), &[])
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let body = json!({"workspace": ws, "messages": [{"role": "user", "content": "hi"}]});
    let r = api.call_as(Some(&token), Method::POST, "/api/v1/ai/generate", Some(body), &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call_as(
            Some(&token),
            Method::PUT,
            &format!("/api/v1/workspaces/{ws}/ai"),
            Some(json!({"text": "quire-builtin"})),
            &[],
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call_as(
            Some(&token),
            Method::PUT,
            "/api/v1/ai/providers/mine",
            Some(json!({"kind": "openai", "base_url": "http://127.0.0.1:1"})),
            &[],
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api.get("/api/v1/ai/interactions?workspace=nope").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

/// A fake OpenAI-compatible server: streams a fixed completion, or chunks until the client
/// goes away (`endless`), noting the Authorization header and whether the client left.
#[derive(Default)]
struct Fake {
    endless: bool,
    auth: std::sync::Mutex<Vec<String>>,
    left: AtomicBool,
}

struct Watch(Arc<Fake>);
impl Drop for Watch {
    fn drop(&mut self) {
        self.0.left.store(true, Ordering::SeqCst);
    }
}

async fn completions(
    axum::extract::State(f): axum::extract::State<Arc<Fake>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    f.auth.lock().unwrap().push(headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").into());
    let chunk = |t: &str| {
        format!("data: {}\n\n", json!({"model": "fake-1", "choices": [{"index": 0, "delta": {"content": t}}]}))
    };
    let body = if f.endless {
        let watch = Watch(f.clone());
        Body::from_stream(futures_util::stream::unfold(watch, move |w| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((Ok::<_, std::convert::Infallible>(chunk("more ")), w))
        }))
    } else {
        let end = json!({"model": "fake-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 2}});
        Body::from(format!("{}{}data: {end}\n\ndata: [DONE]\n\n", chunk("Hello "), chunk("there")))
    };
    axum::response::Response::builder().header("content-type", "text/event-stream").body(body).unwrap()
}

async fn fake(endless: bool) -> (Arc<Fake>, String) {
    let f = Arc::new(Fake { endless, ..Default::default() });
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions)).with_state(f.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (f, url)
}

async fn a_remote_provider_is_sealed_chosen_and_streamed(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    let (fake, url) = fake(false).await;
    let spec = json!({"kind": "openai", "base_url": url, "api_key": "sk-very-secret", "text_model": "fake-1"});
    let r = api.call(Method::PUT, "/api/v1/ai/providers/fakeai", Some(spec), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((&r.body["api_key_set"], &r.body["text"], &r.body["image"]), (&json!(true), &json!(true), &json!(true)));
    let listed = api.get("/api/v1/ai/providers").await;
    assert_eq!(listed.body[0]["name"], "quire-builtin");
    assert_eq!(listed.body[1]["name"], "fakeai");
    assert!(!listed.body.to_string().contains("sk-very-secret"), "the key is never shown");
    let stored = api.app.store().setting("ai.provider.fakeai").await.unwrap().unwrap();
    assert!(stored.starts_with("enc:v1:") && !stored.contains("sk-very-secret"), "stored sealed: {stored}");
    let bad =
        api.call(Method::PUT, "/api/v1/ai/providers/bad", Some(json!({"kind": "gemini", "base_url": url})), &[]).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let bad = api
        .call(Method::PUT, "/api/v1/ai/providers/Bad_Name", Some(json!({"kind": "openai", "base_url": url})), &[])
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    assert_eq!(api.get(&format!("/api/v1/workspaces/{ws}/ai")).await.body["text"], "quire-builtin", "the default");
    let r = api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"text": "nope"})), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"text": "fakeai"})), &[]).await;
    assert_eq!(
        (r.status, &r.body["text"], &r.body["image"]),
        (StatusCode::OK, &json!("fakeai"), &json!("quire-builtin"))
    );

    let (status, frames, _) =
        generate(&api, json!({"workspace": ws, "messages": [{"role": "user", "content": "Greet me"}]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text_of(&frames), "Hello there");
    let done = &frames.last().unwrap().1;
    assert_eq!(
        (&done["provider"], &done["model"], &done["usage"]["prompt_tokens"]),
        (&json!("fakeai"), &json!("fake-1"), &json!(9))
    );
    assert_eq!(fake.auth.lock().unwrap().as_slice(), ["Bearer sk-very-secret"]);
    let log = api.get(&format!("/api/v1/ai/interactions?workspace={ws}&status=ok")).await;
    assert_eq!(
        (&log.body["items"][0]["provider"], &log.body["items"][0]["model"]),
        (&json!("fakeai"), &json!("fake-1"))
    );
}

async fn a_caller_that_goes_away_stops_the_provider(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    let (fake, url) = fake(true).await;
    let r = api
        .call(Method::PUT, "/api/v1/ai/providers/endless", Some(json!({"kind": "openai", "base_url": url})), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = json!({"workspace": ws, "provider": "endless", "messages": [{"role": "user", "content": "Go on"}]});
    let req = Request::post("/api/v1/ai/generate")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.into_body().into_data_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: chunk"));
    drop(stream);
    for _ in 0..300 {
        let log = api.get(&format!("/api/v1/ai/interactions?workspace={ws}")).await;
        if fake.left.load(Ordering::SeqCst) && log.body["items"][0]["status"] == "cancelled" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the provider's connection stayed open or the interaction was not logged as cancelled");
}
