//! Timestamps: stored as milliseconds since the Unix epoch (the same integer column on
//! SQLite and PostgreSQL), shown as RFC 3339 in UTC.

/// A point in time, serialised as RFC 3339 (`2026-11-22T10:30:00.123Z`).
pub type Timestamp = time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
/// A time as milliseconds since the epoch (how times are stored).
pub fn ms_of(t: &time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The timestamp for a stored millisecond value.
pub fn timestamp_from_ms(ms: i64) -> Timestamp {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
