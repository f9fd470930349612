//! Board builds over HTTP against the fake Armbian checkout (`tests/fake-armbian`): from the
//! queue to verified artifacts with the log followed live and resumed, a configuration that
//! cannot be built refused, cancel and the time limit stopping the whole process group, a
//! failing build and an image whose checksum does not match; on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, assert_error};
use futures_util::StreamExt;
use quire_store::testing::Backend;
use serde_json::{Value, json};
use tower::ServiceExt;

quire_store::for_each_backend!(
    a_build_runs_from_the_queue_to_verified_artifacts_with_its_log,
    cancel_and_the_time_limit_stop_the_whole_process_group,
    failures_say_why,
    images_left_uncompressed_are_compressed_by_quire,
    a_configurations_files_go_into_userpatches_for_its_build,
    the_websocket_api_follows_builds_and_contexts_on_one_socket,
);

struct Setup {
    api: Api,
    doc: String,
    root: std::path::PathBuf,
    _checkout: tempfile::TempDir,
    _worker: quire_jobs::WorkerHandle,
}

async fn setup(b: Backend, time_limit: Duration) -> Setup {
    let (dir, root) = common::fake_armbian();
    let mut config = common::relaxed();
    config.armbian_dir = Some(root.clone());
    config.jobs.poll_interval = Duration::from_millis(20);
    config.jobs.cancel_check = Duration::from_millis(50);
    config.builds.flush_every = Duration::from_millis(20);
    config.builds.kill_grace = Duration::from_millis(300);
    config.builds.time_limit = time_limit;
    let api = Api::with(b, Default::default(), config).await;
    api.post("/api/v1/workspaces", json!({"name": "Boards"})).await;
    let doc =
        api.post("/api/v1/workspaces/boards/documents", json!({"kind": "board-config", "title": "SBC image"})).await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let worker = quire_jobs::WorkerConfig {
        queues: vec!["builds".into()],
        schedules: false,
        grace: Duration::from_millis(200),
        ..Default::default()
    };
    let worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();
    Setup { api, doc, root, _checkout: dir, _worker: worker }
}

impl Setup {
    async fn configure(&self, config: Value) {
        let path = format!("/api/v1/documents/{}/content", self.doc);
        let r = self.api.call(Method::PUT, &path, Some(json!({"format": "json", "content": config})), &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }

    async fn start(&self) -> Value {
        let r = self.api.post(&format!("/api/v1/documents/{}/builds", self.doc), json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.headers[header::LOCATION], format!("/api/v1/builds/{}", r.body["id"].as_str().unwrap()).as_str());
        r.body
    }

    async fn until(&self, id: &str, ok: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1500 {
            let r = self.api.get(&format!("/api/v1/builds/{id}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if ok(&r.body) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("build {id} never got there");
    }

    async fn log_text(&self, id: &str) -> String {
        let r = self.api.get(&format!("/api/v1/builds/{id}/log?format=text")).await;
        assert_eq!(r.status, StatusCode::OK);
        r.body.as_str().map(str::to_string).unwrap_or_default()
    }
}

/// Reads `lines` events of a build's log until `stop` says so or the stream ends; answers the
/// lines (`[n, t, stream, text]`), the stages sent with them, and whether it ended with `end`.
async fn follow(
    api: &Api,
    id: &str,
    last_event: Option<i64>,
    stop: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, Vec<Value>, Option<Value>) {
    let mut req =
        Request::get(format!("/api/v1/builds/{id}/log")).header(header::AUTHORIZATION, format!("Bearer {}", api.admin));
    if let Some(n) = last_event {
        req = req.header("last-event-id", n.to_string());
    }
    let res = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body().into_data_stream();
    let (mut text, mut lines, mut stages, mut end) = (String::new(), Vec::new(), Vec::new(), None);
    while let Ok(Some(Ok(bytes))) = tokio::time::timeout(Duration::from_secs(20), body.next()).await {
        text.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(at) = text.find("\n\n") {
            let frame: String = text.drain(..at + 2).collect();
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
            let data = field("data: ").map(|d| serde_json::from_str::<Value>(&d).unwrap());
            match field("event: ").as_deref() {
                Some("lines") => {
                    let batch = data.unwrap();
                    assert_eq!(field("id: ").unwrap(), batch.as_array().unwrap().last().unwrap()[0].to_string());
                    lines.extend(batch.as_array().unwrap().iter().cloned());
                }
                Some("stages") => stages.extend(data.unwrap().as_array().unwrap().iter().cloned()),
                Some("end") => end = data,
                _ => {}
            }
        }
        if end.is_some() || stop(&lines) {
            break;
        }
    }
    (lines, stages, end)
}

async fn a_build_runs_from_the_queue_to_verified_artifacts_with_its_log(b: Backend) {
    let s = setup(b, Duration::from_secs(120)).await;
    // What cannot be built is refused, naming the setting.
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "legacy", "RELEASE": "noble"})).await;
    let r = s.api.post(&format!("/api/v1/documents/{}/builds", s.doc), json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("quire-sbc does not build the 'legacy' kernel branch"),
        "{}",
        r.body
    );

    s.configure(
        json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,img,zst",
                       "QUIRE_FAKE_DELAY": "0.15", "QUIRE_FAKE_LINES": "300"}),
    )
    .await;
    let build = s.start().await;
    let id = build["id"].as_str().unwrap().to_string();
    assert_eq!(build["data"]["config"]["BRANCH"], "edge", "the configuration is snapshotted");
    assert_eq!(build["data"]["schema_version"].as_str().unwrap().len(), "0123456789-".len() + 8);
    let arguments: Vec<&str> =
        build["data"]["arguments"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(arguments.contains(&"BOARD=quire-sbc") && arguments.contains(&"BUILD_DESKTOP=no"), "{arguments:?}");

    // Followed live; the stream drops; it is taken up again after the last line seen.
    let (first, first_stages, end) = follow(&s.api, &id, None, |lines| lines.len() >= 5).await;
    assert!(end.is_none() && first.len() >= 5);
    let seen = first.last().unwrap()[0].as_i64().unwrap();
    let (rest, rest_stages, end) = follow(&s.api, &id, Some(seen), |_| false).await;
    assert_eq!(end.unwrap()["status"], "completed");
    let numbers: Vec<i64> = first.iter().chain(&rest).map(|l| l[0].as_i64().unwrap()).collect();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "every line once, in order");
    assert!(first.iter().chain(&rest).any(|l| l[3].as_str().unwrap().contains("\u{1b}[1;32mINFO")), "colours are kept");
    assert!(first.iter().chain(&rest).any(|l| l[2] == "err"), "stderr is told from stdout");

    let done = s.until(&id, |b| b["status"] == "completed").await;
    let data = &done["data"];
    assert_eq!(data["log_lines"].as_i64().unwrap(), numbers.len() as i64);
    let stages: Vec<&str> = data["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(stages.contains(&"Compiling kernel [ edge ]") && stages.len() >= 8, "{stages:?}");
    // The stages came live with their lines, each once, as the build recorded them.
    assert_eq!(first_stages[0]["name"], "Preparing host [ fake Armbian, board quire-sbc ]");
    let live: Vec<&Value> = first_stages.iter().chain(&rest_stages).collect();
    let live_names: Vec<&str> = live.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(live_names, stages);
    assert_eq!(
        live.iter().map(|s| &s["line"]).collect::<Vec<_>>(),
        data["stages"].as_array().unwrap().iter().map(|s| &s["line"]).collect::<Vec<_>>()
    );
    assert_eq!(data["warnings"], 1);
    let artifacts = data["artifacts"].as_array().unwrap();
    let kinds: Vec<&str> = artifacts.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["image", "checksum", "info", "image_zst", "checksum"], "{artifacts:?}");
    for a in artifacts.iter().filter(|a| a["kind"].as_str().unwrap().starts_with("image")) {
        assert_eq!(a["verified"], true, "{a}");
        let size = s.api.app.assets().objects().size(a["sha256"].as_str().unwrap()).await.unwrap();
        assert_eq!(size, a["size"].as_u64().unwrap());
    }
    assert_eq!(artifacts[0]["size"], 4 * 1024 * 1024 + "END OF FAKE IMAGE".len());
    // Downloads: whole, by range, and not modified.
    let name = artifacts[0]["name"].as_str().unwrap();
    let path = format!("/api/v1/builds/{id}/artifacts/{name}");
    let req = |range: Option<&str>| {
        let mut r = Request::get(&path).header(header::AUTHORIZATION, format!("Bearer {}", s.api.admin));
        if let Some(range) = range {
            r = r.header(header::RANGE, range);
        }
        r.body(Body::empty()).unwrap()
    };
    let tail = s.api.router.clone().oneshot(req(Some("bytes=-17"))).await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert!(tail.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().contains(name));
    let bytes = http_body_util::BodyExt::collect(tail.into_body()).await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"END OF FAKE IMAGE");
    let sha = s.api.get(&format!("/api/v1/builds/{id}/artifacts/{name}.sha")).await;
    assert!(sha.body.as_str().unwrap().starts_with(artifacts[0]["sha256"].as_str().unwrap()), "{}", sha.body);
    let missing = s.api.get(&format!("/api/v1/builds/{id}/artifacts/nope.img")).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    // Signed URLs: no token needed until they expire; each signs one file of one build.
    let urls = &done["artifact_urls"];
    assert!(done["artifact_urls_expire_at"].as_i64().unwrap() > quire_core::now_ms() / 1000, "{done}");
    let url = urls[name].as_str().unwrap();
    assert!(url.starts_with(&format!("/files/builds/{id}/")) && url.contains("sig="), "{url}");
    let anonymous = |uri: String, range: Option<&str>| {
        let mut r = Request::get(uri);
        if let Some(range) = range {
            r = r.header(header::RANGE, range);
        }
        s.api.router.clone().oneshot(r.body(Body::empty()).unwrap())
    };
    let tail = anonymous(url.to_string(), Some("bytes=-17")).await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    let bytes = http_body_util::BodyExt::collect(tail.into_body()).await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"END OF FAKE IMAGE");
    let sha_name = format!("{name}.sha");
    let other = url.replacen(&format!("/{name}?"), &format!("/{sha_name}?"), 1);
    assert_eq!(anonymous(other, None).await.unwrap().status(), StatusCode::FORBIDDEN, "a URL signs one file");
    let sha_url = urls[&sha_name].as_str().unwrap().to_string();
    assert_eq!(anonymous(sha_url.clone(), None).await.unwrap().status(), StatusCode::OK);
    let forged = sha_url.replace("sig=", "sig=0");
    assert_eq!(anonymous(forged, None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let stretched = sha_url.replace("expires=", "expires=1");
    assert_eq!(anonymous(stretched, None).await.unwrap().status(), StatusCode::FORBIDDEN, "the expiry is signed too");

    // The whole log as a file; the configuration's builds.
    let text = s.log_text(&id).await;
    assert_eq!(text.lines().count(), numbers.len());
    assert!(text.contains("CC      drivers/fake/part300.o"));
    let list = s.api.get(&format!("/api/v1/documents/{}/builds", s.doc)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let r = s.api.get(&format!("/api/v1/builds/{id}/log?format=pdf")).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

/// Whether a process runs `sleep SECS`.
fn sleeping(secs: u32) -> bool {
    let out = std::process::Command::new("pgrep").args(["-f", &format!("^sleep {secs}$")]).output().unwrap();
    !out.stdout.is_empty()
}

async fn cancel_and_the_time_limit_stop_the_whole_process_group(b: Backend) {
    // Each backend's run sleeps for its own time, so the two can tell their processes apart.
    let secs = match b {
        Backend::Sqlite => 100_101,
        _ => 100_202,
    };
    let s = setup(b, Duration::from_secs(3)).await;
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble",
                       "QUIRE_FAKE_OUTCOME": "hang", "QUIRE_FAKE_HANG_SECS": secs.to_string()}))
        .await;
    let build = s.start().await;
    let id = build["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if sleeping(secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sleeping(secs), "the build's child runs");
    let r = s.api.post(&format!("/api/v1/contexts/{id}/cancel"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "a running build is asked to stop: {}", r.body);
    s.until(&id, |b| b["status"] == "cancelled").await;
    for _ in 0..100 {
        if !sleeping(secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sleeping(secs), "cancel stops the child of the build's shell too");
    assert!(s.log_text(&id).await.contains("this fake never finishes"));

    // Past its time limit a build is stopped and failed, saying so.
    let build = s.start().await;
    let id = build["id"].as_str().unwrap().to_string();
    let failed = s.until(&id, |b| b["status"] == "failed").await;
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("time limit"), "{failed}");
    for _ in 0..100 {
        if !sleeping(secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sleeping(secs), "the time limit stops the whole group");
}

async fn failures_say_why(b: Backend) {
    let s = setup(b, Duration::from_secs(120)).await;
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "QUIRE_FAKE_OUTCOME": "fail"}))
        .await;
    let id = s.start().await["id"].as_str().unwrap().to_string();
    let failed = s.until(&id, |b| b["status"] == "failed").await;
    assert_eq!(failed["error"]["code"], "build_failed", "{failed}");
    assert_eq!(failed["error"]["message"], "./compile.sh exited with 2: Kernel build failed [ exit code 2 ]");
    assert!(s.log_text(&id).await.contains("make: *** [Makefile:1234: vmlinux] Error 2"));

    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,xz",
                       "QUIRE_FAKE_OUTCOME": "badsha"}))
        .await;
    let id = s.start().await["id"].as_str().unwrap().to_string();
    let failed = s.until(&id, |b| b["status"] == "failed").await;
    assert_eq!(failed["error"]["code"], "checksum_mismatch", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains(".img.xz does not match its .sha"), "{failed}");
    let body = s.api.get("/api/v1/builds/ctx_nope").await;
    assert_error(&body, StatusCode::NOT_FOUND, "not_found");
}

async fn images_left_uncompressed_are_compressed_by_quire(b: Backend) {
    let s = setup(b, Duration::from_secs(120)).await;
    // Armbian keeps the raw image only (sha,img); Quire compresses it: zstd, then xz on request.
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,img"}))
        .await;
    for (codec, tool) in [("zstd", "zstd"), ("xz", "xz")] {
        let r = s.api.post(&format!("/api/v1/documents/{}/builds", s.doc), json!({"compress": codec})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        let done = s.until(&id, |b| matches!(b["status"].as_str(), Some("completed" | "failed"))).await;
        assert_eq!(done["status"], "completed", "{done}");
        let artifacts = done["data"]["artifacts"].as_array().unwrap().clone();
        let image = artifacts.iter().find(|a| a["kind"] == "image").unwrap();
        let suffix = if codec == "zstd" { "zst" } else { "xz" };
        let packed = artifacts
            .iter()
            .find(|a| a["kind"] == format!("image_{suffix}"))
            .unwrap_or_else(|| panic!("{artifacts:?}"));
        assert_eq!(packed["verified"], true, "Quire's .sha checks: {packed}");
        assert!(packed["size"].as_u64().unwrap() < image["size"].as_u64().unwrap() / 100, "{packed}");
        // What the command-line tool unpacks is the image, byte for byte.
        let bytes = s.api.app.assets().objects().get(packed["sha256"].as_str().unwrap()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("image.{suffix}"));
        std::fs::write(&file, &bytes).unwrap();
        let out = std::process::Command::new(tool).arg("-dc").arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(quire_assets::objects::sha256_hex(&out.stdout), image["sha256"].as_str().unwrap());
    }
    let r = s.api.post(&format!("/api/v1/documents/{}/builds", s.doc), json!({"compress": "rar"})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

async fn a_configurations_files_go_into_userpatches_for_its_build(b: Backend) {
    let s = setup(b, Duration::from_secs(120)).await;
    // The checkout has a customize-image.sh of its own, which the configuration's stands in for.
    let userpatches = s.root.join("userpatches");
    std::fs::create_dir_all(&userpatches).unwrap();
    std::fs::write(userpatches.join("customize-image.sh"), "#!/bin/bash\necho the checkout's own\n").unwrap();
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,img"}))
        .await;
    let put = |path: &str, bytes: &'static str| {
        let req = Request::put(format!("/api/v1/documents/{}/files/{}", s.doc, path.replace('/', "%2F")))
            .body(Body::from(bytes))
            .unwrap();
        s.api.raw(req)
    };
    let r = put("customize-image.sh", "#!/bin/bash\necho \"customized by Quire for $3 ($2) on $1\"\n").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(put("overlay/motd", "Property of the lab\n").await.status, StatusCode::CREATED);

    let build = s.start().await;
    let id = build["id"].as_str().unwrap().to_string();
    let files = build["data"]["config"]["files"].as_object().unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["customize-image.sh", "overlay/motd"], "the files are snapshotted");
    assert!(build["data"]["arguments"].as_array().unwrap().iter().all(|a| !a.as_str().unwrap().contains("files")));
    let done = s.until(&id, |b| matches!(b["status"].as_str(), Some("completed" | "failed"))).await;
    assert_eq!(done["status"], "completed", "{done}");
    let log = s.log_text(&id).await;
    assert!(
        log.contains("customized by Quire for quire-sbc (quire-arm64) on noble"),
        "the configuration's script ran:\n{log}"
    );
    assert!(!log.contains("the checkout's own"));
    let image = done["data"]["artifacts"].as_array().unwrap().iter().find(|a| a["kind"] == "image").unwrap().clone();
    let bytes = s.api.app.assets().objects().get(image["sha256"].as_str().unwrap()).await.unwrap();
    let head = String::from_utf8_lossy(&bytes[..200]);
    assert!(head.contains("overlay: motd\nProperty of the lab"), "{head}");
    // The checkout is as it was.
    assert_eq!(
        std::fs::read_to_string(userpatches.join("customize-image.sh")).unwrap(),
        "#!/bin/bash\necho the checkout's own\n"
    );
    assert!(!userpatches.join("overlay").exists());
    assert!(!userpatches.join(".quire-laid.json").exists());

    // A file whose bytes the workspace does not hold (named by a merge patch) is refused.
    let path = format!("/api/v1/documents/{}/content", s.doc);
    let patch = json!({"files": {"x.sh": {"sha256": "0".repeat(64), "size": 1, "mode": "755", "text": true}}});
    let r = s.api.call(Method::PATCH, &path, Some(patch), &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = s.api.post(&format!("/api/v1/documents/{}/builds", s.doc), json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(r.body["error"]["field"], "config.files.x.sh", "{}", r.body);
}

async fn the_websocket_api_follows_builds_and_contexts_on_one_socket(b: Backend) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = setup(b, Duration::from_secs(120)).await;
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,img",
                       "QUIRE_FAKE_DELAY": "0.05", "QUIRE_FAKE_LINES": "100"}))
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = s.api.app.clone();
    tokio::spawn(async move { quire_server::serve(listener, app, std::future::pending()).await.unwrap() });
    // No credential: refused before the upgrade.
    assert!(tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws")).await.is_err());
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?token={}", s.api.admin)).await.unwrap();
    let send = async |v: Value, ws: &mut tokio_tungstenite::WebSocketStream<_>| {
        ws.send(Message::text(v.to_string())).await.unwrap();
    };
    async fn next(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    ) -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("a message in time") {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    }
    send(json!({"type": "ping"}), &mut ws).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
    send(json!({"type": "subscribe", "id": "x", "topic": "build.log", "build": "ctx_nope"}), &mut ws).await;
    let refused = next(&mut ws).await;
    assert_eq!(
        (refused["type"].as_str(), refused["id"].as_str(), refused["error"]["code"].as_str()),
        (Some("error"), Some("x"), Some("not_found"))
    );
    send(json!({"type": "subscribe", "id": "y", "topic": "weather"}), &mut ws).await;
    assert_eq!(next(&mut ws).await["error"]["code"], "invalid_request");
    ws.send(Message::text("{oops")).await.unwrap();
    assert_eq!(next(&mut ws).await["error"]["code"], "invalid_request");

    let build = s.start().await;
    let id = build["id"].as_str().unwrap().to_string();
    send(json!({"type": "subscribe", "id": "log", "topic": "build.log", "build": id}), &mut ws).await;
    send(json!({"type": "subscribe", "id": "ctx", "topic": "context", "context": id}), &mut ws).await;
    let (mut lines, mut stages, mut events) = (Vec::new(), Vec::new(), Vec::new());
    let (mut log_end, mut ctx_end) = (None, false);
    while log_end.is_none() || !ctx_end {
        let m = next(&mut ws).await;
        match (m["type"].as_str().unwrap(), m["id"].as_str().unwrap_or_default()) {
            ("subscribed", _) => {}
            ("lines", "log") => {
                let batch = m["lines"].as_array().unwrap();
                assert_eq!(m["last"], batch.last().unwrap()[0]);
                lines.extend(batch.iter().map(|l| l[0].as_i64().unwrap()));
            }
            ("stages", "log") => stages.extend(m["stages"].as_array().unwrap().iter().map(|s| s["name"].clone())),
            ("end", "log") => log_end = Some(m["status"].clone()),
            ("event", "ctx") => events.push(m["event"].clone()),
            ("end", "ctx") => ctx_end = true,
            other => panic!("unexpected {other:?}: {m}"),
        }
    }
    assert_eq!(log_end, Some(json!("completed")));
    assert_eq!(lines, (1..=lines.len() as i64).collect::<Vec<_>>(), "every line once, in order");
    assert!(stages.len() >= 8 && stages[0] == "Preparing host [ fake Armbian, board quire-sbc ]", "{stages:?}");
    assert!(events.iter().any(|e| e["kind"] == "status" && e["data"]["status"] == "completed"), "{events:?}");
    // Resumed after the last line seen, the log only ends.
    send(json!({"type": "subscribe", "id": "again", "topic": "build.log", "build": id, "after": lines.len()}), &mut ws)
        .await;
    assert_eq!(next(&mut ws).await["type"], "subscribed");
    let end = next(&mut ws).await;
    assert_eq!((end["type"].as_str(), end["id"].as_str()), (Some("end"), Some("again")), "{end}");
    // Unsubscribing what is not there says so; at most 32 subscriptions at once.
    send(json!({"type": "unsubscribe", "id": "nope"}), &mut ws).await;
    assert_eq!(next(&mut ws).await["error"]["code"], "not_found");
    // A build that hangs: subscriptions to it stay open, and a socket holds at most 32.
    s.configure(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "QUIRE_FAKE_OUTCOME": "hang"}))
        .await;
    let hanging = s.start().await["id"].as_str().unwrap().to_string();
    for i in 0..32 {
        send(json!({"type": "subscribe", "id": format!("h{i}"), "topic": "context", "context": hanging, "after": 1_000_000}), &mut ws).await;
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "subscribed", "{i}: {m}");
    }
    send(json!({"type": "subscribe", "id": "h32", "topic": "context", "context": hanging}), &mut ws).await;
    let m = next(&mut ws).await;
    assert_eq!((m["id"].as_str(), m["error"]["code"].as_str()), (Some("h32"), Some("limit_exceeded")), "{m}");
    send(json!({"type": "subscribe", "id": "h0", "topic": "context", "context": hanging}), &mut ws).await;
    assert_eq!(next(&mut ws).await["error"]["code"], "conflict", "an id is one subscription");
    send(json!({"type": "unsubscribe", "id": "h0"}), &mut ws).await;
    assert_eq!(next(&mut ws).await["type"], "unsubscribed");
    send(
        json!({"type": "subscribe", "id": "h32", "topic": "context", "context": hanging, "after": 1_000_000}),
        &mut ws,
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "subscribed");
    let r = s.api.post(&format!("/api/v1/contexts/{hanging}/cancel"), json!({})).await;
    assert!(r.status.is_success(), "{}", r.body);
    s.until(&hanging, |b| b["status"] == "cancelled").await;
}
