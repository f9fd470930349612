//! Assets: images a workspace keeps, uploaded or generated. The bytes go to the asset store
//! (`quire-assets`: local disk or S3, by SHA-256), the record to the database (who holds
//! what, within the workspace's quota); thumbnails are made by the `asset_thumbnails`
//! pipeline component, not in the upload's request; delivery is by signed URLs that need no
//! bearer token and expire.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
pub use quire_assets::UploadLimits;
use quire_assets::signing::UrlSigner;
use quire_assets::thumbs;
use quire_assets::{ObjectError, Objects};
use quire_core::{Asset, Error, NewAsset, NewContext, Principal, Result, Role, Thumbnail};
use quire_jobs::{Component, ComponentError, ComponentInfo, Run};
use quire_store::Store;
use serde_json::{Map, Value, json};

/// The queue thumbnails are made on (closed to users' contexts).
pub const QUEUE: &str = "assets";

/// The setting holding the key signed URLs are made with (sealed).
const URL_KEY_SETTING: &str = "asset_url_key";

/// Where the asset store keeps its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetLocation {
    /// A directory on the local disk (by default `<data dir>/assets`).
    Local(PathBuf),
    /// An S3 bucket, `s3://bucket`, with an endpoint for S3-compatible servers.
    S3 { url: String, endpoint: Option<String> },
}

/// The asset store's settings.
#[derive(Debug, Clone)]
pub struct AssetsConfig {
    pub location: AssetLocation,
    pub limits: UploadLimits,
    /// Bytes each workspace's images may take (originals and thumbnails).
    pub quota_bytes: i64,
    /// How long a signed URL stays valid.
    pub url_lifetime: Duration,
    /// How long an image nothing names stays before the nightly collection removes it.
    pub gc_grace: Duration,
}

impl Default for AssetsConfig {
    fn default() -> Self {
        AssetsConfig {
            // Quire's settings put it in the data directory; this default (tests, embedders)
            // never writes into the working directory.
            location: AssetLocation::Local(std::env::temp_dir().join(format!("quire-assets-{}", std::process::id()))),
            limits: UploadLimits::default(),
            quota_bytes: 10 * 1024 * 1024 * 1024,
            url_lifetime: Duration::from_secs(6 * 3600),
            gc_grace: crate::asset_gc::DEFAULT_GRACE,
        }
    }
}

/// Which file of an asset a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Small,
    Large,
}

impl Variant {
    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "original" => Some(Variant::Original),
            "small" => Some(Variant::Small),
            "large" => Some(Variant::Large),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Small => "small",
            Variant::Large => "large",
        }
    }
}

/// A file of an asset, ready to send: what it is, from its record, and where its bytes are
/// read from once the request says which part it wants (a conditional request that is
/// answered 304 reads nothing).
#[derive(Debug)]
pub struct Delivery {
    pub media_type: String,
    /// The SHA-256 of the file sent (the asset's own, or its thumbnail's): its ETag.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    from: ReadFrom,
}

#[derive(Debug)]
enum ReadFrom {
    Store(Objects),
    Bytes(Bytes),
}

impl Delivery {
    /// A file already in memory (a blob from before the asset store).
    pub fn of_bytes(media_type: String, sha256: String, bytes: Bytes) -> Delivery {
        Delivery { media_type, sha256, size: bytes.len() as u64, from: ReadFrom::Bytes(bytes) }
    }

    /// An object of the asset store (a build's artifact), read when asked.
    pub fn of_object(objects: &Objects, media_type: String, sha256: String, size: u64) -> Delivery {
        Delivery { media_type, sha256, size, from: ReadFrom::Store(objects.clone()) }
    }

    /// The bytes of `range` (end exclusive, within `size`), as they are read.
    pub async fn read(&self, range: std::ops::Range<u64>) -> Result<quire_assets::objects::Chunks> {
        use futures_util::StreamExt;
        match &self.from {
            ReadFrom::Store(objects) => objects.stream(&self.sha256, range).await.map_err(store_error),
            ReadFrom::Bytes(bytes) => {
                let part = bytes.slice(range.start as usize..range.end as usize);
                Ok(futures_util::stream::once(async move { Ok(part) }).boxed())
            }
        }
    }
}

/// Why an upload was not kept: the image itself ([`quire_assets::Rejected`], with its own
/// code), or anything else.
#[derive(Debug)]
pub enum UploadError {
    Rejected(quire_assets::Rejected),
    Other(Error),
}

impl From<Error> for UploadError {
    fn from(e: Error) -> Self {
        UploadError::Other(e)
    }
}

/// The asset service.
pub struct Assets {
    store: Arc<dyn Store>,
    objects: Objects,
    signer: UrlSigner,
    config: AssetsConfig,
    limits: quire_core::JobLimits,
}

fn store_error(e: ObjectError) -> Error {
    match e {
        ObjectError::NotFound(sha) => Error::not_found("asset", sha),
        ObjectError::Range { start, end, size } => {
            Error::invalid("range", format!("{start}-{end} is outside the file's {size} bytes"))
        }
        ObjectError::Config(m) => Error::Unavailable(m),
        ObjectError::Store(m) => Error::Unavailable(m),
        ObjectError::Io(m) => Error::Internal(m),
    }
}

impl Assets {
    /// The service over the asset store `config` names, with the URL key shared by every
    /// process through the database (made on the instance's first start).
    pub async fn new(
        store: Arc<dyn Store>,
        keyring: &quire_auth::Keyring,
        config: AssetsConfig,
        limits: quire_core::JobLimits,
    ) -> Result<Arc<Assets>> {
        let objects = match &config.location {
            AssetLocation::Local(dir) => Objects::local(dir),
            AssetLocation::S3 { url, endpoint } => Objects::s3(url, endpoint.as_deref()),
        }
        .map_err(store_error)?;
        let fresh: String = {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| Error::Internal("no randomness for a key".into()))?;
            key.iter().map(|b| format!("{b:02x}")).collect()
        };
        let stored = store.init_setting(URL_KEY_SETTING, &keyring.seal(URL_KEY_SETTING, &fresh)).await?;
        let key = keyring.open_or_plain(URL_KEY_SETTING, &stored)?;
        Ok(Arc::new(Assets { store, objects, signer: UrlSigner::new(key.as_bytes()), config, limits }))
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    pub fn config(&self) -> &AssetsConfig {
        &self.config
    }

    /// Checks, strips and keeps an upload for a workspace's editor; a new asset's thumbnails
    /// are queued. The same image again is the same asset (and costs no quota); `true` when
    /// this upload added it.
    pub async fn upload(
        &self,
        who: &Principal,
        workspace: &str,
        name: &str,
        bytes: Bytes,
    ) -> std::result::Result<(Asset, bool), UploadError> {
        let (ws, role) = self.store.role_in_workspace(who, workspace).await?;
        if role < Role::Editor {
            return Err(Error::Forbidden("viewers cannot add images to the workspace".into()).into());
        }
        let limits = self.config.limits;
        let accepted = tokio::task::spawn_blocking(move || quire_assets::upload::accept(&bytes, &limits))
            .await
            .map_err(|e| Error::Internal(format!("checking the upload failed: {e}")))?
            .map_err(UploadError::Rejected)?;
        let name: String = name.chars().filter(|c| !c.is_control()).take(255).collect();
        Ok(self.keep(who, &ws.id, accepted, &name, "upload").await?)
    }

    /// Keeps an image a pipeline generated (already through the quality gate).
    pub async fn keep_generated(&self, workspace_id: &str, bytes: Bytes) -> Result<Asset> {
        let limits = self.config.limits;
        let accepted = tokio::task::spawn_blocking(move || quire_assets::upload::accept(&bytes, &limits))
            .await
            .map_err(|e| Error::Internal(format!("checking the image failed: {e}")))?
            .map_err(|r| Error::invalid("image", r.to_string()))?;
        Ok(self.keep(&Principal::System, workspace_id, accepted, "", "generated").await?.0)
    }

    async fn keep(
        &self,
        who: &Principal,
        workspace_id: &str,
        accepted: quire_assets::Accepted,
        name: &str,
        origin: &str,
    ) -> Result<(Asset, bool)> {
        let size = accepted.bytes.len() as i64;
        let sha256 = self.put_within_quota(workspace_id, accepted.bytes).await?;
        let new = NewAsset {
            workspace_id: workspace_id.to_string(),
            sha256,
            media_type: accepted.media_type.to_string(),
            size,
            width: accepted.width as i32,
            height: accepted.height as i32,
            name: name.to_string(),
            origin: origin.to_string(),
            phash: Some(quire_assets::similar::to_hex(accepted.phash)),
            created_by: actor(who),
        };
        let (asset, fresh) = self.store.record_asset(&new, self.config.quota_bytes).await?;
        if fresh {
            let mut data = Map::new();
            data.insert("asset".into(), asset.sha256.clone().into());
            let mut ctx = NewContext::new("assets", &["asset_thumbnails"], data);
            ctx.queue = Some(QUEUE.into());
            self.store
                .submit_contexts(&Principal::System, workspace_id, vec![ctx], &self.limits, quire_core::now_ms())
                .await?;
        }
        Ok((asset, fresh))
    }

    /// Writes bytes to the asset store if the workspace's quota takes them: checked before
    /// the bytes are written (a full workspace writes nothing), and again when the caller
    /// records them (another upload may have come first). Answers their SHA-256.
    async fn put_within_quota(&self, workspace_id: &str, bytes: Bytes) -> Result<String> {
        let size = bytes.len() as i64;
        let used = self.store.asset_usage(workspace_id).await?;
        if used + size > self.config.quota_bytes {
            return Err(quire_core::asset::quota_exceeded(used, self.config.quota_bytes, size));
        }
        self.objects.put(bytes).await.map_err(store_error)
    }

    /// Keeps a file that is not an image (a board configuration's), within the workspace's
    /// quota: no pixels, no thumbnails. The caller checked the writer's role. The same bytes
    /// again are the same asset.
    pub async fn keep_file(
        &self,
        who: &Principal,
        workspace_id: &str,
        name: &str,
        text: bool,
        bytes: Bytes,
    ) -> Result<Asset> {
        let size = bytes.len() as i64;
        let sha256 = self.put_within_quota(workspace_id, bytes).await?;
        let new = NewAsset {
            workspace_id: workspace_id.to_string(),
            sha256,
            media_type: if text { "text/plain; charset=utf-8" } else { "application/octet-stream" }.into(),
            size,
            width: 0,
            height: 0,
            name: name.chars().filter(|c| !c.is_control()).take(255).collect(),
            origin: "config-file".into(),
            phash: None,
            created_by: actor(who),
        };
        Ok(self.store.record_asset(&new, self.config.quota_bytes).await?.0)
    }

    /// A workspace's asset, for someone who may read the workspace.
    pub async fn get(&self, who: &Principal, workspace: &str, sha256: &str) -> Result<Asset> {
        let (ws, _) = self.store.role_in_workspace(who, workspace).await?;
        self.store.get_asset(&ws.id, sha256).await
    }

    /// A workspace's assets, newest first, and the bytes they take of its quota.
    pub async fn list(
        &self,
        who: &Principal,
        workspace: &str,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<(Vec<Asset>, i64)> {
        let (ws, _) = self.store.role_in_workspace(who, workspace).await?;
        let items = self.store.list_assets(&ws.id, before, limit.clamp(1, 200)).await?;
        Ok((items, self.store.asset_usage(&ws.id).await?))
    }

    /// What a signed URL covers: the workspace, the asset and the file of it.
    fn subject(workspace_id: &str, sha256: &str, variant: Variant) -> String {
        format!("{workspace_id}/{sha256}/{}", variant.as_str())
    }

    /// A URL for one file of an asset that works without a bearer token until it expires.
    /// Expiries are rounded up to the hour, so the same file's URL stays the same for a
    /// while and browsers and CDNs can cache it.
    pub fn signed_url(&self, workspace_id: &str, sha256: &str, variant: Variant) -> (String, i64) {
        let path = format!("/files/{workspace_id}/{sha256}/{}", variant.as_str());
        self.sign_url(&path, &Self::subject(workspace_id, sha256, variant))
    }

    /// `path` with the query that lets anyone holding it read what `subject` names until it
    /// expires (the instance's URL lifetime, rounded up to the hour); and when that is.
    pub fn sign_url(&self, path: &str, subject: &str) -> (String, i64) {
        let now = quire_core::now_ms() / 1000;
        let lifetime = self.config.url_lifetime.as_secs() as i64;
        let expires = (now + lifetime + 3599) / 3600 * 3600;
        let sig = self.signer.sign(subject, expires);
        (format!("{path}?expires={expires}&sig={sig}"), expires)
    }

    /// Whether a signed URL's `expires` and `sig` were made for `subject` and still hold.
    pub fn verify_url(&self, subject: &str, expires: i64, signature: &str) -> Result<()> {
        let now = quire_core::now_ms() / 1000;
        self.signer.verify(subject, expires, signature, now).map_err(|e| Error::Forbidden(e.to_string()))
    }

    /// The file a signed URL names, or why it is not honoured.
    pub async fn open_signed(
        &self,
        workspace_id: &str,
        sha256: &str,
        variant: Variant,
        expires: i64,
        signature: &str,
    ) -> Result<Delivery> {
        self.verify_url(&Self::subject(workspace_id, sha256, variant), expires, signature)?;
        self.open(workspace_id, sha256, variant).await
    }

    /// A file of an asset, to be read (the caller checked access).
    pub async fn open(&self, workspace_id: &str, sha256: &str, variant: Variant) -> Result<Delivery> {
        let asset = self.store.get_asset(workspace_id, sha256).await?;
        let (sha, media_type, size) = match variant {
            Variant::Original => (asset.sha256.clone(), asset.media_type.clone(), asset.size),
            v => {
                let thumb = asset.thumbnails.iter().find(|t| t.variant == v.as_str()).ok_or_else(|| {
                    Error::not_found("thumbnail", format!("{} of {sha256} (not made yet)", v.as_str()))
                })?;
                (thumb.sha256.clone(), "image/webp".to_string(), thumb.size)
            }
        };
        Ok(Delivery { media_type, sha256: sha, size: size.max(0) as u64, from: ReadFrom::Store(self.objects.clone()) })
    }

    /// The bytes of an original (the caller checked access).
    pub async fn original(&self, sha256: &str) -> Result<Bytes> {
        self.objects.get(sha256).await.map_err(store_error)
    }

    /// Deletes an asset's objects (its original and thumbnails) that no workspace holds any
    /// more, once its record is gone; how many, and their bytes.
    pub async fn delete_unheld(&self, asset: &Asset) -> Result<(u32, i64)> {
        let objects = std::iter::once((asset.sha256.as_str(), asset.size))
            .chain(asset.thumbnails.iter().map(|t| (t.sha256.as_str(), t.size)));
        let (mut deleted, mut bytes) = (0, 0);
        for (sha, size) in objects {
            if self.store.object_held(sha).await? {
                continue;
            }
            match self.objects.delete(sha).await {
                Ok(()) | Err(ObjectError::NotFound(_)) => {
                    deleted += 1;
                    bytes += size;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok((deleted, bytes))
    }

    /// Makes and records an asset's thumbnails.
    pub async fn make_thumbnails(&self, workspace_id: &str, sha256: &str) -> Result<Vec<Thumbnail>> {
        let asset = self.store.get_asset(workspace_id, sha256).await?;
        let original = self.objects.get(sha256).await.map_err(store_error)?;
        let sizes: Vec<u32> = thumbs::SIZES.iter().map(|(_, s)| *s).collect();
        let made = tokio::task::spawn_blocking(move || thumbs::thumbnails(&original, &sizes))
            .await
            .map_err(|e| Error::Internal(format!("making thumbnails failed: {e}")))?
            .map_err(|e| Error::invalid("asset", format!("no thumbnails could be made: {e}")))?;
        let mut out = Vec::with_capacity(made.len());
        for ((variant, _), t) in thumbs::SIZES.iter().zip(made) {
            let size = t.bytes.len() as i64;
            let sha = self.objects.put(Bytes::from(t.bytes)).await.map_err(store_error)?;
            out.push(Thumbnail {
                variant: variant.to_string(),
                sha256: sha,
                width: t.width as i32,
                height: t.height as i32,
                size,
            });
        }
        self.store.set_asset_thumbnails(&asset.workspace_id, &asset.sha256, &out).await?;
        Ok(out)
    }

    /// Moves the blobs kept in the database (generated images from before the asset store)
    /// into it, a batch at a time; answers how many moved. Safe to run from several
    /// processes at once, and again after an interruption.
    pub async fn move_blobs(&self) -> Result<usize> {
        let mut moved = 0;
        loop {
            let batch = self.store.blobs_to_move(50).await?;
            if batch.is_empty() {
                return Ok(moved);
            }
            for (blob, _) in batch {
                let accepted = match quire_assets::upload::accept(&blob.bytes, &self.config.limits) {
                    Ok(a) => a,
                    // Not an image Quire would keep now: kept as it is, unchecked.
                    Err(_) => quire_assets::Accepted {
                        bytes: Bytes::from(blob.bytes.clone()),
                        media_type: "application/octet-stream",
                        width: 0,
                        height: 0,
                        removed: Vec::new(),
                        phash: 0,
                    },
                };
                let size = accepted.bytes.len() as i64;
                let sha256 = self.objects.put(accepted.bytes).await.map_err(store_error)?;
                let new = NewAsset {
                    workspace_id: blob.workspace_id.clone(),
                    sha256,
                    media_type: if accepted.width > 0 { accepted.media_type.into() } else { blob.media_type.clone() },
                    size,
                    width: accepted.width as i32,
                    height: accepted.height as i32,
                    name: String::new(),
                    origin: "generated".into(),
                    phash: (accepted.width > 0).then(|| quire_assets::similar::to_hex(accepted.phash)),
                    created_by: actor(&Principal::System),
                };
                // Moved whatever the quota says: these were kept already.
                self.store.record_asset(&new, i64::MAX).await?;
                self.store.forget_blob(&blob.workspace_id, &blob.sha256).await?;
                moved += 1;
            }
        }
    }
}

/// Who an asset is recorded as added by: the user (or the user who made the API key).
fn actor(who: &Principal) -> String {
    match (who.owner_id(), who) {
        (Some(id), _) => id.to_string(),
        (None, Principal::ApiKey { id, .. }) => id.clone(),
        _ => "system".into(),
    }
}

/// Makes an asset's thumbnails (`data.asset`: its SHA-256), on the `assets` queue.
pub struct ThumbnailComponent {
    pub assets: Arc<Assets>,
}

#[async_trait]
impl Component for ThumbnailComponent {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "asset_thumbnails",
            "Makes an image's WebP thumbnails (320 and 1280 px on the longer side)",
            &["asset"],
            &["thumbnails"],
        )
        .system_only()
    }

    async fn run(&self, run: Run) -> std::result::Result<Map<String, Value>, ComponentError> {
        let Some(sha) = run.str("asset").map(String::from) else {
            return Err(ComponentError::permanent("invalid_input", "data.asset is missing"));
        };
        let workspace = run.context().workspace_id.clone();
        let made = match self.assets.make_thumbnails(&workspace, &sha).await {
            Ok(made) => made,
            Err(e @ (Error::NotFound { .. } | Error::Invalid { .. })) => {
                return Err(ComponentError::permanent("thumbnails_failed", e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = Map::new();
        out.insert("thumbnails".into(), json!(made));
        Ok(out)
    }
}
