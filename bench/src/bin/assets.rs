//! bench/assets: the asset store as designers meet it, on this machine.
//!
//! 1. Thumbnails (320 and 1280 px WebP from one decode) of 5 MB photos: Quire's pipeline
//!    step against ImageMagick (`/usr/bin/convert`, both sizes from one read) and libvips
//!    (`vipsthumbnail`, once per size), from Debian, on the same files, one file at a time.
//! 2. Uploads of those photos through `POST /api/v1/workspaces/{ws}/assets` on a release
//!    server with SQLite and the local disk: throughput and p50/p99 per upload, 4 at a time.
//! 3. GETs of an asset by signed URL, from the local disk: p50/p99 for a thumbnail and for a
//!    5 MB original, one at a time.
//! 4. The same GETs from S3: a server whose asset store is moto's S3 server (`moto_server`,
//!    PyPI's `moto[server]`) on 127.0.0.1; skipped when it is not installed.
//!
//!   cargo run --release -p quire-bench --bin assets -- [PHOTOS] [GETS]
//!
//! Goals (issue 19): thumbnails at least as fast as ImageMagick; GET p99 under 5 ms from disk.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quire_store::testing::Backend;
use serde_json::Value;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((q * s.len() as f64) as usize).min(s.len() - 1)]
}

/// A photo-like 4000 × 3000 JPEG of about 5 MB: smooth light with fine grain (grain is what
/// makes camera files large).
fn photo(seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let grain = (state % 48) as i32 - 24;
        let base = [(x / 16) as i32 % 256, (y / 12) as i32 % 256, ((x + y + seed) / 28) as i32 % 256];
        image::Rgb(base.map(|c| (c + grain).clamp(0, 255) as u8))
    });
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(&img).unwrap();
    out.into_inner()
}

fn time_command(label: &str, files: &[std::path::PathBuf], make: impl Fn(&Path, &Path) -> Vec<Command>) -> Option<f64> {
    let out = std::env::temp_dir().join("quire-bench-thumbs");
    std::fs::create_dir_all(&out).unwrap();
    let started = Instant::now();
    for file in files {
        for mut cmd in make(file, &out) {
            match cmd.output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    println!("{label}: failed ({}), skipped", String::from_utf8_lossy(&o.stderr).trim());
                    return None;
                }
                Err(e) => {
                    println!("{label}: not installed ({e}), skipped (apt-get install imagemagick libvips-tools)");
                    return None;
                }
            }
        }
    }
    Some(files.len() as f64 / started.elapsed().as_secs_f64())
}

fn small_image() -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(client: &reqwest::Client, url: &str, token: &str, body: Vec<u8>) -> Value {
    let r = client.post(url).bearer_auth(token).body(body).send().await.unwrap();
    assert!(r.status().is_success(), "upload: {}", r.status());
    r.json().await.unwrap()
}

/// GETs an asset's original by its signed URL `gets` times, one at a time, after 50 to warm
/// up; prints p50 and p99, and answers them.
async fn get_times(client: &reqwest::Client, base: &str, asset: &Value, gets: usize, label: &str) -> (f64, f64) {
    let path = format!("{base}{}", asset["urls"]["original"].as_str().unwrap());
    get_url(client, &path, gets, &format!("by signed URL {label}")).await
}

/// GETs `url` `gets` times, one at a time, after 50 to warm up; prints and answers p50, p99.
async fn get_url(client: &reqwest::Client, path: &str, gets: usize, label: &str) -> (f64, f64) {
    let mut times = Vec::with_capacity(gets);
    let mut size = 0;
    for i in 0..gets + 50 {
        let t0 = Instant::now();
        let r = client.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        size = r.bytes().await.unwrap().len();
        if i >= 50 {
            times.push(ms(t0.elapsed()));
        }
    }
    let (p50, p99) = (quantile(&times, 0.5), quantile(&times, 0.99));
    println!("GET {label} ({size} bytes), {gets} times: p50 {p50:.2} ms, p99 {p99:.2} ms");
    (p50, p99)
}

/// moto's S3 server on a free port of 127.0.0.1, with a bucket `quire-bench`; stopped when
/// dropped. `None` when `moto_server` is not installed.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "moto_server did not listen on {port} within 10 s");
        // moto checks no signatures: a plain PUT makes the bucket.
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "PUT /quire-bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "creating the bucket: {answer}");
        // SAFETY of set_var: set before the S3 client is made, while no other thread reads them.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "quire");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "quire-secret");
            std::env::set_var("AWS_REGION", "us-east-1");
        }
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let photos = args.first().copied().unwrap_or(12);
    let gets = args.get(1).copied().unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("quire-bench-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..photos {
        let b = photo(i as u32 + 1);
        let path = dir.join(format!("photo-{i}.jpg"));
        std::fs::write(&path, &b).unwrap();
        files.push(path);
        bytes.push(b);
    }
    let mean_mb = bytes.iter().map(Vec::len).sum::<usize>() as f64 / bytes.len() as f64 / 1e6;
    println!("{photos} photos of 4000 × 3000, {mean_mb:.1} MB each on average");

    // 1. Thumbnails.
    let started = Instant::now();
    for b in &bytes {
        let t = quire_assets::thumbs::thumbnails(b, &[320, 1280]).unwrap();
        assert_eq!(t.len(), 2);
    }
    let quire_rate = photos as f64 / started.elapsed().as_secs_f64();
    let magick = time_command("ImageMagick", &files, |f, out| {
        let mut c = Command::new("/usr/bin/convert");
        c.arg(f).args(["-resize", "1280x1280", "-quality", "80", "-write"]).arg(out.join("l.webp"));
        c.args(["-resize", "320x320", "-quality", "80"]).arg(out.join("s.webp"));
        vec![c]
    });
    let vips = time_command("libvips", &files, |f, out| {
        [("1280", "l"), ("320", "s")]
            .into_iter()
            .map(|(size, name)| {
                let mut c = Command::new("vipsthumbnail");
                c.arg(f).args(["-s", size, "-o"]).arg(format!("{}/{name}.webp[Q=80]", out.display()));
                c
            })
            .collect()
    });
    println!("thumbnails (320 + 1280 px WebP) per second: Quire {quire_rate:.2}");
    if let Some(m) = magick {
        println!("  ImageMagick {m:.2} (Quire / ImageMagick = {:.2})", quire_rate / m);
    }
    if let Some(v) = vips {
        println!("  vipsthumbnail {v:.2} (Quire / vips = {:.2})", quire_rate / v);
    }

    // 2. Uploads through the API.
    let t = Backend::Sqlite.open(Default::default()).await;
    let mut config = quire_server::ServerConfig::default();
    config.assets.location = quire_app::assets::AssetLocation::Local(dir.join("store"));
    let served = quire_bench::serve(t.store.clone(), config).await;
    let (base, token, ws) = (served.base.clone(), served.token.clone(), served.ws.clone());
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/workspaces/{ws}/assets?name=photo.jpg");
    let started = Instant::now();
    let mut tasks = Vec::new();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bytes.clone()));
    for _ in 0..4 {
        let (client, url, token, queue) = (client.clone(), url.clone(), token.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut last = Value::Null;
            loop {
                let Some(b) = queue.lock().unwrap().pop() else { break };
                let t0 = Instant::now();
                let r = client.post(&url).bearer_auth(&token).body(b).send().await.unwrap();
                assert!(r.status().is_success(), "upload: {}", r.status());
                last = r.json().await.unwrap();
                times.push(ms(t0.elapsed()));
            }
            (times, last)
        }));
    }
    let mut times = Vec::new();
    let mut one = Value::Null;
    for task in tasks {
        let (t, last) = task.await.unwrap();
        times.extend(t);
        if !last.is_null() {
            one = last;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let total_mb = bytes.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!(
        "uploads of {photos} photos, 4 at a time: {:.1} MB/s, {:.2} uploads/s; per upload p50 {:.0} ms, p99 {:.0} ms",
        total_mb / secs,
        photos as f64 / secs,
        quantile(&times, 0.5),
        quantile(&times, 0.99)
    );

    // 3. GETs by signed URL from the disk (the thumbnails made in 1 are not made here: the
    // server runs no worker, so the small file measured is a small upload).
    let small = small_image();
    let small_asset = upload(&client, &url, &token, small.clone()).await;
    for (label, asset) in [("a 320 × 240 image", &small_asset), ("a 5 MB original", &one)] {
        get_times(&client, &base, asset, gets, &format!("from disk, {label}")).await;
    }
    served.stop().await;

    // 4. The same from S3 (moto), through a server whose asset store is the bucket.
    match Moto::start() {
        None => println!("GET from S3: moto_server is not installed, skipped (pip install 'moto[server]')"),
        Some(moto) => {
            let t = Backend::Sqlite.open(Default::default()).await;
            let mut config = quire_server::ServerConfig::default();
            config.assets.location = quire_app::assets::AssetLocation::S3 {
                url: "s3://quire-bench".into(),
                endpoint: Some(moto.endpoint.clone()),
            };
            let served = quire_bench::serve(t.store.clone(), config).await;
            let (base, token, ws) = (served.base.clone(), served.token.clone(), served.ws.clone());
            let url = format!("{base}/api/v1/workspaces/{ws}/assets?name=photo.jpg");
            let small_asset = upload(&client, &url, &token, small).await;
            let original = upload(&client, &url, &token, bytes[0].clone()).await;
            for (label, asset) in [("a 320 × 240 image", &small_asset), ("a 5 MB original", &original)] {
                let (_, quire) = get_times(&client, &base, asset, gets, &format!("from S3 (moto), {label}")).await;
                // The peer: the same object read straight from the bucket (signed S3 GETs by
                // the same client library, no HTTP server of Quire's in between).
                let objects = quire_assets::Objects::s3("s3://quire-bench", Some(&moto.endpoint)).unwrap();
                let sha = asset["sha256"].as_str().unwrap();
                let mut times = Vec::with_capacity(gets);
                for i in 0..gets + 50 {
                    let t0 = Instant::now();
                    objects.get(sha).await.unwrap();
                    if i >= 50 {
                        times.push(ms(t0.elapsed()));
                    }
                }
                let (p50, peer) = (quantile(&times, 0.5), quantile(&times, 0.99));
                println!(
                    "  straight from the bucket: p50 {p50:.2} ms, p99 {peer:.2} ms; p99 through Quire / straight = {:.2}",
                    quire / peer
                );
            }
            served.stop().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
