//! bench/builds: board builds as embedded engineers meet them, on this machine.
//!
//! 1. Checking a configuration against the shipped Armbian schema (403 boards): time per
//!    configuration, uncached (the server caches by schema version and configuration hash).
//! 2. Compressing an image Armbian left uncompressed: Quire's zstd (level 9) and xz (preset
//!    6), every core, against Debian's `zstd -9 -T0` and `xz -6 -T0` on the same file — a
//!    filesystem-like image of system files and free space (zeros).
//! 3. A build's log to 50 live viewers: the fake Armbian checkout prints lines at a set rate;
//!    50 SSE clients follow; each line's latency is from Quire reading it to a viewer
//!    receiving it (its `t`), p50/p99 over every line printed while the viewer was connected
//!    (lines before are its backlog: checked to arrive, but not a live line's wait).
//!
//!   cargo run --release -p quire-bench --bin builds -- [IMAGE_MB] [LINES] [RATE]
//!   (IMAGE_MB 0 leaves the compression out)
//!
//! Goals (issue 20): 50 viewers at 10,000 lines/s with p99 under 50 ms; compression within
//! 10 % of the command-line tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use quire_store::testing::Backend;
use reqwest::Method;
use serde_json::{Value, json};

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() as f64 - 1.0) * q).round() as usize]
}

/// A file of `mb` MiB like a filesystem image: two thirds system libraries and programs one
/// after another (sorted, so every run makes the same file), then free space (zeros).
fn image(path: &Path, mb: u64) {
    use std::io::Write;
    let target = mb << 20;
    let used = target / 3 * 2;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut files: Vec<PathBuf> = ["/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib", "/usr/share/doc"]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    files.sort();
    'fill: loop {
        for f in &files {
            let Ok(bytes) = std::fs::read(f) else { continue };
            let take = bytes.len().min((used - written) as usize);
            out.write_all(&bytes[..take]).unwrap();
            written += take as u64;
            if written >= used {
                break 'fill;
            }
        }
    }
    let zeros = vec![0u8; 1 << 20];
    while written < target {
        let n = zeros.len().min((target - written) as usize);
        out.write_all(&zeros[..n]).unwrap();
        written += n as u64;
    }
    out.flush().unwrap();
}

/// A JSON call as the bench's account; answers the body (null when empty).
async fn call(client: &reqwest::Client, method: Method, url: String, token: &str, body: Value) -> Value {
    let mut request = client.request(method, url).bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let image_mb: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let lines: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rate: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(12_500);
    let dir = tempfile::tempdir().unwrap();

    // 1. Checking configurations.
    let checker = quire_armbian::Checker::new(serde_json::from_str(quire_armbian::shipped()).unwrap()).unwrap();
    let configs: Vec<Value> = (0..2_000)
        .map(|i| {
            let branch = ["current", "edge", "vendor", "legacy"][i % 4];
            json!({"BOARD": "rock-5b", "BRANCH": branch, "RELEASE": "noble", "BUILD_MINIMAL": "no", "FIXED_IMAGE_SIZE": 4000 + i})
        })
        .collect();
    let mut each = Vec::new();
    for c in &configs {
        let t = Instant::now();
        std::hint::black_box(checker.check(c));
        each.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "checking a configuration (shipped schema, uncached): p50 {:.0} µs, p99 {:.0} µs over {}",
        quantile(&each, 0.5),
        quantile(&each, 0.99),
        each.len()
    );

    // 2. Compression (IMAGE_MB 0 leaves it out).
    let raw = dir.path().join("image.img");
    if image_mb > 0 {
        image(&raw, image_mb);
    }
    let mb = image_mb as f64;
    for (codec, tool, args, suffix) in [
        (quire_app::builds::Codec::Zstd, "zstd", vec!["-9", "-T0", "-q", "-f", "-o"], "zst"),
        (quire_app::builds::Codec::Xz, "xz", vec!["-6", "-T0", "-k", "-f", "-c"], "xz"),
    ] {
        if image_mb == 0 {
            break;
        }
        let ours = dir.path().join(format!("quire.{suffix}"));
        let quire_s = timed(|| {
            quire_app::builds::compress_file(&raw, &ours, codec).unwrap();
        });
        let quire_size = std::fs::metadata(&ours).unwrap().len();
        let theirs = dir.path().join(format!("cli.{suffix}"));
        let cli_s = timed(|| {
            let status = if tool == "xz" {
                Command::new(tool).args(&args).arg(&raw).stdout(std::fs::File::create(&theirs).unwrap()).status()
            } else {
                Command::new(tool).args(&args).arg(&theirs).arg(&raw).status()
            };
            assert!(status.unwrap().success());
        });
        let cli_size = std::fs::metadata(&theirs).unwrap().len();
        println!(
            "{tool} on a {image_mb} MiB image: Quire {:.1} MB/s to {:.1} % of its size, {tool} CLI {:.1} MB/s to {:.1} % (Quire / CLI speed = {:.2}, size = {:.3})",
            mb / quire_s,
            quire_size as f64 * 100.0 / (image_mb << 20) as f64,
            mb / cli_s,
            cli_size as f64 * 100.0 / (image_mb << 20) as f64,
            cli_s / quire_s,
            quire_size as f64 / cli_size as f64
        );
        std::fs::remove_file(&ours).unwrap();
        std::fs::remove_file(&theirs).unwrap();
    }
    let _ = std::fs::remove_file(&raw);

    // 3. Fan-out of a build's log to 50 viewers.
    let checkout = dir.path().join("armbian");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fake-armbian"))
        .arg(&checkout)
        .status()
        .unwrap();
    assert!(copied.success());
    let t = Backend::Sqlite.open(Default::default()).await;
    let mut config = quire_server::ServerConfig::default();
    config.assets.location = quire_app::assets::AssetLocation::Local(dir.path().join("store"));
    config.armbian_dir = Some(checkout);
    config.jobs.poll_interval = Duration::from_millis(20);
    let served = quire_bench::serve(t.store.clone(), config).await;
    let worker = quire_jobs::WorkerConfig { queues: vec!["builds".into()], schedules: false, ..Default::default() };
    let _worker = served.app.engine().start_worker(worker, served.app.shutdown_signal()).await.unwrap();
    let client = reqwest::Client::new();
    let (base, token, ws) = (served.base.clone(), served.token.clone(), served.ws.clone());
    let doc = call(
        &client,
        Method::POST,
        format!("{base}/api/v1/workspaces/{ws}/documents"),
        &token,
        json!({"kind": "board-config", "title": "Bench"}),
    )
    .await;
    let doc = doc["id"].as_str().unwrap().to_string();
    let content = json!({"format": "json", "content": {"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble",
        "QUIRE_FAKE_LINES": lines.to_string(), "QUIRE_FAKE_RATE": rate.to_string(), "QUIRE_FAKE_DELAY": "0", "QUIRE_FAKE_IMAGE_MB": "1",
                   // The viewers connect while the build sets up, as they would during a real
                   // build's first minutes; then its lines come at the rate asked for.
                   "QUIRE_FAKE_WAIT": "2"}});
    call(&client, Method::PUT, format!("{base}/api/v1/documents/{doc}/content"), &token, content).await;
    let build = call(&client, Method::POST, format!("{base}/api/v1/documents/{doc}/builds"), &token, json!({})).await;
    let id = build["id"].as_str().expect("a build").to_string();
    let viewers = 50;
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let (client, url, token) = (client.clone(), format!("{base}/api/v1/builds/{id}/log"), token.clone());
        tasks.push(tokio::spawn(async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            // Lines printed before this viewer's stream opened are its backlog, read from the
            // store: counted, but their wait is not a live line's latency.
            let opened = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            let mut body = res.bytes_stream();
            // A viewer here reads only what it measures (each line's number and time), so that
            // 50 of them on the server's own 2 cores cost it as little as browsers elsewhere would.
            type Row = (i64, i64, serde::de::IgnoredAny, serde::de::IgnoredAny);
            let (mut text, mut latencies, mut count) = (Vec::<u8>::new(), Vec::new(), 0u64);
            let mut first: Option<i64> = None;
            let mut last = 0i64;
            let mut scanned: usize = 0;
            while let Some(Ok(chunk)) = body.next().await {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
                text.extend_from_slice(&chunk);
                let mut ended = false;
                while let Some(at) = text[scanned.saturating_sub(1)..].windows(2).position(|w| w == b"\n\n") {
                    let end = scanned.saturating_sub(1) + at + 2;
                    let rest = text.split_off(end);
                    let frame = std::mem::replace(&mut text, rest);
                    scanned = 0;
                    let frame = std::str::from_utf8(&frame).unwrap();
                    if frame.starts_with("event: end") || frame.contains("\nevent: end") {
                        ended = true;
                    }
                    if frame.contains("event: lines")
                        && let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: "))
                    {
                        let batch: Vec<Row> = serde_json::from_str(data).unwrap();
                        for (_, t, _, _) in &batch {
                            first.get_or_insert(*t);
                            last = *t;
                            if *t >= opened {
                                latencies.push((now - t) as f64);
                            }
                            count += 1;
                        }
                    }
                }
                scanned = text.len();
                if ended {
                    break;
                }
            }
            (latencies, count, first.map(|f| (f, last)))
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut counts = Vec::new();
    let mut span = (i64::MAX, 0i64);
    for t in tasks {
        let (lat, count, seen) = t.await.unwrap();
        all.extend(lat);
        counts.push(count);
        if let Some((f, l)) = seen {
            span = (span.0.min(f), span.1.max(l));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = call(&client, Method::GET, format!("{base}/api/v1/builds/{id}"), &token, Value::Null).await;
    let log_lines = done["data"]["log_lines"].as_u64().unwrap_or(0);
    // From the first line Quire read to the last.
    let build_s = (span.1 - span.0).max(1) as f64 / 1000.0;
    println!(
        "log to {viewers} live viewers: {log_lines} lines in {build_s:.1} s ({:.0} lines/s printed), every viewer got every line: {} (fewest {}); line latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (followed for {elapsed:.1} s)",
        log_lines as f64 / build_s.max(0.001),
        counts.iter().all(|c| *c == log_lines),
        counts.iter().min().unwrap(),
        quantile(&all, 0.5),
        quantile(&all, 0.99),
        quantile(&all, 1.0),
    );
    served.stop().await;
}
