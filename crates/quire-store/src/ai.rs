//! The AI interactions log.

use async_trait::async_trait;
use quire_core::{Interaction, InteractionQuery, Page, Principal, Result};

#[async_trait]
pub trait AiStore: Send + Sync {
    /// Appends entries (in one statement; at most a few hundred at once).
    async fn record_interactions(&self, entries: &[Interaction]) -> Result<()>;
    /// A page of a workspace's entries, newest first (its members only).
    async fn list_interactions(&self, who: &Principal, query: &InteractionQuery) -> Result<Page<Interaction>>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct InteractionRow {
    id: String,
    workspace_id: String,
    actor: String,
    context_id: Option<String>,
    kind: String,
    template: Option<String>,
    template_version: Option<i32>,
    provider: String,
    model: String,
    parameters: String,
    prompt: String,
    tokens_in: Option<i64>,
    tokens_out: Option<i64>,
    latency_ms: i64,
    first_chunk_ms: Option<i64>,
    status: String,
    error: Option<String>,
    created_at: i64,
}

impl From<InteractionRow> for Interaction {
    fn from(r: InteractionRow) -> Self {
        Interaction {
            id: r.id,
            workspace_id: r.workspace_id,
            actor: r.actor,
            context_id: r.context_id,
            kind: r.kind,
            template: r.template,
            template_version: r.template_version,
            provider: r.provider,
            model: r.model,
            parameters: serde_json::from_str(&r.parameters).unwrap_or(serde_json::Value::Null),
            prompt: r.prompt,
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            latency_ms: r.latency_ms,
            first_chunk_ms: r.first_chunk_ms,
            status: r.status,
            error: r.error,
            created_at: quire_core::timestamp_from_ms(r.created_at),
        }
    }
}

/// The prompt as logged: at most `MAX_LOGGED_PROMPT` bytes, cut on a character boundary.
pub(crate) fn logged_prompt(prompt: &str) -> &str {
    let mut end = prompt.len().min(quire_core::MAX_LOGGED_PROMPT);
    while !prompt.is_char_boundary(end) {
        end -= 1;
    }
    &prompt[..end]
}

macro_rules! impl_ai_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::AiStore for $store {
            async fn record_interactions(&self, entries: &[quire_core::Interaction]) -> quire_core::Result<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO ai_interactions (id, workspace_id, actor, context_id, kind, template, template_version, provider, \
                     model, parameters, prompt, tokens_in, tokens_out, latency_ms, first_chunk_ms, status, error, created_at) ",
                );
                qb.push_values(entries, |mut row, e| {
                    row.push_bind(e.id.clone())
                        .push_bind(e.workspace_id.clone())
                        .push_bind(e.actor.clone())
                        .push_bind(e.context_id.clone())
                        .push_bind(e.kind.clone())
                        .push_bind(e.template.clone())
                        .push_bind(e.template_version)
                        .push_bind(e.provider.clone())
                        .push_bind(e.model.clone())
                        .push_bind(e.parameters.to_string())
                        .push_bind($crate::ai::logged_prompt(&e.prompt).to_string())
                        .push_bind(e.tokens_in)
                        .push_bind(e.tokens_out)
                        .push_bind(e.latency_ms)
                        .push_bind(e.first_chunk_ms)
                        .push_bind(e.status.clone())
                        .push_bind(e.error.clone())
                        .push_bind((e.created_at.unix_timestamp_nanos() / 1_000_000) as i64);
                });
                qb.build().execute(&self.writer_pool()).await.map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn list_interactions(
                &self,
                who: &quire_core::Principal,
                q: &quire_core::InteractionQuery,
            ) -> quire_core::Result<quire_core::Page<quire_core::Interaction>> {
                let (ws, _) = self.visible_workspace(who, &q.workspace, Some(false)).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, workspace_id, actor, context_id, kind, template, template_version, provider, model, parameters, \
                     prompt, tokens_in, tokens_out, latency_ms, first_chunk_ms, status, error, created_at \
                     FROM ai_interactions WHERE workspace_id = ",
                );
                qb.push_bind(ws.id);
                if let Some(s) = &q.status {
                    qb.push(" AND status = ").push_bind(s.clone());
                }
                if let Some(k) = &q.kind {
                    qb.push(" AND kind = ").push_bind(k.clone());
                }
                if let Some(c) = &q.context_id {
                    qb.push(" AND context_id = ").push_bind(c.clone());
                }
                if let Some(before) = &q.before {
                    qb.push(" AND id < ").push_bind(before.clone());
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(q.limit) + 1);
                let rows: Vec<$crate::ai::InteractionRow> =
                    qb.build_query_as().fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                let mut items: Vec<quire_core::Interaction> = rows.into_iter().map(Into::into).collect();
                let more = items.len() > q.limit as usize;
                items.truncate(q.limit as usize);
                let next_cursor = if more { items.last().map(|i| i.id.clone()) } else { None };
                Ok(quire_core::Page { items, next_cursor })
            }
        }
    };
}
