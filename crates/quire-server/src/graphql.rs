//! The GraphQL API (async-graphql) over the same services and permissions as REST: every
//! resolver asks the store or an application service in the caller's name, so what GraphQL
//! shows and does is exactly what the REST routes would. Queries: the caller, workspaces and
//! their documents, board configurations (settings, files, validation, builds), validation of
//! any configuration, builds with their stages, artifacts (signed links) and log, contexts and
//! their events. Mutations: patch a configuration, start a build, cancel a context.
//! Subscriptions (over `graphql-transport-ws` at `/api/v1/graphql/ws`): a build's log, a
//! build's progress, a context's events. Depth, complexity and list sizes are bounded.

use std::sync::Arc;

use async_graphql::{
    Context, Enum, ErrorExtensions, Json, MergedObject, Object, Schema, SimpleObject, Subscription, Union,
};
use futures_util::{Stream, StreamExt};
use quire_core::{ContextQuery, DocumentKind, DocumentQuery, PageRequest, Principal, WorkspaceQuery};
use serde_json::Value;

use crate::App;
use crate::error::ApiError;
use crate::routes::builds::{LogEvent, log_stream};

/// The schema Quire serves.
pub type QuireSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// Deepest query taken: enough for GraphiQL's introspection query (its type references nest
/// `ofType` eight deep), which the limit covers too; the complexity limit bounds the work.
pub const MAX_DEPTH: usize = 16;
/// Most fields (each list's counted by the items it asks for) one query may select.
pub const MAX_COMPLEXITY: usize = 5_000;
/// Most items one list returns.
pub const MAX_FIRST: i32 = 100;

/// Builds the schema; each request carries the app and the caller's principal.
pub fn schema() -> QuireSchema {
    Schema::build(Query, Mutation, SubscriptionRoot).limit_depth(MAX_DEPTH).limit_complexity(MAX_COMPLEXITY).finish()
}

type Result<T> = async_graphql::Result<T>;

/// A domain error as GraphQL says it: the message, and `extensions.code` as REST's.
fn fail(e: impl Into<ApiError>) -> async_graphql::Error {
    let e: ApiError = e.into();
    async_graphql::Error::new(e.message.clone()).extend_with(|_, ext| {
        ext.set("code", e.code);
        ext.set("status", e.status.as_u16());
        if let Some(f) = &e.field {
            ext.set("field", f.as_str());
        }
    })
}

fn app<'a>(ctx: &Context<'a>) -> &'a App {
    ctx.data_unchecked::<App>()
}

fn who<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_unchecked::<Principal>()
}

fn first(n: i32) -> Result<u32> {
    if (1..=MAX_FIRST).contains(&n) {
        Ok(n as u32)
    } else {
        Err(fail(quire_core::Error::invalid("first", format!("first is 1 to {MAX_FIRST}"))))
    }
}

fn time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub struct Query;

#[Object]
impl Query {
    /// The caller: a user, or the API key's workspace.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let who = who(ctx);
        let user = match who.user_id() {
            Some(id) => app(ctx).store().user_by_id(id).await.map_err(fail)?,
            None => None,
        };
        Ok(Me {
            id: who.actor().to_string(),
            name: user.as_ref().map(|u| u.name.clone()),
            email: user.as_ref().map(|u| u.email.clone()),
        })
    }

    /// The workspaces the caller belongs to, by name.
    #[graphql(complexity = "first as usize * child_complexity")]
    async fn workspaces(&self, ctx: &Context<'_>, #[graphql(default = 20)] first: i32) -> Result<Vec<WorkspaceNode>> {
        let query = WorkspaceQuery::new(None, None, Some(self::first(first)?), None, false, app(ctx).store().limits())
            .map_err(fail)?;
        let page = app(ctx).store().list_workspaces(who(ctx), &query).await.map_err(fail)?;
        Ok(page.items.into_iter().map(WorkspaceNode).collect())
    }

    /// A workspace by id or slug.
    async fn workspace(&self, ctx: &Context<'_>, id: String) -> Result<WorkspaceNode> {
        Ok(WorkspaceNode(app(ctx).store().get_workspace(who(ctx), &id, false).await.map_err(fail)?))
    }

    /// A document by id.
    async fn document(&self, ctx: &Context<'_>, id: String) -> Result<DocumentNode> {
        Ok(DocumentNode(app(ctx).store().get_document(who(ctx), &id, false).await.map_err(fail)?))
    }

    /// A board configuration (a `board-config` document) by id.
    async fn board_config(&self, ctx: &Context<'_>, id: String) -> Result<BoardConfig> {
        board_config(ctx, &id).await
    }

    /// Checks any configuration against the build schema in force (as `POST
    /// /api/v1/board-configs/validate`).
    async fn validate(&self, ctx: &Context<'_>, config: Json<Value>) -> Result<Validation> {
        quire_collab::build_config::validate(&config.0).map_err(fail)?;
        Ok(Validation::of(&app(ctx).board_configs().validate(&config.0)))
    }

    /// A build by its context id.
    async fn build(&self, ctx: &Context<'_>, id: String) -> Result<BuildNode> {
        let context = crate::routes::builds::visible_build(app(ctx), who(ctx), &id).await.map_err(fail)?;
        Ok(BuildNode::new(context))
    }

    /// A context (a pipeline run) by id.
    async fn context(&self, ctx: &Context<'_>, id: String) -> Result<ContextNode> {
        Ok(ContextNode::new(app(ctx).store().get_context(who(ctx), &id).await.map_err(fail)?))
    }
}

async fn board_config(ctx: &Context<'_>, id: &str) -> Result<BoardConfig> {
    let doc = app(ctx).store().get_document(who(ctx), id, false).await.map_err(fail)?;
    if doc.kind != DocumentKind::BoardConfig {
        return Err(fail(quire_core::Error::invalid(
            "id",
            format!("{} is a {}, not a board configuration", doc.id, doc.kind.as_str()),
        )));
    }
    let kind = quire_collab::kinds::of(doc.kind);
    let content = app(ctx).collab().read(&doc.id, |d| kind.read_json(d)).await.map_err(fail)?;
    Ok(BoardConfig { doc, content })
}

#[derive(SimpleObject)]
pub struct Me {
    /// The user's id, or the API key's.
    id: String,
    name: Option<String>,
    email: Option<String>,
}

pub struct WorkspaceNode(quire_core::Workspace);

#[Object(name = "Workspace")]
impl WorkspaceNode {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    /// Its documents, most recently changed first; `kind` one of `prd`, `moodboard`,
    /// `board-config`.
    #[graphql(complexity = "first as usize * child_complexity")]
    async fn documents(
        &self,
        ctx: &Context<'_>,
        kind: Option<String>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<DocumentNode>> {
        let query = DocumentQuery::new(
            kind.as_deref(),
            None,
            None,
            Some(self::first(first)?),
            None,
            false,
            app(ctx).store().limits(),
        )
        .map_err(fail)?;
        let page = app(ctx).store().list_documents(who(ctx), &self.0.id, &query).await.map_err(fail)?;
        Ok(page.items.into_iter().map(DocumentNode).collect())
    }
}

pub struct DocumentNode(quire_core::Document);

#[Object(name = "Document")]
impl DocumentNode {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn workspace_id(&self) -> &str {
        &self.0.workspace_id
    }
    /// `prd`, `moodboard` or `board-config`.
    async fn kind(&self) -> &str {
        self.0.kind.as_str()
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn revision(&self) -> i64 {
        self.0.revision
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(self.0.updated_at)
    }
    /// The content as JSON (as `GET …/content`).
    async fn content(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        let kind = self.0.kind;
        let content = app(ctx).collab().read(&self.0.id, |d| quire_collab::content::read_json(d, kind)).await;
        Ok(Json(content.map_err(fail)?))
    }
    /// The board configuration this document is, if it is one.
    async fn board_config(&self, ctx: &Context<'_>) -> Result<Option<BoardConfig>> {
        if self.0.kind != DocumentKind::BoardConfig {
            return Ok(None);
        }
        board_config(ctx, &self.0.id).await.map(Some)
    }
}

/// A board configuration: the settings Armbian's `./compile.sh build` takes and the files it
/// lays into `userpatches/`.
pub struct BoardConfig {
    doc: quire_core::Document,
    content: Value,
}

#[Object]
impl BoardConfig {
    async fn document(&self) -> DocumentNode {
        DocumentNode(self.doc.clone())
    }
    /// The settings, `KEY: value`.
    async fn settings(&self) -> Json<Value> {
        Json(quire_collab::build_config::settings(&self.content))
    }
    /// The files that go into `userpatches/`, in path order.
    async fn files(&self) -> Vec<ConfigFile> {
        quire_collab::build_config::files(&self.content)
            .into_iter()
            .map(|(path, f)| ConfigFile {
                path,
                sha256: f.sha256,
                size: f.size as i64,
                mode: f.mode,
                text: f.text,
                updated_by: f.updated_by,
            })
            .collect()
    }
    /// The settings checked against the build schema in force.
    async fn validation(&self, ctx: &Context<'_>) -> Validation {
        Validation::of(&app(ctx).board_configs().validate(&self.content))
    }
    /// The `./compile.sh build` arguments, every default filled in; none while the
    /// configuration has errors.
    async fn build_arguments(&self, ctx: &Context<'_>) -> Vec<String> {
        let settings = quire_collab::build_config::settings(&self.content);
        app(ctx).board_configs().schema().checker.build_arguments(&settings).unwrap_or_default()
    }
    /// Its builds, newest first.
    #[graphql(complexity = "first as usize * child_complexity")]
    async fn builds(&self, ctx: &Context<'_>, #[graphql(default = 10)] first: i32) -> Result<Vec<BuildNode>> {
        let query = ContextQuery {
            workspace: Some(self.doc.workspace_id.clone()),
            status: None,
            kind: Some(quire_app::builds::KIND.into()),
            document: Some(self.doc.id.clone()),
            page: PageRequest::parse(
                None,
                "-created_at",
                "type",
                Some(self::first(first)?),
                None,
                app(ctx).store().limits(),
            )
            .map_err(fail)?,
        };
        let page = app(ctx).store().list_contexts(who(ctx), &query).await.map_err(fail)?;
        Ok(page.items.into_iter().map(BuildNode::new).collect())
    }
}

#[derive(SimpleObject)]
pub struct ConfigFile {
    path: String,
    sha256: String,
    size: i64,
    mode: String,
    text: bool,
    updated_by: String,
}

#[derive(SimpleObject)]
pub struct Validation {
    schema_version: String,
    valid: bool,
    problems: Vec<Problem>,
}

impl Validation {
    fn of(v: &quire_app::board_configs::Validation) -> Validation {
        Validation {
            schema_version: v.schema_version.clone(),
            valid: v.valid,
            problems: v
                .problems
                .iter()
                .map(|p| Problem {
                    path: p.path.clone(),
                    code: p.code.clone(),
                    message: p.message.clone(),
                    severity: p.severity.clone(),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct Problem {
    /// The setting's JSON pointer, `/BRANCH`.
    path: String,
    code: String,
    message: String,
    /// `error` or `warning`.
    severity: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "quire_core::ContextStatus")]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
    Retrying,
    Cancelled,
}

#[derive(SimpleObject)]
pub struct ProgressView {
    percent: f64,
    message: String,
}

#[derive(SimpleObject)]
pub struct ErrorView {
    code: String,
    message: String,
}

fn progress(p: &Option<quire_core::Progress>) -> Option<ProgressView> {
    p.as_ref().map(|p| ProgressView { percent: p.percent as f64, message: p.message.clone() })
}

fn error_view(e: &Option<quire_core::ContextError>) -> Option<ErrorView> {
    e.as_ref().map(|e| ErrorView { code: e.code.clone(), message: e.message.clone() })
}

/// A board build: a pipeline run with its configuration, stages, artifacts and log.
#[derive(MergedObject)]
#[graphql(name = "Build")]
pub struct BuildNode(RunFields, BuildFields);

impl BuildNode {
    fn new(context: quire_core::Context) -> BuildNode {
        let context = Arc::new(context);
        BuildNode(RunFields(context.clone()), BuildFields(context))
    }
}

/// What every pipeline run shows; a build is one, so `Build` and `Context` both have these.
pub struct RunFields(Arc<quire_core::Context>);

#[Object]
impl RunFields {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn status(&self) -> Status {
        self.0.status.into()
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn updated_at(&self) -> String {
        time(self.0.updated_at)
    }
    async fn progress(&self) -> Option<ProgressView> {
        progress(&self.0.progress)
    }
    async fn error(&self) -> Option<ErrorView> {
        error_view(&self.0.error)
    }
}

pub struct BuildFields(Arc<quire_core::Context>);

#[Object]
impl BuildFields {
    async fn priority(&self) -> i32 {
        self.0.priority
    }
    /// Builds that run before it while it waits (0: next).
    async fn queue_position(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(app(ctx).builds().queue_position(&self.0).await.map_err(fail)?.map(|n| n as i32))
    }
    /// The configuration as it was snapshotted when the build was started.
    async fn config(&self) -> Json<Value> {
        Json(self.0.data.get("config").cloned().unwrap_or(Value::Null))
    }
    async fn document_id(&self) -> Option<&str> {
        self.0.data.get("document_id").and_then(Value::as_str)
    }
    async fn schema_version(&self) -> Option<&str> {
        self.0.data.get("schema_version").and_then(Value::as_str)
    }
    async fn duration_ms(&self) -> Option<i64> {
        self.0.data.get("duration_ms").and_then(Value::as_i64)
    }
    async fn stages(&self) -> Vec<Stage> {
        serde_json::from_value(self.0.data.get("stages").cloned().unwrap_or_default()).unwrap_or_default()
    }
    /// The files it kept, each checked against its `.sha`, with a link that needs no token
    /// for a few hours.
    async fn artifacts(&self, ctx: &Context<'_>) -> Vec<Artifact> {
        let (urls, expires) = app(ctx).builds().artifact_urls(&self.0);
        self.0
            .data
            .get("artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| {
                let name = a["name"].as_str().unwrap_or_default().to_string();
                Artifact {
                    url: urls.get(&name).and_then(Value::as_str).unwrap_or_default().to_string(),
                    url_expires_at: expires,
                    kind: a["kind"].as_str().unwrap_or_default().to_string(),
                    size: a["size"].as_i64().unwrap_or(0),
                    sha256: a["sha256"].as_str().unwrap_or_default().to_string(),
                    verified: a["verified"].as_bool(),
                    name,
                }
            })
            .collect()
    }
    /// Kept log lines after line `after`, at most `first`.
    #[graphql(complexity = "first as usize * child_complexity")]
    async fn log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after: i64,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<LogLine>> {
        let first = self::first(first)? as usize;
        let chunks = app(ctx).store().build_log(&self.0.id, after.max(0), 8).await.map_err(fail)?;
        Ok(chunks
            .iter()
            .flat_map(quire_app::builds::decode)
            .filter(|l| l.n > after)
            .take(first)
            .map(LogLine::from)
            .collect())
    }
}

#[derive(SimpleObject, serde::Deserialize, Default)]
pub struct Stage {
    name: String,
    /// Seconds since the build began.
    at: i64,
    /// The log line it began on.
    line: i64,
}

#[derive(SimpleObject)]
pub struct Artifact {
    name: String,
    /// `image`, `image_xz`, `image_zst`, `info` or `checksum`.
    kind: String,
    size: i64,
    sha256: String,
    /// Whether it matched the `.sha` Armbian wrote (none: it had none).
    verified: Option<bool>,
    /// A link that works without a token until `urlExpiresAt` (seconds since the epoch).
    url: String,
    url_expires_at: i64,
}

#[derive(SimpleObject, Clone)]
pub struct LogLine {
    n: i64,
    /// Milliseconds since the epoch.
    t: i64,
    /// `out` or `err`.
    stream: String,
    /// As printed, ANSI colours kept.
    text: String,
}

impl From<quire_app::builds::LogLine> for LogLine {
    fn from(l: quire_app::builds::LogLine) -> Self {
        LogLine { n: l.n, t: l.t, stream: l.s.to_string(), text: l.text }
    }
}

/// A pipeline run.
#[derive(MergedObject)]
#[graphql(name = "Context")]
pub struct ContextNode(RunFields, ContextFields);

impl ContextNode {
    fn new(context: quire_core::Context) -> ContextNode {
        let context = Arc::new(context);
        ContextNode(RunFields(context.clone()), ContextFields(context))
    }
}

pub struct ContextFields(Arc<quire_core::Context>);

#[Object]
impl ContextFields {
    /// Its `type`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn queue(&self) -> &str {
        &self.0.queue
    }
    async fn pipeline(&self) -> &[String] {
        &self.0.pipeline
    }
    /// Its data as the components left it.
    async fn data(&self) -> Json<Value> {
        Json(Value::Object(self.0.data.clone()))
    }
    /// Its events after `after`, at most `first`.
    #[graphql(complexity = "first as usize * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after: i64,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<ContextEventNode>> {
        let first = self::first(first)?;
        let (_, events) = app(ctx).store().context_events(who(ctx), &self.0.id, after, first).await.map_err(fail)?;
        Ok(events.into_iter().map(ContextEventNode::from).collect())
    }
}

#[derive(SimpleObject)]
#[graphql(name = "ContextEvent")]
pub struct ContextEventNode {
    seq: i64,
    /// `status`, `component`, `progress`, `log`, `chunk`, …
    kind: String,
    data: Json<Value>,
    at: String,
}

impl From<quire_core::ContextEvent> for ContextEventNode {
    fn from(e: quire_core::ContextEvent) -> Self {
        ContextEventNode { seq: e.seq, kind: e.kind, data: Json(e.data), at: time(e.at) }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum Compression {
    #[default]
    Zstd,
    Xz,
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Applies a JSON merge patch to a board configuration (only the settings it names
    /// change; `null` removes one), as `PATCH /api/v1/documents/{id}/content`. Editors.
    async fn patch_board_config(&self, ctx: &Context<'_>, id: String, patch: Json<Value>) -> Result<BoardConfig> {
        let (doc, role) = app(ctx).store().role_on_document(who(ctx), &id).await.map_err(fail)?;
        if role < quire_core::Role::Editor {
            return Err(fail(quire_core::Error::Forbidden("changing a configuration needs the editor role".into())));
        }
        if doc.kind != DocumentKind::BoardConfig {
            return Err(fail(quire_core::Error::invalid("id", format!("{} is not a board configuration", doc.id))));
        }
        let writer = crate::routes::collab::presence_user(app(ctx), who(ctx)).await;
        let kind = quire_collab::kinds::of(doc.kind);
        let patch = patch.0;
        app(ctx).collab().edit(&doc.id, writer, move |d| kind.patch_json(d, &patch)).await.map_err(fail)?;
        board_config(ctx, &id).await
    }

    /// Builds the image a configuration describes (checked first; a configuration with errors
    /// is refused naming its setting), as `POST /api/v1/documents/{id}/builds`. Editors.
    async fn start_build(
        &self,
        ctx: &Context<'_>,
        document: String,
        #[graphql(default = 0)] priority: i32,
        #[graphql(default)] compress: Compression,
    ) -> Result<BuildNode> {
        if !(-100..=100).contains(&priority) {
            return Err(fail(quire_core::Error::invalid("priority", "priority is -100 to 100")));
        }
        let codec = match compress {
            Compression::Zstd => quire_app::builds::Codec::Zstd,
            Compression::Xz => quire_app::builds::Codec::Xz,
        };
        let app = app(ctx);
        let context = app.builds().start(app.engine(), who(ctx), &document, priority, codec).await.map_err(fail)?;
        Ok(BuildNode::new(context))
    }

    /// Stops a pending or running context (a build: its whole process group).
    async fn cancel_context(&self, ctx: &Context<'_>, id: String) -> Result<ContextNode> {
        Ok(ContextNode::new(app(ctx).store().cancel_context(who(ctx), &id).await.map_err(fail)?))
    }
}

/// What a build's log stream sends.
#[derive(Union)]
pub enum LogMessage {
    Lines(LogLines),
    Stages(LogStages),
    End(LogEnd),
}

#[derive(SimpleObject)]
pub struct LogLines {
    /// The last line's number: subscribe again with it as `after` to go on from there.
    last: i64,
    lines: Vec<LogLine>,
}

#[derive(SimpleObject)]
pub struct LogStages {
    stages: Vec<Stage>,
}

#[derive(SimpleObject)]
pub struct LogEnd {
    status: Status,
}

fn log_message(e: LogEvent) -> LogMessage {
    match e {
        LogEvent::Lines(b) => LogMessage::Lines(LogLines {
            last: LogEvent::last(&b),
            lines: b.lines.iter().cloned().map(LogLine::from).collect(),
        }),
        // A few a build: read back from the batch's JSON.
        LogEvent::Stages(b) => LogMessage::Stages(LogStages {
            stages: b.stages_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default(),
        }),
        LogEvent::End(status) => LogMessage::End(LogEnd { status: status.into() }),
    }
}

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// A build's log from line `after` on: what is kept, then live, then its end.
    async fn build_log(
        &self,
        ctx: &Context<'_>,
        build: String,
        #[graphql(default = 0)] after: i64,
    ) -> Result<impl Stream<Item = LogMessage> + use<>> {
        let (app, who) = (app(ctx).clone(), who(ctx).clone());
        crate::routes::builds::visible_build(&app, &who, &build).await.map_err(fail)?;
        Ok(log_stream(app, who, build, after.max(0)).map(log_message))
    }

    /// A build as it changes (status, progress, queue position), until it ends.
    async fn build_progress(&self, ctx: &Context<'_>, build: String) -> Result<impl Stream<Item = BuildNode> + use<>> {
        let (app, who) = (app(ctx).clone(), who(ctx).clone());
        let first = crate::routes::builds::visible_build(&app, &who, &build).await.map_err(fail)?;
        let signal = app.store().job_signal();
        Ok(futures_util::stream::unfold(
            (app, who, build, Some(first), None::<(quire_core::ContextStatus, Option<String>, i32)>, signal, false),
            |(app, who, id, mut next, mut last, mut signal, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let current = match next.take() {
                        Some(c) => c,
                        None => {
                            crate::routes::contexts::until_contexts_change(&mut signal).await;
                            app.store().get_context(&who, &id).await.ok()?
                        }
                    };
                    let seen = (
                        current.status,
                        current.progress.as_ref().map(|p| format!("{}:{}", p.percent, p.message)),
                        current.attempts,
                    );
                    if last.as_ref() != Some(&seen) {
                        last = Some(seen);
                        let ended = current.status.is_terminal();
                        return Some((BuildNode::new(current), (app, who, id, None, last, signal, ended)));
                    }
                }
            },
        ))
    }

    /// A context's events after `after` (its status changes, component steps, progress, log
    /// lines and generated text), until it ends.
    async fn context_events(
        &self,
        ctx: &Context<'_>,
        context: String,
        #[graphql(default = 0)] after: i64,
    ) -> Result<impl Stream<Item = ContextEventNode> + use<>> {
        let (app, who) = (app(ctx).clone(), who(ctx).clone());
        app.store().get_context(&who, &context).await.map_err(fail)?;
        Ok(crate::routes::contexts::context_stream(app, who, context, after.max(0)).map(ContextEventNode::from))
    }
}
