//! A queue whose entries a writer task stores in batches, off the request path: the audit
//! trail and the AI interactions log. The queue is bounded (a full queue makes the caller
//! wait up to a second, then the entry is counted as dropped), a batch is written as soon as
//! the queue is empty (so one entry alone waits for nothing), and the queue is drained when
//! the process stops normally.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use quire_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Entries stored per transaction at most.
const BATCH: usize = 500;

/// How a batch is stored.
pub type Write<T> = for<'a> fn(&'a dyn Store, &'a [T]) -> BoxFuture<'a, quire_core::Result<()>>;

/// The queue and its writer.
pub struct BatchWriter<T> {
    /// What the entries are, for logs and metrics (`audit_entries`, `ai_interactions`).
    what: &'static str,
    sender: Mutex<Option<mpsc::Sender<T>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts the writer over `store` with a queue of `capacity` entries.
    pub fn start(what: &'static str, store: Arc<dyn Store>, capacity: usize, write: Write<T>) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let writer = tokio::spawn(write_batches(what, store, rx, write));
        BatchWriter { what, sender: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)) }
    }

    /// Queues an entry; waits at most a second for room.
    pub async fn record(&self, entry: T) {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(sender) = sender else {
            tracing::warn!(what = self.what, "an entry came after shutdown; not recorded");
            return;
        };
        if let Err(e) = sender.send_timeout(entry, Duration::from_secs(1)).await {
            metrics::counter!(format!("{}_dropped_total", self.what)).increment(1);
            tracing::error!(what = self.what, error = %e, "the queue stayed full; an entry was dropped");
        }
    }

    /// Queues an entry from code that cannot wait (a `Drop`): dropped, and counted, when the
    /// queue is full.
    pub fn try_record(&self, entry: T) {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if sender.is_none_or(|s| s.try_send(entry).is_err()) {
            metrics::counter!(format!("{}_dropped_total", self.what)).increment(1);
            tracing::warn!(what = self.what, "an entry could not be queued; not recorded");
        }
    }

    /// Closes the queue and waits until everything in it is stored.
    pub async fn shutdown(&self) {
        drop(self.sender.lock().unwrap_or_else(|e| e.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

async fn write_batches<T>(what: &'static str, store: Arc<dyn Store>, mut rx: mpsc::Receiver<T>, write: Write<T>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Sleeps until an entry comes: an idle server's writer costs nothing. (A batch is
        // never left waiting here: it is written as soon as the queue is empty.)
        let open = match rx.recv().await {
            Some(entry) => {
                batch.push(entry);
                true
            }
            None => false,
        };
        // Take whatever else is already waiting, up to a batch.
        while batch.len() < BATCH
            && let Ok(entry) = rx.try_recv()
        {
            batch.push(entry);
        }
        if !batch.is_empty() && (batch.len() >= BATCH || !open || rx.is_empty()) {
            store_batch(what, &*store, &mut batch, write).await;
        }
        if !open {
            return;
        }
    }
}

/// Stores a batch, retrying with backoff while the database is away; gives up (and counts
/// the loss) after about half a minute rather than holding entries forever.
async fn store_batch<T>(what: &'static str, store: &dyn Store, batch: &mut Vec<T>, write: Write<T>) {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=8 {
        match write(store, batch).await {
            Ok(()) => {
                metrics::counter!(format!("{what}_written_total")).increment(batch.len() as u64);
                batch.clear();
                return;
            }
            Err(e) if attempt < 8 => {
                tracing::warn!(what, error = %e, attempt, "writing a batch failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(what, error = %e, lost = batch.len(), "writing a batch failed for good");
                metrics::counter!(format!("{what}_dropped_total")).increment(batch.len() as u64);
                batch.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::FutureExt;
    use quire_store::testing::Backend;

    use super::*;

    static STORED: AtomicUsize = AtomicUsize::new(0);

    /// A slow store: each batch takes 20 ms, so that entries are still queued at shutdown.
    fn slow<'a>(_: &'a dyn Store, batch: &'a [u32]) -> BoxFuture<'a, quire_core::Result<()>> {
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            STORED.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
        .boxed()
    }

    #[tokio::test]
    async fn shutdown_stores_what_is_still_queued() {
        let t = Backend::Sqlite.open(Default::default()).await;
        let writer = BatchWriter::start("test_entries", t.store.clone(), 10_000, slow);
        for i in 0..2_000 {
            writer.record(i).await;
            if i % 10 == 0 {
                // Small batches: most entries are still waiting when shutdown begins.
                tokio::task::yield_now().await;
            }
        }
        let queued = 2_000 - STORED.load(Ordering::SeqCst);
        assert!(queued > 0, "everything was stored before shutdown: this test would prove nothing");
        writer.shutdown().await;
        assert_eq!(STORED.load(Ordering::SeqCst), 2_000, "{queued} entries were queued at shutdown");
        writer.record(9).await; // after shutdown: refused, not stored, no panic
        assert_eq!(STORED.load(Ordering::SeqCst), 2_000);
    }
}
