//! Blobs: bytes a workspace keeps by their SHA-256 (generated images today), stored once
//! however often they are referenced.

use serde::Serialize;
use utoipa::ToSchema;

/// The largest blob kept.
pub const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;

/// A blob, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub workspace_id: String,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A stored blob as a context's data names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BlobRef {
    pub sha256: String,
    pub media_type: String,
    pub size: usize,
    /// Where members of the workspace fetch it.
    pub url: String,
}

impl Blob {
    pub fn reference(&self) -> BlobRef {
        BlobRef {
            sha256: self.sha256.clone(),
            media_type: self.media_type.clone(),
            size: self.bytes.len(),
            url: format!("/api/v1/workspaces/{}/blobs/{}", self.workspace_id, self.sha256),
        }
    }
}
