//! What Quire adds to a streamed generation: time to the first chunk and to the end of
//! `POST /api/v1/ai/generate` through a running Quire (authentication, rate limit, audit,
//! the workspace's provider choice, the OpenAI-compatible client, SSE re-framing, the
//! interactions log), against calling the same fake OpenAI-compatible server directly.
//!
//! `cargo run --release -p quire-bench --bin ai [-- N]` (N calls each way, default 1000),
//! on SQLite and on the PostgreSQL `QUIRE_TEST_DATABASE_URL` names (default: local `test`).
//! Calls alternate between the two paths so that both see the same machine; the overhead is
//! the median of the paired differences.

use std::time::{Duration, Instant};

use axum::body::Body;
use quire_store::testing::Backend;
use serde_json::json;

/// Chunks of the fake completion.
const CHUNKS: usize = 32;

/// The fake provider: a whole completion of `CHUNKS` SSE chunks, at once.
async fn fake() -> String {
    let completion: String = (0..CHUNKS)
        .map(|i| {
            let c = json!({"model": "fake-1", "choices": [{"index": 0, "delta": {"content": format!("word{i} ")}}]});
            format!("data: {c}\n\n")
        })
        .chain(std::iter::once(format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"model": "fake-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": CHUNKS}})
        )))
        .collect();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let body = completion.clone();
            async move {
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from(body))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Time to the first bytes holding `marker`, and to the end of the body.
async fn timed(req: reqwest::RequestBuilder, marker: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let mut res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let mut first = None;
    let mut seen = String::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        if first.is_none() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(marker) {
                first = Some(start.elapsed());
            }
        }
    }
    assert!(seen.contains(marker) || first.is_some(), "no {marker} in the answer: {seen}");
    (first.expect("a first chunk"), start.elapsed())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(backend: Backend, n: usize, fake_url: &str) {
    let t = backend.open(Default::default()).await;
    let served = quire_bench::serve(t.store.clone(), quire_server::ServerConfig::default()).await;
    let (base, token, ws) = (served.base.clone(), served.token.clone(), served.ws.clone());
    let client = reqwest::Client::new();
    let call =
        |method: reqwest::Method, path: &str| client.request(method, format!("{base}{path}")).bearer_auth(&token);
    let spec = json!({"kind": "openai", "base_url": fake_url, "text_model": "fake-1"});
    assert!(
        call(reqwest::Method::PUT, "/api/v1/ai/providers/fake").json(&spec).send().await.unwrap().status().is_success()
    );
    let choice = json!({"text": "fake"});
    assert!(
        call(reqwest::Method::PUT, &format!("/api/v1/workspaces/{ws}/ai"))
            .json(&choice)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let messages = json!([{"role": "user", "content": "Say something"}]);
    let direct_body = json!({"model": "fake-1", "stream": true, "messages": messages});
    let quire_body = json!({"workspace": ws, "messages": messages});
    let direct = || client.post(format!("{fake_url}/chat/completions")).json(&direct_body);
    let through = || call(reqwest::Method::POST, "/api/v1/ai/generate").json(&quire_body);
    for _ in 0..50 {
        timed(direct(), "data:").await;
        timed(through(), "event: chunk").await;
    }
    let (mut d_first, mut d_total, mut q_first, mut q_total, mut o_first, mut o_total) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        // Alternate which goes first, so neither always runs on a warmer path.
        let (d, q) = if i % 2 == 0 {
            let d = timed(direct(), "data:").await;
            (d, timed(through(), "event: chunk").await)
        } else {
            let q = timed(through(), "event: chunk").await;
            (timed(direct(), "data:").await, q)
        };
        d_first.push(ms(d.0));
        d_total.push(ms(d.1));
        q_first.push(ms(q.0));
        q_total.push(ms(q.1));
        o_first.push(ms(q.0) - ms(d.0));
        o_total.push(ms(q.1) - ms(d.1));
    }
    println!("\n{} — {n} calls each way, {CHUNKS} chunks per completion", t.store.backend());
    println!("{:<28}{:>12}{:>12}", "ms", "median", "p90");
    for (name, v) in [
        ("direct: first chunk", &mut d_first),
        ("direct: total", &mut d_total),
        ("through Quire: first chunk", &mut q_first),
        ("through Quire: total", &mut q_total),
        ("Quire adds: first chunk", &mut o_first),
        ("Quire adds: total", &mut o_total),
    ] {
        println!("{name:<28}{:>12.3}{:>12.3}", percentile(v, 0.5), percentile(v, 0.9));
    }
    // Where the time goes: Quire's provider client alone (no HTTP server in front), an
    // authenticated request that reads nothing, and one that reads the caller's role in the
    // workspace (as a generation does first).
    let provider = quire_ai::openai::OpenAi::new(quire_ai::openai::OpenAiSettings::new("fake", fake_url)).unwrap();
    let request =
        quire_ai::TextRequest { messages: vec![quire_ai::Message::user("Say something")], ..Default::default() };
    let mut v: Vec<f64> = Vec::with_capacity(n);
    for _ in 0..n {
        use futures_util::StreamExt as _;
        use quire_ai::TextProvider as _;
        let start = Instant::now();
        let mut stream = provider.stream_text(&request).await.unwrap();
        stream.next().await.unwrap().unwrap();
        v.push(ms(start.elapsed()));
        while stream.next().await.is_some() {}
    }
    println!("{:<40} median {:.3} ms", "provider client alone: first chunk", percentile(&mut v, 0.5));
    for (name, path) in [
        ("GET /api/v1/ai/templates", "/api/v1/ai/templates".to_string()),
        ("GET /api/v1/workspaces/{ws}/ai", format!("/api/v1/workspaces/{ws}/ai")),
    ] {
        let mut v: Vec<f64> = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let res = call(reqwest::Method::GET, &path).send().await.unwrap();
            res.bytes().await.unwrap();
            v.push(ms(start.elapsed()));
        }
        println!("{name:<40} median {:.3} ms", percentile(&mut v, 0.5));
    }
    let ratio = percentile(&mut q_total, 0.5) / percentile(&mut d_total, 0.5);
    println!("through Quire / direct, total at the median: {ratio:.2}×");
    served.stop().await;
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let fake_url = fake().await;
    run(Backend::Sqlite, n, &fake_url).await;
    run(Backend::Postgres, n, &fake_url).await;
}
