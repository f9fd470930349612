//! Board builds: a board configuration checked, snapshotted and queued on the `builds`
//! queue, and the `armbian_build` component a worker runs it with — Armbian's own
//! `./compile.sh build KEY=value…` in the instance's checkout, in a process group of its own
//! under a time limit, every line it prints kept in numbered chunks and handed live to
//! whoever follows the build on this process, its alerts read as stages and progress, and
//! its images checked against their `.sha` and kept in the asset store.
//!
//! One build runs per checkout per process (Armbian builds in its checkout's `output/`); the
//! `builds` queue's cluster-wide limit says how many run across the cluster. A cancelled
//! build's future is dropped by the engine, and with it the process group; a worker that died
//! leaves its group's id in the checkout, and the next build there stops that group first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use quire_armbian::log::Stages;
use quire_core::{Context, ContextQuery, ContextStatus, DocumentKind, Error, NewContext, Principal, Result, Role};
use quire_jobs::{Component, ComponentError, ComponentInfo, Run};
use quire_store::{LogChunk, Store};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{broadcast, mpsc};

use crate::assets::Assets;
use crate::board_configs::BoardConfigs;

/// The queue builds wait on; limited cluster-wide (`queue_limits`, one by default).
pub const QUEUE: &str = "builds";
pub const COMPONENT: &str = "armbian_build";
/// The type of a build's context.
pub const KIND: &str = "board-build";
/// Longest line kept, in bytes; longer ones are cut with `…`.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Where the checkout keeps the process group of the build running in it.
const PID_FILE: &str = "output/.quire-build.pgid";

#[derive(Debug, Clone)]
pub struct BuildsConfig {
    /// A build running longer is stopped and failed.
    pub time_limit: Duration,
    /// Between asking the process group to stop (SIGTERM) and making it (SIGKILL).
    pub kill_grace: Duration,
    /// Lines are kept (and sent to followers) at least this often while they arrive: the
    /// most a live follower waits for a line, beside the network.
    pub flush_every: Duration,
}

impl Default for BuildsConfig {
    fn default() -> Self {
        BuildsConfig {
            time_limit: Duration::from_secs(6 * 3600),
            kill_grace: Duration::from_secs(10),
            flush_every: Duration::from_millis(25),
        }
    }
}

/// One line of a build's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// Its number, from 1 across the build's attempts.
    pub n: i64,
    /// When it was printed (ms since the epoch).
    pub t: i64,
    /// `out` or `err`.
    pub s: &'static str,
    /// As printed, colours included.
    pub text: String,
}

/// Lines kept together, consecutive, with their JSON as followers are sent it (encoded once
/// for all of them).
#[derive(Debug)]
pub struct Batch {
    pub lines: Vec<LogLine>,
    /// `[[number, time, stream, text], …]`
    pub json: String,
    /// The stages the batch's lines begin, as JSON (`[{name, at, line}, …]`), if any.
    pub stages_json: Option<String>,
}

impl Batch {
    pub fn new(lines: Vec<LogLine>) -> Batch {
        Batch { json: lines_json(&lines), stages_json: stages_json(&lines), lines }
    }
}

/// The stages `lines` begin, as followers are sent them; `None` when they begin none.
pub fn stages_json(lines: &[LogLine]) -> Option<String> {
    let stages: Vec<_> = lines.iter().filter_map(|l| quire_armbian::log::stage_of(l.n, &l.text)).collect();
    (!stages.is_empty()).then(|| json!(stages).to_string())
}

pub type LogBatch = Arc<Batch>;

/// A file name as one URL path segment.
fn percent_encode(name: &str) -> String {
    // RFC 3986's unreserved characters stay as they are.
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

/// Lines as followers are sent them: `[[number, time, "out"|"err", text], …]`.
pub fn lines_json(lines: &[LogLine]) -> String {
    Value::Array(lines.iter().map(|l| json!([l.n, l.t, l.s, l.text])).collect()).to_string()
}

/// Encodes lines as a chunk's body: `[[t, "out"|"err", text], …]`.
fn encode(lines: &[LogLine]) -> String {
    let rows: Vec<Value> = lines.iter().map(|l| json!([l.t, l.s, l.text])).collect();
    Value::Array(rows).to_string()
}

/// The lines of a stored chunk.
pub fn decode(chunk: &LogChunk) -> Vec<LogLine> {
    let rows: Vec<Value> = serde_json::from_str(&chunk.body).unwrap_or_default();
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| LogLine {
            n: chunk.first_line + i as i64,
            t: r[0].as_i64().unwrap_or(0),
            s: if r[1] == "err" { "err" } else { "out" },
            text: r[2].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// The build service.
pub struct Builds {
    store: Arc<dyn Store>,
    collab: Arc<quire_collab::Collab>,
    configs: Arc<BoardConfigs>,
    assets: Arc<Assets>,
    config: BuildsConfig,
    /// Live lines of the builds running on this process, by context.
    live: Mutex<HashMap<String, broadcast::Sender<LogBatch>>>,
    /// One build at a time in the checkout.
    checkout: tokio::sync::Mutex<()>,
}

impl Builds {
    pub fn new(
        store: Arc<dyn Store>,
        collab: Arc<quire_collab::Collab>,
        configs: Arc<BoardConfigs>,
        assets: Arc<Assets>,
        config: BuildsConfig,
    ) -> Arc<Builds> {
        Arc::new(Builds {
            store,
            collab,
            configs,
            assets,
            config,
            live: Mutex::default(),
            checkout: tokio::sync::Mutex::new(()),
        })
    }

    /// Checks a board configuration as it is now, snapshots it (its settings, the schema
    /// version, the document's revision) and queues its build. The error of a configuration
    /// that cannot be built names its first problem's setting (`config.BRANCH`).
    pub async fn start(
        &self,
        engine: &quire_jobs::Engine,
        who: &Principal,
        document_id: &str,
        priority: i32,
        compress: Codec,
    ) -> Result<Context> {
        let (doc, role) = self.store.role_on_document(who, document_id).await?;
        if doc.kind != DocumentKind::BoardConfig {
            return Err(Error::invalid(
                "id",
                format!("{} is a {}; builds are of board configurations", doc.id, doc.kind.as_str()),
            ));
        }
        if role < Role::Editor {
            return Err(Error::Forbidden("starting a build needs the editor role".into()));
        }
        if self.configs.checkout().is_none() {
            return Err(Error::Unavailable(
                "this Quire builds no images: start it with --armbian-dir pointing at an Armbian checkout".into(),
            ));
        }
        let kind = quire_collab::kinds::of(doc.kind);
        let config = self.collab.read(&doc.id, |d| kind.read_json(d)).await?;
        let checked = self.configs.validate(&config);
        let errors: Vec<_> = checked.problems.iter().filter(|p| p.severity == "error").collect();
        if let Some(first) = errors.first() {
            let more = if errors.len() > 1 { format!(" (and {} more)", errors.len() - 1) } else { String::new() };
            return Err(Error::invalid(
                format!("config{}", first.path.replace('/', ".")),
                format!("{}{more}", first.message),
            ));
        }
        // Every file's bytes must be the workspace's own (a merge patch could name any hash).
        for (path, file) in quire_collab::build_config::files(&config) {
            match self.store.get_asset(&doc.workspace_id, &file.sha256).await {
                Ok(_) => {}
                Err(Error::NotFound { .. }) => {
                    return Err(Error::invalid(
                        format!("config.files.{path}"),
                        format!("{path}: its bytes are not in this workspace; upload the file again"),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        let schema = self.configs.schema();
        let arguments =
            schema.checker.build_arguments(&quire_collab::build_config::settings(&config)).unwrap_or_default();
        let mut data = Map::new();
        data.insert("document_id".into(), json!(doc.id));
        data.insert("document_revision".into(), json!(doc.revision));
        data.insert("config".into(), config);
        data.insert("schema_version".into(), json!(checked.schema_version));
        data.insert("arguments".into(), json!(arguments));
        data.insert("requested_by".into(), json!(who.actor()));
        data.insert("compress".into(), json!(compress));
        let new = NewContext {
            queue: Some(QUEUE.into()),
            priority: priority.clamp(-100, 100),
            max_attempts: Some(2),
            ..NewContext::new(KIND, &[COMPONENT], data)
        };
        let mut made = engine.submit(&Principal::System, &doc.workspace_id, vec![new]).await?;
        Ok(made.remove(0).0)
    }

    /// A finished build's artifact by name, to send (the caller checked the build is visible).
    pub fn artifact(&self, context: &Context, name: &str) -> Result<crate::assets::Delivery> {
        let found = context
            .data
            .get("artifacts")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|a| a["name"] == name))
            .ok_or_else(|| Error::not_found("artifact", name))?;
        let media_type = match found["kind"].as_str() {
            Some("image_xz") => "application/x-xz",
            Some("image_zst") => "application/zstd",
            Some("info" | "checksum") => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        };
        Ok(crate::assets::Delivery::of_object(
            self.assets.objects(),
            media_type.into(),
            found["sha256"].as_str().unwrap_or_default().into(),
            found["size"].as_u64().unwrap_or(0),
        ))
    }

    /// What a signed URL of a build's artifact covers.
    fn artifact_subject(build_id: &str, name: &str) -> String {
        format!("build/{build_id}/{name}")
    }

    /// URLs of a finished build's artifacts that work without a token until they expire
    /// (for a device, a CI job or a colleague to fetch), by name; and when they expire.
    pub fn artifact_urls(&self, context: &Context) -> (Map<String, Value>, i64) {
        let mut urls = Map::new();
        let mut expires = 0;
        for a in context.data.get("artifacts").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = a["name"].as_str() else { continue };
            let path = format!("/files/builds/{}/{}", context.id, percent_encode(name));
            let (url, at) = self.assets.sign_url(&path, &Self::artifact_subject(&context.id, name));
            urls.insert(name.to_string(), url.into());
            expires = at;
        }
        (urls, expires)
    }

    /// A build's artifact by signed URL (no token: the signature is the permission).
    pub async fn open_signed_artifact(
        &self,
        build_id: &str,
        name: &str,
        expires: i64,
        signature: &str,
    ) -> Result<crate::assets::Delivery> {
        self.assets.verify_url(&Self::artifact_subject(build_id, name), expires, signature)?;
        let context = self.store.get_context(&Principal::System, build_id).await?;
        if context.kind != KIND {
            return Err(Error::not_found("build", build_id));
        }
        self.artifact(&context, name)
    }

    /// How many builds wait before this one (0: next), while it waits.
    pub async fn queue_position(&self, context: &Context) -> Result<Option<u32>> {
        if !matches!(context.status, ContextStatus::Pending | ContextStatus::Retrying) {
            return Ok(None);
        }
        let limits = quire_core::Limits::default();
        let query = ContextQuery {
            workspace: None,
            status: Some(ContextStatus::Pending),
            kind: Some(KIND.into()),
            document: None,
            page: quire_core::PageRequest::parse(Some("created_at"), "created_at", "type", Some(200), None, &limits)?,
        };
        let waiting = self.store.list_contexts(&Principal::System, &query).await?.items;
        let ahead = waiting
            .iter()
            .filter(|c| {
                c.id != context.id
                    && (c.priority > context.priority
                        || (c.priority == context.priority && c.created_at < context.created_at))
            })
            .count();
        Ok(Some(ahead as u32))
    }

    /// Live lines of a build running on this process (subscribe before reading what is
    /// kept, so that nothing falls between).
    pub fn follow(&self, context_id: &str) -> Option<broadcast::Receiver<LogBatch>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).get(context_id).map(|s| s.subscribe())
    }

    async fn run_build(&self, run: &Run) -> std::result::Result<Map<String, Value>, ComponentError> {
        let Some(dir) = self.configs.checkout().map(Path::to_path_buf) else {
            return Err(ComponentError::permanent(
                "no_checkout",
                "this worker has no Armbian checkout (--armbian-dir); run builds on one that has",
            ));
        };
        let arguments: Vec<String> = run
            .data()
            .get("arguments")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        if arguments.is_empty() {
            return Err(ComponentError::permanent("invalid_input", "data.arguments is missing"));
        }
        let _only = self.checkout.lock().await;
        stop_leftover(&dir);
        let files = run.data().get("config").map(quire_collab::build_config::files).unwrap_or_default();
        let objects = self.assets.objects().clone();
        // Put back when the build ends, however it ends.
        let _laid = crate::userpatches::lay(&dir, &files, |sha| {
            let objects = objects.clone();
            async move { objects.get(&sha).await.map_err(|e| std::io::Error::other(e.to_string())) }
        })
        .await
        .map_err(|e| ComponentError::retryable("userpatches", format!("laying the files into userpatches/: {e}")))?;
        let id = run.context().id.clone();
        let first = self.store.build_log_end(&id).await? + 1;
        let started = SystemTime::now();
        let clock = Instant::now();

        let mut command = tokio::process::Command::new(dir.join("compile.sh"));
        command
            .arg("build")
            .args(&arguments)
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        // The shell dies with the worker; what it started is stopped by the next build.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            ComponentError::permanent("spawn_failed", format!("cannot run {}/compile.sh: {e}", dir.display()))
        })?;
        let group = Group::new(child.id().unwrap_or(0) as i32, &dir, self.config.kill_grace);

        let (tx, rx) = mpsc::channel::<(&'static str, String)>(4096);
        let readers = [
            tokio::spawn(read_lines(child.stdout.take().expect("piped"), "out", tx.clone())),
            tokio::spawn(read_lines(child.stderr.take().expect("piped"), "err", tx)),
        ];
        let (live, _) = broadcast::channel(1024);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), live.clone());
        let _unlist = Unlist { builds: self, id: id.clone() };
        let heading = (first > 1).then(|| format!("— attempt {} —", run.context().attempts));
        let log = self.keep_log(run, &id, first, heading, rx, live);

        let outcome = tokio::time::timeout(self.config.time_limit, async {
            let stages = log.await;
            for r in readers {
                let _ = r.await;
            }
            (child.wait().await, stages)
        })
        .await;
        let ((status, (stages, last_line, last_error)), duration) = match outcome {
            Ok((status, stages)) => ((status, stages), clock.elapsed()),
            Err(_) => {
                drop(group);
                return Err(ComponentError::permanent(
                    "time_limit",
                    format!(
                        "the build ran past its time limit of {} minutes (build_time_limit_mins) and was stopped",
                        self.config.time_limit.as_secs() / 60
                    ),
                ));
            }
        };
        group.finished();
        let status = status.map_err(|e| ComponentError::retryable("wait_failed", e.to_string()))?;
        if !status.success() {
            let code = status.code().map_or("a signal".to_string(), |c| c.to_string());
            let why = last_error.map(|m| format!(": {m}")).unwrap_or_default();
            return Err(ComponentError::permanent("build_failed", format!("./compile.sh exited with {code}{why}")));
        }
        run.progress(99.0, "Checking and keeping the images").await;
        let codec: Codec =
            run.data().get("compress").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
        let artifacts = self.keep_artifacts(run, &dir.join("output/images"), started, codec).await?;
        let mut out = Map::new();
        out.insert("exit_code".into(), json!(0));
        out.insert("duration_ms".into(), json!(duration.as_millis() as u64));
        out.insert("stages".into(), json!(stages.stages));
        out.insert("warnings".into(), json!(stages.warnings));
        out.insert("errors".into(), json!(stages.errors));
        out.insert("log_lines".into(), json!(last_line));
        out.insert("artifacts".into(), json!(artifacts));
        Ok(out)
    }

    /// Numbers the lines as they come, keeps them in chunks, hands them to followers and
    /// reports stages as progress. Answers the stages, the last line's number and the last
    /// error alert.
    async fn keep_log(
        &self,
        run: &Run,
        id: &str,
        first: i64,
        heading: Option<String>,
        mut rx: mpsc::Receiver<(&'static str, String)>,
        live: broadcast::Sender<LogBatch>,
    ) -> (Stages, i64, Option<String>) {
        let mut stages = Stages::default();
        let mut next = first;
        let mut pending: Vec<LogLine> = Vec::new();
        let mut last_error = None;
        let mut reported = 0usize;
        if let Some(h) = heading {
            pending.push(LogLine { n: next, t: quire_core::now_ms(), s: "out", text: h });
            next += 1;
        }
        let mut tick = tokio::time::interval(self.config.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let open = tokio::select! {
                line = rx.recv() => match line {
                    Some((s, text)) => {
                        if let Some(alert) = stages.feed(next, &text)
                            && matches!(alert.level.as_str(), "err" | "error")
                        {
                            last_error = Some(alert.message);
                        }
                        pending.push(LogLine { n: next, t: quire_core::now_ms(), s, text });
                        next += 1;
                        if pending.len() < 2000 { continue; }
                        true
                    }
                    None => false,
                },
                _ = tick.tick() => true,
            };
            if !pending.is_empty() {
                let lines = std::mem::take(&mut pending);
                let chunk = LogChunk { first_line: lines[0].n, line_count: lines.len() as i32, body: encode(&lines) };
                let batch = Arc::new(Batch::new(lines));
                // Kept before it is sent, so a follower who reads the store then listens misses none.
                if let Err(e) = self.store.append_build_log(id, &chunk).await {
                    tracing::warn!(context = %id, error = %e, "keeping build log lines failed");
                }
                let _ = live.send(batch);
            }
            if stages.stages.len() > reported {
                reported = stages.stages.len();
                let stage = &stages.stages[reported - 1];
                run.progress(stages.percent(), stage.name.clone()).await;
            }
            if !open {
                return (stages, next - 1, last_error);
            }
        }
    }

    /// The images this build left (changed since it began), each checked against its `.sha`
    /// where Armbian wrote one, and kept in the asset store with their `.txt` and `.sha`.
    async fn keep_artifacts(
        &self,
        run: &Run,
        images: &Path,
        since: SystemTime,
        codec: Codec,
    ) -> std::result::Result<Vec<Value>, ComponentError> {
        let written = || -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(images) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.metadata().ok().and_then(|m| m.modified().ok()).is_some_and(|t| t >= since))
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && !p.to_string_lossy().ends_with(".part"))
                    .collect(),
                Err(_) => Vec::new(),
            };
            files.sort();
            files
        };
        // An image Armbian left uncompressed is compressed here, with a .sha as Armbian writes.
        let before = written();
        for img in before.iter().filter(|p| p.to_string_lossy().ends_with(".img")) {
            let name = img.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if before.iter().any(|p| {
                p.to_string_lossy().ends_with(&format!("{name}.xz"))
                    || p.to_string_lossy().ends_with(&format!("{name}.zst"))
            }) {
                continue;
            }
            let target = img.with_file_name(format!("{name}.{}", codec.suffix()));
            run.progress(99.0, format!("Compressing {name} with {}", codec.suffix())).await;
            let (src, dst) = (img.clone(), target.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                compress_file(&src, &dst, codec)?;
                let (sha, _) = quire_assets::objects::sha256_file(&dst)?;
                let base = dst.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                std::fs::write(dst.with_file_name(format!("{base}.sha")), format!("{sha} {base}\n"))
            })
            .await
            .map_err(|e| ComponentError::retryable("compress_failed", e.to_string()))?
            .map_err(|e| ComponentError::retryable("compress_failed", format!("compressing {name}: {e}")))?;
        }
        let files = written();
        let mut out = Vec::new();
        for path in &files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let Some(kind) = artifact_kind(&name) else { continue };
            let (sha256, size) = self
                .assets
                .objects()
                .put_file(path)
                .await
                .map_err(|e| ComponentError::retryable("store_failed", format!("keeping {name}: {e}")))?;
            let mut verified = Value::Null;
            if kind.starts_with("image") {
                let sha_file = path.with_file_name(format!("{name}.sha"));
                if let Ok(text) = std::fs::read_to_string(&sha_file) {
                    let expected = text.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
                    if expected != sha256 {
                        return Err(ComponentError::permanent(
                            "checksum_mismatch",
                            format!(
                                "{name} does not match its .sha: the file's SHA-256 is {sha256}, the .sha says {expected}"
                            ),
                        ));
                    }
                    verified = json!(true);
                }
            }
            out.push(json!({"name": name, "kind": kind, "size": size, "sha256": sha256, "verified": verified}));
        }
        Ok(out)
    }
}

/// How an image Armbian left uncompressed is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// `.zst`, level 9 (what Armbian uses on a small builder), every core.
    #[default]
    Zstd,
    /// `.xz`, preset 6 (xz's default), every core.
    Xz,
}

/// zstd's level for images.
pub const ZSTD_LEVEL: i32 = 9;
/// xz's preset for images.
pub const XZ_LEVEL: u32 = 6;

impl Codec {
    pub fn suffix(self) -> &'static str {
        match self {
            Codec::Zstd => "zst",
            Codec::Xz => "xz",
        }
    }
}

/// Compresses `src` into `dst` a part at a time on every core (never the whole file in
/// memory), through a temporary file renamed into place; answers the size written.
pub fn compress_file(src: &Path, dst: &Path, codec: Codec) -> std::io::Result<u64> {
    use std::io::Write;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(src)?);
    let part = dst.with_file_name(format!("{}.part", dst.file_name().and_then(|n| n.to_str()).unwrap_or("compressed")));
    let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&part)?);
    let written = (|| match codec {
        Codec::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            e.multithread(threads)?;
            e.include_checksum(true)?;
            std::io::copy(&mut input, &mut e)?;
            e.finish()?.flush()
        }
        Codec::Xz => {
            let mut e = liblzma::write::XzEncoder::new_parallel(out, XZ_LEVEL);
            std::io::copy(&mut input, &mut e)?;
            e.finish()?.flush()
        }
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, dst)?;
    Ok(std::fs::metadata(dst)?.len())
}

/// What an artifact of `output/images` is, by its name.
pub fn artifact_kind(name: &str) -> Option<&'static str> {
    Some(if name.ends_with(".img") {
        "image"
    } else if name.ends_with(".img.xz") {
        "image_xz"
    } else if name.ends_with(".img.zst") {
        "image_zst"
    } else if name.ends_with(".img.txt") {
        "info"
    } else if name.ends_with(".sha") {
        "checksum"
    } else {
        return None;
    })
}

/// Reads lines (bytes up to `\n`, any encoding) and sends them with their stream's name.
async fn read_lines(pipe: impl AsyncRead + Unpin, stream: &'static str, tx: mpsc::Sender<(&'static str, String)>) {
    let mut reader = BufReader::with_capacity(64 * 1024, pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        if tx.send((stream, text)).await.is_err() {
            return;
        }
    }
}

/// A build's process group: stopped when dropped (cancelled, timed out, the worker lost its
/// lease), SIGTERM then SIGKILL after the grace period; its id kept in the checkout meanwhile.
struct Group {
    pgid: i32,
    file: PathBuf,
    grace: Duration,
    done: bool,
}

impl Group {
    fn new(pgid: i32, dir: &Path, grace: Duration) -> Group {
        let file = dir.join(PID_FILE);
        if let Some(parent) = file.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&file, pgid.to_string());
        Group { pgid, file, grace, done: false }
    }

    /// The command ended by itself: only what it left behind is stopped.
    fn finished(mut self) {
        self.done = true;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        if self.pgid <= 0 {
            return;
        }
        stop_group(self.pgid, if self.done { Duration::ZERO } else { self.grace });
    }
}

/// SIGTERM to the group, then SIGKILL after `grace` (on a thread of its own).
fn stop_group(pgid: i32, grace: Duration) {
    // SAFETY: signalling a process group by id has no memory effects.
    unsafe { libc::killpg(pgid, libc::SIGTERM) };
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    });
}

/// Stops the group of a build a dead worker left running in the checkout.
fn stop_leftover(dir: &Path) {
    let file = dir.join(PID_FILE);
    if let Some(pgid) = std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse::<i32>().ok())
        && pgid > 0
    {
        tracing::warn!(pgid, "stopping what an earlier build left running in the Armbian checkout");
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(file);
}

/// Takes a build off the list of those followed live when its run ends.
struct Unlist<'a> {
    builds: &'a Builds,
    id: String,
}

impl Drop for Unlist<'_> {
    fn drop(&mut self) {
        self.builds.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// The `armbian_build` component.
pub struct BuildComponent {
    pub builds: Arc<Builds>,
}

#[async_trait]
impl Component for BuildComponent {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            COMPONENT,
            "Builds an Armbian image: ./compile.sh build with the configuration's settings, in the instance's checkout",
            &["arguments", "config", "document_id"],
            &["exit_code", "duration_ms", "stages", "warnings", "errors", "log_lines", "artifacts"],
        )
        .system_only()
    }

    async fn run(&self, run: Run) -> std::result::Result<Map<String, Value>, ComponentError> {
        self.builds.run_build(&run).await
    }
}
