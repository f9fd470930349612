//! Board configurations over HTTP: the build schema with its ETag, checking configurations
//! (cached), merge patches that change only the fields they name, and a schema derived from
//! a configured Armbian checkout and derived again on request; on SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, assert_error, relaxed};
use quire_server::ServerConfig;
use quire_store::StoreOptions;
use quire_store::testing::Backend;
use serde_json::{Value, json};

quire_store::for_each_backend!(
    the_schema_is_served_with_its_version_as_etag,
    configurations_are_checked_with_the_field_named,
    a_merge_patch_keeps_what_others_changed,
    a_configured_checkout_gives_the_schema_and_can_be_read_again,
);

async fn merge_patch(api: &Api, token: &str, path: &str, patch: Value) -> common::Reply {
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body(Body::from(patch.to_string()))
        .unwrap();
    api.send(req).await
}

async fn the_schema_is_served_with_its_version_as_etag(b: Backend) {
    let api = Api::new(b).await;
    let r = api.get("/api/v1/board-configs/schema").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::ETAG], "\"82a0c923f9\"");
    assert_eq!(r.headers["x-quire-schema-version"], "82a0c923f9");
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/schema+json");
    assert_eq!(r.body["$schema"], "http://json-schema.org/draft-07/schema#");
    let boards = r.body["properties"]["BOARD"]["oneOf"].as_array().unwrap();
    assert_eq!(boards.len(), 403);
    let cached =
        api.call(Method::GET, "/api/v1/board-configs/schema", None, &[("if-none-match", "\"82a0c923f9\"")]).await;
    assert_eq!((cached.status, cached.body.clone()), (StatusCode::NOT_MODIFIED, Value::Null));
    let stale = api.call(Method::GET, "/api/v1/board-configs/schema", None, &[("if-none-match", "\"old\"")]).await;
    assert_eq!(stale.status, StatusCode::OK);
    let anonymous = api.call_as(None, Method::GET, "/api/v1/board-configs/schema", None, &[]).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Without a checkout the shipped schema stays when asked to read again; only admins ask.
    let r = api.post("/api/v1/board-configs/schema/refresh", json!({})).await;
    assert_eq!(
        (r.status, r.body["version"].as_str(), r.body["source"].as_str()),
        (StatusCode::OK, Some("82a0c923f9"), Some("shipped"))
    );
    let (_, someone, _) = api.signup("someone@example.com").await;
    let r = api.call_as(Some(&someone), Method::POST, "/api/v1/board-configs/schema/refresh", None, &[]).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

async fn configurations_are_checked_with_the_field_named(b: Backend) {
    let api = Api::new(b).await;
    let check = |config: Value| {
        let api = &api;
        async move { api.post("/api/v1/board-configs/validate", json!({ "config": config })).await }
    };
    let ok = check(json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!((ok.body["valid"].as_bool(), ok.body["schema_version"].as_str()), (Some(true), Some("82a0c923f9")));
    assert_eq!(ok.body["problems"], json!([]));
    assert_eq!(ok.body["config_hash"].as_str().unwrap().len(), 64);

    let bad = check(json!({"BOARD": "rock-5b", "BRANCH": "legacy", "RELEASE": "noble", "BUILD_MINIMAL": "yes", "BUILD_DESKTOP": "yes"})).await;
    assert_eq!(bad.body["valid"], false);
    let problems = bad.body["problems"].as_array().unwrap();
    let at = |path: &str| problems.iter().find(|p| p["path"] == path).unwrap_or_else(|| panic!("{path}: {problems:?}"));
    assert_eq!(
        at("/BRANCH")["message"],
        "rock-5b does not build the 'legacy' kernel branch; it builds current, edge or vendor"
    );
    assert_eq!(
        (at("/BRANCH")["code"].as_str(), at("/BRANCH")["severity"].as_str()),
        (Some("not_allowed"), Some("error"))
    );
    assert!(at("/BUILD_DESKTOP")["message"].as_str().unwrap().starts_with("a minimal image has no desktop"));

    // Quire's own rules answer in the same shape; warnings leave it buildable.
    let rule =
        check(json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble", "KERNEL_CONFIGURE": "yes"})).await;
    assert_eq!(
        (rule.body["valid"].as_bool(), rule.body["problems"][0]["code"].as_str()),
        (Some(false), Some("interactive"))
    );

    // What is not a configuration at all is refused, naming the field.
    let r = check(json!({"board": "rock-5b"})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("setting name"), "{}", r.body);
    let r = check(json!({"BOARD": {"id": "rock-5b"}})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let r = api.post("/api/v1/board-configs/validate", json!({"configuration": {}})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    // Asking again is answered from the cache.
    let (hits, _) = api.app.board_configs().cache_stats();
    check(json!({"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"})).await;
    assert_eq!(api.app.board_configs().cache_stats().0, hits + 1);

    // A document's configuration is checked as it is now.
    api.post("/api/v1/workspaces", json!({"name": "Boards"})).await;
    let doc =
        api.post("/api/v1/workspaces/boards/documents", json!({"kind": "board-config", "title": "Rock 5B"})).await;
    let id = doc.body["id"].as_str().unwrap();
    let empty = api.get(&format!("/api/v1/documents/{id}/validation")).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    let required: Vec<&str> =
        empty.body["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(required, ["/BOARD", "/BRANCH", "/RELEASE"]);
    let content = json!({"format": "json", "content": {"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "noble"}});
    let put = api.call(Method::PUT, &format!("/api/v1/documents/{id}/content"), Some(content), &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
    assert_eq!(api.get(&format!("/api/v1/documents/{id}/validation")).await.body["valid"], true);
    let bad_put = json!({"format": "json", "content": {"BOARD": "rock-5b", "kernel": "x"}});
    let r = api.call(Method::PUT, &format!("/api/v1/documents/{id}/content"), Some(bad_put), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let prd = api.post("/api/v1/workspaces/boards/documents", json!({"kind": "prd", "title": "Notes"})).await;
    let r = api.get(&format!("/api/v1/documents/{}/validation", prd.body["id"].as_str().unwrap())).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

async fn a_merge_patch_keeps_what_others_changed(b: Backend) {
    let api = Api::new(b).await;
    api.post("/api/v1/workspaces", json!({"name": "Boards"})).await;
    let doc =
        api.post("/api/v1/workspaces/boards/documents", json!({"kind": "board-config", "title": "Rock 5B"})).await;
    let id = doc.body["id"].as_str().unwrap();
    let path = format!("/api/v1/documents/{id}/content");
    let content = json!({"format": "json", "content": {"BOARD": "rock-5b", "BRANCH": "current", "RELEASE": "jammy"}});
    api.call(Method::PUT, &path, Some(content), &[]).await;

    // Two people, each from what they read: one changes the board, the other the release.
    let admin = api.admin.clone();
    let r = merge_patch(&api, &admin, &path, json!({"BOARD": "rock-5c"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = merge_patch(&api, &admin, &path, json!({"RELEASE": "noble", "BRANCH": null})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(api.get(&path).await.body, json!({"BOARD": "rock-5c", "RELEASE": "noble"}));

    // A patch that would make it something else is refused whole.
    let r = merge_patch(&api, &admin, &path, json!({"RELEASE": "bookworm", "lower": "x"})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(api.get(&path).await.body["RELEASE"], "noble");
    let r = merge_patch(&api, &admin, &path, json!(["BOARD"])).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    // PRDs are replaced, not patched; others may not patch at all.
    let prd = api.post("/api/v1/workspaces/boards/documents", json!({"kind": "prd", "title": "Notes"})).await;
    let prd_path = format!("/api/v1/documents/{}/content", prd.body["id"].as_str().unwrap());
    assert_error(
        &merge_patch(&api, &admin, &prd_path, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    let (_, stranger, _) = api.signup("stranger@example.com").await;
    assert_error(&merge_patch(&api, &stranger, &path, json!({"BOARD": "x"})).await, StatusCode::NOT_FOUND, "not_found");
}

async fn a_configured_checkout_gives_the_schema_and_can_be_read_again(b: Backend) {
    let (_dir, root) = common::fake_armbian();
    let config = ServerConfig { armbian_dir: Some(root.clone()), ..relaxed() };
    let api = Api::with(b, StoreOptions::default(), config).await;
    let r = api.get("/api/v1/board-configs/schema").await;
    let version = r.headers["x-quire-schema-version"].to_str().unwrap().to_string();
    assert!(version.starts_with("0123456789-"), "{version}");
    assert_eq!(r.headers[header::ETAG].to_str().unwrap(), format!("\"{version}\""));
    let ids: Vec<&str> = r.body["properties"]["BOARD"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["const"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["quire-box", "quire-sbc"]);
    let check = |config: Value| {
        let api = &api;
        async move { api.post("/api/v1/board-configs/validate", json!({ "config": config })).await.body }
    };
    assert_eq!(check(json!({"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble"})).await["valid"], true);
    let v = check(json!({"BOARD": "rock-5b", "BRANCH": "edge", "RELEASE": "noble"})).await;
    assert_eq!((v["valid"].as_bool(), v["problems"][0]["path"].as_str()), (Some(false), Some("/BOARD")));
    let tv = check(json!({"BOARD": "quire-box", "BRANCH": "current", "RELEASE": "bookworm"})).await;
    assert_eq!((tv["valid"].as_bool(), tv["problems"][0]["code"].as_str()), (Some(true), Some("unmaintained")));

    // A board added to the checkout is there once an admin asks Quire to read it again.
    std::fs::write(
        root.join("config/boards/quire-two.conf"),
        "# Quire second test board\nBOARD_NAME=\"Quire Two\"\nBOARDFAMILY=\"quire-arm64\"\nKERNEL_TARGET=\"edge\"\n",
    )
    .unwrap();
    assert_eq!(check(json!({"BOARD": "quire-two", "BRANCH": "edge", "RELEASE": "noble"})).await["valid"], false);
    let r = api.post("/api/v1/board-configs/schema/refresh", json!({})).await;
    assert_eq!((r.status, r.body["boards"].as_u64()), (StatusCode::OK, Some(3)), "{}", r.body);
    let newer = r.body["version"].as_str().unwrap().to_string();
    assert!(newer.starts_with("0123456789-") && newer != version, "{newer}");
    assert_eq!(check(json!({"BOARD": "quire-two", "BRANCH": "edge", "RELEASE": "noble"})).await["valid"], true);
    let etag = format!("\"{version}\"");
    let r = api.call(Method::GET, "/api/v1/board-configs/schema", None, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(r.status, StatusCode::OK, "the old version is not current");

    // A checkout that cannot be read stops the start, naming the setting.
    std::fs::remove_dir_all(root.join("config/boards")).unwrap();
    let r = api.post("/api/v1/board-configs/schema/refresh", json!({})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("Armbian checkout"), "{}", r.body);
    assert_eq!(
        api.get("/api/v1/board-configs/schema").await.headers["x-quire-schema-version"].to_str().unwrap(),
        newer,
        "the schema in force stays"
    );
}
