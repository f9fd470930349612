//! Durable CRDT state: each document's snapshot and the log of updates since.

use async_trait::async_trait;
use quire_core::Result;

/// A document's stored CRDT state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredDoc {
    /// A merged update holding everything through `through_seq`.
    pub snapshot: Option<Vec<u8>>,
    pub through_seq: i64,
    /// Updates after the snapshot, oldest first, with their sequence numbers.
    pub updates: Vec<(i64, Vec<u8>)>,
}

/// Persistence for real-time documents. Updates are appended (and committed) before they
/// are applied or relayed, so nothing a client was sent can be lost.
#[async_trait]
pub trait CollabStore: Send + Sync {
    /// Appends an update; returns its sequence number (1, 2, … per document).
    async fn append_doc_update(&self, document_id: &str, update: &[u8]) -> Result<i64>;
    async fn load_doc(&self, document_id: &str) -> Result<StoredDoc>;
    /// Replaces the snapshot with `snapshot` (covering every update through `through_seq`)
    /// and drops those updates. `snapshot` must hold every update through `through_seq` as
    /// stored (fold what [`CollabStore::load_doc`] read, not what one process has seen).
    async fn save_doc_snapshot(&self, document_id: &str, snapshot: &[u8], through_seq: i64) -> Result<()>;
}

macro_rules! impl_collab_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::CollabStore for $store {
            async fn append_doc_update(&self, document_id: &str, update: &[u8]) -> quire_core::Result<i64> {
                // The number is taken and used in one transaction that excludes the
                // document's compaction (SQLite's one writer; an advisory lock on
                // PostgreSQL): a number computed before a compaction and used after it
                // could fall at or below the snapshot's and never be read again.
                let mut tx = self.begin_write().await?;
                if let Some(lock) = Self::DOC_LOCK {
                    sqlx::query(lock).bind(document_id).execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                }
                let next: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(seq), (SELECT COALESCE(MAX(through_seq), 0) FROM doc_snapshots WHERE document_id = $1)) + 1 \
                     FROM doc_updates WHERE document_id = $1",
                )
                .bind(document_id)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                sqlx::query("INSERT INTO doc_updates (document_id, seq, data, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(document_id)
                    .bind(next)
                    .bind(update)
                    .bind(quire_core::now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                tx.commit().await.map_err($crate::rows::db_err)?;
                Ok(next)
            }

            async fn load_doc(&self, document_id: &str) -> quire_core::Result<$crate::StoredDoc> {
                // One statement, so one view of the data: a compaction committing between
                // reading the snapshot and reading the log cannot hide updates.
                let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT CAST(1 AS BIGINT) AS part, through_seq AS seq, data FROM doc_snapshots WHERE document_id = $1 \
                     UNION ALL \
                     SELECT CAST(2 AS BIGINT), seq, data FROM doc_updates WHERE document_id = $1 \
                     AND seq > COALESCE((SELECT through_seq FROM doc_snapshots WHERE document_id = $1), 0) \
                     ORDER BY 1, 2",
                )
                .bind(document_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                let mut stored = $crate::StoredDoc::default();
                for (part, seq, data) in rows {
                    if part == 1 {
                        stored.snapshot = Some(data);
                        stored.through_seq = seq;
                    } else {
                        stored.updates.push((seq, data));
                    }
                }
                Ok(stored)
            }

            async fn save_doc_snapshot(&self, document_id: &str, snapshot: &[u8], through_seq: i64) -> quire_core::Result<()> {
                let mut tx = self.begin_write().await?;
                if let Some(lock) = Self::DOC_LOCK {
                    sqlx::query(lock).bind(document_id).execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                }
                sqlx::query(
                    "INSERT INTO doc_snapshots (document_id, data, through_seq, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (document_id) DO UPDATE SET data = excluded.data, through_seq = excluded.through_seq, \
                     updated_at = excluded.updated_at WHERE doc_snapshots.through_seq < excluded.through_seq",
                )
                .bind(document_id)
                .bind(snapshot)
                .bind(through_seq)
                .bind(quire_core::now_ms())
                .execute(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                sqlx::query("DELETE FROM doc_updates WHERE document_id = $1 AND seq <= $2")
                    .bind(document_id)
                    .bind(through_seq)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                tx.commit().await.map_err($crate::rows::db_err)
            }
        }
    };
}
