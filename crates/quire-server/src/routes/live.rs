//! The WebSocket API: one socket, many subscriptions, for clients that would rather hold one
//! connection than an SSE stream per thing they follow. JSON text messages both ways.
//!
//! A client sends `{"type": "subscribe", "id": "s1", "topic": "build.log", "build": "ctx_…",
//! "after": 0}` (a build's log from line `after` on, as `GET /api/v1/builds/{id}/log` streams
//! it) or `{"type": "subscribe", "id": "s2", "topic": "context", "context": "ctx_…", "after": 0}`
//! (a context's events, as `GET /api/v1/contexts/{id}/events`), `{"type": "unsubscribe", "id":
//! "s1"}`, and `{"type": "ping"}`. Quire answers `{"type": "subscribed", "id"}`, then for the
//! log `{"type": "stages", "id", "stages": […]}`, `{"type": "lines", "id", "last": n, "lines":
//! [[n, t, stream, text], …]}`, `{"type": "end", "id", "status"}`; for a context `{"type":
//! "event", "id", "event": {…}}` and `{"type": "end", "id"}` after its last; `{"type":
//! "error", "id"?, "error": {"code", "message"}}` for what it refuses, and `pong`. A
//! subscription resumes where the client left off by `after` (the last line or event seen).
//! The socket closes with 4401 when the credential expires and 1001 when the server stops.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use quire_core::Principal;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::MaybeActor;
use crate::routes::builds::{LogEvent, log_stream};
use crate::routes::collab::{CLOSE_EXPIRED, socket_principal};
use crate::ws::{Socket, Upgrade, close};

/// Most subscriptions one socket holds at once.
pub const MAX_SUBSCRIPTIONS: usize = 32;
/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
/// Messages queued for a socket before its subscriptions wait for it.
const QUEUED: usize = 256;

/// Query of `GET /api/v1/ws`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// An access token or API key (browsers cannot set headers on WebSockets); the
    /// `Authorization` header and the session cookie work too.
    pub(crate) token: Option<String>,
}

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        id: String,
        topic: String,
        build: Option<String>,
        context: Option<String>,
        #[serde(default)]
        after: i64,
    },
    Unsubscribe {
        id: String,
    },
    Ping,
}

/// Open the WebSocket API (JSON messages; see the module's documentation in the README):
/// subscribe to builds' logs (`build.log`) and contexts' events (`context`) on one socket.
#[utoipa::path(get, operation_id = "live_socket", path = "/api/v1/ws", tag = "builds",
    params(LiveParams),
    responses((status = 101, description = "Switching to the WebSocket API"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn live_socket(
    State(app): State<App>,
    MaybeActor(who): MaybeActor,
    Query(params): Query<LiveParams>,
    headers: HeaderMap,
    ws: Upgrade,
) -> ApiResult<Response> {
    let (who, expires) = socket_principal(&app, who, params.token.as_deref(), &headers).await?;
    let slot = app.open_connection(&who)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
        .read_buffer_size(4 * 1024);
    Ok(ws.on_upgrade(config, move |socket| async move {
        let _open = slot;
        run(app, socket, who, expires).await
    }))
}

fn error(id: Option<&str>, code: &str, message: impl Into<String>) -> String {
    json!({"type": "error", "id": id, "error": {"code": code, "message": message.into()}}).to_string()
}

fn api_error(id: &str, e: ApiError) -> String {
    error(Some(id), e.code, e.message)
}

/// A log event as a message of subscription `id` (its JSON spliced in as encoded once).
fn log_message(id: &str, event: &LogEvent) -> String {
    let id = serde_json::to_string(id).expect("a string serialises");
    match event {
        LogEvent::Lines(b) => {
            format!(r#"{{"type":"lines","id":{id},"last":{},"lines":{}}}"#, LogEvent::last(b), b.json)
        }
        LogEvent::Stages(b) => {
            format!(r#"{{"type":"stages","id":{id},"stages":{}}}"#, b.stages_json.as_deref().unwrap_or("[]"))
        }
        LogEvent::End(status) => {
            format!(r#"{{"type":"end","id":{id},"status":{}}}"#, serde_json::to_string(status).expect("serialises"))
        }
    }
}

async fn run(app: App, mut socket: Socket, who: Principal, expires: Option<u64>) {
    let (tx, mut rx) = mpsc::channel::<String>(QUEUED);
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut shutdown = app.shutdown_signal();
    let expiry = crate::ws::expiry(expires);
    tokio::pin!(expiry);
    metrics::gauge!("live_sockets").increment(1.0);
    loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let reply = match serde_json::from_str::<ClientMessage>(&text) {
                        Err(e) => Some(error(None, "invalid_request", format!("not a message of the WebSocket API: {e}"))),
                        Ok(ClientMessage::Ping) => Some(json!({"type": "pong"}).to_string()),
                        Ok(ClientMessage::Unsubscribe { id }) => match subs.remove(&id) {
                            Some(task) => {
                                task.abort();
                                Some(json!({"type": "unsubscribed", "id": id}).to_string())
                            }
                            None => Some(error(Some(&id), "not_found", format!("no subscription '{id}'"))),
                        },
                        Ok(ClientMessage::Subscribe { id, topic, build, context, after }) => {
                            subs.retain(|_, t| !t.is_finished());
                            if subs.contains_key(&id) {
                                Some(error(Some(&id), "conflict", format!("'{id}' is already a subscription of this socket")))
                            } else if subs.len() >= MAX_SUBSCRIPTIONS {
                                Some(error(Some(&id), "limit_exceeded", format!("a socket holds at most {MAX_SUBSCRIPTIONS} subscriptions")))
                            } else {
                                match subscribe(&app, &who, &id, &topic, build, context, after.max(0), tx.clone()).await {
                                    Ok(task) => {
                                        subs.insert(id.clone(), task);
                                        Some(json!({"type": "subscribed", "id": id}).to_string())
                                    }
                                    Err(e) => Some(api_error(&id, e)),
                                }
                            }
                        }
                    };
                    if let Some(reply) = reply
                        && socket.send(Message::text(reply)).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    if socket.send(Message::text(error(None, "invalid_request", "messages are JSON text"))).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => {
                let Some(first) = out else { break };
                // What else is queued goes out in the same write.
                let mut batch = vec![first];
                while batch.len() < 64 && let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut failed = false;
                for m in batch {
                    if socket.feed(Message::text(m)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || socket.flush().await.is_err() {
                    break;
                }
            },
            _ = &mut expiry => {
                close(&mut socket, CLOSE_EXPIRED, "the token expired; reconnect with a fresh one").await;
                break;
            },
            _ = shutdown.changed() => {
                close(&mut socket, 1001, "the server is restarting").await;
                break;
            },
        }
    }
    for (_, task) in subs {
        task.abort();
    }
    metrics::gauge!("live_sockets").decrement(1.0);
}

/// Starts subscription `id`: checks the caller may see what it names, then forwards its
/// stream as messages until it ends or is dropped.
#[allow(clippy::too_many_arguments)]
async fn subscribe(
    app: &App,
    who: &Principal,
    id: &str,
    topic: &str,
    build: Option<String>,
    context: Option<String>,
    after: i64,
    tx: mpsc::Sender<String>,
) -> ApiResult<tokio::task::JoinHandle<()>> {
    let missing = |what: &str| {
        Err(quire_core::Error::invalid(
            what,
            format!("a '{topic}' subscription names its {what} (\"{what}\": \"ctx_…\")"),
        )
        .into())
    };
    let (app, who, sub) = (app.clone(), who.clone(), id.to_string());
    match topic {
        "build.log" => {
            let Some(build) = build else { return missing("build") };
            crate::routes::builds::visible_build(&app, &who, &build).await?;
            Ok(tokio::spawn(async move {
                let mut events = std::pin::pin!(log_stream(app, who, build, after));
                while let Some(e) = events.next().await {
                    if tx.send(log_message(&sub, &e)).await.is_err() {
                        return;
                    }
                }
            }))
        }
        "context" => {
            let Some(context) = context else { return missing("context") };
            app.store().get_context(&who, &context).await?;
            Ok(tokio::spawn(async move {
                let mut events = std::pin::pin!(crate::routes::contexts::context_stream(app, who, context, after));
                while let Some(e) = events.next().await {
                    if tx.send(json!({"type": "event", "id": sub, "event": e}).to_string()).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(json!({"type": "end", "id": sub}).to_string()).await;
            }))
        }
        other => {
            Err(quire_core::Error::invalid("topic", format!("no topic '{other}': subscribe to build.log or context"))
                .into())
        }
    }
}
