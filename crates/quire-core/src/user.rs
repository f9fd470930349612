//! Accounts and what grants them access: memberships, document shares, API keys, invitations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Result, Role};

/// An account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// `usr_` followed by a ULID.
    pub id: String,
    /// Lowercase; unique.
    pub email: String,
    pub name: String,
    /// The instance administrator may do anything.
    pub admin: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// What creating an account needs; the password arrives already hashed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    /// Make this account an instance administrator (the first account always is).
    pub admin: bool,
}

impl NewUser {
    /// Normalises the email to lowercase and checks the fields.
    pub fn validate(mut self) -> Result<NewUser> {
        self.email = normalize_email(&self.email)?;
        self.name = self.name.trim().to_string();
        if self.name.is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if self.name.chars().count() > 200 {
            return Err(Error::invalid("name", "is longer than 200 characters"));
        }
        Ok(self)
    }
}

/// `Ada@Example.com ` → `ada@example.com`, or an error that says what is wrong.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace)
        && email.matches('@').count() == 1;
    if valid { Ok(email) } else { Err(Error::invalid("email", "is not an email address like ada@example.com")) }
}

/// Checks a new password: 8 to 1024 characters (long passphrases welcome, unbounded input not).
pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(Error::invalid("password", "must be at least 8 characters"));
    }
    if n > 1024 {
        return Err(Error::invalid("password", "must be at most 1024 characters"));
    }
    Ok(())
}

/// A member of a workspace and their role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub workspace_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// A role on one document granted to a user outside (or inside) its workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    pub document_id: String,
    pub user_id: String,
    pub email: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// An API key as listed: its secret is shown once, at creation, and stored only hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// `key_` followed by a ULID.
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub role: Role,
    /// The visible start of the key (`qk_1a2b3c4d`), to tell keys apart.
    pub prefix: String,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// An invitation to join a workspace; its token is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invitation {
    /// `inv_` followed by a ULID.
    pub id: String,
    pub workspace_id: String,
    /// Only this address may accept, when set.
    pub email: Option<String>,
    pub role: Role,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<time::OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@b@example.com", "ada@.com"]
        {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }
}

/// A signed-in session as its user sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    /// The browser or client that signed in, as it said.
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    /// Whether it is the session asking.
    pub current: bool,
}
