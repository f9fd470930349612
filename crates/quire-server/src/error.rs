//! The one place where errors become HTTP: every handler returns [`ApiError`], whose
//! [`IntoResponse`] picks the status and writes `{"error":{"code","message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine-readable `code` and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_json`, `invalid_request`, `invalid_query`, `invalid_cursor`, `unauthenticated`,
    /// `invalid_token`, `forbidden`, `csrf_failed`, `rate_limited`, `not_found`,
    /// `method_not_allowed`, `conflict`, `precondition_failed`, `payload_too_large`,
    /// `unsupported_media_type`, `limit_exceeded`, `unavailable` or `internal`.
    pub code: &'static str,
    pub message: String,
    /// The offending field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Error::BadCursor(_) => (StatusCode::BAD_REQUEST, "invalid_cursor"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::PreconditionFailed { .. } => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            Error::LimitExceeded(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &e {
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "an internal error occurred; the server log has the details".to_string()
            }
            Error::PreconditionFailed { current, .. } => {
                format!("{e}; fetch it again (ETag \"r{current}\") and reapply your change")
            }
            other => other.to_string(),
        };
        let retry_after = match &e {
            Error::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        let field = match e {
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        };
        ApiError { status, code, message, field, retry_after }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        let mut res = (self.status, axum::Json(body)).into_response();
        let headers = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.code == "invalid_token" {
                "Bearer realm=\"quire\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"quire\""
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
