//! The OpenAI-compatible provider against a local fake server that speaks the real wire
//! format: streamed chat completions (SSE chunks, `[DONE]`), 429 with `Retry-After`, 5xx,
//! stalls, embeddings and base64 images.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;
use quire_ai::openai::{OpenAi, OpenAiSettings};
use quire_ai::resilience::GuardSettings;
use quire_ai::{
    AiErrorKind, EmbeddingProvider, ImageProvider, ImageRequest, Message, TextEvent, TextProvider, TextRequest, Usage,
};
use serde_json::{Value, json};

/// What the fake answers to the next call.
enum Reply {
    /// SSE chunks (the `data:` payloads), `pause` apart, then nothing more.
    Stream(Vec<String>, Duration),
    /// A chunk every 20 ms until the client goes away.
    Endless,
    /// One chunk, then silence with the connection open.
    Stall(String),
    Status(u16, Option<&'static str>, &'static str),
    /// Answers after this long.
    Hang(Duration),
    Json(Value),
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    calls: AtomicUsize,
    bodies: Mutex<Vec<(String, Value)>>,
    client_left: AtomicBool,
}

/// Sets `client_left` when the response body is dropped before it ended.
struct Watch(Arc<Fake>);
impl Drop for Watch {
    fn drop(&mut self) {
        self.0.client_left.store(true, Ordering::SeqCst);
    }
}

async fn handle(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    fake.bodies.lock().unwrap().push((auth, serde_json::from_str(&body).unwrap_or(Value::Null)));
    let reply = fake.script.lock().unwrap().pop_front().expect("a scripted reply");
    let sse = |stream: Body| Response::builder().header("content-type", "text/event-stream").body(stream).unwrap();
    match reply {
        Reply::Stream(chunks, pause) => {
            let s = futures_util::stream::iter(chunks).then(move |c| async move {
                tokio::time::sleep(pause).await;
                Ok::<_, Infallible>(format!("data: {c}\n\n"))
            });
            sse(Body::from_stream(s))
        }
        Reply::Endless => {
            let watch = Watch(fake.clone());
            let s = futures_util::stream::unfold((watch, 0u64), |(w, n)| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let chunk = json!({"model": "m", "choices": [{"index": 0, "delta": {"content": format!("t{n} ")}}]});
                Some((Ok::<_, Infallible>(format!("data: {chunk}\n\n")), (w, n + 1)))
            });
            sse(Body::from_stream(s))
        }
        Reply::Stall(c) => {
            let first = futures_util::stream::once(async move { Ok::<_, Infallible>(format!("data: {c}\n\n")) });
            sse(Body::from_stream(first.chain(futures_util::stream::pending())))
        }
        Reply::Status(code, retry_after, body) => {
            let mut r = Response::builder().status(StatusCode::from_u16(code).unwrap());
            if let Some(ra) = retry_after {
                r = r.header("retry-after", ra);
            }
            r.header("content-type", "application/json").body(Body::from(body)).unwrap()
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            Response::new(Body::from("{}"))
        }
        Reply::Json(v) => {
            Response::builder().header("content-type", "application/json").body(Body::from(v.to_string())).unwrap()
        }
    }
}

async fn serve(script: Vec<Reply>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake { script: Mutex::new(script.into()), ..Default::default() });
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(handle))
        .route("/v1/embeddings", axum::routing::post(handle))
        .route("/v1/images/generations", axum::routing::post(handle))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, url)
}

fn provider(url: &str, tune: impl FnOnce(&mut OpenAiSettings)) -> OpenAi {
    let mut s = OpenAiSettings::new("fakeai", url);
    s.api_key = Some("sk-test".into());
    s.text_model = "fake-small".into();
    s.guard = GuardSettings { backoff_base: Duration::from_millis(20), ..GuardSettings::default() };
    tune(&mut s);
    OpenAi::new(s).unwrap()
}

fn chunk(content: &str) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "model": "fake-small-0125",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    .to_string()
}

fn ask(text: &str) -> TextRequest {
    TextRequest { messages: vec![Message::system("Be brief."), Message::user(text)], ..Default::default() }
}

/// Collects a stream: the text, and the `Done` (or the error that ended it).
async fn collect(p: &OpenAi, req: &TextRequest) -> Result<(String, TextEvent), quire_ai::AiError> {
    let mut stream = p.stream_text(req).await?;
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item? {
            TextEvent::Delta(d) => text.push_str(&d),
            done @ TextEvent::Done { .. } => return Ok((text, done)),
        }
    }
    panic!("the stream ended without Done")
}

fn done_chunks() -> Vec<String> {
    vec![
        json!({"model": "fake-small-0125", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]})
            .to_string(),
        chunk("Hello"),
        chunk(", world"),
        json!({"model": "fake-small-0125", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string(),
        json!({"model": "fake-small-0125", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
            .to_string(),
        "[DONE]".into(),
    ]
}

#[tokio::test]
async fn a_completion_streams_its_chunks_then_usage() {
    let (fake, url) = serve(vec![Reply::Stream(done_chunks(), Duration::from_millis(5))]).await;
    let p = provider(&url, |_| {});
    let mut req = ask("Say hello");
    req.temperature = Some(0.2);
    req.max_tokens = Some(50);
    let (text, done) = collect(&p, &req).await.unwrap();
    assert_eq!(text, "Hello, world");
    assert_eq!(
        done,
        TextEvent::Done {
            model: "fake-small-0125".into(),
            usage: Some(Usage { prompt_tokens: 12, completion_tokens: 3 }),
            finish_reason: Some("stop".into())
        }
    );
    let (auth, body) = fake.bodies.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer sk-test");
    assert_eq!(body["model"], "fake-small", "the default model when the request names none");
    assert_eq!((body["stream"].as_bool(), body["stream_options"]["include_usage"].as_bool()), (Some(true), Some(true)));
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(
        (body["temperature"].as_f64().map(|t| (t * 10.0).round()), body["max_tokens"].as_u64()),
        (Some(2.0), Some(50))
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_the_provider_asks() {
    let (fake, url) = serve(vec![
        Reply::Status(429, Some("1"), r#"{"error": {"message": "Rate limit reached", "type": "requests"}}"#),
        Reply::Stream(done_chunks(), Duration::ZERO),
    ])
    .await;
    let p = provider(&url, |_| {});
    let start = Instant::now();
    let (text, _) = collect(&p, &ask("hi")).await.unwrap();
    assert_eq!(text, "Hello, world");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    assert!(start.elapsed() >= Duration::from_secs(1), "waited the Retry-After: {:?}", start.elapsed());
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_providers_words() {
    let (fake, url) = serve(vec![
        Reply::Status(500, None, r#"{"error": {"message": "The server had an error"}}"#),
        Reply::Status(503, None, "upstream overloaded"),
        Reply::Stream(done_chunks(), Duration::ZERO),
    ])
    .await;
    let p = provider(&url, |_| {});
    assert_eq!(collect(&p, &ask("hi")).await.unwrap().0, "Hello, world");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);

    let (fake, url) = serve(vec![
        Reply::Status(500, None, r#"{"error": {"message": "The server had an error"}}"#),
        Reply::Status(502, None, r#"{"error": {"message": "Bad gateway"}}"#),
    ])
    .await;
    let p = provider(&url, |s| s.guard.attempts = 2);
    let e = collect(&p, &ask("hi")).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Unavailable);
    assert_eq!(e.to_string(), "AI provider 'fakeai': /chat/completions answered HTTP 502: Bad gateway (after 2 tries)");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rejected_requests_are_not_retried() {
    let (fake, url) = serve(vec![
        Reply::Status(404, None, r#"{"error": {"message": "The model `nope` does not exist"}}"#),
        Reply::Status(401, None, r#"{"error": {"message": "Incorrect API key provided"}}"#),
    ])
    .await;
    let p = provider(&url, |_| {});
    let mut req = ask("hi");
    req.model = Some("nope".into());
    let e = collect(&p, &req).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Rejected);
    assert!(e.message.contains("HTTP 404: The model `nope` does not exist (check the base URL"), "{}", e.message);
    let e = collect(&p, &ask("hi")).await.unwrap_err();
    assert!(
        e.message.contains("HTTP 401: Incorrect API key provided (check the provider's API key or credentials)"),
        "{}",
        e.message
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "one call each");
}

#[tokio::test]
async fn a_silent_provider_times_out_and_a_stalled_stream_says_so() {
    let (fake, url) = serve(vec![Reply::Hang(Duration::from_secs(3)), Reply::Hang(Duration::from_secs(3))]).await;
    let p = provider(&url, |s| {
        s.first_byte_timeout = Duration::from_millis(200);
        s.guard.attempts = 2;
    });
    let e = collect(&p, &ask("hi")).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Timeout);
    assert!(e.message.contains("no answer to /chat/completions within 0.2 s (after 2 tries)"), "{}", e.message);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    let (_, url) = serve(vec![Reply::Stream(vec![chunk("Hel")], Duration::ZERO), Reply::Stall(chunk("Hel"))]).await;
    let p = provider(&url, |s| s.idle_timeout = Duration::from_millis(200));
    // The server sent one chunk and closed without finishing.
    let mut stream = p.stream_text(&ask("hi")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), TextEvent::Delta("Hel".into()));
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Unavailable);
    assert!(e.message.contains("ended after 1 chunks without saying it was done"), "{}", e.message);
    assert!(stream.next().await.is_none());
    // The server sent one chunk and went silent.
    let mut stream = p.stream_text(&ask("hi")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), TextEvent::Delta("Hel".into()));
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (AiErrorKind::Timeout, "the stream stalled: no chunk for 0.2 s"));
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let (fake, url) = serve(vec![Reply::Endless]).await;
    let p = provider(&url, |_| {});
    let mut stream = p.stream_text(&ask("go on forever")).await.unwrap();
    for _ in 0..2 {
        assert!(matches!(stream.next().await, Some(Ok(TextEvent::Delta(_)))));
    }
    assert!(!fake.client_left.load(Ordering::SeqCst));
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fake.client_left.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the server kept streaming to nobody");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_failing_provider_opens_its_circuit() {
    let (fake, url) = serve(vec![
        Reply::Status(500, None, "down"),
        Reply::Status(500, None, "down"),
        Reply::Stream(done_chunks(), Duration::ZERO),
    ])
    .await;
    let p = provider(&url, |s| {
        s.guard.attempts = 1;
        s.guard.open_after = 2;
        s.guard.cool_down = Duration::from_millis(300);
    });
    for _ in 0..2 {
        assert_eq!(collect(&p, &ask("hi")).await.unwrap_err().kind, AiErrorKind::Unavailable);
    }
    let e = collect(&p, &ask("hi")).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::CircuitOpen);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "an open circuit does not call");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(collect(&p, &ask("hi")).await.unwrap().0, "Hello, world");
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() {
    let (fake, url) = serve(vec![Reply::Json(json!({
        "object": "list", "model": "fake-embed",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}
    }))])
    .await;
    let p = provider(&url, |_| {});
    let e = p.embed(None, &["first".into(), "second".into()]).await.unwrap();
    assert_eq!((e.model.as_str(), e.vectors.clone()), ("fake-embed", vec![vec![1.0, 0.0], vec![0.0, 1.0]]));
    assert_eq!(
        fake.bodies.lock().unwrap()[0].1,
        json!({"model": "text-embedding-3-small", "input": ["first", "second"]})
    );
}

#[tokio::test]
async fn images_are_decoded_from_base64() {
    let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3];
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let (fake, url) = serve(vec![Reply::Json(json!({"created": 1, "data": [{"b64_json": b64}]}))]).await;
    let p = provider(&url, |_| {});
    let req =
        ImageRequest { prompt: "a calm bedroom".into(), width: 1024, height: 768, count: 1, ..Default::default() };
    let out = p.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    assert_eq!((out.images[0].media_type.as_str(), out.images[0].bytes.as_ref()), ("image/png", &png[..]));
    let body = fake.bodies.lock().unwrap()[0].1.clone();
    assert_eq!(
        (body["size"].as_str(), body["response_format"].as_str(), body["n"].as_u64()),
        (Some("1024x768"), Some("b64_json"), Some(1))
    );
}

#[test]
fn a_base_url_that_is_not_http_is_refused() {
    let e = OpenAi::new(OpenAiSettings::new("x", "ftp://example.com")).err().unwrap();
    assert_eq!(e.to_string(), "AI provider 'x': the base URL must be http:// or https://");
    assert!(OpenAi::new(OpenAiSettings::new("x", "not a url")).is_err());
}
