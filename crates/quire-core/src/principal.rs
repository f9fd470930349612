/// Who is acting. Every handler receives one from the request context and passes it to the
/// store, so that every query can be scoped by it and every event names its actor.
///
/// Until accounts exist the server acts for [`Principal::Anonymous`]; the identity layer
/// replaces it with a user or an API key without changing any call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An unauthenticated caller.
    Anonymous,
    /// Quire itself (scheduled clean-up, migrations, pipelines acting on their own).
    System,
    /// A signed-in user.
    User { id: String },
}

impl Principal {
    /// The user id to record as owner of what this principal creates.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::User { id } => Some(id),
            _ => None,
        }
    }

    /// The actor recorded in events: the user id, or `anonymous` / `system`.
    pub fn actor(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::System => "system",
            Principal::User { id } => id,
        }
    }
}
