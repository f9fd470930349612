//! The one domain error type. The server maps each variant to an HTTP status and a stable
//! `code` string in exactly one place (`quire-server`'s `ApiError`).

/// Result alias used across Quire's engine crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in Quire's engine, independent of transport.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The object does not exist, or the principal may not know that it exists.
    #[error("{what} '{id}' was not found")]
    NotFound { what: &'static str, id: String },
    /// No valid credentials were presented (or they expired or were revoked).
    #[error("{0}")]
    Unauthenticated(String),
    /// The principal may see the object but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts; retry after this many seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// A field failed validation; `field` names it so clients can point at it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A pagination cursor could not be decoded or does not belong to this listing.
    #[error("invalid cursor: {0}")]
    BadCursor(String),
    /// The write conflicts with existing state (a taken slug, for example).
    #[error("{0}")]
    Conflict(String),
    /// The client's `If-Match` revision is stale; `current` is the revision now stored.
    #[error("the object changed since revision {expected}; it is now at revision {current}")]
    PreconditionFailed { expected: i64, current: i64 },
    /// A configured count limit would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// A dependency (the database) is unreachable or saturated; retrying later may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { what, id: id.into() }
    }
}
