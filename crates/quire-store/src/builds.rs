//! Build logs: the lines a build's command printed, kept in chunks of consecutive lines as
//! they arrive, so that a viewer who joins late or comes back reads from any line on.

use async_trait::async_trait;
use quire_core::Result;

/// Consecutive lines of a build's log: the number of the first, how many, and the lines as
/// the writer encoded them (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub first_line: i64,
    pub line_count: i32,
    pub body: String,
}

#[async_trait]
pub trait BuildLogStore: Send + Sync {
    /// Appends a chunk (writing the same chunk again changes nothing).
    async fn append_build_log(&self, context_id: &str, chunk: &LogChunk) -> Result<()>;
    /// The chunks holding lines after `after_line`, in order, at most `max_chunks`.
    async fn build_log(&self, context_id: &str, after_line: i64, max_chunks: u32) -> Result<Vec<LogChunk>>;
    /// The number of the last line kept (0 when none): where a new attempt goes on.
    async fn build_log_end(&self, context_id: &str) -> Result<i64>;
}

macro_rules! impl_build_log_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::BuildLogStore for $store {
            async fn append_build_log(&self, context_id: &str, c: &$crate::LogChunk) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO build_logs (context_id, first_line, line_count, body, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (context_id, first_line) DO NOTHING",
                )
                .bind(context_id)
                .bind(c.first_line)
                .bind(c.line_count)
                .bind(&c.body)
                .bind(quire_core::now_ms())
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn build_log(
                &self,
                context_id: &str,
                after_line: i64,
                max_chunks: u32,
            ) -> quire_core::Result<Vec<$crate::LogChunk>> {
                let rows: Vec<(i64, i32, String)> = sqlx::query_as(
                    "SELECT first_line, line_count, body FROM build_logs \
                     WHERE context_id = $1 AND first_line + line_count > $2 + 1 ORDER BY first_line LIMIT $3",
                )
                .bind(context_id)
                .bind(after_line)
                .bind(i64::from(max_chunks))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(first_line, line_count, body)| $crate::LogChunk { first_line, line_count, body })
                    .collect())
            }

            async fn build_log_end(&self, context_id: &str) -> quire_core::Result<i64> {
                let end: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(MAX(first_line + line_count - 1) AS BIGINT) FROM build_logs WHERE context_id = $1",
                )
                .bind(context_id)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(end.unwrap_or(0))
            }
        }
    };
}
