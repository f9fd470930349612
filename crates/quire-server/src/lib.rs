//! Quire's HTTP layer: a thin axum router over the application services (`quire-app`) and
//! the engine crates.
//!
//! The handlers in [`routes`] translate HTTP into calls on the services and the [`Store`]
//! and back; everything about
//! transport lives here and nowhere else: JSON error mapping ([`error::ApiError`], the one
//! place errors become statuses), extractors that never answer in plain text, ETags and
//! conditional requests, the SSE tail of the event outbox, Prometheus metrics, request ids
//! and the OpenAPI document, generated from the handlers' annotations.
//!
//! ```no_run
//! # async fn demo() -> quire_core::Result<()> {
//! use quire_server::{App, ServerConfig};
//! let store = quire_store::connect("sqlite://quire-data/quire.db", Default::default()).await?;
//! store.migrate().await?;
//! let app = App::new(store, ServerConfig::default(), Default::default()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7420").await.unwrap();
//! quire_server::serve(listener, app, std::future::pending()).await.unwrap();
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use quire_auth::{Auth, AuthConfig};
use quire_core::Principal;
use quire_store::Store;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub mod audit;
pub mod error;
pub mod extract;
pub mod graphql;
pub mod metrics;
pub mod ratelimit;
pub mod redact;
pub mod routes;
pub mod web;
pub mod ws;

use error::ApiError;
use quire_app::pipelines::{engine_config, registry};
use quire_app::{ai, history};

/// Transport settings. Storage limits live in [`quire_core::Limits`], held by the store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// How often an idle event stream re-reads the outbox when no wake-up arrived
    /// (wake-ups cover this process and, on PostgreSQL, every other).
    pub events_poll_interval: Duration,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Duration,
    /// Mark session cookies `Secure` (serve over HTTPS, or behind a TLS proxy, when on).
    pub cookie_secure: bool,
    /// Origins allowed to call the API from a browser (CORS); empty allows none.
    pub cors_origins: Vec<String>,
    /// Request limits per route class.
    pub rate_limits: ratelimit::RateLimits,
    /// Redis for counters shared by every node; `None` keeps them in memory.
    pub redis_url: Option<String>,
    /// How many proxies stand in front of Quire, each appending the address it saw to
    /// `X-Forwarded-For`: the client is the entry the outermost one added (that many from
    /// the right). 0 (the default) ignores the header and takes the connection's peer.
    pub trusted_proxies: usize,
    /// How long audit entries are kept.
    pub audit_retention: Duration,
    /// How long AI interactions are kept.
    pub ai_log_retention: Duration,
    /// Audit entries waiting to be written, at most.
    pub audit_queue: usize,
    /// When set, `/metrics` answers only to `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// Largest WebSocket message a collaboration client may send.
    pub max_ws_message_bytes: usize,
    /// Event streams and collaboration sockets one user or API key may hold open on one
    /// node at once; past it, opening another answers 429.
    pub max_connections_per_caller: usize,
    /// The collaboration engine's settings.
    pub collab: quire_collab::CollabConfig,
    /// The pipeline engine's settings.
    pub jobs: quire_jobs::EngineConfig,
    pub history: history::HistoryConfig,
    /// Where local models are (none by default; the CLI looks in `<data dir>/models`).
    pub local_models: ai::local::LocalConfig,
    /// Which addresses requests to URLs that users configure (git remotes; later webhooks
    /// and integrations) may reach: public ones, and the networks an instance admin allows.
    pub outbound: quire_net::Outbound,
    /// The asset store (images, files): where, the upload limits and each workspace's quota.
    pub assets: quire_app::assets::AssetsConfig,
    /// The Armbian build framework checkout whose boards and releases the build schema is
    /// derived from (and builds run in); the shipped schema without one.
    pub armbian_dir: Option<std::path::PathBuf>,
    /// Board builds' time limit and how their process groups are stopped.
    pub builds: quire_app::builds::BuildsConfig,
}

impl ServerConfig {
    /// Version history's settings, with the instance's outbound policy.
    pub fn history_config(&self) -> history::HistoryConfig {
        history::HistoryConfig { outbound: self.outbound.clone(), ..self.history.clone() }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 1024 * 1024,
            events_poll_interval: Duration::from_secs(2),
            sse_keep_alive: Duration::from_secs(15),
            cookie_secure: false,
            cors_origins: Vec::new(),
            rate_limits: ratelimit::RateLimits::default(),
            redis_url: None,
            trusted_proxies: 0,
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            ai_log_retention: Duration::from_secs(90 * 24 * 3600),
            audit_queue: 10_000,
            metrics_token: None,
            max_ws_message_bytes: 16 * 1024 * 1024,
            max_connections_per_caller: 100,
            collab: quire_collab::CollabConfig::default(),
            jobs: quire_jobs::EngineConfig::default(),
            history: history::HistoryConfig::default(),
            local_models: ai::local::LocalConfig::default(),
            outbound: quire_net::Outbound::public_only(),
            assets: quire_app::assets::AssetsConfig::default(),
            armbian_dir: None,
            builds: quire_app::builds::BuildsConfig::default(),
        }
    }
}

/// What every handler can reach: the store, the settings and the shutdown signal.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

struct AppInner {
    store: Arc<dyn Store>,
    auth: Arc<Auth>,
    counters: ratelimit::Counters,
    auditor: audit::Auditor,
    collab: Arc<quire_collab::Collab>,
    engine: quire_jobs::Engine,
    ai: Arc<ai::Ai>,
    history: Arc<history::History>,
    assets: Arc<quire_app::assets::Assets>,
    board_configs: Arc<quire_app::board_configs::BoardConfigs>,
    builds: Arc<quire_app::builds::Builds>,
    config_files: Arc<quire_app::config_files::ConfigFiles>,
    drafts: quire_app::drafts::Drafts,
    access: tokio::sync::broadcast::Sender<routes::collab::AccessChange>,
    connections: Arc<Connections>,
    config: ServerConfig,
    shutdown: watch::Sender<bool>,
}

impl App {
    /// The application over `store`, with the identity service started on it (which follows
    /// session revocations until shutdown).
    pub async fn new(store: Arc<dyn Store>, config: ServerConfig, auth: AuthConfig) -> quire_core::Result<App> {
        let auth = Auth::new(store.clone(), auth).await?;
        let counters = match &config.redis_url {
            Some(url) => ratelimit::Counters::redis(url).await.map_err(quire_core::Error::Unavailable)?,
            None => ratelimit::Counters::memory(),
        };
        let auditor = audit::start(store.clone(), config.audit_queue);
        let mut collab_config = config.collab.clone();
        // A client may send one message as large as the socket allows at once.
        let burst = &mut collab_config.session.update_bytes_burst;
        *burst = (*burst).max(config.max_ws_message_bytes);
        let collab = quire_collab::Collab::new(store.clone(), collab_config);
        let access = tokio::sync::broadcast::channel(1024).0;
        let ai = Arc::new(ai::Ai::new(
            store.clone(),
            auth.config().keyring.clone(),
            collab.clone(),
            config.local_models.clone(),
        ));
        let history = history::History::new(
            store.clone(),
            collab.clone(),
            config.history_config(),
            config.jobs.limits.clone(),
            auth.config().keyring.clone(),
        );
        let observer: Arc<dyn quire_collab::ChangeObserver> = history.clone();
        collab.set_observer(&observer);
        let assets = quire_app::assets::Assets::new(
            store.clone(),
            &auth.config().keyring,
            config.assets.clone(),
            config.jobs.limits.clone(),
        )
        .await?;
        let board_configs =
            quire_app::board_configs::BoardConfigs::new(store.clone(), collab.clone(), config.armbian_dir.clone())?;
        let builds = quire_app::builds::Builds::new(
            store.clone(),
            collab.clone(),
            board_configs.clone(),
            assets.clone(),
            config.builds.clone(),
        );
        let config_files = quire_app::config_files::ConfigFiles::new(store.clone(), collab.clone(), assets.clone());
        let engine = quire_jobs::Engine::new(
            store.clone(),
            registry(ai.clone(), history.clone(), assets.clone(), builds.clone()),
            engine_config(&config.jobs),
        );
        quire_app::pipelines::prepare(&engine, config.assets.gc_grace).await?;
        let drafts = quire_app::drafts::Drafts::new(store.clone(), collab.clone(), history.clone());
        let app = App(Arc::new(AppInner {
            store,
            auth,
            counters,
            auditor,
            collab,
            engine,
            ai,
            history,
            assets,
            board_configs,
            builds,
            config_files,
            drafts,
            access,
            connections: Arc::default(),
            config,
            shutdown: watch::channel(false).0,
        }));
        app.0.collab.spawn_janitor(app.shutdown_signal());
        if let Some(url) = &app.0.config.redis_url {
            quire_app::relay::start(app.0.collab.clone(), url, app.shutdown_signal())
                .await
                .map_err(quire_core::Error::Unavailable)?;
        }
        // Generated images kept in the database before the asset store move into it.
        let assets = app.0.assets.clone();
        tokio::spawn(async move {
            match assets.move_blobs().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(moved = n, store = assets.objects().location(), "images moved to the asset store")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "moving images to the asset store failed; the next start tries again")
                }
            }
        });
        app.follow_access_changes();
        app.0.auth.follow_revocations(app.shutdown_signal(), app.0.config.events_poll_interval);
        quire_app::maintenance::expire_logs_hourly(
            app.store().clone(),
            app.config().audit_retention,
            app.config().ai_log_retention,
            app.shutdown_signal(),
        );
        Ok(app)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.0.auth
    }

    pub fn auditor(&self) -> &audit::Auditor {
        &self.0.auditor
    }

    pub fn collab(&self) -> &Arc<quire_collab::Collab> {
        &self.0.collab
    }

    /// The pipeline engine: submits contexts; `quire serve` starts its workers.
    pub fn engine(&self) -> &quire_jobs::Engine {
        &self.0.engine
    }

    /// Version history: documents' versions, their repositories.
    pub fn history(&self) -> &Arc<history::History> {
        &self.0.history
    }

    /// The asset store: uploads, thumbnails, signed URLs.
    pub fn assets(&self) -> &Arc<quire_app::assets::Assets> {
        &self.0.assets
    }

    pub fn board_configs(&self) -> &Arc<quire_app::board_configs::BoardConfigs> {
        &self.0.board_configs
    }

    pub fn config_files(&self) -> &Arc<quire_app::config_files::ConfigFiles> {
        &self.0.config_files
    }

    pub fn builds(&self) -> &Arc<quire_app::builds::Builds> {
        &self.0.builds
    }

    /// AI drafts approved into their documents.
    pub fn drafts(&self) -> &quire_app::drafts::Drafts {
        &self.0.drafts
    }

    /// AI providers and the workspaces' choice of them.
    pub fn ai(&self) -> &Arc<ai::Ai> {
        &self.0.ai
    }

    /// Changes of membership, shares, sessions and deletions, for open sockets to recheck.
    pub fn access_changes(&self) -> tokio::sync::broadcast::Receiver<routes::collab::AccessChange> {
        self.0.access.subscribe()
    }

    /// Resolves when `who`'s credential ends — its access token expires (`expires`, Unix
    /// seconds), its session is signed out, its API key is revoked — or the server stops,
    /// and says why. Long-lived responses (event streams) end then, as collaboration sockets
    /// do; the client's reconnection is then authenticated afresh.
    pub fn credential_ended(
        &self,
        who: Principal,
        expires: Option<u64>,
    ) -> impl std::future::Future<Output = &'static str> + Send + 'static {
        let mut access = self.access_changes();
        let mut shutdown = self.shutdown_signal();
        async move { ended(&who, expires, &mut access, &mut shutdown).await }
    }

    fn follow_access_changes(&self) {
        let app = self.clone();
        let mut shutdown = self.shutdown_signal();
        tokio::spawn(async move {
            let Ok(start) = app.store().last_event_id().await else { return };
            let filter = quire_core::EventFilter {
                workspace_id: None,
                names: routes::collab::AccessChange::EVENTS.iter().map(|s| s.to_string()).collect(),
            };
            let poll = app.config().events_poll_interval;
            let mut tail = quire_store::EventTail::new(app.store().clone(), Principal::System, start, filter, poll);
            loop {
                tokio::select! {
                    event = tail.next() => { let _ = app.0.access.send(routes::collab::AccessChange::from_event(&event)); }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    /// The rate limit counters (in memory, or Redis).
    pub fn rate_counters(&self) -> &ratelimit::Counters {
        &self.0.counters
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// Flips to `true` when the server begins shutting down; long-lived responses end then.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    /// Ends event streams so that a graceful shutdown can finish.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }
}

impl ServerConfig {
    /// What `quire worker` builds its services from.
    pub fn worker_services(&self) -> quire_app::pipelines::WorkerServices {
        quire_app::pipelines::WorkerServices {
            collab: self.collab.clone(),
            history: self.history_config(),
            limits: self.jobs.limits.clone(),
            local_models: self.local_models.clone(),
            armbian_dir: self.armbian_dir.clone(),
            builds: self.builds.clone(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Quire API",
        description = "Workspaces, documents and their events. Errors are `{\"error\":{\"code\",\"message\"}}` with the matching HTTP status.",
        license(name = "AGPL-3.0-or-later")
    ),
    tags(
        (name = "auth", description = "Accounts, sessions and tokens"),
        (name = "workspaces", description = "Workspaces hold documents and members"),
        (name = "access", description = "Members, invitations, API keys and document shares"),
        (name = "documents", description = "PRDs, moodboards and board configurations"),
        (name = "board-configs", description = "The Armbian build schema and board configurations checked against it"),
        (name = "builds", description = "Board builds: queued from a checked configuration, their live logs and artifacts"),
        (name = "graphql", description = "The GraphQL API over the same services and permissions; subscriptions over graphql-transport-ws"),
        (name = "assets", description = "Images a workspace keeps: uploads, thumbnails, signed URLs"),
        (name = "events", description = "The event outbox as a live, resumable stream"),
        (name = "contexts", description = "Pipelines: contexts, their events, templates, components and workers"),
        (name = "ai", description = "AI providers, prompt templates, the taxonomy, streamed generation and its log"),
        (name = "operations", description = "Health, readiness, metrics and the audit trail")
    )
)]
struct ApiDoc;

/// The router and the OpenAPI document it is described by, built from the same list.
fn api() -> (Router<App>, utoipa::openapi::OpenApi) {
    use routes::{access, auth, contexts, documents, events, ops, workspaces};
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::sso_providers))
        .routes(routes!(auth::sso_start))
        .routes(routes!(auth::sso_callback))
        .routes(routes!(auth::me))
        .routes(routes!(auth::list_users))
        .routes(routes!(auth::revoke_sessions))
        .routes(routes!(auth::my_sessions))
        .routes(routes!(auth::end_session))
        .routes(routes!(access::list_members))
        .routes(routes!(access::set_member, access::remove_member))
        .routes(routes!(access::list_invitations, access::create_invitation))
        .routes(routes!(access::revoke_invitation))
        .routes(routes!(access::accept_invitation))
        .routes(routes!(access::list_api_keys, access::create_api_key))
        .routes(routes!(access::revoke_api_key))
        .routes(routes!(access::list_shares, access::put_share))
        .routes(routes!(access::remove_share))
        .routes(routes!(routes::audit::list_audit))
        .routes(routes!(routes::collab::collab_socket))
        .routes(routes!(routes::collab::presence))
        .routes(routes!(routes::collab::read_content, routes::collab::write_content, routes::collab::patch_content))
        .routes(routes!(routes::board_configs::get_build_schema))
        .routes(routes!(routes::board_configs::refresh_build_schema))
        .routes(routes!(routes::board_configs::validate_board_config))
        .routes(routes!(routes::board_configs::board_config_validation))
        .routes(routes!(routes::builds::start, routes::builds::list))
        .routes(routes!(routes::builds::get))
        .routes(routes!(routes::builds::log))
        .routes(routes!(routes::builds::artifact))
        .routes(routes!(routes::live::live_socket))
        .routes(routes!(routes::graphql::graphql))
        .routes(routes!(routes::graphql::graphql_schema))
        .routes(routes!(routes::graphql::graphql_socket))
        .routes(routes!(routes::config_files::list))
        .routes(routes!(
            routes::config_files::put,
            routes::config_files::read,
            routes::config_files::change,
            routes::config_files::delete
        ))
        .routes(routes!(routes::config_files::versions))
        .routes(routes!(
            routes::preferences::get_preference,
            routes::preferences::put_preference,
            routes::preferences::delete_preference
        ))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(workspaces::get, workspaces::update, workspaces::delete))
        .routes(routes!(workspaces::restore))
        .routes(routes!(routes::blobs::get_blob))
        .routes(routes!(routes::assets::list, routes::assets::upload))
        .routes(routes!(routes::assets::get))
        .routes(routes!(routes::assets::file))
        .routes(routes!(routes::assets::signed_file))
        .routes(routes!(routes::builds::signed_artifact))
        .routes(routes!(documents::list, documents::create))
        .routes(routes!(documents::get, documents::update, documents::delete))
        .routes(routes!(documents::restore))
        .routes(routes!(routes::history::list_versions))
        .routes(routes!(routes::history::get_version, routes::history::name_version))
        .routes(routes!(routes::history::restore_version))
        .routes(routes!(routes::history::section_authors))
        .routes(routes!(routes::history::diff_versions))
        .routes(routes!(routes::history::changelog))
        .routes(routes!(routes::history::get_remote, routes::history::put_remote, routes::history::delete_remote))
        .routes(routes!(events::stream_events))
        .routes(routes!(contexts::list, contexts::submit))
        .routes(routes!(contexts::submit_batch))
        .routes(routes!(contexts::get))
        .routes(routes!(contexts::cancel))
        .routes(routes!(contexts::retry))
        .routes(routes!(contexts::approve))
        .routes(routes!(contexts::events))
        .routes(routes!(contexts::list_templates, contexts::create_template))
        .routes(routes!(contexts::get_template))
        .routes(routes!(contexts::components))
        .routes(routes!(contexts::workers))
        .routes(routes!(routes::ai::prd_sections))
        .routes(routes!(routes::ai::room_types))
        .routes(routes!(routes::ai::design_styles))
        .routes(routes!(routes::ai::templates, routes::ai::create_template))
        .routes(routes!(routes::ai::get_template))
        .routes(routes!(routes::ai::providers))
        .routes(routes!(routes::ai::put_provider, routes::ai::delete_provider))
        .routes(routes!(routes::ai::get_default, routes::ai::put_default))
        .routes(routes!(routes::ai::get_workspace_ai, routes::ai::put_workspace_ai))
        .routes(routes!(routes::ai::generate))
        .routes(routes!(routes::ai::embeddings))
        .routes(routes!(routes::ai::interactions))
        .split_for_parts();
    (router, complete(doc))
}

/// Operations that take no principal's credential (sign-in itself, health; `/metrics` has a
/// token of its own).
const PUBLIC_OPERATIONS: [&str; 9] =
    ["signup", "login", "refresh", "sso_providers", "sso_start", "sso_callback", "healthz", "readyz", "metrics"];

/// What the route annotations leave out of the document: how to authenticate (so the API
/// console can send a token), a description for every response (OpenAPI requires one), and
/// the license's SPDX identifier.
fn complete(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.bearer_format = Some("an access token (JWT) or an API key (qk_…)".into());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            routes::auth::ACCESS_COOKIE,
            "The session cookie a sign-in with \"cookie\": true sets; state-changing requests also send the \
             quire_csrf cookie's value in X-CSRF-Token",
        ))),
    );
    components.add_security_scheme(
        "token",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "token",
            "An access token or API key in the query, for WebSocket clients that cannot set headers",
        ))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("cookie", Vec::<String>::new()),
    ]);
    if let Some(license) = doc.info.license.as_mut() {
        license.identifier = Some("AGPL-3.0-or-later".into());
    }
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            match op.operation_id.as_deref() {
                Some(id) if PUBLIC_OPERATIONS.contains(&id) => op.security = Some(vec![SecurityRequirement::default()]),
                Some("collab_socket") => {
                    op.security = Some(
                        ["token", "bearer", "cookie"]
                            .into_iter()
                            .map(|s| SecurityRequirement::new(s, Vec::<String>::new()))
                            .collect(),
                    );
                }
                _ => {}
            }
            for (status, response) in op.responses.responses.iter_mut() {
                if let utoipa::openapi::RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    r.description = describe(status).into();
                }
            }
        }
    }
    doc
}

/// What a status means in Quire's API, for responses whose route says no more.
fn describe(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: the work goes on in the background",
        "204" => "Done; no body",
        "304" => "Not modified since the ETag sent in If-None-Match",
        "400" => {
            "A malformed request: invalid JSON, query or header (`invalid_json`, `invalid_query`, `invalid_cursor`)"
        }
        "401" => "No credential, or one that is not valid (`unauthenticated`, `invalid_token`)",
        "403" => "The caller's role does not allow this (`forbidden`, `csrf_failed`)",
        "404" => "Not found, or not visible to the caller",
        "409" => "In conflict with the current state (`conflict`)",
        "412" => "The If-Match ETag is stale: fetch again and reapply (`precondition_failed`)",
        "413" => "Larger than the server's limit (`payload_too_large`)",
        "415" => "Not sent as JSON (`unsupported_media_type`)",
        "422" => "A field is missing or invalid; `field` names it (`invalid_request`, `limit_exceeded`)",
        "429" => "Too many requests; Retry-After says when to try again (`rate_limited`)",
        "502" => "An upstream service (an AI provider) answered with an error",
        "503" => "A service Quire needs is not available (`unavailable`)",
        "504" => "An upstream service (an AI provider) did not answer in time",
        _ => "See the error body",
    }
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// See [`App::credential_ended`].
async fn ended(
    who: &Principal,
    expires: Option<u64>,
    access: &mut tokio::sync::broadcast::Receiver<routes::collab::AccessChange>,
    shutdown: &mut watch::Receiver<bool>,
) -> &'static str {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let left = expires.map_or(Duration::from_secs(u64::MAX / 4), |e| Duration::from_secs(e.saturating_sub(now)));
    let expiry = tokio::time::sleep(left);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = &mut expiry => return "the access token expired",
            _ = shutdown.changed() => return "the server is stopping",
            change = access.recv() => match change {
                Ok(c) if c.revokes(who) => return "the API key was revoked",
                Ok(c) if matches!(who, Principal::User { session: Some(sid), .. } if c.sessions.contains(sid)) => {
                    return "the session was signed out";
                }
                Ok(_) => {}
                // Changes were missed: the client reconnects and is checked again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return "access changes were missed",
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return "the server is stopping",
            },
        }
    }
}

/// Every route, with its middleware: request ids, tracing, metrics, panics as JSON 500s,
/// the body limit and the acting principal.
pub fn router(app: App) -> Router {
    metrics::init();
    let (routes, doc) = api();
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", doc))
        .fallback(web::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), ratelimit::limit))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), audit::audit))
        .layer(DefaultBodyLimit::max(app.config().max_body_bytes))
        .layer(middleware::from_fn(metrics::track))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed unexpectedly; the server log has the details",
            )
            .into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    let uri = redact::uri(req.uri());
                    tracing::info_span!("request", method = %req.method(), uri = %uri, request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(cors(&app.config().cors_origins))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .with_state(app)
}

/// The client's address: with `trusted_proxies` proxies in front, the `X-Forwarded-For`
/// entry the outermost of them added (entries to its left are whatever the client wrote);
/// otherwise, or when the header has fewer entries, the peer of the connection.
pub(crate) fn client_ip<B>(req: &axum::http::Request<B>, trusted_proxies: usize) -> Option<String> {
    client_ip_of(req.headers(), req.extensions(), trusted_proxies)
}

pub(crate) fn client_ip_of(
    headers: &axum::http::HeaderMap,
    ext: &axum::http::Extensions,
    trusted_proxies: usize,
) -> Option<String> {
    if trusted_proxies > 0 {
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if let Some(i) = entries.len().checked_sub(trusted_proxies)
            && let Ok(ip) = entries[i].parse::<std::net::IpAddr>()
        {
            return Some(ip.to_string());
        }
    }
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// CORS for the configured origins, with credentials (cookies) allowed; none configured
/// means browsers on other origins get no access.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::ETAG, header::LOCATION, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600))
}

/// The event streams and collaboration sockets open on this node, per caller.
#[derive(Default)]
struct Connections(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One open stream or socket; dropping it (when the connection ends) gives the place back.
pub(crate) struct ConnectionSlot {
    connections: Arc<Connections>,
    caller: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.connections.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

impl App {
    /// Takes a place for one more long-lived connection of `who`, or answers 429 when they
    /// hold `max_connections_per_caller` already: a caller cannot exhaust a node's memory
    /// and file descriptors with streams nobody reads.
    pub(crate) fn open_connection(&self, who: &Principal) -> Result<ConnectionSlot, ApiError> {
        let max = self.config().max_connections_per_caller;
        let caller = who.actor().to_owned();
        let mut open = self.0.connections.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(caller.clone()).or_default();
        if *n >= max {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "{max} event streams and collaboration sockets are open for you already; close one (another \
                     tab or program) first"
                ),
            );
            e.retry_after = Some(5);
            return Err(e);
        }
        *n += 1;
        Ok(ConnectionSlot { connections: self.0.connections.clone(), caller })
    }
}

/// Puts the acting principal on the request: from `Authorization: Bearer` (an access token
/// or an API key), else from the session cookie (state-changing requests must then echo the
/// CSRF cookie in `X-CSRF-Token`), else anonymous. A bad bearer credential is a 401 at once;
/// a bad cookie just leaves the caller anonymous (so that signing in again works).
async fn authenticate(axum::extract::State(app): axum::extract::State<App>, mut req: Request, next: Next) -> Response {
    // /metrics takes a token of its own, not a principal's.
    if req.extensions().get::<axum::extract::MatchedPath>().is_some_and(|p| p.as_str() == "/metrics") {
        return next.run(req).await;
    }
    let headers = req.headers();
    let mut expires = None;
    let principal = if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some(token) =
            value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        else {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "use 'Authorization: Bearer <access token or API key>'",
            )
            .into_response();
        };
        match app.auth().authenticate_until(token.trim()).await {
            Ok((p, until)) => {
                expires = until;
                p
            }
            Err(quire_core::Error::Unauthenticated(m)) => {
                let ip = client_ip(&req, app.config().trusted_proxies);
                if let Some(limited) = ratelimit::refused_credential(&app, ip).await {
                    return limited;
                }
                return ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", m).into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else if let Some(token) = extract::cookie(headers, routes::auth::ACCESS_COOKIE) {
        match app.auth().authenticate_until(token).await {
            Ok((p, until)) => {
                expires = until;
                if !req.method().is_safe() && !routes::auth::csrf_ok(req.headers()) {
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "send the quire_csrf cookie's value in the X-CSRF-Token header",
                    )
                    .into_response();
                }
                p
            }
            Err(_) => Principal::Anonymous,
        }
    } else {
        Principal::Anonymous
    };
    req.extensions_mut().insert(principal.clone());
    req.extensions_mut().insert(extract::Expires(expires));
    let mut res = next.run(req).await;
    // For the audit layer outside this one.
    res.extensions_mut().insert(principal);
    res
}

pub(crate) async fn no_route(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then ends event streams and lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let router = router(app.clone());
    // Small writes (an SSE chunk, a collaboration frame) go out at once: with Nagle's
    // algorithm each one after the first waited for the client's delayed ACK (40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown({
            let app = app.clone();
            async move {
                shutdown.await;
                app.begin_shutdown();
            }
        })
        .await?;
    // Every request has finished: store what the audit queue still holds.
    app.auditor().shutdown().await;
    Ok(())
}

#[cfg(test)]
mod client_address_tests {
    use axum::extract::ConnectInfo;
    use axum::http::{Extensions, HeaderMap};

    fn ip(forwarded: &[&str], proxies: usize) -> Option<String> {
        let mut headers = HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(std::net::SocketAddr::from(([10, 0, 0, 9], 443))));
        super::client_ip_of(&headers, &ext, proxies)
    }

    #[test]
    fn the_client_is_the_entry_the_trusted_proxy_added() {
        // The client wrote "6.6.6.6" itself; the one proxy appended what it saw.
        assert_eq!(ip(&["6.6.6.6, 203.0.113.7"], 1).as_deref(), Some("203.0.113.7"));
        // Two proxies: the outer one's entry is second from the right.
        assert_eq!(ip(&["6.6.6.6, 203.0.113.7, 10.1.1.1"], 2).as_deref(), Some("203.0.113.7"));
        // Entries split over several headers count as one list.
        assert_eq!(ip(&["6.6.6.6", "203.0.113.7"], 1).as_deref(), Some("203.0.113.7"));
        // Not trusted, too few entries, or not an address: the connection's peer.
        assert_eq!(ip(&["203.0.113.7"], 0).as_deref(), Some("10.0.0.9"));
        assert_eq!(ip(&["203.0.113.7"], 2).as_deref(), Some("10.0.0.9"));
        assert_eq!(ip(&["not-an-ip"], 1).as_deref(), Some("10.0.0.9"));
        assert_eq!(ip(&[], 1).as_deref(), Some("10.0.0.9"));
    }
}
