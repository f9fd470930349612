//! The y-websocket endpoint over real sockets, with yrs clients.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::Api;
use futures_util::{SinkExt, StreamExt};
use quire_store::testing::Backend;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Serves the harness's app on a local port.
async fn serve(api: &Api) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = api.app.clone();
    tokio::spawn(async move { quire_server::serve(listener, app, std::future::pending()).await.unwrap() });
    addr
}

struct Peer {
    doc: Doc,
    ws: Socket,
    /// Reasons the server gave for refusing updates.
    denied: Vec<String>,
    /// The server's SyncStep2 (the answer to this client's SyncStep1) has arrived.
    synced: bool,
}

impl Peer {
    async fn connect(addr: &str, doc_id: &str, token: &str) -> Peer {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/collab/{doc_id}?token={token}")).await.unwrap();
        let mut p = Peer { doc: Doc::new(), ws, denied: Vec::new(), synced: false };
        let sv = p.doc.transact().state_vector();
        p.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
        // Synced once the server has answered with what this client lacks.
        p.until(|p| p.synced).await;
        assert!(p.synced, "the server never answered the client's SyncStep1");
        p
    }

    async fn send(&mut self, m: Message) {
        self.ws.send(Ws::Binary(m.encode_v1().into())).await.unwrap();
    }

    /// Handles what arrives within `wait`; returns the close code if the server closed.
    async fn pump(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match msg {
                Ok(Ws::Binary(data)) => {
                    let mut decoder = DecoderV1::from(data.as_ref());
                    let messages: Vec<Message> = MessageReader::new(&mut decoder).map(|m| m.unwrap()).collect();
                    for m in messages {
                        match m {
                            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                                let diff = self.doc.transact().encode_state_as_update_v1(&sv);
                                self.send(Message::Sync(SyncMessage::SyncStep2(diff))).await;
                            }
                            Message::Sync(SyncMessage::SyncStep2(u)) => {
                                self.doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                                self.synced = true;
                            }
                            Message::Sync(SyncMessage::Update(u)) => {
                                self.doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                            }
                            Message::Auth(Some(reason)) => self.denied.push(reason),
                            _ => {}
                        }
                    }
                }
                Ok(Ws::Close(frame)) => return Some(frame.map_or(1005, |f| u16::from(f.code))),
                Ok(_) => {}
                Err(_) => return Some(1006),
            }
        }
        None
    }

    async fn type_text(&mut self, text: &str) {
        let before = self.doc.transact().state_vector();
        {
            let t = self.doc.get_or_insert_text("body");
            let mut txn = self.doc.transact_mut();
            let len = t.len(&txn);
            t.insert(&mut txn, len, text);
        }
        let update = self.doc.transact().encode_state_as_update_v1(&before);
        self.send(Message::Sync(SyncMessage::Update(update))).await;
    }

    fn text(&self) -> String {
        self.doc.get_or_insert_text("body").get_string(&self.doc.transact())
    }

    /// Handles messages until `check` holds (or 5 s pass), so that a loaded machine is not
    /// mistaken for a lost message.
    async fn until(&mut self, check: impl Fn(&Peer) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !check(self) && tokio::time::Instant::now() < deadline {
            self.pump(Duration::from_millis(20)).await;
        }
    }

    /// Handles messages until the text is `expected` (or 5 s pass); returns the text.
    async fn until_text(&mut self, expected: &str) -> String {
        self.until(|p| p.text() == expected).await;
        self.text()
    }

    fn blocks(&self) -> u32 {
        yrs::XmlFragment::len(&self.doc.get_or_insert_xml_fragment("default"), &self.doc.transact())
    }
}

quire_store::for_each_backend!(
    editors_converge_viewers_only_read,
    access_is_checked_and_withdrawn_live,
    real_yjs_clients_converge_reconnect_and_respect_roles,
    content_over_rest_reaches_open_editors,
    large_documents_arrive_in_fragments_and_plain_requests_are_refused,
    cookie_sockets_are_refused_to_other_sites,
    one_socket_cannot_make_the_server_work_without_bound,
    awareness_states_belong_to_their_connection,
    sockets_per_caller_are_capped,
    arriving_and_leaving_are_events,
    board_content_is_checked_and_written_field_by_field,
);

/// A moodboard over REST: a bad field is refused by name and nothing is written; a good
/// board is written, and a second write changing one item's field changes only it.
async fn board_content_is_checked_and_written_field_by_field(b: Backend) {
    let api = Api::new(b).await;
    let ws = api.post("/api/v1/workspaces", json!({"name": "Boards"})).await.body["id"].as_str().unwrap().to_string();
    let doc = api
        .post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "moodboard", "title": "Living room"}))
        .await;
    let doc = doc.body["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/documents/{doc}/content");
    let board = json!({"brief": {"room_type": "living room", "style": "japandi"},
        "items": {"i1": {"type": "note", "x": 10, "y": 20, "text": "Low and warm"}}});
    let bad = json!({"format": "json", "content": {"items": {"i1": {"type": "note", "x": "left"}}}});
    let r = api.call(Method::PUT, &path, Some(bad), &[]).await;
    assert_eq!(
        (r.status, &r.body["error"]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("items.i1.x")),
        "{}",
        r.body
    );
    // A new board has its maps from the start, and a refused write leaves them as they were.
    let empty = json!({"brief": {}, "items": {}});
    assert_eq!(api.get(&format!("{path}?format=json")).await.body, empty, "nothing written");
    let put = api.call(Method::PUT, &path, Some(json!({"format": "json", "content": board})), &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
    let mut moved = board.clone();
    moved["items"]["i1"]["x"] = json!(300);
    let put = api.call(Method::PUT, &path, Some(json!({"format": "json", "content": moved})), &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
    assert_eq!(api.get(&format!("{path}?format=json")).await.body, moved);
}

async fn arriving_and_leaving_are_events(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    let (_, grace) = member(&api, &ws, "grace@example.com", "editor").await;
    let names = quire_core::EventFilter { names: vec!["user.joined".into(), "user.left".into()], ..Default::default() };
    let events = || async {
        let all = api.app.store().events_after(&quire_core::Principal::System, 0, &names, 100).await.unwrap();
        all.into_iter().map(|e| format!("{} {}", e.name, e.data["name"].as_str().unwrap_or("?"))).collect::<Vec<_>>()
    };
    let until = |want: Vec<&'static str>| async move {
        for _ in 0..200 {
            if events().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the events are {:?}, not {want:?}", events().await);
    };
    // Two tabs of the admin: one arrival; Grace: another.
    let tab1 = Peer::connect(&addr, &doc, &api.admin).await;
    let tab2 = Peer::connect(&addr, &doc, &api.admin).await;
    let g = Peer::connect(&addr, &doc, &grace).await;
    until(vec!["user.joined admin", "user.joined grace"]).await;
    // Closing one tab of two is no departure; closing the last is.
    drop(tab1);
    drop(g);
    until(vec!["user.joined admin", "user.joined grace", "user.left grace"]).await;
    drop(tab2);
    until(vec!["user.joined admin", "user.joined grace", "user.left grace", "user.left admin"]).await;
    let all = api.app.store().events_after(&quire_core::Principal::System, 0, &names, 100).await.unwrap();
    assert!(all.iter().all(|e| e.document_id.as_deref() == Some(doc.as_str())));
}

async fn setup(api: &Api) -> (String, String) {
    let ws = api.post("/api/v1/workspaces", json!({"name": "Live"})).await.body["id"].as_str().unwrap().to_string();
    let doc = api
        .post(&format!("/api/v1/workspaces/{ws}/documents"), json!({"kind": "prd", "title": "Live"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    (ws, doc)
}

async fn member(api: &Api, ws: &str, email: &str, role: &str) -> (String, String) {
    let (id, token, _) = api.signup(email).await;
    let r =
        api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{id}"), Some(json!({"role": role})), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    (id, token)
}

async fn editors_converge_viewers_only_read(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    let (_, editor) = member(&api, &ws, "editor@example.com", "editor").await;
    let (_, viewer) = member(&api, &ws, "viewer@example.com", "viewer").await;
    let mut a = Peer::connect(&addr, &doc, &api.admin).await;
    let mut b2 = Peer::connect(&addr, &doc, &editor).await;
    let here = api.get(&format!("/api/v1/documents/{doc}/presence")).await;
    let mut who: Vec<(String, String)> = here
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["user"]["name"].as_str().unwrap().to_string(), p["status"].as_str().unwrap().to_string()))
        .collect();
    who.sort();
    assert_eq!(who, [("admin".to_string(), "online".to_string()), ("editor".to_string(), "online".to_string())]);
    assert!(here.body[0]["lastSeen"].is_string());
    a.type_text("Problem: ").await;
    assert_eq!(b2.until_text("Problem: ").await, "Problem: ");
    b2.type_text("checkout is slow").await;
    assert_eq!(a.until_text("Problem: checkout is slow").await, "Problem: checkout is slow");
    assert_eq!(b2.text(), a.text());
    // A late viewer sees it all, and cannot change it.
    let mut v = Peer::connect(&addr, &doc, &viewer).await;
    assert_eq!(v.text(), a.text());
    v.type_text(" (not really)").await;
    v.until(|p| !p.denied.is_empty()).await;
    assert!(v.denied.iter().any(|r| r.starts_with("read-only")), "{:?}", v.denied);
    a.pump(Duration::from_millis(200)).await;
    assert_eq!(a.text(), "Problem: checkout is slow");
}

async fn access_is_checked_and_withdrawn_live(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    // No credential, a bad one, or no access: refused before the upgrade.
    let refused = |url: String| async move {
        tokio_tungstenite::connect_async(url).await.err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(refused(format!("ws://{addr}/collab/{doc}")).await.contains("401"));
    assert!(refused(format!("ws://{addr}/collab/{doc}?token=forged")).await.contains("401"));
    let (_, outsider, _) = api.signup("outsider@example.com").await;
    assert!(refused(format!("ws://{addr}/collab/{doc}?token={outsider}")).await.contains("404"));

    // Removing a member closes their socket at once.
    let (id, editor) = member(&api, &ws, "editor@example.com", "editor").await;
    let mut p = Peer::connect(&addr, &doc, &editor).await;
    let r = api.call(Method::DELETE, &format!("/api/v1/workspaces/{ws}/members/{id}"), None, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(p.pump(Duration::from_secs(5)).await, Some(4403));
    // Demoting one makes them read-only without reconnecting.
    let (id2, second) = member(&api, &ws, "second@example.com", "editor").await;
    let mut q = Peer::connect(&addr, &doc, &second).await;
    api.call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{id2}"), Some(json!({"role": "viewer"})), &[])
        .await;
    // The change reaches the socket through the event feed: keep writing until it bites.
    for _ in 0..50 {
        q.type_text("x").await;
        q.pump(Duration::from_millis(100)).await;
        if !q.denied.is_empty() {
            break;
        }
    }
    assert!(q.denied.iter().any(|r| r.starts_with("read-only")), "{:?}", q.denied);
    // Revoking an API key closes the sockets it opened.
    let key = api.post(&format!("/api/v1/workspaces/{ws}/api-keys"), json!({"name": "bot", "role": "editor"})).await;
    let secret = key.body["secret"].as_str().unwrap().to_string();
    let key_id = key.body["api_key"]["id"].as_str().unwrap().to_string();
    let mut bot = Peer::connect(&addr, &doc, &secret).await;
    let revoked = api.call(Method::DELETE, &format!("/api/v1/workspaces/{ws}/api-keys/{key_id}"), None, &[]).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(bot.pump(Duration::from_secs(5)).await, Some(4403));
    // Signing out closes the sockets of that session.
    let mut admin = Peer::connect(&addr, &doc, &api.admin).await;
    let out = api.call(Method::POST, "/api/v1/auth/logout", None, &[]).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(admin.pump(Duration::from_secs(5)).await, Some(4403));
}

/// The reference client, unchanged: yjs and y-websocket from npm, in Node.
async fn real_yjs_clients_converge_reconnect_and_respect_roles(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    let (_, viewer) = member(&api, &ws, "viewer@example.com", "viewer").await;
    let dir = common::node_clients();
    let mut cmd = std::process::Command::new("node");
    cmd.arg("clients.mjs").arg(format!("ws://{addr}/collab")).arg(&doc).arg(&api.admin).arg(&viewer).current_dir(&dir);
    let out =
        tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|_| panic!("no report: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["presence"].as_u64(), Some(3));
    assert_eq!(
        (report["late"].as_bool(), report["viewer_reads"].as_bool(), report["viewer_blocked"].as_bool()),
        (Some(true), Some(true), Some(true))
    );
    // What the clients wrote is what the server stored.
    let stored = api.app.collab().read(&doc, |d| d.get_or_insert_text("body").get_string(&d.transact())).await.unwrap();
    assert_eq!(stored, report["reconnected"].as_str().unwrap());
}

/// Two server processes (here two apps on one PostgreSQL database) with Redis: clients on
/// either edit the same document live, and see each other's presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_relay_through_redis() {
    let config = quire_server::ServerConfig { redis_url: Some("redis://127.0.0.1:6379".into()), ..common::relaxed() };
    let auth = quire_auth::AuthConfig::default();
    let api = Api::with_auth(Backend::Postgres, Default::default(), config.clone(), auth.clone()).await;
    let other = quire_server::App::new(api.app.store().clone(), config, auth).await.unwrap();
    let node1 = serve(&api).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node2 = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { quire_server::serve(listener, other, std::future::pending()).await.unwrap() });
    let (_, doc) = setup(&api).await;

    let mut a = Peer::connect(&node1, &doc, &api.admin).await;
    let mut b2 = Peer::connect(&node2, &doc, &api.admin).await;
    a.type_text("from node 1; ").await;
    assert_eq!(b2.until_text("from node 1; ").await, "from node 1; ");
    b2.type_text("from node 2").await;
    assert_eq!(a.until_text("from node 1; from node 2").await, "from node 1; from node 2");
    // Presence crosses too.
    let mut presence = yrs::sync::Awareness::new(Doc::new());
    presence.set_local_state_raw(r#"{"user":{"name":"On node 1"}}"#);
    a.send(Message::Awareness(presence.update().unwrap())).await;
    let mut c = Peer::connect(&node2, &doc, &api.admin).await;
    // Queries are spaced out: a client may ask for the room's presence about twice a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while !seen && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.send(Message::AwarenessQuery).await;
        let got = c.ws.next().await;
        if let Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(data))) = got {
            seen = String::from_utf8_lossy(&data).contains("On node 1");
        }
    }
    assert!(seen, "node 2 knows who is on node 1");
}

async fn content_over_rest_reaches_open_editors(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    let (_, viewer) = member(&api, &ws, "viewer@example.com", "viewer").await;
    let mut editor = Peer::connect(&addr, &doc, &api.admin).await;
    let path = format!("/api/v1/documents/{doc}/content");
    let put = api.call(Method::PUT, &path, Some(json!({"format": "text", "content": "Problem\n\nGoals"})), &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
    editor.until(|p| p.blocks() == 2).await;
    assert_eq!(editor.blocks(), 2, "the editor got two paragraphs live");
    let json = api.get(&path).await;
    assert_eq!(json.body["type"], "doc");
    assert_eq!(json.body["content"][1]["content"][0]["text"], "Goals");
    let text = api.get(&format!("{path}?format=text")).await;
    assert_eq!(text.body, json!("Problem\n\nGoals"));
    let refused =
        api.call_as(Some(&viewer), Method::PUT, &path, Some(json!({"format": "text", "content": "x"})), &[]).await;
    common::assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    // Markdown both ways.
    let md = "# Checkout\n\nIt is **slow**.\n\n- Halve it\n- Keep the API\n";
    let put = api.call(Method::PUT, &path, Some(json!({"format": "markdown", "content": md})), &[]).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.body);
    let back = api.get(&format!("{path}?format=markdown")).await;
    assert_eq!(back.headers[axum::http::header::CONTENT_TYPE], "text/markdown; charset=utf-8");
    assert_eq!(back.body, json!(md));
    editor.until(|p| p.blocks() == 3).await;
    assert_eq!(editor.blocks(), 3, "heading, paragraph, list reached the editor");
    let bad = api.get(&format!("{path}?format=docx")).await;
    common::assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let wrong_shape =
        api.call(Method::PUT, &path, Some(json!({"format": "json", "content": {"type": "paragraph"}})), &[]).await;
    common::assert_error(&wrong_shape, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

/// A document larger than a fragment reaches a joining client whole, in frames of at most
/// 64 KiB (a client that refuses larger frames still syncs); a request that is not a
/// WebSocket handshake gets a JSON error.
async fn large_documents_arrive_in_fragments_and_plain_requests_are_refused(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (_, doc) = setup(&api).await;
    let mut writer = Peer::connect(&addr, &doc, &api.admin).await;
    let chunk = "0123456789abcdef".repeat(64 * 100);
    for _ in 0..10 {
        writer.type_text(&chunk).await;
    }

    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(64 * 1024 + 14))
        .max_message_size(Some(8 << 20));
    let url = format!("ws://{addr}/collab/{doc}?token={}", api.admin);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false).await.unwrap();
    let mut reader = Peer { doc: Doc::new(), ws, denied: Vec::new(), synced: false };
    let sv = reader.doc.transact().state_vector();
    reader.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
    // What the reader gets is the server's copy: all of it, in frames it accepts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reader.text().len() < 1_024_000 && tokio::time::Instant::now() < deadline {
        assert_eq!(reader.pump(Duration::from_millis(50)).await, None, "no frame was too large");
    }
    assert_eq!(reader.text().len(), 1_024_000, "the server holds the whole document");
    assert_eq!(reader.text(), writer.text());

    let path = format!("/collab/{doc}");
    let plain = api.call(Method::GET, &path, None, &[]).await;
    common::assert_error(&plain, StatusCode::BAD_REQUEST, "not_a_websocket");
    let old = [("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-version", "8")];
    let refused = api.call(Method::GET, &path, None, &old).await;
    common::assert_error(&refused, StatusCode::UPGRADE_REQUIRED, "unsupported_websocket_version");
}

/// A page on another site cannot open a socket with the browser's session cookie (WebSockets
/// are outside CORS): the upgrade's `Origin` must be Quire's own or a CORS origin. A token
/// in the URL is not sent by the browser on its own, so it needs no such check.
async fn cookie_sockets_are_refused_to_other_sites(b: Backend) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let config = quire_server::ServerConfig { cors_origins: vec!["https://app.example".into()], ..common::relaxed() };
    let api = Api::with(b, Default::default(), config).await;
    let addr = serve(&api).await;
    let (_, doc) = setup(&api).await;
    let cookie = format!("{}={}", quire_server::routes::auth::ACCESS_COOKIE, api.admin);
    let open = |origin: Option<&'static str>, cookie: String| {
        let url = format!("ws://{addr}/collab/{doc}");
        async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
            if let Some(o) = origin {
                req.headers_mut().insert("origin", o.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => "open".to_string(),
                Err(e) => e.to_string(),
            }
        }
    };
    let evil = open(Some("https://evil.example"), cookie.clone()).await;
    assert!(evil.contains("403"), "{evil}");
    assert_eq!(open(Some("https://app.example"), cookie.clone()).await, "open", "a CORS origin");
    let own: &'static str = Box::leak(format!("http://{addr}").into_boxed_str());
    assert_eq!(open(Some(own), cookie.clone()).await, "open", "Quire's own pages");
    assert_eq!(open(None, cookie.clone()).await, "open", "not a browser");
    // A token in the URL is not something a browser adds by itself: any page may use one.
    let mut req = format!("ws://{addr}/collab/{doc}?token={}", api.admin).into_client_request().unwrap();
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

/// A frame packed with requests that each make the server encode the whole document (sync
/// step 1 with a non-empty state vector) or the room's presence (awareness queries) is
/// refused with 4429 before the server does that work many times over, even for a viewer;
/// so is a stream of messages faster than the per-second limit.
async fn one_socket_cannot_make_the_server_work_without_bound(b: Backend) {
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    let mut editor = Peer::connect(&addr, &doc, &api.admin).await;
    editor.type_text(&"x".repeat(10_000)).await;
    let (_, viewer) = member(&api, &ws, "viewer@example.com", "viewer").await;

    let mut sv = yrs::StateVector::default();
    sv.set_max(yrs::block::ClientID::new(12345), 1);
    let step1 = Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1();
    let before = api.app.collab().diff_encodes();
    let mut flood = Peer::connect(&addr, &doc, &viewer).await;
    flood.ws.send(Ws::Binary(step1.repeat(50_000).into())).await.unwrap();
    assert_eq!(flood.pump(Duration::from_secs(10)).await, Some(4429));
    let queries = Message::AwarenessQuery.encode_v1();
    let mut flood = Peer::connect(&addr, &doc, &viewer).await;
    flood.ws.send(Ws::Binary(queries.repeat(1_000_000).into())).await.unwrap();
    assert_eq!(flood.pump(Duration::from_secs(10)).await, Some(4429));
    // One request per frame, too fast: the same.
    let mut flood = Peer::connect(&addr, &doc, &viewer).await;
    for _ in 0..30 {
        if flood.ws.send(Ws::Binary(step1.clone().into())).await.is_err() {
            break;
        }
    }
    assert_eq!(flood.pump(Duration::from_secs(10)).await, Some(4429));
    let encodes = api.app.collab().diff_encodes() - before;
    assert!(encodes <= 40, "{encodes} encodings of the document: a storm (it was 50,000)");
    // Well-behaved clients are untouched.
    editor.type_text("!").await;
    let mut reader = Peer::connect(&addr, &doc, &viewer).await;
    assert_eq!(reader.until_text(&format!("{}!", "x".repeat(10_000))).await.len(), 10_001);
}

/// A connection may set and remove only the awareness states it announced itself: a viewer
/// cannot overwrite or delete an editor's cursor, nor announce states without limit.
async fn awareness_states_belong_to_their_connection(b: Backend) {
    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    let api = Api::new(b).await;
    let addr = serve(&api).await;
    let (ws, doc) = setup(&api).await;
    let entry = |clock: u32, json: &str| AwarenessUpdateEntry { clock, json: json.into() };
    let update = |pairs: Vec<(u64, AwarenessUpdateEntry)>| {
        Message::Awareness(AwarenessUpdate {
            clients: pairs.into_iter().map(|(c, e)| (yrs::block::ClientID::new(c), e)).collect(),
        })
    };
    let mut editor = Peer::connect(&addr, &doc, &api.admin).await;
    editor.send(update(vec![(111, entry(1, r#"{"user":{"name":"Ada"}}"#))])).await;
    let (_, viewer) = member(&api, &ws, "viewer@example.com", "viewer").await;
    let mut mallory = Peer::connect(&addr, &doc, &viewer).await;
    // Overwriting and deleting Ada's state: ignored.
    mallory.send(update(vec![(111, entry(5, r#"{"user":{"name":"Mallory"}}"#))])).await;
    mallory.send(update(vec![(111, entry(6, "null"))])).await;
    // A state of its own is fine and seen by others (a positive signal to wait for).
    mallory.send(update(vec![(222, entry(1, r#"{"user":{"name":"Viewer"}}"#))])).await;
    let mut watcher = Peer::connect(&addr, &doc, &api.admin).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut presence = String::new();
    // The answer to a query lists every state; a broadcast frame in between lists only the
    // states that changed, so frames are read until one shows both.
    while !(presence.contains("Viewer") && presence.contains("Ada")) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(600)).await;
        watcher.send(Message::AwarenessQuery).await;
        if let Ok(Some(Ok(Ws::Binary(data)))) = tokio::time::timeout(Duration::from_secs(2), watcher.ws.next()).await {
            presence = String::from_utf8_lossy(&data).into_owned();
        }
    }
    assert!(presence.contains("Viewer"), "{presence}");
    assert!(presence.contains("Ada") && !presence.contains("Mallory"), "{presence}");
    // Announcing many client ids from one connection ends it.
    let many: Vec<_> = (1000..1010).map(|c| (c, entry(1, "{}"))).collect();
    mallory.send(update(many)).await;
    assert_eq!(mallory.pump(Duration::from_secs(10)).await, Some(1003));
}

/// Sockets count against the caller's connections like event streams: one more than the
/// setting allows is refused before the upgrade, and a closed one frees its place.
async fn sockets_per_caller_are_capped(b: Backend) {
    let config = quire_server::ServerConfig { max_connections_per_caller: 2, ..common::relaxed() };
    let api = Api::with(b, Default::default(), config).await;
    let addr = serve(&api).await;
    let (_, doc) = setup(&api).await;
    let url = format!("ws://{addr}/collab/{doc}?token={}", api.admin);
    let first = Peer::connect(&addr, &doc, &api.admin).await;
    let _second = Peer::connect(&addr, &doc, &api.admin).await;
    let refused = tokio_tungstenite::connect_async(url.clone()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("429"), "{refused}");
    let mut first = first.ws;
    first.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio_tungstenite::connect_async(url.clone()).await {
            Ok(_) => break,
            Err(e) if e.to_string().contains("429") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("a closed socket's place was not given back: {e}"),
        }
    }
}
