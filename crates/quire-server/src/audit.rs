//! The audit trail (seed 001 §5.2): a middleware notes every state-changing request and every
//! refused one; a [`BatchWriter`](quire_app::batch::BatchWriter) stores them in batches, off the
//! request path.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use quire_core::{AuditEntry, Principal};
use quire_store::Store;
use serde_json::{Value, json};

use crate::App;
use crate::error::ApiError;

/// The audit queue and its writer.
pub type Auditor = quire_app::batch::BatchWriter<AuditEntry>;

/// Starts the audit writer over `store` with a queue of `capacity` entries.
pub fn start(store: std::sync::Arc<dyn Store>, capacity: usize) -> Auditor {
    Auditor::start("audit_entries", store, capacity, |store, batch| store.append_audit(batch))
}

/// Top-level keys of a JSON object body, never values (they may be passwords).
fn fields_of(body: &[u8]) -> Option<Value> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else { return None };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    Some(json!(keys))
}

/// The middleware. It sits outside authentication, which leaves the principal on the
/// response for it, so that refused credentials are recorded too.
pub async fn audit(State(app): State<App>, req: Request, next: Next) -> Response {
    let state_changing = !req.method().is_safe();
    let started = Instant::now();
    let method = req.method().clone();
    let action_route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let resource = req.uri().path().to_owned();
    let ip = crate::client_ip(&req, app.config().trusted_proxies);
    let user_agent = req
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(String::from);

    // Read the body of a state-changing JSON request to note which fields it set. Only JSON:
    // the API reads no other body as JSON (it answers 415), and an upload's bytes pass
    // through to its route, which reads them under its own limit.
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.ends_with("+json"));
    let (req, fields) = if state_changing && json {
        let (parts, body) = req.into_parts();
        let limit = app.config().max_body_bytes;
        match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let fields = fields_of(&bytes);
                (Request::from_parts(parts, Body::from(bytes)), fields)
            }
            Err(_) => {
                let e = ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the server's limit (max_body_bytes)",
                );
                return e.into_response();
            }
        }
    } else {
        (req, None)
    };

    let res = next.run(req).await;
    let status = res.status();
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS);
    if !(state_changing || refused) || res.extensions().get::<crate::ratelimit::RepeatedRefusal>().is_some() {
        return res;
    }
    let actor = res.extensions().get::<Principal>().map_or_else(|| "anonymous".to_owned(), |p| p.actor().to_owned());
    // Small JSON answers are read for the id they made or the error they gave.
    let (parts, body) = res.into_parts();
    let is_json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let (body, answer) = if is_json {
        match body.collect().await {
            Ok(c) => {
                let bytes = c.to_bytes();
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                (Body::from(bytes), v)
            }
            Err(_) => (Body::empty(), Value::Null),
        }
    } else {
        (body, Value::Null)
    };
    let mut summary = serde_json::Map::new();
    if let Some(fields) = fields {
        summary.insert("fields".into(), fields);
    }
    let id = answer
        .get("id")
        .or_else(|| answer.pointer("/user/id"))
        .or_else(|| answer.pointer("/api_key/id"))
        .or_else(|| answer.pointer("/invitation/id"));
    if let Some(id) = id {
        summary.insert("id".into(), id.clone());
    }
    if let Some(code) = answer.pointer("/error/code") {
        summary.insert("error".into(), code.clone());
    }
    let entry = AuditEntry {
        id: 0,
        at: time::OffsetDateTime::now_utc(),
        actor,
        action: format!(
            "{method} {}",
            action_route.as_deref().unwrap_or(if method == Method::OPTIONS { "*" } else { resource.as_str() })
        ),
        resource,
        status: status.as_u16(),
        ip,
        user_agent,
        request_id,
        summary: Value::Object(summary),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    app.auditor().record(entry).await;
    Response::from_parts(parts, body)
}
