//! What a person's screens remember for them on every device they sign in from: one JSON value
//! per key (the web app keeps a board configuration's panel layout as `config-layout`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quire_core::{Error, Principal};
use serde_json::Value;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Json};

/// Most keys one person keeps.
pub const MAX_KEYS: u32 = 100;
/// Largest value, in bytes of JSON.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// The person the caller is (a signed-in user, or the one who made the API key).
fn person(who: &Principal) -> ApiResult<&str> {
    who.owner_id().ok_or_else(|| Error::Forbidden("preferences are a person's: sign in".into()).into())
}

fn checked_key(key: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("key", "a preference's key is 1 to 64 of a-z, 0-9 and -_. (as config-layout)").into())
    }
}

/// One of the caller's preferences: the JSON value they stored.
#[utoipa::path(get, operation_id = "get_preference", path = "/api/v1/me/preferences/{key}", tag = "auth",
    params(("key" = String, Path, description = "1 to 64 of a-z, 0-9 and -_.")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody, description = "Not stored yet")))]
pub async fn get_preference(State(app): State<App>, Actor(who): Actor, Path(key): Path<String>) -> ApiResult<Response> {
    checked_key(&key)?;
    let value =
        app.store().preference(person(&who)?, &key).await?.ok_or_else(|| Error::not_found("preference", &key))?;
    let value: Value = serde_json::from_str(&value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Json(value).into_response())
}

/// Store one of the caller's preferences (any JSON value, at most 32 KiB; at most 100 keys).
#[utoipa::path(put, operation_id = "put_preference", path = "/api/v1/me/preferences/{key}", tag = "auth",
    request_body = Object,
    params(("key" = String, Path, description = "1 to 64 of a-z, 0-9 and -_.")),
    responses((status = 204, description = "Stored"), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_preference(
    State(app): State<App>,
    Actor(who): Actor,
    Path(key): Path<String>,
    Json(value): Json<Value>,
) -> ApiResult<Response> {
    checked_key(&key)?;
    let text = value.to_string();
    if text.len() > MAX_VALUE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a preference is at most {MAX_VALUE_BYTES} bytes of JSON"),
        ));
    }
    app.store().put_preference(person(&who)?, &key, &text, MAX_KEYS).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Forget one of the caller's preferences (the screens go back to their defaults).
#[utoipa::path(delete, operation_id = "delete_preference", path = "/api/v1/me/preferences/{key}", tag = "auth",
    params(("key" = String, Path, description = "1 to 64 of a-z, 0-9 and -_.")),
    responses((status = 204, description = "Forgotten"), (status = 404, body = ErrorBody)))]
pub async fn delete_preference(
    State(app): State<App>,
    Actor(who): Actor,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    checked_key(&key)?;
    if !app.store().delete_preference(person(&who)?, &key).await? {
        return Err(Error::not_found("preference", &key).into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
