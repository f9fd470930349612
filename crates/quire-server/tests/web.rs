//! The web app at `/`: its page for the app's routes, its files with the right caching and
//! compression, the API's JSON 404 kept, and the app's API types generated from the very
//! OpenAPI document the server serves.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::Api;
use http_body_util::BodyExt;
use quire_store::testing::Backend;
use tower::ServiceExt;

async fn get(api: &Api, path: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn the_app_is_served_at_the_root_and_for_its_own_routes() {
    let api = Api::new(Backend::Sqlite).await;
    let (status, headers, page) = get(&api, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "a new build must reach browsers on their next load");
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<div id=\"root\">"), "{page}");
    // The app's own routes load the same page; the app then shows the screen.
    for route in ["/signin", "/w/acme", "/w/acme/d/doc_01HX?tab=history"] {
        let (status, _, body) = get(&api, route, &[]).await;
        assert_eq!(status, StatusCode::OK, "{route}");
        assert_eq!(String::from_utf8(body).unwrap(), page, "{route}");
    }
    let (status, headers, _) = get(&api, "/favicon.svg", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
}

#[tokio::test]
async fn hashed_files_are_cached_for_good_and_sent_compressed() {
    let api = Api::new(Backend::Sqlite).await;
    let (_, _, page) = get(&api, "/", &[]).await;
    let page = String::from_utf8(page).unwrap();
    let script = page.split("src=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(script.starts_with("/assets/") && script.ends_with(".js"), "{script}");
    let (status, headers, plain) = get(&api, &script, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(headers.get(header::CONTENT_ENCODING).is_none(), "not asked for gzip");
    let (status, headers, zipped) = get(&api, &script, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(headers[header::VARY], "accept-encoding");
    assert!(zipped.len() * 2 < plain.len(), "{} gzip bytes for {} plain", zipped.len(), plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
}

#[tokio::test]
async fn the_api_keeps_its_json_errors() {
    let api = Api::new(Backend::Sqlite).await;
    for path in ["/api/v1/nothing-here", "/api", "/collab", "/assets/index-00000000.js", "/metrics/x"] {
        let (status, headers, body) = get(&api, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    // Only reads get the page: a write to an app route is the API's 404.
    let r = api.call(axum::http::Method::POST, "/w/acme", None, &[]).await;
    common::assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

/// `web/src/api/schema.d.ts` is what openapi-typescript makes of the served document:
/// when a route changes, this fails until the web app's types are regenerated
/// (`QUIRE_BLESS=1 cargo test -p quire-server --test web` writes them).
#[tokio::test]
async fn the_web_apps_api_types_match_the_served_openapi_document() {
    let api = Api::new(Backend::Sqlite).await;
    let doc = api.get("/api/openapi.json").await;
    let dir = std::env::temp_dir().join(quire_core::new_id("openapi"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("openapi.json"), doc.body.to_string()).unwrap();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let out = std::process::Command::new(web.join("node_modules/.bin/openapi-typescript"))
        .arg(dir.join("openapi.json"))
        .arg("-o")
        .arg(dir.join("schema.d.ts"))
        .current_dir(&web)
        .output()
        .expect("openapi-typescript (installed in web/ when the web app is built)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = std::fs::read_to_string(dir.join("schema.d.ts")).unwrap();
    let committed = std::fs::read_to_string(web.join("src/api/schema.d.ts")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    if std::env::var_os("QUIRE_BLESS").is_some() && generated != committed {
        std::fs::write(web.join("src/api/schema.d.ts"), &generated).unwrap();
        return;
    }
    assert!(
        generated == committed,
        "web/src/api/schema.d.ts is not what the served OpenAPI document gives: with `quire serve` running, \
         run `npx openapi-typescript http://127.0.0.1:7420/api/openapi.json -o src/api/schema.d.ts` in web/"
    );
}
