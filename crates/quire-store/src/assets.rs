//! Which workspace holds which asset (the bytes are in the asset store, `quire-assets`), with
//! each workspace's storage quota checked in the transaction that records a new one.

use async_trait::async_trait;
use quire_core::{Asset, Blob, NewAsset, Result, Thumbnail};

#[async_trait]
pub trait AssetIndex: Send + Sync {
    /// Records an asset for its workspace and answers it, with `true` when it is new; one the
    /// workspace already holds is answered as recorded. `LimitExceeded` when the workspace's
    /// assets (originals and thumbnails) would pass `quota` bytes. The caller checked the
    /// principal may add to the workspace.
    async fn record_asset(&self, asset: &NewAsset, quota: i64) -> Result<(Asset, bool)>;
    /// A workspace's asset (the caller checked the reader may see the workspace).
    async fn get_asset(&self, workspace_id: &str, sha256: &str) -> Result<Asset>;
    /// A workspace's assets, newest first; `before` is the `(created_at ms, sha256)` of the
    /// last asset of the previous page.
    async fn list_assets(&self, workspace_id: &str, before: Option<(i64, String)>, limit: u32) -> Result<Vec<Asset>>;
    /// Bytes a workspace's assets take (originals and thumbnails).
    async fn asset_usage(&self, workspace_id: &str) -> Result<i64>;
    /// The perceptual hash of each of a workspace's assets, by SHA-256 (`None` for those
    /// kept before hashes were recorded).
    async fn asset_phashes(&self, workspace_id: &str) -> Result<std::collections::HashMap<String, Option<String>>>;
    /// Records the perceptual hash of an asset kept before hashes were.
    async fn set_asset_phash(&self, workspace_id: &str, sha256: &str, phash: &str) -> Result<()>;
    /// Records an asset's thumbnails (the pipeline made them).
    async fn set_asset_thumbnails(&self, workspace_id: &str, sha256: &str, thumbnails: &[Thumbnail]) -> Result<()>;
    /// Blobs still kept in the database (from before the asset store), oldest first, with
    /// when each was kept: the caller writes each to the asset store, records it, then
    /// calls [`AssetIndex::forget_blob`].
    async fn blobs_to_move(&self, limit: u32) -> Result<Vec<(Blob, i64)>>;
    /// Removes a blob from the database once it is in the asset store.
    async fn forget_blob(&self, workspace_id: &str, sha256: &str) -> Result<()>;
    /// The workspaces that hold assets (the collector of unreferenced assets visits each).
    async fn asset_workspaces(&self) -> Result<Vec<String>>;
    /// A workspace's assets kept before `before_ms`, each with since when nothing names it
    /// (`None`: something did when last looked): the collector's candidates.
    async fn assets_kept_before(&self, workspace_id: &str, before_ms: i64) -> Result<Vec<(String, Option<i64>)>>;
    /// Records since when nothing names each of `sha256s`, unless already recorded; `None`
    /// clears it (something names them again).
    async fn set_assets_unreferenced(&self, workspace_id: &str, sha256s: &[String], since: Option<i64>) -> Result<()>;
    /// Removes a workspace's record of an asset that nothing has named since
    /// `unreferenced_by` or before; answers it, or `None` when it is not recorded so.
    async fn drop_asset(&self, workspace_id: &str, sha256: &str, unreferenced_by: i64) -> Result<Option<Asset>>;
    /// Whether any workspace still holds the object `sha256`, as an asset or as one's
    /// thumbnail (objects are shared by hash: only an object no one holds may go).
    async fn object_held(&self, sha256: &str) -> Result<bool>;
}

pub(crate) const ASSET_COLUMNS: &str =
    "workspace_id, sha256, media_type, size, width, height, name, origin, thumbnails, phash, created_by, created_at";

pub(crate) type AssetRow = (String, String, String, i64, i32, i32, String, String, String, Option<String>, String, i64);

pub(crate) fn asset_of(row: AssetRow) -> Asset {
    let (
        workspace_id,
        sha256,
        media_type,
        size,
        width,
        height,
        name,
        origin,
        thumbnails,
        phash,
        created_by,
        created_at,
    ) = row;
    Asset {
        workspace_id,
        sha256,
        media_type,
        size,
        width,
        height,
        name,
        origin,
        thumbnails: serde_json::from_str(&thumbnails).unwrap_or_default(),
        phash,
        created_by,
        created_at: quire_core::timestamp_from_ms(created_at),
    }
}

macro_rules! impl_asset_index {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::AssetIndex for $store {
            async fn record_asset(
                &self,
                a: &quire_core::NewAsset,
                quota: i64,
            ) -> quire_core::Result<(quire_core::Asset, bool)> {
                use $crate::assets::{ASSET_COLUMNS, AssetRow, asset_of};
                let mut tx = self.begin_write().await?;
                // One recorder per workspace at a time (SQLite's one writer; an advisory lock
                // on PostgreSQL), so two uploads cannot both fit under the quota's last bytes.
                if let Some(lock) = Self::ASSET_LOCK {
                    sqlx::query(lock).bind(&a.workspace_id).execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                }
                let existing: Option<AssetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE workspace_id = $1 AND sha256 = $2"
                )))
                .bind(&a.workspace_id)
                .bind(&a.sha256)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                if let Some(row) = existing {
                    return Ok((asset_of(row), false));
                }
                let used: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(size + thumbnails_size), 0) AS BIGINT) FROM assets WHERE workspace_id = $1",
                )
                .bind(&a.workspace_id)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                if used + a.size > quota {
                    return Err(quire_core::asset::quota_exceeded(used, quota, a.size));
                }
                let now = quire_core::now_ms();
                sqlx::query(
                    "INSERT INTO assets (workspace_id, sha256, media_type, size, width, height, name, origin, phash, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&a.workspace_id)
                .bind(&a.sha256)
                .bind(&a.media_type)
                .bind(a.size)
                .bind(a.width)
                .bind(a.height)
                .bind(&a.name)
                .bind(&a.origin)
                .bind(&a.phash)
                .bind(&a.created_by)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                tx.commit().await.map_err($crate::rows::db_err)?;
                let row: AssetRow = (
                    a.workspace_id.clone(),
                    a.sha256.clone(),
                    a.media_type.clone(),
                    a.size,
                    a.width,
                    a.height,
                    a.name.clone(),
                    a.origin.clone(),
                    "[]".into(),
                    a.phash.clone(),
                    a.created_by.clone(),
                    now,
                );
                Ok((asset_of(row), true))
            }

            async fn get_asset(&self, workspace_id: &str, sha256: &str) -> quire_core::Result<quire_core::Asset> {
                use $crate::assets::{ASSET_COLUMNS, AssetRow, asset_of};
                let row: Option<AssetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE workspace_id = $1 AND sha256 = $2"
                )))
                .bind(workspace_id)
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                row.map(asset_of).ok_or_else(|| quire_core::Error::not_found("asset", sha256))
            }

            async fn list_assets(
                &self,
                workspace_id: &str,
                before: Option<(i64, String)>,
                limit: u32,
            ) -> quire_core::Result<Vec<quire_core::Asset>> {
                use $crate::assets::{ASSET_COLUMNS, AssetRow, asset_of};
                let (at, sha) = before.unwrap_or((i64::MAX, String::new()));
                let rows: Vec<AssetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE workspace_id = $1 \
                     AND (created_at < $2 OR (created_at = $2 AND sha256 > $3)) \
                     ORDER BY created_at DESC, sha256 LIMIT $4"
                )))
                .bind(workspace_id)
                .bind(at)
                .bind(sha)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(rows.into_iter().map(asset_of).collect())
            }

            async fn asset_usage(&self, workspace_id: &str) -> quire_core::Result<i64> {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(size + thumbnails_size), 0) AS BIGINT) FROM assets WHERE workspace_id = $1",
                )
                .bind(workspace_id)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::rows::db_err)
            }

            async fn asset_phashes(
                &self,
                workspace_id: &str,
            ) -> quire_core::Result<std::collections::HashMap<String, Option<String>>> {
                let rows: Vec<(String, Option<String>)> =
                    sqlx::query_as("SELECT sha256, phash FROM assets WHERE workspace_id = $1")
                        .bind(workspace_id)
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok(rows.into_iter().collect())
            }

            async fn set_asset_phash(&self, workspace_id: &str, sha256: &str, phash: &str) -> quire_core::Result<()> {
                sqlx::query("UPDATE assets SET phash = $3 WHERE workspace_id = $1 AND sha256 = $2")
                    .bind(workspace_id)
                    .bind(sha256)
                    .bind(phash)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn set_asset_thumbnails(
                &self,
                workspace_id: &str,
                sha256: &str,
                thumbnails: &[quire_core::Thumbnail],
            ) -> quire_core::Result<()> {
                let json = serde_json::to_string(thumbnails).unwrap_or_else(|_| "[]".into());
                let size: i64 = thumbnails.iter().map(|t| t.size).sum();
                let done = sqlx::query(
                    "UPDATE assets SET thumbnails = $3, thumbnails_size = $4 WHERE workspace_id = $1 AND sha256 = $2",
                )
                .bind(workspace_id)
                .bind(sha256)
                .bind(json)
                .bind(size)
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                if done.rows_affected() == 0 {
                    return Err(quire_core::Error::not_found("asset", sha256));
                }
                Ok(())
            }

            async fn blobs_to_move(&self, limit: u32) -> quire_core::Result<Vec<(quire_core::Blob, i64)>> {
                let rows: Vec<(String, String, String, Vec<u8>, i64)> = sqlx::query_as(
                    "SELECT workspace_id, sha256, media_type, bytes, created_at FROM blobs \
                     ORDER BY created_at, workspace_id, sha256 LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(workspace_id, sha256, media_type, bytes, at)| {
                        (quire_core::Blob { workspace_id, sha256, media_type, bytes }, at)
                    })
                    .collect())
            }

            async fn forget_blob(&self, workspace_id: &str, sha256: &str) -> quire_core::Result<()> {
                sqlx::query("DELETE FROM blobs WHERE workspace_id = $1 AND sha256 = $2")
                    .bind(workspace_id)
                    .bind(sha256)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn asset_workspaces(&self) -> quire_core::Result<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT DISTINCT workspace_id FROM assets ORDER BY workspace_id")
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn assets_kept_before(
                &self,
                workspace_id: &str,
                before_ms: i64,
            ) -> quire_core::Result<Vec<(String, Option<i64>)>> {
                sqlx::query_as(
                    "SELECT sha256, unreferenced_since FROM assets WHERE workspace_id = $1 AND created_at < $2 \
                     ORDER BY created_at, sha256",
                )
                .bind(workspace_id)
                .bind(before_ms)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)
            }

            async fn set_assets_unreferenced(
                &self,
                workspace_id: &str,
                sha256s: &[String],
                since: Option<i64>,
            ) -> quire_core::Result<()> {
                let mut tx = self.begin_write().await?;
                for sha in sha256s {
                    let query = match since {
                        Some(at) => sqlx::query(
                            "UPDATE assets SET unreferenced_since = $3 \
                             WHERE workspace_id = $1 AND sha256 = $2 AND unreferenced_since IS NULL",
                        )
                        .bind(workspace_id)
                        .bind(sha)
                        .bind(at),
                        None => sqlx::query(
                            "UPDATE assets SET unreferenced_since = NULL WHERE workspace_id = $1 AND sha256 = $2",
                        )
                        .bind(workspace_id)
                        .bind(sha),
                    };
                    query.execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                }
                tx.commit().await.map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn drop_asset(
                &self,
                workspace_id: &str,
                sha256: &str,
                unreferenced_by: i64,
            ) -> quire_core::Result<Option<quire_core::Asset>> {
                use $crate::assets::{ASSET_COLUMNS, AssetRow, asset_of};
                let mut tx = self.begin_write().await?;
                let row: Option<AssetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE workspace_id = $1 AND sha256 = $2 \
                     AND unreferenced_since IS NOT NULL AND unreferenced_since <= $3"
                )))
                .bind(workspace_id)
                .bind(sha256)
                .bind(unreferenced_by)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                if row.is_some() {
                    sqlx::query("DELETE FROM assets WHERE workspace_id = $1 AND sha256 = $2")
                        .bind(workspace_id)
                        .bind(sha256)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::rows::db_err)?;
                }
                tx.commit().await.map_err($crate::rows::db_err)?;
                Ok(row.map(asset_of))
            }

            async fn object_held(&self, sha256: &str) -> quire_core::Result<bool> {
                let as_asset: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM assets WHERE sha256 = $1 LIMIT 1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                if as_asset.is_some() {
                    return Ok(true);
                }
                // A thumbnail's hash is in its asset's JSON list of thumbnails.
                let pattern = format!("%\"{sha256}\"%");
                let as_thumbnail: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM assets WHERE thumbnails LIKE $1 LIMIT 1")
                        .bind(pattern)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok(as_thumbnail.is_some())
            }
        }
    };
}
