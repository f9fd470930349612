//! Sign-up, sign-in, token refresh, sign-out, the current principal, and account admin.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_auth::SignedIn;
use quire_core::{Principal, Role, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::App;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, Client, Json, cookie};

/// The access-token cookie of cookie sessions.
pub const ACCESS_COOKIE: &str = "quire_access";
/// The refresh-token cookie; sent only to `/api/v1/auth`.
pub const REFRESH_COOKIE: &str = "quire_refresh";
/// The CSRF cookie, readable by the page, echoed in `X-CSRF-Token` on state-changing calls.
pub const CSRF_COOKIE: &str = "quire_csrf";

/// Whether a cookie-authenticated request carries the CSRF token (double submit).
pub fn csrf_ok(headers: &HeaderMap) -> bool {
    match (cookie(headers, CSRF_COOKIE), headers.get("x-csrf-token").and_then(|v| v.to_str().ok())) {
        (Some(c), Some(h)) => !c.is_empty() && quire_auth::secrets_equal(c.as_bytes(), h.as_bytes()),
        _ => false,
    }
}

/// The body of `POST /api/v1/auth/signup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    pub email: String,
    /// 8 to 1024 characters.
    pub password: String,
    pub name: String,
    /// An invitation token: required when sign-up is invite-only; joins its workspace.
    #[serde(default)]
    pub invitation: Option<String>,
    /// Start a cookie session (for browsers) instead of returning tokens.
    #[serde(default)]
    pub cookie: bool,
}

/// The body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// Start a cookie session (for browsers) instead of returning tokens.
    #[serde(default)]
    pub cookie: bool,
}

/// The body of `POST /api/v1/auth/refresh`; empty in a cookie session.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Tokens for a bearer session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub user: User,
    /// Send as `Authorization: Bearer …`; expires after `expires_in` seconds.
    pub access_token: String,
    /// Exchange at `/api/v1/auth/refresh` for a new pair; each works once.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// A cookie session: the tokens are in `HttpOnly` cookies; echo `csrf_token` in
/// `X-CSRF-Token` on state-changing requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct CookieSession {
    pub user: User,
    pub csrf_token: String,
    pub expires_in: u64,
}

/// What signing in (or up, or refreshing) answers: tokens for a bearer session, or with
/// `"cookie": true` (and on a refresh by cookie) a cookie session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInAnswer {
    Tokens(Tokens),
    Cookie(CookieSession),
}

fn set_cookie(res: &mut Response, name: &str, value: &str, path: &str, max_age: u64, http_only: bool, secure: bool) {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn signed_in(app: &App, signed: SignedIn, as_cookie: bool, status: StatusCode) -> Response {
    if !as_cookie {
        let tokens = Tokens {
            user: signed.user,
            access_token: signed.access_token,
            refresh_token: signed.refresh_token,
            token_type: "Bearer",
            expires_in: signed.expires_in,
        };
        let mut res = Json(SignInAnswer::Tokens(tokens)).into_response();
        *res.status_mut() = status;
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return res;
    }
    let secure = app.config().cookie_secure;
    let csrf = quire_auth::token_hash(&signed.refresh_token)[..32].to_string();
    let refresh_age = app.auth().config().refresh_ttl.as_secs();
    let session = CookieSession { user: signed.user, csrf_token: csrf.clone(), expires_in: signed.expires_in };
    let mut res = Json(SignInAnswer::Cookie(session)).into_response();
    *res.status_mut() = status;
    set_cookie(&mut res, ACCESS_COOKIE, &signed.access_token, "/", signed.expires_in, true, secure);
    set_cookie(&mut res, REFRESH_COOKIE, &signed.refresh_token, "/api/v1/auth", refresh_age, true, secure);
    set_cookie(&mut res, CSRF_COOKIE, &csrf, "/", refresh_age, false, secure);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Create an account and sign in. The first account of an instance becomes its
/// administrator and gets a workspace. Invite-only instances need `invitation`.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = Signup,
    responses((status = 201, body = SignInAnswer), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn signup(State(app): State<App>, Client(client): Client, Json(body): Json<Signup>) -> ApiResult<Response> {
    let signed =
        app.auth().signup(&body.email, &body.password, &body.name, body.invitation.as_deref(), &client).await?;
    Ok(signed_in(&app, signed, body.cookie, StatusCode::CREATED))
}

/// Sign in with email and password. Repeated failures are throttled (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = SignInAnswer), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(State(app): State<App>, Client(client): Client, Json(body): Json<Login>) -> ApiResult<Response> {
    let signed = app.auth().login(&body.email, &body.password, &client).await?;
    Ok(signed_in(&app, signed, body.cookie, StatusCode::OK))
}

/// Exchange a refresh token for a new pair (the old one stops working). Presenting a used
/// refresh token ends the session. In a cookie session the cookie is used (with CSRF).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Refresh,
    responses((status = 200, body = SignInAnswer), (status = 401, body = ErrorBody)))]
pub async fn refresh(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult<Response> {
    // The body is optional: a cookie session sends none.
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Refresh>(&body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string()))?
            .refresh_token
    };
    let (token, as_cookie) = match from_body {
        Some(t) => (t, false),
        None => {
            let Some(t) = cookie(&headers, REFRESH_COOKIE) else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send {\"refresh_token\": …} or the session cookie",
                ));
            };
            if !csrf_ok(&headers) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "send the quire_csrf cookie's value in the X-CSRF-Token header",
                ));
            }
            (t.to_string(), true)
        }
    };
    let signed = app.auth().refresh(&token).await?;
    Ok(signed_in(&app, signed, as_cookie, StatusCode::OK))
}

/// Sign out: this session's access and refresh tokens stop working at once, everywhere.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(app): State<App>, Actor(who): Actor) -> ApiResult<Response> {
    app.auth().logout(&who).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    let secure = app.config().cookie_secure;
    for (name, path, http_only) in
        [(ACCESS_COOKIE, "/", true), (REFRESH_COOKIE, "/api/v1/auth", true), (CSRF_COOKIE, "/", false)]
    {
        set_cookie(&mut res, name, "", path, 0, http_only, secure);
    }
    Ok(res)
}

/// Who is calling: the signed-in user, or the API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: Option<User>,
    pub api_key: Option<KeyIdentity>,
}

/// The identity of an API key caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyIdentity {
    pub id: String,
    pub workspace_id: String,
    pub role: Role,
}

/// The caller's identity.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(app): State<App>, Actor(who): Actor) -> ApiResult<Json<Me>> {
    match who {
        Principal::User { id, .. } => {
            let user = app.store().user_by_id(&id).await?;
            Ok(Json(Me { user, api_key: None }))
        }
        Principal::ApiKey { id, workspace_id, role, .. } => {
            Ok(Json(Me { user: None, api_key: Some(KeyIdentity { id, workspace_id, role }) }))
        }
        _ => Err(quire_core::Error::Forbidden("Quire itself has no identity to show".into()).into()),
    }
}

/// Every account (instance administrators only).
#[utoipa::path(get, path = "/api/v1/users", tag = "auth",
    responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
pub async fn list_users(State(app): State<App>, Actor(who): Actor) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(app.store().list_users(&who).await?))
}

/// The sessions a revocation ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub sessions: Vec<String>,
}

/// End every session of a user at once (your own, or anyone's for an administrator).
#[utoipa::path(post, path = "/api/v1/users/{id}/revoke-sessions", tag = "auth",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody)))]
pub async fn revoke_sessions(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    Ok(Json(Revoked { sessions: app.auth().revoke_user(&who, &id).await? }))
}

/// Your signed-in sessions (browsers and devices), newest first; `current` is this one.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "auth",
    responses((status = 200, body = Vec<quire_core::SessionInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn my_sessions(State(app): State<App>, Actor(who): Actor) -> ApiResult<Json<Vec<quire_core::SessionInfo>>> {
    Ok(Json(app.store().list_sessions(&who).await?))
}

/// Sign out one of your sessions (another browser, a lost laptop): its tokens stop working
/// everywhere at once.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "auth",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn end_session(
    State(app): State<App>,
    Actor(who): Actor,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    app.auth().revoke_session(&who, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A configured sign-in provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct Provider {
    /// `oidc` or `github`.
    pub id: String,
    pub name: String,
    /// Send the browser here to sign in (append `?redirect=/path` to land somewhere).
    pub start_url: String,
}

/// The single sign-on providers this instance offers.
#[utoipa::path(get, path = "/api/v1/auth/sso", tag = "auth", responses((status = 200, body = Vec<Provider>)))]
pub async fn sso_providers(State(app): State<App>) -> Json<Vec<Provider>> {
    Json(
        app.auth()
            .sso_providers()
            .into_iter()
            .map(|(id, name)| Provider { id: id.into(), name, start_url: format!("/api/v1/auth/sso/{id}/start") })
            .collect(),
    )
}

/// Query of `GET …/start`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SsoStart {
    /// A path in Quire to land on after signing in (default `/`).
    redirect: Option<String>,
}

fn see_other(location: &str) -> ApiResult<Response> {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let value = HeaderValue::from_str(location).map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the redirect is not a valid header")
    })?;
    res.headers_mut().insert(header::LOCATION, value);
    Ok(res)
}

/// Begin signing in with a provider: redirects the browser to it.
#[utoipa::path(get, path = "/api/v1/auth/sso/{provider}/start", tag = "auth",
    params(("provider" = String, Path, description = "oidc or github"), SsoStart),
    responses((status = 303, description = "To the provider"), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sso_start(
    State(app): State<App>,
    Path(provider): Path<String>,
    crate::extract::Query(q): crate::extract::Query<SsoStart>,
) -> ApiResult<Response> {
    let started = app.auth().sso_start(&provider, q.redirect.as_deref().unwrap_or("/")).await?;
    let mut res = see_other(&started.url)?;
    // The state is bound to this browser: the callback must come back with this cookie.
    let max_age = started.max_age.as_secs();
    set_cookie(&mut res, SSO_STATE_COOKIE, &started.state, SSO_PATH, max_age, true, app.config().cookie_secure);
    Ok(res)
}

/// The cookie binding a single sign-on in progress to the browser that started it.
pub const SSO_STATE_COOKIE: &str = "quire_sso_state";
const SSO_PATH: &str = "/api/v1/auth/sso";

/// Query of the provider's callback.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SsoCallback {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the user declined or it failed.
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider returns the browser: signs in (a cookie session) and redirects to
/// where the sign-in started.
#[utoipa::path(get, path = "/api/v1/auth/sso/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "oidc or github"), SsoCallback),
    responses((status = 303, description = "Signed in; to the page the sign-in started from"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sso_callback(
    State(app): State<App>,
    Path(provider): Path<String>,
    Client(client): Client,
    headers: axum::http::HeaderMap,
    crate::extract::Query(q): crate::extract::Query<SsoCallback>,
) -> ApiResult<Response> {
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            format!("the provider did not sign you in: {error} {detail}").trim().to_string(),
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "the callback needs code and state"));
    };
    let browser_state = crate::extract::cookie(&headers, SSO_STATE_COOKIE);
    let (signed, redirect) = app.auth().sso_finish(&provider, &code, &state, browser_state, &client).await?;
    let mut res = signed_in(&app, signed, true, StatusCode::SEE_OTHER);
    set_cookie(&mut res, SSO_STATE_COOKIE, "", SSO_PATH, 0, true, app.config().cookie_secure);
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&redirect).unwrap_or(HeaderValue::from_static("/")));
    Ok(res)
}
