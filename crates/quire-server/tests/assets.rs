//! Images over HTTP, on SQLite and PostgreSQL: uploads checked and stripped, refused with
//! the right status and a reason, the workspace's quota, thumbnails made by the pipeline,
//! pages, and delivery by token and by signed URL (ETag, Range, immutable caching).

mod common;

use std::io::Cursor;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, assert_error};
use quire_store::testing::Backend;
use serde_json::{Value, json};

quire_store::for_each_backend!(
    uploads_are_checked_stripped_and_delivered,
    bad_uploads_are_refused_with_a_reason_and_nothing_kept,
    thumbnails_come_from_the_pipeline,
    the_quota_and_pages_hold,
    images_nothing_names_are_collected_after_the_grace_period,
);

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 ^ seed, y as u8, seed]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A JPEG with an EXIF block naming a place, after its SOI marker.
fn jpeg_with_gps() -> Vec<u8> {
    let img = image::RgbImage::from_fn(120, 80, |x, y| image::Rgb([x as u8, y as u8, 77]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    let plain = out.into_inner();
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0\0\0\0\0".to_vec();
    exif.extend(b"GPSLatitude 52.52 N");
    let mut file = plain[..2].to_vec();
    file.extend([0xff, 0xe1]);
    file.extend(((exif.len() + 2) as u16).to_be_bytes());
    file.extend(&exif);
    file.extend(&plain[2..]);
    file
}

async fn workspace(api: &Api) -> String {
    let r = api.post("/api/v1/workspaces", json!({"name": "Studio"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn upload(api: &Api, token: &str, ws: &str, name: &str, bytes: Vec<u8>) -> common::Reply {
    let req = Request::post(format!("/api/v1/workspaces/{ws}/assets?name={name}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(bytes))
        .unwrap();
    api.send(req).await
}

/// GETs a URL with no token; answers the status, headers and raw bytes.
async fn fetch(api: &Api, url: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tower::ServiceExt::oneshot(api.router.clone(), req.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes().to_vec();
    (status, headers, bytes)
}

async fn uploads_are_checked_stripped_and_delivered(b: Backend) {
    let api = Api::new(b).await;
    let ws = workspace(&api).await;
    let admin = api.admin.clone();
    let photo = jpeg_with_gps();
    let r = upload(&api, &admin, &ws, "kitchen.jpg", photo.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let a = &r.body;
    assert_eq!(
        (&a["media_type"], &a["width"], &a["height"], &a["name"], &a["origin"]),
        (&json!("image/jpeg"), &json!(120), &json!(80), &json!("kitchen.jpg"), &json!("upload"))
    );
    let sha = a["sha256"].as_str().unwrap().to_string();
    assert_eq!(r.headers[header::LOCATION], format!("/api/v1/workspaces/{ws}/assets/{sha}"));
    // A file larger than the API's JSON body limit (1 MiB), sent with no content type, as
    // `curl --data-binary` and some clients do: read under the upload limit all the same.
    let noise = {
        let mut state = 7u32;
        let img = image::RgbImage::from_fn(900, 900, |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    assert!(noise.len() > 2 << 20, "{} bytes", noise.len());
    let req = Request::post(format!("/api/v1/workspaces/{ws}/assets?name=noise.png"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::from(noise))
        .unwrap();
    let r = api.send(req).await;
    assert_eq!((r.status, &r.body["width"]), (StatusCode::CREATED, &json!(900)), "{}", r.body);
    // The same photo again is the same asset.
    let again = upload(&api, &admin, &ws, "copy.jpg", photo.clone()).await;
    assert_eq!((again.status, again.body["sha256"].as_str()), (StatusCode::OK, Some(sha.as_str())));

    // By signed URL, with no token: the stripped bytes, named by their hash, cached for good.
    let url = a["urls"]["original"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("/files/{ws}/{sha}/original?expires=")), "{url}");
    let (status, headers, bytes) = fetch(&api, &url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(headers[header::ETAG], format!("\"{sha}\""));
    assert_eq!(quire_assets::sha256_hex(&bytes), sha);
    assert_eq!(bytes.len() as u64, a["size"].as_u64().unwrap());
    assert!(!bytes.windows(11).any(|w| w == b"GPSLatitude"), "the location is gone");
    assert!(bytes.len() < photo.len());
    // Ranges, and revalidation.
    let (status, headers, part) = fetch(&api, &url, &[("range", "bytes=0-9")]).await;
    assert_eq!((status, part.as_slice()), (StatusCode::PARTIAL_CONTENT, &bytes[..10]));
    assert_eq!(headers[header::CONTENT_RANGE], format!("bytes 0-9/{}", bytes.len()));
    let (status, _, tail) = fetch(&api, &url, &[("range", "bytes=-4")]).await;
    assert_eq!((status, tail.as_slice()), (StatusCode::PARTIAL_CONTENT, &bytes[bytes.len() - 4..]));
    let beyond = format!("bytes={}-", bytes.len());
    let (status, headers, _) = fetch(&api, &url, &[("range", &beyond)]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers[header::CONTENT_RANGE], format!("bytes */{}", bytes.len()));
    let etag = format!("\"{sha}\"");
    let (status, _, body) = fetch(&api, &url, &[("if-none-match", &etag)]).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    // A URL altered in any part is refused.
    let tampered = url.replace("/original?", "/large?");
    assert_eq!(fetch(&api, &tampered, &[]).await.0, StatusCode::FORBIDDEN);
    let (prefix, sig) = url.split_once("&sig=").unwrap();
    let flipped = format!("{prefix}&sig={}{}", if sig.starts_with('0') { '1' } else { '0' }, &sig[1..]);
    let (status, _, body) = fetch(&api, &flipped, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("signature"), "{}", String::from_utf8_lossy(&body));
    let later = url.replace("expires=", "expires=9");
    assert_eq!(fetch(&api, &later, &[]).await.0, StatusCode::FORBIDDEN, "the expiry is signed");

    // By token, for members only.
    let by_token = api.get(&format!("/api/v1/workspaces/{ws}/assets/{sha}/original")).await;
    assert_eq!(by_token.status, StatusCode::OK);
    let (_, outsider, _) = api.signup("outsider@example.com").await;
    let r =
        api.call_as(Some(&outsider), Method::GET, &format!("/api/v1/workspaces/{ws}/assets/{sha}"), None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.get(&format!("/api/v1/workspaces/{ws}/assets/NOTHEX")).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = api.get(&format!("/api/v1/workspaces/{ws}/assets/{sha}/huge")).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // A thumbnail not made yet (no worker runs here) is a 404 that says so.
    let r = api.get(&format!("/api/v1/workspaces/{ws}/assets/{sha}/small")).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("not made yet"), "{}", r.body);
}

async fn bad_uploads_are_refused_with_a_reason_and_nothing_kept(b: Backend) {
    let mut config = common::relaxed();
    config.assets.limits.max_bytes = 200_000;
    let api = Api::with(b, Default::default(), config).await;
    let ws = workspace(&api).await;
    let admin = api.admin.clone();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let r = upload(&api, &admin, &ws, "logo.svg", svg).await;
    assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("export the drawing as PNG"), "{}", r.body);
    // A PDF called .png is still a PDF.
    let r = upload(&api, &admin, &ws, "photo.png", b"%PDF-1.7\n...".to_vec()).await;
    assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(r.body["error"]["message"].as_str().unwrap().starts_with("A PDF document"), "{}", r.body);
    let whole = png(64, 64, 3);
    let r = upload(&api, &admin, &ws, "cut.png", whole[..whole.len() - 40].to_vec()).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_image");
    let r = upload(&api, &admin, &ws, "empty.png", Vec::new()).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_image");
    // Past the size limit: refused while it is read.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let r = upload(&api, &admin, &ws, "big.png", big).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // A decompression bomb: a 40,000 × 40,000 header over a few bytes.
    let mut bomb = png(1, 1, 0);
    bomb[16..20].copy_from_slice(&40_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&40_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let r = upload(&api, &admin, &ws, "bomb.png", bomb).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("40000×40000"), "{}", r.body);
    // Viewers may look but not add.
    let key = api.post(&format!("/api/v1/workspaces/{ws}/api-keys"), json!({"name": "look", "role": "viewer"})).await;
    let viewer = key.body["secret"].as_str().unwrap().to_string();
    let r = upload(&api, &viewer, &ws, "ok.png", png(8, 8, 1)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Nothing of it was kept.
    let list = api.get(&format!("/api/v1/workspaces/{ws}/assets")).await;
    assert_eq!((list.body["items"].as_array().unwrap().len(), &list.body["used_bytes"]), (0, &json!(0)));
}

async fn thumbnails_come_from_the_pipeline(b: Backend) {
    let mut config = common::relaxed();
    config.jobs.poll_interval = Duration::from_millis(20);
    let api = Api::with(b, Default::default(), config).await;
    let ws = workspace(&api).await;
    let worker = quire_jobs::WorkerConfig {
        schedules: false,
        queues: vec![quire_app::assets::QUEUE.into()],
        grace: Duration::from_millis(200),
        ..Default::default()
    };
    let _worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();
    let admin = api.admin.clone();
    let r = upload(&api, &admin, &ws, "wide.png", png(1600, 900, 9)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sha = r.body["sha256"].as_str().unwrap().to_string();
    let mut asset = Value::Null;
    for _ in 0..500 {
        asset = api.get(&format!("/api/v1/workspaces/{ws}/assets/{sha}")).await.body;
        if asset["thumbnails"].as_array().is_some_and(|t| t.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sizes: Vec<_> = asset["thumbnails"]
        .as_array()
        .unwrap_or_else(|| panic!("no thumbnails in 10 s: {asset}"))
        .iter()
        .map(|t| {
            (t["variant"].as_str().unwrap().to_string(), t["width"].as_i64().unwrap(), t["height"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(sizes, [("small".to_string(), 320, 180), ("large".to_string(), 1280, 720)]);
    let (status, headers, bytes) = fetch(&api, asset["urls"]["small"].as_str().unwrap(), &[]).await;
    assert_eq!(
        (status, &headers[header::CONTENT_TYPE]),
        (StatusCode::OK, &"image/webp".parse::<axum::http::HeaderValue>().unwrap())
    );
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 180));
    // The thumbnails count in the workspace's usage.
    let list = api.get(&format!("/api/v1/workspaces/{ws}/assets")).await;
    let thumbs: i64 = asset["thumbnails"].as_array().unwrap().iter().map(|t| t["size"].as_i64().unwrap()).sum();
    assert_eq!(list.body["used_bytes"].as_i64().unwrap(), asset["size"].as_i64().unwrap() + thumbs);
}

async fn the_quota_and_pages_hold(b: Backend) {
    let mut config = common::relaxed();
    config.assets.quota_bytes = 6_000;
    let api = Api::with(b, Default::default(), config).await;
    let ws = workspace(&api).await;
    let admin = api.admin.clone();
    let mut kept = Vec::new();
    let mut refused = None;
    for seed in 0..40u8 {
        let r = upload(&api, &admin, &ws, &format!("tile-{seed}.png"), png(24, 24, seed.wrapping_mul(37))).await;
        match r.status {
            StatusCode::CREATED => kept.push(r.body["sha256"].as_str().unwrap().to_string()),
            _ => {
                refused = Some(r);
                break;
            }
        }
    }
    let refused = refused.expect("the quota was never reached");
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("of its 6000 bytes"), "{}", refused.body);
    assert!(kept.len() >= 3, "{} kept", kept.len());
    // Pages of 2, newest first, each asset once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/workspaces/{ws}/assets?limit=2&cursor={c}"),
            None => format!("/api/v1/workspaces/{ws}/assets?limit=2"),
        };
        let page = api.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["quota_bytes"], json!(6000));
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|a| a["sha256"].as_str().unwrap().to_string()));
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut expected = kept.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    let r = api.get(&format!("/api/v1/workspaces/{ws}/assets?cursor=garbage")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_cursor");
}

/// A moodboard whose items show `images` (and, for `versions`, showed them before); its id.
async fn board_showing(api: &Api, ws: &str, images: &[&str], versions: &[&str]) -> String {
    let r =
        api.post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "moodboard", "title": "Board"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let old: Vec<Value> = versions.iter().map(|v| json!({"asset": v, "w": 10, "h": 10})).collect();
    let items: serde_json::Map<String, Value> = images
        .iter()
        .enumerate()
        .map(|(i, sha)| (format!("i{i}"), json!({"type": "image", "w": 10, "h": 10, "asset": sha, "versions": old})))
        .collect();
    let body = json!({"format": "json", "content": {"items": items}});
    let r = api.call(Method::PUT, &format!("/api/v1/documents/{id}/content"), Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    id
}

/// Images that nothing names — no board, no earlier version of an item, no board in the
/// trash, no version in history, no context — are marked once kept longer than the grace
/// period, and removed when they stayed so for it; an image named again keeps its place; a
/// file another workspace holds stays in the asset store.
async fn images_nothing_names_are_collected_after_the_grace_period(b: Backend) {
    let api = Api::new(b).await;
    let (ws, elsewhere) = (workspace(&api).await, workspace(&api).await);
    let admin = api.admin.clone();
    let mut sha = std::collections::BTreeMap::new();
    for (n, name) in ["shown", "earlier", "trashed", "versioned", "in_context", "loose", "shared", "named_later"]
        .into_iter()
        .enumerate()
    {
        let r = upload(&api, &admin, &ws, &format!("{name}.png"), png(16, 16, n as u8 * 20)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        sha.insert(name, r.body["sha256"].as_str().unwrap().to_string());
    }
    board_showing(&api, &ws, &[&sha["shown"]], &[&sha["earlier"]]).await;
    let trashed = board_showing(&api, &ws, &[&sha["trashed"]], &[]).await;
    let r = api.call(Method::DELETE, &format!("/api/v1/documents/{trashed}"), None, &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    // A version in a document's history (the history pipeline records these).
    let doc = board_showing(&api, &ws, &[], &[]).await;
    let version = quire_core::NewVersion {
        document_id: doc,
        workspace_id: ws.clone(),
        version: "1.0.0".into(),
        bump: "major".into(),
        message: "the first board".into(),
        authors: json!([]),
        format: "json".into(),
        content: json!({"items": {"i1": {"type": "image", "asset": sha["versioned"]}}}).to_string(),
    };
    api.app.store().add_version(&version).await.unwrap();
    let r = api
        .post(
            "/api/v1/contexts",
            json!({"workspace": ws, "type": "note", "pipeline": ["noop"], "data": {"image": sha["in_context"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // The same file in another workspace, on a board there.
    let r = upload(&api, &admin, &elsewhere, "shared.png", png(16, 16, 6 * 20)).await;
    assert_eq!(r.body["sha256"], json!(sha["shared"]));
    board_showing(&api, &elsewhere, &[&sha["shared"]], &[]).await;

    // A workspace in the trash keeps its images, named or not.
    let binned = workspace(&api).await;
    let r = upload(&api, &admin, &binned, "binned.png", png(16, 16, 250)).await;
    let binned_sha = r.body["sha256"].as_str().unwrap().to_string();
    let r = api.call(Method::DELETE, &format!("/api/v1/workspaces/{binned}"), None, &[]).await;
    assert!(r.status.is_success(), "{}", r.body);

    let (store, collab, assets) = (api.app.store(), api.app.collab(), api.app.assets());
    let grace = Duration::from_secs(3600);
    let hour = 3_600_000;
    let now = quire_core::now_ms();
    let collect = |at: i64| quire_app::asset_gc::collect(store, collab, assets, at, grace);
    // Kept less than the grace period ago: not even looked at.
    let done = collect(now).await.unwrap();
    assert_eq!((done.marked, done.removed), (0, 0), "{done:?}");
    // Two hours on: the three nothing names are marked, nothing removed yet.
    let done = collect(now + 2 * hour).await.unwrap();
    assert_eq!((done.marked, done.removed), (3, 0), "{done:?}");
    // Then one is named again (put on a board): its mark is cleared.
    board_showing(&api, &ws, &[&sha["named_later"]], &[]).await;
    let done = collect(now + 2 * hour + hour / 2).await.unwrap();
    assert_eq!((done.cleared, done.removed), (1, 0), "{done:?}");
    // An hour after they were marked, the two still unnamed go; one file is another
    // workspace's too and stays.
    let done = collect(now + 3 * hour).await.unwrap();
    assert_eq!((done.removed, done.objects_deleted), (2, 1), "{done:?}");
    assert_eq!(done.bytes_freed, store.get_asset(&elsewhere, &sha["shared"]).await.unwrap().size);
    for name in ["loose", "shared"] {
        let r = api.get(&format!("/api/v1/workspaces/{ws}/assets/{}", sha[name])).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}: {}", r.body);
    }
    assert!(assets.original(&sha["loose"]).await.is_err(), "its file is gone");
    assert!(assets.original(&sha["shared"]).await.is_ok(), "the other workspace's file stays");
    for name in ["shown", "earlier", "trashed", "versioned", "in_context", "named_later"] {
        let r = api.get(&format!("/api/v1/workspaces/{ws}/assets/{}", sha[name])).await;
        assert_eq!(r.status, StatusCode::OK, "{name} is named and stays");
        assert!(assets.original(&sha[name]).await.is_ok(), "{name}'s file stays");
    }
    assert!(store.get_asset(&binned, &binned_sha).await.is_ok(), "the trashed workspace's image stays");
    // The collection is scheduled nightly, as a system component users cannot submit.
    let due = store.due_schedules(i64::MAX).await.unwrap();
    let gc = due.iter().find(|s| s.name == quire_app::asset_gc::SCHEDULE).expect("scheduled");
    assert_eq!((gc.pipeline.as_slice(), gc.data["grace_hours"].as_u64()), (&["assets_gc".to_string()][..], Some(168)));
    let r = api
        .post("/api/v1/contexts", json!({"workspace": ws, "type": "gc", "pipeline": ["assets_gc"], "data": {}}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}
