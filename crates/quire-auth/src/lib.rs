//! Quire's identity engine: who is calling, and what they hold.
//!
//! [`Auth`] signs people up and in (Argon2id password hashes, a throttle against guessing),
//! issues short-lived access tokens (HS256 JWTs with a `jti` and the session id `sid`) and
//! rotating refresh tokens (a replayed one revokes its whole session), mints API keys and
//! invitation tokens (random, shown once, stored as SHA-256), and turns a bearer credential
//! back into a [`Principal`]. Revocation takes effect at once on every process: a revoked
//! session is an outbox event (`session.revoked`) that each process's [`Auth`] follows.
//!
//! It knows nothing of HTTP: the server passes it header values and maps its errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use quire_core::{ApiKey, Error, EventFilter, Invitation, Member, NewUser, Principal, Result, Role, User};
use quire_store::{EventTail, NewApiKey, NewSession, Rotation, Store};
use serde::{Deserialize, Serialize};

pub mod secrets;
pub mod sso;
mod throttle;

pub use secrets::Keyring;
pub use throttle::Throttle;

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignupMode {
    /// Anyone.
    Open,
    /// Only holders of an open invitation (and the very first account).
    InviteOnly,
}

/// Identity settings; each is a Quire setting.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Lifetime of an access token (default 15 minutes).
    pub access_ttl: Duration,
    /// Lifetime of a session and its refresh tokens (default 30 days).
    pub refresh_ttl: Duration,
    /// Lifetime of an invitation (default 7 days).
    pub invitation_ttl: Duration,
    pub signup: SignupMode,
    /// Failed sign-ins allowed per email and address within `login_window` (default 5 in
    /// 15 minutes). Ten times as many per email from all addresses together, a limit that
    /// does not apply to an address the account has signed in from before: someone
    /// guessing from elsewhere cannot lock its owner out.
    pub login_failures: u32,
    pub login_window: Duration,
    /// Single sign-on providers.
    pub sso: sso::SsoConfig,
    /// Seals secrets at rest. The default is a random key held only in memory, for tests:
    /// `quire serve` always loads the configured one.
    pub keyring: Arc<Keyring>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            signup: SignupMode::Open,
            login_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            keyring: Arc::new(Keyring::ephemeral()),
            sso: sso::SsoConfig::default(),
        }
    }
}

/// Where a request came from, recorded with its session and used by the throttle.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The result of signing up, in or refreshing.
#[derive(Debug, Clone, Serialize)]
pub struct SignedIn {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    #[serde(skip)]
    pub session_id: String,
    /// Whether this account is the instance's first (its administrator).
    #[serde(skip)]
    pub first: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    sid: String,
    jti: String,
    adm: bool,
    iat: u64,
    exp: u64,
}

const ISSUER: &str = "quire";
const SECRET_SETTING: &str = "auth.jwt_hs256_secret";

/// The identity service. One per process; cheap to share behind an `Arc`.
pub struct Auth {
    store: Arc<dyn Store>,
    config: AuthConfig,
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    /// Revoked session ids, until the last access token they could have issued expires.
    revoked: Mutex<HashMap<String, Instant>>,
    throttle: Throttle,
    /// When each API key's last-used time was last written (written at most once a minute).
    key_touched: Mutex<HashMap<String, Instant>>,
    /// A hash to verify against when the email is unknown, so timing does not tell.
    dummy_hash: String,
    sso: sso::Sso,
}

/// `prefix` followed by `bytes` random bytes, base64url.
fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random source works");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// SHA-256 of a token, hex: how tokens are stored.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Hashes a password with Argon2id (the crate's recommended parameters) on a blocking thread.
pub async fn hash_password(password: &str) -> Result<String> {
    quire_core::check_password(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordHasher;
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("hashing a password failed: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

async fn verify_password(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordVerifier;
        argon2::Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
    })
    .await
    .unwrap_or(false)
}

impl Auth {
    /// Loads (or, on the instance's first start, creates) the token signing key, shared by
    /// every process through the database, and warms the revocation cache.
    pub async fn new(store: Arc<dyn Store>, config: AuthConfig) -> Result<Arc<Auth>> {
        let keyring = &config.keyring;
        let stored = store.init_setting(SECRET_SETTING, &keyring.seal(SECRET_SETTING, &random_token("", 48))).await?;
        let secret = if Keyring::is_sealed(&stored) {
            keyring.open(SECRET_SETTING, &stored)?
        } else {
            // Stored before secrets were sealed: seal it now.
            store.put_setting(SECRET_SETTING, &keyring.seal(SECRET_SETTING, &stored)).await?;
            stored
        };
        let secret =
            URL_SAFE_NO_PAD.decode(&secret).map_err(|_| Error::Internal("the stored signing key is damaged".into()))?;
        let auth = Auth {
            encoding: jsonwebtoken::EncodingKey::from_secret(&secret),
            decoding: jsonwebtoken::DecodingKey::from_secret(&secret),
            revoked: Mutex::new(HashMap::new()),
            throttle: Throttle::new(config.login_window),
            key_touched: Mutex::new(HashMap::new()),
            dummy_hash: hash_password("not a real password").await?,
            sso: sso::Sso::new(config.sso.clone())?,
            store,
            config,
        };
        let since = quire_core::now_ms() - auth.config.access_ttl.as_millis() as i64;
        auth.remember_revoked(&auth.store.revoked_sessions_since(since).await?);
        Ok(Arc::new(auth))
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Follows `session.revoked` events from every process until `shutdown` flips, so a
    /// sign-out anywhere ends the session's access tokens here at once.
    pub fn follow_revocations(self: &Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>, poll: Duration) {
        let auth = self.clone();
        tokio::spawn(async move {
            let start = match auth.store.last_event_id().await {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "cannot follow session revocations");
                    return;
                }
            };
            let filter = EventFilter { workspace_id: None, names: vec!["session.revoked".into()] };
            let mut tail = EventTail::new(auth.store.clone(), Principal::System, start, filter, poll);
            loop {
                tokio::select! {
                    event = tail.next() => {
                        let ids: Vec<String> = event.data["sessions"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                            .unwrap_or_default();
                        auth.remember_revoked(&ids);
                    }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    fn remember_revoked(&self, ids: &[String]) {
        let until = Instant::now() + self.config.access_ttl + Duration::from_secs(60);
        let mut revoked = self.revoked.lock().expect("revocation cache");
        let now = Instant::now();
        revoked.retain(|_, t| *t > now);
        for id in ids {
            revoked.insert(id.clone(), until);
        }
    }

    fn is_revoked(&self, session: &str) -> bool {
        self.revoked.lock().expect("revocation cache").get(session).is_some_and(|t| *t > Instant::now())
    }

    /// Creates an account and signs it in. The first account becomes the instance
    /// administrator and gets a workspace of its own. With invite-only sign-up, an open
    /// invitation token is required (and accepted).
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        name: &str,
        invitation: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignedIn> {
        quire_core::check_password(password)?;
        // The very first account needs no invitation: someone has to be able to start.
        if self.config.signup == SignupMode::InviteOnly && invitation.is_none() && self.store.user_count().await? > 0 {
            return Err(Error::Forbidden(
                "sign-up on this instance is by invitation; ask an admin for an invitation link".into(),
            ));
        }
        // A sign-up refused because the email is taken tells that the address has an
        // account; an address that collects such answers is throttled like one guessing
        // passwords, so the sign-up form is no way to list who uses Quire.
        let probe = format!("signup|{}", client.ip.as_deref().unwrap_or("-"));
        if let Some(wait) = self.throttle.blocked(&probe, self.config.login_failures) {
            return Err(Error::TooManyRequests {
                message: "too many sign-ups with emails that already have accounts; wait before trying again".into(),
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let new = NewUser {
            email: email.into(),
            name: name.into(),
            password_hash: Some(hash_password(password).await?),
            admin: false,
        };
        // With an invitation, the account and its membership are made together or not at
        // all: an invitation refused (unknown, used, expired or for another address)
        // leaves no account behind.
        let (user, first) = match invitation {
            Some(token) => self.store.create_invited_user(new, &token_hash(token)).await.map_err(|e| match e {
                Error::NotFound { what: "invitation", id } => Error::Forbidden(id),
                other => other,
            })?,
            None => self.store.create_user(new).await.inspect_err(|e| {
                if matches!(e, Error::Conflict(_)) {
                    self.throttle.fail(&probe);
                }
            })?,
        };
        if first {
            self.welcome_first(&user).await?;
        }
        let mut signed = self.start_session(user, client).await?;
        signed.first = first;
        Ok(signed)
    }

    /// Signs in with email and password. Wrong guesses are throttled per email and address,
    /// and per email from all addresses except those it has signed in from before.
    pub async fn login(&self, email: &str, password: &str, client: &ClientInfo) -> Result<SignedIn> {
        let email = email.trim().to_lowercase();
        let pair = format!("{email}|{}", client.ip.as_deref().unwrap_or("-"));
        let account = format!("account:{email}");
        let keys = [pair.clone(), account];
        let limits = [self.config.login_failures, self.config.login_failures.saturating_mul(10)];
        let known = self.throttle.is_known(&pair);
        for (key, limit) in keys.iter().zip(limits).take(if known { 1 } else { 2 }) {
            if let Some(wait) = self.throttle.blocked(key, limit) {
                return Err(Error::TooManyRequests {
                    message: "too many failed sign-ins; wait before trying again".into(),
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
        }
        let found = self.store.user_by_email(&email).await?;
        let hash = found.as_ref().and_then(|c| c.password_hash.clone()).unwrap_or_else(|| self.dummy_hash.clone());
        let ok = verify_password(password, &hash).await && found.as_ref().is_some_and(|c| c.password_hash.is_some());
        match (ok, found) {
            (true, Some(creds)) => {
                // The account's own count is left as it is: one right guess from one
                // address must not reset what others are guessing.
                self.throttle.clear(&pair);
                self.start_session(creds.user, client).await
            }
            _ => {
                for key in &keys {
                    self.throttle.fail(key);
                }
                Err(Error::Unauthenticated("the email or password is wrong".into()))
            }
        }
    }

    async fn start_session(&self, user: User, client: &ClientInfo) -> Result<SignedIn> {
        let refresh_token = random_token("qr_", 32);
        let session_id = quire_core::new_id("ses");
        let expires_at = quire_core::now_ms() + self.config.refresh_ttl.as_millis() as i64;
        let session = NewSession {
            id: session_id.clone(),
            user_id: user.id.clone(),
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            expires_at,
            refresh_hash: token_hash(&refresh_token),
        };
        self.store.create_session(session, expires_at).await?;
        // Sign-ins from here are the account owner's: the account-wide throttle spares them.
        self.throttle.remember(&format!("{}|{}", user.email.to_lowercase(), client.ip.as_deref().unwrap_or("-")));
        let access_token = self.access_token(&user, &session_id)?;
        Ok(SignedIn {
            user,
            access_token,
            refresh_token,
            expires_in: self.config.access_ttl.as_secs(),
            session_id,
            first: false,
        })
    }

    fn access_token(&self, user: &User, session_id: &str) -> Result<String> {
        let iat = now_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user.id.clone(),
            sid: session_id.into(),
            jti: quire_core::new_id("jti"),
            adm: user.admin,
            iat,
            exp: iat + self.config.access_ttl.as_secs(),
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token failed: {e}")))
    }

    /// Exchanges a refresh token for a new pair. A token used twice means it leaked: the
    /// session is revoked and the caller must sign in again.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn> {
        let new_token = random_token("qr_", 32);
        let expires_at = quire_core::now_ms() + self.config.refresh_ttl.as_millis() as i64;
        match self.store.rotate_refresh_token(&token_hash(refresh_token), &token_hash(&new_token), expires_at).await? {
            Rotation::Rotated { session_id, user } => {
                let access_token = self.access_token(&user, &session_id)?;
                Ok(SignedIn {
                    user,
                    access_token,
                    refresh_token: new_token,
                    expires_in: self.config.access_ttl.as_secs(),
                    session_id,
                    first: false,
                })
            }
            Rotation::Reused { session_id } => {
                self.remember_revoked(&[session_id]);
                Err(Error::Unauthenticated(
                    "this refresh token was already used, so the session was ended to be safe; sign in again".into(),
                ))
            }
            Rotation::Invalid => {
                Err(Error::Unauthenticated("the refresh token is unknown, expired or revoked; sign in again".into()))
            }
        }
    }

    /// Ends the caller's session: its refresh and access tokens stop working everywhere.
    pub async fn logout(&self, who: &Principal) -> Result<()> {
        match who {
            Principal::User { session: Some(sid), .. } => {
                self.store.revoke_session(who, sid).await?;
                self.remember_revoked(std::slice::from_ref(sid));
                Ok(())
            }
            _ => Err(Error::Unauthenticated("only a signed-in session can sign out".into())),
        }
    }

    /// Ends one session of the caller's (signing out another browser), at once everywhere.
    pub async fn revoke_session(&self, who: &Principal, session_id: &str) -> Result<()> {
        if who.user_id().is_none() {
            return Err(Error::Unauthenticated("only a signed-in user has sessions".into()));
        }
        self.store.revoke_session(who, session_id).await?;
        self.remember_revoked(&[session_id.to_string()]);
        Ok(())
    }

    /// Ends every session of a user (themselves, or anyone for an administrator).
    pub async fn revoke_user(&self, who: &Principal, user_id: &str) -> Result<Vec<String>> {
        let ids = self.store.revoke_user_sessions(who, user_id).await?;
        self.remember_revoked(&ids);
        Ok(ids)
    }

    /// The principal a bearer credential (access token or API key) stands for.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        Ok(self.authenticate_until(bearer).await?.0)
    }

    /// Like [`Auth::authenticate`], with when the credential expires (Unix seconds; `None`
    /// for API keys, which last until revoked): long-lived connections end then.
    pub async fn authenticate_until(&self, bearer: &str) -> Result<(Principal, Option<u64>)> {
        if bearer.starts_with("qk_") {
            return Ok((self.authenticate_key(bearer).await?, None));
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Claims>(bearer, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::Unauthenticated("the access token has expired; refresh it".into())
                }
                _ => Error::Unauthenticated("the access token is not valid".into()),
            })?
            .claims;
        if self.is_revoked(&claims.sid) {
            return Err(Error::Unauthenticated("this session was signed out; sign in again".into()));
        }
        Ok((Principal::User { id: claims.sub, admin: claims.adm, session: Some(claims.sid) }, Some(claims.exp)))
    }

    async fn authenticate_key(&self, key: &str) -> Result<Principal> {
        let invalid = || Error::Unauthenticated("the API key is not valid or was revoked".into());
        let prefix = key.get(..11).ok_or_else(invalid)?;
        let stored = self.store.api_key_by_prefix(prefix).await?.ok_or_else(invalid)?;
        let presented = token_hash(key);
        if !secrets_equal(presented.as_bytes(), stored.key_hash.as_bytes()) {
            return Err(invalid());
        }
        // A key acts for its creator: it stops when they leave the workspace, and acts with
        // no more than their role today (an instance administrator's keys keep theirs).
        let role = match (stored.creator_admin, stored.creator_role) {
            (true, _) => stored.key.role,
            (false, Some(creator)) => stored.key.role.min(creator),
            (false, None) => {
                return Err(Error::Unauthenticated(
                    "this API key's creator is no longer a member of its workspace; a member must create a new key"
                        .into(),
                ));
            }
        };
        let key = ApiKey { role, ..stored.key };
        let due = {
            let mut touched = self.key_touched.lock().expect("key cache");
            let due = touched.get(&key.id).is_none_or(|t| t.elapsed() > Duration::from_secs(60));
            if due {
                touched.insert(key.id.clone(), Instant::now());
            }
            due
        };
        if due && let Err(e) = self.store.touch_api_key(&key.id, quire_core::now_ms()).await {
            tracing::warn!(error = %e, key = %key.id, "recording an API key's last use failed");
        }
        Ok(Principal::ApiKey { id: key.id, workspace_id: key.workspace_id, role: key.role, created_by: key.created_by })
    }

    /// Creates an API key in a workspace; the secret is returned once and never again.
    pub async fn create_api_key(
        &self,
        who: &Principal,
        workspace: &str,
        name: &str,
        role: Role,
    ) -> Result<(ApiKey, String)> {
        let mut id = [0u8; 4];
        aws_lc_rs::rand::fill(&mut id).expect("the system random source works");
        let prefix = format!("qk_{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let secret = random_token(&format!("{prefix}_"), 32);
        let key = self
            .store
            .create_api_key(
                who,
                workspace,
                NewApiKey { name: name.into(), role, prefix, key_hash: token_hash(&secret) },
            )
            .await?;
        Ok((key, secret))
    }

    /// Creates an invitation; the token (for the link) is returned once.
    pub async fn create_invitation(
        &self,
        who: &Principal,
        workspace: &str,
        email: Option<String>,
        role: Role,
    ) -> Result<(Invitation, String)> {
        let token = random_token("qi_", 24);
        let expires_at = quire_core::now_ms() + self.config.invitation_ttl.as_millis() as i64;
        let invitation =
            self.store.create_invitation(who, workspace, email, role, &token_hash(&token), expires_at).await?;
        Ok((invitation, token))
    }

    pub async fn accept_invitation(&self, who: &Principal, token: &str) -> Result<Member> {
        self.store.accept_invitation(who, &token_hash(token)).await
    }

    /// Re-seals every instance setting with the keyring's current key (after a new key was
    /// put first); returns how many were re-sealed. A value no configured key opens stops the
    /// rotation with an error naming the key.
    pub async fn rotate_secrets(store: &dyn Store, keyring: &Keyring) -> Result<usize> {
        let mut done = 0;
        for (slot, value) in store.settings().await? {
            let plain = keyring.open_or_plain(&slot, &value)?;
            store.put_setting(&slot, &keyring.seal(&slot, &plain)).await?;
            done += 1;
        }
        Ok(done)
    }

    /// Creates an account without signing in (the CLI's `quire user create`).
    pub async fn create_user(&self, email: &str, name: &str, password: &str, admin: bool) -> Result<User> {
        let new = NewUser {
            email: email.into(),
            name: name.into(),
            password_hash: Some(hash_password(password).await?),
            admin,
        };
        let (user, first) = self.store.create_user(new).await?;
        if first {
            self.welcome_first(&user).await?;
        }
        Ok(user)
    }

    /// The instance's first account gets a workspace of its own.
    async fn welcome_first(&self, user: &User) -> Result<()> {
        let who = Principal::User { id: user.id.clone(), admin: true, session: None };
        let name = format!("{}'s workspace", user.name);
        self.store.create_workspace(&who, quire_core::NewWorkspace { name, slug: None, description: None }).await?;
        Ok(())
    }

    /// The configured sign-in providers, `(id, name)`.
    pub fn sso_providers(&self) -> Vec<(&'static str, String)> {
        self.sso.providers()
    }

    /// Begins a single sign-on; returns the provider URL to send the browser to.
    pub async fn sso_start(&self, provider: &str, redirect: &str) -> Result<sso::Started> {
        self.sso.start(&*self.store, provider, redirect).await
    }

    /// Completes a single sign-on and signs the account in; returns the session and where
    /// the browser goes next. An identity seen before signs into its account; a new one is
    /// linked to the account with its verified email, or makes a new account where sign-up
    /// is open.
    pub async fn sso_finish(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        browser_state: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(SignedIn, String)> {
        let (id, redirect) = self.sso.finish(&*self.store, provider, code, state, browser_state).await?;
        let user = match self.store.user_by_identity(&id.provider, &id.subject).await? {
            Some(user) => user,
            None => {
                let email = id.email.clone().filter(|_| id.email_verified).ok_or_else(|| {
                    Error::Forbidden(format!(
                        "{provider} did not vouch for a verified email address; Quire links accounts by verified email"
                    ))
                })?;
                let user = match self.store.user_by_email(&email).await? {
                    Some(creds) => creds.user,
                    None => {
                        if self.config.signup == SignupMode::InviteOnly && self.store.user_count().await? > 0 {
                            return Err(Error::Forbidden(
                                "sign-up on this instance is by invitation; ask an admin to invite this email".into(),
                            ));
                        }
                        let name =
                            id.name.clone().unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_string());
                        let new = NewUser { email: email.clone(), name, password_hash: None, admin: false };
                        let (user, first) = self.store.create_user(new).await?;
                        if first {
                            self.welcome_first(&user).await?;
                        }
                        user
                    }
                };
                self.store.link_identity(&id.provider, &id.subject, &user.id, Some(&email)).await?;
                user
            }
        };
        Ok((self.start_session(user, client).await?, redirect))
    }
}
