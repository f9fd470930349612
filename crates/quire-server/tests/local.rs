//! The `local` provider over HTTP: with local models in the models folder it is listed,
//! becomes the default text and embedding provider and drafts and embeds with the real models
//! (SmolLM2-135M-Instruct, all-MiniLM-L6-v2, from the shared models cache); without them, or
//! with a damaged one, `quire-builtin` stays the default.

mod common;

use axum::http::{StatusCode, header};
use common::{Api, assert_error};
use quire_app::ai::local::LocalConfig;
use quire_local::catalog::DEFAULT_TEXT;
use quire_store::testing::Backend;
use serde_json::json;

quire_store::for_each_backend!(
    a_local_model_is_the_default_and_drafts_for_real,
    without_a_sound_local_model_the_builtin_provider_stays_the_default,
);

async fn api_with(b: Backend, local: LocalConfig) -> Api {
    let config = quire_server::ServerConfig { local_models: local, ..common::relaxed() };
    Api::with(b, Default::default(), config).await
}

async fn workspace(api: &Api) -> String {
    let r = api.post("/api/v1/workspaces", json!({"name": "Studio"})).await;
    r.body["id"].as_str().unwrap().to_string()
}

async fn a_local_model_is_the_default_and_drafts_for_real(b: Backend) {
    let models = quire_local::fetch::shared_cache().unwrap();
    let api = api_with(b, LocalConfig { dir: Some(models), ..Default::default() }).await;
    let ws = workspace(&api).await;

    let providers = api.get("/api/v1/ai/providers").await.body;
    let local = providers.as_array().unwrap().iter().find(|p| p["name"] == "local").cloned();
    let local = local.unwrap_or_else(|| panic!("local is listed: {providers}"));
    assert_eq!(
        (&local["kind"], &local["text"], &local["text_model"]),
        (&json!("local"), &json!(true), &json!("SmolLM2-135M-Instruct.Q4_1"))
    );
    assert_eq!((&local["embedding"], &local["embedding_model"]), (&json!(true), &json!("all-MiniLM-L6-v2")));
    // What Quire measured of its drafts comes with it (the app warns before drafting with it).
    let measured = quire_local::catalog::measured("SmolLM2-135M-Instruct.Q4_1").unwrap();
    assert_eq!(
        (&local["drafting"]["model"], &local["drafting"]["passed"], &local["drafting"]["acceptable"]),
        (&json!("SmolLM2-135M-Instruct.Q4_1"), &json!(measured.passed), &json!(measured.readable))
    );
    let chosen = api.get(&format!("/api/v1/workspaces/{ws}/ai")).await.body;
    assert_eq!(
        (&chosen["text"], &chosen["embedding"], &chosen["image"]),
        (&json!("local"), &json!("local"), &json!("quire-builtin")),
        "{chosen}"
    );

    let texts = ["offline sync for field teams", "field teams need to sync when offline", "quarterly revenue report"];
    let r = api.post("/api/v1/ai/embeddings", json!({"workspace": ws, "input": texts})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["provider"], &r.body["model"], &r.body["dimensions"]),
        (&json!("local"), &json!("all-MiniLM-L6-v2"), &json!(384))
    );
    let v = common::embedding_vectors(&r.body);
    assert!((common::dot(&v[0], &v[0]) - 1.0).abs() < 1e-3, "normalised");
    assert!(common::dot(&v[0], &v[1]) > common::dot(&v[0], &v[2]) + 0.2, "meaning, not just words, is near");

    let body =
        json!({"workspace": ws, "messages": [{"role": "user", "content": "Name three fruits."}], "max_tokens": 16});
    let r = api.post("/api/v1/ai/generate", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/event-stream");
    let frames = common::frames(r.body.as_str().unwrap());
    let chunks = frames.iter().filter(|(e, _)| e == "chunk").count();
    assert!(chunks >= 2, "streamed: {frames:?}");
    let (last, done) = frames.last().unwrap();
    assert_eq!(last, "done", "{frames:?}");
    assert_eq!((&done["provider"], &done["model"]), (&json!("local"), &json!("SmolLM2-135M-Instruct.Q4_1")), "{done}");
    assert!((1..=16).contains(&done["usage"]["completion_tokens"].as_u64().unwrap()), "{done}");

    // The name is Quire's own.
    let spec = json!({"kind": "openai", "base_url": "http://127.0.0.1:9"});
    let r = api.call(axum::http::Method::PUT, "/api/v1/ai/providers/local", Some(spec), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    // A draft through the pipeline is judged on topic by the local embedding model, and says so.
    let worker = quire_jobs::WorkerConfig { schedules: false, ..Default::default() };
    let _worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();
    let sections = json!([{"type": "problem", "title": "Problem"}, {"type": "goals", "title": "Goals"}]);
    let r = api
        .post(
            "/api/v1/contexts",
            json!({"workspace": ws, "type": "prd", "pipeline": ["ai_generator"], "max_attempts": 3,
                   "data": {"title": "Offline notes", "max_tokens": 160, "template": {"sections": sections},
                            "request": "Field teams lose notes when offline. The app must sync edits when the connection returns."}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let c = loop {
        let c = api.get(&format!("/api/v1/contexts/{id}")).await.body;
        if ["completed", "failed"].contains(&c["status"].as_str().unwrap()) || std::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(c["status"], "completed", "{c}");
    let relevance = &c["data"]["relevance"];
    assert_eq!(relevance["model"], "all-MiniLM-L6-v2", "{c}");
    assert!(relevance["request_rank"].as_u64().unwrap() <= 2, "{relevance}");
    // The Problem states facts and the request gives no figures: none were written there.
    let problem = c["data"]["generated_content"]["problem"].as_str().unwrap();
    assert!(!problem.contains(|ch: char| ch.is_ascii_digit()), "{problem}");
}

async fn without_a_sound_local_model_the_builtin_provider_stays_the_default(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let api = api_with(b, LocalConfig { dir: Some(dir.path().to_path_buf()), ..Default::default() }).await;
    let ws = workspace(&api).await;
    assert_eq!(api.get(&format!("/api/v1/workspaces/{ws}/ai")).await.body["text"], json!("quire-builtin"));
    // A damaged model is not taken for one (and names why in `quire models list`).
    std::fs::write(dir.path().join(DEFAULT_TEXT), b"GGUF\x03\x00\x00\x00 and nothing else").unwrap();
    let api = api_with(b, LocalConfig { dir: Some(dir.path().to_path_buf()), ..Default::default() }).await;
    let ws2 = workspace(&api).await;
    assert_eq!(api.get(&format!("/api/v1/workspaces/{ws2}/ai")).await.body["text"], json!("quire-builtin"));
    let providers = api.get("/api/v1/ai/providers").await.body.to_string();
    assert!(!providers.contains("\"local\""), "{providers}");
    let body = json!({"workspace": ws2, "provider": "local", "messages": [{"role": "user", "content": "Hi"}]});
    let r = api.post("/api/v1/ai/generate", body).await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
}
