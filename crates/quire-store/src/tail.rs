//! Reading the outbox as a live sequence: the one way every consumer (the SSE endpoint now;
//! indexers, notifiers and webhooks later) follows events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use quire_core::{Event, EventFilter, Principal};
use tokio::sync::watch;

use crate::Store;

/// Events read per round trip.
const BATCH: u32 = 256;

/// Follows the outbox from a position: drains what is there, then sleeps until a commit
/// ticks the store's signal — or `poll` passes, for writers the signal cannot reach — and
/// reads again. Events come in id order, each once; [`EventTail::position`] is the id to
/// resume after (store it with [`Store::save_consumer_offset`] for a durable consumer).
///
/// `next` is cancel-safe: dropping its future loses no event, so it can sit in a `select!`
/// beside a shutdown signal.
pub struct EventTail {
    store: Arc<dyn Store>,
    who: Principal,
    after: i64,
    /// How far the outbox has been read: past `after` when the rows after it did not match
    /// the filter (or `who` may not see them), so that they are not read again.
    scanned: i64,
    filter: EventFilter,
    poll: Duration,
    buffer: VecDeque<Event>,
    signal: watch::Receiver<u64>,
}

impl EventTail {
    /// A tail of the events after id `after` that match `filter`, as `who` may see them.
    pub fn new(store: Arc<dyn Store>, who: Principal, after: i64, filter: EventFilter, poll: Duration) -> EventTail {
        let signal = store.event_signal();
        EventTail { store, who, after, scanned: after, filter, poll, buffer: VecDeque::new(), signal }
    }

    /// Where to resume: the id of the last event returned, or past it when the events
    /// after it were all read and none was for this tail.
    pub fn position(&self) -> i64 {
        self.after
    }

    /// The next event, waiting as long as it takes. Read errors are logged and retried after
    /// the poll interval: a database outage pauses the tail, it does not end it.
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.id;
                return event;
            }
            // Everything up to `scanned` has been handed out or was not for this tail.
            self.after = self.after.max(self.scanned);
            // Ticks from before this read are covered by it.
            self.signal.mark_unchanged();
            match self.read().await {
                Ok(true) => continue,
                Ok(false) => self.after = self.after.max(self.scanned),
                Err(e) => tracing::warn!(error = %e, "reading the event outbox failed; retrying"),
            }
            tokio::select! {
                changed = self.signal.changed() => {
                    if changed.is_err() {
                        // The store is gone; fall back to polling.
                        tokio::time::sleep(self.poll).await;
                    }
                }
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Reads the next events for this tail into the buffer; `true` when there were any.
    /// The outbox's last id is read first: ids become visible in increasing order, so when
    /// the read is not cut short by its limit, every row up to that id has been looked at,
    /// and those that did not match are never read again. (Without this, a tail filtered to
    /// one workspace read the whole instance's traffic since its last event on every commit.)
    async fn read(&mut self) -> quire_core::Result<bool> {
        let high = self.store.last_event_id().await?;
        let events = self.store.events_after(&self.who, self.scanned, &self.filter, BATCH).await?;
        let last = events.last().map(|e| e.id);
        self.scanned = match last {
            Some(last) if events.len() == BATCH as usize => last,
            last => self.scanned.max(high).max(last.unwrap_or_default()),
        };
        let any = !events.is_empty();
        self.buffer.extend(events);
        Ok(any)
    }
}
