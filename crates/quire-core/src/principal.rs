use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A role in a workspace, or granted on one document by a share. Ordered: each role can do
/// everything the roles before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the workspace and its documents.
    Viewer,
    /// Also creates, edits and deletes documents.
    Editor,
    /// Also changes the workspace, its members (below owner), invitations and API keys.
    Admin,
    /// Also deletes the workspace and appoints admins and owners.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Role> {
        [Role::Viewer, Role::Editor, Role::Admin, Role::Owner].into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            crate::Error::invalid("role", format!("unknown role '{s}'; expected viewer, editor, admin or owner"))
        })
    }
}

/// Who is acting. Every handler receives one from the request context and passes it to the
/// store, so that every query is scoped by it and every event names its actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An unauthenticated caller: sees nothing but the public routes.
    Anonymous,
    /// Quire itself (the CLI, scheduled clean-up, pipelines acting on their own): may do
    /// anything.
    System,
    /// A signed-in user; `admin` is the instance administrator, who may do anything.
    User { id: String, admin: bool, session: Option<String> },
    /// An API key: acts in one workspace with one role.
    ApiKey { id: String, workspace_id: String, role: Role, created_by: Option<String> },
}

impl Principal {
    /// A plain (non-admin) user with no session, for tests and the CLI.
    pub fn user(id: impl Into<String>) -> Principal {
        Principal::User { id: id.into(), admin: false, session: None }
    }

    /// The signed-in user's id.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::User { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The user recorded as owner of what this principal creates: the user, or the user who
    /// created the API key.
    pub fn owner_id(&self) -> Option<&str> {
        match self {
            Principal::User { id, .. } => Some(id),
            Principal::ApiKey { created_by, .. } => created_by.as_deref(),
            _ => None,
        }
    }

    /// Whether this principal may do anything anywhere (Quire itself or an instance admin).
    /// Quire itself (its CLI, schedules and services), not any account or key.
    pub fn is_system(&self) -> bool {
        matches!(self, Principal::System)
    }

    pub fn is_superuser(&self) -> bool {
        matches!(self, Principal::System | Principal::User { admin: true, .. })
    }

    /// The actor recorded in events: the user or key id, or `anonymous` / `system`.
    pub fn actor(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::System => "system",
            Principal::User { id, .. } | Principal::ApiKey { id, .. } => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin && Role::Admin < Role::Owner);
        for r in [Role::Viewer, Role::Editor, Role::Admin, Role::Owner] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn superusers_and_owners() {
        assert!(Principal::System.is_superuser());
        assert!(Principal::User { id: "usr_1".into(), admin: true, session: None }.is_superuser());
        assert!(!Principal::user("usr_2").is_superuser());
        let key = Principal::ApiKey {
            id: "key_1".into(),
            workspace_id: "ws_1".into(),
            role: Role::Editor,
            created_by: Some("usr_3".into()),
        };
        assert_eq!((key.owner_id(), key.user_id(), key.actor()), (Some("usr_3"), None, "key_1"));
    }
}
