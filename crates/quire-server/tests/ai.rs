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
    pipelines_draft_with_ai_generator,
    an_approved_draft_becomes_the_documents_content_with_a_version,
    a_section_is_rewritten_as_asked,
    the_seeds_article_runs_in_the_seeds_shape,
    a_draft_that_fails_the_gate_is_retried_then_fails_with_the_reason,
    ai_generator_refuses_what_no_retry_can_fix,
    image_generator_keeps_images_as_blobs,
    images_that_fail_the_gate_are_retried_then_fail,
    workspaces_define_versioned_prompt_templates,
    a_failing_provider_opens_its_circuit_and_shows_in_readyz,
    texts_are_embedded_and_logged,
    the_instance_default_is_inherited_and_providers_in_use_stay,
    cancelling_a_context_stops_its_generation,
    images_are_painted_onto_a_board_and_near_duplicates_painted_again,
    remote_providers_paint_boards_and_only_rejected_images_are_painted_again,
    more_like_this_paints_from_the_image_itself,
);

async fn workspace(api: &Api) -> String {
    let r = api.post("/api/v1/workspaces", json!({"name": "Studio"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn generate(api: &Api, body: Value) -> (StatusCode, Vec<(String, Value)>, Value) {
    let r = api.post("/api/v1/ai/generate", body).await;
    match &r.body {
        Value::String(s) => {
            assert_eq!(r.headers[header::CONTENT_TYPE], "text/event-stream");
            (r.status, common::frames(s), Value::Null)
        }
        other => (r.status, Vec::new(), other.clone()),
    }
}

/// The interactions log for `query` once it holds at least `n` entries (it is written in
/// batches, just after each call ends).
async fn logged(api: &Api, query: &str, n: usize) -> common::Reply {
    for _ in 0..200 {
        let r = api.get(&format!("/api/v1/ai/interactions?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.body["items"].as_array().is_some_and(|i| i.len() >= n) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the log never held {n} entries for {query}");
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

    let log = logged(&api, &format!("workspace={ws}"), 1).await;
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
    /// The chunks of the completion (`Hello `, `there` when none).
    reply: Vec<String>,
    /// Completions asked for.
    calls: std::sync::atomic::AtomicUsize,
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
    f.calls.fetch_add(1, Ordering::SeqCst);
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
        let reply = if f.reply.is_empty() { vec!["Hello ".to_string(), "there".to_string()] } else { f.reply.clone() };
        let chunks: String = reply.iter().map(|t| chunk(t)).collect();
        Body::from(format!("{chunks}data: {end}\n\ndata: [DONE]\n\n"))
    };
    axum::response::Response::builder().header("content-type", "text/event-stream").body(body).unwrap()
}

/// Embeddings as OpenAI answers them: `[i, 1]` for input i, listed last first.
async fn embed(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let n = body["input"].as_array().map_or(1, Vec::len);
    let data: Vec<Value> =
        (0..n).rev().map(|i| json!({"object": "embedding", "index": i, "embedding": [i as f32, 1.0]})).collect();
    axum::Json(
        json!({"object": "list", "model": "fake-embed", "data": data, "usage": {"prompt_tokens": 7, "total_tokens": 7}}),
    )
}

async fn fake(endless: bool) -> (Arc<Fake>, String) {
    fake_with(Fake { endless, ..Default::default() }).await
}

async fn fake_with(f: Fake) -> (Arc<Fake>, String) {
    let f = Arc::new(f);
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .route("/v1/embeddings", axum::routing::post(embed))
        .with_state(f.clone());
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
    let log = logged(&api, &format!("workspace={ws}&status=ok"), 1).await;
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

/// An API with a worker that retries at once.
async fn with_worker(b: Backend) -> (Api, String, quire_jobs::WorkerHandle) {
    // RUST_LOG=warn shows what the worker and the store say (already set up: fine).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init()
        .ok();
    let mut config = common::relaxed();
    config.jobs.poll_interval = Duration::from_millis(20);
    config.jobs.cancel_check = Duration::from_millis(50);
    config.jobs.retry = quire_jobs::RetryPolicy { base: Duration::from_millis(10), max: Duration::from_millis(20) };
    let api = Api::with(b, Default::default(), config).await;
    let ws = workspace(&api).await;
    let worker = quire_jobs::WorkerConfig { schedules: false, grace: Duration::from_millis(200), ..Default::default() };
    let worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();
    (api, ws, worker)
}

/// Submits a context and waits until it ends.
async fn run_context(api: &Api, body: Value) -> Value {
    let r = api.post("/api/v1/contexts", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    // A deadline for a loaded machine, not a measure: most contexts end in milliseconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        last = api.get(&format!("/api/v1/contexts/{id}")).await.body;
        if ["completed", "failed", "cancelled"].contains(&last["status"].as_str().unwrap()) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, events) = api.app.store().context_events(&quire_core::Principal::System, &id, 0, 100).await.unwrap();
    let events: Vec<String> = events.iter().map(|e| format!("{} {}", e.kind, e.data)).collect();
    panic!("context {id} did not end within 120 s: {last}; events: {events:#?}");
}

async fn pipelines_draft_with_ai_generator(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let pipeline = json!(["template", "ai_generator", "transformer"]);
    // A PRD: prd.draft in the PRD template's sections, with the built-in provider.
    let request = "Field teams lose notes when offline. It must sync edits when the connection returns.";
    let doc = api.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Sync"})).await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let md = json!({"format": "markdown", "content": "# Sync\n\n## Context\n\nx\n\n## Rollout\n\ny\n"});
    let put = api.call(Method::PUT, &format!("/api/v1/documents/{doc}/content"), Some(md), &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "prd", "pipeline": pipeline,
               "data": {"title": "Offline sync", "request": request, "temperature": 0.2, "max_tokens": 4000,
                        "document_id": doc}}),
    )
    .await;
    assert_eq!(c["status"], "completed", "{c}");
    // A document's drafts are found by the document.
    let drafts = api.get(&format!("/api/v1/contexts?workspace={ws}&document={doc}")).await;
    assert_eq!(drafts.body["items"].as_array().map(|i| i.len()), Some(1), "{}", drafts.body);
    assert_eq!(drafts.body["items"][0]["id"], c["id"]);
    let data = &c["data"];
    assert_eq!(data["model_used"], "quire-builtin");
    assert_eq!(
        data["generation_parameters"],
        json!({"provider": "quire-builtin", "prompt_template": "prd.draft", "prompt_template_version": 1,
               "temperature": 0.2, "max_tokens": 4000})
    );
    let content = &data["generated_content"];
    assert_eq!(content["problem"], "- Field teams lose notes when offline.", "{content}");
    assert_eq!(content["requirements"], "- It must sync edits when the connection returns.", "{content}");
    assert!(content["timeline"].as_str().unwrap().starts_with("_Open question:_"), "{content}");
    let markdown = data["formatted_content"]["content"].as_str().unwrap();
    assert!(markdown.starts_with("# Offline sync\n\n## Problem\n\n- Field teams lose notes"), "{markdown}");
    let log = logged(&api, &format!("workspace={ws}&context_id={}", c["id"].as_str().unwrap()), 1).await;
    let entry = &log.body["items"][0];
    assert_eq!(
        (&entry["status"], &entry["template"], &entry["provider"], &entry["context_id"]),
        (&json!("ok"), &json!("prd.draft"), &json!("quire-builtin"), &c["id"])
    );
    assert!(entry["prompt"].as_str().unwrap().contains("## Non-goals\nWhat is deliberately out of scope"));
    assert!(
        entry["prompt"].as_str().unwrap().contains("already has these sections: Sync, Context, Rollout."),
        "the document's headings enrich the prompt: {}",
        entry["prompt"]
    );
    // A document of another workspace is not this context's to read.
    let other =
        api.post("/api/v1/workspaces", json!({"name": "Elsewhere"})).await.body["id"].as_str().unwrap().to_string();
    let theirs =
        api.post(&format!("/api/v1/workspaces/{other}/documents"), json!({"kind": "prd", "title": "Theirs"})).await;
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "prd", "pipeline": ["ai_generator"],
               "data": {"request": "x", "document_id": theirs.body["id"]}}),
    )
    .await;
    assert_eq!((c["status"].as_str(), c["error"]["code"].as_str()), (Some("failed"), Some("invalid_input")), "{c}");

    // The article of the pipeline's own example: content.draft in the article template's
    // sections, with a remote provider named in the data.
    let reply = [
        "# Microservices\n\n## Introduction\n",
        "Services talk over gRPC.\n\n## Body\n",
        "### One\nDetail.\n\n",
        "## Conclusion\nShip small.\n",
    ];
    let (fake, url) =
        fake_with(Fake { reply: reply.iter().map(|s| s.to_string()).collect(), ..Default::default() }).await;
    let spec = json!({"kind": "openai", "base_url": url, "text_model": "fake-1"});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/writer", Some(spec), &[]).await.status, StatusCode::OK);
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "article", "pipeline": pipeline,
               "data": {"title": "Microservices", "keywords": ["gRPC", "tracing"], "target_audience": "developers",
                        "tone": "technical", "provider": "writer"}}),
    )
    .await;
    assert_eq!(c["status"], "completed", "{c}");
    let data = &c["data"];
    assert_eq!(
        (&data["model_used"], &data["generation_parameters"]["prompt_template"]),
        (&json!("fake-1"), &json!("content.draft"))
    );
    assert_eq!(
        data["generated_content"],
        json!({"introduction": "Services talk over gRPC.", "body": [{"heading": "One", "content": "Detail."}],
               "conclusion": "Ship small."})
    );
    let defaults = &data["generation_parameters"];
    assert_eq!((&defaults["temperature"], &defaults["max_tokens"]), (&json!(0.7), &json!(2000)), "{defaults}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    // The text streams as `chunk` events that put together make the whole reply.
    let id = c["id"].as_str().unwrap();
    let (_, events) = api.app.store().context_events(&quire_core::Principal::System, id, 0, 1000).await.unwrap();
    let mut streamed = String::new();
    for e in events.iter().filter(|e| e.kind == "chunk") {
        let offset = e.data["offset"].as_u64().unwrap() as usize;
        if offset == 0 {
            streamed.clear();
        }
        assert_eq!(offset, streamed.chars().count(), "each chunk continues the text: {:?}", e.data);
        assert_eq!(e.data["component"], "ai_generator");
        streamed.push_str(e.data["text"].as_str().unwrap());
    }
    assert_eq!(streamed, reply.concat());
    let log = logged(&api, &format!("workspace={ws}&context_id={}", c["id"].as_str().unwrap()), 1).await;
    let prompt = log.body["items"][0]["prompt"].as_str().unwrap();
    assert!(prompt.contains("Write a technical piece titled \"Microservices\" for developers."), "{prompt}");
    assert!(prompt.contains("Cover these terms: gRPC, tracing."), "{prompt}");
    assert!(prompt.contains("## Introduction\nIntroduce the topic with technical context"), "{prompt}");
}

async fn an_approved_draft_becomes_the_documents_content_with_a_version(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let doc = api.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Sync"})).await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let draft = |data: Value| json!({"workspace": ws, "type": "prd", "pipeline": ["template", "ai_generator", "transformer"], "data": data});
    let request = "Field teams lose notes when offline. It must sync edits when the connection returns.";
    // Not yet complete: nothing to approve (a long wait keeps it pending).
    let waiting = api
        .post(
            "/api/v1/contexts",
            json!({"workspace": ws, "type": "prd", "pipeline": ["wait", "ai_generator"],
            "data": {"wait_ms": 60_000, "request": request, "document_id": doc}}),
        )
        .await;
    let early =
        api.post(&format!("/api/v1/contexts/{}/approve", waiting.body["id"].as_str().unwrap()), json!({})).await;
    assert_error(&early, StatusCode::CONFLICT, "conflict");
    // A context that drafts no document has nothing to approve into.
    let loose = run_context(&api, draft(json!({"request": request}))).await;
    let r = api.post(&format!("/api/v1/contexts/{}/approve", loose["id"].as_str().unwrap()), json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    let c = run_context(&api, draft(json!({"title": "Offline sync", "request": request, "document_id": doc}))).await;
    assert_eq!(c["status"], "completed", "{c}");
    let id = c["id"].as_str().unwrap();
    // A viewer may read the draft but not approve it.
    let (_, token, _) = api.signup("viewer@example.com").await;
    let inv = api.post(&format!("/api/v1/workspaces/{ws}/invitations"), json!({"role": "viewer"})).await;
    let accept = json!({"token": inv.body["token"]});
    let r = api.call_as(Some(&token), Method::POST, "/api/v1/invitations/accept", Some(accept), &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = api.call_as(Some(&token), Method::POST, &format!("/api/v1/contexts/{id}/approve"), None, &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // The document says each caller's role (the web app shows it read-only to viewers).
    let seen = api.call_as(Some(&token), Method::GET, &format!("/api/v1/documents/{doc}"), None, &[]).await;
    assert_eq!((&seen.body["role"], &seen.body["title"]), (&json!("viewer"), &json!("Sync")), "{}", seen.body);
    assert_eq!(api.get(&format!("/api/v1/documents/{doc}")).await.body["role"], "owner");

    let approved = api.post(&format!("/api/v1/contexts/{id}/approve"), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["document_id"], doc.as_str());
    let approver = approved.body["version"]["authors"][0]["id"].clone();
    assert!(approver.is_string());
    assert_eq!(approved.body["context"]["approved_by"], approver, "{}", approved.body);
    let listed = api.get(&format!("/api/v1/contexts/{id}")).await;
    assert!(listed.body["approved_at"].is_string(), "the context says it was approved: {}", listed.body);
    let version = &approved.body["version"];
    assert_eq!(version["version"], "1.0.0", "{}", approved.body);
    assert_eq!(version["message"], "Approved the AI draft by quire-builtin");
    let md = api.get(&format!("/api/v1/documents/{doc}/content?format=markdown")).await;
    let md = md.body.as_str().unwrap();
    assert!(md.starts_with("# Offline sync\n\n## Problem\n\n- Field teams lose notes"), "{md}");
    // prd.approved is in the outbox, naming the draft and the version.
    let event_id = approved.body["event_id"].as_i64().unwrap();
    let filter = quire_core::EventFilter::default();
    let all = api.app.store().events_after(&quire_core::Principal::System, event_id - 1, &filter, 10).await.unwrap();
    let event = all.iter().find(|e| e.id == event_id).expect("the prd.approved event");
    assert_eq!(event.name, "prd.approved");
    assert_eq!((&event.data["context_id"], &event.data["version"]), (&json!(id), &json!("1.0.0")), "{:?}", event.data);
    assert_eq!(event.document_id.as_deref(), Some(doc.as_str()));
    // The draft's life is in the outbox: its prompt, its generation's start and end.
    let ai = quire_core::EventFilter { names: vec!["ai.*".into()], ..Default::default() };
    let all = api.app.store().events_after(&quire_core::Principal::System, 0, &ai, 100).await.unwrap();
    let of = |c: &str| all.iter().filter(|e| e.data["context_id"] == c).map(|e| e.name.as_str()).collect::<Vec<_>>();
    assert_eq!(of(id), ["ai.prompt.submitted", "ai.generation.started", "ai.generation.completed"]);
    let started = all.iter().find(|e| e.data["context_id"] == id && e.name == "ai.generation.started").unwrap();
    assert_eq!(
        (started.document_id.as_deref(), &started.data["provider"]),
        (Some(doc.as_str()), &json!("quire-builtin"))
    );
    // A generation that cannot run says why.
    let (loose_id, waiting_id) = (loose["id"].as_str().unwrap(), waiting.body["id"].as_str().unwrap());
    assert_eq!(of(loose_id), ["ai.prompt.submitted", "ai.generation.started", "ai.generation.completed"]);
    assert_eq!(of(waiting_id), ["ai.prompt.submitted"], "still waiting: no generation yet");
    let bad = run_context(
        &api,
        json!({"workspace": ws, "type": "prd", "pipeline": ["ai_generator"], "data": {"request": "x", "provider": "nowhere"}}),
    )
    .await;
    let all = api.app.store().events_after(&quire_core::Principal::System, 0, &ai, 100).await.unwrap();
    let failed = all.iter().find(|e| e.data["context_id"] == bad["id"] && e.name == "ai.generation.failed");
    assert!(failed.is_some_and(|e| e.data["message"].as_str().is_some_and(|m| m.contains("nowhere"))), "{all:?}");
    // Approving the same draft again changes nothing and makes no version.
    let again = api.post(&format!("/api/v1/contexts/{id}/approve"), json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["version"], Value::Null);
}

async fn a_section_is_rewritten_as_asked(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let reply = vec!["- Notes reach the server within 60 s ".to_string(), "of the connection returning.\n".to_string()];
    let (_fake, url) = fake_with(Fake { reply, ..Default::default() }).await;
    let spec = json!({"kind": "openai", "base_url": url, "text_model": "fake-1"});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/writer", Some(spec), &[]).await.status, StatusCode::OK);
    let doc = api.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Sync"})).await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "prd", "pipeline": ["ai_generator"],
               "data": {"prompt_template": "prd.section", "provider": "writer", "document_id": doc, "section": "Goals",
                        "instruction": "make them measurable", "current": "- Faster sync"}}),
    )
    .await;
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["data"]["generated_content"], "- Notes reach the server within 60 s of the connection returning.");
    let log = logged(&api, &format!("workspace={ws}&context_id={}", c["id"].as_str().unwrap()), 1).await;
    let prompt = log.body["items"][0]["prompt"].as_str().unwrap();
    assert!(prompt.contains("rewrite the section \"Goals\" as asked: make them measurable"), "{prompt}");
    assert!(prompt.contains("\"\"\"\n- Faster sync\n\"\"\""), "the section's text is sent: {prompt}");
    // Without an instruction there is nothing to do: refused at once, not retried.
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "prd", "pipeline": ["ai_generator"],
               "data": {"prompt_template": "prd.section", "provider": "writer", "section": "Goals"}}),
    )
    .await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_u64()), (Some("failed"), Some(1)), "{c}");
}

/// Every field path of a JSON value with the kind of value there (`data.body[].heading:
/// string`), as version history judges JSON documents by.
fn paths(v: &Value) -> std::collections::BTreeSet<String> {
    quire_history::field_paths(v).into_iter().map(|(path, kind)| format!("{path}: {kind}")).collect()
}

/// Seed 004's example article, submitted as the seed submits it, through `template`,
/// `ai_generator` (a provider that answers with the seed's text) and `transformer`: each
/// stage has every field path the seed's has, `data` no others but the template, provider
/// and prompt template it records, and the text is the seed's to the character.
async fn the_seeds_article_runs_in_the_seeds_shape(b: Backend) {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/seed_004_article.json")).expect("the seed's stages");
    let stages = &fixture["stages"];
    let (api, ws, _worker) = with_worker(b).await;
    let reply = [
        "## Introduction\n\nMicroservices architecture has revolutionized...\n\n## Body\n\n",
        "### Key Principles\n\nThe fundamental principles include...\n\n",
        "### Implementation Strategies\n\nWhen implementing microservices...\n\n",
        "### Common Challenges\n\nOrganizations often face challenges such as...\n\n",
        "## Conclusion\n\nBy following these best practices, developers can...",
    ];
    let (_fake, url) =
        fake_with(Fake { reply: reply.iter().map(|s| s.to_string()).collect(), ..Default::default() }).await;
    let spec = json!({"kind": "openai", "base_url": url, "text_model": "gpt-4"});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/writer", Some(spec), &[]).await.status, StatusCode::OK);
    let chosen =
        api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"text": "writer"})), &[]).await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.body);

    let initial = &stages["initial"];
    let submit =
        |pipeline: Value| json!({"workspace": ws, "type": "article", "pipeline": pipeline, "data": initial["data"]});
    let contains = |ours: &Value, seed: &Value, what: &str| {
        let (ours, seed) = (paths(ours), paths(seed));
        let missing: Vec<&String> = seed.difference(&ours).collect();
        assert!(missing.is_empty(), "{what}: the seed's {missing:?} are missing from {ours:?}");
    };
    // What Quire adds to the seed's data: which template version and which provider and
    // prompt template made it.
    let provenance = [
        "template.name: string",
        "template.version: number",
        "generation_parameters.provider: string",
        "generation_parameters.prompt_template: string",
        "generation_parameters.prompt_template_version: number",
    ]
    .map(String::from);
    let same_data = |ours: &Value, seed: &Value, what: &str| {
        contains(ours, seed, what);
        let extra: Vec<String> =
            paths(ours).difference(&paths(seed)).filter(|p| !provenance.contains(p)).cloned().collect();
        assert!(extra.is_empty(), "{what}: data the seed does not have: {extra:?}");
    };

    let r = api.post("/api/v1/contexts", submit(initial["pipeline"].clone())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    contains(&r.body, initial, "the submitted context");
    same_data(&r.body["data"], &initial["data"], "the submitted data");

    let stage = run_context(&api, submit(json!(["template"]))).await;
    same_data(&stage["data"], &stages["after_template"]["data"], "after template");
    let template = &stages["after_template"]["data"]["template"];
    assert_eq!(
        (&stage["data"]["template"]["id"], &stage["data"]["template"]["sections"]),
        (&template["id"], &template["sections"])
    );

    let stage = run_context(&api, submit(json!(["template", "ai_generator"]))).await;
    let seed = &stages["after_ai_generator"]["data"];
    same_data(&stage["data"], seed, "after ai_generator");
    assert_eq!(stage["data"]["generated_content"], seed["generated_content"]);
    assert_eq!(stage["data"]["model_used"], "fake-1", "the model that answered, as it named itself");
    let parameters = &stage["data"]["generation_parameters"];
    assert_eq!((&parameters["temperature"], &parameters["max_tokens"]), (&json!(0.7), &json!(2000)));

    let done = run_context(&api, submit(initial["pipeline"].clone())).await;
    let seed = &stages["final"];
    assert_eq!(done["status"], "completed", "{done}");
    contains(&done, seed, "the completed context");
    same_data(&done["data"], &seed["data"], "the completed data");
    assert_eq!(done["data"]["formatted_content"]["content"], seed["data"]["formatted_content"]["content"]);
    assert_eq!(done["data"]["formatted_content"]["format"], "markdown");
    assert_eq!(paths(&done["processing"]), paths(&seed["processing"]), "processing says what the seed's does, no more");
}

async fn a_draft_that_fails_the_gate_is_retried_then_fails_with_the_reason(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let (fake, url) = fake(false).await; // answers "Hello there": no section at all
    let spec = json!({"kind": "openai", "base_url": url});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/terse", Some(spec), &[]).await.status, StatusCode::OK);
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "prd", "pipeline": ["template", "ai_generator"], "max_attempts": 3,
               "data": {"title": "T", "request": "Make it faster.", "provider": "terse"}}),
    )
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["error"]["code"], "quality_gate_failed", "{c}");
    assert!(c["error"]["message"].as_str().unwrap().starts_with("required sections missing: Problem, Goals"), "{c}");
    assert_eq!((c["attempts"].as_i64(), fake.calls.load(Ordering::SeqCst)), (Some(3), 3), "tried again each attempt");
    let log = logged(&api, &format!("workspace={ws}&status=gate_failed"), 3).await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 3);
    assert!(c.get("data").and_then(|d| d.get("generated_content")).is_none(), "nothing kept from a refused draft");
}

async fn ai_generator_refuses_what_no_retry_can_fix(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let cases = [
        (
            json!({"prompt_template": "nope.draft", "title": "T"}),
            "template_not_found",
            "no prompt template 'nope.draft'",
        ),
        (json!({"prompt_template": "moodboard.image", "title": "T"}), "invalid_input", "does not fit"),
        (json!({"provider": "ghost", "title": "T"}), "invalid_input", "no AI provider 'ghost'"),
        (json!({"temperature": 3, "title": "T"}), "invalid_input", "temperature"),
        (json!({"max_tokens": 0, "title": "T"}), "invalid_input", "max_tokens"),
        (json!({"title": {"a": 1}}), "invalid_input", "data.title must be text"),
        (json!({"tone": "dry"}), "missing_variable", "'title' is required"),
        (json!({"title": "T", "document_id": "doc_missing"}), "invalid_input", "no document 'doc_missing'"),
    ];
    for (data, code, says) in cases {
        let c = run_context(
            &api,
            json!({"workspace": ws, "type": "article", "pipeline": ["ai_generator"], "max_attempts": 3, "data": data}),
        )
        .await;
        assert_eq!((c["status"].as_str(), c["error"]["code"].as_str()), (Some("failed"), Some(code)), "{data}: {c}");
        assert!(c["error"]["message"].as_str().unwrap().contains(says), "{data}: {c}");
        assert_eq!(c["attempts"], 1, "not retried: {data}");
    }
}

async fn image_generator_keeps_images_as_blobs(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "moodboard", "pipeline": ["image_generator"],
               "data": {"room_type": "bedroom", "style": "japandi", "notes": "a reading nook", "count": 2,
                        "width": 320, "height": 240, "seed": 7}}),
    )
    .await;
    assert_eq!(c["status"], "completed", "{c}");
    let data = &c["data"];
    assert_eq!(data["model_used"], "quire-builtin");
    let p = &data["generation_parameters"];
    assert_eq!(
        (&p["provider"], &p["prompt_template"], &p["width"], &p["height"], &p["count"], &p["seed"], &p["style"]),
        (
            &json!("quire-builtin"),
            &json!("moodboard.image"),
            &json!(320),
            &json!(240),
            &json!(2),
            &json!(7),
            &json!("japandi")
        )
    );
    let prompt = p["prompt"].as_str().unwrap();
    assert!(
        prompt.starts_with("a bedroom") && prompt.contains("japandi") && prompt.contains("a reading nook"),
        "{prompt}"
    );
    assert!(p["negative_prompt"].as_str().unwrap().contains("watermark"));
    let images = data["generated_images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_ne!(images[0]["sha256"], images[1]["sha256"]);
    for img in images {
        assert_eq!(
            (&img["media_type"], &img["width"], &img["height"]),
            (&json!("image/png"), &json!(320), &json!(240))
        );
        let url = img["url"].as_str().unwrap();
        assert_eq!(url, format!("/api/v1/workspaces/{ws}/assets/{}/original", img["sha256"].as_str().unwrap()));
        let req = Request::get(url)
            .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
            .body(Body::empty())
            .unwrap();
        let res = api.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "image/png");
        assert!(res.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        let etag = res.headers()[header::ETAG].clone();
        let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
        assert_eq!(bytes.len() as u64, img["size"].as_u64().unwrap());
        assert_eq!(quire_auth::sha256_hex(&bytes), img["sha256"].as_str().unwrap(), "named by its content");
        let again = api.call(Method::GET, url, None, &[(header::IF_NONE_MATCH.as_str(), etag.to_str().unwrap())]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    // The interaction, with its context.
    let log = logged(&api, &format!("workspace={ws}&kind=image"), 1).await;
    let entry = &log.body["items"][0];
    assert_eq!(
        (&entry["status"], &entry["context_id"], &entry["template"]),
        (&json!("ok"), &c["id"], &json!("moodboard.image"))
    );
    assert!(entry["prompt"].as_str().unwrap().contains("\n\n[negative] "), "{}", entry["prompt"]);
    // The events show the painting's end.
    let events = api.get(&format!("/api/v1/contexts/{}/events", c["id"].as_str().unwrap())).await;
    assert!(events.body.to_string().contains("quire-builtin painted 2 image(s)"), "{}", events.body);

    // Blobs are the workspace's: an outsider sees nothing, a bad name is refused.
    let sha = images[0]["sha256"].as_str().unwrap();
    let (_, outsider, _) = api.signup("outsider@example.com").await;
    let r = api.call_as(Some(&outsider), Method::GET, &format!("/api/v1/workspaces/{ws}/blobs/{sha}"), None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.get(&format!("/api/v1/workspaces/{ws}/blobs/{}", "0".repeat(64))).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.get(&format!("/api/v1/workspaces/{ws}/blobs/NOTHEX")).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    // Bad sizes and counts fail at once.
    for (data, says) in [
        (json!({"room_type": "bedroom", "style": "japandi", "width": 100}), "multiple of 8"),
        (
            json!({"room_type": "bedroom", "style": "japandi", "height": 4096}),
            "height must be a whole number from 64 to 2048",
        ),
        (json!({"room_type": "bedroom", "style": "japandi", "count": 9}), "count must be a whole number from 1 to 8"),
        (json!({"room_type": "garage", "style": "japandi"}), "must be one of"),
        (json!({"room_type": "bedroom", "style": "japandi", "prompt_template": "prd.draft"}), "does not fit"),
    ] {
        let c = run_context(&api, json!({"workspace": ws, "type": "moodboard", "pipeline": ["image_generator"], "max_attempts": 3, "data": data})).await;
        assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("failed"), Some(1)), "{data}: {c}");
        assert!(c["error"]["message"].as_str().unwrap().contains(says), "{data}: {c}");
    }
}

/// A fake Automatic1111 whose images do not decode.
async fn broken_painter() -> (Arc<std::sync::atomic::AtomicUsize>, String) {
    use base64::Engine as _;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new()
        .route(
            "/sdapi/v1/txt2img",
            axum::routing::post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let broken = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n-cut-short");
                async move { axum::Json(json!({"images": [broken], "info": "{\"sd_model_name\": \"fake-sd\"}"})) }
            }),
        )
        .route("/sdapi/v1/progress", axum::routing::get(|| async { axum::Json(json!({"progress": 0.5})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (calls, url)
}

async fn images_that_fail_the_gate_are_retried_then_fail(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let (calls, url) = broken_painter().await;
    let r = api
        .call(Method::PUT, "/api/v1/ai/providers/sd", Some(json!({"kind": "automatic1111", "base_url": url})), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"image": "sd"})), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "moodboard", "pipeline": ["image_generator"], "max_attempts": 2,
               "data": {"room_type": "kitchen", "style": "industrial", "count": 1}}),
    )
    .await;
    assert_eq!(
        (c["status"].as_str(), c["error"]["code"].as_str()),
        (Some("failed"), Some("quality_gate_failed")),
        "{c}"
    );
    assert!(c["error"]["message"].as_str().unwrap().starts_with("image 1 of 1: the image does not decode"), "{c}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "painted again on the second attempt");
    let log = logged(&api, &format!("workspace={ws}&kind=image&status=gate_failed"), 2).await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 2);
    assert_eq!((&log.body["items"][0]["provider"], &log.body["items"][0]["model"]), (&json!("sd"), &json!("fake-sd")));
}

async fn workspaces_define_versioned_prompt_templates(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let brief = |prompt: &str| {
        json!({"workspace": ws, "name": "acme.brief", "output": "text", "description": "Our brief",
               "variables": [{"name": "request", "required": true, "max_chars": 2000}],
               "system": "You write briefs for {{ workspace.name }}.", "prompt": prompt, "sections": ["problem", "goals"]})
    };
    let v1 = api.post("/api/v1/ai/templates", brief("Brief v1: {{ request }}")).await;
    assert_eq!(v1.status, StatusCode::CREATED, "{}", v1.body);
    assert_eq!(
        (&v1.body["name"], &v1.body["version"], &v1.body["source"]),
        (&json!("acme.brief"), &json!(1), &json!("workspace"))
    );
    assert!(v1.headers[header::LOCATION].to_str().unwrap().starts_with("/api/v1/ai/templates/acme.brief?workspace="));
    let v2 = api.post("/api/v1/ai/templates", brief("Brief v2: {{ request }}")).await;
    assert_eq!(v2.body["version"], 2, "{}", v2.body);

    // Refusals: what the template uses must be declared, names are its own, sizes bounded.
    for (body, status, code) in [
        (brief("{{ requester }}"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_template"),
        (
            json!({"workspace": ws, "name": "prd.draft", "output": "text", "prompt": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_template",
        ),
        (brief(&"x".repeat(40_000)), StatusCode::UNPROCESSABLE_ENTITY, "template_too_large"),
        (
            json!({"workspace": ws, "name": "a", "output": "video", "prompt": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ] {
        let r = api.post("/api/v1/ai/templates", body.clone()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{}", r.body);
    }
    let (viewer, token, _) = api.signup("viewer@example.com").await;
    let r = api
        .call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{viewer}"), Some(json!({"role": "viewer"})), &[])
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = api.call_as(Some(&token), Method::POST, "/api/v1/ai/templates", Some(brief("x {{ request }}")), &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // Listed beside the built-in ones; each version readable.
    let list = api.get(&format!("/api/v1/ai/templates?workspace={ws}")).await;
    let names: Vec<(String, u64, String)> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["name"].as_str().unwrap().into(), t["version"].as_u64().unwrap(), t["source"].as_str().unwrap().into())
        })
        .collect();
    assert!(names.contains(&("prd.draft".into(), 1, "builtin".into())), "{names:?}");
    assert!(
        names.contains(&("acme.brief".into(), 1, "workspace".into()))
            && names.contains(&("acme.brief".into(), 2, "workspace".into()))
    );
    let one = api.get(&format!("/api/v1/ai/templates/acme.brief?workspace={ws}&version=1")).await;
    assert_eq!((one.status, &one.body["prompt"]), (StatusCode::OK, &json!("Brief v1: {{ request }}")));
    let none = api.get(&format!("/api/v1/ai/templates/acme.brief?workspace={ws}&version=9")).await;
    assert_error(&none, StatusCode::NOT_FOUND, "not_found");
    let outsider = api
        .call_as(
            Some(&api.signup("out@example.com").await.1),
            Method::GET,
            &format!("/api/v1/ai/templates?workspace={ws}"),
            None,
            &[],
        )
        .await;
    assert_error(&outsider, StatusCode::NOT_FOUND, "not_found");

    // Generation uses the latest, or the version asked for.
    let (status, frames, _) = generate(
        &api,
        json!({"workspace": ws, "template": "acme.brief", "variables": {"request": "Faster checkout."}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(frames.last().unwrap().1["quality"]["passed"], true, "{:?}", frames.last());
    let (_, _, _) = generate(
        &api,
        json!({"workspace": ws, "template": "acme.brief", "template_version": 1, "variables": {"request": "Older."}}),
    )
    .await;
    let log = logged(&api, &format!("workspace={ws}"), 2).await;
    let prompts: Vec<&str> =
        log.body["items"].as_array().unwrap().iter().map(|e| e["prompt"].as_str().unwrap()).collect();
    assert!(prompts.iter().any(|p| p.contains("Brief v2: Faster checkout.")), "{prompts:?}");
    assert!(prompts.iter().any(|p| p.contains("Brief v1: Older.")), "{prompts:?}");
    assert!(prompts[0].starts_with("[system] You write briefs for Studio."), "{prompts:?}");

    // And so do pipelines.
    let c = run_context(
        &api,
        json!({"workspace": ws, "type": "brief", "pipeline": ["ai_generator"],
               "data": {"prompt_template": "acme.brief", "request": "Cut the steps to pay."}}),
    )
    .await;
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(
        (
            &c["data"]["generation_parameters"]["prompt_template"],
            &c["data"]["generation_parameters"]["prompt_template_version"]
        ),
        (&json!("acme.brief"), &json!(2))
    );
    assert_eq!(c["data"]["generated_content"]["problem"], "- Cut the steps to pay.", "{}", c["data"]);
}

async fn a_failing_provider_opens_its_circuit_and_shows_in_readyz(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    // Nothing listens on port 1: every call is refused at once.
    let spec = json!({"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "max_attempts": 1, "open_after": 2, "cool_down_secs": 600});
    let r = api.call(Method::PUT, "/api/v1/ai/providers/dead", Some(spec), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bad = json!({"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "max_attempts": 0});
    let r = api.call(Method::PUT, "/api/v1/ai/providers/worse", Some(bad), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("max_attempts"), "{}", r.body);

    let body = json!({"workspace": ws, "provider": "dead", "messages": [{"role": "user", "content": "hi"}]});
    let r = api.post("/api/v1/ai/generate", body.clone()).await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "provider_failed");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("dead"), "names the provider: {}", r.body);
    let ready = api.get("/readyz").await;
    assert_eq!((ready.status, &ready.body["status"]), (StatusCode::OK, &json!("degraded")), "{}", ready.body);
    assert_eq!(ready.body["checks"]["ai.dead"]["status"], "degraded", "{}", ready.body);

    let r = api.post("/api/v1/ai/generate", body.clone()).await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "provider_failed");
    let ready = api.get("/readyz").await;
    let check = &ready.body["checks"]["ai.dead"];
    assert_eq!((&check["status"], &check["kind"]), (&json!("down"), &json!("ai-provider")), "{}", ready.body);
    assert!(check["error"].as_str().unwrap().starts_with("circuit open after 2 failures"), "{check}");
    assert_eq!(
        (ready.status, &ready.body["status"]),
        (StatusCode::OK, &json!("degraded")),
        "AI never makes Quire unready"
    );

    // While open, calls fail at once without reaching the provider.
    let r = api.post("/api/v1/ai/generate", body).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "provider_failed");
}

async fn texts_are_embedded_and_logged(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    let texts = ["offline sync for field teams", "field teams need offline sync", "quarterly revenue report"];
    let r = api.post("/api/v1/ai/embeddings", json!({"workspace": ws, "input": texts})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["provider"], &r.body["model"], &r.body["dimensions"]),
        (&json!("quire-builtin"), &json!("quire-builtin"), &json!(512))
    );
    let v = common::embedding_vectors(&r.body);
    assert!((common::dot(&v[0], &v[0]) - 1.0).abs() < 1e-3, "normalised");
    assert!(common::dot(&v[0], &v[1]) > common::dot(&v[0], &v[2]) + 0.3, "shared words are nearer");
    let one = api.post("/api/v1/ai/embeddings", json!({"workspace": ws, "input": "just one"})).await;
    assert_eq!(one.body["data"].as_array().unwrap().len(), 1);

    // A remote provider, named in the call: vectors back in the inputs' order.
    let (_fake, url) = fake(false).await;
    let spec = json!({"kind": "openai", "base_url": url, "embedding_model": "fake-embed"});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/emb", Some(spec), &[]).await.status, StatusCode::OK);
    let r =
        api.post("/api/v1/ai/embeddings", json!({"workspace": ws, "input": ["a", "b", "c"], "provider": "emb"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"][2]["embedding"], json!([2.0, 1.0]));
    assert_eq!((&r.body["model"], &r.body["usage"]["prompt_tokens"]), (&json!("fake-embed"), &json!(7)));
    let log = logged(&api, &format!("workspace={ws}&kind=embedding"), 3).await;
    let e = &log.body["items"][0];
    assert_eq!(
        (&e["provider"], &e["model"], &e["tokens_in"], &e["prompt"]),
        (&json!("emb"), &json!("fake-embed"), &json!(7), &json!("a\n\nb\n\nc"))
    );

    for body in [
        json!({"workspace": ws, "input": []}),
        json!({"workspace": ws, "input": ["fine", "  "]}),
        json!({"workspace": ws, "input": vec!["x"; 257]}),
        json!({"workspace": ws, "input": "x".repeat(32_769)}),
        json!({"workspace": ws, "input": 42}),
    ] {
        let r = api.post("/api/v1/ai/embeddings", body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let r = api.post("/api/v1/ai/embeddings", json!({"workspace": ws, "input": "x", "provider": "nope"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

async fn the_instance_default_is_inherited_and_providers_in_use_stay(b: Backend) {
    let auth = quire_auth::AuthConfig::default();
    let api = Api::with_auth(b, Default::default(), common::relaxed(), auth.clone()).await;
    // A second process on the same database, with the same keys.
    let other = quire_server::App::new(api.app.store().clone(), common::relaxed(), auth).await.unwrap();
    let ws = workspace(&api).await;
    let (_fake, url) = fake(false).await;
    let spec = json!({"kind": "openai", "base_url": url, "text_model": "fake-1"});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/house", Some(spec), &[]).await.status, StatusCode::OK);
    assert_eq!(other.ai().workspace(&ws).await.unwrap().text, "quire-builtin", "read (and kept a moment) there");

    // The instance's default reaches every workspace that chose nothing.
    assert_eq!(api.get("/api/v1/ai/default").await.body, json!({}));
    let r = api.call(Method::PUT, "/api/v1/ai/default", Some(json!({"text": "house"})), &[]).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"text": "house"})));
    let mine = api.get(&format!("/api/v1/workspaces/{ws}/ai")).await.body;
    assert_eq!(mine, json!({"text": "house", "image": "quire-builtin", "embedding": "quire-builtin", "chosen": {}}));
    let (status, frames, _) =
        generate(&api, json!({"workspace": ws, "messages": [{"role": "user", "content": "Hi"}]})).await;
    assert_eq!((status, text_of(&frames)), (StatusCode::OK, "Hello there".to_string()));
    // The other process sees the change within the settings' time to live.
    let mut seen = false;
    for _ in 0..60 {
        if other.ai().workspace(&ws).await.unwrap().text == "house" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the other process never saw the new default");

    // A workspace's own choice wins for what it names.
    let r = api
        .call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"text": "quire-builtin"})), &[])
        .await;
    assert_eq!((&r.body["text"], &r.body["chosen"]), (&json!("quire-builtin"), &json!({"text": "quire-builtin"})));
    let r = api.call(Method::PUT, "/api/v1/ai/default", Some(json!({"embedding": "nope"})), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (_, token, _) = api.signup("member@example.com").await;
    let r = api.call_as(Some(&token), Method::PUT, "/api/v1/ai/default", Some(json!({})), &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api.call_as(Some(&token), Method::DELETE, "/api/v1/ai/providers/house", None, &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // A provider still chosen stays; once no one chooses it, it goes.
    let r = api.call(Method::DELETE, "/api/v1/ai/providers/house", None, &[]).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("the instance's default"), "{}", r.body);
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/default", Some(json!({})), &[]).await.status, StatusCode::OK);
    let r = api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"text": "house"})), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.call(Method::DELETE, "/api/v1/ai/providers/house", None, &[]).await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains(&format!("workspace {ws}")), "{}", r.body);
    let r = api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({})), &[]).await;
    assert_eq!(r.body["text"], "quire-builtin");
    let r = api.call(Method::DELETE, "/api/v1/ai/providers/house", None, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let names: Vec<Value> =
        api.get("/api/v1/ai/providers").await.body.as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, [json!("quire-builtin")]);
    let r = api.call(Method::DELETE, "/api/v1/ai/providers/house", None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

async fn cancelling_a_context_stops_its_generation(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let (fake, url) = fake(true).await; // streams until the client goes away
    let spec = json!({"kind": "openai", "base_url": url});
    assert_eq!(api.call(Method::PUT, "/api/v1/ai/providers/endless", Some(spec), &[]).await.status, StatusCode::OK);
    let r = api
        .post(
            "/api/v1/contexts",
            json!({"workspace": ws, "type": "article", "pipeline": ["ai_generator"],
                   "data": {"title": "Forever", "provider": "endless"}}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    // Wait until the provider is streaming (it counts the call), then cancel.
    for _ in 0..300 {
        if fake.calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "the generation started");
    let r = api.post(&format!("/api/v1/contexts/{id}/cancel"), json!({})).await;
    assert!(r.status.is_success(), "{}", r.body);
    for _ in 0..300 {
        let c = api.get(&format!("/api/v1/contexts/{id}")).await.body;
        let log = api.get(&format!("/api/v1/ai/interactions?workspace={ws}&context_id={id}")).await.body;
        if c["status"] == "cancelled" && fake.left.load(Ordering::SeqCst) && log["items"][0]["status"] == "cancelled" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the context, the provider's connection or the log did not end as cancelled");
}

// ---------------------------------------------------------------- generation onto boards

/// What a fake image server paints for one image of a call.
#[derive(Clone, Copy, Debug)]
enum Paint {
    /// A room, different for each seed.
    Room(u64),
    /// All black, as a safety filter leaves an image.
    Black,
    /// A room the provider's safety filter flagged (OpenAI-compatible servers say so).
    Flagged(u64),
}

/// A fake image server speaking Automatic1111's, ComfyUI's and OpenAI's protocols; each call
/// paints the next entry of its script, and records what it was asked.
#[derive(Default)]
struct Studio {
    script: std::sync::Mutex<std::collections::VecDeque<Vec<Paint>>>,
    asked: std::sync::Mutex<Vec<Value>>,
    /// ComfyUI's saved files and prompts' outputs.
    files: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    prompts: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl Studio {
    /// The next call's images, `count` of them at `width` x `height`, as PNG bytes.
    fn paint(&self, asked: Value, width: u32, height: u32, count: usize) -> Vec<(Vec<u8>, bool)> {
        self.asked.lock().unwrap().push(asked);
        let plan = self.script.lock().unwrap().pop_front().unwrap_or_default();
        let style = quire_ai::taxonomy::design_style("japandi").unwrap();
        (0..count)
            .map(|i| {
                let what = plan.get(i).copied().unwrap_or(Paint::Room(1000 + i as u64));
                let (img, flagged) = match what {
                    Paint::Room(seed) => (quire_ai::builtin::paint(style, width, height, seed), false),
                    Paint::Flagged(seed) => (quire_ai::builtin::paint(style, width, height, seed), true),
                    Paint::Black => (image::RgbImage::new(width, height), false),
                };
                let mut out = std::io::Cursor::new(Vec::new());
                img.write_to(&mut out, image::ImageFormat::Png).unwrap();
                (out.into_inner(), flagged)
            })
            .collect()
    }
}

async fn studio(script: Vec<Vec<Paint>>) -> (Arc<Studio>, String) {
    use axum::extract::{Path, Query, State};
    use axum::routing::{get, post};
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let studio = Arc::new(Studio { script: std::sync::Mutex::new(script.into()), ..Default::default() });
    let num = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0) as u32;
    let app = axum::Router::new()
        .route(
            "/sdapi/v1/txt2img",
            post(move |State(s): State<Arc<Studio>>, axum::Json(body): axum::Json<Value>| async move {
                let (w, h, n) = (num(&body["width"]), num(&body["height"]), num(&body["batch_size"]).max(1));
                let images: Vec<String> = s.paint(body, w, h, n as usize).iter().map(|(p, _)| b64(p)).collect();
                axum::Json(json!({"images": images, "info": "{\"sd_model_name\": \"fake-sd\"}"}))
            }),
        )
        .route(
            "/sdapi/v1/img2img",
            post(move |State(s): State<Arc<Studio>>, axum::Json(mut body): axum::Json<Value>| async move {
                let (w, h, n) = (num(&body["width"]), num(&body["height"]), num(&body["batch_size"]).max(1));
                body["path"] = json!("img2img");
                let images: Vec<String> = s.paint(body, w, h, n as usize).iter().map(|(p, _)| b64(p)).collect();
                axum::Json(json!({"images": images, "info": "{\"sd_model_name\": \"fake-sd\"}"}))
            }),
        )
        .route("/sdapi/v1/progress", get(|| async { axum::Json(json!({"progress": 0.5, "state": {"job_count": 1}})) }))
        .route(
            "/images/generations",
            post(move |State(s): State<Arc<Studio>>, axum::Json(body): axum::Json<Value>| async move {
                let size = body["size"].as_str().unwrap_or("512x512").to_string();
                let (w, h) = size.split_once('x').map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap())).unwrap();
                let n = num(&body["n"]).max(1) as usize;
                let data: Vec<Value> = s
                    .paint(body, w, h, n)
                    .iter()
                    .map(|(png, flagged)| {
                        json!({"b64_json": b64(png), "content_filter_results": {
                            "violence": {"filtered": flagged, "severity": if *flagged { "medium" } else { "safe" }},
                            "self_harm": {"filtered": false, "severity": "safe"}}})
                    })
                    .collect();
                axum::Json(json!({"created": 1, "data": data}))
            }),
        )
        .route(
            "/prompt",
            post(move |State(s): State<Arc<Studio>>, axum::Json(body): axum::Json<Value>| async move {
                let latent = body["prompt"]
                    .as_object()
                    .and_then(|g| g.values().find(|n| n["class_type"] == "EmptyLatentImage"))
                    .map(|n| n["inputs"].clone())
                    .unwrap_or_default();
                let (w, h, n) = (num(&latent["width"]), num(&latent["height"]), num(&latent["batch_size"]).max(1));
                let id = format!("p{}", s.asked.lock().unwrap().len());
                let made = s.paint(body, w, h, n as usize);
                let mut names = Vec::new();
                for (i, (png, _)) in made.into_iter().enumerate() {
                    let name = format!("{id}_{i}.png");
                    s.files.lock().unwrap().insert(name.clone(), png);
                    names.push(name);
                }
                s.prompts.lock().unwrap().insert(id.clone(), names);
                axum::Json(json!({"prompt_id": id, "number": 1}))
            }),
        )
        .route(
            "/history/{id}",
            get(|State(s): State<Arc<Studio>>, Path(id): Path<String>| async move {
                let names = s.prompts.lock().unwrap().get(&id).cloned().unwrap_or_default();
                let images: Vec<Value> =
                    names.iter().map(|n| json!({"filename": n, "subfolder": "", "type": "output"})).collect();
                axum::Json(json!({ id: {"status": {"status_str": "success", "completed": true},
                    "outputs": {"9": {"images": images}}}}))
            }),
        )
        .route(
            "/view",
            get(
                |State(s): State<Arc<Studio>>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let bytes = s.files.lock().unwrap().get(&q["filename"]).cloned().unwrap_or_default();
                    ([(header::CONTENT_TYPE, "image/png")], bytes)
                },
            ),
        )
        .with_state(studio.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (studio, url)
}

/// A moodboard with a brief, its id.
async fn board(api: &Api, ws: &str, brief: Value) -> String {
    let r = api
        .post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "moodboard", "title": "Living room"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            Method::PUT,
            &format!("/api/v1/documents/{id}/content"),
            Some(json!({"format": "json", "content": {"brief": brief, "items": {}}})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    id
}

async fn board_items(api: &Api, doc: &str) -> serde_json::Map<String, Value> {
    let r = api.get(&format!("/api/v1/documents/{doc}/content")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["items"].as_object().cloned().unwrap_or_default()
}

fn paint_onto(ws: &str, doc: &str, data: Value) -> Value {
    let mut data = data;
    data["document_id"] = json!(doc);
    json!({"workspace": ws, "type": "moodboard.images", "pipeline": ["board_images"], "max_attempts": 2, "data": data})
}

/// The built-in provider paints onto a board: placeholders fill with images and how they
/// were made; an image that repeats one already on the board is refused as a near-duplicate
/// and painted again; bad requests are refused when submitted.
async fn images_are_painted_onto_a_board_and_near_duplicates_painted_again(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let palette = json!(["#9aa58b", "#5c4033", "#f5f0e6", "#c8643c", "#1f2a44"]);
    let brief =
        json!({"room_type": "living_room", "style": "japandi", "notes": "a reading corner", "palette": palette});
    let doc = board(&api, &ws, brief).await;
    let c =
        run_context(&api, paint_onto(&ws, &doc, json!({"count": 1, "width": 320, "height": 240, "seed": 11}))).await;
    assert_eq!(c["status"], "completed", "{c}");
    let items = board_items(&api, &doc).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let (first_id, first) = items.iter().next().unwrap();
    assert!(first.get("generation").is_none(), "filled: {first}");
    let source = &first["source"];
    assert_eq!(
        (&source["provider"], &source["model"], &source["seed"]),
        (&json!("quire-builtin"), &json!("quire-builtin"), &json!(11))
    );
    assert!(source["prompt"].as_str().unwrap().contains("a reading corner"), "{source}");
    // The board's palette, in words for the model and as colours for the built-in painter.
    assert!(
        source["prompt"]
            .as_str()
            .unwrap()
            .contains("colour palette: sage green, walnut brown, warm white, terracotta, navy blue"),
        "{source}"
    );
    assert_eq!(source["palette"], palette);
    assert_eq!(
        (&source["room_type"], &source["style"], &source["qc"]["round"]),
        (&json!("living_room"), &json!("japandi"), &json!(1))
    );
    assert!(source["elapsed_ms"].is_u64() && source["parameters"]["width"] == 320, "{source}");
    assert_eq!((&first["w"], &first["h"], &first["type"]), (&json!(240), &json!(180), &json!("image")));
    let sha = first["asset"].as_str().unwrap();
    let painted = asset_image(&api, &ws, sha).await;
    let top: Vec<&image::Rgb<u8>> = (0..painted.width()).map(|x| painted.get_pixel(x, 1)).collect();
    let mean = |k: usize| top.iter().map(|p| f64::from(p.0[k])).sum::<f64>() / top.len() as f64;
    assert!(
        mean(1) > mean(0) && mean(1) > mean(2),
        "a sage wall, not japandi's cream: {:?}",
        (mean(0), mean(1), mean(2))
    );
    let asset = api.get(&format!("/api/v1/workspaces/{ws}/assets/{sha}")).await;
    assert_eq!(
        (asset.body["origin"].as_str(), asset.body["phash"].as_str().map(str::len)),
        (Some("generated"), Some(16)),
        "{}",
        asset.body
    );
    assert_eq!(c["data"]["board_images"]["placed"][0]["item"], json!(first_id));

    // The same seed again: its first image is the one on the board, refused and painted anew.
    let c =
        run_context(&api, paint_onto(&ws, &doc, json!({"count": 2, "width": 320, "height": 240, "seed": 11}))).await;
    assert_eq!(c["status"], "completed", "{c}");
    let items = board_items(&api, &doc).await;
    assert_eq!(items.len(), 3);
    let id = c["id"].as_str().unwrap();
    let again = &items[&format!("gen-{id}-0")];
    assert_eq!(again["source"]["qc"]["round"], 2, "{again}");
    let refused = &again["source"]["qc"]["rejected_before"][0];
    assert_eq!((&refused["round"], &refused["check"]), (&json!(1), &json!("duplicate")), "{again}");
    assert!(
        refused["reason"].as_str().unwrap().starts_with(&format!("a near-duplicate of item {first_id} (")),
        "{refused}"
    );
    assert_ne!(again["asset"], first["asset"]);
    assert_eq!(items[&format!("gen-{id}-1")]["source"]["qc"]["round"], 1, "the other passed at once");
    // Placed beside what was there, not on it.
    assert!(again["x"].as_f64().unwrap() >= first["x"].as_f64().unwrap() + 240.0, "{again}");
    let log = logged(&api, &format!("workspace={ws}&kind=image&status=gate_failed"), 1).await;
    assert!(log.body["items"][0]["error"].as_str().unwrap().contains("near-duplicate"), "{}", log.body);

    // Refused when submitted: the field named.
    for (data, field) in [
        (json!({"count": 9}), "data.count"),
        (json!({"width": 500}), "data.width"),
        (json!({"attempts": 0}), "data.attempts"),
        (json!({"palette": ["red"]}), "data.palette"),
    ] {
        let r = api.post("/api/v1/contexts", paint_onto(&ws, &doc, data.clone())).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(r.body["error"]["field"], field, "{data}: {}", r.body);
    }
    let prd = api.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Spec"})).await;
    let r = api.post("/api/v1/contexts", paint_onto(&ws, prd.body["id"].as_str().unwrap(), json!({}))).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("not one"), "{}", r.body);
    let r = api.post("/api/v1/contexts", paint_onto(&ws, "doc_missing", json!({}))).await;
    assert_eq!(r.body["error"]["field"], "data.document_id", "{}", r.body);
    // A viewer of the board may not paint onto it.
    let (viewer, token, _) = api.signup("viewer@example.com").await;
    let r = api
        .call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{viewer}"), Some(json!({"role": "viewer"})), &[])
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r =
        api.call_as(Some(&token), Method::POST, "/api/v1/contexts", Some(paint_onto(&ws, &doc, json!({}))), &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // A brief without a style: the context fails with what to do.
    let bare = board(&api, &ws, json!({"room_type": "bedroom"})).await;
    let c = run_context(&api, paint_onto(&ws, &bare, json!({}))).await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("failed"), Some(1)), "{c}");
    assert!(c["error"]["message"].as_str().unwrap().contains("needs a room type and a style"), "{c}");
}

/// Registers the studio as the workspace's image provider of `kind`.
async fn use_studio(api: &Api, ws: &str, kind: &str, url: &str) {
    let r =
        api.call(Method::PUT, "/api/v1/ai/providers/studio", Some(json!({"kind": kind, "base_url": url})), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"), Some(json!({"image": "studio"})), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Against each remote protocol: a rejected image (black from Automatic1111, flagged by
/// OpenAI's safety filter, a repeat from ComfyUI) is painted again alone, and fills its
/// placeholder on the second round; one that never passes leaves its placeholder with the
/// reason.
async fn remote_providers_paint_boards_and_only_rejected_images_are_painted_again(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let doc = board(&api, &ws, json!({"room_type": "bedroom", "style": "japandi"})).await;
    // Each provider paints rooms of its own (one painting already on the board would be refused).
    for (kind, refused, check, count_key, seed) in [
        ("automatic1111", Paint::Black, "blank", "/batch_size", 10),
        ("openai", Paint::Flagged(22), "flagged", "/n", 20),
        ("comfyui", Paint::Room(30), "duplicate", "/prompt/5/inputs/batch_size", 30),
    ] {
        let (studio, url) = studio(vec![vec![Paint::Room(seed), refused], vec![Paint::Room(seed + 3)]]).await;
        use_studio(&api, &ws, kind, &url).await;
        let c = run_context(&api, paint_onto(&ws, &doc, json!({"count": 2, "width": 256, "height": 256}))).await;
        assert_eq!(c["status"], "completed", "{kind}: {c}");
        let asked = studio.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 2, "{kind}: two calls");
        let counts: Vec<u64> = asked
            .iter()
            .map(|a| a.pointer(count_key).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).unwrap_or(0))
            .collect();
        assert_eq!(counts, [2, 1], "{kind}: only the rejected image is painted again");
        let items = board_items(&api, &doc).await;
        let id = c["id"].as_str().unwrap();
        let second = &items[&format!("gen-{id}-1")];
        assert_eq!(second["source"]["qc"]["round"], 2, "{kind}: {second}");
        assert_eq!(second["source"]["qc"]["rejected_before"][0]["check"], check, "{kind}: {second}");
        assert_eq!(second["source"]["provider"], "studio");
        assert!(items[&format!("gen-{id}-0")]["asset"].is_string(), "{kind}");
    }
    // Nothing passes in any round: the placeholders stay, each with its reason.
    let (_, url) = studio(vec![vec![Paint::Black]; 3]).await;
    use_studio(&api, &ws, "automatic1111", &url).await;
    let c =
        run_context(&api, paint_onto(&ws, &doc, json!({"count": 1, "width": 256, "height": 256, "attempts": 3}))).await;
    assert_eq!(
        (c["status"].as_str(), c["error"]["code"].as_str()),
        (Some("failed"), Some("quality_gate_failed")),
        "{c}"
    );
    assert!(c["error"]["message"].as_str().unwrap().contains("in 3 round(s): image 1: the image is black"), "{c}");
    let items = board_items(&api, &doc).await;
    let left = &items[&format!("gen-{}-0", c["id"].as_str().unwrap())];
    assert_eq!(left["generation"]["status"], "rejected", "{left}");
    assert!(left["generation"]["reason"].as_str().unwrap().contains("black"), "{left}");
    assert_eq!(left["generation"]["rejections"].as_array().unwrap().len(), 3);
}

/// The bytes at a (signed) URL of the API.
async fn fetched(api: &Api, url: &str) -> Vec<u8> {
    let res = api.router.clone().oneshot(Request::get(url).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{url}");
    http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes().to_vec()
}

/// An asset's image, decoded.
async fn asset_image(api: &Api, ws: &str, sha: &str) -> image::RgbImage {
    let asset = api.get(&format!("/api/v1/workspaces/{ws}/assets/{sha}")).await;
    assert_eq!(asset.status, StatusCode::OK, "{}", asset.body);
    let bytes = fetched(api, asset.body["urls"]["original"].as_str().unwrap()).await;
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

/// How far apart two images of one size are: the mean difference of their channels.
fn apart(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

/// "More like this" paints from the item's image where the provider can: the built-in lays
/// its room over an uploaded photo (which has no prompt: the brief's is used), Automatic1111
/// gets the generated item's image through img2img at the strength asked for; the source
/// records it; a request it cannot carry out fails saying why.
async fn more_like_this_paints_from_the_image_itself(b: Backend) {
    let (api, ws, _worker) = with_worker(b).await;
    let doc = board(&api, &ws, json!({"room_type": "living_room", "style": "japandi"})).await;
    // A photo of one's own (orange and teal halves), uploaded and put on the board.
    let photo = image::RgbImage::from_fn(300, 200, |x, _| {
        if x < 150 { image::Rgb([230, 120, 20]) } else { image::Rgb([20, 140, 150]) }
    });
    let mut png = std::io::Cursor::new(Vec::new());
    photo.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let req = Request::post(format!("/api/v1/workspaces/{ws}/assets?name=photo.png"))
        .body(Body::from(png.into_inner()))
        .unwrap();
    let up = api.raw(req).await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    let photo_sha = up.body["sha256"].as_str().unwrap().to_string();
    let mut content = api.get(&format!("/api/v1/documents/{doc}/content")).await.body;
    content["items"]["photo"] = json!({"type": "image", "x": 0, "y": 0, "w": 300, "h": 200, "asset": photo_sha});
    let r = api
        .call(
            Method::PUT,
            &format!("/api/v1/documents/{doc}/content"),
            Some(json!({"format": "json", "content": content})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let like_photo = json!({"like": "photo", "count": 1, "width": 256, "height": 256, "seed": 7, "strength": 0.5});
    let c = run_context(&api, paint_onto(&ws, &doc, like_photo)).await;
    assert_eq!(c["status"], "completed", "{c}");
    let items = board_items(&api, &doc).await;
    let made = &items[&format!("gen-{}-0", c["id"].as_str().unwrap())];
    let source = &made["source"];
    assert_eq!(source["from_image"], json!({"asset": photo_sha, "strength": 0.5}), "{source}");
    assert_eq!((&source["like"], &source["style"]), (&json!("photo"), &json!("japandi")), "the brief's: {source}");
    // Half the built-in's room, half the photo fitted to the square.
    let result = asset_image(&api, &ws, made["asset"].as_str().unwrap()).await;
    let room = quire_ai::builtin::paint(quire_ai::taxonomy::design_style("japandi").unwrap(), 256, 256, 7);
    let fitted = image::imageops::resize(
        &image::imageops::crop_imm(&photo, 50, 0, 200, 200).to_image(),
        256,
        256,
        image::imageops::FilterType::CatmullRom,
    );
    let mut blend = room.clone();
    for (p, (r, f)) in blend.pixels_mut().zip(room.pixels().zip(fitted.pixels())) {
        for k in 0..3 {
            p.0[k] = ((f64::from(r.0[k]) + f64::from(f.0[k])) / 2.0).round() as u8;
        }
    }
    let (to_blend, to_room) = (apart(&result, &blend), apart(&result, &room));
    assert!(to_blend < 3.0 && to_room > 20.0, "blend {to_blend}, room {to_room}");

    // The photo and the painting as the brief's references: a generation from the brief paints
    // from them in turn.
    let painted_sha = made["asset"].as_str().unwrap().to_string();
    let mut content = api.get(&format!("/api/v1/documents/{doc}/content")).await.body;
    content["brief"]["references"] = json!([photo_sha, painted_sha]);
    let put = json!({"format": "json", "content": content});
    let r = api.call(Method::PUT, &format!("/api/v1/documents/{doc}/content"), Some(put), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let query = format!("workspace={ws}&kind=image&status=ok");
    let calls_before = logged(&api, &query, 0).await.body["items"].as_array().unwrap().len();
    let from_brief = json!({"count": 3, "width": 256, "height": 256, "seed": 7, "strength": 0.5});
    let briefed = run_context(&api, paint_onto(&ws, &doc, from_brief)).await;
    assert_eq!(briefed["status"], "completed", "{briefed}");
    let items = board_items(&api, &doc).await;
    let from: Vec<&Value> = (0..3)
        .map(|n| &items[&format!("gen-{}-{n}", briefed["id"].as_str().unwrap())]["source"]["from_image"]["asset"])
        .collect();
    assert_eq!(from, [&json!(photo_sha), &json!(painted_sha), &json!(photo_sha)], "in turn");
    let calls = logged(&api, &query, calls_before + 2).await.body["items"].as_array().unwrap().len();
    assert_eq!(calls, calls_before + 2, "one call per image");
    let mut content = api.get(&format!("/api/v1/documents/{doc}/content")).await.body;
    content["brief"].as_object_mut().unwrap().remove("references");
    let put = json!({"format": "json", "content": content});
    let r = api.call(Method::PUT, &format!("/api/v1/documents/{doc}/content"), Some(put), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Automatic1111 paints the generated item again through img2img, from its image.
    let (studio, url) = studio(vec![vec![Paint::Room(40), Paint::Room(42)], vec![Paint::Room(44)]]).await;
    use_studio(&api, &ws, "automatic1111", &url).await;
    let made_sha = made["asset"].as_str().unwrap().to_string();
    let made_id = format!("gen-{}-0", c["id"].as_str().unwrap());
    let like_made = json!({"like": made_id, "count": 2, "width": 256, "height": 256, "strength": 0.4});
    let c = run_context(&api, paint_onto(&ws, &doc, like_made)).await;
    assert_eq!(c["status"], "completed", "{c}");
    let asked = studio.asked.lock().unwrap().clone();
    assert_eq!((&asked[0]["path"], &asked[0]["denoising_strength"]), (&json!("img2img"), &json!(0.4)));
    assert_eq!(asked[0]["prompt"], source["prompt"], "the item's own prompt");
    let init = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        asked[0]["init_images"][0].as_str().unwrap(),
    )
    .unwrap();
    let init = image::load_from_memory(&init).unwrap().to_rgb8();
    assert!(apart(&init, &result) < 1.0, "the item's own image, as it is (same size)");
    let items = board_items(&api, &doc).await;
    let again = &items[&format!("gen-{}-1", c["id"].as_str().unwrap())];
    assert_eq!(again["source"]["from_image"], json!({"asset": made_sha, "strength": 0.4}), "{again}");
    assert_eq!(again["source"]["parameters"]["strength"], 0.4, "{again}");
    // Asked not to, it paints the prompt alone.
    let text_only = json!({"like": made_id, "count": 1, "width": 256, "height": 256, "from_image": false});
    let c = run_context(&api, paint_onto(&ws, &doc, text_only)).await;
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(studio.asked.lock().unwrap()[1].get("path"), None, "txt2img");

    // What cannot be done is refused when submitted, saying why.
    for (data, field, says) in [
        (json!({"like": "photo", "strength": 2}), "data.strength", "from 0.05 to 1"),
        (json!({"like": "photo", "from_image": false}), "data.like", "was uploaded, not generated"),
        (json!({"like": "nothing"}), "data.like", "no item 'nothing'"),
    ] {
        let r = api.post("/api/v1/contexts", paint_onto(&ws, &doc, data.clone())).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(r.body["error"]["field"], field, "{data}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains(says), "{data}: {}", r.body);
    }
}
