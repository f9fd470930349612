//! Extractors that turn every malformed request into an [`ApiError`] rather than axum's
//! plain-text rejections, and read the acting principal and conditional headers.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_core::Principal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body, or a JSON error: 400 for malformed JSON, 422 for unknown or mistyped fields,
/// 413 over the body limit, 415 without `Content-Type: application/json`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON body: a request without `Content-Type` (an empty `POST`) has none.
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if req.headers().get(axum::http::header::CONTENT_TYPE).is_none() {
            return Ok(None);
        }
        <Json<T> as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "the request body is larger than the server's limit (max_body_bytes)".to_string())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "send the body as JSON with 'Content-Type: application/json'".to_string())
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            let (field, message) = data_error(&r).unwrap_or_else(|| (None, r.body_text()));
            let mut e = ApiError::new(status, "invalid_request", message);
            e.field = field;
            return e;
        }
        _ => ("invalid_json", r.body_text()),
    };
    // A body that hit the limit while being read surfaces as a 400 with a length error.
    if message.contains("length limit exceeded") {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the server's limit (max_body_bytes)",
        );
    }
    ApiError::new(status, code, message)
}

/// The field a body's value was refused for (its path, `metadata.owner`; or the field named
/// unknown or missing), and a message that says what was wrong with it.
fn data_error(r: &JsonRejection) -> Option<(Option<String>, String)> {
    let mut source = std::error::Error::source(r);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let inner = e.inner().to_string();
            // serde's words for a named field: "unknown field `colour`, expected …".
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|p| inner.strip_prefix(p))
                .and_then(|rest| rest.split('`').next());
            let path = e.path().to_string();
            // An unknown field's path ends with it; a missing one's is its parent's.
            let field = match (path.as_str(), named) {
                (".", None) => None,
                (".", Some(name)) => Some(name.to_string()),
                (path, Some(name)) if path != name && !path.ends_with(&format!(".{name}")) => {
                    Some(format!("{path}.{name}"))
                }
                (path, _) => Some(path.to_string()),
            };
            let inner = inner.split(" at line ").next().unwrap_or(&inner).to_string();
            let message = match &field {
                Some(f) if named.is_none() => format!("{f}: {inner}"),
                _ => inner,
            };
            return Some((field, message));
        }
        source = e.source();
    }
    None
}

/// Query parameters, or a 400 `invalid_query` that names the problem.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r: QueryRejection| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// The authenticated principal acting for this request (put in the request's extensions by
/// the authentication middleware); anonymous callers get 401 with `WWW-Authenticate`.
pub struct Actor(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match MaybeActor::from_request_parts(parts, state).await?.0 {
            Principal::Anonymous => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in: send 'Authorization: Bearer <access token or API key>'",
            )),
            who => Ok(Actor(who)),
        }
    }
}

/// The principal acting for this request, anonymous included (for the sign-in routes).
pub struct MaybeActor(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for MaybeActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(MaybeActor)
            .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no principal on the request"))
    }
}

/// When the request's credential expires (Unix seconds; `None` for API keys and anonymous
/// requests), for responses that outlive the request (event streams).
#[derive(Debug, Clone, Copy, Default)]
pub struct Expires(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for Expires {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Expires>().copied().unwrap_or_default())
    }
}

/// Where the request came from: the peer address and the user agent.
pub struct Client(pub quire_auth::ClientInfo);

impl FromRequestParts<crate::App> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &crate::App) -> Result<Self, Self::Rejection> {
        let ip = crate::client_ip_of(&parts.headers, &parts.extensions, app.config().trusted_proxies);
        let user_agent =
            parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect());
        Ok(Client(quire_auth::ClientInfo { ip, user_agent }))
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The ETag of an object at `revision`.
pub fn etag(revision: i64) -> String {
    format!("\"r{revision}\"")
}

fn parse_etag(tag: &str) -> Option<i64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix("\"r")?.strip_suffix('"')?.parse().ok()
}

/// The revision `If-Match` requires: `None` when absent or `*`. A value that names no
/// revision can match nothing, so it is answered 412 as HTTP prescribes.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let value = value.to_str().unwrap_or_default().trim();
        if value == "*" {
            return Ok(IfMatch(None));
        }
        parse_etag(value).map(|r| IfMatch(Some(r))).ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!(
                    "If-Match {value} names no revision of this object; use the ETag of your last read, e.g. \"r3\""
                ),
            )
        })
    }
}

/// Whether `If-None-Match` in `headers` already names `revision` (the client's copy is current).
pub fn not_modified(headers: &HeaderMap, revision: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || parse_etag(t) == Some(revision)))
}

/// The `Last-Event-ID` a reconnecting event stream sends (`what` it numbers, for the error):
/// `None` without one, 400 when it is not an integer.
pub fn last_event_id(headers: &HeaderMap, what: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get("last-event-id") else { return Ok(None) };
    v.to_str().ok().and_then(|s| s.trim().parse::<i64>().ok()).map(Some).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("Last-Event-ID must be {what} (an integer)"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cookies_are_found_by_name() {
        let mut h = axum::http::HeaderMap::new();
        h.append(axum::http::header::COOKIE, "a=1; quire_access=tok.en; b=2".parse().unwrap());
        h.append(axum::http::header::COOKIE, "quire_csrf=xyz".parse().unwrap());
        assert_eq!(super::cookie(&h, "quire_access"), Some("tok.en"));
        assert_eq!(super::cookie(&h, "quire_csrf"), Some("xyz"));
        assert_eq!(super::cookie(&h, "quire"), None);
    }

    #[test]
    fn etags_round_trip() {
        assert_eq!(super::parse_etag(&super::etag(42)), Some(42));
        assert_eq!(super::parse_etag("W/\"r7\""), Some(7));
        assert_eq!(super::parse_etag("\"7\""), None);
        assert_eq!(super::parse_etag("r7"), None);
    }
}
