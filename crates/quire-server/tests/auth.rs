//! Identity over HTTP: sign-up, sign-in, refresh, sign-out, cookies, invitations, API keys,
//! and a table of every route against every kind of caller.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Api, Reply, assert_error};
use quire_auth::{AuthConfig, SignupMode};
use quire_store::StoreOptions;
use quire_store::testing::Backend;
use serde_json::{Value, json};

quire_store::for_each_backend!(
    sign_in_refresh_and_sign_out,
    guessing_is_throttled,
    guessing_from_elsewhere_cannot_lock_the_owner_out,
    signing_up_cannot_list_accounts,
    cookie_sessions_need_the_csrf_token,
    invite_only_signup,
    api_keys_act_for_programs,
    api_keys_follow_their_creator,
    every_route_against_every_caller,
    people_see_and_end_their_own_sessions,
    preferences_follow_a_person_and_are_bounded,
);

async fn preferences_follow_a_person_and_are_bounded(b: Backend) {
    let api = Api::new(b).await;
    let (_, ada, _) = api.signup("ada@example.com").await;
    let (_, bo, _) = api.signup("bo@example.com").await;
    let uri = "/api/v1/me/preferences/config-layout";
    let r = api.call_as(Some(&ada), Method::GET, uri, None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let layout = json!({"layout": {"type": "row", "children": []}, "v": 1});
    let r = api.call_as(Some(&ada), Method::PUT, uri, Some(layout.clone()), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api.call_as(Some(&ada), Method::GET, uri, None, &[]).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &layout));
    let r = api.call_as(Some(&bo), Method::GET, uri, None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // Bad keys, large values, anonymous callers.
    let r = api.call_as(Some(&ada), Method::PUT, "/api/v1/me/preferences/Config%20Layout", Some(json!(1)), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let big = json!("x".repeat(40 * 1024));
    let r = api.call_as(Some(&ada), Method::PUT, uri, Some(big), &[]).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let r = api.call_as(None, Method::GET, uri, None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // At most 100 keys.
    for i in 1..100 {
        let r =
            api.call_as(Some(&ada), Method::PUT, &format!("/api/v1/me/preferences/k{i}"), Some(json!(i)), &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{i}");
    }
    let r = api.call_as(Some(&ada), Method::PUT, "/api/v1/me/preferences/k100", Some(json!(1)), &[]).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded");
    let r = api.call_as(Some(&ada), Method::DELETE, uri, None, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.call_as(Some(&ada), Method::DELETE, uri, None, &[]).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

async fn people_see_and_end_their_own_sessions(b: Backend) {
    let api = Api::new(b).await;
    api.signup("ada@example.com").await;
    let login = json!({"email": "ada@example.com", "password": "correct horse battery"});
    let sign_in = |agent: &'static str| {
        let login = login.clone();
        let api = &api;
        async move {
            let r = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login), &[("user-agent", agent)]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["access_token"].as_str().unwrap().to_string()
        }
    };
    let laptop = sign_in("Laptop browser").await;
    let phone = sign_in("Phone browser").await;
    let mine = api.call_as(Some(&laptop), Method::GET, "/api/v1/me/sessions", None, &[]).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let sessions = mine.body.as_array().unwrap();
    assert_eq!(sessions.len(), 3, "the sign-up's, the laptop's and the phone's: {}", mine.body);
    let agent = |s: &Value| s["user_agent"].as_str().unwrap_or_default().to_string();
    let current: Vec<String> = sessions.iter().filter(|s| s["current"] == true).map(agent).collect();
    assert_eq!(current, ["Laptop browser"]);
    let phone_session =
        sessions.iter().find(|s| agent(s) == "Phone browser").unwrap()["id"].as_str().unwrap().to_string();
    // Nobody else sees them or ends them.
    let (_, grace, _) = api.signup("grace@example.com").await;
    let theirs = api.call_as(Some(&grace), Method::GET, "/api/v1/me/sessions", None, &[]).await;
    assert_eq!(theirs.body.as_array().map(Vec::len), Some(1), "{}", theirs.body);
    let path = format!("/api/v1/me/sessions/{phone_session}");
    assert_error(
        &api.call_as(Some(&grace), Method::DELETE, &path, None, &[]).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(api.call_as(Some(&phone), Method::GET, "/api/v1/me", None, &[]).await.status, StatusCode::OK);
    // Ending the phone's session stops its token at once; the laptop goes on.
    let ended = api.call_as(Some(&laptop), Method::DELETE, &path, None, &[]).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    assert_error(
        &api.call_as(Some(&phone), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_eq!(api.call_as(Some(&laptop), Method::GET, "/api/v1/me", None, &[]).await.status, StatusCode::OK);
    let left = api.call_as(Some(&laptop), Method::GET, "/api/v1/me/sessions", None, &[]).await;
    assert_eq!(left.body.as_array().map(Vec::len), Some(2), "{}", left.body);
}

async fn sign_in_refresh_and_sign_out(b: Backend) {
    let api = Api::new(b).await;
    // No credentials: 401 with a challenge; a garbled one: invalid_token.
    let anon = api.call_as(None, Method::GET, "/api/v1/workspaces", None, &[]).await;
    assert_error(&anon, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(anon.headers[header::WWW_AUTHENTICATE], "Bearer realm=\"quire\"");
    let bad = api.call_as(Some("not.a.token"), Method::GET, "/api/v1/workspaces", None, &[]).await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(bad.headers[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));

    let (id, access, refresh) = api.signup("ada@example.com").await;
    let me = api.call_as(Some(&access), Method::GET, "/api/v1/me", None, &[]).await;
    assert_eq!((me.status, me.body["user"]["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    assert_eq!(me.body["user"]["admin"], false, "only the first account is the administrator");
    let dup = api
        .call_as(
            None,
            Method::POST,
            "/api/v1/auth/signup",
            Some(json!({"email": "ADA@example.com", "password": "another password", "name": "A"})),
            &[],
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let weak = api
        .call_as(
            None,
            Method::POST,
            "/api/v1/auth/signup",
            Some(json!({"email": "bo@example.com", "password": "short", "name": "B"})),
            &[],
        )
        .await;
    assert_error(&weak, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_eq!(weak.body["error"]["field"], "password");

    let login = |password: &str| json!({"email": "ada@example.com", "password": password});
    let wrong = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login("wrong password")), &[]).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthenticated");
    let unknown = api
        .call_as(
            None,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "nobody@example.com", "password": "whatever it is"})),
            &[],
        )
        .await;
    assert_eq!(unknown.body["error"]["message"], wrong.body["error"]["message"], "no hint whether the account exists");
    let ok = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login("correct horse battery")), &[]).await;
    assert_eq!((ok.status, ok.body["token_type"].as_str()), (StatusCode::OK, Some("Bearer")));
    assert_eq!(ok.headers[header::CACHE_CONTROL], "no-store");

    // Refresh rotates: the new pair works, the old refresh token is spent.
    let refresh_with = |t: &str| json!({"refresh_token": t});
    let r1 = api.call_as(None, Method::POST, "/api/v1/auth/refresh", Some(refresh_with(&refresh)), &[]).await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.body);
    let (access2, refresh2) =
        (r1.body["access_token"].as_str().unwrap().to_string(), r1.body["refresh_token"].as_str().unwrap().to_string());
    assert_ne!(refresh2, refresh);
    assert_eq!(api.call_as(Some(&access2), Method::GET, "/api/v1/me", None, &[]).await.status, StatusCode::OK);
    // Replaying the spent token ends the session: even the fresh access token stops at once.
    let replay = api.call_as(None, Method::POST, "/api/v1/auth/refresh", Some(refresh_with(&refresh)), &[]).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_error(
        &api.call_as(Some(&access2), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_error(
        &api.call_as(Some(&access), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let again = api.call_as(None, Method::POST, "/api/v1/auth/refresh", Some(refresh_with(&refresh2)), &[]).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Signing out ends that session only.
    let s1 = ok.body["access_token"].as_str().unwrap().to_string();
    let other = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login("correct horse battery")), &[]).await;
    let s2 = other.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        api.call_as(Some(&s1), Method::POST, "/api/v1/auth/logout", None, &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &api.call_as(Some(&s1), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_eq!(api.call_as(Some(&s2), Method::GET, "/api/v1/me", None, &[]).await.status, StatusCode::OK);
    // An administrator ends every session of an account.
    let revoked = api.post(&format!("/api/v1/users/{id}/revoke-sessions"), json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(!revoked.body["sessions"].as_array().unwrap().is_empty());
    assert_error(
        &api.call_as(Some(&s2), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
}

async fn guessing_is_throttled(b: Backend) {
    let api = Api::new(b).await;
    api.signup("ada@example.com").await;
    let guess = json!({"email": "ada@example.com", "password": "not the password"});
    for _ in 0..5 {
        let r = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(guess.clone()), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let limited = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(guess), &[]).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = limited.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // Even the right password waits out the lockout.
    let right = json!({"email": "ada@example.com", "password": "correct horse battery"});
    assert_eq!(
        api.call_as(None, Method::POST, "/api/v1/auth/login", Some(right), &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn guessing_from_elsewhere_cannot_lock_the_owner_out(b: Backend) {
    let config = quire_server::ServerConfig { trusted_proxies: 1, ..common::relaxed() };
    let api = Api::with(b, StoreOptions::default(), config).await;
    let login = |password: &str| json!({"email": "ada@example.com", "password": password});
    let post = |body: Value, ip: String| {
        let api = &api;
        async move {
            let headers = [("x-forwarded-for", ip.as_str())];
            api.call_as(None, Method::POST, "/api/v1/auth/login", Some(body), &headers).await.status.as_u16()
        }
    };
    let signup = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"});
    let home = [("x-forwarded-for", "198.51.100.7")];
    let r = api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(signup), &home).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Fifty wrong guesses from ten addresses: each address is stopped after five.
    for i in 1..=10 {
        let ip = format!("203.0.113.{i}");
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(post(login("not the password"), ip.clone()).await);
        }
        assert_eq!(seen, [401, 401, 401, 401, 401, 429], "from {ip}");
    }
    // The owner, from where she has signed in before, is not locked out.
    assert_eq!(post(login("correct horse battery"), "198.51.100.7".into()).await, 200);
    // A new address waits: the account as a whole has seen too many wrong guesses.
    assert_eq!(post(login("correct horse battery"), "192.0.2.1".into()).await, 429);
}

async fn signing_up_cannot_list_accounts(b: Backend) {
    let api = Api::new(b).await;
    for i in 0..3 {
        api.signup(&format!("user{i}@example.com")).await;
    }
    let attempt = |email: String| {
        let api = &api;
        async move {
            let body = json!({"email": email, "password": "correct horse battery", "name": "Probe"});
            api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(body), &[]).await
        }
    };
    // Five answers that an email is taken, then the address waits, whatever it asks next.
    for i in 0..5 {
        assert_error(&attempt(format!("user{}@example.com", i % 3)).await, StatusCode::CONFLICT, "conflict");
    }
    let limited = attempt("user0@example.com".into()).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    assert_error(&attempt("nobody@example.com".into()).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

fn cookies(r: &Reply) -> Vec<String> {
    r.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

fn cookie_value(set: &[String], name: &str) -> String {
    set.iter().find_map(|c| c.strip_prefix(&format!("{name}="))).and_then(|c| c.split(';').next()).unwrap().to_string()
}

async fn cookie_sessions_need_the_csrf_token(b: Backend) {
    let api = Api::new(b).await;
    api.signup("ada@example.com").await;
    let login = json!({"email": "ada@example.com", "password": "correct horse battery", "cookie": true});
    let r = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("access_token").is_none(), "tokens stay in HttpOnly cookies");
    let set = cookies(&r);
    assert!(set.iter().any(|c| c.starts_with("quire_access=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")));
    assert!(
        set.iter()
            .any(|c| c.starts_with("quire_refresh=") && c.contains("Path=/api/v1/auth") && c.contains("HttpOnly"))
    );
    assert!(set.iter().any(|c| c.starts_with("quire_csrf=") && !c.contains("HttpOnly")));
    let csrf = r.body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(cookie_value(&set, "quire_csrf"), csrf);
    let jar = format!(
        "quire_access={}; quire_refresh={}; quire_csrf={}",
        cookie_value(&set, "quire_access"),
        cookie_value(&set, "quire_refresh"),
        csrf
    );
    let with = |method: Method, uri: &str, csrf: Option<&str>| {
        let mut req = Request::builder().method(method).uri(uri).header(header::COOKIE, jar.clone());
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        // Refreshing from the cookie sends no body.
        let body = if uri.ends_with("/refresh") { String::new() } else { json!({"name": "Cookie team"}).to_string() };
        req.header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap()
    };
    let me = api.send(with(Method::GET, "/api/v1/me", None)).await;
    assert_eq!(me.status, StatusCode::OK, "reads need no CSRF token");
    let forged = api.send(with(Method::POST, "/api/v1/workspaces", None)).await;
    assert_error(&forged, StatusCode::FORBIDDEN, "csrf_failed");
    let wrong = api.send(with(Method::POST, "/api/v1/workspaces", Some("guess"))).await;
    assert_error(&wrong, StatusCode::FORBIDDEN, "csrf_failed");
    assert_eq!(api.send(with(Method::POST, "/api/v1/workspaces", Some(&csrf))).await.status, StatusCode::CREATED);
    let refreshed = api.send(with(Method::POST, "/api/v1/auth/refresh", Some(&csrf))).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(cookies(&refreshed).iter().any(|c| c.starts_with("quire_access=")));
    let no_csrf = api.send(with(Method::POST, "/api/v1/auth/refresh", None)).await;
    assert_error(&no_csrf, StatusCode::FORBIDDEN, "csrf_failed");
}

async fn invite_only_signup(b: Backend) {
    let auth = AuthConfig { signup: SignupMode::InviteOnly, ..AuthConfig::default() };
    // The first account (the harness's administrator) needs no invitation.
    let api = Api::with_auth(b, StoreOptions::default(), common::relaxed(), auth).await;
    let body = |inv: Option<&str>| json!({"email": "new@example.com", "password": "correct horse battery", "name": "New", "invitation": inv});
    let refused = api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(body(None)), &[]).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let fake = api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(body(Some("qi_fake"))), &[]).await;
    assert_error(&fake, StatusCode::FORBIDDEN, "forbidden");
    let ws = api.get("/api/v1/workspaces").await.body["items"][0]["id"].as_str().unwrap().to_string();
    let inv = api
        .post(&format!("/api/v1/workspaces/{ws}/invitations"), json!({"email": "new@example.com", "role": "editor"}))
        .await;
    assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.body);
    let token = inv.body["token"].as_str().unwrap();
    // Another address cannot take it, and trying leaves no account behind.
    let other =
        json!({"email": "other@example.com", "password": "correct horse battery", "name": "O", "invitation": token});
    let mismatched = api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(other), &[]).await;
    assert_error(&mismatched, StatusCode::FORBIDDEN, "forbidden");
    let login = json!({"email": "other@example.com", "password": "correct horse battery"});
    let no_account = api.call_as(None, Method::POST, "/api/v1/auth/login", Some(login), &[]).await;
    assert_error(&no_account, StatusCode::UNAUTHORIZED, "unauthenticated");
    let joined = api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(body(Some(token))), &[]).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    let access = joined.body["access_token"].as_str().unwrap();
    let mine = api.call_as(Some(access), Method::GET, "/api/v1/workspaces", None, &[]).await;
    assert_eq!(mine.body["items"][0]["id"], json!(ws), "the invitation's workspace is theirs now");
    let members = api.get(&format!("/api/v1/workspaces/{ws}/members")).await;
    assert!(members.body.as_array().unwrap().iter().any(|m| m["email"] == "new@example.com" && m["role"] == "editor"));
    let spent = api.call_as(None, Method::POST, "/api/v1/auth/signup", Some(json!({"email": "x@example.com", "password": "correct horse battery", "name": "X", "invitation": token})), &[]).await;
    assert_error(&spent, StatusCode::FORBIDDEN, "forbidden");
}

async fn api_keys_act_for_programs(b: Backend) {
    let api = Api::new(b).await;
    let ws =
        api.post("/api/v1/workspaces", json!({"name": "Pipelines"})).await.body["id"].as_str().unwrap().to_string();
    api.post("/api/v1/workspaces", json!({"name": "Other"})).await;
    let created = api.post(&format!("/api/v1/workspaces/{ws}/api-keys"), json!({"name": "CI", "role": "editor"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_string();
    let prefix = created.body["api_key"]["prefix"].as_str().unwrap();
    assert!(secret.starts_with(prefix) && prefix.starts_with("qk_"));
    let key_id = created.body["api_key"]["id"].as_str().unwrap().to_string();
    let listed = api.get(&format!("/api/v1/workspaces/{ws}/api-keys")).await;
    assert!(!listed.body.to_string().contains(&secret), "the secret is never shown again");

    let me = api.call_as(Some(&secret), Method::GET, "/api/v1/me", None, &[]).await;
    assert_eq!(
        (me.body["api_key"]["workspace_id"].as_str(), me.body["api_key"]["role"].as_str()),
        (Some(ws.as_str()), Some("editor"))
    );
    let seen = api.call_as(Some(&secret), Method::GET, "/api/v1/workspaces", None, &[]).await;
    assert_eq!(seen.body["items"].as_array().unwrap().len(), 1, "a key sees its workspace only");
    let doc = api
        .call_as(
            Some(&secret),
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/documents"),
            Some(json!({"kind": "prd", "title": "From CI"})),
            &[],
        )
        .await;
    assert_eq!(doc.status, StatusCode::CREATED);
    let nope = api.call_as(Some(&secret), Method::POST, "/api/v1/workspaces", Some(json!({"name": "Mine"})), &[]).await;
    assert_error(&nope, StatusCode::FORBIDDEN, "forbidden");
    let listed = api.get(&format!("/api/v1/workspaces/{ws}/api-keys")).await;
    assert!(listed.body[0]["last_used_at"].is_string(), "last use is recorded");

    let tampered = format!("{}x", &secret[..secret.len() - 1]);
    assert_error(
        &api.call_as(Some(&tampered), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let revoked = api.call(Method::DELETE, &format!("/api/v1/workspaces/{ws}/api-keys/{key_id}"), None, &[]).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_error(
        &api.call_as(Some(&secret), Method::GET, "/api/v1/me", None, &[]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
}

/// A key acts for the member who made it: with no more than their role today, and not at
/// all once they have left the workspace.
async fn api_keys_follow_their_creator(b: Backend) {
    let api = Api::new(b).await;
    let ws = api.post("/api/v1/workspaces", json!({"name": "Team"})).await.body["id"].as_str().unwrap().to_string();
    let (bob_id, bob, _) = api.signup("bob@example.com").await;
    let member = format!("/api/v1/workspaces/{ws}/members/{bob_id}");
    assert_eq!(api.call(Method::PUT, &member, Some(json!({"role": "admin"})), &[]).await.status, StatusCode::OK);
    let created = api
        .call_as(
            Some(&bob),
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/api-keys"),
            Some(json!({"name": "Bob's CI", "role": "editor"})),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["secret"].as_str().unwrap().to_string();
    let write = |title: &'static str| {
        let (api, key, ws) = (&api, key.clone(), ws.clone());
        async move {
            let body = json!({"kind": "prd", "title": title});
            api.call_as(Some(&key), Method::POST, &format!("/api/v1/workspaces/{ws}/documents"), Some(body), &[]).await
        }
    };
    assert_eq!(write("As editor").await.status, StatusCode::CREATED);

    // Bob becomes a viewer: his key may read, not write.
    assert_eq!(api.call(Method::PUT, &member, Some(json!({"role": "viewer"})), &[]).await.status, StatusCode::OK);
    let me = api.call_as(Some(&key), Method::GET, "/api/v1/me", None, &[]).await;
    assert_eq!(me.body["api_key"]["role"], "viewer", "{}", me.body);
    assert_error(&write("As viewer").await, StatusCode::FORBIDDEN, "forbidden");

    // Bob leaves: the key stops.
    assert_eq!(api.call(Method::DELETE, &member, None, &[]).await.status, StatusCode::NO_CONTENT);
    let gone = api.call_as(Some(&key), Method::GET, "/api/v1/me", None, &[]).await;
    assert_error(&gone, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(gone.body["error"]["message"].as_str().unwrap().contains("no longer a member"), "{}", gone.body);
}

/// A route, its body and extra header, and the status each caller gets (in `callers` order).
type Row<'a> = (Method, String, Option<Value>, Option<(&'a str, &'a str)>, [u16; 9]);

/// Each route, as each kind of caller, against a workspace they are in (or not) and a
/// workspace that is none of theirs. Destructive routes are probed with a stale `If-Match`,
/// so a caller who may act gets 412 and nothing changes.
async fn every_route_against_every_caller(b: Backend) {
    let api = Api::new(b).await;
    let (_, owner, _) = api.signup("owner@example.com").await;
    let ws = api
        .call_as(Some(&owner), Method::POST, "/api/v1/workspaces", Some(json!({"name": "Alpha"})), &[])
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = api
        .call_as(
            Some(&owner),
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/documents"),
            Some(json!({"kind": "prd", "title": "Spec"})),
            &[],
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, stranger, _) = api.signup("stranger@example.com").await;
    let other_ws =
        api.call_as(Some(&stranger), Method::POST, "/api/v1/workspaces", Some(json!({"name": "Beta"})), &[]).await.body
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let other_doc = api
        .call_as(
            Some(&stranger),
            Method::POST,
            &format!("/api/v1/workspaces/{other_ws}/documents"),
            Some(json!({"kind": "prd", "title": "Theirs"})),
            &[],
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut callers: Vec<(&str, Option<String>)> = vec![("owner", Some(owner.clone()))];
    for (name, role) in [("admin", "admin"), ("editor", "editor"), ("viewer", "viewer")] {
        let (id, token, _) = api.signup(&format!("ws-{name}@example.com")).await;
        let r = api
            .call_as(
                Some(&owner),
                Method::PUT,
                &format!("/api/v1/workspaces/{ws}/members/{id}"),
                Some(json!({"role": role})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        callers.push((name, Some(token)));
    }
    let (_, outsider, _) = api.signup("outsider@example.com").await;
    callers.push(("outsider", Some(outsider)));
    let (_, guest, _) = api.signup("guest@example.com").await;
    let shared = api
        .call_as(
            Some(&owner),
            Method::PUT,
            &format!("/api/v1/documents/{doc}/shares"),
            Some(json!({"email": "guest@example.com", "role": "viewer"})),
            &[],
        )
        .await;
    assert_eq!(shared.status, StatusCode::OK, "{}", shared.body);
    callers.push(("share viewer", Some(guest)));
    for role in ["editor", "viewer"] {
        let k = api
            .call_as(
                Some(&owner),
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/api-keys"),
                Some(json!({"name": role, "role": role})),
                &[],
            )
            .await;
        callers.push((
            if role == "editor" { "key editor" } else { "key viewer" },
            Some(k.body["secret"].as_str().unwrap().to_string()),
        ));
    }
    callers.push(("anonymous", None));

    let stale = ("if-match", "\"r0\"");
    let rows: Vec<Row> = vec![
        //                                                                    owner admin editor viewer outsider share keyE keyV anon
        (Method::GET, format!("/api/v1/workspaces/{ws}"), None, None, [200, 200, 200, 200, 404, 404, 200, 200, 401]),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}"),
            Some(json!({"description": "x"})),
            None,
            [200, 200, 403, 403, 404, 404, 403, 403, 401],
        ),
        (
            Method::DELETE,
            format!("/api/v1/workspaces/{ws}"),
            None,
            Some(stale),
            [412, 403, 403, 403, 404, 404, 403, 403, 401],
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/restore"),
            Some(json!({})),
            None,
            [200, 403, 403, 403, 404, 404, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/documents"),
            None,
            None,
            [200, 200, 200, 200, 404, 404, 200, 200, 401],
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/documents"),
            Some(json!({"kind": "prd", "title": "New"})),
            None,
            [201, 201, 201, 403, 404, 404, 201, 403, 401],
        ),
        (Method::GET, format!("/api/v1/documents/{doc}"), None, None, [200, 200, 200, 200, 404, 200, 200, 200, 401]),
        (
            Method::PATCH,
            format!("/api/v1/documents/{doc}"),
            Some(json!({"metadata": {"k": 1}})),
            None,
            [200, 200, 200, 403, 404, 403, 200, 403, 401],
        ),
        (
            Method::DELETE,
            format!("/api/v1/documents/{doc}"),
            None,
            Some(stale),
            [412, 412, 412, 403, 404, 403, 412, 403, 401],
        ),
        (
            Method::POST,
            format!("/api/v1/documents/{doc}/restore"),
            Some(json!({})),
            None,
            [200, 200, 200, 403, 404, 403, 200, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/documents/{doc}/shares"),
            None,
            None,
            [200, 200, 200, 403, 404, 403, 200, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/members"),
            None,
            None,
            [200, 200, 200, 200, 404, 404, 200, 200, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/invitations"),
            None,
            None,
            [200, 200, 403, 403, 404, 404, 403, 403, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/api-keys"),
            None,
            None,
            [200, 200, 403, 403, 404, 404, 403, 403, 401],
        ),
        (Method::GET, "/api/v1/users".to_string(), None, None, [403, 403, 403, 403, 403, 403, 403, 403, 401]),
        // Another workspace's objects do not exist for any of them.
        (
            Method::GET,
            format!("/api/v1/workspaces/{other_ws}"),
            None,
            None,
            [404, 404, 404, 404, 404, 404, 404, 404, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/documents/{other_doc}"),
            None,
            None,
            [404, 404, 404, 404, 404, 404, 404, 404, 401],
        ),
        (
            Method::PATCH,
            format!("/api/v1/documents/{other_doc}"),
            Some(json!({"title": "mine"})),
            None,
            [404, 404, 404, 404, 404, 404, 404, 404, 401],
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{other_ws}/members"),
            None,
            None,
            [404, 404, 404, 404, 404, 404, 404, 404, 401],
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{other_ws}/documents"),
            Some(json!({"kind": "prd", "title": "x"})),
            None,
            [404, 404, 404, 404, 404, 404, 404, 404, 401],
        ),
    ];
    let mut failures = Vec::new();
    for (method, uri, body, header, expected) in &rows {
        for ((name, token), want) in callers.iter().zip(expected) {
            let headers: Vec<(&str, &str)> = header.iter().copied().collect();
            let r = api.call_as(token.as_deref(), method.clone(), uri, body.clone(), &headers).await;
            if r.status.as_u16() != *want {
                failures.push(format!("{method} {uri} as {name}: got {}, want {want} ({})", r.status.as_u16(), r.body));
            }
            if r.status.is_client_error() {
                assert!(r.body["error"]["code"].is_string(), "{method} {uri} as {name}: {}", r.body);
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
