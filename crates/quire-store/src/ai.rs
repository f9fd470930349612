//! The AI interactions log.

use async_trait::async_trait;
use quire_core::{Interaction, InteractionQuery, Page, Principal, Result, StoredPrompt};
use serde_json::Value;

#[async_trait]
pub trait AiStore: Send + Sync {
    /// Appends entries (in one statement; at most a few hundred at once).
    async fn record_interactions(&self, entries: &[Interaction]) -> Result<()>;
    /// A page of a workspace's entries, newest first (its members only).
    async fn list_interactions(&self, who: &Principal, query: &InteractionQuery) -> Result<Page<Interaction>>;
    /// Deletes entries made before `before_ms`, in slices; how many.
    async fn purge_interactions(&self, before_ms: i64) -> Result<u64>;

    /// Stores the next version of a workspace's prompt template `name` (its editors; the body
    /// is checked by the caller). `LimitExceeded` past `MAX_PROMPT_VERSIONS`.
    async fn create_prompt(&self, who: &Principal, workspace: &str, name: &str, body: &Value) -> Result<StoredPrompt>;
    /// Every version of the workspace's prompt templates (its members), by name then version.
    async fn list_prompts(&self, who: &Principal, workspace: &str) -> Result<Vec<StoredPrompt>>;
    /// One version (the latest when `None`) of a workspace's template, for callers that
    /// checked access.
    async fn find_prompt(&self, workspace_id: &str, name: &str, version: Option<i32>) -> Result<Option<StoredPrompt>>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct PromptRow {
    workspace_id: String,
    name: String,
    version: i32,
    body: String,
    created_by: String,
    created_at: i64,
}

impl From<PromptRow> for StoredPrompt {
    fn from(r: PromptRow) -> Self {
        StoredPrompt {
            workspace_id: r.workspace_id,
            name: r.name,
            version: r.version,
            body: serde_json::from_str(&r.body).unwrap_or(Value::Null),
            created_by: r.created_by,
            created_at: quire_core::timestamp_from_ms(r.created_at),
        }
    }
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
                        .push_bind(quire_core::ms_of(&e.created_at));
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

            async fn purge_interactions(&self, before_ms: i64) -> quire_core::Result<u64> {
                // Ids are `ai_` and a ULID, which sorts by time: the key finds them.
                let cut = quire_core::first_id_at("ai", before_ms);
                let mut total = 0;
                loop {
                    let done = sqlx::query(
                        "DELETE FROM ai_interactions WHERE id IN \
                         (SELECT id FROM ai_interactions WHERE id < $1 ORDER BY id LIMIT 5000)",
                    )
                    .bind(&cut)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?
                    .rows_affected();
                    total += done;
                    if done < 5000 {
                        return Ok(total);
                    }
                }
            }

            async fn create_prompt(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                name: &str,
                body: &serde_json::Value,
            ) -> quire_core::Result<quire_core::StoredPrompt> {
                let (ws, role) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "create prompt templates")?;
                let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM prompt_templates WHERE workspace_id = $1")
                    .bind(&ws.id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                if count >= quire_core::MAX_PROMPT_VERSIONS {
                    return Err(quire_core::Error::LimitExceeded(format!(
                        "a workspace keeps at most {} prompt template versions",
                        quire_core::MAX_PROMPT_VERSIONS
                    )));
                }
                for _ in 0..$crate::sql::MAX_ATTEMPTS {
                    let row: std::result::Result<$crate::ai::PromptRow, _> = sqlx::query_as(
                        "INSERT INTO prompt_templates (workspace_id, name, version, body, created_by, created_at) \
                         SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5 FROM prompt_templates \
                         WHERE workspace_id = $1 AND name = $2 \
                         RETURNING workspace_id, name, version, body, created_by, created_at",
                    )
                    .bind(&ws.id)
                    .bind(name)
                    .bind(body.to_string())
                    .bind(who.actor())
                    .bind(quire_core::now_ms())
                    .fetch_one(&self.writer_pool())
                    .await;
                    match row.map_err($crate::rows::db_err) {
                        Ok(row) => return Ok(row.into()),
                        Err(quire_core::Error::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(quire_core::Error::Conflict("the template changed meanwhile; retry".into()))
            }

            async fn list_prompts(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
            ) -> quire_core::Result<Vec<quire_core::StoredPrompt>> {
                let (ws, _) = self.visible_workspace(who, workspace, Some(false)).await?;
                let rows: Vec<$crate::ai::PromptRow> = sqlx::query_as(
                    "SELECT workspace_id, name, version, body, created_by, created_at FROM prompt_templates \
                     WHERE workspace_id = $1 ORDER BY name, version",
                )
                .bind(&ws.id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn find_prompt(
                &self,
                workspace_id: &str,
                name: &str,
                version: Option<i32>,
            ) -> quire_core::Result<Option<quire_core::StoredPrompt>> {
                let row: Option<$crate::ai::PromptRow> = sqlx::query_as(
                    "SELECT workspace_id, name, version, body, created_by, created_at FROM prompt_templates \
                     WHERE workspace_id = $1 AND name = $2 AND ($3 IS NULL OR version = $3) ORDER BY version DESC LIMIT 1",
                )
                .bind(workspace_id)
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(row.map(Into::into))
            }
        }
    };
}
