//! Git's smart HTTP protocol over reqwest (rustls), registered with libgit2 for `http://`
//! and `https://` remotes.
//!
//! libgit2 is built here without a TLS backend (no OpenSSL to build or link), so Quire
//! carries the HTTP leg itself: libgit2 speaks the git protocol (ref advertisement,
//! push commands, packfile) and this module moves its bytes — `GET
//! <url>/info/refs?service=git-receive-pack`, then `POST <url>/git-receive-pack` — with
//! the remote's credentials as HTTP Basic authentication. Credentials never pass through
//! libgit2 or a URL: [`with_credentials`] hands them to the transport for the duration of
//! one push on the calling thread.

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

/// The most a remote's answer may hold (a ref advertisement or a push report).
const MAX_RESPONSE: usize = 64 << 20;

/// Who Quire is to a remote: HTTP Basic credentials (for GitHub, GitLab and the like a
/// username and an access token).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

/// What one push hands the transport: its credentials and which addresses it may reach.
#[derive(Clone)]
struct PushSettings {
    credentials: Option<Credentials>,
    outbound: quire_net::Outbound,
}

thread_local! {
    static PUSH: RefCell<Option<PushSettings>> = const { RefCell::new(None) };
}

/// Runs `f` (a push on this thread) with `credentials` given to the HTTP transport, which
/// connects only where `outbound` permits.
pub(crate) fn with_settings<T>(
    credentials: Option<&Credentials>,
    outbound: &quire_net::Outbound,
    f: impl FnOnce() -> T,
) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PUSH.with(|c| c.borrow_mut().take());
        }
    }
    let settings = PushSettings { credentials: credentials.cloned(), outbound: outbound.clone() };
    PUSH.with(|c| *c.borrow_mut() = Some(settings));
    let _reset = Reset;
    f()
}

/// Registers the transport with libgit2, once per process.
pub(crate) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for scheme in ["http", "https"] {
                // SAFETY: runs once, before any remote of this process uses a transport
                // (every push calls this first), as `register` requires.
                unsafe { git2::transport::register(scheme, factory) }.map_err(|e| e.message().to_string())?;
            }
            Ok(())
        })
        .clone()
}

fn factory(remote: &git2::Remote<'_>) -> Result<Transport, git2::Error> {
    // A push outside `with_settings` (none is made) would reach public addresses only.
    let settings = PUSH.with(|c| c.borrow().clone());
    let (credentials, outbound) = match settings {
        Some(s) => (s.credentials, s.outbound),
        None => (None, quire_net::Outbound::public_only()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| git2::Error::from_str(&format!("starting the HTTP client: {e}")))?;
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("git/2.0 (quire ", env!("CARGO_PKG_VERSION"), ")"));
    let client =
        outbound.client(builder).map_err(|e| git2::Error::from_str(&format!("starting the HTTP client: {e}")))?;
    let shared = Arc::new(Shared { runtime, client, credentials });
    Transport::smart(remote, true, HttpSubtransport { shared })
}

struct Shared {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    credentials: Option<Credentials>,
}

struct HttpSubtransport {
    shared: Arc<Shared>,
}

impl SmartSubtransport for HttpSubtransport {
    fn action(&self, url: &str, action: Service) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        Ok(Box::new(HttpStream {
            shared: self.shared.clone(),
            url: url.trim_end_matches('/').to_string(),
            action,
            body: Vec::new(),
            response: None,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// One request: what libgit2 writes is its body, sent on the first read.
struct HttpStream {
    shared: Arc<Shared>,
    url: String,
    action: Service,
    body: Vec<u8>,
    response: Option<Cursor<Vec<u8>>>,
}

fn service(action: Service) -> &'static str {
    match action {
        Service::UploadPackLs | Service::UploadPack => "git-upload-pack",
        Service::ReceivePackLs | Service::ReceivePack => "git-receive-pack",
    }
}

impl HttpStream {
    fn send(&mut self) -> io::Result<Vec<u8>> {
        let service = service(self.action);
        let (request, expected) = match self.action {
            Service::UploadPackLs | Service::ReceivePackLs => (
                self.shared.client.get(format!("{}/info/refs?service={service}", self.url)),
                format!("application/x-{service}-advertisement"),
            ),
            Service::UploadPack | Service::ReceivePack => (
                self.shared
                    .client
                    .post(format!("{}/{service}", self.url))
                    .header("content-type", format!("application/x-{service}-request"))
                    .header("accept", format!("application/x-{service}-result"))
                    .body(std::mem::take(&mut self.body)),
                format!("application/x-{service}-result"),
            ),
        };
        let request = match &self.shared.credentials {
            Some(c) => request.basic_auth(&c.username, Some(&c.password)),
            None => request,
        };
        let url = self.url.clone();
        self.shared.runtime.block_on(async move {
            let mut response = request.send().await.map_err(|e| net(describe(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(net(match status.as_u16() {
                    401 => format!("{url} asks for credentials it was not given or refused them (HTTP 401)"),
                    403 => format!("{url} refused the push to these credentials (HTTP 403)"),
                    404 => format!("no git repository at {url} (HTTP 404)"),
                    _ => format!("{url} answered HTTP {status}"),
                }));
            }
            let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !kind.starts_with(&expected) {
                return Err(net(format!(
                    "{url} does not speak git's smart HTTP protocol (answered '{kind}', not '{expected}')"
                )));
            }
            let mut out = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| net(format!("{url}: {}", describe(&e))))? {
                if out.len() + chunk.len() > MAX_RESPONSE {
                    return Err(net(format!("{url} answered more than {} MiB", MAX_RESPONSE >> 20)));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        })
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            let body = self.send()?;
            self.response = Some(Cursor::new(body));
        }
        self.response.as_mut().map_or(Ok(0), |r| r.read(buf))
    }
}

impl Write for HttpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.response.is_some() {
            return Err(net("the git protocol wrote after reading an answer".into()));
        }
        self.body.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn net(message: String) -> io::Error {
    io::Error::other(message)
}

/// A request's failure with its cause (reqwest's own message stops at "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
