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
    /// and drops those updates.
    async fn save_doc_snapshot(&self, document_id: &str, snapshot: &[u8], through_seq: i64) -> Result<()>;
}

macro_rules! impl_collab_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::CollabStore for $store {
            async fn append_doc_update(&self, document_id: &str, update: &[u8]) -> quire_core::Result<i64> {
                // One writer per document at a time (the room holds its lock), but several
                // processes may share the database: the primary key settles races.
                for _ in 0..8 {
                    let next: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(seq), (SELECT COALESCE(MAX(through_seq), 0) FROM doc_snapshots WHERE document_id = $1)) + 1 \
                         FROM doc_updates WHERE document_id = $1",
                    )
                    .bind(document_id)
                    .fetch_one(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                    let done = sqlx::query("INSERT INTO doc_updates (document_id, seq, data, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(document_id)
                        .bind(next)
                        .bind(update)
                        .bind(quire_core::now_ms())
                        .execute(&self.writer_pool())
                        .await
                        .map_err($crate::rows::db_err);
                    match done {
                        Ok(_) => return Ok(next),
                        Err(quire_core::Error::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(quire_core::Error::Unavailable("the document's update log is too busy; retry".into()))
            }

            async fn load_doc(&self, document_id: &str) -> quire_core::Result<$crate::StoredDoc> {
                let snapshot: Option<(Vec<u8>, i64)> =
                    sqlx::query_as("SELECT data, through_seq FROM doc_snapshots WHERE document_id = $1")
                        .bind(document_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                let through_seq = snapshot.as_ref().map_or(0, |s| s.1);
                let updates: Vec<(i64, Vec<u8>)> =
                    sqlx::query_as("SELECT seq, data FROM doc_updates WHERE document_id = $1 AND seq > $2 ORDER BY seq")
                        .bind(document_id)
                        .bind(through_seq)
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok($crate::StoredDoc { snapshot: snapshot.map(|s| s.0), through_seq, updates })
            }

            async fn save_doc_snapshot(&self, document_id: &str, snapshot: &[u8], through_seq: i64) -> quire_core::Result<()> {
                let mut tx = self.begin_write().await?;
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
