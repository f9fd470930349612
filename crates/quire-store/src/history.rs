//! Document versions: recorded with their outbox event, listed newest first, read back at
//! any number (archived ones unpacked), named, archived past a limit, and replayed in order
//! to rebuild a workspace's repository.

use std::io::{Read, Write};

use async_trait::async_trait;
use quire_core::{DocumentVersion, NewVersion, Result};

#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Records the next version of a document (its `seq` one more than the last).
    /// `Conflict` when that version number exists.
    async fn add_version(&self, v: &NewVersion) -> Result<DocumentVersion>;
    /// Notes the commit a version became and, in the same transaction, announces the
    /// version whole with a `<kind>.version.created` event (`prd.version.created`, …). Once
    /// per version: a version already committed is left as it is.
    async fn set_version_commit(&self, document_id: &str, seq: i64, commit: &str) -> Result<()>;
    /// A document's newest version and its content.
    async fn latest_version(&self, document_id: &str) -> Result<Option<(DocumentVersion, String)>>;
    /// A document's versions, newest first, older than `before_seq` when given.
    async fn list_versions(
        &self,
        document_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DocumentVersion>>;
    /// One version (by `major.minor.patch`) and its content.
    async fn get_version(&self, document_id: &str, version: &str) -> Result<Option<(DocumentVersion, String)>>;
    /// Names a version, or clears its name.
    async fn name_version(&self, document_id: &str, version: &str, name: Option<&str>) -> Result<DocumentVersion>;
    /// Compresses the contents of a document's versions older than its newest `keep`; how
    /// many it packed.
    async fn archive_versions(&self, document_id: &str, keep: i64) -> Result<u64>;
    /// Every version of a workspace with its content, in the order they were made (to
    /// rebuild its repository), after `after` (`(created_at ms, document_id, seq)`), at most
    /// `limit`.
    async fn versions_in_order(
        &self,
        workspace_id: &str,
        after: Option<(i64, String, i64)>,
        limit: u32,
    ) -> Result<Vec<(DocumentVersion, String)>>;
    /// Versions recorded but not committed yet, oldest first (a writer that stopped between
    /// the two).
    async fn uncommitted_versions(&self, workspace_id: &str, limit: u32) -> Result<Vec<(DocumentVersion, String)>>;
    /// The workspaces that have versions.
    async fn versioned_workspaces(&self) -> Result<Vec<String>>;
}

pub(crate) fn pack(text: &str) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(text.as_bytes()).expect("writing to memory");
    z.finish().expect("writing to memory")
}

pub(crate) fn unpack(bytes: &[u8]) -> Result<String> {
    let mut out = String::new();
    flate2::read::ZlibDecoder::new(bytes)
        .read_to_string(&mut out)
        .map_err(|e| quire_core::Error::Internal(format!("an archived version does not unpack: {e}")))?;
    Ok(out)
}

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    document_id: String,
    seq: i64,
    workspace_id: String,
    version: String,
    bump: String,
    message: String,
    authors: String,
    name: Option<String>,
    commit_hash: Option<String>,
    format: String,
    content: Option<String>,
    packed: Option<Vec<u8>>,
    size: i64,
    created_at: i64,
}

impl VersionRow {
    pub(crate) fn split(self) -> Result<(DocumentVersion, String)> {
        let archived = self.content.is_none();
        let content = match (self.content, &self.packed) {
            (Some(c), _) => c,
            (None, Some(p)) => unpack(p)?,
            (None, None) => String::new(),
        };
        let v = DocumentVersion {
            document_id: self.document_id,
            workspace_id: self.workspace_id,
            seq: self.seq,
            version: self.version,
            bump: self.bump,
            message: self.message,
            authors: serde_json::from_str(&self.authors).unwrap_or(serde_json::Value::Null),
            name: self.name,
            commit: self.commit_hash,
            format: self.format,
            size: self.size,
            archived,
            created_at: quire_core::timestamp_from_ms(self.created_at),
        };
        Ok((v, content))
    }
}

/// Columns of `VersionRow`.
macro_rules! version_columns {
    () => {
        "document_id, seq, workspace_id, version, bump, message, authors, name, commit_hash, format, content, packed, size, created_at"
    };
}

macro_rules! impl_history_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::HistoryStore for $store {
            async fn add_version(&self, v: &quire_core::NewVersion) -> quire_core::Result<quire_core::DocumentVersion> {
                let mut tx = self.begin_write().await?;
                let (seq,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM document_versions WHERE document_id = $1",
                )
                .bind(&v.document_id)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let row: $crate::history::VersionRow = sqlx::query_as(concat!(
                    "INSERT INTO document_versions (document_id, seq, workspace_id, version, bump, message, authors, \
                     format, content, size, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
                    version_columns!()
                ))
                .bind(&v.document_id)
                .bind(seq)
                .bind(&v.workspace_id)
                .bind(&v.version)
                .bind(&v.bump)
                .bind(&v.message)
                .bind(v.authors.to_string())
                .bind(&v.format)
                .bind(&v.content)
                .bind(v.content.len() as i64)
                .bind(quire_core::now_ms())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let (version, _) = row.split()?;
                self.commit(tx).await?;
                Ok(version)
            }

            async fn set_version_commit(&self, document_id: &str, seq: i64, commit: &str) -> quire_core::Result<()> {
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::history::VersionRow> = sqlx::query_as(concat!(
                    "UPDATE document_versions SET commit_hash = $3 WHERE document_id = $1 AND seq = $2 \
                     AND commit_hash IS NULL RETURNING ",
                    version_columns!()
                ))
                .bind(document_id)
                .bind(seq)
                .bind(commit)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some(row) = row else { return Ok(()) };
                let (version, _) = row.split()?;
                let kind: String = sqlx::query_scalar("SELECT kind FROM documents WHERE id = $1")
                    .bind(document_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                let mut data = serde_json::to_value(&version).unwrap_or_default();
                data["id"] = serde_json::Value::String(format!("{}@{}", version.document_id, version.version));
                Self::append_raw(
                    &mut tx,
                    &quire_core::Principal::System,
                    &format!("{kind}.version.created"),
                    Some(&version.workspace_id),
                    Some(document_id),
                    data,
                )
                .await?;
                // Seed 002 §5.2's name for the same moment, seen from the repository.
                let commit_data = serde_json::json!({
                    "commit": commit,
                    "document_id": document_id,
                    "version": version.version,
                    "message": version.message,
                    "authors": version.authors,
                });
                Self::append_raw(
                    &mut tx,
                    &quire_core::Principal::System,
                    "git.commit.created",
                    Some(&version.workspace_id),
                    Some(document_id),
                    commit_data,
                )
                .await?;
                self.commit(tx).await?;
                Ok(())
            }

            async fn latest_version(
                &self,
                document_id: &str,
            ) -> quire_core::Result<Option<(quire_core::DocumentVersion, String)>> {
                let row: Option<$crate::history::VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM document_versions WHERE document_id = $1 ORDER BY seq DESC LIMIT 1"
                ))
                .bind(document_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                row.map($crate::history::VersionRow::split).transpose()
            }

            async fn list_versions(
                &self,
                document_id: &str,
                before_seq: Option<i64>,
                limit: u32,
            ) -> quire_core::Result<Vec<quire_core::DocumentVersion>> {
                // Without the contents (a listing never reads them): an empty one for a whole
                // version, none for an archived one.
                let rows: Vec<$crate::history::VersionRow> = sqlx::query_as(
                    "SELECT document_id, seq, workspace_id, version, bump, message, authors, name, commit_hash, format, \
                     CASE WHEN content IS NULL THEN NULL ELSE '' END AS content, NULL AS packed, size, created_at \
                     FROM document_versions WHERE document_id = $1 AND ($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
                )
                .bind(document_id)
                .bind(before_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map(|r| r.split().map(|(v, _)| v)).collect()
            }

            async fn get_version(
                &self,
                document_id: &str,
                version: &str,
            ) -> quire_core::Result<Option<(quire_core::DocumentVersion, String)>> {
                let row: Option<$crate::history::VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM document_versions WHERE document_id = $1 AND version = $2"
                ))
                .bind(document_id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                row.map($crate::history::VersionRow::split).transpose()
            }

            async fn name_version(
                &self,
                document_id: &str,
                version: &str,
                name: Option<&str>,
            ) -> quire_core::Result<quire_core::DocumentVersion> {
                let row: Option<$crate::history::VersionRow> = sqlx::query_as(concat!(
                    "UPDATE document_versions SET name = $3 WHERE document_id = $1 AND version = $2 RETURNING ",
                    version_columns!()
                ))
                .bind(document_id)
                .bind(version)
                .bind(name)
                .fetch_optional(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                match row {
                    Some(r) => Ok(r.split()?.0),
                    None => Err(quire_core::Error::not_found("version", version)),
                }
            }

            async fn archive_versions(&self, document_id: &str, keep: i64) -> quire_core::Result<u64> {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT seq, content FROM document_versions WHERE document_id = $1 AND content IS NOT NULL \
                     AND seq <= (SELECT MAX(seq) FROM document_versions WHERE document_id = $1) - $2 ORDER BY seq",
                )
                .bind(document_id)
                .bind(keep.max(1))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                for (seq, content) in &rows {
                    sqlx::query(
                        "UPDATE document_versions SET packed = $3, content = NULL WHERE document_id = $1 AND seq = $2",
                    )
                    .bind(document_id)
                    .bind(seq)
                    .bind($crate::history::pack(content))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                }
                tx.commit().await.map_err($crate::rows::db_err)?;
                Ok(rows.len() as u64)
            }

            async fn versions_in_order(
                &self,
                workspace_id: &str,
                after: Option<(i64, String, i64)>,
                limit: u32,
            ) -> quire_core::Result<Vec<(quire_core::DocumentVersion, String)>> {
                let (at, doc, seq) = after.unwrap_or((i64::MIN, String::new(), 0));
                let rows: Vec<$crate::history::VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM document_versions WHERE workspace_id = $1 \
                     AND (created_at > $2 OR (created_at = $2 AND (document_id > $3 OR (document_id = $3 AND seq > $4)))) \
                     ORDER BY created_at, document_id, seq LIMIT $5"
                ))
                .bind(workspace_id)
                .bind(at)
                .bind(doc)
                .bind(seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map($crate::history::VersionRow::split).collect()
            }

            async fn versioned_workspaces(&self) -> quire_core::Result<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT DISTINCT workspace_id FROM document_versions ORDER BY workspace_id")
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn uncommitted_versions(
                &self,
                workspace_id: &str,
                limit: u32,
            ) -> quire_core::Result<Vec<(quire_core::DocumentVersion, String)>> {
                let rows: Vec<$crate::history::VersionRow> = sqlx::query_as(concat!(
                    "SELECT ", version_columns!(), " FROM document_versions WHERE workspace_id = $1 AND commit_hash IS NULL \
                     ORDER BY created_at, document_id, seq LIMIT $2"
                ))
                .bind(workspace_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map($crate::history::VersionRow::split).collect()
            }
        }
    };
}
