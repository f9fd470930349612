//! Quire's HTTP layer: a thin axum router over the engine crates.
//!
//! The handlers in [`routes`] translate HTTP into [`Store`] calls and back; everything about
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
//! let app = App::new(store, ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7420").await.unwrap();
//! quire_server::serve(listener, app, std::future::pending()).await.unwrap();
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use quire_core::Principal;
use quire_store::Store;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;

use error::ApiError;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 1024 * 1024,
            events_poll_interval: Duration::from_secs(2),
            sse_keep_alive: Duration::from_secs(15),
        }
    }
}

/// What every handler can reach: the store, the settings and the shutdown signal.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

struct AppInner {
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: watch::Sender<bool>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> App {
        App(Arc::new(AppInner {
            store,
            config,
            shutdown: watch::channel(false).0,
        }))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Quire API",
        description = "Workspaces, documents and their events. Errors are `{\"error\":{\"code\",\"message\"}}` with the matching HTTP status.",
        license(name = "AGPL-3.0-or-later")
    ),
    tags(
        (name = "workspaces", description = "Workspaces hold documents and members"),
        (name = "documents", description = "PRDs, moodboards and board configurations"),
        (name = "events", description = "The event outbox as a live, resumable stream"),
        (name = "operations", description = "Health, readiness and metrics")
    )
)]
struct ApiDoc;

/// The router and the OpenAPI document it is described by, built from the same list.
fn api() -> (Router<App>, utoipa::openapi::OpenApi) {
    use routes::{documents, events, ops, workspaces};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(
            workspaces::get,
            workspaces::update,
            workspaces::delete
        ))
        .routes(routes!(workspaces::restore))
        .routes(routes!(documents::list, documents::create))
        .routes(routes!(
            documents::get,
            documents::update,
            documents::delete
        ))
        .routes(routes!(documents::restore))
        .routes(routes!(events::stream_events))
        .split_for_parts()
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// Every route, with its middleware: request ids, tracing, metrics, panics as JSON 500s,
/// the body limit and the acting principal.
pub fn router(app: App) -> Router {
    metrics::init();
    let (routes, doc) = api();
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", doc))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(authenticate))
        .layer(DefaultBodyLimit::max(app.config().max_body_bytes))
        .layer(middleware::from_fn(metrics::track))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request failed unexpectedly; the server log has the details").into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
        }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(app)
}

/// Puts the acting principal on the request. Every caller is anonymous until accounts and
/// tokens arrive; handlers and queries already take the principal from here.
async fn authenticate(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(Principal::Anonymous);
    next.run(req).await
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
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
    let router = router(app.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            app.begin_shutdown();
        })
        .await
}
