//! Single sign-on against local fake providers that speak the real protocols: an OpenID
//! Connect provider (discovery document, JWKS, ES256-signed ID tokens, PKCE-checking token
//! endpoint) and GitHub (OAuth token endpoint, `/user`, `/user/emails`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Api, Reply, assert_error};
use quire_auth::AuthConfig;
use quire_auth::sso::{GithubConfig, OidcConfig, SsoConfig};
use quire_store::StoreOptions;
use quire_store::testing::Backend;
use serde_json::{Value, json};

const CLIENT_ID: &str = "quire-test";
const CLIENT_SECRET: &str = "s3cret";

/// A sign-in the fake provider has agreed to: what the token endpoint must see, and what it
/// then tells about the user.
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: String,
    claims: Value,
}

struct Fake {
    base: String,
    grants: Mutex<HashMap<String, Grant>>,
    key: jsonwebtoken::EncodingKey,
    kid: String,
    jwk: Value,
}

type Shared = Arc<Fake>;

fn es256_key() -> (jsonwebtoken::EncodingKey, Value) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec(); // 0x04 || X || Y
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    (jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

fn check_pkce(verifier: &str, challenge: &str) -> bool {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes())) == challenge
}

fn basic_ok(headers: &HeaderMap) -> bool {
    let want = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    headers.get(header::AUTHORIZATION).is_some_and(|v| v == want.as_str())
}

async fn discovery(State(f): State<Shared>) -> Json<Value> {
    Json(json!({
        "issuer": f.base,
        "authorization_endpoint": format!("{}/authorize", f.base),
        "token_endpoint": format!("{}/token", f.base),
        "jwks_uri": format!("{}/jwks", f.base),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(f): State<Shared>) -> Json<Value> {
    let mut jwk = f.jwk.clone();
    jwk["kid"] = json!(f.kid);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    Json(json!({"keys": [jwk]}))
}

async fn oidc_token(
    State(f): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let refuse = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e})));
    if !basic_ok(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"})));
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let Some(grant) = f.grants.lock().unwrap().remove(form.get("code").map(String::as_str).unwrap_or("")) else {
        return refuse("invalid_grant");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri)
        || !check_pkce(form.get("code_verifier").map(String::as_str).unwrap_or(""), &grant.challenge)
    {
        return refuse("invalid_grant");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({"iss": f.base, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant.nonce});
    for (k, v) in grant.claims.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(claims.get("kid_override").and_then(|v| v.as_str()).unwrap_or(&f.kid).to_string());
    let id_token = jsonwebtoken::encode(&header, &claims, &f.key).unwrap();
    (
        StatusCode::OK,
        Json(json!({"access_token": "at-oidc", "token_type": "Bearer", "expires_in": 300, "id_token": id_token})),
    )
}

async fn github_token(State(f): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Json<Value> {
    // GitHub answers errors with 200 and an error field.
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return Json(json!({"error": "incorrect_client_credentials"}));
    }
    let Some(grant) = f.grants.lock().unwrap().remove(form.get("code").map(String::as_str).unwrap_or("")) else {
        return Json(
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}),
        );
    };
    if !check_pkce(form.get("code_verifier").map(String::as_str).unwrap_or(""), &grant.challenge) {
        return Json(json!({"error": "bad_verification_code"}));
    }
    let token = format!("gho_{}", grant.claims["id"]);
    f.grants.lock().unwrap().insert(token.clone(), grant);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
}

fn github_user(f: &Fake, headers: &HeaderMap) -> Option<Value> {
    let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
    f.grants.lock().unwrap().get(token).map(|g| g.claims.clone())
}

async fn github_me(State(f): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    match github_user(&f, &headers) {
        Some(u) => (StatusCode::OK, Json(json!({"id": u["id"], "login": u["login"], "name": u["name"]}))),
        None => (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"}))),
    }
}

async fn github_emails(State(f): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    match github_user(&f, &headers) {
        Some(u) => (StatusCode::OK, Json(u["emails"].clone())),
        None => (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"}))),
    }
}

/// Starts both fake providers on one local port.
async fn start_fake() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (key, jwk) = es256_key();
    let fake = Arc::new(Fake { base, grants: Mutex::new(HashMap::new()), key, kid: "key-1".into(), jwk });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(oidc_token))
        .route("/login/oauth/access_token", post(github_token))
        .route("/api/user", get(github_me))
        .route("/api/user/emails", get(github_emails))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

/// Plays the user agreeing at the provider: reads the authorization URL Quire sent the
/// browser to, registers a code for it, and returns Quire's callback path.
fn consent(fake: &Fake, authorize_url: &str, claims: Value) -> String {
    let url = reqwest_free_parse(authorize_url);
    assert_eq!(url["client_id"], CLIENT_ID);
    assert_eq!(url["response_type"], "code");
    assert_eq!(url["code_challenge_method"], "S256");
    let code = format!("code-{}", fake.grants.lock().unwrap().len());
    let grant = Grant {
        challenge: url["code_challenge"].clone(),
        redirect_uri: url["redirect_uri"].clone(),
        nonce: url["nonce"].clone(),
        claims,
    };
    fake.grants.lock().unwrap().insert(code.clone(), grant);
    let callback = url["redirect_uri"].split_once("127.0.0.1:7420").map(|(_, p)| p.to_string()).unwrap();
    format!("{callback}?code={code}&state={}", url["state"])
}

/// The query of a URL as a map (values percent-decoded).
fn reqwest_free_parse(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() + 1 => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

async fn api_with(b: Backend, fake: &Fake) -> Api {
    let sso = SsoConfig {
        public_url: "http://127.0.0.1:7420".into(),
        oidc: Some(OidcConfig {
            issuer: fake.base.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            name: "Company SSO".into(),
        }),
        github: Some(GithubConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            web_url: fake.base.clone(),
            api_url: format!("{}/api", fake.base),
        }),
    };
    Api::with_auth(b, StoreOptions::default(), common::relaxed(), AuthConfig { sso, ..AuthConfig::default() }).await
}

/// The cookies the browser of these tests was given when it started each sign-in, by the
/// sign-in's state: a callback carries the one its own start set, as a browser's would.
static BROWSER: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Starts a sign-in and returns the provider URL Quire redirected to.
async fn start(api: &Api, provider: &str, redirect: &str) -> String {
    let r = api
        .call_as(None, Method::GET, &format!("/api/v1/auth/sso/{provider}/start?redirect={redirect}"), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let to = r.headers[header::LOCATION].to_str().unwrap().to_string();
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("Path=/api/v1/auth/sso"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    BROWSER.lock().unwrap().push((reqwest_free_parse(&to)["state"].clone(), cookie));
    to
}

/// The provider sends the browser back to Quire, with the cookie its start set.
async fn callback(api: &Api, path: &str) -> Reply {
    let state =
        path.split_once('?').map(|(_, q)| reqwest_free_parse(&format!("x?{q}"))).and_then(|q| q.get("state").cloned());
    let cookie = state.and_then(|s| BROWSER.lock().unwrap().iter().find(|(st, _)| *st == s).map(|(_, c)| c.clone()));
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    api.send(req.body(axum::body::Body::empty()).unwrap()).await
}

/// The same callback arriving in a browser that did not start the sign-in.
async fn callback_elsewhere(api: &Api, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    api.send(req.body(axum::body::Body::empty()).unwrap()).await
}

/// The user id a callback's session cookie belongs to.
async fn who(api: &Api, r: &Reply) -> String {
    let cookie = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .find_map(|v| {
            v.to_str()
                .ok()
                .and_then(|c| c.strip_prefix("quire_access="))
                .map(|c| c.split(';').next().unwrap().to_string())
        })
        .expect("a session cookie");
    let me = api
        .send(
            Request::get("/api/v1/me")
                .header(header::COOKIE, format!("quire_access={cookie}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    me.body["user"]["id"].as_str().unwrap().to_string()
}

quire_store::for_each_backend!(openid_connect_links_by_verified_email, github_signs_in_with_its_primary_verified_email);

async fn openid_connect_links_by_verified_email(b: Backend) {
    let fake = start_fake().await;
    let api = api_with(b, &fake).await;
    let providers = api.call_as(None, Method::GET, "/api/v1/auth/sso", None, &[]).await;
    assert_eq!(
        providers.body,
        json!([
            {"id": "oidc", "name": "Company SSO", "start_url": "/api/v1/auth/sso/oidc/start"},
            {"id": "github", "name": "GitHub", "start_url": "/api/v1/auth/sso/github/start"},
        ])
    );
    let (ada_id, _, _) = api.signup("ada@example.com").await;

    // Ada signs in through the provider: linked to her account by verified email.
    let to = start(&api, "oidc", "/documents").await;
    assert!(to.starts_with(&format!("{}/authorize?", fake.base)));
    let back = callback(
        &api,
        &consent(
            &fake,
            &to,
            json!({"sub": "kc-ada", "email": "Ada@Example.com", "email_verified": true, "name": "Ada"}),
        ),
    )
    .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.headers[header::LOCATION], "/documents");
    assert_eq!(who(&api, &back).await, ada_id);
    // The same subject again, whatever email it now shows, is the same account.
    let to = start(&api, "oidc", "/").await;
    let again = callback(
        &api,
        &consent(&fake, &to, json!({"sub": "kc-ada", "email": "ada@new.example", "email_verified": true})),
    )
    .await;
    assert_eq!(who(&api, &again).await, ada_id);
    // A newcomer gets an account.
    let to = start(&api, "oidc", "//evil.example").await;
    let new = callback(
        &api,
        &consent(
            &fake,
            &to,
            json!({"sub": "kc-bo", "email": "bo@example.com", "email_verified": "true", "name": "Bo"}),
        ),
    )
    .await;
    assert_eq!(new.headers[header::LOCATION], "/", "only paths inside Quire");
    assert_ne!(who(&api, &new).await, ada_id);
    // Paths a browser would read as another site land on / too.
    for evil in ["/%5Cevil.example", "/%09/evil.example", "/%0A/evil.example"] {
        let to = start(&api, "oidc", evil).await;
        let back = callback(
            &api,
            &consent(&fake, &to, json!({"sub": "kc-ada", "email": "ada@example.com", "email_verified": true})),
        )
        .await;
        assert_eq!(back.headers[header::LOCATION], "/", "{evil}");
    }
    // A callback opened in a browser that did not start the sign-in (an attacker's own
    // sign-in, sent to a victim) is refused, with another sign-in's cookie too.
    let to = start(&api, "oidc", "/").await;
    let path = consent(&fake, &to, json!({"sub": "kc-mallory", "email": "m@example.com", "email_verified": true}));
    assert_error(&callback_elsewhere(&api, &path, None).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let other = start(&api, "oidc", "/").await;
    let other_cookie = format!("quire_sso_state={}", reqwest_free_parse(&other)["state"]);
    let crossed = callback_elsewhere(&api, &path, Some(&other_cookie)).await;
    assert_error(&crossed, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(
        crossed.headers.get_all(header::SET_COOKIE).iter().all(|c| !c.to_str().unwrap().starts_with("quire_access="))
    );
    // The browser that started it still finishes it, and its state cookie is cleared.
    let done = callback(&api, &path).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(
        done.headers.get_all(header::SET_COOKIE).iter().any(|c| c.to_str().unwrap().starts_with("quire_sso_state=;"))
    );

    // Refusals.
    let to = start(&api, "oidc", "/").await;
    let unverified = callback(
        &api,
        &consent(&fake, &to, json!({"sub": "kc-eve", "email": "ada@example.com", "email_verified": false})),
    )
    .await;
    assert_error(&unverified, StatusCode::FORBIDDEN, "forbidden");
    let to = start(&api, "oidc", "/").await;
    let path = consent(&fake, &to, json!({"sub": "kc-ada", "email": "ada@example.com", "email_verified": true}));
    assert_eq!(callback(&api, &path).await.status, StatusCode::SEE_OTHER);
    assert_error(&callback(&api, &path).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let to = start(&api, "oidc", "/").await;
    let forged = callback(
        &api,
        &consent(
            &fake,
            &to,
            json!({"sub": "kc-x", "email": "x@example.com", "email_verified": true, "nonce": "another sign-in"}),
        ),
    )
    .await;
    assert_error(&forged, StatusCode::UNAUTHORIZED, "unauthenticated");
    let to = start(&api, "oidc", "/").await;
    let wrong_aud = callback(
        &api,
        &consent(
            &fake,
            &to,
            json!({"sub": "kc-x", "email": "x@example.com", "email_verified": true, "aud": "someone-else"}),
        ),
    )
    .await;
    assert_error(&wrong_aud, StatusCode::UNAUTHORIZED, "unauthenticated");
    let to = start(&api, "oidc", "/").await;
    let unknown_key = callback(
        &api,
        &consent(
            &fake,
            &to,
            json!({"sub": "kc-x", "email": "x@example.com", "email_verified": true, "kid_override": "key-9"}),
        ),
    )
    .await;
    assert_error(&unknown_key, StatusCode::UNAUTHORIZED, "unauthenticated");
    let declined =
        callback(&api, "/api/v1/auth/sso/oidc/callback?error=access_denied&error_description=User%20said%20no").await;
    assert_error(&declined, StatusCode::UNAUTHORIZED, "unauthenticated");
    let unknown = api.call_as(None, Method::GET, "/api/v1/auth/sso/myspace/start", None, &[]).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
}

async fn github_signs_in_with_its_primary_verified_email(b: Backend) {
    let fake = start_fake().await;
    let api = api_with(b, &fake).await;
    let (ada_id, _, _) = api.signup("ada@example.com").await;
    let to = start(&api, "github", "/").await;
    assert!(to.starts_with(&format!("{}/login/oauth/authorize?", fake.base)));
    assert_eq!(reqwest_free_parse(&to)["scope"], "read:user user:email");
    let emails = json!([
        {"email": "old@example.com", "primary": false, "verified": true},
        {"email": "ada@example.com", "primary": true, "verified": true},
    ]);
    let back =
        callback(&api, &consent(&fake, &to, json!({"id": 4242, "login": "ada", "name": "Ada", "emails": emails})))
            .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(who(&api, &back).await, ada_id);
    let to = start(&api, "github", "/").await;
    let none = json!([{"email": "ghost@example.com", "primary": true, "verified": false}]);
    let refused =
        callback(&api, &consent(&fake, &to, json!({"id": 7, "login": "ghost", "name": null, "emails": none}))).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    // A bad code is GitHub's error, reported as a refused sign-in.
    let to = start(&api, "github", "/").await;
    let state = reqwest_free_parse(&to)["state"].clone();
    let bad = callback(&api, &format!("/api/v1/auth/sso/github/callback?code=nope&state={state}")).await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("bad_verification_code"));
}
