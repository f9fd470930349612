//! The identity half of the SQL both backends share (see `sql.rs` for how the macro works).

/// Members with their names and addresses.
macro_rules! member_select {
    () => {
        "SELECT m.workspace_id, m.user_id, u.email, u.name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id"
    };
}

/// An invitation found open for the address that takes it.
pub(crate) struct OpenInvitation {
    pub id: String,
    pub workspace_id: String,
    pub role: quire_core::Role,
}

macro_rules! impl_identity_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn fetch_member(&self, ws_id: &str, user_id: &str) -> quire_core::Result<Option<quire_core::Member>> {
                let row = sqlx::query_as::<_, $crate::rows::MemberRow>(
                    concat!(member_select!(), " WHERE m.workspace_id = $1 AND m.user_id = $2"),
                )
                .bind(ws_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                row.map(TryInto::try_into).transpose()
            }

            /// The rows `sql` (bound to the workspace id) lists, for the workspace's admins.
            async fn list_for_admins<R, T>(&self, who: &quire_core::Principal, workspace: &str, action: &str, sql: &'static str) -> quire_core::Result<Vec<T>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = quire_core::Error>,
            {
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(mine, quire_core::Role::Admin, action)?;
                let rows = sqlx::query_as::<_, R>(sql).bind(&ws.id).fetch_all(&self.pool).await.map_err($crate::rows::db_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn member_role(&self, ws_id: &str, user_id: &str) -> quire_core::Result<Option<quire_core::Role>> {
                Ok(self.fetch_member(ws_id, user_id).await?.map(|m| m.role))
            }

            /// Refuses to leave a workspace without an owner: `tx` has just changed `ws_id`'s
            /// memberships and is not yet committed.
            async fn keep_an_owner(tx: &mut sqlx::Transaction<'static, $db>, ws_id: &str) -> quire_core::Result<()> {
                let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'owner'")
                    .bind(ws_id)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                if owners == 0 {
                    return Err(quire_core::Error::Conflict(
                        "a workspace needs an owner; make someone else owner first".into(),
                    ));
                }
                Ok(())
            }

            /// Inserts an account in `tx` (the first of the instance becomes its
            /// administrator) with its `user.created` event; says whether it was the first.
            async fn insert_user(
                tx: &mut sqlx::Transaction<'static, $db>,
                new: &quire_core::NewUser,
            ) -> quire_core::Result<(quire_core::User, bool)> {
                if let Some(lock) = Self::OUTBOX_LOCK {
                    // Also makes "the first account" exact across processes.
                    sqlx::query(lock).execute(&mut **tx).await.map_err($crate::rows::db_err)?;
                }
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut **tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                let first = count == 0;
                let now = quire_core::now_ms();
                let row = sqlx::query_as::<_, $crate::rows::UserRow>(concat!(
                    "INSERT INTO users (id, email, name, password_hash, admin, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                    user_columns!()
                ))
                .bind(quire_core::new_id("usr"))
                .bind(&new.email)
                .bind(&new.name)
                .bind(&new.password_hash)
                .bind(new.admin || first)
                .bind(now)
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| match $crate::rows::db_err(e) {
                    quire_core::Error::Conflict(_) => quire_core::Error::Conflict(format!(
                        "an account with the email {} exists; sign in instead",
                        new.email
                    )),
                    other => other,
                })?;
                let user: quire_core::User = row.into();
                let data = serde_json::json!({ "user": user });
                Self::append_raw(tx, &quire_core::Principal::System, "user.created", None, None, data).await?;
                Ok((user, first))
            }

            /// The unexpired, unaccepted invitation with this token, if it may be taken by
            /// `email`: `NotFound` when there is none, `Forbidden` when it names another
            /// address.
            async fn open_invitation(
                tx: &mut sqlx::Transaction<'static, $db>,
                token_hash: &str,
                email: &str,
            ) -> quire_core::Result<$crate::sql_identity::OpenInvitation> {
                use quire_core::Error;
                let found: Option<(String, String, Option<String>, String)> = sqlx::query_as(
                    "SELECT id, workspace_id, email, role FROM invitations \
                     WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2",
                )
                .bind(token_hash)
                .bind(quire_core::now_ms())
                .fetch_optional(&mut **tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some((id, workspace_id, invited, role)) = found else {
                    return Err(Error::NotFound { what: "invitation", id: "this invitation is unknown, used or expired; ask for a new one".into() });
                };
                if invited.as_ref().is_some_and(|e| e != email) {
                    return Err(Error::Forbidden("this invitation is for another email address".into()));
                }
                Ok($crate::sql_identity::OpenInvitation { id, workspace_id, role: role.parse()? })
            }

            /// Makes `user_id` a member of the invitation's workspace (never lowering a role
            /// already held) and marks the invitation accepted, in `tx`.
            async fn join_by_invitation(
                tx: &mut sqlx::Transaction<'static, $db>,
                who: &quire_core::Principal,
                user_id: &str,
                invitation: $crate::sql_identity::OpenInvitation,
            ) -> quire_core::Result<String> {
                let now = quire_core::now_ms();
                let $crate::sql_identity::OpenInvitation { id, workspace_id: ws_id, role: offered } = invitation;
                let held: Option<String> = sqlx::query_scalar("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(&ws_id)
                    .bind(user_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                let held = held.map(|r| r.parse::<quire_core::Role>()).transpose()?;
                let role = held.max(Some(offered)).unwrap_or(offered);
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(&ws_id)
                .bind(user_id)
                .bind(role.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err($crate::rows::db_err)?;
                sqlx::query("UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3")
                    .bind(now)
                    .bind(user_id)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                let data = serde_json::json!({ "user_id": user_id, "role": role, "invitation": id });
                Self::append_raw(tx, who, "workspace.member.updated", Some(&ws_id), None, data).await?;
                Ok(ws_id)
            }
        }

        #[async_trait::async_trait]
        impl $crate::IdentityStore for $store {
            async fn create_user(&self, new: quire_core::NewUser) -> quire_core::Result<(quire_core::User, bool)> {
                let new = new.validate()?;
                let mut tx = self.begin_write().await?;
                let created = Self::insert_user(&mut tx, &new).await?;
                self.commit(tx).await?;
                Ok(created)
            }

            async fn create_invited_user(
                &self,
                new: quire_core::NewUser,
                token_hash: &str,
            ) -> quire_core::Result<(quire_core::User, bool)> {
                let new = new.validate()?;
                let mut tx = self.begin_write().await?;
                // The invitation is checked before the account exists, in the same
                // transaction: a refused invitation leaves no account behind.
                let invitation = Self::open_invitation(&mut tx, token_hash, &new.email).await?;
                let (user, first) = Self::insert_user(&mut tx, &new).await?;
                let who = quire_core::Principal::User { id: user.id.clone(), admin: user.admin, session: None };
                Self::join_by_invitation(&mut tx, &who, &user.id, invitation).await?;
                self.commit(tx).await?;
                Ok((user, first))
            }

            async fn user_by_email(&self, email: &str) -> quire_core::Result<Option<$crate::Credentials>> {
                let Ok(email) = quire_core::normalize_email(email) else { return Ok(None) };
                let row = sqlx::query_as::<_, $crate::rows::CredentialsRow>(concat!(
                    "SELECT ", user_columns!(), ", password_hash FROM users WHERE email = $1"
                ))
                .bind(&email)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(row.map(|r| $crate::Credentials { user: r.user.into(), password_hash: r.password_hash }))
            }

            async fn user_count(&self) -> quire_core::Result<i64> {
                sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err($crate::rows::db_err)
            }

            async fn default_workspace(&self, user_id: &str) -> quire_core::Result<Option<String>> {
                sqlx::query_scalar(
                    "SELECT w.id FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
                     WHERE m.user_id = $1 AND w.deleted_at IS NULL ORDER BY m.created_at, w.id LIMIT 1",
                )
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)
            }

            async fn user_by_id(&self, id: &str) -> quire_core::Result<Option<quire_core::User>> {
                let row = sqlx::query_as::<_, $crate::rows::UserRow>(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(row.map(Into::into))
            }

            async fn list_users(&self, who: &quire_core::Principal) -> quire_core::Result<Vec<quire_core::User>> {
                if !who.is_superuser() {
                    return Err(quire_core::Error::Forbidden("only instance administrators list accounts".into()));
                }
                let rows = sqlx::query_as::<_, $crate::rows::UserRow>(concat!("SELECT ", user_columns!(), " FROM users ORDER BY email"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn set_password(&self, user_id: &str, password_hash: &str) -> quire_core::Result<()> {
                let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(password_hash)
                    .bind(quire_core::now_ms())
                    .bind(user_id)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                if done.rows_affected() == 0 {
                    return Err(quire_core::Error::not_found("user", user_id));
                }
                Ok(())
            }

            async fn create_session(&self, session: $crate::NewSession, refresh_expires_at: i64) -> quire_core::Result<()> {
                let now = quire_core::now_ms();
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, user_agent, ip, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&session.id)
                .bind(&session.user_id)
                .bind(&session.user_agent)
                .bind(&session.ip)
                .bind(now)
                .bind(session.expires_at)
                .execute(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(&session.refresh_hash)
                    .bind(&session.id)
                    .bind(now)
                    .bind(refresh_expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                self.commit(tx).await
            }

            async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, new_expires_at: i64) -> quire_core::Result<$crate::Rotation> {
                use $crate::Rotation;
                let now = quire_core::now_ms();
                let mut tx = self.begin_write().await?;
                let found: Option<(String, Option<i64>, i64, Option<i64>, i64, String)> = sqlx::query_as(
                    "SELECT r.session_id, r.used_at, r.expires_at, s.revoked_at, s.expires_at, s.user_id \
                     FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
                )
                .bind(old_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let Some((session_id, used_at, expires_at, revoked_at, session_expires_at, user_id)) = found else {
                    return Ok(Rotation::Invalid);
                };
                if revoked_at.is_some() || expires_at <= now || session_expires_at <= now {
                    return Ok(Rotation::Invalid);
                }
                // Marking it used only if nobody did first makes concurrent replays lose too.
                let marked = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                    .bind(now)
                    .bind(old_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                if used_at.is_some() || marked.rows_affected() == 0 {
                    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                        .bind(now)
                        .bind(&session_id)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::rows::db_err)?;
                    let data = serde_json::json!({ "sessions": [&session_id], "user_id": user_id, "reason": "refresh token reused" });
                    Self::append_raw(&mut tx, &quire_core::Principal::System, "session.revoked", None, None, data).await?;
                    self.commit(tx).await?;
                    return Ok(Rotation::Reused { session_id });
                }
                sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(new_hash)
                    .bind(&session_id)
                    .bind(now)
                    .bind(new_expires_at.min(session_expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                self.commit(tx).await?;
                let user = self.user_by_id(&user_id).await?.ok_or_else(|| quire_core::Error::not_found("user", &user_id))?;
                Ok(Rotation::Rotated { session_id, user })
            }

            async fn revoke_session(&self, who: &quire_core::Principal, session_id: &str) -> quire_core::Result<()> {
                let owner: Option<String> = sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)?;
                let Some(owner) = owner.filter(|o| who.is_superuser() || who.user_id() == Some(o.as_str())) else {
                    return Err(quire_core::Error::not_found("session", session_id));
                };
                let now = quire_core::now_ms();
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                if done.rows_affected() > 0 {
                    let data = serde_json::json!({ "sessions": [session_id], "user_id": owner });
                    Self::append_raw(&mut tx, who, "session.revoked", None, None, data).await?;
                }
                self.commit(tx).await
            }

            async fn revoke_user_sessions(&self, who: &quire_core::Principal, user_id: &str) -> quire_core::Result<Vec<String>> {
                if !(who.is_superuser() || who.user_id() == Some(user_id)) {
                    return Err(quire_core::Error::not_found("user", user_id));
                }
                let mut tx = self.begin_write().await?;
                let ids: Vec<String> =
                    sqlx::query_scalar("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                        .bind(quire_core::now_ms())
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err($crate::rows::db_err)?;
                if !ids.is_empty() {
                    let data = serde_json::json!({ "sessions": ids, "user_id": user_id });
                    Self::append_raw(&mut tx, who, "session.revoked", None, None, data).await?;
                }
                self.commit(tx).await?;
                Ok(ids)
            }

            async fn revoked_sessions_since(&self, since_ms: i64) -> quire_core::Result<Vec<String>> {
                sqlx::query_scalar("SELECT id FROM sessions WHERE revoked_at >= $1")
                    .bind(since_ms)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)
            }

            async fn list_sessions(
                &self,
                who: &quire_core::Principal,
            ) -> quire_core::Result<Vec<quire_core::SessionInfo>> {
                let quire_core::Principal::User { id, session, .. } = who else {
                    return Err(quire_core::Error::Forbidden("only a signed-in user has sessions".into()));
                };
                let rows: Vec<(String, Option<String>, Option<String>, i64, i64)> = sqlx::query_as(
                    "SELECT id, user_agent, ip, created_at, expires_at FROM sessions \
                     WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT 200",
                )
                .bind(id)
                .bind(quire_core::now_ms())
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(sid, user_agent, ip, created, expires)| quire_core::SessionInfo {
                        current: session.as_deref() == Some(sid.as_str()),
                        id: sid,
                        user_agent,
                        ip,
                        created_at: quire_core::timestamp_from_ms(created),
                        expires_at: quire_core::timestamp_from_ms(expires),
                    })
                    .collect())
            }

            async fn session_is_live(&self, session_id: &str) -> quire_core::Result<bool> {
                let live: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2")
                        .bind(session_id)
                        .bind(quire_core::now_ms())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok(live.is_some())
            }

            async fn setting(&self, key: &str) -> quire_core::Result<Option<String>> {
                sqlx::query_scalar("SELECT value FROM instance_settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)
            }

            async fn settings(&self) -> quire_core::Result<Vec<(String, String)>> {
                sqlx::query_as("SELECT key, value FROM instance_settings ORDER BY key")
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)
            }

            async fn put_setting(&self, key: &str, value: &str) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO instance_settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value)
                .bind(quire_core::now_ms())
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn preference(&self, user_id: &str, key: &str) -> quire_core::Result<Option<String>> {
                sqlx::query_scalar("SELECT value FROM user_preferences WHERE user_id = $1 AND key = $2")
                    .bind(user_id)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::rows::db_err)
            }

            async fn put_preference(&self, user_id: &str, key: &str, value: &str, max_keys: u32) -> quire_core::Result<()> {
                // Changing a key the person has is always taken; a new one only under the cap
                // (counted in the same statement, so two new keys at once cannot both pass it).
                let done = sqlx::query(
                    "INSERT INTO user_preferences (user_id, key, value, updated_at) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM user_preferences WHERE user_id = $1 AND key = $2) \
                        OR (SELECT COUNT(*) FROM user_preferences WHERE user_id = $1) < $5 \
                     ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(user_id)
                .bind(key)
                .bind(value)
                .bind(quire_core::now_ms())
                .bind(max_keys as i64)
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                if done.rows_affected() == 0 {
                    return Err(quire_core::Error::LimitExceeded(format!(
                        "a person keeps at most {max_keys} preferences: remove one first"
                    )));
                }
                Ok(())
            }

            async fn delete_preference(&self, user_id: &str, key: &str) -> quire_core::Result<bool> {
                let done = sqlx::query("DELETE FROM user_preferences WHERE user_id = $1 AND key = $2")
                    .bind(user_id)
                    .bind(key)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_setting(&self, key: &str) -> quire_core::Result<bool> {
                let done = sqlx::query("DELETE FROM instance_settings WHERE key = $1")
                    .bind(key)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn init_setting(&self, key: &str, value: &str) -> quire_core::Result<String> {
                sqlx::query("INSERT INTO instance_settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .bind(quire_core::now_ms())
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(self.setting(key).await?.unwrap_or_else(|| value.to_string()))
            }

            async fn list_members(&self, who: &quire_core::Principal, workspace: &str) -> quire_core::Result<Vec<quire_core::Member>> {
                let (ws, _) = self.visible_workspace(who, workspace, Some(false)).await?;
                let rows = sqlx::query_as::<_, $crate::rows::MemberRow>(
                    concat!(member_select!(), " WHERE m.workspace_id = $1 ORDER BY m.created_at, m.user_id"),
                )
                .bind(&ws.id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn set_member(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                user_id: &str,
                role: quire_core::Role,
            ) -> quire_core::Result<quire_core::Member> {
                use quire_core::Role;
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(mine, Role::Admin, "manage members")?;
                let current = self.member_role(&ws.id, user_id).await?;
                if role >= Role::Admin || current >= Some(Role::Admin) {
                    $crate::sql::require(mine, Role::Owner, "appoint or change admins and owners")?;
                }
                if self.user_by_id(user_id).await?.is_none() {
                    return Err(quire_core::Error::not_found("user", user_id));
                }
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(&ws.id)
                .bind(user_id)
                .bind(role.as_str())
                .bind(quire_core::now_ms())
                .execute(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                Self::keep_an_owner(&mut tx, &ws.id).await?;
                let data = serde_json::json!({ "user_id": user_id, "role": role });
                Self::append_raw(&mut tx, who, "workspace.member.updated", Some(&ws.id), None, data).await?;
                self.commit(tx).await?;
                self.fetch_member(&ws.id, user_id).await?.ok_or_else(|| quire_core::Error::not_found("member", user_id))
            }

            async fn remove_member(&self, who: &quire_core::Principal, workspace: &str, user_id: &str) -> quire_core::Result<()> {
                use quire_core::Role;
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                let Some(theirs) = self.member_role(&ws.id, user_id).await? else {
                    return Err(quire_core::Error::not_found("member", user_id));
                };
                if who.user_id() != Some(user_id) {
                    $crate::sql::require(mine, Role::Admin, "remove members")?;
                    if theirs >= Role::Admin {
                        $crate::sql::require(mine, Role::Owner, "remove admins and owners")?;
                    }
                }
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(&ws.id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                Self::keep_an_owner(&mut tx, &ws.id).await?;
                let data = serde_json::json!({ "user_id": user_id });
                Self::append_raw(&mut tx, who, "workspace.member.removed", Some(&ws.id), None, data).await?;
                self.commit(tx).await
            }

            async fn create_invitation(
                &self,
                who: &quire_core::Principal,
                workspace: &str,
                email: Option<String>,
                role: quire_core::Role,
                token_hash: &str,
                expires_at: i64,
            ) -> quire_core::Result<quire_core::Invitation> {
                use quire_core::Role;
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(mine, Role::Admin, "invite members")?;
                if role >= Role::Admin {
                    $crate::sql::require(mine, Role::Owner, "invite admins and owners")?;
                }
                let email = email.map(|e| quire_core::normalize_email(&e)).transpose()?;
                let row = sqlx::query_as::<_, $crate::rows::InvitationRow>(concat!(
                    "INSERT INTO invitations (id, workspace_id, email, role, token_hash, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
                    invitation_columns!()
                ))
                .bind(quire_core::new_id("inv"))
                .bind(&ws.id)
                .bind(email)
                .bind(role.as_str())
                .bind(token_hash)
                .bind(who.owner_id())
                .bind(quire_core::now_ms())
                .bind(expires_at)
                .fetch_one(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                row.try_into()
            }

            async fn list_invitations(&self, who: &quire_core::Principal, workspace: &str) -> quire_core::Result<Vec<quire_core::Invitation>> {
                let sql = concat!("SELECT ", invitation_columns!(), " FROM invitations WHERE workspace_id = $1 ORDER BY created_at DESC, id");
                self.list_for_admins::<$crate::rows::InvitationRow, _>(who, workspace, "see invitations", sql).await
            }

            async fn revoke_invitation(&self, who: &quire_core::Principal, workspace: &str, id: &str) -> quire_core::Result<()> {
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(mine, quire_core::Role::Admin, "revoke invitations")?;
                let done = sqlx::query("DELETE FROM invitations WHERE id = $1 AND workspace_id = $2 AND accepted_at IS NULL")
                    .bind(id)
                    .bind(&ws.id)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                if done.rows_affected() == 0 {
                    return Err(quire_core::Error::not_found("invitation", id));
                }
                Ok(())
            }

            async fn accept_invitation(&self, who: &quire_core::Principal, token_hash: &str) -> quire_core::Result<quire_core::Member> {
                use quire_core::Error;
                let Some(user_id) = who.user_id() else {
                    return Err(Error::Unauthenticated("sign in (or sign up) to accept an invitation".into()));
                };
                let user = self.user_by_id(user_id).await?.ok_or_else(|| Error::not_found("user", user_id))?;
                let mut tx = self.begin_write().await?;
                let invitation = Self::open_invitation(&mut tx, token_hash, &user.email).await?;
                let ws_id = Self::join_by_invitation(&mut tx, who, user_id, invitation).await?;
                self.commit(tx).await?;
                self.fetch_member(&ws_id, user_id).await?.ok_or_else(|| Error::not_found("member", user_id))
            }

            async fn invitation_is_open(&self, token_hash: &str) -> quire_core::Result<bool> {
                let open: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2")
                        .bind(token_hash)
                        .bind(quire_core::now_ms())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::rows::db_err)?;
                Ok(open.is_some())
            }

            async fn list_shares(&self, who: &quire_core::Principal, document: &str) -> quire_core::Result<Vec<quire_core::Share>> {
                let (doc, _) = self.visible_document(who, document, Some(false)).await?;
                let in_ws = self.workspace_role(who, &doc.workspace_id).await?.unwrap_or(quire_core::Role::Viewer);
                $crate::sql::require(in_ws, quire_core::Role::Editor, "see who a document is shared with")?;
                let rows = sqlx::query_as::<_, $crate::rows::ShareRow>(
                    "SELECT s.document_id, s.user_id, u.email, s.role, s.created_at \
                     FROM document_shares s JOIN users u ON u.id = s.user_id WHERE s.document_id = $1 ORDER BY s.created_at, s.user_id",
                )
                .bind(&doc.id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn put_share(
                &self,
                who: &quire_core::Principal,
                document: &str,
                email: &str,
                role: quire_core::Role,
            ) -> quire_core::Result<quire_core::Share> {
                use quire_core::{Error, Role};
                let (doc, _) = self.visible_document(who, document, Some(false)).await?;
                let in_ws = self.workspace_role(who, &doc.workspace_id).await?.unwrap_or(Role::Viewer);
                $crate::sql::require(in_ws, Role::Editor, "share the document")?;
                if role > Role::Editor {
                    return Err(Error::invalid("role", "a share grants viewer or editor; make them a workspace member for more"));
                }
                let target = self.user_by_email(email).await?.ok_or_else(|| {
                    Error::NotFound { what: "user", id: format!("{email} (no account uses it; invite them instead)") }
                })?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO document_shares (document_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (document_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(&doc.id)
                .bind(&target.user.id)
                .bind(role.as_str())
                .bind(quire_core::now_ms())
                .execute(&mut *tx)
                .await
                .map_err($crate::rows::db_err)?;
                let data = serde_json::json!({ "user_id": target.user.id, "role": role });
                Self::append_raw(&mut tx, who, "document.share.updated", Some(&doc.workspace_id), Some(&doc.id), data).await?;
                self.commit(tx).await?;
                let shares = self.list_shares(&quire_core::Principal::System, &doc.id).await?;
                shares.into_iter().find(|s| s.user_id == target.user.id).ok_or_else(|| Error::not_found("share", &target.user.id))
            }

            async fn remove_share(&self, who: &quire_core::Principal, document: &str, user_id: &str) -> quire_core::Result<()> {
                let (doc, _) = self.visible_document(who, document, Some(false)).await?;
                if who.user_id() != Some(user_id) {
                    let in_ws = self.workspace_role(who, &doc.workspace_id).await?.unwrap_or(quire_core::Role::Viewer);
                    $crate::sql::require(in_ws, quire_core::Role::Editor, "unshare the document")?;
                }
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM document_shares WHERE document_id = $1 AND user_id = $2")
                    .bind(&doc.id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::rows::db_err)?;
                if done.rows_affected() == 0 {
                    return Err(quire_core::Error::not_found("share", user_id));
                }
                let data = serde_json::json!({ "user_id": user_id });
                Self::append_raw(&mut tx, who, "document.share.removed", Some(&doc.workspace_id), Some(&doc.id), data).await?;
                self.commit(tx).await
            }

            async fn create_api_key(&self, who: &quire_core::Principal, workspace: &str, key: $crate::NewApiKey) -> quire_core::Result<quire_core::ApiKey> {
                use quire_core::{Error, Role};
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(mine, Role::Admin, "create API keys")?;
                if key.role > mine.min(Role::Admin) {
                    return Err(Error::invalid("role", "a key's role can be at most admin, and at most your own"));
                }
                let name = key.name.trim();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(Error::invalid("name", "must be 1 to 200 characters"));
                }
                let row = sqlx::query_as::<_, $crate::rows::ApiKeyRow>(concat!(
                    "INSERT INTO api_keys (id, workspace_id, name, role, prefix, key_hash, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
                    api_key_columns!()
                ))
                .bind(quire_core::new_id("key"))
                .bind(&ws.id)
                .bind(name)
                .bind(key.role.as_str())
                .bind(&key.prefix)
                .bind(&key.key_hash)
                .bind(who.owner_id())
                .bind(quire_core::now_ms())
                .fetch_one(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                row.try_into()
            }

            async fn list_api_keys(&self, who: &quire_core::Principal, workspace: &str) -> quire_core::Result<Vec<quire_core::ApiKey>> {
                let sql = concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id");
                self.list_for_admins::<$crate::rows::ApiKeyRow, _>(who, workspace, "see API keys", sql).await
            }

            async fn revoke_api_key(&self, who: &quire_core::Principal, workspace: &str, id: &str) -> quire_core::Result<quire_core::ApiKey> {
                let (ws, mine) = self.visible_workspace(who, workspace, Some(false)).await?;
                $crate::sql::require(mine, quire_core::Role::Admin, "revoke API keys")?;
                let row = sqlx::query_as::<_, $crate::rows::ApiKeyRow>(concat!(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL RETURNING ",
                    api_key_columns!()
                ))
                .bind(quire_core::now_ms())
                .bind(id)
                .bind(&ws.id);
                let mut tx = self.begin_write().await?;
                let row = row.fetch_optional(&mut *tx).await.map_err($crate::rows::db_err)?;
                let key: quire_core::ApiKey = row.ok_or_else(|| quire_core::Error::not_found("API key", id))?.try_into()?;
                // Open sockets authenticated by the key close on this event.
                let data = serde_json::json!({ "key_id": key.id });
                Self::append_raw(&mut tx, who, "api_key.revoked", Some(&ws.id), None, data).await?;
                self.commit(tx).await?;
                Ok(key)
            }

            async fn api_key_by_prefix(&self, prefix: &str) -> quire_core::Result<Option<$crate::StoredApiKey>> {
                let row = sqlx::query_as::<_, $crate::rows::KeyWithHashRow>(concat!(
                    "SELECT ", api_key_columns!(), ", key_hash, \
                     (SELECT m.role FROM memberships m WHERE m.workspace_id = api_keys.workspace_id AND m.user_id = api_keys.created_by) AS creator_role, \
                     (SELECT u.admin FROM users u WHERE u.id = api_keys.created_by) AS creator_admin \
                     FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL"
                ))
                .bind(prefix)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                row.map($crate::rows::KeyWithHashRow::into_stored).transpose()
            }

            async fn touch_api_key(&self, id: &str, at_ms: i64) -> quire_core::Result<()> {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(at_ms)
                    .bind(id)
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn save_sso_state(&self, state_hash: &str, state: &$crate::SsoState, expires_at: i64) -> quire_core::Result<()> {
                // Forget sign-ins that never came back.
                sqlx::query("DELETE FROM sso_states WHERE expires_at < $1")
                    .bind(quire_core::now_ms())
                    .execute(&self.writer_pool())
                    .await
                    .map_err($crate::rows::db_err)?;
                sqlx::query(
                    "INSERT INTO sso_states (state_hash, provider, code_verifier, nonce, redirect, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(state_hash)
                .bind(&state.provider)
                .bind(&state.code_verifier)
                .bind(&state.nonce)
                .bind(&state.redirect)
                .bind(expires_at)
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }

            async fn take_sso_state(&self, state_hash: &str) -> quire_core::Result<Option<$crate::SsoState>> {
                let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
                    "DELETE FROM sso_states WHERE state_hash = $1 RETURNING provider, code_verifier, nonce, redirect, expires_at",
                )
                .bind(state_hash)
                .fetch_optional(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(row.filter(|r| r.4 > quire_core::now_ms()).map(|(provider, code_verifier, nonce, redirect, _)| {
                    $crate::SsoState { provider, code_verifier, nonce, redirect }
                }))
            }

            async fn user_by_identity(&self, provider: &str, subject: &str) -> quire_core::Result<Option<quire_core::User>> {
                let row = sqlx::query_as::<_, $crate::rows::UserRow>(concat!(
                    "SELECT ", user_columns!(), " FROM users WHERE id = (SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2)"
                ))
                .bind(provider)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::rows::db_err)?;
                Ok(row.map(Into::into))
            }

            async fn link_identity(&self, provider: &str, subject: &str, user_id: &str, email: Option<&str>) -> quire_core::Result<()> {
                sqlx::query(
                    "INSERT INTO user_identities (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (provider, subject) DO UPDATE SET email = excluded.email",
                )
                .bind(provider)
                .bind(subject)
                .bind(user_id)
                .bind(email)
                .bind(quire_core::now_ms())
                .execute(&self.writer_pool())
                .await
                .map_err($crate::rows::db_err)?;
                Ok(())
            }
        }
    };
}
