//! What one client may ask of a room: messages per frame, messages and bytes per second,
//! requests that make the server encode the document or the room's awareness, and the
//! awareness states it may hold. One socket must not be able to make the server do
//! unbounded work or hold unbounded memory, whatever its role.

use std::time::{Duration, Instant};

use quire_core::Error;

/// Per-client limits; exceeding one ends the client's connection (the server closes it
/// with 4429, and a well-behaved client reconnects more slowly).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// y-protocol messages in one WebSocket frame (y-websocket clients send one).
    pub messages_per_frame: usize,
    /// Messages per second, on average; twice as many may arrive at once.
    pub messages_per_second: u32,
    /// Sync step 1 and awareness queries per second (each makes the server encode the
    /// document or the room's presence); ten may arrive at once.
    pub sync_requests_per_second: u32,
    /// Bytes of document updates per second, on average.
    pub update_bytes_per_second: usize,
    /// Bytes of document updates that may arrive at once (a client back from a long time
    /// offline sends all its edits together).
    pub update_bytes_burst: usize,
    /// Largest awareness state (a client's JSON) accepted.
    pub awareness_state_bytes: usize,
    /// Awareness client ids one connection may announce.
    pub awareness_clients: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            messages_per_frame: 64,
            messages_per_second: 300,
            sync_requests_per_second: 2,
            update_bytes_per_second: 1024 * 1024,
            update_bytes_burst: 16 * 1024 * 1024,
            awareness_state_bytes: 16 * 1024,
            awareness_clients: 4,
        }
    }
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Bucket {
        Bucket { tokens: burst, rate, burst, last: Instant::now() }
    }

    /// Takes `n` tokens if there are that many.
    pub(crate) fn take(&mut self, n: f64) -> bool {
        self.take_at(n, Instant::now())
    }

    fn take_at(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// How long until `n` tokens are there.
    fn wait_for(&self, n: f64) -> Duration {
        if self.rate <= 0.0 {
            return Duration::from_secs(60);
        }
        Duration::from_secs_f64(((n - self.tokens).max(0.0) / self.rate).min(3600.0))
    }
}

/// One session's budgets.
#[derive(Debug)]
pub(crate) struct Budgets {
    pub(crate) limits: SessionLimits,
    messages: Bucket,
    sync_requests: Bucket,
    update_bytes: Bucket,
}

impl Budgets {
    pub(crate) fn new(limits: &SessionLimits) -> Budgets {
        let per_second = f64::from(limits.messages_per_second);
        let sync = f64::from(limits.sync_requests_per_second);
        Budgets {
            messages: Bucket::new(per_second, per_second * 2.0),
            sync_requests: Bucket::new(sync, 10f64.max(sync)),
            update_bytes: Bucket::new(limits.update_bytes_per_second as f64, limits.update_bytes_burst as f64),
            limits: limits.clone(),
        }
    }

    pub(crate) fn message(&mut self) -> Result<(), Error> {
        if self.messages.take(1.0) {
            return Ok(());
        }
        Err(too_many("messages", self.limits.messages_per_second, self.messages.wait_for(1.0)))
    }

    pub(crate) fn sync_request(&mut self) -> Result<(), Error> {
        if self.sync_requests.take(1.0) {
            return Ok(());
        }
        let wait = self.sync_requests.wait_for(1.0);
        Err(too_many("sync requests", self.limits.sync_requests_per_second, wait))
    }

    pub(crate) fn update_bytes(&mut self, n: usize) -> Result<(), Error> {
        if n > self.limits.update_bytes_burst {
            return Err(Error::TooManyRequests {
                message: format!("an update of {n} bytes is over the limit of {}", self.limits.update_bytes_burst),
                retry_after_secs: 0,
            });
        }
        if self.update_bytes.take(n as f64) {
            return Ok(());
        }
        let wait = self.update_bytes.wait_for(n as f64);
        Err(Error::TooManyRequests {
            message: format!("more than {} bytes of updates a second", self.limits.update_bytes_per_second),
            retry_after_secs: wait.as_secs().max(1),
        })
    }
}

fn too_many(what: &str, per_second: u32, wait: Duration) -> Error {
    Error::TooManyRequests {
        message: format!("more than {per_second} {what} a second"),
        retry_after_secs: wait.as_secs().max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_their_rate() {
        let mut b = Bucket::new(10.0, 20.0);
        let start = b.last;
        assert_eq!((0..25).filter(|_| b.take_at(1.0, start)).count(), 20, "the burst");
        let later = start + Duration::from_millis(500);
        assert_eq!((0..25).filter(|_| b.take_at(1.0, later)).count(), 5, "10 a second");
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..25).filter(|_| b.take_at(1.0, much_later)).count(), 20, "never more than the burst");
    }

    #[test]
    fn budgets_refuse_what_is_over_them() {
        let limits =
            SessionLimits { update_bytes_burst: 1000, update_bytes_per_second: 10, ..SessionLimits::default() };
        let mut b = Budgets::new(&limits);
        assert!(b.update_bytes(600).is_ok());
        assert!(matches!(b.update_bytes(600), Err(Error::TooManyRequests { .. })), "the burst is spent");
        assert!(matches!(b.update_bytes(1001), Err(Error::TooManyRequests { .. })), "larger than any burst");
        assert_eq!((0..20).filter(|_| b.sync_request().is_ok()).count(), 10);
    }
}
