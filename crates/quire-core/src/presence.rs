//! Presence (seed 000 §7.1): who is on a document and what they are doing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Someone connected to a document, as others see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionState {
    pub user: PresenceUser,
    /// `online` (active in the last 30 s), `away` (connected but quiet, or its client said
    /// `"away": true`) or `offline` (left recently).
    pub status: PresenceStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: time::OffsetDateTime,
    pub activity: Option<Activity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresenceUser {
    /// A user id, or an API key id for programs.
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Away,
    Offline,
}

/// What a client said it is doing (through its awareness state's `activity` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    /// `viewing`, `editing` or `commenting`.
    #[serde(rename = "type")]
    pub kind: ActivityKind,
    /// What it is about, e.g. a section id.
    pub resource: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: time::OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Viewing,
    Editing,
    Commenting,
}

impl ActivityKind {
    pub fn parse(s: &str) -> Option<ActivityKind> {
        match s {
            "viewing" => Some(ActivityKind::Viewing),
            "editing" => Some(ActivityKind::Editing),
            "commenting" => Some(ActivityKind::Commenting),
            _ => None,
        }
    }
}
