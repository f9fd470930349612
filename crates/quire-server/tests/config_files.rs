//! The files that go with a board configuration (`userpatches/`): written, listed, read by
//! range and by version, renamed, made executable and removed over HTTP; a write that would
//! overwrite someone's newer version refused; limits; who may do what; on SQLite and
//! PostgreSQL.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, Reply, assert_error};
use quire_store::testing::Backend;
use serde_json::{Value, json};

quire_store::for_each_backend!(
    files_are_written_read_renamed_and_removed,
    a_stale_write_is_refused_and_nothing_is_lost,
    files_keep_their_versions,
    limits_and_roles_hold,
);

const SCRIPT: &str = "#!/bin/bash\necho \"customizing for $2\"\n";

async fn setup(b: Backend) -> (Api, String) {
    let api = Api::new(b).await;
    api.post("/api/v1/workspaces", json!({"name": "Boards"})).await;
    let doc =
        api.post("/api/v1/workspaces/boards/documents", json!({"kind": "board-config", "title": "SBC image"})).await;
    (api, doc.body["id"].as_str().unwrap().to_string())
}

fn url(doc: &str, path: &str) -> String {
    format!("/api/v1/documents/{doc}/files/{}", path.replace('/', "%2F"))
}

async fn put(api: &Api, doc: &str, path: &str, bytes: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::put(url(doc, path)).header(header::CONTENT_TYPE, "application/octet-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    api.raw(req.body(Body::from(bytes.to_vec())).unwrap()).await
}

async fn read(api: &Api, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tower::ServiceExt::oneshot(api.router.clone(), {
        let mut r = req.body(Body::empty()).unwrap();
        r.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {}", api.admin).parse().unwrap());
        r
    })
    .await
    .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

fn paths(list: &Value) -> Vec<&str> {
    list["items"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect()
}

async fn files_are_written_read_renamed_and_removed(b: Backend) {
    let (api, doc) = setup(b).await;
    let r = put(&api, &doc, "customize-image.sh", SCRIPT.as_bytes(), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["mode"], "755", "a new script is a program");
    assert_eq!(r.body["text"], true);
    assert_eq!(r.body["size"], SCRIPT.len());
    assert_eq!(r.headers[header::ETAG].to_str().unwrap(), format!("\"{}\"", r.body["sha256"].as_str().unwrap()));
    let motd = put(&api, &doc, "overlay/etc/motd", b"Welcome to the lab board\n", &[]).await;
    assert_eq!((motd.status, &motd.body["mode"]), (StatusCode::CREATED, &json!("644")));
    let blob: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let fw = put(&api, &doc, "overlay/lib/firmware/brcm.bin", &blob, &[]).await;
    assert_eq!(fw.body["text"], false, "binary is not offered for editing");

    let list = api.get(&format!("/api/v1/documents/{doc}/files")).await;
    assert_eq!(paths(&list.body), ["customize-image.sh", "overlay/etc/motd", "overlay/lib/firmware/brcm.bin"]);
    assert_eq!(list.body["total_bytes"], SCRIPT.len() + 25 + 3000);
    assert_eq!(list.body["max_files"], 200);
    // The files are part of the configuration's content, so everyone editing it sees them.
    let content = api.get(&format!("/api/v1/documents/{doc}/content?format=json")).await;
    assert_eq!(content.body["files"]["overlay/etc/motd"]["sha256"], motd.body["sha256"]);
    // ... and the schema's checks are about the settings alone.
    let v = api.get(&format!("/api/v1/documents/{doc}/validation")).await;
    assert!(
        v.body["problems"].as_array().unwrap().iter().all(|p| !p["path"].as_str().unwrap().contains("files")),
        "{}",
        v.body
    );

    // Read whole, by range, not modified.
    let (status, headers, bytes) = read(&api, &url(&doc, "overlay/lib/firmware/brcm.bin"), &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, blob.clone()));
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("brcm.bin"));
    let (status, _, bytes) = read(&api, &url(&doc, "overlay/lib/firmware/brcm.bin"), &[("range", "bytes=10-19")]).await;
    assert_eq!((status, bytes), (StatusCode::PARTIAL_CONTENT, blob[10..20].to_vec()));
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let (status, _, _) = read(&api, &url(&doc, "overlay/lib/firmware/brcm.bin"), &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, headers, bytes) = read(&api, &url(&doc, "customize-image.sh"), &[]).await;
    assert_eq!((status, String::from_utf8(bytes).unwrap()), (StatusCode::OK, SCRIPT.to_string()));
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));

    // Rename (a move to another folder), change the mode.
    let moved = api
        .call(
            Method::PATCH,
            &url(&doc, "overlay/etc/motd"),
            Some(json!({"path": "overlay/etc/issue", "mode": "755"})),
            &[],
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!((&moved.body["path"], &moved.body["mode"]), (&json!("overlay/etc/issue"), &json!("755")));
    assert_eq!(moved.body["sha256"], motd.body["sha256"], "same bytes");
    let taken = api
        .call(Method::PATCH, &url(&doc, "overlay/etc/issue"), Some(json!({"path": "customize-image.sh"})), &[])
        .await;
    assert_error(&taken, StatusCode::CONFLICT, "conflict");
    let gone = api.call(Method::PATCH, &url(&doc, "overlay/etc/motd"), Some(json!({"mode": "644"})), &[]).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let bad = api.call(Method::PATCH, &url(&doc, "overlay/etc/issue"), Some(json!({"mode": "777"})), &[]).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let bad =
        api.call(Method::PATCH, &url(&doc, "overlay/etc/issue"), Some(json!({"path": "../etc/issue"})), &[]).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains(".."), "{}", bad.body);
    // A file cannot also be a folder.
    let clash = put(&api, &doc, "customize-image.sh/x", b"x", &[]).await;
    assert_error(&clash, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    // Remove.
    let r = api.call(Method::DELETE, &url(&doc, "overlay/etc/issue"), None, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let list = api.get(&format!("/api/v1/documents/{doc}/files")).await;
    assert_eq!(paths(&list.body), ["customize-image.sh", "overlay/lib/firmware/brcm.bin"]);
    let r = api.call(Method::DELETE, &url(&doc, "overlay/etc/issue"), None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let (status, _, _) = read(&api, &url(&doc, "overlay/etc/issue"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_stale_write_is_refused_and_nothing_is_lost(b: Backend) {
    let (api, doc) = setup(b).await;
    let first = put(&api, &doc, "customize-image.sh", SCRIPT.as_bytes(), &[("if-none-match", "*")]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let opened = first.headers[header::ETAG].to_str().unwrap().to_string();
    // Creating it again is refused.
    let again = put(&api, &doc, "customize-image.sh", b"other", &[("if-none-match", "*")]).await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
    // Ada saves over the version she opened; Grace, who opened the same version, is refused.
    let ada = put(&api, &doc, "customize-image.sh", b"#!/bin/bash\necho ada\n", &[("if-match", &opened)]).await;
    assert_eq!(ada.status, StatusCode::OK, "{}", ada.body);
    assert_eq!(ada.body["mode"], "755", "a new version keeps the file's mode");
    let grace = put(&api, &doc, "customize-image.sh", b"#!/bin/bash\necho grace\n", &[("if-match", &opened)]).await;
    assert_error(&grace, StatusCode::CONFLICT, "conflict");
    assert!(
        grace.body["error"]["message"].as_str().unwrap().contains("changed customize-image.sh since you opened it"),
        "{}",
        grace.body
    );
    let (_, _, bytes) = read(&api, &url(&doc, "customize-image.sh"), &[]).await;
    assert_eq!(bytes, b"#!/bin/bash\necho ada\n", "Ada's version stays");
    // Stale renames and removals are refused alike; an If-Match that is no hash is 412.
    let r = api.call(Method::DELETE, &url(&doc, "customize-image.sh"), None, &[("if-match", &opened)]).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let r = api
        .call(Method::PATCH, &url(&doc, "customize-image.sh"), Some(json!({"path": "x.sh"})), &[("if-match", &opened)])
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let r = put(&api, &doc, "customize-image.sh", b"x", &[("if-match", "\"r3\"")]).await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let current = ada.headers[header::ETAG].to_str().unwrap().to_string();
    let r = api.call(Method::DELETE, &url(&doc, "customize-image.sh"), None, &[("if-match", &current)]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

async fn files_keep_their_versions(b: Backend) {
    let (api, doc) = setup(b).await;
    let mut shas = Vec::new();
    for text in ["echo one\n", "echo two\n"] {
        let r = put(&api, &doc, "customize-image.sh", text.as_bytes(), &[]).await;
        shas.push(r.body["sha256"].as_str().unwrap().to_string());
        // Each change becomes a version of the configuration once its edits settle.
        let history = api.app.history().clone();
        let mut made = false;
        for _ in 0..100 {
            if history.version(&doc, &[], None).await.unwrap().is_some() {
                made = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(made, "a version was made");
    }
    put(&api, &doc, "overlay/etc/motd", b"hi\n", &[]).await;
    api.app.history().version(&doc, &[], None).await.unwrap().unwrap();
    api.call(Method::DELETE, &url(&doc, "customize-image.sh"), None, &[]).await;
    api.app.history().version(&doc, &[], None).await.unwrap().unwrap();

    let v = api.get(&format!("{}/versions", url(&doc, "customize-image.sh"))).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    let versions = v.body.as_array().unwrap();
    // Newest first: removed, two, one (the motd's version is not the script's).
    assert_eq!(versions.len(), 3, "{}", v.body);
    assert!(versions[0]["file"].is_null());
    assert_eq!(versions[1]["file"]["sha256"], shas[1].as_str());
    assert_eq!(versions[2]["file"]["sha256"], shas[0].as_str());
    // An old version is read by its hash, even after the file was removed.
    let (status, headers, bytes) =
        read(&api, &format!("{}?sha256={}", url(&doc, "customize-image.sh"), shas[0]), &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, b"echo one\n".to_vec()));
    assert!(headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    // A hash the workspace does not hold is not found.
    let (status, _, _) = read(&api, &format!("{}?sha256={}", url(&doc, "x"), "0".repeat(64)), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn limits_and_roles_hold(b: Backend) {
    let (api, doc) = setup(b).await;
    // Too large: 413 before anything is kept.
    let big = vec![b'x'; 32 * 1024 * 1024 + 1];
    let r = put(&api, &doc, "big.bin", &big, &[]).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // Paths that are not inside userpatches/.
    for bad in ["%2Fetc%2Fpasswd", "..%2Fcompile.sh", "a%20b", ".quire-laid.json"] {
        let r =
            api.raw(Request::put(format!("/api/v1/documents/{doc}/files/{bad}")).body(Body::from("x")).unwrap()).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
    let r = put(&api, &doc, "x.sh", b"x", &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api.raw(Request::put(format!("{}?mode=700", url(&doc, "y.sh"))).body(Body::from("x")).unwrap()).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    // At most 200 files.
    for i in 1..200 {
        let r = put(&api, &doc, &format!("overlay/f{i}"), format!("{i}").as_bytes(), &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{i}: {}", r.body);
    }
    let r = put(&api, &doc, "overlay/one-too-many", b"x", &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded");
    // A new version of a file is not one more file.
    let r = put(&api, &doc, "overlay/f1", b"changed", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Other kinds have no files; viewers read but do not write; strangers see nothing.
    let prd = api.post("/api/v1/workspaces/boards/documents", json!({"kind": "prd", "title": "Spec"})).await;
    let r = api.get(&format!("/api/v1/documents/{}/files", prd.body["id"].as_str().unwrap())).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (_, viewer) = api.member("boards", "viewer@example.com", "viewer").await;
    let (_, stranger, _) = api.signup("stranger@example.com").await;
    let list = api.call_as(Some(&viewer), Method::GET, &format!("/api/v1/documents/{doc}/files"), None, &[]).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let r = api.call_as(Some(&viewer), Method::DELETE, &url(&doc, "x.sh"), None, &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api.call_as(Some(&stranger), Method::GET, &format!("/api/v1/documents/{doc}/files"), None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}
