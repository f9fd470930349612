//! Accounts, sessions and grants: the half of the store that the identity layer uses.

use async_trait::async_trait;
use quire_core::{ApiKey, Invitation, Member, NewUser, Principal, Result, Role, Share, User};

/// An account with its password hash, for signing in.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// A new sign-in: the session and its first refresh token (hashed).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub expires_at: i64,
    pub refresh_hash: String,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The token was current: it is now used, and the new one is stored.
    Rotated { session_id: String, user: User },
    /// The token had been used before: someone replayed it. The whole session is revoked.
    Reused { session_id: String },
    /// Unknown, expired, or of a revoked session.
    Invalid,
}

/// A sign-in sent to an identity provider, kept until it comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoState {
    pub provider: String,
    pub code_verifier: String,
    pub nonce: String,
    pub redirect: String,
}

/// An API key with its hash, for authenticating a request.
#[derive(Debug, Clone)]
pub struct StoredApiKey {
    pub key: ApiKey,
    pub key_hash: String,
    /// The creator's role in the key's workspace today; `None` when they are no longer in it.
    pub creator_role: Option<quire_core::Role>,
    /// Whether the creator is an instance administrator today.
    pub creator_admin: bool,
}

/// A new API key; the secret is hashed before it gets here.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub key_hash: String,
}

/// Persistence for identity: users, sessions, refresh tokens, memberships, shares, API keys,
/// invitations and instance settings. Methods that take a [`Principal`] check its rights and
/// answer `NotFound` for what it may not see; the others serve the identity layer itself.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Creates an account. The first account of the instance becomes its administrator;
    /// the flag in the result says whether this was the first.
    async fn create_user(&self, new: NewUser) -> Result<(User, bool)>;
    /// Creates an account that joins an invitation's workspace, in one transaction: when
    /// the invitation is unknown, used, expired (`NotFound`) or for another address
    /// (`Forbidden`), no account is created.
    async fn create_invited_user(&self, new: NewUser, token_hash: &str) -> Result<(User, bool)>;
    async fn user_by_email(&self, email: &str) -> Result<Option<Credentials>>;
    /// How many accounts exist.
    async fn user_count(&self) -> Result<i64>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    /// A user's default workspace: the first they joined that still exists.
    async fn default_workspace(&self, user_id: &str) -> Result<Option<String>>;
    /// Every account (instance administrators only).
    async fn list_users(&self, who: &Principal) -> Result<Vec<User>>;
    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<()>;

    async fn create_session(&self, session: NewSession, refresh_expires_at: i64) -> Result<()>;
    /// Exchanges a refresh token for a new one, atomically; a replayed token revokes its session.
    async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, new_expires_at: i64) -> Result<Rotation>;
    /// Ends a session: its refresh tokens stop working and its access tokens are refused
    /// everywhere at once (an event tells every process). A user may end their own
    /// sessions; administrators any.
    async fn revoke_session(&self, who: &Principal, session_id: &str) -> Result<()>;
    /// Ends every session of a user; returns their ids.
    async fn revoke_user_sessions(&self, who: &Principal, user_id: &str) -> Result<Vec<String>>;
    /// Sessions revoked since `since_ms` (to warm a revocation cache).
    async fn revoked_sessions_since(&self, since_ms: i64) -> Result<Vec<String>>;
    /// Whether the session exists, is not revoked and has not expired.
    async fn session_is_live(&self, session_id: &str) -> Result<bool>;
    /// The caller's own live sessions, newest first (at most 200).
    async fn list_sessions(&self, who: &Principal) -> Result<Vec<quire_core::SessionInfo>>;

    async fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Every instance setting, as stored.
    async fn settings(&self) -> Result<Vec<(String, String)>>;
    /// Replaces a setting's value.
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Removes a setting; whether it was there.
    async fn delete_setting(&self, key: &str) -> Result<bool>;
    /// A person's preference (a JSON text), if they stored one.
    async fn preference(&self, user_id: &str, key: &str) -> Result<Option<String>>;
    /// Stores a person's preference, refusing a new key past `max_keys` of theirs
    /// (`LimitExceeded`).
    async fn put_preference(&self, user_id: &str, key: &str, value: &str, max_keys: u32) -> Result<()>;
    /// Removes a person's preference; whether it was there.
    async fn delete_preference(&self, user_id: &str, key: &str) -> Result<bool>;
    /// Stores `value` under `key` unless a value is there already; returns the stored one,
    /// so concurrent first starts of several processes agree.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;

    async fn list_members(&self, who: &Principal, workspace: &str) -> Result<Vec<Member>>;
    /// Adds a member or changes their role. Admins manage roles below admin; owners any.
    async fn set_member(&self, who: &Principal, workspace: &str, user_id: &str, role: Role) -> Result<Member>;
    /// Removes a member (anyone may leave); the last owner cannot go.
    async fn remove_member(&self, who: &Principal, workspace: &str, user_id: &str) -> Result<()>;

    async fn create_invitation(
        &self,
        who: &Principal,
        workspace: &str,
        email: Option<String>,
        role: Role,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<Invitation>;
    async fn list_invitations(&self, who: &Principal, workspace: &str) -> Result<Vec<Invitation>>;
    async fn revoke_invitation(&self, who: &Principal, workspace: &str, id: &str) -> Result<()>;
    /// Joins the invitation's workspace (never lowering a role already held).
    async fn accept_invitation(&self, who: &Principal, token_hash: &str) -> Result<Member>;
    /// Whether an unexpired, unaccepted invitation has this token (for invite-only sign-up).
    async fn invitation_is_open(&self, token_hash: &str) -> Result<bool>;

    async fn list_shares(&self, who: &Principal, document: &str) -> Result<Vec<Share>>;
    /// Grants `role` (viewer or editor) on a document to the user with this email.
    async fn put_share(&self, who: &Principal, document: &str, email: &str, role: Role) -> Result<Share>;
    async fn remove_share(&self, who: &Principal, document: &str, user_id: &str) -> Result<()>;

    async fn create_api_key(&self, who: &Principal, workspace: &str, key: NewApiKey) -> Result<ApiKey>;
    async fn list_api_keys(&self, who: &Principal, workspace: &str) -> Result<Vec<ApiKey>>;
    async fn revoke_api_key(&self, who: &Principal, workspace: &str, id: &str) -> Result<ApiKey>;
    /// A live (unrevoked) key by its visible prefix, with its hash and what its creator is
    /// today.
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>>;
    async fn touch_api_key(&self, id: &str, at_ms: i64) -> Result<()>;

    /// Remembers a sign-in sent to a provider, under the hash of its `state`.
    async fn save_sso_state(&self, state_hash: &str, state: &SsoState, expires_at: i64) -> Result<()>;
    /// Takes (and forgets) the sign-in with this state hash, if it has not expired.
    async fn take_sso_state(&self, state_hash: &str) -> Result<Option<SsoState>>;
    /// The account linked to a provider's subject.
    async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>>;
    /// Links a provider's subject to an account.
    async fn link_identity(&self, provider: &str, subject: &str, user_id: &str, email: Option<&str>) -> Result<()>;
}
