//! Single sign-on: OpenID Connect (authorization code with PKCE, ID tokens checked against
//! the provider's published keys) and GitHub OAuth. Sign-ins in progress are kept in the
//! database, so the callback may land on any process.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use quire_core::{Error, Result};
use quire_store::{SsoState, Store};
use serde::Deserialize;

/// How long a sign-in may take at the provider.
const STATE_TTL: Duration = Duration::from_secs(10 * 60);
/// How long discovery documents and keys are trusted before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// A generic OpenID Connect provider (Keycloak, Authentik, Okta, Google, Entra ID, …).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL; `/.well-known/openid-configuration` is read from under it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// A short name shown on the sign-in page.
    pub name: String,
}

/// GitHub (or GitHub Enterprise) OAuth.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `https://github.com`, or a GitHub Enterprise server.
    pub web_url: String,
    /// `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
}

/// Which providers are configured, and where Quire is reachable for their callbacks.
#[derive(Debug, Clone, Default)]
pub struct SsoConfig {
    /// The URL users reach Quire at, e.g. `https://quire.example.com`.
    pub public_url: String,
    pub oidc: Option<OidcConfig>,
    pub github: Option<GithubConfig>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdentity {
    /// `oidc` or `github`.
    pub provider: String,
    /// The provider's stable id for the account.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: bool,
    name: Option<String>,
    nonce: Option<String>,
}

/// Some providers send `"email_verified": "true"`.
fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::String(s) => Ok(s == "true"),
        _ => Ok(false),
    }
}

/// The providers and what Quire learned of them.
pub struct Sso {
    config: SsoConfig,
    http: reqwest::Client,
    discovery: Mutex<Option<(Discovery, jsonwebtoken::jwk::JwkSet, Instant)>>,
}

fn provider_error(provider: &str, what: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the identity provider '{provider}' failed: {what}"))
}

/// Sends a GET and reads its JSON answer; failures name the provider and what was read.
async fn get_json<T: serde::de::DeserializeOwned>(
    provider: &str,
    req: reqwest::RequestBuilder,
    what: &str,
) -> Result<T> {
    req.send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| provider_error(provider, format!("reading its {what}: {e}")))?
        .json()
        .await
        .map_err(|e| provider_error(provider, format!("its {what} is not valid: {e}")))
}

impl Sso {
    pub fn new(config: SsoConfig) -> Result<Sso> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("quire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Sso { config, http, discovery: Mutex::new(None) })
    }

    /// The configured providers: `(id, display name)`.
    pub fn providers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(o) = &self.config.oidc {
            out.push(("oidc", o.name.clone()));
        }
        if self.config.github.is_some() {
            out.push(("github", "GitHub".to_string()));
        }
        out
    }

    fn redirect_uri(&self, provider: &str) -> String {
        format!("{}/api/v1/auth/sso/{provider}/callback", self.config.public_url.trim_end_matches('/'))
    }

    fn unknown(provider: &str) -> Error {
        Error::not_found("identity provider", provider)
    }

    async fn discover(&self, refresh: bool) -> Result<(Discovery, jsonwebtoken::jwk::JwkSet)> {
        let oidc = self.config.oidc.as_ref().ok_or_else(|| Sso::unknown("oidc"))?;
        if !refresh
            && let Some((d, k, at)) = self.discovery.lock().expect("discovery cache").as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok((d.clone(), k.clone()));
        }
        let url = format!("{}/.well-known/openid-configuration", oidc.issuer.trim_end_matches('/'));
        let d: Discovery = get_json("oidc", self.http.get(&url), "discovery document").await?;
        if d.issuer.trim_end_matches('/') != oidc.issuer.trim_end_matches('/') {
            return Err(provider_error("oidc", format!("it calls itself '{}', not '{}'", d.issuer, oidc.issuer)));
        }
        let keys: jsonwebtoken::jwk::JwkSet = get_json("oidc", self.http.get(&d.jwks_uri), "key set").await?;
        *self.discovery.lock().expect("discovery cache") = Some((d.clone(), keys.clone(), Instant::now()));
        Ok((d, keys))
    }

    /// Begins a sign-in: remembers it and returns the provider URL to send the browser to,
    /// and the state the browser must keep (as a cookie) to finish it.
    /// `redirect` (a path in Quire) is where the browser lands afterwards.
    pub async fn start(&self, store: &dyn Store, provider: &str, redirect: &str) -> Result<Started> {
        let redirect = local_path(redirect).unwrap_or("/");
        let state = crate::random_token("", 24);
        let verifier = crate::random_token("", 32);
        let nonce = crate::random_token("", 16);
        let challenge =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
        let (authorize, client_id, scope) = match provider {
            "oidc" => {
                let oidc = self.config.oidc.as_ref().ok_or_else(|| Sso::unknown(provider))?;
                let (d, _) = self.discover(false).await?;
                (d.authorization_endpoint, oidc.client_id.clone(), "openid email profile")
            }
            "github" => {
                let gh = self.config.github.as_ref().ok_or_else(|| Sso::unknown(provider))?;
                (
                    format!("{}/login/oauth/authorize", gh.web_url.trim_end_matches('/')),
                    gh.client_id.clone(),
                    "read:user user:email",
                )
            }
            _ => return Err(Sso::unknown(provider)),
        };
        let saved = SsoState {
            provider: provider.into(),
            code_verifier: verifier,
            nonce: nonce.clone(),
            redirect: redirect.into(),
        };
        let expires = quire_core::now_ms() + STATE_TTL.as_millis() as i64;
        store.save_sso_state(&crate::token_hash(&state), &saved, expires).await?;
        let mut url = reqwest::Url::parse(&authorize)
            .map_err(|e| provider_error(provider, format!("bad authorization URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &self.redirect_uri(provider))
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(Started { url: url.into(), state, max_age: STATE_TTL })
    }

    /// Completes a sign-in from the provider's callback: checks the state, exchanges the
    /// code, and returns who signed in and where the browser goes next.
    ///
    /// `browser_state` is the state the browser kept from [`Sso::start`] (a cookie): a
    /// callback carrying another state, or none, was not started in this browser (someone
    /// signing a victim into the attacker's account, "login CSRF") and is refused.
    pub async fn finish(
        &self,
        store: &dyn Store,
        provider: &str,
        code: &str,
        state: &str,
        browser_state: Option<&str>,
    ) -> Result<(ExternalIdentity, String)> {
        let bound = browser_state
            .is_some_and(|b| aws_lc_rs::constant_time::verify_slices_are_equal(b.as_bytes(), state.as_bytes()).is_ok());
        if !bound {
            return Err(Error::Unauthenticated(
                "this sign-in was not started in this browser (or its cookie expired); start again".into(),
            ));
        }
        let saved = store
            .take_sso_state(&crate::token_hash(state))
            .await?
            .filter(|s| s.provider == provider)
            .ok_or_else(|| Error::Unauthenticated("this sign-in is unknown or expired; start again".into()))?;
        let identity = match provider {
            "oidc" => self.finish_oidc(code, &saved).await?,
            "github" => self.finish_github(code, &saved).await?,
            _ => return Err(Sso::unknown(provider)),
        };
        Ok((identity, saved.redirect))
    }

    async fn exchange(
        &self,
        provider: &str,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<TokenResponse> {
        let mut req = self.http.post(url).header(reqwest::header::ACCEPT, "application/json").form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let res = req.send().await.map_err(|e| provider_error(provider, e))?;
        let status = res.status();
        let body: TokenResponse = res
            .json()
            .await
            .map_err(|e| provider_error(provider, format!("its token answer is not JSON ({status}): {e}")))?;
        if let Some(error) = &body.error {
            let detail = body.error_description.as_deref().unwrap_or("");
            return Err(Error::Unauthenticated(
                format!("the identity provider refused the sign-in: {error} {detail}").trim().to_string(),
            ));
        }
        if !status.is_success() {
            return Err(provider_error(provider, format!("its token endpoint answered {status}")));
        }
        Ok(body)
    }

    async fn finish_oidc(&self, code: &str, saved: &SsoState) -> Result<ExternalIdentity> {
        let oidc = self.config.oidc.as_ref().ok_or_else(|| Sso::unknown("oidc"))?;
        let (d, _) = self.discover(false).await?;
        let redirect_uri = self.redirect_uri("oidc");
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", oidc.client_id.as_str()),
            ("code_verifier", saved.code_verifier.as_str()),
        ];
        let tokens =
            self.exchange("oidc", &d.token_endpoint, &form, Some((&oidc.client_id, &oidc.client_secret))).await?;
        let id_token = tokens.id_token.ok_or_else(|| provider_error("oidc", "it sent no ID token"))?;
        let claims = self.verify_id_token(&id_token, oidc, &d).await?;
        if claims.nonce.as_deref() != Some(saved.nonce.as_str()) {
            return Err(Error::Unauthenticated("the ID token was not issued for this sign-in (nonce mismatch)".into()));
        }
        Ok(ExternalIdentity {
            provider: "oidc".into(),
            subject: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
        })
    }

    async fn verify_id_token(&self, token: &str, oidc: &OidcConfig, d: &Discovery) -> Result<IdClaims> {
        let invalid = |why: String| Error::Unauthenticated(format!("the ID token is not valid: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let kid = header.kid.clone().ok_or_else(|| invalid("it names no key".into()))?;
        let (_, mut keys) = self.discover(false).await?;
        if keys.find(&kid).is_none() {
            // The provider may have rotated its keys since we fetched them.
            keys = self.discover(true).await?.1;
        }
        let jwk = keys.find(&kid).ok_or_else(|| invalid(format!("key '{kid}' is not among the provider's keys")))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
        if matches!(
            header.alg,
            jsonwebtoken::Algorithm::HS256 | jsonwebtoken::Algorithm::HS384 | jsonwebtoken::Algorithm::HS512
        ) {
            return Err(invalid("it is signed with a shared secret, not the provider's key".into()));
        }
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_audience(&[&oidc.client_id]);
        validation.set_issuer(&[&d.issuer]);
        validation.leeway = 60;
        Ok(jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(|e| invalid(e.to_string()))?.claims)
    }

    async fn finish_github(&self, code: &str, saved: &SsoState) -> Result<ExternalIdentity> {
        let gh = self.config.github.as_ref().ok_or_else(|| Sso::unknown("github"))?;
        let redirect_uri = self.redirect_uri("github");
        let form = [
            ("client_id", gh.client_id.as_str()),
            ("client_secret", gh.client_secret.as_str()),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", saved.code_verifier.as_str()),
        ];
        let url = format!("{}/login/oauth/access_token", gh.web_url.trim_end_matches('/'));
        let tokens = self.exchange("github", &url, &form, None).await?;
        let token = tokens.access_token.ok_or_else(|| provider_error("github", "it sent no access token"))?;
        let api = gh.api_url.trim_end_matches('/');
        let get = |path: &str| {
            self.http
                .get(format!("{api}{path}"))
                .bearer_auth(&token)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
        };
        #[derive(Deserialize)]
        struct GhUser {
            id: u64,
            login: String,
            name: Option<String>,
        }
        #[derive(Deserialize)]
        struct GhEmail {
            email: String,
            primary: bool,
            verified: bool,
        }
        let user: GhUser = get_json("github", get("/user"), "user").await?;
        let emails: Vec<GhEmail> = get_json("github", get("/user/emails"), "email list").await?;
        let primary = emails.iter().find(|e| e.primary && e.verified).or_else(|| emails.iter().find(|e| e.verified));
        Ok(ExternalIdentity {
            provider: "github".into(),
            subject: user.id.to_string(),
            email: primary.map(|e| e.email.clone()),
            email_verified: primary.is_some(),
            name: user.name.or(Some(user.login)),
        })
    }
}

/// A sign-in begun: where the browser goes, and the state it keeps until the callback.
#[derive(Debug, Clone)]
pub struct Started {
    pub url: String,
    pub state: String,
    /// How long the sign-in may take.
    pub max_age: Duration,
}

/// `redirect` if it is a path on this site, for the browser to land on after signing in.
/// Anything a browser could read as another site is refused: `//host`, `/\host` (browsers
/// treat `\` as `/`), and control characters or spaces (browsers drop tabs and newlines, so
/// `/<tab>/host` becomes `//host`).
pub fn local_path(redirect: &str) -> Option<&str> {
    let rest = redirect.strip_prefix('/')?;
    let bad = |c: char| c == '\\' || c.is_control() || c.is_whitespace();
    if rest.starts_with('/') || redirect.chars().any(bad) {
        return None;
    }
    Some(redirect)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_paths_on_this_site_are_landed_on() {
        for ok in ["/", "/documents", "/w/abc?tab=history#top", "/a/b%2Fc"] {
            assert_eq!(local_path(ok), Some(ok), "{ok}");
        }
        let refused = [
            "",
            "documents",
            "//evil.com",
            "/\\evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/ /evil.com",
            "https://evil.com",
            "\\\\evil.com",
        ];
        for bad in refused {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}
