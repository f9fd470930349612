//! Quire's storage layer: one [`Store`] trait, two implementations side by side.
//!
//! * [`SqliteStore`] — the embedded default: one file in the data directory, WAL journal,
//!   `synchronous=FULL`, so nothing a caller was told is saved can be lost.
//! * [`PgStore`] — PostgreSQL for clusters: several `quire serve` processes share it, and
//!   outbox wake-ups travel between them by `LISTEN`/`NOTIFY`.
//!
//! Both run the same SQL (written once in `sql.rs`, compiled for each backend), own
//! their migrations under `migrations/<backend>/`, and pass one conformance suite
//! (`tests/conformance.rs`). Every write that changes a workspace or document also writes
//! its [`Event`] in the same transaction — the transactional outbox — so consumers never
//! see a change without its event or an event without its change.
//!
//! ```no_run
//! # async fn demo() -> quire_core::Result<()> {
//! use quire_core::{Limits, NewWorkspace, Principal};
//! use quire_store::{Store, StoreOptions, connect};
//! let store = connect("sqlite://quire-data/quire.db", StoreOptions::default()).await?;
//! store.migrate().await?;
//! let ws = store
//!     .create_workspace(&Principal::Anonymous, NewWorkspace { name: "Product".into(), ..Default::default() })
//!     .await?;
//! assert_eq!(ws.slug, "product");
//! # Ok(()) }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use quire_core::{
    Document, DocumentPatch, DocumentQuery, Error, Event, EventFilter, Limits, NewDocument, NewWorkspace, Page,
    Principal, Result, Workspace, WorkspacePatch, WorkspaceQuery,
};
use tokio::sync::watch;

#[macro_use]
mod rows;
#[macro_use]
mod sql;
#[macro_use]
mod sql_identity;
#[macro_use]
mod ai;
#[macro_use]
mod assets;
#[macro_use]
mod audit;
#[macro_use]
mod blobs;
#[macro_use]
mod builds;
#[macro_use]
mod collab;
#[macro_use]
mod history;
mod identity;
#[macro_use]
mod jobs;
mod postgres;
mod sqlite;
mod tail;
#[cfg(feature = "testing")]
pub mod testing;

pub use ai::AiStore;
pub use assets::AssetIndex;
pub use audit::AuditStore;
pub use blobs::BlobStore;
pub use builds::{BuildLogStore, LogChunk};
pub use collab::{CollabStore, StoredDoc};
pub use history::HistoryStore;
pub use identity::{Credentials, IdentityStore, NewApiKey, NewSession, Rotation, SsoState, StoredApiKey};
pub use jobs::{
    Finishing, JobStore, Lease, NewWorker, NextClaim, RunningUpdate, SYSTEM_WORKSPACE, Submitted, lease_lost,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use tail::EventTail;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Size and count limits enforced on every write.
    pub limits: Limits,
    /// Most connections in the pool.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { limits: Limits::default(), max_connections: 10 }
    }
}

/// Opens the store a database URL names: `sqlite://path` (or `sqlite:path`) or
/// `postgres://…` (also `postgresql://…`).
pub async fn connect(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, options).await?))
    } else {
        Err(Error::invalid(
            "database_url",
            format!("unsupported database URL '{}'; use sqlite://PATH or postgres://USER@HOST/DB", redact_url(url)),
        ))
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Everything Quire persists about workspaces, documents and events.
///
/// Every method takes the acting [`Principal`]: it becomes the owner of what is created and
/// the actor of every event, and it is where access scoping plugs in. Objects the principal
/// may not see are reported as [`Error::NotFound`].
#[async_trait]
pub trait Store:
    IdentityStore
    + AuditStore
    + CollabStore
    + JobStore
    + AiStore
    + BlobStore
    + BuildLogStore
    + AssetIndex
    + HistoryStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Runs pending migrations; safe to call from several processes at once.
    async fn migrate(&self) -> Result<()>;
    /// A trivial round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;
    /// Closes the pool, waiting for connections in use; later calls fail as `Unavailable`.
    async fn close(&self);
    /// The limits this store enforces.
    fn limits(&self) -> &Limits;

    async fn create_workspace(&self, who: &Principal, new: NewWorkspace) -> Result<Workspace>;
    /// By id or slug. Deleted workspaces are found only with `include_deleted`.
    async fn get_workspace(&self, who: &Principal, key: &str, include_deleted: bool) -> Result<Workspace>;
    async fn list_workspaces(&self, who: &Principal, query: &WorkspaceQuery) -> Result<Page<Workspace>>;
    /// Applies `patch`; with `if_match`, only if the revision is still that one.
    async fn update_workspace(
        &self,
        who: &Principal,
        key: &str,
        patch: WorkspacePatch,
        if_match: Option<i64>,
    ) -> Result<Workspace>;
    /// Soft-deletes: the workspace and its documents disappear from reads until restored.
    async fn delete_workspace(&self, who: &Principal, key: &str, if_match: Option<i64>) -> Result<Workspace>;
    /// Undoes a soft delete; restoring a live workspace returns it unchanged.
    async fn restore_workspace(&self, who: &Principal, key: &str) -> Result<Workspace>;

    /// Creates a document in the workspace named by id or slug.
    async fn create_document(&self, who: &Principal, workspace: &str, new: NewDocument) -> Result<Document>;
    async fn get_document(&self, who: &Principal, id: &str, include_deleted: bool) -> Result<Document>;
    /// The role `who` holds on a live document (its workspace role or a share, the higher);
    /// `NotFound` when they may not see it.
    async fn role_on_document(&self, who: &Principal, id: &str) -> Result<(Document, quire_core::Role)>;
    /// The role `who` holds in a live workspace (named by id or slug); `NotFound` when they
    /// may not see it.
    async fn role_in_workspace(&self, who: &Principal, key: &str) -> Result<(Workspace, quire_core::Role)>;
    async fn list_documents(&self, who: &Principal, workspace: &str, query: &DocumentQuery) -> Result<Page<Document>>;
    async fn update_document(
        &self,
        who: &Principal,
        id: &str,
        patch: DocumentPatch,
        if_match: Option<i64>,
    ) -> Result<Document>;
    async fn delete_document(&self, who: &Principal, id: &str, if_match: Option<i64>) -> Result<Document>;
    /// Undoes a soft delete; restoring a live document returns it unchanged.
    async fn restore_document(&self, who: &Principal, id: &str) -> Result<Document>;

    /// Up to `limit` events with ids above `after`, oldest first, matching `filter`.
    async fn events_after(&self, who: &Principal, after: i64, filter: &EventFilter, limit: u32) -> Result<Vec<Event>>;
    /// The id of the newest event, 0 when there is none.
    async fn last_event_id(&self) -> Result<i64>;
    /// Appends an event the application raises itself, tied to no row this store writes
    /// (`ai.generation.started`, …); returns its id. The caller has checked that `who` may
    /// act on the workspace and document.
    async fn record_event(
        &self,
        who: &Principal,
        name: &str,
        workspace_id: &str,
        document_id: Option<&str>,
        data: serde_json::Value,
    ) -> Result<i64>;
    /// Ticks whenever new events may have been committed, by this process or (on PostgreSQL)
    /// another. A wake-up signal only: read with [`Store::events_after`], or use [`EventTail`].
    fn event_signal(&self) -> watch::Receiver<u64>;
    /// The last event id a durable consumer (an indexer, a notifier) has processed; 0 if none.
    async fn consumer_offset(&self, consumer: &str) -> Result<i64>;
    /// Records that `consumer` has processed every event up to `position`. Offsets only move
    /// forward: saving a smaller position than the stored one changes nothing.
    async fn save_consumer_offset(&self, consumer: &str, position: i64) -> Result<()>;
}
