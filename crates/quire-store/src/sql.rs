//! The SQL both backends share, written once.
//!
//! `impl_store!` expands to the [`Store`](crate::Store) implementation for one backend type.
//! Its body is plain `sqlx` code that compiles against that backend's concrete pool, so there
//! are no generic database bounds to carry. Statements use `$n` placeholders, which SQLite and
//! PostgreSQL both read. A backend type supplies:
//!
//! * fields `pool`, `limits` and `signal` (a `watch::Sender<u64>` ticked after each commit);
//! * `async fn begin_write(&self)`: a transaction that may write (SQLite's come from its one
//!   writer connection and take the write lock up front with `BEGIN IMMEDIATE`);
//! * `async fn close_pools(&self)`;
//! * `const OUTBOX_LOCK` / `const OUTBOX_NOTIFY`: statements run around each event insert
//!   (PostgreSQL serialises event inserts so ids commit in order, and wakes other nodes);
//! * for `jobs.rs`: a `job_signal` sender, `queue_limits`, `const CLAIM_SKIP_LOCKED` (the
//!   claim's row-locking clause), `const ROW_LOCK` (locks the rows a multi-row update will touch,
//!   in the order given) and `const QUEUE_LOCK` (serialises claims on a limited queue).

/// `%term%` for LIKE, with the wildcard characters of `term` escaped by `\`.
pub(crate) fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.trim().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// How often an update without `If-Match` re-reads after losing a race to another writer.
pub(crate) const MAX_ATTEMPTS: usize = 32;

/// Appends `AND (col, id) > (key, id)` (or `<`), `ORDER BY` and `LIMIT n + 1` to a listing.
macro_rules! push_keyset {
    ($qb:expr, $col:expr, $page:expr) => {{
        let page: &quire_core::PageRequest = $page;
        let dir = if page.sort.descending { " DESC" } else { " ASC" };
        if let Some(c) = &page.after {
            $qb.push(" AND (").push($col).push(", id) ");
            $qb.push(if page.sort.descending { "< (" } else { "> (" });
            match &c.key {
                serde_json::Value::String(s) => $qb.push_bind(s.clone()),
                other => $qb.push_bind(other.as_i64().unwrap_or_default()),
            };
            $qb.push(", ").push_bind(c.id.clone()).push(")");
        }
        $qb.push(" ORDER BY ").push($col).push(dir).push(", id").push(dir);
        $qb.push(" LIMIT ").push_bind(i64::from(page.limit) + 1);
    }};
}

/// The condition that a document's workspace is live (not deleted).
macro_rules! live_workspace {
    () => {
        "EXISTS (SELECT 1 FROM workspaces w WHERE w.id = documents.workspace_id AND w.deleted_at IS NULL)"
    };
}

/// Cuts the extra row fetched by `push_keyset!` and makes the next cursor from the last row.
/// `keys` gives a row's name, creation time, update time and id.
pub(crate) fn into_page<T>(
    mut items: Vec<T>,
    page: &quire_core::PageRequest,
    keys: impl Fn(&T) -> (&String, &time::OffsetDateTime, &time::OffsetDateTime, &String),
) -> quire_core::Page<T> {
    use quire_core::SortField;
    let limit = page.limit as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => {
            let (name, created, updated, id) = keys(last);
            let key = match page.sort.field {
                SortField::CreatedAt => serde_json::json!(ms_of(created)),
                SortField::UpdatedAt => serde_json::json!(ms_of(updated)),
                SortField::Name => serde_json::json!(name),
            };
            Some(quire_core::Cursor { key, id: id.clone() }.encode(&page.sort))
        }
        _ => None,
    };
    quire_core::Page { items, next_cursor }
}

/// Refuses an action that needs a higher role than `role`.
pub(crate) fn require(role: quire_core::Role, needed: quire_core::Role, action: &str) -> quire_core::Result<()> {
    if role >= needed {
        Ok(())
    } else {
        Err(quire_core::Error::Forbidden(format!(
            "to {action} you need the {} role or higher; you have {}",
            needed.as_str(),
            role.as_str()
        )))
    }
}

/// Refuses a write whose `If-Match` revision is not the current one.
pub(crate) fn check_revision(if_match: Option<i64>, current: i64) -> quire_core::Result<()> {
    match if_match {
        Some(expected) if expected != current => Err(quire_core::Error::PreconditionFailed { expected, current }),
        _ => Ok(()),
    }
}

pub(crate) use quire_core::ms_of;

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            /// Appends one event inside `tx`; the caller commits with [`Self::commit`].
            async fn append_raw(
                tx: &mut sqlx::Transaction<'static, $db>,
                who: &quire_core::Principal,
                name: &str,
                workspace_id: Option<&str>,
                document_id: Option<&str>,
                data: serde_json::Value,
            ) -> quire_core::Result<i64> {
                if let Some(lock) = Self::OUTBOX_LOCK {
                    sqlx::query(lock).execute(&mut **tx).await.map_err($crate::rows::db_err)?;
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO events (name, workspace_id, document_id, actor, data, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(name)
                .bind(workspace_id)
                .bind(document_id)
                .bind(who.actor())
                .bind(data.to_string())
                .bind(quire_core::now_ms())
                .fetch_one(&mut **tx)
                .await
                .map_err($crate::rows::db_err)?;
                if let Some(notify) = Self::OUTBOX_NOTIFY {
                    sqlx::query(notify).execute(&mut **tx).await.map_err($crate::rows::db_err)?;
                }
                Ok(id)
            }

            /// Appends the event for `action` on `object`; `changes` names the fields an
            /// update changed.
            async fn append_event<T: $crate::rows::Outboxed>(
                tx: &mut sqlx::Transaction<'static, $db>,
                who: &quire_core::Principal,
                action: &str,
                object: &T,
                changes: Option<&[&str]>,
            ) -> quire_core::Result<i64> {
                let mut data = object.payload();
                if let Some(changes) = changes {
                    data["changes"] = serde_json::json!(changes);
                }
                let name = object.event_name(action);
                Self::append_raw(tx, who, &name, Some(object.workspace_id()), object.document_id(), data).await
            }

            /// The role `who` holds in the workspace with id `ws_id`, if any.
            async fn workspace_role(&self, who: &quire_core::Principal, ws_id: &str) -> quire_core::Result<Option<quire_core::Role>> {
                use quire_core::Principal;
                match who {
                    p if p.is_superuser() => Ok(Some(quire_core::Role::Owner)),
                    Principal::User { id, .. } => {
                        let role: Option<String> =
                            sqlx::query_scalar("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                                .bind(ws_id)
                                .bind(id)
                                .fetch_optional(&self.pool)
                                .await
                                .map_err($crate::rows::db_err)?;
                        role.map(|r| r.parse()).transpose()
                    }
                    Principal::ApiKey { workspace_id, role, .. } if workspace_id == ws_id => Ok(Some(*role)),
                    _ => Ok(None),
                }
            }

            /// The role `who` holds on `doc`: their workspace role or a share, whichever is higher.
            async fn document_role(&self, who: &quire_core::Principal, doc: &quire_core::Document) -> quire_core::Result<Option<quire_core::Role>> {
                let in_workspace = self.workspace_role(who, &doc.workspace_id).await?;
                let shared = match who {
                    quire_core::Principal::User { id, admin: false, .. } => {
                        let role: Option<String> =
                            sqlx::query_scalar("SELECT role FROM document_shares WHERE document_id = $1 AND user_id = $2")
                                .bind(&doc.id)
                                .bind(id)
                                .fetch_optional(&self.pool)
                                .await
                                .map_err($crate::rows::db_err)?;
                        role.map(|r| r.parse()).transpose()?
                    }
                    _ => None,
                };
                Ok(in_workspace.max(shared))
            }

            /// A workspace `who` may see, with their role in it; `NotFound` for one they may
            /// not know exists.
            async fn visible_workspace(&self, who: &quire_core::Principal, key: &str, deleted: Option<bool>) -> quire_core::Result<(quire_core::Workspace, quire_core::Role)> {
                let not_found = || quire_core::Error::not_found("workspace", key);
                let ws = self.fetch_workspace(key, deleted).await?.ok_or_else(not_found)?;
                let role = self.workspace_role(who, &ws.id).await?.ok_or_else(not_found)?;
                Ok((ws, role))
            }

            /// A document `who` may see, with their role on it.
            async fn visible_document(&self, who: &quire_core::Principal, id: &str, deleted: Option<bool>) -> quire_core::Result<(quire_core::Document, quire_core::Role)> {
                let not_found = || quire_core::Error::not_found("document", id);
                let doc = self.fetch_document(id, deleted).await?.ok_or_else(not_found)?;
                let role = self.document_role(who, &doc).await?.ok_or_else(not_found)?;
                Ok((doc, role))
            }

            async fn commit(&self, tx: sqlx::Transaction<'static, $db>) -> quire_core::Result<()> {
                tx.commit().await.map_err($crate::rows::db_err)?;
                self.signal.send_modify(|n| *n = n.wrapping_add(1));
                Ok(())
            }

            /// Runs a conditional `UPDATE … RETURNING` that changes one object and, when it
            /// matched, appends its event and commits. `None` when no row matched.
            async fn write_one<R, T>(
                &self,
                who: &quire_core::Principal,
                action: &str,
                changes: Option<&[&str]>,
                query: sqlx::query::QueryAs<'_, $db, R, <$db as sqlx::Database>::Arguments>,
            ) -> quire_core::Result<Option<T>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = quire_core::Error> + $crate::rows::Outboxed,
            {
                let mut tx = self.begin_write().await?;
                let Some(row) = query.fetch_optional(&mut *tx).await.map_err($crate::rows::db_err)? else {
                    return Ok(None);
                };
                let object = T::try_from(row)?;
                Self::append_event(&mut tx, who, action, &object, changes).await?;
                self.commit(tx).await?;
                Ok(Some(object))
            }

            async fn fetch_workspace(&self, key: &str, deleted: Option<bool>) -> quire_core::Result<Option<quire_core::Workspace>> {
                let sql = match deleted {
                    None => concat!("SELECT ", workspace_columns!(), " FROM workspaces WHERE (id = $1 OR slug = $1)"),
                    Some(false) => concat!("SELECT ", workspace_columns!(), " FROM workspaces WHERE (id = $1 OR slug = $1) AND deleted_at IS NULL"),
                    Some(true) => concat!("SELECT ", workspace_columns!(), " FROM workspaces WHERE (id = $1 OR slug = $1) AND deleted_at IS NOT NULL"),
                };
                let row = sqlx::query_as::<_, $crate::rows::WorkspaceRow>(sql)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn fetch_document(&self, id: &str, deleted: Option<bool>) -> quire_core::Result<Option<quire_core::Document>> {
                let sql = match deleted {
                    None => concat!("SELECT ", document_columns!(), " FROM documents WHERE id = $1 AND ", live_workspace!()),
                    Some(false) => concat!("SELECT ", document_columns!(), " FROM documents WHERE id = $1 AND deleted_at IS NULL AND ", live_workspace!()),
                    Some(true) => concat!("SELECT ", document_columns!(), " FROM documents WHERE id = $1 AND deleted_at IS NOT NULL AND ", live_workspace!()),
                };
                let row = sqlx::query_as::<_, $crate::rows::DocumentRow>(sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                row.map(TryInto::try_into).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn migrate(&self) -> quire_core::Result<()> {
                Self::MIGRATOR
                    .run(&self.writer_pool())
                    .await
                    .map_err(|e| quire_core::Error::Internal(format!("migration failed: {e}")))
            }

            async fn ping(&self) -> quire_core::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            fn limits(&self) -> &quire_core::Limits {
                &self.limits
            }

            async fn create_workspace(
                &self,
                who: &quire_core::Principal,
                new: quire_core::NewWorkspace,
            ) -> quire_core::Result<quire_core::Workspace> {
                use quire_core::{Error, Principal};
                match who {
                    Principal::Anonymous => return Err(Error::Unauthenticated("sign in to create a workspace".into())),
                    Principal::ApiKey { .. } => {
                        return Err(Error::Forbidden("an API key acts within its own workspace; sign in as a user to create workspaces".into()));
                    }
                    _ => {}
                }
                new.validate(&self.limits)?;
                let base = new.slug_or_derived();
                let name = new.name.trim().to_string();
                let description = new.description.clone().unwrap_or_default();
                // A derived slug that is taken gets a suffix from the new id; a chosen one is a conflict.
                for attempt in 0..4 {
                    let id = quire_core::new_id("ws");
                    let slug = if attempt == 0 { base.clone() } else { format!("{base}-{}", &id[id.len() - 6..]) };
                    let now = quire_core::now_ms();
                    let mut tx = self.begin_write().await?;
                    // Taken first here: it also makes the count below exact across processes.
                    if let Some(lock) = Self::OUTBOX_LOCK {
                        sqlx::query(lock).execute(&mut *tx).await.map_err($crate::rows::db_err)?;
                    }
                    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($crate::rows::db_err)?;
                    if count >= self.limits.max_workspaces {
                        return Err(Error::LimitExceeded(format!(
                            "this instance holds {count} workspaces, its limit (max_workspaces); purge or raise the limit"
                        )));
                    }
                    let inserted = sqlx::query_as::<_, $crate::rows::WorkspaceRow>(concat!(
                        "INSERT INTO workspaces (id, slug, name, description, owner_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                        workspace_columns!()
                    ))
                    .bind(&id)
                    .bind(&slug)
                    .bind(&name)
                    .bind(&description)
                    .bind(who.owner_id())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err);
                    let ws: quire_core::Workspace = match inserted {
                        Ok(row) => row.try_into()?,
                        Err(Error::Conflict(_)) if new.slug.is_some() => {
                            return Err(Error::Conflict(format!("the slug '{slug}' is taken; choose another")));
                        }
                        Err(Error::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    };
                    if let Some(user) = who.user_id() {
                        sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                            .bind(&ws.id)
                            .bind(user)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::rows::db_err)?;
                    }
                    Self::append_event(&mut tx, who, "created", &ws, None).await?;
                    self.commit(tx).await?;
                    return Ok(ws);
                }
                Err(Error::Conflict(format!("could not find a free slug near '{base}'; choose one")))
            }

            async fn get_workspace(
                &self,
                who: &quire_core::Principal,
                key: &str,
                include_deleted: bool,
            ) -> quire_core::Result<quire_core::Workspace> {
                let filter = if include_deleted { None } else { Some(false) };
                Ok(self.visible_workspace(who, key, filter).await?.0)
            }

            async fn list_workspaces(
                &self,
                who: &quire_core::Principal,
                query: &quire_core::WorkspaceQuery,
            ) -> quire_core::Result<quire_core::Page<quire_core::Workspace>> {
                use quire_core::{Principal, SortField};
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", workspace_columns!(), " FROM workspaces WHERE "));
                qb.push(if query.deleted { "deleted_at IS NOT NULL" } else { "deleted_at IS NULL" });
                match who {
                    p if p.is_superuser() => {}
                    Principal::User { id, .. } => {
                        qb.push(" AND id IN (SELECT workspace_id FROM memberships WHERE user_id = ").push_bind(id.clone()).push(")");
                    }
                    Principal::ApiKey { workspace_id, .. } => {
                        qb.push(" AND id = ").push_bind(workspace_id.clone());
                    }
                    _ => {
                        qb.push(" AND 1 = 0");
                    }
                }
                if let Some(q) = &query.q {
                    qb.push(" AND lower(name) LIKE lower(").push_bind($crate::sql::like_pattern(q)).push(") ESCAPE '\\'");
                }
                let col = match query.page.sort.field {
                    SortField::CreatedAt => "created_at",
                    SortField::UpdatedAt => "updated_at",
                    SortField::Name => "name",
                };
                push_keyset!(qb, col, &query.page);
                let rows: Vec<$crate::rows::WorkspaceRow> =
                    qb.build_query_as().fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                let items = rows.into_iter().map(TryInto::try_into).collect::<quire_core::Result<Vec<_>>>()?;
                Ok($crate::sql::into_page(items, &query.page, |w: &quire_core::Workspace| (&w.name, &w.created_at, &w.updated_at, &w.id)))
            }

            async fn update_workspace(
                &self,
                who: &quire_core::Principal,
                key: &str,
                patch: quire_core::WorkspacePatch,
                if_match: Option<i64>,
            ) -> quire_core::Result<quire_core::Workspace> {
                use quire_core::Error;
                patch.validate(&self.limits)?;
                // Optimistic: read, compute, write only if the revision is unchanged. Without
                // If-Match, losing a race to another writer just means reading again.
                for _ in 0..$crate::sql::MAX_ATTEMPTS {
                    let (current, role) = self.visible_workspace(who, key, Some(false)).await?;
                    $crate::sql::require(role, quire_core::Role::Admin, "change the workspace")?;
                    $crate::sql::check_revision(if_match, current.revision)?;
                    let changed = patch.changed_fields(&current);
                    if changed.is_empty() {
                        return Ok(current);
                    }
                    let query = sqlx::query_as::<_, $crate::rows::WorkspaceRow>(concat!(
                        "UPDATE workspaces SET name = $1, slug = $2, description = $3, revision = revision + 1, \
                         updated_at = $4 WHERE id = $5 AND revision = $6 AND deleted_at IS NULL RETURNING ",
                        workspace_columns!()
                    ))
                    .bind(patch.name.as_deref().map(str::trim).unwrap_or(&current.name))
                    .bind(patch.slug.as_deref().unwrap_or(&current.slug))
                    .bind(patch.description.as_deref().unwrap_or(&current.description))
                    .bind(quire_core::now_ms())
                    .bind(&current.id)
                    .bind(current.revision);
                    match self.write_one(who, "updated", Some(&changed), query).await {
                        Ok(Some(ws)) => return Ok(ws),
                        Ok(None) if if_match.is_none() => continue,
                        Ok(None) => break,
                        Err(Error::Conflict(_)) => {
                            return Err(Error::Conflict(format!("the slug '{}' is taken; choose another", patch.slug.unwrap_or_default())));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err($crate::rows::write_failed(self.fetch_workspace(key, Some(false)).await, key, if_match))
            }

            async fn delete_workspace(
                &self,
                who: &quire_core::Principal,
                key: &str,
                if_match: Option<i64>,
            ) -> quire_core::Result<quire_core::Workspace> {
                let (ws, role) = self.visible_workspace(who, key, Some(false)).await?;
                $crate::sql::require(role, quire_core::Role::Owner, "delete the workspace")?;
                let query = sqlx::query_as::<_, $crate::rows::WorkspaceRow>(concat!(
                    "UPDATE workspaces SET deleted_at = $1, updated_at = $1, revision = revision + 1 \
                     WHERE id = $2 AND deleted_at IS NULL AND ($3 IS NULL OR revision = $3) RETURNING ",
                    workspace_columns!()
                ))
                .bind(quire_core::now_ms())
                .bind(&ws.id)
                .bind(if_match);
                match self.write_one(who, "deleted", None, query).await? {
                    Some(ws) => Ok(ws),
                    None => Err($crate::rows::write_failed(self.fetch_workspace(key, Some(false)).await, key, if_match)),
                }
            }

            async fn restore_workspace(
                &self,
                who: &quire_core::Principal,
                key: &str,
            ) -> quire_core::Result<quire_core::Workspace> {
                let (ws, role) = self.visible_workspace(who, key, None).await?;
                $crate::sql::require(role, quire_core::Role::Owner, "restore the workspace")?;
                let query = sqlx::query_as::<_, $crate::rows::WorkspaceRow>(concat!(
                    "UPDATE workspaces SET deleted_at = NULL, updated_at = $1, revision = revision + 1 \
                     WHERE id = $2 AND deleted_at IS NOT NULL RETURNING ",
                    workspace_columns!()
                ))
                .bind(quire_core::now_ms())
                .bind(&ws.id);
                match self.write_one(who, "restored", None, query).await? {
                    Some(ws) => Ok(ws),
                    None => self.get_workspace(who, key, false).await,
                }
            }

            async fn create_document(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                new: quire_core::NewDocument,
            ) -> quire_core::Result<quire_core::Document> {
                use quire_core::Error;
                let (ws, role) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "create documents")?;
                new.validate(&self.limits)?;
                let metadata = new.metadata.clone().unwrap_or_else(|| serde_json::json!({}));
                let now = quire_core::now_ms();
                let mut tx = self.begin_write().await?;
                // Counting and the limit check are one atomic statement on the workspace row.
                let ws_id: Option<String> = sqlx::query_scalar(
                    "UPDATE workspaces SET document_count = document_count + 1 \
                     WHERE id = $1 AND deleted_at IS NULL AND document_count < $2 RETURNING id",
                )
                .bind(&ws.id)
                .bind(self.limits.max_documents_per_workspace)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some(ws_id) = ws_id else {
                    drop(tx);
                    return Err(match self.fetch_workspace(workspace, Some(false)).await? {
                        Some(ws) => Error::LimitExceeded(format!(
                            "workspace '{}' holds {} documents, its limit (max_documents_per_workspace); purge or raise the limit",
                            ws.slug, ws.document_count
                        )),
                        None => Error::not_found("workspace", workspace),
                    });
                };
                let row = sqlx::query_as::<_, $crate::rows::DocumentRow>(concat!(
                    "INSERT INTO documents (id, workspace_id, kind, title, metadata, owner_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
                    document_columns!()
                ))
                .bind(quire_core::new_id("doc"))
                .bind(&ws_id)
                .bind(new.kind.as_str())
                .bind(new.title.trim())
                .bind(metadata.to_string())
                .bind(who.owner_id())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let doc: quire_core::Document = row.try_into()?;
                Self::append_event(&mut tx, who, "created", &doc, None).await?;
                self.commit(tx).await?;
                Ok(doc)
            }

            async fn get_document(
                &self,
                who: &quire_core::Principal,
                id: &str,
                include_deleted: bool,
            ) -> quire_core::Result<quire_core::Document> {
                let filter = if include_deleted { None } else { Some(false) };
                Ok(self.visible_document(who, id, filter).await?.0)
            }

            async fn role_on_document(
                &self,
                who: &quire_core::Principal,
                id: &str,
            ) -> quire_core::Result<(quire_core::Document, quire_core::Role)> {
                self.visible_document(who, id, Some(false)).await
            }

            async fn role_in_workspace(
                &self,
                who: &quire_core::Principal,
                key: &str,
            ) -> quire_core::Result<(quire_core::Workspace, quire_core::Role)> {
                self.visible_workspace(who, key, Some(false)).await
            }

            async fn list_documents(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                query: &quire_core::DocumentQuery,
            ) -> quire_core::Result<quire_core::Page<quire_core::Document>> {
                use quire_core::SortField;
                let (ws, _) = self.visible_workspace(who, workspace, Some(false)).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", document_columns!(), " FROM documents WHERE workspace_id = "));
                qb.push_bind(ws.id.clone());
                qb.push(if query.deleted { " AND deleted_at IS NOT NULL" } else { " AND deleted_at IS NULL" });
                if let Some(kind) = query.kind {
                    qb.push(" AND kind = ").push_bind(kind.as_str());
                }
                if let Some(q) = &query.q {
                    qb.push(" AND lower(title) LIKE lower(").push_bind($crate::sql::like_pattern(q)).push(") ESCAPE '\\'");
                }
                let col = match query.page.sort.field {
                    SortField::CreatedAt => "created_at",
                    SortField::UpdatedAt => "updated_at",
                    SortField::Name => "title",
                };
                push_keyset!(qb, col, &query.page);
                let rows: Vec<$crate::rows::DocumentRow> =
                    qb.build_query_as().fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                let items = rows.into_iter().map(TryInto::try_into).collect::<quire_core::Result<Vec<_>>>()?;
                Ok($crate::sql::into_page(items, &query.page, |d: &quire_core::Document| (&d.title, &d.created_at, &d.updated_at, &d.id)))
            }

            async fn update_document(
                &self,
                who: &quire_core::Principal,
                id: &str,
                patch: quire_core::DocumentPatch,
                if_match: Option<i64>,
            ) -> quire_core::Result<quire_core::Document> {
                patch.validate(&self.limits)?;
                for _ in 0..$crate::sql::MAX_ATTEMPTS {
                    let (current, role) = self.visible_document(who, id, Some(false)).await?;
                    $crate::sql::require(role, quire_core::Role::Editor, "edit the document")?;
                    $crate::sql::check_revision(if_match, current.revision)?;
                    let (title, metadata, changed) = patch.apply(&current, &self.limits)?;
                    if changed.is_empty() {
                        return Ok(current);
                    }
                    let query = sqlx::query_as::<_, $crate::rows::DocumentRow>(concat!(
                        "UPDATE documents SET title = $1, metadata = $2, revision = revision + 1, updated_at = $3 \
                         WHERE id = $4 AND revision = $5 AND deleted_at IS NULL RETURNING ",
                        document_columns!()
                    ))
                    .bind(title.trim().to_string())
                    .bind(metadata.to_string())
                    .bind(quire_core::now_ms())
                    .bind(id)
                    .bind(current.revision);
                    match self.write_one(who, "updated", Some(&changed), query).await? {
                        Some(doc) => return Ok(doc),
                        None if if_match.is_none() => continue,
                        None => break,
                    }
                }
                Err($crate::rows::write_failed(self.fetch_document(id, Some(false)).await, id, if_match))
            }

            async fn delete_document(
                &self,
                who: &quire_core::Principal,
                id: &str,
                if_match: Option<i64>,
            ) -> quire_core::Result<quire_core::Document> {
                let (_, role) = self.visible_document(who, id, Some(false)).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "delete the document")?;
                let query = sqlx::query_as::<_, $crate::rows::DocumentRow>(concat!(
                    "UPDATE documents SET deleted_at = $1, updated_at = $1, revision = revision + 1 \
                     WHERE id = $2 AND deleted_at IS NULL AND ($3 IS NULL OR revision = $3) AND ",
                    live_workspace!(),
                    " RETURNING ",
                    document_columns!()
                ))
                .bind(quire_core::now_ms())
                .bind(id)
                .bind(if_match);
                match self.write_one(who, "deleted", None, query).await? {
                    Some(doc) => Ok(doc),
                    None => Err($crate::rows::write_failed(self.fetch_document(id, Some(false)).await, id, if_match)),
                }
            }

            async fn restore_document(
                &self,
                who: &quire_core::Principal,
                id: &str,
            ) -> quire_core::Result<quire_core::Document> {
                let (_, role) = self.visible_document(who, id, None).await?;
                $crate::sql::require(role, quire_core::Role::Editor, "restore the document")?;
                let query = sqlx::query_as::<_, $crate::rows::DocumentRow>(concat!(
                    "UPDATE documents SET deleted_at = NULL, updated_at = $1, revision = revision + 1 \
                     WHERE id = $2 AND deleted_at IS NOT NULL AND ",
                    live_workspace!(),
                    " RETURNING ",
                    document_columns!()
                ))
                .bind(quire_core::now_ms())
                .bind(id);
                match self.write_one(who, "restored", None, query).await? {
                    Some(doc) => Ok(doc),
                    None => self.get_document(who, id, false).await,
                }
            }

            async fn events_after(
                &self,
                who: &quire_core::Principal,
                after: i64,
                filter: &quire_core::EventFilter,
                limit: u32,
            ) -> quire_core::Result<Vec<quire_core::Event>> {
                use quire_core::Principal;
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", event_columns!(), " FROM events WHERE id > "));
                qb.push_bind(after);
                // Members see their workspaces' events, share holders their documents'; events
                // of no workspace (accounts, sessions) only superusers.
                match who {
                    p if p.is_superuser() => {}
                    Principal::User { id, .. } => {
                        qb.push(" AND (workspace_id IN (SELECT workspace_id FROM memberships WHERE user_id = ")
                            .push_bind(id.clone())
                            .push(") OR document_id IN (SELECT document_id FROM document_shares WHERE user_id = ")
                            .push_bind(id.clone())
                            .push("))");
                    }
                    Principal::ApiKey { workspace_id, .. } => {
                        qb.push(" AND workspace_id = ").push_bind(workspace_id.clone());
                    }
                    _ => {
                        qb.push(" AND 1 = 0");
                    }
                }
                if let Some(ws) = &filter.workspace_id {
                    qb.push(" AND workspace_id = ").push_bind(ws.clone());
                }
                if !filter.names.is_empty() {
                    qb.push(" AND (");
                    for (i, pattern) in filter.names.iter().enumerate() {
                        if i > 0 {
                            qb.push(" OR ");
                        }
                        match pattern.strip_suffix('*') {
                            Some(prefix) => {
                                // like_pattern adds a leading %; a prefix match needs none.
                                let like = $crate::sql::like_pattern(prefix);
                                qb.push("name LIKE ").push_bind(like[1..].to_string()).push(" ESCAPE '\\'")
                            }
                            None => qb.push("name = ").push_bind(pattern.clone()),
                        };
                    }
                    qb.push(")");
                }
                qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
                let rows: Vec<$crate::rows::EventRow> =
                    qb.build_query_as().fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn last_event_id(&self) -> quire_core::Result<i64> {
                sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM events")
                    .fetch_one(&self.pool)
                    .await
                    .map(Option::unwrap_or_default)
                    .map_err($crate::rows::db_err)
            }

            async fn record_event(
                &self,
                who: &quire_core::Principal,
                name: &str,
                workspace_id: &str,
                document_id: Option<&str>,
                data: serde_json::Value,
            ) -> quire_core::Result<i64> {
                let mut tx = self.begin_write().await?;
                let id = Self::append_raw(&mut tx, who, name, Some(workspace_id), document_id, data).await?;
                self.commit(tx).await?;
                Ok(id)
            }

            fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
                self.signal.subscribe()
            }

            async fn consumer_offset(&self, consumer: &str) -> quire_core::Result<i64> {
                sqlx::query_scalar::<_, i64>("SELECT position FROM consumer_offsets WHERE consumer = $1")
                    .bind(consumer)
                    .fetch_optional(&self.pool)
                    .await
                    .map(Option::unwrap_or_default)
                    .map_err($crate::rows::db_err)
            }

            async fn save_consumer_offset(&self, consumer: &str, position: i64) -> quire_core::Result<()> {
                // Never moves backwards: a slow duplicate consumer cannot rewind a fast one.
                sqlx::query(
                    "INSERT INTO consumer_offsets (consumer, position, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at \
                     WHERE consumer_offsets.position < excluded.position",
                )
                .bind(consumer)
                .bind(position)
                .bind(quire_core::now_ms())
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }
        }
    };
}
