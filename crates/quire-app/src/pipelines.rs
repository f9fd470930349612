//! The pipeline components this instance can run, and the engine settings Quire's own
//! queues need. `quire serve` and `quire worker` build the same registry, so every worker can
//! run what the API accepts.

use std::sync::Arc;

use quire_store::Store;
use tokio::sync::watch;

use crate::{ai, asset_gc, assets, board_configs, builds, history};

/// The built-in components, the AI components, version history's, the asset store's and
/// board builds'.
pub fn registry(
    ai: Arc<ai::Ai>,
    history: Arc<history::History>,
    assets: Arc<assets::Assets>,
    builds: Arc<builds::Builds>,
) -> quire_jobs::Registry {
    let mut r = quire_jobs::components::builtin();
    let collab = ai.collab().clone();
    ai::components::register(&mut r, ai, assets.clone());
    r.register(history::VersionComponent { history: history.clone() }).register(history::PushComponent { history });
    r.register(assets::ThumbnailComponent { assets: assets.clone() });
    r.register(asset_gc::AssetsGc { collab, assets });
    r.register(builds::BuildComponent { builds });
    r
}

/// Stores the engine's built-in templates and schedules and this layer's own: the nightly
/// collection of unreferenced assets (04:30 UTC) with its grace period. Every process may
/// call it.
pub async fn prepare(engine: &quire_jobs::Engine, asset_grace: std::time::Duration) -> quire_core::Result<()> {
    engine.prepare().await?;
    let mut data = serde_json::Map::new();
    data.insert("grace_hours".into(), (asset_grace.as_secs() / 3600).into());
    engine.schedule(asset_gc::SCHEDULE, "30 4 * * *", "maintenance", &[asset_gc::COMPONENT], data).await
}

/// The engine's settings with the `history` queue limited to one context at a time across
/// the cluster (the one writer of every repository) and the `builds` queue to one build,
/// unless configured otherwise, both closed to users' contexts (builds are started through
/// `Builds::start`, which checks the configuration first). Builds are records of their own
/// (configuration, stages, log, artifacts): the nightly clean-up of ended contexts leaves them.
pub fn engine_config(jobs: &quire_jobs::EngineConfig) -> quire_jobs::EngineConfig {
    let mut jobs = jobs.clone();
    if !jobs.kept_types.iter().any(|t| t == builds::KIND) {
        jobs.kept_types.push(builds::KIND.to_string());
    }
    for queue in [history::QUEUE, builds::QUEUE] {
        if !jobs.queue_limits.iter().any(|(q, _)| q == queue) {
            jobs.queue_limits.push((queue.to_string(), 1));
        }
    }
    for queue in [history::QUEUE, assets::QUEUE, builds::QUEUE] {
        if !jobs.system_queues.iter().any(|q| q == queue) {
            jobs.system_queues.push(queue.to_string());
        }
    }
    jobs
}

/// What a process that runs workers without serving needs to build its services.
pub struct WorkerServices {
    pub collab: quire_collab::CollabConfig,
    pub history: history::HistoryConfig,
    pub limits: quire_core::JobLimits,
    pub local_models: ai::local::LocalConfig,
    /// The Armbian checkout builds run in (none: this worker runs no builds).
    pub armbian_dir: Option<std::path::PathBuf>,
    pub builds: builds::BuildsConfig,
}

/// The registry of a process that runs workers without serving (`quire worker`), and the AI
/// service its components use (of its own, reading documents through rooms of its own, left
/// when idle until `shutdown`; call its `shutdown` once the workers stopped).
pub fn worker_registry(
    store: Arc<dyn Store>,
    keyring: Arc<quire_auth::Keyring>,
    services: WorkerServices,
    assets: Arc<assets::Assets>,
    shutdown: watch::Receiver<bool>,
) -> quire_core::Result<(quire_jobs::Registry, Arc<ai::Ai>)> {
    let collab = quire_collab::Collab::new(store.clone(), services.collab);
    collab.spawn_janitor(shutdown);
    let history =
        history::History::new(store.clone(), collab.clone(), services.history, services.limits, keyring.clone());
    let configs = board_configs::BoardConfigs::new(store.clone(), collab.clone(), services.armbian_dir)?;
    let builds = builds::Builds::new(store.clone(), collab.clone(), configs, assets.clone(), services.builds);
    let ai = Arc::new(ai::Ai::new(store, keyring, collab, services.local_models));
    Ok((registry(ai.clone(), history, assets, builds), ai))
}
