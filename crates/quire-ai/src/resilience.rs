//! What every remote provider call goes through: retries with exponential backoff on
//! transient failures (429, 5xx, timeouts, refused connections), honouring the provider's
//! `Retry-After`, and a circuit breaker that stops calling a provider that keeps failing
//! until it has cooled down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{AiError, AiErrorKind};

/// How a provider's calls are retried and when its circuit opens.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Tries per call, the first included.
    pub attempts: u32,
    /// The wait before the second try; it doubles each time, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails at once, and the
    /// error carries the provider's wait.
    pub max_retry_after: Duration,
    /// Calls failing in a row (after their retries) that open the circuit.
    pub open_after: u32,
    /// How long an open circuit refuses calls before letting one through to try.
    pub cool_down: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            attempts: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            open_after: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// A provider's circuit, as `/readyz` and the logs show it.
#[derive(Debug, Clone, PartialEq)]
pub enum Circuit {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls fail at once until `until`; `last_error` is why it opened.
    Open { until: Instant, failures: u32, last_error: String },
    /// One call is trying the provider again; the others fail at once meanwhile.
    Trying,
}

/// Retries and a circuit breaker for one provider.
#[derive(Debug)]
pub struct Guard {
    provider: String,
    settings: GuardSettings,
    circuit: Mutex<Circuit>,
}

impl Guard {
    pub fn new(provider: &str, settings: GuardSettings) -> Self {
        Guard { provider: provider.to_string(), settings, circuit: Mutex::new(Circuit::Closed { failures: 0 }) }
    }

    pub fn circuit(&self) -> Circuit {
        self.lock().clone()
    }

    /// Runs `call` (one try each time it is called) until it succeeds, fails for good, or
    /// runs out of tries.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, AiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AiError>>,
    {
        self.admit()?;
        let mut attempt = 1;
        loop {
            let error = match call().await {
                Ok(v) => {
                    *self.lock() = Circuit::Closed { failures: 0 };
                    return Ok(v);
                }
                Err(e) => e,
            };
            if !error.is_transient() {
                // The provider answered; the request was at fault. The circuit stays as it was
                // (a trial that got an answer closes it).
                let mut c = self.lock();
                if *c == Circuit::Trying {
                    *c = Circuit::Closed { failures: 0 };
                }
                return Err(error);
            }
            let wait = match error.retry_after {
                Some(w) if w > self.settings.max_retry_after => None,
                Some(w) => Some(w),
                None => Some(self.backoff(attempt)),
            };
            match wait {
                Some(wait) if attempt < self.settings.attempts => {
                    tracing::info!(provider = %self.provider, attempt, wait_ms = wait.as_millis() as u64, error = %error.message, "retrying the AI provider");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => {
                    self.failed(&error);
                    let tries = if attempt > 1 { format!(" (after {attempt} tries)") } else { String::new() };
                    return Err(AiError { message: format!("{}{tries}", error.message), ..error });
                }
            }
        }
    }

    /// The wait before try `attempt + 1`: base·2^(attempt-1), capped, with up to a quarter
    /// more at random so that many callers do not come back at once.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.settings.backoff_base.saturating_mul(1 << (attempt - 1).min(16));
        let capped = exp.min(self.settings.backoff_max);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        capped + capped.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }

    fn admit(&self) -> Result<(), AiError> {
        let mut c = self.lock();
        match &*c {
            Circuit::Closed { .. } => Ok(()),
            Circuit::Open { until, .. } if Instant::now() >= *until => {
                *c = Circuit::Trying;
                Ok(())
            }
            Circuit::Open { until, failures, last_error } => Err(AiError::new(
                &self.provider,
                AiErrorKind::CircuitOpen,
                format!(
                    "not called: it failed {failures} times in a row (last: {last_error}); next try in {} s",
                    until.saturating_duration_since(Instant::now()).as_secs().max(1)
                ),
            )),
            Circuit::Trying => Err(AiError::new(
                &self.provider,
                AiErrorKind::CircuitOpen,
                "not called: it failed repeatedly and another call is trying it again now",
            )),
        }
    }

    fn failed(&self, error: &AiError) {
        let mut c = self.lock();
        let failures = match &*c {
            Circuit::Closed { failures } => failures + 1,
            Circuit::Open { failures, .. } => failures + 1,
            Circuit::Trying => self.settings.open_after,
        };
        *c = if failures >= self.settings.open_after {
            tracing::warn!(provider = %self.provider, failures, error = %error.message, "AI provider circuit opened");
            Circuit::Open {
                until: Instant::now() + self.settings.cool_down,
                failures,
                last_error: error.message.clone(),
            }
        } else {
            Circuit::Closed { failures }
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A `Retry-After` header's wait: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(provider: &str) -> AiError {
        AiError::new(provider, AiErrorKind::Unavailable, "HTTP 503")
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date in the past");
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let header = soon.format(&time::format_description::well_known::Rfc2822).unwrap();
        let wait = parse_retry_after(&header).unwrap();
        assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let g = Guard::new(
            "p",
            GuardSettings {
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_millis(350),
                ..Default::default()
            },
        );
        for (attempt, base) in [(1, 100), (2, 200), (3, 350), (9, 350)] {
            let wait = g.backoff(attempt).as_millis() as u64;
            assert!((base..=base + base / 4).contains(&wait), "attempt {attempt}: {wait} ms");
        }
    }

    #[tokio::test]
    async fn the_circuit_opens_after_failures_in_a_row_and_a_trial_closes_it() {
        let settings =
            GuardSettings { attempts: 1, open_after: 2, cool_down: Duration::from_millis(50), ..Default::default() };
        let g = Guard::new("p", settings);
        for _ in 0..2 {
            assert_eq!(
                g.call(|| async { Err::<(), _>(transient("p")) }).await.unwrap_err().kind,
                AiErrorKind::Unavailable
            );
        }
        let refused = g.call(|| async { Ok(()) }).await.unwrap_err();
        assert_eq!(refused.kind, AiErrorKind::CircuitOpen);
        assert!(refused.message.contains("failed 2 times in a row (last: HTTP 503)"), "{}", refused.message);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // The trial fails: open again at once, for another cool-down.
        assert_eq!(g.call(|| async { Err::<(), _>(transient("p")) }).await.unwrap_err().kind, AiErrorKind::Unavailable);
        assert!(matches!(g.circuit(), Circuit::Open { .. }));
        tokio::time::sleep(Duration::from_millis(60)).await;
        g.call(|| async { Ok(()) }).await.unwrap();
        assert_eq!(g.circuit(), Circuit::Closed { failures: 0 });
        // A request the provider rejects says nothing about the provider's health.
        let rejected = AiError::new("p", AiErrorKind::Rejected, "HTTP 400");
        for _ in 0..3 {
            g.call(|| async { Err::<(), _>(rejected.clone()) }).await.unwrap_err();
        }
        assert_eq!(g.circuit(), Circuit::Closed { failures: 0 });
    }

    #[tokio::test]
    async fn a_wait_longer_than_allowed_fails_at_once_with_the_providers_wait() {
        let g = Guard::new("p", GuardSettings { max_retry_after: Duration::from_secs(5), ..Default::default() });
        let mut calls = 0;
        let e = g
            .call(|| {
                calls += 1;
                async {
                    Err::<(), _>(AiError {
                        retry_after: Some(Duration::from_secs(600)),
                        ..AiError::new("p", AiErrorKind::RateLimited, "HTTP 429")
                    })
                }
            })
            .await
            .unwrap_err();
        assert_eq!((calls, e.kind, e.retry_after), (1, AiErrorKind::RateLimited, Some(Duration::from_secs(600))));
    }
}
