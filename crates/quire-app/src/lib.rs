//! Quire's application services: what ties the engine crates (store, collaboration, jobs,
//! AI, history) together into the capabilities the products use, one module per
//! capability. Nothing here knows of HTTP: `quire-server` turns requests into calls on
//! these services, and `quire worker` runs their pipeline components without a server.
//!
//! - [`assets`] — images a workspace keeps (uploads, generated images) in the asset store,
//!   within its quota; thumbnails by the `asset_thumbnails` component; signed URLs.
//! - [`asset_gc`] — the nightly `assets_gc` component: images nothing names for the grace
//!   period leave the workspace, and their files the asset store once no workspace holds them.
//! - [`board_configs`] — board configurations: the Armbian build schema (shipped, or derived
//!   from a configured checkout), served by version, and configurations checked against it.
//! - [`builds`] — board builds: queued from a checked configuration, run by the
//!   `armbian_build` component in the Armbian checkout, logs kept in chunks and followed live.
//! - [`ai`] — AI providers and each workspace's choice of them, prompt templates, the
//!   interactions log, local models, and the `ai_generator` / `image_generator` components.
//! - [`history`] — version history: when an edit becomes a version, its commit in the
//!   workspace's git repository, pushes to a remote, and the `version` / `push` components.
//! - [`drafts`] — AI drafts approved into their live documents, with a version and
//!   `prd.approved`.
//! - [`pipelines`] — the component registry every worker and the API share, and the engine
//!   settings Quire's own queues need.
//! - [`maintenance`] — background tasks of a server: expiring old audit entries and AI
//!   interactions.
//! - [`relay`] — collaboration across processes through Redis.
//! - [`batch`] — a queue stored in batches off the request path (the audit trail, the AI log).

pub mod ai;
pub mod asset_gc;
pub mod assets;
pub mod batch;
pub mod board_configs;
pub mod builds;
pub mod config_files;
pub mod drafts;
pub mod history;
pub mod maintenance;
pub mod pipelines;
pub mod relay;
pub mod userpatches;
