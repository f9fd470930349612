//! The GraphQL API over the same services and permissions as REST: queries of workspaces,
//! documents, board configurations (settings, files, validation, builds) and contexts;
//! mutations that patch a configuration and start a build; subscriptions over
//! graphql-transport-ws to a build's log and progress and a context's events; depth and
//! complexity limits; introspection and the SDL; on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::Api;
use futures_util::{SinkExt, StreamExt};
use quire_store::testing::Backend;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

quire_store::for_each_backend!(
    queries_see_what_rest_sees_and_no_more,
    mutations_patch_and_build_and_subscriptions_follow_the_build,
    deep_and_costly_queries_are_refused,
);

async fn setup(b: Backend) -> (Api, String, tempfile::TempDir) {
    let (dir, root) = common::fake_armbian();
    let mut config = common::relaxed();
    config.armbian_dir = Some(root);
    config.jobs.poll_interval = Duration::from_millis(20);
    config.builds.flush_every = Duration::from_millis(20);
    let api = Api::with(b, Default::default(), config).await;
    api.post("/api/v1/workspaces", json!({"name": "Boards"})).await;
    let doc =
        api.post("/api/v1/workspaces/boards/documents", json!({"kind": "board-config", "title": "SBC image"})).await;
    (api, doc.body["id"].as_str().unwrap().to_string(), dir)
}

/// Runs a query as `bearer` (the administrator by default); answers `{data, errors}`.
async fn gql_as(api: &Api, bearer: Option<&str>, query: &str, variables: Value) -> Value {
    let r = api
        .call_as(bearer, Method::POST, "/api/v1/graphql", Some(json!({"query": query, "variables": variables})), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn gql(api: &Api, query: &str, variables: Value) -> Value {
    let admin = api.admin.clone();
    gql_as(api, Some(&admin), query, variables).await
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error: {body}"))
}

async fn queries_see_what_rest_sees_and_no_more(b: Backend) {
    let (api, doc, _dir) = setup(b).await;
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/documents/{doc}/content"),
            Some(json!({"BOARD": "quire-sbc", "BRANCH": "legacy", "RELEASE": "noble"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let put = Request::put(format!("/api/v1/documents/{doc}/files/customize-image.sh"))
        .body(Body::from("#!/bin/bash\n"))
        .unwrap();
    assert_eq!(api.raw(put).await.status, StatusCode::CREATED);

    let body = gql(
        &api,
        r#"query($doc: String!) {
            me { id }
            workspaces { slug documents(kind: "board-config") { id title kind } }
            boardConfig(id: $doc) {
                settings files { path mode text }
                validation { valid problems { path code severity message } }
                buildArguments
                document { title revision }
            }
        }"#,
        json!({"doc": doc}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let data = &body["data"];
    assert_eq!(data["workspaces"][0]["slug"], "boards");
    assert_eq!(data["workspaces"][0]["documents"][0]["id"], doc.as_str());
    let config = &data["boardConfig"];
    assert_eq!(config["settings"], json!({"BOARD": "quire-sbc", "BRANCH": "legacy", "RELEASE": "noble"}));
    assert_eq!(config["files"], json!([{"path": "customize-image.sh", "mode": "755", "text": true}]));
    assert_eq!(config["validation"]["valid"], false);
    assert_eq!(config["validation"]["problems"][0]["path"], "/BRANCH");
    assert_eq!(config["buildArguments"], json!([]), "nothing to build while it has errors");
    // The same answer REST gives.
    let rest = api.get(&format!("/api/v1/documents/{doc}/validation")).await;
    assert_eq!(config["validation"]["problems"][0]["message"], rest.body["problems"][0]["message"]);
    // Validating any configuration.
    let body = gql(
        &api,
        r#"{ validate(config: {BOARD: "quire-sbc", BRANCH: "edge", RELEASE: "noble"}) { valid } }"#,
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["validate"]["valid"], true, "{body}");
    let body = gql(&api, r#"{ validate(config: {board: 1}) { valid } }"#, json!({})).await;
    assert_eq!(code(&body), "invalid_request");

    // Someone else sees nothing of it; a wrong kind is said so.
    let (_, stranger, _) = api.signup("stranger@example.com").await;
    let body = gql_as(
        &api,
        Some(&stranger),
        "query($doc: String!) { boardConfig(id: $doc) { settings } }",
        json!({"doc": doc}),
    )
    .await;
    assert_eq!(code(&body), "not_found");
    assert!(body["data"].is_null());
    let body = gql_as(&api, Some(&stranger), "{ workspaces { slug } }", json!({})).await;
    assert_eq!(body["data"]["workspaces"], json!([]), "{body}");
    let prd = api.post("/api/v1/workspaces/boards/documents", json!({"kind": "prd", "title": "Spec"})).await;
    let body = gql(&api, "query($d: String!) { boardConfig(id: $d) { settings } }", json!({"d": prd.body["id"]})).await;
    assert_eq!(code(&body), "invalid_request");
    // No credential: refused like any API call.
    let r = api.call_as(None, Method::POST, "/api/v1/graphql", Some(json!({"query": "{ me { id } }"})), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api.call(Method::POST, "/api/v1/graphql", Some(json!({"nope": 1})), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Introspection and the SDL.
    let body = gql(&api, "{ __schema { queryType { name } subscriptionType { name } } }", json!({})).await;
    assert_eq!(body["data"]["__schema"]["subscriptionType"]["name"], "Subscription", "{body}");
    // The introspection query GraphiQL and code generators send (graphql-js's, type
    // references eight deep) is within the limits.
    let body = gql(&api, INTROSPECTION, json!({})).await;
    assert!(body["errors"].is_null(), "{}", &body.to_string()[..300.min(body.to_string().len())]);
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 30);
    let sdl = api.get("/api/v1/graphql/schema").await;
    let sdl = sdl.body.as_str().unwrap();
    assert!(sdl.contains("type Build") && sdl.contains("buildLog(") && sdl.contains("startBuild("), "{sdl}");
    // A build and a context share their run's fields, without a type of their own.
    assert!(!sdl.contains("RunFields") && !sdl.contains("BuildFields"), "{sdl}");
    let build_type = &sdl[sdl.find("type Build {").unwrap()..];
    let build_type = &build_type[..build_type.find('}').unwrap()];
    for field in
        ["id: String!", "status: Status!", "progress: ProgressView", "artifacts: [Artifact!]!", "queuePosition: Int"]
    {
        assert!(build_type.contains(field), "Build lacks {field}: {build_type}");
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

/// Runs a subscription to its end: the payloads of its `next` messages.
async fn subscribe(ws: &mut Socket, id: &str, query: &str) -> Vec<Value> {
    ws.send(Message::text(json!({"id": id, "type": "subscribe", "payload": {"query": query}}).to_string()))
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let m = next(ws).await;
        match m["type"].as_str() {
            Some("next") if m["id"] == id => out.push(m["payload"].clone()),
            Some("complete") if m["id"] == id => return out,
            Some("error") => panic!("{m}"),
            _ => {}
        }
    }
}

async fn mutations_patch_and_build_and_subscriptions_follow_the_build(b: Backend) {
    let (api, doc, _dir) = setup(b).await;
    let worker = quire_jobs::WorkerConfig { queues: vec!["builds".into()], schedules: false, ..Default::default() };
    let _worker = api.app.engine().start_worker(worker, api.app.shutdown_signal()).await.unwrap();

    // A viewer may read but not change it.
    let (_, viewer) = api.member("boards", "viewer@example.com", "viewer").await;
    let patch = r#"mutation($doc: String!, $p: JSON!) { patchBoardConfig(id: $doc, patch: $p) { settings validation { valid } } }"#;
    let body = gql_as(&api, Some(&viewer), patch, json!({"doc": doc, "p": {"BOARD": "quire-sbc"}})).await;
    assert_eq!(code(&body), "forbidden");
    let body = gql(
        &api,
        patch,
        json!({"doc": doc, "p": {"BOARD": "quire-sbc", "BRANCH": "edge", "RELEASE": "noble", "COMPRESS_OUTPUTIMAGE": "sha,img",
                                 "QUIRE_FAKE_DELAY": "0.05", "QUIRE_FAKE_LINES": "50"}}),
    )
    .await;
    assert_eq!(body["data"]["patchBoardConfig"]["validation"]["valid"], true, "{body}");
    // A second patch changes only what it names.
    let body = gql(&api, patch, json!({"doc": doc, "p": {"QUIRE_FAKE_LINES": "60", "NOPE": null}})).await;
    assert_eq!(body["data"]["patchBoardConfig"]["settings"]["BOARD"], "quire-sbc", "{body}");

    let body = gql(
        &api,
        r#"mutation($doc: String!) { startBuild(document: $doc, compress: XZ) { id status } }"#,
        json!({"doc": doc}),
    )
    .await;
    let id = body["data"]["startBuild"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = api.app.clone();
    tokio::spawn(async move { quire_server::serve(listener, app, std::future::pending()).await.unwrap() });
    let mut req = format!("ws://{addr}/api/v1/graphql/ws?token={}", api.admin).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    ws.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "connection_ack");

    let progress = subscribe(
        &mut ws,
        "p",
        &format!(r#"subscription {{ buildProgress(build: "{id}") {{ status progress {{ percent }} }} }}"#),
    )
    .await;
    let statuses: Vec<&str> = progress.iter().map(|p| p["data"]["buildProgress"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.last(), Some(&"COMPLETED"), "{progress:?}");
    let log = subscribe(
        &mut ws,
        "l",
        &format!(
            r#"subscription {{ buildLog(build: "{id}") {{ __typename ... on LogLines {{ last lines {{ n stream text }} }}
                 ... on LogStages {{ stages {{ name line }} }} ... on LogEnd {{ status }} }} }}"#
        ),
    )
    .await;
    let kinds: Vec<&str> = log.iter().map(|m| m["data"]["buildLog"]["__typename"].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"LogEnd"), "{kinds:?}");
    assert!(kinds.contains(&"LogStages"));
    let numbers: Vec<i64> = log
        .iter()
        .filter(|m| m["data"]["buildLog"]["__typename"] == "LogLines")
        .flat_map(|m| m["data"]["buildLog"]["lines"].as_array().unwrap().iter().map(|l| l["n"].as_i64().unwrap()))
        .collect();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "every line once, in order");
    let events =
        subscribe(&mut ws, "c", &format!(r#"subscription {{ contextEvents(context: "{id}") {{ seq kind }} }}"#)).await;
    assert!(events.iter().any(|e| e["data"]["contextEvents"]["kind"] == "status"), "{events:?}");
    // A subscription to what the caller may not see is an error, and the socket goes on.
    ws.send(Message::text(json!({"id": "x", "type": "subscribe", "payload": {"query": "subscription { buildLog(build: \"ctx_nope\") { __typename } }"}}).to_string()))
        .await
        .unwrap();
    let m = next(&mut ws).await;
    assert_eq!((m["type"].as_str(), m["id"].as_str()), (Some("next"), Some("x")), "{m}");
    assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], "not_found", "{m}");

    // The build as a query: stages, artifacts with links that need no token, the kept log.
    let body = gql(
        &api,
        "query($id: String!) { build(id: $id) { status durationMs stages { name } artifacts { name kind verified url }
                                   log(first: 5) { n text } config } }",
        json!({"id": id}),
    )
    .await;
    let build = &body["data"]["build"];
    assert_eq!(build["status"], "COMPLETED", "{body}");
    assert!(build["stages"].as_array().unwrap().len() >= 8);
    let xz = build["artifacts"].as_array().unwrap().iter().find(|a| a["kind"] == "image_xz").unwrap();
    assert_eq!(xz["verified"], true);
    let r = api.call_as(None, Method::GET, xz["url"].as_str().unwrap(), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "the signed link needs no token");
    assert_eq!(build["log"].as_array().unwrap().len(), 5);
    assert_eq!(build["config"]["QUIRE_FAKE_LINES"], "60");
    let body =
        gql(&api, "query($doc: String!) { boardConfig(id: $doc) { builds { id status } } }", json!({"doc": doc})).await;
    assert_eq!(body["data"]["boardConfig"]["builds"][0]["id"], id.as_str());
    // Cancelling what has ended is a conflict, as over REST.
    let body = gql(&api, "mutation($id: String!) { cancelContext(id: $id) { status } }", json!({"id": id})).await;
    assert_eq!(code(&body), "conflict", "{body}");
}

async fn deep_and_costly_queries_are_refused(b: Backend) {
    let (api, doc, _dir) = setup(b).await;
    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("boardConfig {{ document {{ {deep} }} }}");
    }
    let body = gql(&api, &format!(r#"{{ document(id: "{doc}") {{ {deep} }} }}"#), json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{body}");
    let body = gql(&api, "{ workspaces(first: 100) { documents(first: 100) { id title } } }", json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{body}");
    let body = gql(&api, "{ workspaces(first: 1000) { id } }", json!({})).await;
    assert!(body["errors"].is_array(), "{body}");
    let big = format!(r#"{{"query": "{{ me {{ id }} }}", "variables": {{"x": "{}"}}}}"#, "x".repeat(70 * 1024));
    let r = api
        .raw(Request::post("/api/v1/graphql").header("content-type", "application/json").body(Body::from(big)).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// graphql-js's `getIntrospectionQuery()`, as GraphiQL sends it.
const INTROSPECTION: &str = r#"query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}"#;
