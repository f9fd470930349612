//! Counting failures per key in a sliding window, in memory.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts per key (an email, an email and address) within a window.
pub struct Throttle {
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
    /// Keys that have succeeded before (an email and the address it signed in from).
    known: Mutex<HashSet<String>>,
}

impl Throttle {
    pub fn new(window: Duration) -> Throttle {
        Throttle { window, failures: Mutex::new(HashMap::new()), known: Mutex::new(HashSet::new()) }
    }

    /// How long `key` must wait when it has `limit` failures in the window already.
    pub fn blocked(&self, key: &str, limit: u32) -> Option<Duration> {
        let mut failures = self.failures.lock().expect("throttle");
        let now = Instant::now();
        let list = failures.get_mut(key)?;
        list.retain(|t| now.duration_since(*t) < self.window);
        if list.len() >= limit as usize {
            list.first().map(|oldest| self.window.saturating_sub(now.duration_since(*oldest)))
        } else {
            None
        }
    }

    pub fn fail(&self, key: &str) {
        let mut failures = self.failures.lock().expect("throttle");
        // Bound memory: forget keys whose failures all left the window.
        if failures.len() > 100_000 {
            let now = Instant::now();
            failures.retain(|_, list| list.last().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        failures.entry(key.to_string()).or_default().push(Instant::now());
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().expect("throttle").remove(key);
    }

    /// Notes that `key` succeeded (kept for the process's life, at most 100,000 keys).
    pub fn remember(&self, key: &str) {
        let mut known = self.known.lock().expect("throttle");
        if known.len() >= 100_000 {
            known.clear();
        }
        known.insert(key.to_string());
    }

    /// Whether `key` has succeeded before.
    pub fn is_known(&self, key: &str) -> bool {
        self.known.lock().expect("throttle").contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_passes() {
        let t = Throttle::new(Duration::from_millis(200));
        for _ in 0..3 {
            assert!(t.blocked("k", 3).is_none());
            t.fail("k");
        }
        let wait = t.blocked("k", 3).expect("blocked");
        assert!(wait <= Duration::from_millis(200));
        assert!(t.blocked("other", 3).is_none());
        std::thread::sleep(Duration::from_millis(220));
        assert!(t.blocked("k", 3).is_none());
        t.fail("k");
        t.clear("k");
        assert!(t.blocked("k", 1).is_none());
    }
}
