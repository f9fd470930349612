//! The GraphQL API's addresses: queries and mutations by `POST /api/v1/graphql` (the caller's
//! credential as for REST), the schema as SDL, and subscriptions over WebSocket with the
//! `graphql-transport-ws` protocol (graphql-ws's; `graphql-ws`, the older Apollo protocol,
//! too). The schema itself is `crate::graphql`; the web app's GraphiQL page is `/graphiql`.

use std::sync::OnceLock;

use async_graphql::http::{WebSocket, WebSocketProtocols as Protocols, WsMessage};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, MaybeActor};
use crate::graphql::{QuireSchema, schema};
use crate::routes::collab::{CLOSE_EXPIRED, socket_principal};
use crate::routes::live::LiveParams;
use crate::ws::Upgrade;

/// Largest GraphQL request body (the query and its variables).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The one schema; each request carries the app and the caller.
fn the_schema() -> &'static QuireSchema {
    static SCHEMA: OnceLock<QuireSchema> = OnceLock::new();
    SCHEMA.get_or_init(schema)
}

/// Run a GraphQL query or mutation: `{"query", "variables", "operationName"}`. Errors of a
/// field come back in `errors` with `extensions.code` as REST's (`not_found`, `forbidden`,
/// `invalid_request`, …); a query deeper than 16 or more complex than 5,000 (a list counts its items) is refused whole.
#[utoipa::path(post, operation_id = "graphql", path = "/api/v1/graphql", tag = "graphql",
    request_body(content = Object, description = "{query, variables, operationName}"),
    responses((status = 200, description = "{data, errors}"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn graphql(State(app): State<App>, Actor(who): Actor, body: Bytes) -> ApiResult<Response> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a GraphQL request is at most {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let request: async_graphql::Request = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("a GraphQL request is JSON: {{\"query\": \"…\", \"variables\": {{…}}}} ({e})"),
        )
    })?;
    if request.query.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a GraphQL request has a query: {\"query\": \"{ me { id } }\"}",
        ));
    }
    let response = the_schema().execute(request.data(app).data(who)).await;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(response)).into_response())
}

/// The schema in the GraphQL schema language, for code generators and editors.
#[utoipa::path(get, operation_id = "graphql_schema", path = "/api/v1/graphql/schema", tag = "graphql",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody)))]
pub async fn graphql_schema(Actor(_who): Actor) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], the_schema().sdl()).into_response()
}

/// Subscriptions over WebSocket (`Sec-WebSocket-Protocol: graphql-transport-ws`, or
/// `graphql-ws`): `buildLog`, `buildProgress`, `contextEvents`. The credential as for the
/// WebSocket API (`?token=`, the `Authorization` header or the session cookie).
#[utoipa::path(get, operation_id = "graphql_socket", path = "/api/v1/graphql/ws", tag = "graphql",
    params(LiveParams),
    responses((status = 101, description = "Switching to graphql-transport-ws"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn graphql_socket(
    State(app): State<App>,
    MaybeActor(who): MaybeActor,
    Query(params): Query<LiveParams>,
    headers: HeaderMap,
    ws: Upgrade,
) -> ApiResult<Response> {
    let (who, expires) = socket_principal(&app, who, params.token.as_deref(), &headers).await?;
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let protocol = offered.split(',').find_map(|p| p.trim().parse::<Protocols>().ok()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_protocol",
            "ask for the graphql-transport-ws protocol (Sec-WebSocket-Protocol), as graphql-ws clients do",
        )
    })?;
    let slot = app.open_connection(&who)?;
    let config = WebSocketConfig::default().max_message_size(Some(MAX_REQUEST_BYTES)).read_buffer_size(4 * 1024);
    Ok(ws.with_protocol(protocol.sec_websocket_protocol()).on_upgrade(config, move |socket| async move {
        let _open = slot;
        let (mut sink, source) = socket.split();
        let incoming = source
            .take_while(|m| {
                std::future::ready(matches!(
                    m,
                    Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_))
                ))
            })
            .filter_map(|m| async move {
                match m {
                    Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                    Ok(Message::Binary(b)) => Some(b.to_vec()),
                    _ => None,
                }
            });
        let mut data = async_graphql::Data::default();
        data.insert(app.clone());
        data.insert(who);
        let mut outgoing =
            std::pin::pin!(WebSocket::new(the_schema().clone(), incoming, protocol).connection_data(data));
        let mut shutdown = app.shutdown_signal();
        let expiry = crate::ws::expiry(expires);
        tokio::pin!(expiry);
        let reason = loop {
            tokio::select! {
                m = outgoing.next() => match m {
                    Some(WsMessage::Text(text)) => {
                        if sink.send(Message::text(text)).await.is_err() {
                            return;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => break Some((code, reason)),
                    None => break None,
                },
                _ = &mut expiry => break Some((CLOSE_EXPIRED, "the token expired; reconnect with a fresh one".into())),
                _ = shutdown.changed() => break Some((1001, "the server is restarting".into())),
            }
        };
        if let Some((code, reason)) = reason {
            let frame = CloseFrame { code: code.into(), reason: reason.into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    }))
}
