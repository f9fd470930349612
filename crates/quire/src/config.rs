//! Settings: built-in defaults, overridden by a TOML file (`--config`), overridden by
//! `QUIRE_*` environment variables, overridden by flags. Clap reads flags and variables
//! into `Option`s (so "not given" is visible), the file fills what they left empty, and
//! the defaults fill the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use quire_auth::sso::{GithubConfig, OidcConfig, SsoConfig};
use quire_auth::{AuthConfig, Keyring, SignupMode};
use quire_core::Limits;
use quire_server::ServerConfig;
use quire_server::ratelimit::{RateLimits, parse_windows};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

/// Settings every command reads.
#[derive(Debug, Args, Default)]
pub struct CommonArgs {
    /// TOML file with any of the settings below (keys as the flags, with underscores:
    /// `addr = "0.0.0.0:7420"`, `max_body_bytes = 2097152`)
    #[arg(long, env = "QUIRE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for Quire's data: the SQLite database and, later, blobs and git
    /// repositories [default: ./quire-data]
    #[arg(long, env = "QUIRE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH, or postgres://USER@HOST:PORT/DB to share state between
    /// several Quire processes [default: sqlite://DATA_DIR/quire.db]
    #[arg(long, env = "QUIRE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Most database connections this process opens [default: 10]
    #[arg(long, env = "QUIRE_DB_MAX_CONNECTIONS", value_name = "N")]
    pub db_max_connections: Option<u32>,
    /// Log format [default: text]
    #[arg(long, env = "QUIRE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `quire=debug,sqlx=warn`
    /// [default: info]
    #[arg(long = "log", env = "QUIRE_LOG", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Most workspaces this instance holds [default: 10000]
    #[arg(long, env = "QUIRE_MAX_WORKSPACES", value_name = "N")]
    pub max_workspaces: Option<i64>,
    /// Most documents one workspace holds [default: 100000]
    #[arg(long, env = "QUIRE_MAX_DOCUMENTS_PER_WORKSPACE", value_name = "N")]
    pub max_documents_per_workspace: Option<i64>,
    /// Longest document title, in characters [default: 500]
    #[arg(long, env = "QUIRE_MAX_TITLE_CHARS", value_name = "N")]
    pub max_title_chars: Option<usize>,
    /// Keys that seal secrets at rest, ID:BASE64 comma-separated, the first sealing (make one
    /// with `quire keys generate`) [default: the data directory's secret-keys file, created
    /// on first start]
    #[arg(long, env = "QUIRE_SECRET_KEYS", value_name = "KEYS", hide_env_values = true)]
    pub secret_keys: Option<String>,
    /// Largest document metadata object, in bytes of JSON [default: 65536]
    #[arg(long, env = "QUIRE_MAX_METADATA_BYTES", value_name = "BYTES")]
    pub max_metadata_bytes: Option<usize>,
    /// Folder of local models (GGUF chat models, BERT-family embedding models); `quire models
    /// fetch` puts the default ones there [default: DATA_DIR/models]
    #[arg(long, env = "QUIRE_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// A GGUF chat model to run locally, by path (your own Qwen, Llama, …), over what the
    /// models folder holds
    #[arg(long, env = "QUIRE_TEXT_MODEL", value_name = "FILE")]
    pub text_model: Option<PathBuf>,
    /// An embedding model to run locally, by path: a Hugging Face BERT-family folder
    /// (config.json, *.safetensors, tokenizer.json) or a GGUF file, over the models folder's
    #[arg(long, env = "QUIRE_EMBEDDING_MODEL", value_name = "PATH")]
    pub embedding_model: Option<PathBuf>,
    /// Where images and files are kept: a directory, or s3://BUCKET for S3-compatible
    /// object storage (credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION) [default: DATA_DIR/assets]
    #[arg(long, env = "QUIRE_ASSETS", value_name = "DIR|s3://BUCKET")]
    pub assets: Option<String>,
    /// The S3-compatible server's URL, for an s3:// asset store that is not AWS's
    #[arg(long, env = "QUIRE_ASSETS_ENDPOINT", value_name = "URL")]
    pub assets_endpoint: Option<String>,
    /// Megabytes of images each workspace may keep [default: 10240]
    #[arg(long, env = "QUIRE_ASSET_QUOTA_MB", value_name = "MB")]
    pub asset_quota_mb: Option<i64>,
    /// Days an image nothing names stays before the nightly collection removes it [default: 7]
    #[arg(long, env = "QUIRE_ASSET_GRACE_DAYS", value_name = "DAYS")]
    pub asset_grace_days: Option<u64>,
    /// Largest image upload, in megabytes [default: 25]
    #[arg(long, env = "QUIRE_MAX_UPLOAD_MB", value_name = "MB")]
    pub max_upload_mb: Option<usize>,
    /// An Armbian build framework checkout (github.com/armbian/build): board configurations
    /// are checked against the boards and releases it has, and builds run in it [default:
    /// the schema of the Armbian snapshot Quire ships, and no builds]
    #[arg(long, env = "QUIRE_ARMBIAN_DIR", value_name = "DIR")]
    pub armbian_dir: Option<PathBuf>,
}

/// Settings of the pipeline workers (`quire serve` and `quire worker`).
#[derive(Debug, Args, Default)]
pub struct JobArgs {
    /// Contexts one worker runs at once [default: 4]
    #[arg(long, env = "QUIRE_WORKER_CONCURRENCY", value_name = "N")]
    pub worker_concurrency: Option<usize>,
    /// Queues the worker takes contexts from, in order of preference, comma-separated
    /// [default: default,history,assets — `history` makes document versions, one at a time;
    /// `assets` makes thumbnails; and `builds` (board images) where --armbian-dir is set]
    #[arg(long, env = "QUIRE_WORKER_QUEUES", value_name = "QUEUES", value_delimiter = ',')]
    pub worker_queues: Option<Vec<String>>,
    /// Seconds a worker's claim on a context holds without a heartbeat; a dead worker's
    /// contexts are taken over after this [default: 30]
    #[arg(long, env = "QUIRE_JOB_LEASE_SECS", value_name = "SECS")]
    pub job_lease_secs: Option<u64>,
    /// Days finished contexts are kept before the nightly clean-up deletes them [default: 30]
    #[arg(long, env = "QUIRE_JOB_RETENTION_DAYS", value_name = "DAYS")]
    pub job_retention_days: Option<u64>,
    /// Most contexts of a queue running at once across all workers, QUEUE=N comma-separated,
    /// e.g. builds=2,images=1 [default: no limits]
    #[arg(long, env = "QUIRE_QUEUE_LIMITS", value_name = "LIMITS")]
    pub queue_limits: Option<String>,
    /// Minutes a board build may run before it is stopped and failed [default: 360]
    #[arg(long, env = "QUIRE_BUILD_TIME_LIMIT_MINS", value_name = "MINS")]
    pub build_time_limit_mins: Option<u64>,
    /// Milliseconds after a document's last edit its version is made [default: 500]
    #[arg(long, env = "QUIRE_HISTORY_DEBOUNCE_MS", value_name = "MS")]
    pub history_debounce_ms: Option<u64>,
    /// A change of at most this many characters is a patch version; more is a minor one
    /// [default: 20]
    #[arg(long, env = "QUIRE_HISTORY_PATCH_CHARS", value_name = "N")]
    pub history_patch_chars: Option<usize>,
    /// Versions per document kept whole; older ones are stored compressed (still read and
    /// diffed) [default: 50]
    #[arg(long, env = "QUIRE_HISTORY_KEEP", value_name = "N")]
    pub history_keep: Option<i64>,
    /// Networks (beyond the public internet) that URLs users configure, such as a
    /// workspace's git remote, may reach: addresses or CIDRs, comma-separated, e.g.
    /// 10.0.0.0/8 for an internal git server [default: none — loopback, private, link-local
    /// and metadata addresses are refused]
    #[arg(long, env = "QUIRE_OUTBOUND_ALLOW", value_name = "NETWORKS")]
    pub outbound_allow: Option<String>,
}

/// Settings of `quire worker`.
#[derive(Debug, Args, Default)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
}

/// Settings of `quire serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
    /// Run pipeline workers in this process; turn off when `quire worker` processes run them
    /// [default: true]
    #[arg(long, env = "QUIRE_WORKERS", value_name = "BOOL")]
    pub workers: Option<bool>,
    /// On start, fetch the default local models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2)
    /// into the models folder when they are missing, in the background, with pip; the same
    /// as `quire models fetch` [default: true]
    #[arg(long, env = "QUIRE_FETCH_MODELS", value_name = "BOOL")]
    pub fetch_models: Option<bool>,
    /// Address and port to listen on [default: 127.0.0.1:7420]
    #[arg(long, env = "QUIRE_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,
    /// Largest request body accepted, in bytes; larger ones get 413 [default: 1048576]
    #[arg(long, env = "QUIRE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest collaboration (WebSocket) message a client may send, in bytes; larger ones
    /// close the socket [default: 16777216]
    #[arg(long, env = "QUIRE_MAX_WS_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_ws_message_bytes: Option<usize>,
    /// Event streams and collaboration sockets one user or API key may hold open on this
    /// node; one more is answered 429 [default: 100]
    #[arg(long, env = "QUIRE_MAX_CONNECTIONS_PER_CALLER", value_name = "N")]
    pub max_connections_per_caller: Option<usize>,
    /// How often an idle event stream re-reads the outbox, in milliseconds [default: 2000]
    #[arg(long, env = "QUIRE_EVENTS_POLL_INTERVAL_MS", value_name = "MS")]
    pub events_poll_interval_ms: Option<u64>,
    /// Who may create an account: open, or invite-only (the first account is always
    /// allowed) [default: open]
    #[arg(long, env = "QUIRE_SIGNUP", value_name = "MODE")]
    pub signup: Option<Signup>,
    /// Lifetime of access tokens, in seconds [default: 900]
    #[arg(long, env = "QUIRE_ACCESS_TOKEN_TTL_SECS", value_name = "SECS")]
    pub access_token_ttl_secs: Option<u64>,
    /// Lifetime of a session's refresh tokens, in seconds [default: 2592000]
    #[arg(long, env = "QUIRE_REFRESH_TOKEN_TTL_SECS", value_name = "SECS")]
    pub refresh_token_ttl_secs: Option<u64>,
    /// Mark session cookies Secure; turn on when Quire is served over HTTPS [default: false]
    #[arg(long, env = "QUIRE_COOKIE_SECURE", value_name = "BOOL")]
    pub cookie_secure: Option<bool>,
    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// https://app.example.com [default: none]
    #[arg(long, env = "QUIRE_CORS_ORIGINS", value_name = "ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Request limits per caller for most routes, COUNT/UNIT comma-separated (units s, min,
    /// h, day), or off [default: 300/min,6000/h,60000/day]
    #[arg(long, env = "QUIRE_RATE_LIMIT_DEFAULT", value_name = "LIMITS")]
    pub rate_limit_default: Option<String>,
    /// Limits per address for sign-up, sign-in and refresh [default: 20/min,200/h,2000/day]
    #[arg(long, env = "QUIRE_RATE_LIMIT_AUTH", value_name = "LIMITS")]
    pub rate_limit_auth: Option<String>,
    /// Limits per caller for AI generation [default: 20/min,200/h,1000/day]
    #[arg(long, env = "QUIRE_RATE_LIMIT_AI", value_name = "LIMITS")]
    pub rate_limit_ai: Option<String>,
    /// Redis, so that rate limits hold across several Quire processes, e.g.
    /// redis://127.0.0.1:6379 [default: none, counters in memory]
    #[arg(long, env = "QUIRE_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Proxies in front of Quire that append to X-Forwarded-For; the client address is the
    /// entry the outermost one added (N from the right) [default: 0, the connection's peer]
    #[arg(long, env = "QUIRE_TRUSTED_PROXIES", value_name = "N")]
    pub trusted_proxies: Option<usize>,
    /// Days audit entries are kept [default: 365]
    #[arg(long, env = "QUIRE_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Days AI interactions (prompts, models, tokens) are kept [default: 90]
    #[arg(long, env = "QUIRE_AI_LOG_RETENTION_DAYS", value_name = "DAYS")]
    pub ai_log_retention_days: Option<u64>,
    /// A token Prometheus must send to read /metrics (Authorization: Bearer) [default: none,
    /// /metrics is open]
    #[arg(long, env = "QUIRE_METRICS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// The URL users reach Quire at, for sign-in callbacks [default: http://ADDR]
    #[arg(long, env = "QUIRE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// OpenID Connect issuer URL for single sign-on (Keycloak, Authentik, Okta, Google, …)
    #[arg(long, env = "QUIRE_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// OpenID Connect client id
    #[arg(long, env = "QUIRE_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// OpenID Connect client secret
    #[arg(long, env = "QUIRE_OIDC_CLIENT_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Name of the OpenID Connect provider on the sign-in page [default: Single sign-on]
    #[arg(long, env = "QUIRE_OIDC_NAME", value_name = "NAME")]
    pub oidc_name: Option<String>,
    /// GitHub OAuth app client id, for signing in with GitHub
    #[arg(long, env = "QUIRE_GITHUB_CLIENT_ID", value_name = "ID")]
    pub github_client_id: Option<String>,
    /// GitHub OAuth app client secret
    #[arg(long, env = "QUIRE_GITHUB_CLIENT_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,
    /// GitHub web URL (GitHub Enterprise: https://HOST) [default: https://github.com]
    #[arg(long, env = "QUIRE_GITHUB_URL", value_name = "URL")]
    pub github_url: Option<String>,
    /// GitHub API URL (GitHub Enterprise: https://HOST/api/v3) [default: https://api.github.com]
    #[arg(long, env = "QUIRE_GITHUB_API_URL", value_name = "URL")]
    pub github_api_url: Option<String>,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signup {
    /// Anyone may sign up
    Open,
    /// Only with an invitation
    InviteOnly,
}

/// The TOML file: every key optional, unknown keys refused (a typo must not pass silently).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    secret_keys: Option<String>,
    database_url: Option<String>,
    db_max_connections: Option<u32>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    max_workspaces: Option<i64>,
    max_documents_per_workspace: Option<i64>,
    max_title_chars: Option<usize>,
    max_metadata_bytes: Option<usize>,
    models_dir: Option<PathBuf>,
    text_model: Option<PathBuf>,
    embedding_model: Option<PathBuf>,
    assets: Option<String>,
    assets_endpoint: Option<String>,
    asset_quota_mb: Option<i64>,
    asset_grace_days: Option<u64>,
    max_upload_mb: Option<usize>,
    armbian_dir: Option<PathBuf>,
    fetch_models: Option<bool>,
    addr: Option<SocketAddr>,
    max_body_bytes: Option<usize>,
    max_ws_message_bytes: Option<usize>,
    max_connections_per_caller: Option<usize>,
    events_poll_interval_ms: Option<u64>,
    signup: Option<Signup>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    cookie_secure: Option<bool>,
    cors_origins: Option<Vec<String>>,
    rate_limit_default: Option<String>,
    rate_limit_auth: Option<String>,
    rate_limit_ai: Option<String>,
    redis_url: Option<String>,
    trusted_proxies: Option<usize>,
    audit_retention_days: Option<u64>,
    ai_log_retention_days: Option<u64>,
    public_url: Option<String>,
    metrics_token: Option<String>,
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    oidc_name: Option<String>,
    github_client_id: Option<String>,
    github_client_secret: Option<String>,
    github_url: Option<String>,
    github_api_url: Option<String>,
    workers: Option<bool>,
    worker_concurrency: Option<usize>,
    worker_queues: Option<Vec<String>>,
    build_time_limit_mins: Option<u64>,
    job_lease_secs: Option<u64>,
    job_retention_days: Option<u64>,
    history_debounce_ms: Option<u64>,
    history_patch_chars: Option<usize>,
    history_keep: Option<i64>,
    outbound_allow: Option<String>,
    queue_limits: Option<String>,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Given keys, or `None` for the data directory's `secret-keys` file.
    pub secret_keys: Option<String>,
    pub limits: Limits,
    pub addr: SocketAddr,
    pub server: ServerConfig,
    pub auth: AuthConfig,
    /// Whether `serve` runs workers itself.
    pub run_workers: bool,
    /// Whether `serve` fetches the default local models once, when they are missing.
    pub fetch_models: bool,
    pub worker: quire_jobs::WorkerConfig,
}

fn read_file(path: Option<&Path>) -> Result<FileSettings, String> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the settings file {}: {e}; check the path given to --config or QUIRE_CONFIG",
            path.display()
        )
    })?;
    toml::from_str(&text).map_err(|e| format!("the settings file {} is not valid: {e}", path.display()))
}

impl Settings {
    /// Resolves `serve`'s settings.
    pub fn for_serve(args: ServeArgs) -> Result<Settings, String> {
        let file = read_file(args.common.config.as_deref())?;
        let defaults = ServerConfig::default();
        let poll_ms = args.events_poll_interval_ms.or(file.events_poll_interval_ms);
        let server = ServerConfig {
            max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(defaults.max_body_bytes),
            max_ws_message_bytes: args
                .max_ws_message_bytes
                .or(file.max_ws_message_bytes)
                .unwrap_or(defaults.max_ws_message_bytes),
            max_connections_per_caller: args
                .max_connections_per_caller
                .or(file.max_connections_per_caller)
                .unwrap_or(defaults.max_connections_per_caller),
            events_poll_interval: poll_ms.map(Duration::from_millis).unwrap_or(defaults.events_poll_interval),
            cookie_secure: args.cookie_secure.or(file.cookie_secure).unwrap_or(false),
            cors_origins: args.cors_origins.clone().or(file.cors_origins.clone()).unwrap_or_default(),
            rate_limits: {
                let d = RateLimits::default();
                let parse = |flag: &Option<String>, file: &Option<String>, name: &str, default: Vec<_>| match flag
                    .as_ref()
                    .or(file.as_ref())
                {
                    Some(spec) => parse_windows(spec).map_err(|e| format!("{name}: {e}")),
                    None => Ok(default),
                };
                RateLimits {
                    default: parse(
                        &args.rate_limit_default,
                        &file.rate_limit_default,
                        "rate_limit_default",
                        d.default,
                    )?,
                    auth: parse(&args.rate_limit_auth, &file.rate_limit_auth, "rate_limit_auth", d.auth)?,
                    ai: parse(&args.rate_limit_ai, &file.rate_limit_ai, "rate_limit_ai", d.ai)?,
                }
            },
            redis_url: args.redis_url.clone().or(file.redis_url.clone()),
            trusted_proxies: args.trusted_proxies.or(file.trusted_proxies).unwrap_or(0),
            metrics_token: args.metrics_token.clone().or(file.metrics_token.clone()).filter(|t| !t.is_empty()),
            ai_log_retention: Duration::from_secs(
                args.ai_log_retention_days.or(file.ai_log_retention_days).unwrap_or(90).max(1) * 86_400,
            ),
            audit_retention: Duration::from_secs(
                args.audit_retention_days.or(file.audit_retention_days).unwrap_or(365).max(1) * 86_400,
            ),
            ..defaults
        };
        if server.max_connections_per_caller == 0 {
            return Err("max_connections_per_caller must be at least 1 (set --max-connections-per-caller)".into());
        }
        if server.max_ws_message_bytes < 1024 {
            return Err("max_ws_message_bytes must be at least 1024 (set --max-ws-message-bytes)".into());
        }
        if server.max_body_bytes == 0 {
            return Err("max_body_bytes must be at least 1".into());
        }
        if server.events_poll_interval < Duration::from_millis(10) {
            return Err("events_poll_interval_ms must be at least 10".into());
        }
        let addr = args.addr.or(file.addr).unwrap_or_else(|| "127.0.0.1:7420".parse().expect("valid default"));
        let d = AuthConfig::default();
        let auth = AuthConfig {
            signup: match args.signup.or(file.signup) {
                Some(Signup::InviteOnly) => SignupMode::InviteOnly,
                _ => SignupMode::Open,
            },
            access_ttl: args
                .access_token_ttl_secs
                .or(file.access_token_ttl_secs)
                .map_or(d.access_ttl, Duration::from_secs),
            refresh_ttl: args
                .refresh_token_ttl_secs
                .or(file.refresh_token_ttl_secs)
                .map_or(d.refresh_ttl, Duration::from_secs),
            ..d
        };
        let pick = |a: &Option<String>, f: &Option<String>| a.clone().or_else(|| f.clone()).filter(|v| !v.is_empty());
        let oidc = match (pick(&args.oidc_issuer, &file.oidc_issuer), pick(&args.oidc_client_id, &file.oidc_client_id))
        {
            (Some(issuer), Some(client_id)) => Some(OidcConfig {
                issuer,
                client_id,
                client_secret: pick(&args.oidc_client_secret, &file.oidc_client_secret).unwrap_or_default(),
                name: pick(&args.oidc_name, &file.oidc_name).unwrap_or_else(|| "Single sign-on".into()),
            }),
            (None, None) => None,
            _ => return Err("single sign-on needs both oidc_issuer and oidc_client_id".into()),
        };
        let github = match (
            pick(&args.github_client_id, &file.github_client_id),
            pick(&args.github_client_secret, &file.github_client_secret),
        ) {
            (Some(client_id), Some(client_secret)) => Some(GithubConfig {
                client_id,
                client_secret,
                web_url: pick(&args.github_url, &file.github_url).unwrap_or_else(|| "https://github.com".into()),
                api_url: pick(&args.github_api_url, &file.github_api_url)
                    .unwrap_or_else(|| "https://api.github.com".into()),
            }),
            (None, None) => None,
            _ => return Err("signing in with GitHub needs both github_client_id and github_client_secret".into()),
        };
        let public_url = pick(&args.public_url, &file.public_url).unwrap_or_else(|| format!("http://{addr}"));
        let auth = AuthConfig { sso: SsoConfig { public_url, oidc, github }, ..auth };
        if auth.access_ttl < Duration::from_secs(10) || auth.refresh_ttl < auth.access_ttl {
            return Err("access_token_ttl_secs must be at least 10, and refresh_token_ttl_secs at least as long".into());
        }
        let run_workers = args.workers.or(file.workers).unwrap_or(true);
        let fetch_models = args.fetch_models.or(file.fetch_models).unwrap_or(true);
        let (jobs, worker) = jobs(&args.jobs, &file)?;
        let history = history(&args.jobs, &file)?;
        let outbound = outbound(&args.jobs, &file)?;
        let builds = builds(&args.jobs, &file)?;
        let queues_given = args.jobs.worker_queues.is_some() || file.worker_queues.is_some();
        let server = ServerConfig { jobs, history, outbound, builds, ..server };
        let mut settings = Self::resolve(args.common, file, addr, server)?;
        settings.auth = auth;
        settings.run_workers = run_workers;
        settings.fetch_models = fetch_models;
        settings.worker = worker;
        settings.take_builds(queues_given);
        Ok(settings)
    }

    /// Resolves `worker`'s settings.
    pub fn for_worker(args: WorkerArgs) -> Result<Settings, String> {
        let file = read_file(args.common.config.as_deref())?;
        let (jobs, worker) = jobs(&args.jobs, &file)?;
        let history = history(&args.jobs, &file)?;
        let outbound = outbound(&args.jobs, &file)?;
        let builds = builds(&args.jobs, &file)?;
        let queues_given = args.jobs.worker_queues.is_some() || file.worker_queues.is_some();
        let addr = file.addr.unwrap_or_else(|| "127.0.0.1:7420".parse().expect("valid default"));
        let server = ServerConfig { jobs, history, outbound, builds, ..ServerConfig::default() };
        let mut settings = Self::resolve(args.common, file, addr, server)?;
        settings.worker = worker;
        settings.take_builds(queues_given);
        Ok(settings)
    }

    /// A worker with an Armbian checkout takes the `builds` queue too, unless its queues
    /// were named.
    fn take_builds(&mut self, queues_given: bool) {
        let queue = quire_app::builds::QUEUE.to_string();
        if !queues_given && self.server.armbian_dir.is_some() && !self.worker.queues.contains(&queue) {
            self.worker.queues.push(queue);
        }
    }

    /// Resolves the settings every command shares.
    pub fn for_common(args: CommonArgs) -> Result<Settings, String> {
        let file = read_file(args.config.as_deref())?;
        let addr = file.addr.unwrap_or_else(|| "127.0.0.1:7420".parse().expect("valid default"));
        Self::resolve(args, file, addr, ServerConfig::default())
    }

    fn resolve(
        args: CommonArgs,
        file: FileSettings,
        addr: SocketAddr,
        server: ServerConfig,
    ) -> Result<Settings, String> {
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("quire-data"));
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("quire.db").display()));
        let d = Limits::default();
        let limits = Limits {
            max_workspaces: args.max_workspaces.or(file.max_workspaces).unwrap_or(d.max_workspaces),
            max_documents_per_workspace: args
                .max_documents_per_workspace
                .or(file.max_documents_per_workspace)
                .unwrap_or(d.max_documents_per_workspace),
            max_title_chars: args.max_title_chars.or(file.max_title_chars).unwrap_or(d.max_title_chars),
            max_metadata_bytes: args.max_metadata_bytes.or(file.max_metadata_bytes).unwrap_or(d.max_metadata_bytes),
            ..d
        };
        if limits.max_workspaces < 1 || limits.max_documents_per_workspace < 1 || limits.max_title_chars < 1 {
            return Err("limits must be at least 1".into());
        }
        let mut server = server;
        server.history.dir = data_dir.join("history");
        let d = quire_app::assets::AssetsConfig::default();
        let location = match args.assets.or(file.assets) {
            Some(url) if url.starts_with("s3://") => {
                quire_app::assets::AssetLocation::S3 { url, endpoint: args.assets_endpoint.or(file.assets_endpoint) }
            }
            Some(dir) => quire_app::assets::AssetLocation::Local(PathBuf::from(dir)),
            None => quire_app::assets::AssetLocation::Local(data_dir.join("assets")),
        };
        let quota_mb = args.asset_quota_mb.or(file.asset_quota_mb).unwrap_or(d.quota_bytes >> 20);
        let upload_mb = args.max_upload_mb.or(file.max_upload_mb).unwrap_or(d.limits.max_bytes >> 20);
        if quota_mb < 1 || !(1..=1024).contains(&upload_mb) {
            return Err("asset_quota_mb must be at least 1, and max_upload_mb 1 to 1024".into());
        }
        let grace_days = args.asset_grace_days.or(file.asset_grace_days).unwrap_or(d.gc_grace.as_secs() / 86_400);
        if !(1..=3650).contains(&grace_days) {
            return Err(format!("asset_grace_days must be 1 to 3650 (a day to ten years), not {grace_days}"));
        }
        server.assets = quire_app::assets::AssetsConfig {
            location,
            quota_bytes: quota_mb << 20,
            gc_grace: std::time::Duration::from_secs(grace_days * 86_400),
            limits: quire_app::assets::UploadLimits { max_bytes: upload_mb << 20, ..d.limits },
            ..d
        };
        server.armbian_dir = args.armbian_dir.or(file.armbian_dir);
        server.local_models = quire_app::ai::local::LocalConfig {
            dir: Some(args.models_dir.or(file.models_dir).unwrap_or_else(|| data_dir.join("models"))),
            text: args.text_model.or(file.text_model),
            embedding: args.embedding_model.or(file.embedding_model),
        };
        Ok(Settings {
            data_dir,
            database_url,
            db_max_connections: args.db_max_connections.or(file.db_max_connections).unwrap_or(10).max(1),
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            log_filter: args.log_filter.or(file.log).unwrap_or_else(|| "info".into()),
            secret_keys: args.secret_keys.or(file.secret_keys),
            limits,
            addr,
            server,
            auth: AuthConfig::default(),
            run_workers: false,
            fetch_models: false,
            worker: quire_jobs::WorkerConfig::default(),
        })
    }

    /// The keys that seal secrets: the given ones, or the data directory's `secret-keys` file,
    /// which is created with a new key (readable by its owner only) when missing.
    pub fn keyring(&self) -> Result<Keyring, String> {
        let text = match &self.secret_keys {
            Some(keys) => keys.clone(),
            None => {
                let path = self.key_file();
                match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let text = format!("{}\n", quire_auth::secrets::generate_key());
                        write_private(&path, &text)?;
                        text
                    }
                    Err(e) => return Err(format!("cannot read the secret keys in {}: {e}", path.display())),
                }
            }
        };
        Keyring::parse(&text).map_err(|e| format!("the secret keys are not valid: {e}"))
    }

    /// Where the secret keys live when none are given.
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("secret-keys")
    }
}

/// The engine's and the worker's settings from flags, variables and the file.
/// Board builds' settings.
fn builds(args: &JobArgs, file: &FileSettings) -> Result<quire_app::builds::BuildsConfig, String> {
    let d = quire_app::builds::BuildsConfig::default();
    let mins = args.build_time_limit_mins.or(file.build_time_limit_mins).unwrap_or(d.time_limit.as_secs() / 60);
    if !(1..=7 * 24 * 60).contains(&mins) {
        return Err(format!("build_time_limit_mins must be 1 to 10080 (a week), not {mins}"));
    }
    Ok(quire_app::builds::BuildsConfig { time_limit: Duration::from_secs(mins * 60), ..d })
}

fn jobs(args: &JobArgs, file: &FileSettings) -> Result<(quire_jobs::EngineConfig, quire_jobs::WorkerConfig), String> {
    let engine = quire_jobs::EngineConfig::default();
    let worker = quire_jobs::WorkerConfig::default();
    let lease = args.job_lease_secs.or(file.job_lease_secs).map_or(engine.lease, Duration::from_secs);
    if lease < Duration::from_secs(3) {
        return Err("job_lease_secs must be at least 3".into());
    }
    let retention_days = args.job_retention_days.or(file.job_retention_days).unwrap_or(30);
    if retention_days < 1 {
        return Err("job_retention_days must be at least 1".into());
    }
    let concurrency = args.worker_concurrency.or(file.worker_concurrency).unwrap_or(worker.concurrency);
    if !(1..=1024).contains(&concurrency) {
        return Err("worker_concurrency must be 1 to 1024".into());
    }
    let queues: Vec<String> = args
        .worker_queues
        .clone()
        .or(file.worker_queues.clone())
        .unwrap_or_else(|| vec!["default".into(), quire_app::history::QUEUE.into(), quire_app::assets::QUEUE.into()])
        .into_iter()
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty())
        .collect();
    if queues.is_empty() {
        return Err("worker_queues must name at least one queue, e.g. default".into());
    }
    let queue_limits = match args.queue_limits.as_ref().or(file.queue_limits.as_ref()) {
        None => Vec::new(),
        Some(spec) => parse_queue_limits(spec)?,
    };
    let engine = quire_jobs::EngineConfig {
        lease,
        retention: Duration::from_secs(retention_days * 86_400),
        queue_limits,
        ..engine
    };
    Ok((engine, quire_jobs::WorkerConfig { queues, concurrency, ..worker }))
}

/// Where requests to URLs users configure may go, beyond public addresses.
fn outbound(args: &JobArgs, file: &FileSettings) -> Result<quire_net::Outbound, String> {
    let list = args.outbound_allow.as_deref().or(file.outbound_allow.as_deref()).unwrap_or("");
    quire_net::Outbound::parse(list).map_err(|e| format!("outbound_allow: {e} (set --outbound-allow)"))
}

/// Version history's settings (its folder is set with the data directory).
fn history(args: &JobArgs, file: &FileSettings) -> Result<quire_app::history::HistoryConfig, String> {
    let d = quire_app::history::HistoryConfig::default();
    let debounce = args.history_debounce_ms.or(file.history_debounce_ms).map_or(d.debounce, Duration::from_millis);
    if debounce > Duration::from_secs(60) {
        return Err("history_debounce_ms must be at most 60000".into());
    }
    let keep = args.history_keep.or(file.history_keep).unwrap_or(d.keep);
    if keep < 1 {
        return Err("history_keep must be at least 1".into());
    }
    let patch_max_chars = args.history_patch_chars.or(file.history_patch_chars).unwrap_or(d.thresholds.patch_max_chars);
    Ok(quire_app::history::HistoryConfig {
        debounce,
        keep,
        thresholds: quire_history::Thresholds { patch_max_chars },
        ..d
    })
}

/// `builds=2,images=1` → `[("builds", 2), ("images", 1)]`.
fn parse_queue_limits(spec: &str) -> Result<Vec<(String, u32)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let bad = || format!("queue_limits: '{part}' is not QUEUE=N (e.g. builds=2) with N at least 1");
            let (queue, n) = part.split_once('=').ok_or_else(bad)?;
            let n: u32 = n.trim().parse().map_err(|_| bad())?;
            if queue.trim().is_empty() || n == 0 {
                return Err(bad());
            }
            Ok((queue.trim().to_string(), n))
        })
        .collect()
}

/// Writes `text` to `path`, readable and writable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}-{name}", quire_core::new_id("cfg")));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let path = write(
            "q.toml",
            "addr = \"127.0.0.1:9000\"\nmax_body_bytes = 10\ndata_dir = \"/tmp/x\"\nlog_format = \"json\"\n",
        );
        let args = ServeArgs {
            common: CommonArgs { config: Some(path.clone()), ..Default::default() },
            max_body_bytes: Some(20),
            ..Default::default()
        };
        let s = Settings::for_serve(args).unwrap();
        assert_eq!(s.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.server.max_body_bytes, 20);
        assert_eq!(s.database_url, "sqlite:///tmp/x/quire.db");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.limits, Limits::default());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn history_settings_come_from_the_file_and_flags() {
        let path = write("h.toml", "data_dir = \"/tmp/h\"\nhistory_keep = 7\nhistory_patch_chars = 5\n");
        let args = ServeArgs {
            common: CommonArgs { config: Some(path.clone()), ..Default::default() },
            jobs: JobArgs { history_debounce_ms: Some(250), history_keep: Some(9), ..Default::default() },
            ..Default::default()
        };
        let s = Settings::for_serve(args).unwrap();
        let h = &s.server.history;
        assert_eq!(
            (h.keep, h.thresholds.patch_max_chars, h.debounce, h.dir.as_path()),
            (9, 5, Duration::from_millis(250), std::path::Path::new("/tmp/h/history"))
        );
        let w = Settings::for_worker(WorkerArgs {
            common: CommonArgs { config: Some(path.clone()), ..Default::default() },
            ..Default::default()
        })
        .unwrap();
        assert_eq!((w.server.history.keep, w.worker.queues.join(",")), (7, "default,history,assets".to_string()));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_asset_store_is_in_the_data_directory_or_where_it_is_told() {
        use quire_app::assets::AssetLocation;
        let s = Settings::for_serve(ServeArgs {
            common: CommonArgs { data_dir: Some("/tmp/d".into()), ..Default::default() },
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.server.assets.location, AssetLocation::Local("/tmp/d/assets".into()));
        assert_eq!((s.server.assets.quota_bytes, s.server.assets.limits.max_bytes), (10 << 30, 25 << 20));
        assert_eq!(s.server.assets.gc_grace, std::time::Duration::from_secs(7 * 86_400));
        let path = write("a.toml", "assets = \"s3://quire-images\"\nassets_endpoint = \"http://127.0.0.1:9000\"\n");
        let common = CommonArgs {
            config: Some(path.clone()),
            asset_quota_mb: Some(500),
            asset_grace_days: Some(30),
            max_upload_mb: Some(8),
            ..Default::default()
        };
        let s = Settings::for_serve(ServeArgs { common, ..Default::default() }).unwrap();
        assert_eq!(
            s.server.assets.location,
            AssetLocation::S3 { url: "s3://quire-images".into(), endpoint: Some("http://127.0.0.1:9000".into()) }
        );
        assert_eq!((s.server.assets.quota_bytes, s.server.assets.limits.max_bytes), (500 << 20, 8 << 20));
        assert_eq!(s.server.assets.gc_grace, std::time::Duration::from_secs(30 * 86_400));
        let never = CommonArgs { asset_grace_days: Some(0), ..Default::default() };
        let err = Settings::for_serve(ServeArgs { common: never, ..Default::default() }).unwrap_err();
        assert!(err.contains("asset_grace_days must be 1 to 3650"), "{err}");
        let bad = CommonArgs { max_upload_mb: Some(0), ..Default::default() };
        let err = Settings::for_serve(ServeArgs { common: bad, ..Default::default() }).unwrap_err();
        assert!(err.contains("max_upload_mb"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let s = Settings::for_serve(ServeArgs::default()).unwrap();
        assert_eq!(s.addr, "127.0.0.1:7420".parse().unwrap());
        assert_eq!(s.database_url, "sqlite://quire-data/quire.db");
        assert_eq!(s.server.max_body_bytes, 1024 * 1024);
        assert_eq!(s.server.max_ws_message_bytes, 16 * 1024 * 1024);
        let small = ServeArgs { max_ws_message_bytes: Some(10), ..Default::default() };
        let err = Settings::for_serve(small).unwrap_err();
        assert!(err.contains("--max-ws-message-bytes"), "{err}");
        let set = ServeArgs { max_ws_message_bytes: Some(1 << 20), ..Default::default() };
        assert_eq!(Settings::for_serve(set).unwrap().server.max_ws_message_bytes, 1 << 20);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let path = write("bad.toml", "adress = \"x\"\n");
        let err = Settings::for_serve(ServeArgs {
            common: CommonArgs { config: Some(path.clone()), ..Default::default() },
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("unknown field") && err.contains("adress"), "{err}");
        std::fs::remove_file(path).unwrap();
        let err = Settings::for_common(CommonArgs { config: Some("/nonexistent/q.toml".into()), ..Default::default() })
            .unwrap_err();
        assert!(err.contains("cannot read the settings file"), "{err}");
    }
}
