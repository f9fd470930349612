//! The WebSocket handshake for `/collab`, on tungstenite directly rather than through axum's
//! wrapper, for one reason: a large message (the whole document, for a joining client) must
//! go out in fragments. tungstenite copies each frame into the socket's write buffer and keeps
//! that buffer's size for the socket's life, so a 5 MB document sent whole to 50 joining
//! clients would cost 250 MB at once, and keep it. In fragments, each socket holds at most one
//! fragment while all of them send the same shared buffer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::SinkExt;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::error::ApiError;

/// A server-side WebSocket on an upgraded HTTP/1.1 connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Messages larger than this go out as fragments of this size.
pub const FRAGMENT: usize = 64 * 1024;

/// A request to switch to the WebSocket protocol (RFC 6455 §4.2.1), checked.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
    /// The subprotocol answered (`Sec-WebSocket-Protocol`), chosen from the client's offer.
    protocol: Option<&'static str>,
}

fn header_has(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let refuse = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "not_a_websocket", m);
        if parts.method != Method::GET
            || !header_has(&parts.headers, header::CONNECTION, "upgrade")
            || !header_has(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(refuse("this address speaks WebSocket: send GET with Connection: upgrade, Upgrade: websocket"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            return Err(ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "unsupported_websocket_version",
                "only WebSocket version 13 is supported (Sec-WebSocket-Version: 13)",
            ));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| refuse("Sec-WebSocket-Key is missing"))?;
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| refuse("this connection cannot be upgraded (WebSocket needs HTTP/1.1)"))?;
        Ok(Upgrade { key, on_upgrade, protocol: None })
    }
}

impl Upgrade {
    /// Answers with this subprotocol (one the client offered).
    pub fn with_protocol(mut self, protocol: &'static str) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Answers 101 and runs `session` on the socket once the switch is done.
    pub fn on_upgrade<F, Fut>(self, config: WebSocketConfig, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket =
                        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                    session(socket).await;
                }
                Err(e) => tracing::info!(error = %e, "a WebSocket upgrade did not complete"),
            }
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept);
        if let Some(p) = self.protocol {
            response = response.header(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        response.body(axum::body::Body::empty()).expect("a valid response")
    }
}

/// A timer that fires when a socket's credential expires (`expires`, seconds since the epoch;
/// never for one that does not expire, as an API key).
pub fn expiry(expires: Option<u64>) -> tokio::time::Sleep {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let left = expires.map_or(std::time::Duration::from_secs(u64::MAX / 4), |exp| {
        std::time::Duration::from_secs(exp.saturating_sub(now))
    });
    tokio::time::sleep(left)
}

/// Queues a binary message (without flushing), in fragments when it is large. Every fragment
/// is a slice of the same shared buffer.
async fn feed_binary(socket: &mut Socket, bytes: Bytes) -> Result<(), Error> {
    if bytes.len() <= FRAGMENT {
        return socket.feed(Message::Binary(bytes)).await;
    }
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + FRAGMENT).min(bytes.len());
        let opcode = if start == 0 { OpCode::Data(Data::Binary) } else { OpCode::Data(Data::Continue) };
        socket.feed(Message::Frame(Frame::message(bytes.slice(start..end), opcode, end == bytes.len()))).await?;
        start = end;
    }
    Ok(())
}

/// Sends binary messages in one write where they fit: each is queued, then one flush.
pub async fn send_all(socket: &mut Socket, messages: impl IntoIterator<Item = Bytes>) -> Result<(), Error> {
    for bytes in messages {
        feed_binary(socket, bytes).await?;
    }
    socket.flush().await
}

/// Closes with `code` and `reason`.
pub async fn close(socket: &mut Socket, code: u16, reason: &str) {
    // A close frame's reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code: code.into(), reason: reason[..end].to_string().into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
