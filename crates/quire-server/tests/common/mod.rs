//! The test harness shared by the HTTP suites: an in-process router over a fresh store,
//! with an administrator signed up, and helpers to call it as anyone.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use quire_auth::AuthConfig;
use quire_server::{App, ServerConfig};
use quire_store::StoreOptions;
use quire_store::testing::{Backend, TestStore};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Api {
    pub router: Router,
    pub app: App,
    /// The first account's access token: the instance administrator.
    pub admin: String,
    /// The store, owned by the first node (other nodes share it).
    _store: Option<TestStore>,
    /// The asset store's folder, removed with the first node.
    _assets: Option<tempfile::TempDir>,
}

/// The default configuration with generous rate limits.
pub fn relaxed() -> ServerConfig {
    let lots = quire_server::ratelimit::parse_windows("100000/min").unwrap();
    let rate_limits = quire_server::ratelimit::RateLimits { default: lots.clone(), auth: lots.clone(), ai: lots };
    ServerConfig { rate_limits, ..ServerConfig::default() }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Api {
    /// Rate limits are lifted so that suites can sign in as often as they like; the rate
    /// limit tests set their own.
    pub async fn new(b: Backend) -> Api {
        Api::with(b, StoreOptions::default(), relaxed()).await
    }

    pub async fn with(b: Backend, options: StoreOptions, config: ServerConfig) -> Api {
        Api::with_auth(b, options, config, AuthConfig::default()).await
    }

    pub async fn with_auth(b: Backend, options: StoreOptions, mut config: ServerConfig, auth: AuthConfig) -> Api {
        let t = b.open(options).await;
        let assets = tempfile::tempdir().unwrap();
        config.assets.location = quire_app::assets::AssetLocation::Local(assets.path().to_path_buf());
        let app = App::new(t.store.clone(), config, auth).await.unwrap();
        let mut api = Api {
            router: quire_server::router(app.clone()),
            app,
            admin: String::new(),
            _store: Some(t),
            _assets: Some(assets),
        };
        api.admin = api.signup("admin@example.com").await.1;
        api
    }

    /// Another node of the same instance: its own app (rooms, history, relay) over this
    /// one's store, called as the same administrator. Lives no longer than this one.
    pub async fn another_node(&self, mut config: ServerConfig) -> Api {
        let auth = self.app.auth().config().clone();
        // Every node of a cluster sees the same asset store.
        config.assets.location = self.app.assets().config().location.clone();
        let app = App::new(self.app.store().clone(), config, auth).await.unwrap();
        Api { router: quire_server::router(app.clone()), app, admin: self.admin.clone(), _store: None, _assets: None }
    }

    /// Signs up an account; returns its id, access token and refresh token.
    pub async fn signup(&self, email: &str) -> (String, String, String) {
        let body =
            json!({"email": email, "password": "correct horse battery", "name": email.split('@').next().unwrap()});
        let r = self.call_as(None, Method::POST, "/api/v1/auth/signup", Some(body), &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "signup: {}", r.body);
        let s = |k: &str| r.body[k].as_str().unwrap().to_string();
        (r.body["user"]["id"].as_str().unwrap().to_string(), s("access_token"), s("refresh_token"))
    }

    /// Signs up `email` and gives them `role` in the `boards`-like workspace `ws`; their id
    /// and access token.
    pub async fn member(&self, ws: &str, email: &str, role: &str) -> (String, String) {
        let (id, token, _) = self.signup(email).await;
        let r = self
            .call(Method::PUT, &format!("/api/v1/workspaces/{ws}/members/{id}"), Some(json!({ "role": role })), &[])
            .await;
        assert!(r.status.is_success(), "adding a member: {}", r.body);
        (id, token)
    }

    /// Sends `req` exactly as given.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    /// Sends `req` as the administrator unless it names its own credentials.
    pub async fn raw(&self, mut req: Request<Body>) -> Reply {
        if !req.headers().contains_key(header::AUTHORIZATION) {
            req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {}", self.admin).parse().unwrap());
        }
        self.send(req).await
    }

    /// A JSON call with `bearer` as the credential (`None`: anonymous).
    pub async fn call_as(
        &self,
        bearer: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    /// A JSON call as the administrator.
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        let admin = self.admin.clone();
        self.call_as(Some(&admin), method, uri, body, headers).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None, &[]).await
    }

    /// Drains the audit queue (as a shutdown does), then reads the trail from the store.
    pub async fn drained_audit(&self) -> Vec<quire_core::AuditEntry> {
        self.app.auditor().shutdown().await;
        let query = quire_core::AuditQuery { limit: 500, ..Default::default() };
        self.app.store().list_audit(&quire_core::Principal::System, &query).await.unwrap().items
    }

    pub async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(body), &[]).await
    }
}

pub fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body: {}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
}

pub fn etag(r: &Reply) -> String {
    r.headers[header::ETAG].to_str().unwrap().to_string()
}

/// The events of an SSE body: (event, data).
pub fn frames(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|f| {
            let event = f.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = f.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// The vectors of an embeddings response, in order.
pub fn embedding_vectors(body: &Value) -> Vec<Vec<f64>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The Node tools' folder (`tests/node`: the Yjs clients, the OpenAPI validator), with its
/// packages installed (`npm ci` when one is missing).
pub fn node_clients() -> std::path::PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let needed = ["y-websocket", "yjs", "ws", "@apidevtools/swagger-parser"];
    if needed.iter().any(|p| !dir.join("node_modules").join(p).exists()) {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed for the Node client tests (apt-get install nodejs npm)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

/// A copy of the fake Armbian checkout (`tests/fake-armbian`) in a temporary folder, with a git
/// HEAD: what the board-configuration and build tests point Quire at.
pub fn fake_armbian() -> (tempfile::TempDir, std::path::PathBuf) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("armbian");
    copy(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fake-armbian"), &root);
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/HEAD"), format!("{}\n", &"0123456789abcdef".repeat(3)[..40])).unwrap();
    (dir, root)
}
