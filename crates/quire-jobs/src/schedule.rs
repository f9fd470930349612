//! Cron schedules: contexts Quire submits for itself at fixed times (the nightly clean-up).

use quire_core::{Error, Result};

use crate::Engine;

/// The first time strictly after `after_ms` that the five-field cron expression `cron`
/// matches, in UTC, as milliseconds.
pub fn next_after(cron: &str, after_ms: i64) -> Result<i64> {
    let parsed = croner::parser::CronParser::new()
        .parse(cron)
        .map_err(|e| Error::invalid("cron", format!("'{cron}' is not a cron expression: {e}")))?;
    let after = chrono::DateTime::from_timestamp_millis(after_ms)
        .ok_or_else(|| Error::invalid("cron", "the start time is out of range"))?
        .naive_utc();
    let next = parsed
        .find_next_occurrence(&after, false)
        .map_err(|e| Error::invalid("cron", format!("'{cron}' never fires: {e}")))?;
    Ok(next.and_utc().timestamp_millis())
}

/// Fires due schedules. Every worker process runs one; a schedule's row moves to its next
/// time and submits its context in one transaction that matches only the expected time,
/// so each firing happens once however many processes tick.
pub struct Scheduler {
    engine: Engine,
}

impl Scheduler {
    pub fn new(engine: Engine) -> Scheduler {
        Scheduler { engine }
    }

    /// Fires every schedule due at `now`, once (missed firings while Quire was down
    /// collapse into one); returns the ids of the contexts submitted.
    pub async fn tick(&self, now: i64) -> Result<Vec<String>> {
        let store = self.engine.store();
        let mut fired = Vec::new();
        for s in store.due_schedules(now).await? {
            let next = match next_after(&s.cron, now) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(schedule = %s.name, error = %e, "skipping a schedule that cannot fire");
                    continue;
                }
            };
            if let Some(id) = store.fire_schedule(&s, s.next_run_at, next, now).await? {
                tracing::info!(schedule = %s.name, context = %id, "schedule fired");
                fired.push(id);
            }
        }
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn next_runs_follow_the_expression_in_utc() {
        assert_eq!(next_after("0 3 * * *", ms("2026-11-22T10:00:00Z")).unwrap(), ms("2026-11-23T03:00:00Z"));
        assert_eq!(next_after("0 3 * * *", ms("2026-11-22T02:59:59Z")).unwrap(), ms("2026-11-22T03:00:00Z"));
        assert_eq!(next_after("0 3 * * *", ms("2026-11-22T03:00:00Z")).unwrap(), ms("2026-11-23T03:00:00Z"));
        assert_eq!(next_after("*/15 * * * *", ms("2026-11-22T10:07:00Z")).unwrap(), ms("2026-11-22T10:15:00Z"));
        assert_eq!(next_after("0 9 * * MON", ms("2026-11-22T10:00:00Z")).unwrap(), ms("2026-11-23T09:00:00Z"));
        let err = next_after("every day", 0).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "cron"), "{err:?}");
    }
}
