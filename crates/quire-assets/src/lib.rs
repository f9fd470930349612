//! Quire's asset store: the bytes of images and files, named by their SHA-256, on the local
//! disk under the data directory or in S3-compatible object storage (one `object_store`
//! interface for both), and what is done to an image before and after it is kept.
//!
//! - [`Objects`] — put (atomic, never half-visible, once per content), get (with a byte range),
//!   head, delete and list, keyed `sha256/<2 hex>/<64 hex>`.
//! - [`upload`] — an upload's type from its bytes (PNG, JPEG, WebP, GIF; SVG refused), size
//!   and pixel limits read from the header before anything is decoded, a full decode under an
//!   allocation limit (truncated files and decompression bombs refused), and its metadata
//!   (EXIF with GPS, XMP, comments, text chunks) removed without re-encoding the pixels.
//! - [`thumbs`] — thumbnails: decoded, resized (Lanczos3, SIMD) and encoded as lossy WebP.
//! - [`similar`] — perceptual hashes, so a picture that repeats another is recognised.
//! - [`signing`] — URLs that carry their own permission (HMAC-SHA256, with an expiry), so an
//!   `<img>` tag or a CDN needs no bearer token.
//!
//! Nothing here knows of HTTP or of the database: the application layer records who owns
//! which asset and checks quotas.

pub mod objects;
pub mod signing;
pub mod similar;
pub mod thumbs;
pub mod upload;

pub use objects::{ObjectError, Objects, sha256_hex};
pub use upload::{Accepted, Rejected, UploadLimits};
