//! Blobs by content: a workspace's bytes, kept once per SHA-256, in the same database as
//! everything else (so every process of a cluster reads what any other wrote).

use async_trait::async_trait;
use quire_core::{Blob, Result};

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Keeps a blob; keeping the same content again changes nothing. `LimitExceeded` past
    /// `MAX_BLOB_BYTES`.
    async fn put_blob(&self, blob: &Blob) -> Result<()>;
    /// A workspace's blob (the caller checked the reader may see the workspace).
    async fn get_blob(&self, workspace_id: &str, sha256: &str) -> Result<Blob>;
}

pub(crate) fn check_size(blob: &Blob) -> Result<()> {
    if blob.bytes.len() > quire_core::MAX_BLOB_BYTES {
        return Err(quire_core::Error::LimitExceeded(format!(
            "a blob is at most {} bytes; this one is {}",
            quire_core::MAX_BLOB_BYTES,
            blob.bytes.len()
        )));
    }
    Ok(())
}

macro_rules! impl_blob_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::BlobStore for $store {
            async fn put_blob(&self, b: &quire_core::Blob) -> quire_core::Result<()> {
                $crate::blobs::check_size(b)?;
                sqlx::query(
                    "INSERT INTO blobs (workspace_id, sha256, media_type, size, bytes, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, sha256) DO NOTHING",
                )
                .bind(&b.workspace_id)
                .bind(&b.sha256)
                .bind(&b.media_type)
                .bind(b.bytes.len() as i64)
                .bind(&b.bytes)
                .bind(quire_core::now_ms())
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn get_blob(&self, workspace_id: &str, sha256: &str) -> quire_core::Result<quire_core::Blob> {
                let row: Option<(String, Vec<u8>)> =
                    sqlx::query_as("SELECT media_type, bytes FROM blobs WHERE workspace_id = $1 AND sha256 = $2")
                        .bind(workspace_id)
                        .bind(sha256)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                let (media_type, bytes) = row.ok_or_else(|| quire_core::Error::not_found("blob", sha256))?;
                Ok(quire_core::Blob {
                    workspace_id: workspace_id.to_string(),
                    sha256: sha256.to_string(),
                    media_type,
                    bytes,
                })
            }
        }
    };
}
