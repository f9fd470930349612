//! Background tasks of a server that keep the store tidy.

use std::sync::Arc;
use std::time::Duration;

use quire_store::Store;
use tokio::sync::watch;

/// Deletes audit entries and AI interactions past their retention, at start and then every
/// hour, until `shutdown` flips.
pub fn expire_logs_hourly(
    store: Arc<dyn Store>,
    audit_retention: Duration,
    ai_retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let cut = quire_core::now_ms() - audit_retention.as_millis() as i64;
                    match store.purge_audit(cut).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "expired audit entries"),
                        Err(e) => tracing::warn!(error = %e, "expiring audit entries failed"),
                    }
                    let cut = quire_core::now_ms() - ai_retention.as_millis() as i64;
                    match store.purge_interactions(cut).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "expired AI interactions"),
                        Err(e) => tracing::warn!(error = %e, "expiring AI interactions failed"),
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    });
}
