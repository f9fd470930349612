//! What the HTTP providers share: one server at a base URL, its credentials, and calls whose
//! failures become [`AiError`]s that say what the server answered (status, its own message,
//! a hint for the usual mistakes), through the provider's [`Guard`].

use std::time::Duration;

use serde_json::Value;

use crate::resilience::{Guard, GuardSettings, parse_retry_after};
use crate::{AiError, AiErrorKind};

/// How a server wants callers to prove who they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    None,
    /// `Authorization: Bearer …` (OpenAI and the servers that copy it).
    Bearer(String),
    /// HTTP basic (Automatic1111's `--api-auth user:password`).
    Basic { user: String, password: String },
}

impl Credentials {
    /// The `Authorization` header's value, for requests made without reqwest (WebSockets).
    pub(crate) fn authorization(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Credentials::None => None,
            Credentials::Bearer(key) => Some(format!("Bearer {key}")),
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
        }
    }
}

/// One server: its name in errors, where it is, and the guard its calls go through.
pub(crate) struct Remote {
    pub name: String,
    pub base_url: String,
    pub credentials: Credentials,
    http: reqwest::Client,
    pub guard: Guard,
}

impl Remote {
    pub fn new(name: &str, base_url: &str, credentials: Credentials, guard: GuardSettings) -> Result<Self, AiError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base_url).map_err(|e| {
            AiError::new(name, AiErrorKind::Rejected, format!("base URL '{base_url}' is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AiError::new(name, AiErrorKind::Rejected, "the base URL must be http:// or https://"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AiError::new(name, AiErrorKind::Unavailable, format!("HTTP client: {e}")))?;
        Ok(Remote { name: name.to_string(), base_url, credentials, http, guard: Guard::new(name, guard) })
    }

    pub fn error(&self, kind: AiErrorKind, message: impl Into<String>) -> AiError {
        AiError::new(&self.name, kind, message)
    }

    /// One try of a request: the response when its status is a success, else the error the
    /// status and body say. `body: None` is a GET.
    pub async fn send(
        &self,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<reqwest::Response, AiError> {
        self.dispatch(path, body.map_or(Body::None, Body::Json), timeout).await
    }

    async fn dispatch(&self, path: &str, body: Body<'_>, timeout: Duration) -> Result<reqwest::Response, AiError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = match body {
            Body::Json(body) => self.http.post(url).json(body),
            Body::Form(form) => self.http.post(url).multipart(form),
            Body::None => self.http.get(url),
        };
        request = match &self.credentials {
            Credentials::None => request,
            Credentials::Bearer(key) => request.bearer_auth(key),
            Credentials::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let path = path.split('?').next().unwrap_or(path);
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => {
                return Err(
                    self.error(AiErrorKind::Timeout, format!("no answer to {path} within {} s", timeout.as_secs_f32()))
                );
            }
            Ok(Err(e)) => {
                let what = if e.is_connect() { "cannot connect to" } else { "the connection failed to" };
                return Err(self.error(AiErrorKind::Unavailable, format!("{what} {}: {e}", self.base_url)));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        let mut error = self.error(
            Self::kind(status.as_u16()),
            format!("{path} answered HTTP {}: {}{}", status.as_u16(), said(&text), Self::hint(status.as_u16())),
        );
        error.retry_after = retry_after;
        Err(error)
    }

    fn kind(status: u16) -> AiErrorKind {
        match status {
            429 => AiErrorKind::RateLimited,
            408 | 500..=599 => AiErrorKind::Unavailable,
            _ => AiErrorKind::Rejected,
        }
    }

    fn hint(status: u16) -> &'static str {
        match status {
            401 | 403 => " (check the provider's API key or credentials)",
            404 => " (check the base URL and that the model exists on the server)",
            _ => "",
        }
    }

    /// A JSON call, retried as the guard says; `body: None` is a GET.
    pub async fn json(&self, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Value, AiError> {
        self.guard.call(|| self.json_once(path, body, timeout)).await
    }

    /// One try of a JSON call.
    pub async fn json_once(&self, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Value, AiError> {
        let response = self.send(path, body, timeout).await?;
        self.read_json(path, response).await
    }

    /// A `multipart/form-data` POST answered with JSON (file uploads), retried as the guard
    /// says; `form` makes the body afresh for each try.
    pub async fn form(
        &self,
        path: &str,
        form: impl Fn() -> reqwest::multipart::Form,
        timeout: Duration,
    ) -> Result<Value, AiError> {
        self.guard
            .call(|| async {
                let response = self.dispatch(path, Body::Form(form()), timeout).await?;
                self.read_json(path, response).await
            })
            .await
    }

    async fn read_json(&self, path: &str, response: reqwest::Response) -> Result<Value, AiError> {
        let path = path.split('?').next().unwrap_or(path);
        response
            .json::<Value>()
            .await
            .map_err(|e| self.error(AiErrorKind::Protocol, format!("{path} answered something that is not JSON: {e}")))
    }

    /// A GET of raw bytes (an image), retried as the guard says.
    pub async fn bytes(&self, path: &str, timeout: Duration) -> Result<bytes::Bytes, AiError> {
        self.guard
            .call(|| async {
                let response = self.send(path, None, timeout).await?;
                response
                    .bytes()
                    .await
                    .map_err(|e| self.error(AiErrorKind::Unavailable, format!("reading the answer failed: {e}")))
            })
            .await
    }
}

/// A request's body.
enum Body<'a> {
    None,
    Json(&'a Value),
    Form(reqwest::multipart::Form),
}

/// What an error body says: OpenAI's `{"error": {"message": …}}`, ComfyUI's
/// `{"error": {"message": …}}` or `{"error": "…"}`, FastAPI's `{"detail": …}`, or the text.
fn said(text: &str) -> String {
    let from_json = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or(v["error"].as_str())
            .or(v["detail"].as_str())
            .map(String::from)
            .or_else(|| v.get("detail").map(Value::to_string))
    });
    let mut said = from_json.unwrap_or_else(|| text.chars().take(300).collect());
    // ComfyUI says which node input is wrong in `node_errors`.
    if let Ok(v) = serde_json::from_str::<Value>(text)
        && let Some(detail) = v["node_errors"]
            .as_object()
            .and_then(|nodes| nodes.values().flat_map(|n| n["errors"].as_array().into_iter().flatten()).next())
    {
        let what = detail["details"].as_str().filter(|d| !d.is_empty()).or(detail["message"].as_str());
        if let Some(what) = what {
            said = format!("{said}: {what}");
        }
    }
    said
}
