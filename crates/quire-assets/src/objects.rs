//! Bytes by content: each object is named by its SHA-256 and written once. The local disk
//! (object_store's `LocalFileSystem` writes a temporary file and renames it into place) and
//! S3 (a PUT is all or nothing) both make a write visible whole or not at all.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload};

/// The SHA-256 of `bytes`, as 64 lower-case hex digits.
/// The SHA-256 (hex) and size of a file, read 1 MiB at a time.
pub fn sha256_file(path: &FsPath) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        size += n as u64;
    }
    let digest = ctx.finish();
    Ok((digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(), size))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` names an object: 64 lower-case hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("no object {0}")]
    NotFound(String),
    #[error("the range {start}-{end} is outside the object's {size} bytes")]
    Range { start: u64, end: u64, size: u64 },
    #[error("the asset store is not usable: {0}")]
    Config(String),
    #[error("the asset store failed: {0}")]
    Store(String),
    #[error("reading the file failed: {0}")]
    Io(String),
}

impl From<object_store::Error> for ObjectError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => ObjectError::NotFound(path),
            other => ObjectError::Store(other.to_string()),
        }
    }
}

/// Part of an object, and the whole object's size.
#[derive(Debug, Clone)]
pub struct Slice {
    pub bytes: Bytes,
    /// The byte range `bytes` covers.
    pub range: Range<u64>,
    pub size: u64,
}

/// An object's bytes as they are read, chunk by chunk: never the whole object in memory.
pub type Chunks = futures_util::stream::BoxStream<'static, Result<Bytes, ObjectError>>;

/// Bytes read from a local file at a time while streaming (object_store's own 8 KiB would
/// cost a blocking-pool trip per 8 KiB).
const FILE_CHUNK: u64 = 512 * 1024;

/// The asset store: content-addressed objects in any `object_store` backend.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Where it is, for messages (a directory, or `s3://bucket`).
    location: String,
}

impl Objects {
    /// Objects under a directory on the local disk (created when missing).
    pub fn local(dir: &FsPath) -> Result<Self, ObjectError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ObjectError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| ObjectError::Config(e.to_string()))?;
        Ok(Objects { store: Arc::new(store), location: dir.display().to_string() })
    }

    /// Objects in an S3 bucket: `s3://bucket` (credentials, region and endpoint from the
    /// usual `AWS_*` environment variables), with `endpoint` and plain HTTP for an
    /// S3-compatible server of one's own.
    pub fn s3(url: &str, endpoint: Option<&str>) -> Result<Self, ObjectError> {
        let bucket = url
            .strip_prefix("s3://")
            .map(|b| b.trim_end_matches('/'))
            .filter(|b| !b.is_empty() && !b.contains('/'))
            .ok_or_else(|| ObjectError::Config(format!("{url}: an S3 asset store is named s3://<bucket>")))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| ObjectError::Config(e.to_string()))?;
        Ok(Objects { store: Arc::new(store), location: url.to_string() })
    }

    /// Any other `object_store` backend (tests use the in-memory one).
    pub fn with_store(store: Arc<dyn ObjectStore>, location: impl Into<String>) -> Self {
        Objects { store, location: location.into() }
    }

    /// Where the objects are, for messages and logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn path(sha256: &str) -> Path {
        Path::from(format!("sha256/{}/{sha256}", &sha256[..2]))
    }

    /// Keeps `bytes` and answers their SHA-256; content already kept is not written again.
    pub async fn put(&self, bytes: Bytes) -> Result<String, ObjectError> {
        let sha256 = sha256_hex(&bytes);
        let path = Self::path(&sha256);
        match self.store.head(&path).await {
            Ok(meta) if meta.size == bytes.len() as u64 => return Ok(sha256),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.store.put(&path, PutPayload::from_bytes(bytes)).await?;
        Ok(sha256)
    }

    /// Keeps a file of any size, read from disk a part at a time (hashed first, then sent
    /// in parts: a multipart upload to S3, a temporary file renamed into place on disk), never
    /// whole in memory. Answers its SHA-256 and size.
    pub async fn put_file(&self, file: &FsPath) -> Result<(String, u64), ObjectError> {
        const PART: usize = 8 << 20;
        let io = |e: std::io::Error| ObjectError::Io(format!("{}: {e}", file.display()));
        let (sha256, size) = {
            let file = file.to_path_buf();
            tokio::task::spawn_blocking(move || sha256_file(&file))
                .await
                .map_err(|e| ObjectError::Io(e.to_string()))?
                .map_err(io)?
        };
        let path = Self::path(&sha256);
        match self.store.head(&path).await {
            Ok(meta) if meta.size == size => return Ok((sha256, size)),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut upload =
            object_store::WriteMultipart::new_with_chunk_size(self.store.put_multipart(&path).await?, PART);
        let mut reader = tokio::fs::File::open(file).await.map_err(io)?;
        let mut buf = vec![0u8; PART];
        loop {
            use tokio::io::AsyncReadExt;
            let n = reader.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            upload.wait_for_capacity(2).await?;
            upload.write(&buf[..n]);
        }
        upload.finish().await?;
        Ok((sha256, size))
    }

    /// The whole object.
    pub async fn get(&self, sha256: &str) -> Result<Bytes, ObjectError> {
        Ok(self.get_range(sha256, None).await?.bytes)
    }

    /// The object, or the part of it `range` names (end exclusive; an end past the object's
    /// size is cut to it, as HTTP ranges are).
    pub async fn get_range(&self, sha256: &str, range: Option<Range<u64>>) -> Result<Slice, ObjectError> {
        if !is_sha256(sha256) {
            return Err(ObjectError::NotFound(sha256.to_string()));
        }
        let path = Self::path(sha256);
        let range = match range {
            None => None,
            Some(r) => {
                let size = self.size(sha256).await?;
                if r.start >= size || r.start >= r.end {
                    return Err(ObjectError::Range { start: r.start, end: r.end, size });
                }
                Some(GetRange::Bounded(r.start..r.end.min(size)))
            }
        };
        let result = self.store.get_opts(&path, GetOptions { range, ..Default::default() }).await?;
        let (size, range) = (result.meta.size, result.range.clone());
        let bytes = result.bytes().await?;
        Ok(Slice { bytes, range, size })
    }

    /// The bytes of `range` of an object (end exclusive, within it: the caller knows its
    /// size), as they are read: a local file in 512 KiB chunks, S3 as its answer arrives.
    /// A missing object is `NotFound` here, before any byte.
    pub async fn stream(&self, sha256: &str, range: Range<u64>) -> Result<Chunks, ObjectError> {
        if !is_sha256(sha256) {
            return Err(ObjectError::NotFound(sha256.to_string()));
        }
        if range.start >= range.end {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..Default::default() };
        let result = self.store.get_opts(&Self::path(sha256), options).await?;
        Ok(match result.payload {
            GetResultPayload::File(file, _) => file_chunks(file, result.range),
            GetResultPayload::Stream(s) => s.map(|chunk| chunk.map_err(ObjectError::from)).boxed(),
        })
    }

    /// The object's size in bytes.
    pub async fn size(&self, sha256: &str) -> Result<u64, ObjectError> {
        if !is_sha256(sha256) {
            return Err(ObjectError::NotFound(sha256.to_string()));
        }
        Ok(self.store.head(&Self::path(sha256)).await?.size)
    }

    /// Whether the object is kept.
    pub async fn exists(&self, sha256: &str) -> Result<bool, ObjectError> {
        match self.size(sha256).await {
            Ok(_) => Ok(true),
            Err(ObjectError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the object; removing one that is not there is no error.
    pub async fn delete(&self, sha256: &str) -> Result<(), ObjectError> {
        if !is_sha256(sha256) {
            return Ok(());
        }
        match self.store.delete(&Self::path(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object's SHA-256 and size.
    pub async fn list(&self) -> Result<Vec<(String, u64)>, ObjectError> {
        let mut stream = self.store.list(Some(&Path::from("sha256")));
        let mut all = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            if let Some(name) = meta.location.filename()
                && is_sha256(name)
            {
                all.push((name.to_string(), meta.size));
            }
        }
        Ok(all)
    }
}

/// `range` of a local file, read `FILE_CHUNK` at a time off the async threads.
fn file_chunks(file: std::fs::File, range: Range<u64>) -> Chunks {
    let start = (file, range.start, range.end, true);
    futures_util::stream::try_unfold(start, |(mut file, at, end, first)| async move {
        if at >= end {
            return Ok(None);
        }
        let n = (end - at).min(FILE_CHUNK);
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            use std::io::{Read, Seek, SeekFrom};
            if first {
                file.seek(SeekFrom::Start(at))?;
            }
            let mut chunk = vec![0; n as usize];
            file.read_exact(&mut chunk)?;
            Ok((file, chunk))
        })
        .await
        .map_err(|e| ObjectError::Store(format!("reading a file: {e}")))?;
        let (file, chunk) = read.map_err(|e| ObjectError::Store(format!("reading a file: {e}")))?;
        Ok(Some((Bytes::from(chunk), (file, at + n, end, false))))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_stream_in_chunks_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path()).unwrap();
        // Two and a half chunks, so that the last one is short.
        let bytes: Bytes = (0..FILE_CHUNK * 5 / 2).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
        let sha = objects.put(bytes.clone()).await.unwrap();
        let collect = |range: Range<u64>| {
            let objects = objects.clone();
            let sha = sha.clone();
            async move {
                let chunks: Vec<Bytes> = objects.stream(&sha, range).await.unwrap().map(|c| c.unwrap()).collect().await;
                (chunks.len(), chunks.concat())
            }
        };
        let (n, whole) = collect(0..bytes.len() as u64).await;
        assert_eq!((n, whole.as_slice()), (3, &bytes[..]), "read in three chunks, whole");
        let (_, part) = collect(1_000..FILE_CHUNK + 10).await;
        assert_eq!(part.as_slice(), &bytes[1_000..FILE_CHUNK as usize + 10]);
        assert_eq!(collect(5..5).await.0, 0, "an empty range is no chunk");
        let missing = objects.stream(&"ab".repeat(32), 0..10).await.err().unwrap();
        assert!(matches!(missing, ObjectError::NotFound(_)), "{missing:?}");
    }

    #[tokio::test]
    async fn objects_are_kept_once_by_content_and_read_in_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path()).unwrap();
        let bytes = Bytes::from_static(b"hello, assets");
        let sha = objects.put(bytes.clone()).await.unwrap();
        assert_eq!(sha, sha256_hex(b"hello, assets"));
        assert_eq!(objects.put(bytes.clone()).await.unwrap(), sha, "the same content again");
        assert_eq!(objects.get(&sha).await.unwrap(), bytes);
        let part = objects.get_range(&sha, Some(7..100)).await.unwrap();
        assert_eq!((&part.bytes[..], part.range, part.size), (&b"assets"[..], 7..13, 13));
        assert!(matches!(objects.get_range(&sha, Some(13..20)).await, Err(ObjectError::Range { size: 13, .. })));
        assert_eq!(objects.list().await.unwrap(), vec![(sha.clone(), 13)]);
        // Nothing but the object itself is left on disk (no temporary files).
        let file = dir.path().join("sha256").join(&sha[..2]).join(&sha);
        assert_eq!(std::fs::read(&file).unwrap(), b"hello, assets");
        assert_eq!(std::fs::read_dir(file.parent().unwrap()).unwrap().count(), 1);
        objects.delete(&sha).await.unwrap();
        objects.delete(&sha).await.unwrap();
        assert!(matches!(objects.get(&sha).await, Err(ObjectError::NotFound(_))));
        assert!(matches!(objects.get("../../etc/passwd").await, Err(ObjectError::NotFound(_))));
    }

    #[test]
    fn s3_urls_name_a_bucket() {
        assert!(matches!(Objects::s3("s3://", None), Err(ObjectError::Config(_))));
        assert!(matches!(Objects::s3("s3://a/b", None), Err(ObjectError::Config(_))));
        assert!(matches!(Objects::s3("https://bucket", None), Err(ObjectError::Config(_))));
    }
}
