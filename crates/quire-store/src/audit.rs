//! The audit trail's storage: batched appends, filtered pages, retention.

use async_trait::async_trait;
use quire_core::{AuditEntry, AuditQuery, Page, Principal, Result};

/// Persistence for the audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends entries in one transaction.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    /// A page of entries matching `query`, newest first (instance administrators only).
    async fn list_audit(&self, who: &Principal, query: &AuditQuery) -> Result<Page<AuditEntry>>;
    /// Deletes entries older than `before_ms` (on PostgreSQL whole monthly partitions are
    /// dropped); returns how many rows went.
    async fn purge_audit(&self, before_ms: i64) -> Result<u64>;
}

/// `[start, end)` in milliseconds of the UTC month holding `ms`, and its partition suffix.
pub(crate) fn month_of(ms: i64) -> (i64, i64, String) {
    let t = quire_core::timestamp_from_ms(ms);
    let start = time::Date::from_calendar_date(t.year(), t.month(), 1).expect("first of a month exists");
    let (ny, nm) = if t.month() == time::Month::December {
        (t.year() + 1, time::Month::January)
    } else {
        (t.year(), t.month().next())
    };
    let end = time::Date::from_calendar_date(ny, nm, 1).expect("first of a month exists");
    let ms_of = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
    (ms_of(start), ms_of(end), format!("y{}m{:02}", t.year(), u8::from(t.month())))
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    resource: String,
    status: i64,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    summary: String,
    duration_ms: i64,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: quire_core::timestamp_from_ms(r.at),
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            status: r.status as u16,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            summary: serde_json::from_str(&r.summary).unwrap_or(serde_json::Value::Null),
            duration_ms: r.duration_ms.max(0) as u64,
        }
    }
}

macro_rules! impl_audit_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::AuditStore for $store {
            async fn append_audit(&self, entries: &[quire_core::AuditEntry]) -> quire_core::Result<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let ms = |e: &quire_core::AuditEntry| (e.at.unix_timestamp_nanos() / 1_000_000) as i64;
                let mut months: Vec<i64> = entries.iter().map(ms).collect();
                months.sort_unstable();
                months.dedup_by_key(|m| $crate::audit::month_of(*m).0);
                self.prepare_audit_partitions(&months).await;
                let mut tx = self.begin_write().await?;
                for chunk in entries.chunks(200) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO audit_log (at, actor, action, resource, status, ip, user_agent, request_id, summary, duration_ms) ",
                    );
                    qb.push_values(chunk, |mut row, e| {
                        row.push_bind(ms(e))
                            .push_bind(e.actor.clone())
                            .push_bind(e.action.clone())
                            .push_bind(e.resource.clone())
                            .push_bind(i64::from(e.status))
                            .push_bind(e.ip.clone())
                            .push_bind(e.user_agent.clone())
                            .push_bind(e.request_id.clone())
                            .push_bind(e.summary.to_string())
                            .push_bind(e.duration_ms.min(i64::MAX as u64) as i64);
                    });
                    qb.build().execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                }
                tx.commit().await.map_err($crate::rows::db_err)
            }

            async fn list_audit(&self, who: &quire_core::Principal, q: &quire_core::AuditQuery) -> quire_core::Result<quire_core::Page<quire_core::AuditEntry>> {
                if !who.is_superuser() {
                    return Err(quire_core::Error::Forbidden("only instance administrators read the audit trail".into()));
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, at, actor, action, resource, status, ip, user_agent, request_id, summary, duration_ms FROM audit_log WHERE 1 = 1",
                );
                if let Some(actor) = &q.actor {
                    qb.push(" AND actor = ").push_bind(actor.clone());
                }
                if let Some(action) = &q.action {
                    let like = $crate::sql::like_pattern(action);
                    qb.push(" AND action LIKE ").push_bind(like[1..].to_string()).push(" ESCAPE '\\'");
                }
                if let Some(resource) = &q.resource {
                    let like = $crate::sql::like_pattern(resource);
                    qb.push(" AND resource LIKE ").push_bind(like[1..].to_string()).push(" ESCAPE '\\'");
                }
                if let Some(since) = q.since_ms {
                    qb.push(" AND at >= ").push_bind(since);
                }
                if let Some(until) = q.until_ms {
                    qb.push(" AND at < ").push_bind(until);
                }
                if let Some((at, id)) = q.before {
                    qb.push(" AND (at, id) < (").push_bind(at).push(", ").push_bind(id).push(")");
                }
                qb.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(i64::from(q.limit) + 1);
                let rows: Vec<$crate::audit::AuditRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                let mut items: Vec<quire_core::AuditEntry> = rows.into_iter().map(Into::into).collect();
                let more = items.len() > q.limit as usize;
                items.truncate(q.limit as usize);
                let next_cursor = if more { items.last().map(quire_core::AuditQuery::cursor_after) } else { None };
                Ok(quire_core::Page { items, next_cursor })
            }

            async fn purge_audit(&self, before_ms: i64) -> quire_core::Result<u64> {
                let dropped = self.drop_audit_partitions_before(before_ms).await?;
                let deleted = sqlx::query("DELETE FROM audit_log WHERE at < $1")
                    .bind(before_ms)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(dropped + deleted.rows_affected())
            }
        }
    };
}
