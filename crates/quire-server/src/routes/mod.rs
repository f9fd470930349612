//! Handlers, one module per resource. Each handler reads like the API it serves: extractors
//! for what it needs, a typed response, errors as [`ApiError`](crate::error::ApiError).

pub mod access;
pub mod ai;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod board_configs;
pub mod builds;
pub mod collab;
pub mod config_files;
pub mod contexts;
pub mod documents;
pub mod events;
pub mod graphql;
pub mod history;
pub mod live;
pub mod ops;
pub mod preferences;
pub mod workspaces;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::extract::{Json, etag};

/// A JSON object with its `ETag`.
pub(crate) fn tagged<T: Serialize>(revision: i64, body: T) -> Response {
    let mut res = Json(body).into_response();
    res.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag(revision)).expect("etag is ASCII"));
    res
}

/// 201 with `Location` and `ETag`.
pub(crate) fn created<T: Serialize>(location: String, revision: i64, body: T) -> Response {
    let mut res = tagged(revision, body);
    *res.status_mut() = axum::http::StatusCode::CREATED;
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}
