//! The Automatic1111 and ComfyUI providers against local fakes that speak their real APIs:
//! A1111's `/sdapi/v1/txt2img`, `/sdapi/v1/img2img` and `/sdapi/v1/progress`; ComfyUI's
//! `/prompt`, the `/ws` WebSocket on the same port, `/history/{id}`, `/view`,
//! `/upload/image`, `/queue` and `/interrupt`; and painting from an image through OpenAI's
//! `/images/edits`.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use quire_ai::automatic1111::{Automatic1111, Automatic1111Settings};
use quire_ai::comfyui::{ComfyUi, ComfyUiSettings};
use quire_ai::openai::{OpenAi, OpenAiSettings};
use quire_ai::resilience::GuardSettings;
use quire_ai::{AiErrorKind, Credentials, ImageProvider, ImageRequest, InitImage};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A small real PNG of one colour.
fn png(rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb(rgb));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn request(count: u32) -> ImageRequest {
    ImageRequest {
        prompt: "a calm scandinavian bedroom".into(),
        negative_prompt: Some("clutter".into()),
        width: 512,
        height: 768,
        count,
        seed: Some(42),
        ..Default::default()
    }
}

fn quick() -> GuardSettings {
    GuardSettings { backoff_base: Duration::from_millis(20), ..GuardSettings::default() }
}

/// Collects the progress a provider reports.
fn recorder() -> (Arc<Mutex<Vec<f32>>>, impl Fn(f32) + Send + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |p| s.lock().unwrap().push(p))
}

async fn listen(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

// ---------------------------------------------------------------- Automatic1111

#[derive(Default)]
struct A1111 {
    /// Statuses to answer txt2img with before succeeding.
    failures: Mutex<VecDeque<(u16, Value)>>,
    bodies: Mutex<Vec<Value>>,
    paths: Mutex<Vec<String>>,
    auth: Mutex<Vec<String>>,
    progress_reads: Mutex<u32>,
}

async fn txt2img(
    State(f): State<Arc<A1111>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    f.auth.lock().unwrap().push(auth);
    f.paths.lock().unwrap().push(uri.path().to_string());
    f.bodies.lock().unwrap().push(body.clone());
    if let Some((status, answer)) = f.failures.lock().unwrap().pop_front() {
        return (StatusCode::from_u16(status).unwrap(), Json(answer)).into_response();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batch = body["batch_size"].as_u64().unwrap() as usize;
    // With a batch of several the web UI puts a grid first.
    let mut images = if batch > 1 { vec![b64(&png([0, 0, 0]))] } else { vec![] };
    images.extend((0..batch).map(|i| b64(&png([200, 10 * i as u8, 30]))));
    let info = json!({"prompt": body["prompt"], "seed": body["seed"], "sd_model_name": "dreamshaper_8"});
    Json(json!({"images": images, "parameters": body, "info": info.to_string()})).into_response()
}

async fn a1111_progress(State(f): State<Arc<A1111>>) -> Json<Value> {
    *f.progress_reads.lock().unwrap() += 1;
    Json(json!({"progress": 0.5, "eta_relative": 1.2, "state": {"job": "", "sampling_step": 10, "sampling_steps": 20}}))
}

async fn a1111(failures: Vec<(u16, Value)>) -> (Arc<A1111>, Automatic1111) {
    let fake = Arc::new(A1111 { failures: Mutex::new(failures.into()), ..Default::default() });
    let app = Router::new()
        .route("/sdapi/v1/txt2img", post(txt2img))
        .route("/sdapi/v1/img2img", post(txt2img))
        .route("/sdapi/v1/progress", get(a1111_progress))
        .with_state(fake.clone());
    let url = listen(app).await;
    let mut s = Automatic1111Settings::new("a1111", &url);
    s.credentials = Credentials::Basic { user: "quire".into(), password: "s3cret".into() };
    s.progress_every = Duration::from_millis(50);
    s.guard = quick();
    (fake, Automatic1111::new(s).unwrap())
}

#[tokio::test]
async fn automatic1111_generates_a_batch_reporting_progress() {
    let (fake, p) = a1111(vec![]).await;
    let (seen, progress) = recorder();
    let mut req = request(2);
    req.model = Some("dreamshaper_8.safetensors".into());
    let out = p.generate_images(&req, &progress).await.unwrap();
    assert_eq!(out.model, "dreamshaper_8", "the checkpoint the server says ran");
    assert_eq!(out.images.len(), 2, "the grid is left out");
    for (i, img) in out.images.iter().enumerate() {
        assert_eq!(img.media_type, "image/png");
        let decoded = image::load_from_memory(&img.bytes).unwrap().to_rgb8();
        assert_eq!(decoded.get_pixel(0, 0).0, [200, 10 * i as u8, 30]);
    }
    let body = fake.bodies.lock().unwrap()[0].clone();
    assert_eq!(
        (
            &body["prompt"],
            &body["negative_prompt"],
            &body["width"],
            &body["height"],
            &body["batch_size"],
            &body["seed"]
        ),
        (&json!("a calm scandinavian bedroom"), &json!("clutter"), &json!(512), &json!(768), &json!(2), &json!(42))
    );
    assert_eq!(body["override_settings"]["sd_model_checkpoint"], "dreamshaper_8.safetensors");
    assert_eq!(fake.auth.lock().unwrap()[0], format!("Basic {}", b64(b"quire:s3cret")));
    assert!(*fake.progress_reads.lock().unwrap() >= 2, "progress was read while the batch ran");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&0.5) && seen.last() == Some(&1.0), "{seen:?}");
}

#[tokio::test]
async fn automatic1111_retries_a_busy_server_and_reports_what_it_refused() {
    let (fake, p) = a1111(vec![(503, json!({"detail": "busy"}))]).await;
    let out = p.generate_images(&request(1), &quire_ai::no_progress).await.unwrap();
    assert_eq!((out.images.len(), fake.bodies.lock().unwrap().len()), (1, 2), "one retry");
    assert!(fake.bodies.lock().unwrap()[0].get("override_settings").is_none(), "no checkpoint named: the loaded one");

    let refused = json!({"error": "HTTPException", "detail": "Sampler not found", "body": "", "errors": ""});
    let (fake, p) = a1111(vec![(404, refused)]).await;
    let e = p.generate_images(&request(1), &quire_ai::no_progress).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Rejected);
    assert!(e.to_string().starts_with("AI provider 'a1111': /sdapi/v1/txt2img answered HTTP 404:"), "{e}");
    assert_eq!(fake.bodies.lock().unwrap().len(), 1, "a refusal is not retried");
}

// ---------------------------------------------------------------- ComfyUI

#[derive(Clone, Copy, PartialEq)]
enum Run {
    Succeed,
    NodeFails,
    /// Starts, reports a little progress, and runs until interrupted.
    Forever,
}

struct Comfy {
    run: Run,
    websocket: bool,
    sockets: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    prompts: Mutex<Vec<Value>>,
    history: Mutex<HashMap<String, Value>>,
    history_reads: Mutex<u32>,
    cancelled: Mutex<Vec<(String, Value)>>,
    uploads: Mutex<Vec<Vec<Part>>>,
}

impl Comfy {
    fn tell(&self, client: &str, message: Value) {
        if let Some(tx) = self.sockets.lock().unwrap().get(client) {
            let _ = tx.send(message.to_string());
        }
    }
}

async fn queue_prompt(State(f): State<Arc<Comfy>>, Json(body): Json<Value>) -> Response {
    let graph = body["prompt"].clone();
    if graph["4"]["inputs"]["ckpt_name"] == "missing.safetensors" {
        let answer = json!({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
            "node_errors": {"4": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                "details": "ckpt_name: 'missing.safetensors' not in ['sd_xl_base_1.0.safetensors']", "extra_info": {}}],
                "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}}
        });
        return (StatusCode::BAD_REQUEST, Json(answer)).into_response();
    }
    let id = format!("prompt-{}", f.prompts.lock().unwrap().len() + 1);
    f.prompts.lock().unwrap().push(body.clone());
    let client = body["client_id"].as_str().unwrap_or_default().to_string();
    let (fake, prompt_id) = (f.clone(), id.clone());
    tokio::spawn(async move {
        let step = Duration::from_millis(30);
        // Another client's prompt: not ours to report.
        fake.tell(
            &client,
            json!({"type": "progress", "data": {"value": 9, "max": 10, "prompt_id": "someone-else", "node": "3"}}),
        );
        fake.tell(&client, json!({"type": "execution_start", "data": {"prompt_id": prompt_id, "timestamp": 1}}));
        fake.tell(
            &client,
            json!({"type": "executing", "data": {"node": "4", "display_node": "4", "prompt_id": prompt_id}}),
        );
        let steps = if fake.run == Run::Forever { 1 } else { 4 };
        for v in 1..=steps {
            tokio::time::sleep(step).await;
            fake.tell(
                &client,
                json!({"type": "progress", "data": {"value": v, "max": 4, "prompt_id": prompt_id, "node": "3"}}),
            );
        }
        match fake.run {
            Run::Forever => (),
            Run::NodeFails => {
                let error = json!({"prompt_id": prompt_id, "node_id": "3", "node_type": "KSampler",
                    "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB\n", "exception_type": "torch.OutOfMemoryError",
                    "traceback": [], "current_inputs": {}, "current_outputs": []});
                fake.history.lock().unwrap().insert(prompt_id.clone(), json!({
                    "prompt": [], "outputs": {},
                    "status": {"status_str": "error", "completed": false, "messages": [["execution_start", {}], ["execution_error", error]]}}));
                fake.tell(&client, json!({"type": "execution_error", "data": error}));
            }
            Run::Succeed => {
                let images = json!([{"filename": "quire_00001_.png", "subfolder": "", "type": "output"},
                                    {"filename": "quire_00002_.png", "subfolder": "", "type": "output"}]);
                fake.history.lock().unwrap().insert(prompt_id.clone(), json!({
                    "prompt": [1, prompt_id, graph, {}, ["9"]],
                    "outputs": {"9": {"images": images},
                                "12": {"images": [{"filename": "ComfyUI_temp_0001.png", "subfolder": "", "type": "temp"}]}},
                    "status": {"status_str": "success", "completed": true, "messages": []}}));
                fake.tell(&client, json!({"type": "executed", "data": {"node": "9", "display_node": "9", "output": {"images": images}, "prompt_id": prompt_id}}));
                fake.tell(&client, json!({"type": "executing", "data": {"node": null, "prompt_id": prompt_id}}));
            }
        }
    });
    Json(json!({"prompt_id": id, "number": 1, "node_errors": {}})).into_response()
}

async fn history(State(f): State<Arc<Comfy>>, Path(id): Path<String>) -> Json<Value> {
    *f.history_reads.lock().unwrap() += 1;
    Json(f.history.lock().unwrap().get(&id).map_or(json!({}), |h| json!({ id: h })))
}

async fn view(Query(q): Query<HashMap<String, String>>) -> Response {
    match (q.get("filename").map(String::as_str), q.get("type").map(String::as_str)) {
        (Some("quire_00001_.png"), Some("output")) => png([10, 120, 200]).into_response(),
        (Some("quire_00002_.png"), Some("output")) => png([240, 200, 40]).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// ComfyUI's upload: the file goes into `input/` (a subfolder when asked); it answers the
/// name it kept.
async fn upload_image(State(f): State<Arc<Comfy>>, headers: HeaderMap, body: axum::body::Bytes) -> Json<Value> {
    let parts = multipart(&headers, &body);
    let name = parts.iter().find(|p| p.name == "image").and_then(|p| p.filename.clone()).unwrap();
    f.uploads.lock().unwrap().push(parts);
    Json(json!({"name": name, "subfolder": "quire", "type": "input"}))
}

async fn cancel(State(f): State<Arc<Comfy>>, uri: axum::http::Uri, Json(body): Json<Value>) -> StatusCode {
    f.cancelled.lock().unwrap().push((uri.path().to_string(), body));
    StatusCode::OK
}

/// Hands `/ws` upgrades to tungstenite and every other connection to axum, on one port.
struct Connections(mpsc::UnboundedReceiver<tokio::net::TcpStream>, std::net::SocketAddr);

impl axum::serve::Listener for Connections {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.recv().await {
            Some(s) => (s, self.1),
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.1)
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback type
async fn socket(fake: Arc<Comfy>, stream: tokio::net::TcpStream) {
    let client = Arc::new(Mutex::new(String::new()));
    let c = client.clone();
    let read_id = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                        res: tokio_tungstenite::tungstenite::handshake::server::Response| {
        let query = req.uri().query().unwrap_or_default();
        *c.lock().unwrap() = query.strip_prefix("clientId=").unwrap_or_default().to_string();
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, read_id).await else { return };
    let id = client.lock().unwrap().clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    fake.sockets.lock().unwrap().insert(id.clone(), tx);
    let hello = json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": id}});
    let _ = ws.send(hello.to_string().into()).await;
    // A binary preview frame, as ComfyUI sends while sampling.
    let _ = ws.send(tokio_tungstenite::tungstenite::Message::Binary(vec![0, 0, 0, 1, 0xFF, 0xD8].into())).await;
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => if ws.send(text.into()).await.is_err() { return },
                None => return,
            },
            incoming = ws.next() => if incoming.is_none_or(|m| m.is_err()) { return },
        }
    }
}

async fn comfy(run: Run, websocket: bool) -> (Arc<Comfy>, String) {
    let fake = Arc::new(Comfy {
        run,
        websocket,
        sockets: Mutex::default(),
        prompts: Mutex::default(),
        history: Mutex::default(),
        history_reads: Mutex::default(),
        cancelled: Mutex::default(),
        uploads: Mutex::default(),
    });
    let app = Router::new()
        .route("/prompt", post(queue_prompt))
        .route("/history/{id}", get(history))
        .route("/view", get(view))
        .route("/queue", post(cancel))
        .route("/interrupt", post(cancel))
        .route("/upload/image", post(upload_image))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let f = fake.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 7];
            let upgrade = loop {
                match stream.peek(&mut head).await {
                    Ok(n) if n >= head.len() => break &head == b"GET /ws",
                    Ok(0) | Err(_) => break false,
                    Ok(_) => tokio::task::yield_now().await,
                }
            };
            if upgrade && f.websocket {
                tokio::spawn(socket(f.clone(), stream));
            } else {
                let _ = tx.send(stream);
            }
        }
    });
    tokio::spawn(async move { axum::serve(Connections(rx, addr), app).await.unwrap() });
    (fake, format!("http://{addr}"))
}

fn comfy_provider(url: &str, tune: impl FnOnce(&mut ComfyUiSettings)) -> Result<ComfyUi, quire_ai::AiError> {
    let mut s = ComfyUiSettings::new("comfy", url);
    s.checkpoint = "sd_xl_base_1.0.safetensors".into();
    s.poll_every = Duration::from_millis(20);
    s.guard = quick();
    tune(&mut s);
    ComfyUi::new(s)
}

fn colours(images: &quire_ai::Images) -> Vec<[u8; 3]> {
    images.images.iter().map(|i| image::load_from_memory(&i.bytes).unwrap().to_rgb8().get_pixel(0, 0).0).collect()
}

#[tokio::test]
async fn comfyui_runs_the_workflow_following_progress_on_its_websocket() {
    let (fake, url) = comfy(Run::Succeed, true).await;
    let p = comfy_provider(&url, |_| {}).unwrap();
    let (seen, progress) = recorder();
    let out = p.generate_images(&request(2), &progress).await.unwrap();
    assert_eq!(out.model, "sd_xl_base_1.0.safetensors");
    assert_eq!(colours(&out), vec![[10, 120, 200], [240, 200, 40]], "the saved outputs, not the preview");
    assert_eq!(*seen.lock().unwrap(), vec![0.25, 0.5, 0.75, 1.0, 1.0], "only this prompt's progress");
    let body = fake.prompts.lock().unwrap()[0].clone();
    assert!(body["client_id"].as_str().unwrap().starts_with("quire-"));
    let g = &body["prompt"];
    assert_eq!(g["6"]["inputs"]["text"], "a calm scandinavian bedroom");
    assert_eq!(g["7"]["inputs"]["text"], "clutter");
    assert_eq!(
        (&g["5"]["inputs"]["width"], &g["5"]["inputs"]["height"], &g["5"]["inputs"]["batch_size"]),
        (&json!(512), &json!(768), &json!(2))
    );
    assert_eq!((&g["3"]["inputs"]["seed"], &g["3"]["inputs"]["steps"]), (&json!(42), &json!(20)), "typed, not strings");
    assert_eq!(g["4"]["inputs"]["ckpt_name"], "sd_xl_base_1.0.safetensors");
    assert_eq!(*fake.history_reads.lock().unwrap(), 1, "history read once, when the socket said done");
    assert!(fake.cancelled.lock().unwrap().is_empty(), "a finished prompt is not cancelled");
}

#[tokio::test]
async fn comfyui_without_its_websocket_reads_history_until_done() {
    let (fake, url) = comfy(Run::Succeed, false).await;
    let p = comfy_provider(&url, |_| {}).unwrap();
    let out = p.generate_images(&request(2), &quire_ai::no_progress).await.unwrap();
    assert_eq!(colours(&out).len(), 2);
    assert!(*fake.history_reads.lock().unwrap() > 1, "polled until the prompt finished");
}

#[tokio::test]
async fn comfyui_failures_say_which_node_failed_or_which_input_is_wrong() {
    for websocket in [true, false] {
        let (_, url) = comfy(Run::NodeFails, websocket).await;
        let e = comfy_provider(&url, |_| {})
            .unwrap()
            .generate_images(&request(1), &quire_ai::no_progress)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AI provider 'comfy': node 3 (KSampler) failed: CUDA out of memory. Tried to allocate 2.00 GiB",
            "websocket: {websocket}"
        );
    }
    let (fake, url) = comfy(Run::Succeed, true).await;
    let mut req = request(1);
    req.model = Some("missing.safetensors".into());
    let e = comfy_provider(&url, |_| {}).unwrap().generate_images(&req, &quire_ai::no_progress).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Rejected);
    assert!(
        e.message.contains("HTTP 400: Prompt outputs failed validation: ckpt_name: 'missing.safetensors' not in"),
        "{}",
        e.message
    );
    assert!(fake.prompts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_prompt_on_the_server() {
    let (fake, url) = comfy(Run::Forever, true).await;
    let p = comfy_provider(&url, |_| {}).unwrap();
    let (seen, progress) = recorder();
    let req = request(1);
    let generation = p.generate_images(&req, &progress);
    tokio::select! {
        _ = generation => panic!("the fake never finishes"),
        () = async { while seen.lock().unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(5)).await } } => {}
    }
    for _ in 0..200 {
        if fake.cancelled.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = fake.cancelled.lock().unwrap().clone();
    assert_eq!(
        cancelled,
        vec![
            ("/queue".to_string(), json!({"delete": ["prompt-1"]})),
            ("/interrupt".to_string(), json!({"prompt_id": "prompt-1"}))
        ]
    );
}

#[tokio::test]
async fn a_workflow_of_ones_own_gets_the_requests_values() {
    let (fake, url) = comfy(Run::Succeed, true).await;
    let workflow = json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "interior photo, {{prompt}}, soft light", "clip": ["1", 1]}},
        "3": {"class_type": "EmptySD3LatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": 1}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "quire", "images": ["8", 0]}}
    });
    let p = comfy_provider(&url, |s| s.workflow = Some(workflow)).unwrap();
    p.generate_images(&request(1), &quire_ai::no_progress).await.unwrap();
    let g = fake.prompts.lock().unwrap()[0]["prompt"].clone();
    assert_eq!(g["2"]["inputs"]["text"], "interior photo, a calm scandinavian bedroom, soft light");
    assert_eq!(
        (&g["3"]["inputs"]["width"], &g["1"]["inputs"]["ckpt_name"]),
        (&json!(512), &json!("sd_xl_base_1.0.safetensors"))
    );

    let no_prompt = json!({"1": {"class_type": "SaveImage", "inputs": {}}});
    let e = comfy_provider(&url, |s| s.workflow = Some(no_prompt)).err().unwrap();
    assert!(e.message.contains("no {{prompt}} placeholder"), "{}", e.message);
    let e = comfy_provider(&url, |s| s.workflow = Some(json!({"nodes": [], "links": []}))).err().unwrap();
    assert!(e.message.contains("not in ComfyUI's API format"), "{}", e.message);
}

#[tokio::test]
async fn automatic1111_paints_from_an_image_through_img2img() {
    let (fake, p) = a1111(vec![]).await;
    assert!(p.paints_from_images());
    let mut req = request(1);
    let wide = image::RgbImage::from_fn(200, 100, |x, _| image::Rgb([if x < 100 { 250 } else { 5 }, 90, 60]));
    let mut bytes = Cursor::new(Vec::new());
    wide.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    req.init_image = Some(InitImage::fitted(bytes.get_ref(), 512, 768, 0.35).unwrap());
    let out = p.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    assert_eq!(out.images.len(), 1);
    assert_eq!(*fake.paths.lock().unwrap(), ["/sdapi/v1/img2img"]);
    let body = fake.bodies.lock().unwrap()[0].clone();
    assert_eq!((&body["denoising_strength"], &body["prompt"]), (&json!(0.35), &json!("a calm scandinavian bedroom")));
    let init = base64::engine::general_purpose::STANDARD.decode(body["init_images"][0].as_str().unwrap()).unwrap();
    let init = image::load_from_memory_with_format(&init, image::ImageFormat::Png).unwrap().to_rgb8();
    assert_eq!(init.dimensions(), (512, 768), "fitted to the size asked for");
    // Covered and cropped about the centre: both halves of the photo are still there.
    assert!(init.get_pixel(10, 400).0[0] > 200 && init.get_pixel(500, 400).0[0] < 40);

    let e = InitImage::fitted(b"not an image", 64, 64, 0.5).unwrap_err();
    assert!(e.contains("does not decode"), "{e}");
}

#[tokio::test]
async fn comfyui_uploads_the_image_and_runs_an_image_to_image_workflow() {
    let (fake, url) = comfy(Run::Succeed, true).await;
    let p = comfy_provider(&url, |_| {}).unwrap();
    assert!(p.paints_from_images(), "Quire's own workflows can");
    let mut req = request(2);
    req.init_image = Some(InitImage::fitted(&png([30, 60, 90]), 512, 768, 0.55).unwrap());
    let out = p.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    assert_eq!(colours(&out).len(), 2);
    let uploads = fake.uploads.lock().unwrap().clone();
    assert_eq!(uploads.len(), 1);
    let field = |name: &str| uploads[0].iter().find(|p| p.name == name).unwrap().clone();
    let file = field("image");
    assert_eq!(file.data, req.init_image.as_ref().unwrap().png.to_vec(), "the fitted PNG, as it is");
    assert!(file.filename.as_deref().unwrap().starts_with("quire-"), "{:?}", file.filename);
    assert_eq!((field("type").data, field("overwrite").data), (b"input".to_vec(), b"true".to_vec()));
    let g = fake.prompts.lock().unwrap()[0]["prompt"].clone();
    assert_eq!(g["10"]["inputs"]["image"], format!("quire/{}", file.filename.unwrap()), "the name it kept");
    assert_eq!((&g["11"]["class_type"], &g["11"]["inputs"]["pixels"]), (&json!("VAEEncode"), &json!(["10", 0])));
    assert_eq!((&g["12"]["class_type"], &g["12"]["inputs"]["amount"]), (&json!("RepeatLatentBatch"), &json!(2)));
    assert_eq!((&g["3"]["inputs"]["latent_image"], &g["3"]["inputs"]["denoise"]), (&json!(["12", 0]), &json!(0.55)));
    assert!(g.get("5").is_none(), "no empty latent");

    // Without an image the text-to-image graph runs, uploading nothing.
    p.generate_images(&request(1), &quire_ai::no_progress).await.unwrap();
    assert_eq!(fake.uploads.lock().unwrap().len(), 1);
    assert_eq!(fake.prompts.lock().unwrap()[1]["prompt"]["3"]["inputs"]["denoise"], json!(1.0));

    // A workflow of one's own without an image workflow paints from the prompt alone; an image
    // workflow must say where the image goes.
    let own = json!({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}}});
    let p = comfy_provider(&url, |s| s.workflow = Some(own.clone())).unwrap();
    assert!(!p.paints_from_images());
    let e = comfy_provider(&url, |s| s.image_workflow = Some(own.clone())).err().unwrap();
    assert!(e.message.contains("no {{image}} placeholder"), "{}", e.message);
    let with_image = json!({
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
        "3": {"class_type": "KSampler", "inputs": {"denoise": "{{denoise}}"}}
    });
    let p = comfy_provider(&url, |s| {
        s.workflow = Some(own);
        s.image_workflow = Some(with_image);
    })
    .unwrap();
    assert!(p.paints_from_images());
    p.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    let g = fake.prompts.lock().unwrap()[2]["prompt"].clone();
    assert_eq!(
        (&g["3"]["inputs"]["denoise"], g["2"]["inputs"]["image"].as_str().map(|s| s.starts_with("quire/"))),
        (&json!(0.55), Some(true))
    );
}

// ---------------------------------------------------------------- OpenAI's image edits

#[derive(Default)]
struct Edits {
    forms: Mutex<Vec<Vec<Part>>>,
}

async fn edits(State(f): State<Arc<Edits>>, headers: HeaderMap, body: axum::body::Bytes) -> Json<Value> {
    let parts = multipart(&headers, &body);
    let n: usize =
        parts.iter().find(|p| p.name == "n").map_or(1, |p| String::from_utf8_lossy(&p.data).parse().unwrap());
    f.forms.lock().unwrap().push(parts);
    let data: Vec<Value> = (0..n).map(|i| json!({"b64_json": b64(&png([90, 20 * i as u8, 200]))})).collect();
    Json(json!({"created": 1, "data": data}))
}

#[tokio::test]
async fn openai_paints_from_an_image_through_image_edits() {
    let fake = Arc::new(Edits::default());
    let url = listen(Router::new().route("/v1/images/edits", post(edits)).with_state(fake.clone())).await;
    let mut s = OpenAiSettings::new("fakeai", &format!("{url}/v1"));
    s.api_key = Some("sk-test".into());
    s.image_model = "gpt-image-1".into();
    s.guard = quick();
    let p = OpenAi::new(s).unwrap();
    assert!(p.paints_from_images());
    let mut req = request(2);
    req.init_image = Some(InitImage::fitted(&png([200, 100, 50]), 512, 768, 0.6).unwrap());
    let out = p.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    assert_eq!((out.model.as_str(), colours(&out)), ("gpt-image-1", vec![[90, 0, 200], [90, 20, 200]]));
    let form = fake.forms.lock().unwrap()[0].clone();
    let text = |name: &str| form.iter().find(|p| p.name == name).map(|p| String::from_utf8(p.data.clone()).unwrap());
    assert_eq!(
        (text("model"), text("prompt"), text("n"), text("size")),
        (
            Some("gpt-image-1".into()),
            Some("a calm scandinavian bedroom".into()),
            Some("2".into()),
            Some("512x768".into())
        )
    );
    let image = form.iter().find(|p| p.name == "image").unwrap();
    assert_eq!((image.filename.as_deref(), image.content_type.as_deref()), (Some("image.png"), Some("image/png")));
    assert_eq!(image.data, req.init_image.unwrap().png.to_vec());
}

/// One part of a `multipart/form-data` body.
#[derive(Clone, Debug)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// The parts of a `multipart/form-data` body (RFC 7578), as the fakes' servers read them.
fn multipart(headers: &HeaderMap, body: &[u8]) -> Vec<Part> {
    let content_type = headers["content-type"].to_str().unwrap();
    let boundary = content_type.split("boundary=").nth(1).expect("a boundary").trim_matches('"');
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    // The first delimiter has no line break before it.
    let mut rest = &body[find(body, &delimiter[2..]).expect("a first delimiter") + delimiter.len() - 2..];
    let mut parts = Vec::new();
    while !rest.starts_with(b"--") {
        rest = rest.strip_prefix(b"\r\n").expect("a line break after the delimiter");
        let head_end = find(rest, b"\r\n\r\n").expect("the part's headers end");
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let end = find(&rest[head_end + 4..], &delimiter).expect("the part ends") + head_end + 4;
        let value = |key: &str| {
            let at = head.find(&format!("{key}=\""))? + key.len() + 2;
            Some(head[at..].split('"').next()?.to_string())
        };
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: ").or_else(|| l.strip_prefix("content-type: ")))
            .map(String::from);
        parts.push(Part {
            name: value(" name").unwrap_or_default(),
            filename: value("filename"),
            content_type,
            data: rest[head_end + 4..end].to_vec(),
        });
        rest = &rest[end + delimiter.len()..];
    }
    parts
}
