//! Assets: images a workspace keeps (uploaded or generated), by the SHA-256 of their bytes.
//! The bytes live in the asset store (local disk or S3); the database records which
//! workspace holds which asset, its size in pixels, its thumbnails and who added it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A workspace's asset, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Asset {
    pub workspace_id: String,
    /// Lower-case hex SHA-256 of the bytes: the asset's name and its ETag.
    pub sha256: String,
    pub media_type: String,
    /// Bytes of the original.
    pub size: i64,
    pub width: i32,
    pub height: i32,
    /// The file name it was uploaded under (empty for generated images).
    pub name: String,
    /// `upload` or `generated`.
    pub origin: String,
    /// The WebP thumbnails, once the pipeline made them (`small`, `large`).
    pub thumbnails: Vec<Thumbnail>,
    /// Its perceptual hash (64 bits as 16 hex digits): images a few bits apart look alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phash: Option<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// One thumbnail of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Thumbnail {
    /// `small` (320 px on the longer side) or `large` (1280 px).
    pub variant: String,
    pub sha256: String,
    pub width: i32,
    pub height: i32,
    pub size: i64,
}

/// An asset to record.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub workspace_id: String,
    pub sha256: String,
    pub media_type: String,
    pub size: i64,
    pub width: i32,
    pub height: i32,
    pub name: String,
    pub origin: String,
    /// Its perceptual hash, 16 hex digits.
    pub phash: Option<String>,
    pub created_by: String,
}

impl Asset {
    /// Bytes the asset counts against its workspace's quota: the original and its thumbnails.
    pub fn stored_bytes(&self) -> i64 {
        self.size + self.thumbnails.iter().map(|t| t.size).sum::<i64>()
    }
}

/// Why an asset does not fit in its workspace: it takes `used` of `quota` bytes already.
pub fn quota_exceeded(used: i64, quota: i64, size: i64) -> crate::Error {
    crate::Error::LimitExceeded(format!(
        "the workspace's images take {used} of its {quota} bytes; this one ({size} bytes) does not fit: \
         delete images it no longer uses, or ask an instance admin for a larger quota"
    ))
}
