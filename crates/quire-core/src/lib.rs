//! Quire's domain: the vocabulary every other crate speaks.
//!
//! This crate holds the types that cross layer boundaries — [`Workspace`], [`Document`],
//! [`Event`], the acting [`Principal`], cursor [`Page`]s, the [`Limits`] that bound sizes and
//! counts, and the one domain [`Error`] type. It performs no I/O and knows nothing of HTTP or
//! SQL: the store validates with it, the server maps its errors to statuses in one place.
//!
//! ```
//! use quire_core::{DocumentKind, NewDocument, Limits};
//! let new = NewDocument { kind: DocumentKind::Prd, title: "Checkout v2".into(), metadata: None };
//! assert!(new.validate(&Limits::default()).is_ok());
//! assert_eq!(DocumentKind::BoardConfig.event_name("created"), "board-config.created");
//! ```

mod ai;
pub mod asset;
mod audit;
mod blob;
mod error;
mod event;
mod history;
mod id;
mod job;
mod limits;
mod model;
mod page;
mod presence;
mod principal;
mod time_ms;
mod user;

pub use ai::{Interaction, InteractionQuery, MAX_LOGGED_PROMPT, MAX_PROMPT_VERSIONS, StoredPrompt};
pub use asset::{Asset, NewAsset, Thumbnail};
pub use audit::{AuditEntry, AuditQuery};
pub use blob::{Blob, BlobRef, MAX_BLOB_BYTES};
pub use error::{Error, Result};
pub use event::{Event, EventFilter};
pub use history::{DocumentVersion, NewVersion};
pub use id::{first_id_at, new_id};
pub use job::{
    Context, ContextError, ContextEvent, ContextQuery, ContextStatus, JobLimits, NewContext, NewTemplate, Outcome,
    Processing, Progress, Schedule, Template, WorkerInfo, WorkerJob, stable_hash,
};
pub use limits::Limits;
pub use model::{
    Document, DocumentKind, DocumentPatch, NewDocument, NewWorkspace, Workspace, WorkspacePatch, merge_patch,
};
pub use page::{Cursor, DocumentQuery, Page, PageRequest, Sort, SortField, WorkspaceQuery};
pub use presence::{Activity, ActivityKind, ConnectionState, PresenceStatus, PresenceUser};
pub use principal::{Principal, Role};
pub use time_ms::{Timestamp, ms_of, now_ms, timestamp_from_ms};
pub use user::{ApiKey, Invitation, Member, NewUser, SessionInfo, Share, User, check_password, normalize_email};
