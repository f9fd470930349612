//! Rows as both backends return them, and their conversion into domain types.

use quire_core::{Document, Error, Event, Result, Workspace, timestamp_from_ms};

// Column lists as macros, so that `concat!` builds each statement as a `&'static str`.
macro_rules! workspace_columns {
    () => {
        "id, slug, name, description, owner_id, document_count, revision, created_at, updated_at, deleted_at"
    };
}
macro_rules! document_columns {
    () => {
        "id, workspace_id, kind, title, metadata, owner_id, revision, created_at, updated_at, deleted_at"
    };
}
macro_rules! event_columns {
    () => {
        "id, name, workspace_id, document_id, actor, data, created_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    id: String,
    slug: String,
    name: String,
    description: String,
    owner_id: Option<String>,
    document_count: i64,
    revision: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = Error;
    fn try_from(r: WorkspaceRow) -> Result<Self> {
        Ok(Workspace {
            id: r.id,
            slug: r.slug,
            name: r.name,
            description: r.description,
            owner_id: r.owner_id,
            document_count: r.document_count,
            revision: r.revision,
            created_at: timestamp_from_ms(r.created_at),
            updated_at: timestamp_from_ms(r.updated_at),
            deleted_at: r.deleted_at.map(timestamp_from_ms),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DocumentRow {
    id: String,
    workspace_id: String,
    kind: String,
    title: String,
    metadata: String,
    owner_id: Option<String>,
    revision: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl TryFrom<DocumentRow> for Document {
    type Error = Error;
    fn try_from(r: DocumentRow) -> Result<Self> {
        Ok(Document {
            kind: r.kind.parse().map_err(|_| Error::Internal(format!("stored kind '{}' is unknown", r.kind)))?,
            metadata: serde_json::from_str(&r.metadata)
                .map_err(|e| Error::Internal(format!("stored metadata of {} is not JSON: {e}", r.id)))?,
            id: r.id,
            workspace_id: r.workspace_id,
            title: r.title,
            owner_id: r.owner_id,
            revision: r.revision,
            created_at: timestamp_from_ms(r.created_at),
            updated_at: timestamp_from_ms(r.updated_at),
            deleted_at: r.deleted_at.map(timestamp_from_ms),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    name: String,
    workspace_id: Option<String>,
    document_id: Option<String>,
    actor: String,
    data: String,
    created_at: i64,
}

impl TryFrom<EventRow> for Event {
    type Error = Error;
    fn try_from(r: EventRow) -> Result<Self> {
        Ok(Event {
            data: serde_json::from_str(&r.data)
                .map_err(|e| Error::Internal(format!("stored event {} is not JSON: {e}", r.id)))?,
            id: r.id,
            name: r.name,
            workspace_id: r.workspace_id,
            document_id: r.document_id,
            actor: r.actor,
            created_at: timestamp_from_ms(r.created_at),
        })
    }
}

/// What the outbox needs to know of a changed object.
pub(crate) trait Outboxed {
    /// `workspace` or `document`, for messages.
    const WHAT: &'static str;
    /// The event name for `action` (`created`, `updated`, …) on this object.
    fn event_name(&self, action: &str) -> String;
    fn workspace_id(&self) -> &str;
    fn document_id(&self) -> Option<&str>;
    fn revision(&self) -> i64;
    /// The event's `data`: the object after the change.
    fn payload(&self) -> serde_json::Value;
}

impl Outboxed for Workspace {
    const WHAT: &'static str = "workspace";
    fn event_name(&self, action: &str) -> String {
        format!("workspace.{action}")
    }
    fn workspace_id(&self) -> &str {
        &self.id
    }
    fn document_id(&self) -> Option<&str> {
        None
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn payload(&self) -> serde_json::Value {
        serde_json::json!({ "workspace": self })
    }
}

impl Outboxed for Document {
    const WHAT: &'static str = "document";
    fn event_name(&self, action: &str) -> String {
        self.kind.event_name(action)
    }
    fn workspace_id(&self) -> &str {
        &self.workspace_id
    }
    fn document_id(&self) -> Option<&str> {
        Some(&self.id)
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn payload(&self) -> serde_json::Value {
        serde_json::json!({ "document": self })
    }
}

/// Why a conditional write matched no row, given the live object as it is now.
pub(crate) fn write_failed<T: Outboxed>(now: Result<Option<T>>, key: &str, if_match: Option<i64>) -> Error {
    match now {
        Ok(Some(current)) => match if_match {
            Some(expected) => Error::PreconditionFailed { expected, current: current.revision() },
            None => Error::Conflict(format!("the {} changed during the update; retry", T::WHAT)),
        },
        Ok(None) => Error::not_found(T::WHAT, key),
        Err(e) => e,
    }
}

/// Maps a database error to the domain error: unreachable or saturated databases are
/// `Unavailable` (retry later), unique violations are `Conflict`, the rest `Internal`.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable(format!("the database is unreachable: {e}"))
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(d.message().to_string()),
        _ => Error::Internal(e.to_string()),
    }
}

macro_rules! user_columns {
    () => {
        "id, email, name, admin, created_at, updated_at"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, workspace_id, name, role, prefix, created_by, created_at, last_used_at, revoked_at"
    };
}
macro_rules! invitation_columns {
    () => {
        "id, workspace_id, email, role, created_by, created_at, expires_at, accepted_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    name: String,
    admin: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for quire_core::User {
    fn from(r: UserRow) -> Self {
        quire_core::User {
            id: r.id,
            email: r.email,
            name: r.name,
            admin: r.admin,
            created_at: timestamp_from_ms(r.created_at),
            updated_at: timestamp_from_ms(r.updated_at),
        }
    }
}

/// A user with the password hash, read in one query for signing in.
#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: Option<String>,
}

/// An API key with its hash, read in one query for authenticating a request.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyWithHashRow {
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    pub key_hash: String,
    pub creator_role: Option<String>,
    pub creator_admin: Option<bool>,
}

impl KeyWithHashRow {
    pub(crate) fn into_stored(self) -> Result<crate::StoredApiKey> {
        Ok(crate::StoredApiKey {
            key: self.key.try_into()?,
            key_hash: self.key_hash,
            creator_role: self.creator_role.as_deref().map(role).transpose()?,
            creator_admin: self.creator_admin.unwrap_or(false),
        })
    }
}

fn role(stored: &str) -> Result<quire_core::Role> {
    stored.parse().map_err(|_| Error::Internal(format!("stored role '{stored}' is unknown")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    workspace_id: String,
    user_id: String,
    email: String,
    name: String,
    role: String,
    created_at: i64,
}

impl TryFrom<MemberRow> for quire_core::Member {
    type Error = Error;
    fn try_from(r: MemberRow) -> Result<Self> {
        Ok(quire_core::Member {
            role: role(&r.role)?,
            workspace_id: r.workspace_id,
            user_id: r.user_id,
            email: r.email,
            name: r.name,
            created_at: timestamp_from_ms(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ShareRow {
    document_id: String,
    user_id: String,
    email: String,
    role: String,
    created_at: i64,
}

impl TryFrom<ShareRow> for quire_core::Share {
    type Error = Error;
    fn try_from(r: ShareRow) -> Result<Self> {
        Ok(quire_core::Share {
            role: role(&r.role)?,
            document_id: r.document_id,
            user_id: r.user_id,
            email: r.email,
            created_at: timestamp_from_ms(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    workspace_id: String,
    name: String,
    role: String,
    prefix: String,
    created_by: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for quire_core::ApiKey {
    type Error = Error;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(quire_core::ApiKey {
            role: role(&r.role)?,
            id: r.id,
            workspace_id: r.workspace_id,
            name: r.name,
            prefix: r.prefix,
            created_by: r.created_by,
            created_at: timestamp_from_ms(r.created_at),
            last_used_at: r.last_used_at.map(timestamp_from_ms),
            revoked_at: r.revoked_at.map(timestamp_from_ms),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvitationRow {
    id: String,
    workspace_id: String,
    email: Option<String>,
    role: String,
    created_by: Option<String>,
    created_at: i64,
    expires_at: i64,
    accepted_at: Option<i64>,
}

impl TryFrom<InvitationRow> for quire_core::Invitation {
    type Error = Error;
    fn try_from(r: InvitationRow) -> Result<Self> {
        Ok(quire_core::Invitation {
            role: role(&r.role)?,
            id: r.id,
            workspace_id: r.workspace_id,
            email: r.email,
            created_by: r.created_by,
            created_at: timestamp_from_ms(r.created_at),
            expires_at: timestamp_from_ms(r.expires_at),
            accepted_at: r.accepted_at.map(timestamp_from_ms),
        })
    }
}
