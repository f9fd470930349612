//! Version history: every significant change to a document becomes a numbered version, a
//! line of its changelog and a commit in its workspace's git repository.
//!
//! Edits reach `History` as they are stored (it is the collaboration engine's
//! `ChangeObserver`); 500 ms after a document's last edit (the debounce), it submits a
//! `version` context on the `history` queue, which runs one at a time across every worker
//! of the cluster — the one writer of every repository. The `version` component renders the
//! document to its file (Markdown for a PRD, JSON otherwise), judges the change against the
//! last version (`quire_history::judge`), records the version with its outbox event, commits
//! it, and compresses the contents of versions past the archive limit. The database holds
//! every version's content, so a lost repository is rebuilt from it (`quire history
//! rebuild`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quire_core::{
    Document, DocumentKind, DocumentVersion, Error, NewContext, NewVersion, PresenceUser, Principal, Result,
};
use quire_history::remote::Remote;
use quire_history::repo::{Commit, Person, Repo};
use quire_history::{Format, Semver, Thresholds, judge};
use quire_jobs::{Component, ComponentError, ComponentInfo, Run};
use quire_store::Store;
use serde_json::{Map, Value, json};

/// The queue version contexts run on, one at a time.
pub const QUEUE: &str = "history";
/// Instance settings: a workspace's remote (sealed: it holds credentials), and how its last
/// push went.
const REMOTE_PREFIX: &str = "history.remote.";
const PUSH_PREFIX: &str = "history.push.";

/// Version history's settings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Where the workspaces' repositories live (`<dir>/<workspace id>.git`).
    pub dir: PathBuf,
    /// How long after a document's last edit its version is made.
    pub debounce: Duration,
    /// Versions per document kept whole; older ones are compressed (still read and diffed).
    pub keep: i64,
    pub thresholds: Thresholds,
    /// Which addresses pushes to `http(s)://` remotes may reach (the instance's outbound
    /// policy, `--outbound-allow`).
    pub outbound: quire_net::Outbound,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            dir: std::env::temp_dir().join("quire-history"),
            debounce: Duration::from_millis(500),
            keep: 50,
            thresholds: Thresholds::default(),
            outbound: quire_net::Outbound::public_only(),
        }
    }
}

/// A document's file format.
pub fn format_of(kind: DocumentKind) -> Format {
    if quire_collab::kinds::of(kind).markdown() { Format::Markdown } else { Format::Json }
}

/// A document's content as its file.
pub fn render(kind: DocumentKind, content: &Value) -> String {
    quire_collab::kinds::of(kind).to_file(content)
}

/// Edits waiting for their debounce: made on any process (relayed ones reset the debounce
/// too, so a version waits for the whole cluster to settle), with their authors.
struct Pending {
    last: Instant,
    authors: BTreeSet<String>,
    /// Whether an edit was stored by this process: only then does this process ask for the
    /// version (every process that stored one does; the first to run makes it, carrying
    /// every author, and the others find nothing new).
    here: bool,
}

pub struct History {
    store: Arc<dyn Store>,
    collab: Arc<quire_collab::Collab>,
    config: HistoryConfig,
    limits: quire_core::JobLimits,
    keyring: Arc<quire_auth::Keyring>,
    pending: Mutex<HashMap<String, Pending>>,
    /// One writer per repository within this process (the `history` queue makes it one
    /// across processes).
    repos: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    me: Weak<History>,
}

impl History {
    pub fn new(
        store: Arc<dyn Store>,
        collab: Arc<quire_collab::Collab>,
        config: HistoryConfig,
        limits: quire_core::JobLimits,
        keyring: Arc<quire_auth::Keyring>,
    ) -> Arc<History> {
        Arc::new_cyclic(|me| History {
            store,
            collab,
            config,
            limits,
            keyring,
            pending: Mutex::new(HashMap::new()),
            repos: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// The service for a command-line tool (no server, no debounce): over `store`, reading
    /// documents through rooms of its own.
    pub fn for_tools(
        store: Arc<dyn Store>,
        keyring: Arc<quire_auth::Keyring>,
        collab: quire_collab::CollabConfig,
        config: HistoryConfig,
        limits: quire_core::JobLimits,
    ) -> Arc<History> {
        let collab = quire_collab::Collab::new(store.clone(), collab);
        History::new(store, collab, config, limits, keyring)
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Where a workspace's repository lives.
    pub fn repo_path(&self, workspace_id: &str) -> PathBuf {
        self.config.dir.join(format!("{workspace_id}.git"))
    }

    /// The path of a document's file in its repository.
    pub fn file_of(document_id: &str, format: Format) -> String {
        format!("documents/{document_id}.{}", format.extension())
    }

    /// The document's current content as its file.
    pub async fn current(&self, doc: &Document) -> Result<String> {
        let kind = doc.kind;
        let json = self.collab.read(&doc.id, |d| quire_collab::content::read_json(d, kind)).await?;
        Ok(render(kind, &json))
    }

    /// Waits out the debounce, then asks for the document's version.
    async fn settle(self: Arc<Self>, document_id: String) {
        loop {
            let due = {
                let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                match pending.get(&document_id) {
                    Some(p) => p.last + self.config.debounce,
                    None => return,
                }
            };
            if Instant::now() < due {
                tokio::time::sleep_until(due.into()).await;
                continue;
            }
            let settled = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                match pending.get(&document_id) {
                    Some(p) if p.last + self.config.debounce <= Instant::now() => pending.remove(&document_id),
                    _ => continue,
                }
            };
            let Some(settled) = settled.filter(|p| p.here) else { return };
            if let Err(e) = self.request(&document_id, settled.authors).await {
                tracing::warn!(document = %document_id, error = %e, "could not ask for a version");
            }
            return;
        }
    }

    /// Submits the `version` context of a document.
    async fn request(&self, document_id: &str, authors: BTreeSet<String>) -> Result<()> {
        let doc = self.store.get_document(&Principal::System, document_id, false).await?;
        let mut data = Map::new();
        data.insert("document_id".into(), document_id.into());
        data.insert("authors".into(), json!(authors));
        let mut ctx = NewContext::new("history", &["version"], data);
        ctx.queue = Some(QUEUE.into());
        ctx.max_attempts = Some(10);
        self.store
            .submit_contexts(&Principal::System, &doc.workspace_id, vec![ctx], &self.limits, quire_core::now_ms())
            .await?;
        Ok(())
    }

    /// Makes the document's next version if it changed enough since the last; `message`
    /// replaces the judged one (a restore). `None` when the change is not worth a version.
    pub async fn version(
        &self,
        document_id: &str,
        author_ids: &[String],
        message: Option<String>,
    ) -> Result<Option<DocumentVersion>> {
        let doc = match self.store.get_document(&Principal::System, document_id, false).await {
            Ok(d) => d,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let format = format_of(doc.kind);
        let text = self.current(&doc).await?;
        let last = self.store.latest_version(&doc.id).await?;
        let Some(judged) = judge(format, last.as_ref().map(|(_, c)| c.as_str()), &text, &self.config.thresholds) else {
            return Ok(None);
        };
        let number = match &last {
            Some((v, _)) => v.version.parse::<Semver>().unwrap_or(Semver::FIRST).bump(judged.bump),
            None => Semver::FIRST,
        };
        let mut authors = Vec::new();
        for id in author_ids {
            let person = match self.store.user_by_id(id).await? {
                Some(u) => json!({ "id": u.id, "name": u.name, "email": u.email }),
                None => json!({ "id": id, "name": id, "email": "" }),
            };
            authors.push(person);
        }
        let new = NewVersion {
            document_id: doc.id.clone(),
            workspace_id: doc.workspace_id.clone(),
            version: number.to_string(),
            bump: serde_json::to_value(judged.bump).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            message: message.unwrap_or(judged.message),
            authors: Value::Array(authors),
            format: format.extension().into(),
            content: text,
        };
        let mut version = self.store.add_version(&new).await?;
        // Older contents are compressed before the commit is noted, so that a committed
        // version's neighbours are already as they stay.
        self.store.archive_versions(&doc.id, self.config.keep).await?;
        // Versions recorded but not committed (a writer stopped between the two) go first, so
        // the repository keeps their order.
        for (v, content) in self.store.uncommitted_versions(&doc.workspace_id, 1000).await? {
            let title = if v.document_id == doc.id { doc.title.clone() } else { v.document_id.clone() };
            let hash = self.commit(&v, &content, &title).await?;
            if v.document_id == version.document_id && v.seq == version.seq {
                version.commit = Some(hash);
            }
        }
        if self.remote(&doc.workspace_id).await?.is_some() {
            self.request_push(&doc.workspace_id).await?;
        }
        Ok(Some(version))
    }

    /// A setting of the history's, opened if it is sealed (the remote always is; `quire keys
    /// rotate` seals the others too).
    async fn setting(&self, slot: &str) -> Result<Option<String>> {
        self.store.setting(slot).await?.map(|v| self.keyring.open_or_plain(slot, &v)).transpose()
    }

    /// The remote a workspace's repository is pushed to, if any, with its credentials.
    pub async fn remote(&self, workspace_id: &str) -> Result<Option<Remote>> {
        let slot = format!("{REMOTE_PREFIX}{workspace_id}");
        let Some(value) = self.setting(&slot).await? else { return Ok(None) };
        // A remote set before remotes held credentials is its bare URL.
        let remote = serde_json::from_str(&value).unwrap_or(Remote { url: value, credentials: None });
        Ok(Some(remote))
    }

    /// Sets (or, with `None`, removes) the remote a workspace's repository is pushed to,
    /// sealed with the instance's secret keys, and asks for a push.
    pub async fn set_remote(&self, workspace_id: &str, remote: Option<&Remote>) -> Result<()> {
        let slot = format!("{REMOTE_PREFIX}{workspace_id}");
        match remote {
            None => {
                self.store.delete_setting(&slot).await?;
                self.store.delete_setting(&format!("{PUSH_PREFIX}{workspace_id}")).await?;
            }
            Some(remote) => {
                let json = serde_json::to_string(remote).map_err(|e| Error::Internal(e.to_string()))?;
                self.store.put_setting(&slot, &self.keyring.seal(&slot, &json)).await?;
                self.request_push(workspace_id).await?;
            }
        }
        Ok(())
    }

    /// The last push of a workspace's repository: `{ok, error, at, remote}`.
    pub async fn push_state(&self, workspace_id: &str) -> Result<Option<Value>> {
        let state = self.setting(&format!("{PUSH_PREFIX}{workspace_id}")).await?;
        Ok(state.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Every workspace whose last push failed, with its error.
    pub async fn failing_pushes(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (key, value) in self.store.settings().await? {
            if let Some(ws) = key.strip_prefix(PUSH_PREFIX) {
                let state: Value = serde_json::from_str(&self.keyring.open_or_plain(&key, &value)?).unwrap_or_default();
                if state["ok"] == false {
                    out.push((ws.to_string(), state["error"].as_str().unwrap_or_default().to_string()));
                }
            }
        }
        Ok(out)
    }

    /// Asks for a push of the workspace's repository (on the history queue, so never at the
    /// same time as a commit; retried with backoff while it fails).
    async fn request_push(&self, workspace_id: &str) -> Result<()> {
        let mut data = Map::new();
        data.insert("workspace_id".into(), workspace_id.into());
        let mut ctx = NewContext::new("history", &["push"], data);
        ctx.queue = Some(QUEUE.into());
        ctx.max_attempts = Some(20);
        self.store
            .submit_contexts(&Principal::System, workspace_id, vec![ctx], &self.limits, quire_core::now_ms())
            .await?;
        Ok(())
    }

    /// Pushes the workspace's repository to its remote and records how it went.
    pub async fn push(&self, workspace_id: &str) -> Result<()> {
        let Some(remote) = self.remote(workspace_id).await? else { return Ok(()) };
        let url = remote.url.clone();
        let path = self.repo_path(workspace_id);
        if !self.has_repo(workspace_id) {
            return Ok(()); // nothing committed yet
        }
        let lock =
            self.repos.lock().unwrap_or_else(|e| e.into_inner()).entry(workspace_id.to_string()).or_default().clone();
        let outbound = self.config.outbound.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            Repo::open_or_init(&path)?.push(&remote.url, remote.credentials.as_ref(), &outbound)
        })
        .await
        .map_err(|e| Error::Internal(format!("the history writer stopped: {e}")))?;
        let state = match &result {
            Ok(()) => json!({ "ok": true, "remote": url, "at": quire_core::now_ms() }),
            Err(e) => json!({ "ok": false, "remote": url, "at": quire_core::now_ms(), "error": e.to_string() }),
        };
        self.store.put_setting(&format!("{PUSH_PREFIX}{workspace_id}"), &state.to_string()).await?;
        result.map_err(|e| Error::Unavailable(format!("pushing to {url}: {e}")))
    }

    /// Commits one recorded version and notes its commit; the hash.
    async fn commit(&self, v: &DocumentVersion, content: &str, title: &str) -> Result<String> {
        let path = self.repo_path(&v.workspace_id);
        let lock =
            self.repos.lock().unwrap_or_else(|e| e.into_inner()).entry(v.workspace_id.clone()).or_default().clone();
        let format = if v.format == "md" { Format::Markdown } else { Format::Json };
        let file = History::file_of(&v.document_id, format);
        let authors: Vec<Person> = v
            .authors
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| Person {
                        name: p["name"].as_str().unwrap_or_default().to_string(),
                        email: p["email"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message =
            format!("{title} {}: {}\n\nDocument: {}\nVersion: {}\n", v.version, v.message, v.document_id, v.version);
        let content = content.to_string();
        let at_ms = quire_core::ms_of(&v.created_at);
        let hash = tokio::task::spawn_blocking(move || {
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            let repo = Repo::open_or_init(&path)?;
            repo.commit(&Commit {
                path: &file,
                content: content.as_bytes(),
                authors: &authors,
                at_ms,
                message: &message,
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("the history writer stopped: {e}")))?
        .map_err(|e| Error::Unavailable(e.to_string()))?;
        self.store.set_version_commit(&v.document_id, v.seq, &hash).await?;
        Ok(hash)
    }

    /// Rebuilds a workspace's repository from the versions in the database (when it was
    /// lost): the old one, if any, is set aside first. How many versions it committed.
    pub async fn rebuild(&self, workspace_id: &str) -> Result<usize> {
        let path = self.repo_path(workspace_id);
        if path.exists() {
            let aside = path.with_extension(format!("git.lost-{}", quire_core::now_ms()));
            std::fs::rename(&path, &aside)
                .map_err(|e| Error::Unavailable(format!("cannot set {} aside: {e}", path.display())))?;
        }
        let mut after = None;
        let mut n = 0;
        let mut titles: HashMap<String, String> = HashMap::new();
        loop {
            let page = self.store.versions_in_order(workspace_id, after.clone(), 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some((quire_core::ms_of(&last.created_at), last.document_id.clone(), last.seq));
            for (v, content) in &page {
                let title = match titles.get(&v.document_id) {
                    Some(t) => t.clone(),
                    None => {
                        let t = self
                            .store
                            .get_document(&Principal::System, &v.document_id, true)
                            .await
                            .map(|d| d.title)
                            .unwrap_or_else(|_| v.document_id.clone());
                        titles.insert(v.document_id.clone(), t.clone());
                        t
                    }
                };
                self.commit(v, content, &title).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether a repository exists for the workspace.
    pub fn has_repo(&self, workspace_id: &str) -> bool {
        Path::new(&self.repo_path(workspace_id)).join("HEAD").exists()
    }
}

impl quire_collab::ChangeObserver for History {
    fn changed(&self, document_id: &str, by: &PresenceUser, here: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match pending.get_mut(document_id) {
            Some(p) => {
                p.last = now;
                p.authors.insert(by.id.clone());
                p.here |= here;
            }
            None => {
                let authors = BTreeSet::from([by.id.clone()]);
                pending.insert(document_id.to_string(), Pending { last: now, authors, here });
                if let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) {
                    rt.spawn(me.settle(document_id.to_string()));
                }
            }
        }
    }
}

/// `version`: makes a document's next version from what changed since its last.
pub struct VersionComponent {
    pub history: Arc<History>,
}

#[async_trait]
impl Component for VersionComponent {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "version",
            "Makes a document's next version (number, message, commit) if it changed enough since its last",
            &["document_id", "authors"],
            &["version", "message", "commit"],
        )
        .system_only()
    }

    async fn run(&self, run: Run) -> std::result::Result<Map<String, Value>, ComponentError> {
        let Some(id) = run.str("document_id") else {
            return Err(ComponentError::permanent("invalid_input", "data.document_id is missing"));
        };
        let authors: Vec<String> = run
            .data()
            .get("authors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        // A context acts inside its own workspace only.
        let made = match self.history.store.get_document(&Principal::System, id, false).await {
            Ok(doc) if doc.workspace_id != run.context().workspace_id => {
                return Err(ComponentError::permanent(
                    "invalid_input",
                    "the document is not in this context's workspace",
                ));
            }
            Ok(_) => self.history.version(id, &authors, None).await?,
            // Deleted since: nothing to version.
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mut out = Map::new();
        match made {
            Some(v) => {
                run.log("info", format!("version {}: {}", v.version, v.message)).await;
                out.insert("version".into(), v.version.into());
                out.insert("message".into(), v.message.into());
                out.insert("commit".into(), v.commit.map_or(Value::Null, Value::String));
            }
            None => {
                run.log("info", "no change worth a version").await;
                out.insert("version".into(), Value::Null);
            }
        }
        Ok(out)
    }
}

/// `push`: pushes a workspace's repository to its remote; retried while it fails.
pub struct PushComponent {
    pub history: Arc<History>,
}

#[async_trait]
impl Component for PushComponent {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("push", "Pushes the context's workspace's history repository to its remote", &[], &[])
            .system_only()
    }

    async fn run(&self, run: Run) -> std::result::Result<Map<String, Value>, ComponentError> {
        // The context's own workspace, whatever its data says.
        let ws = run.context().workspace_id.as_str();
        self.history.push(ws).await.map_err(|e| ComponentError::retryable("push_failed", e.to_string()))?;
        Ok(Map::new())
    }
}
