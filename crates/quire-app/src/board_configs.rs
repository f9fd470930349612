//! Board configurations (`board-config` documents): the schema of an Armbian image build
//! they are checked against, and their checking.
//!
//! The schema is Quire's shipped one (derived from the Armbian snapshot it was built with)
//! unless the instance is pointed at an Armbian checkout (`armbian_dir`), whose schema is
//! derived at start and again when an instance admin asks (after a `git pull`, say). Its
//! version names where it came from — the snapshot's commit, or the checkout's commit and a
//! hash of what was derived — and is its ETag. Results are cached by schema version and the
//! configuration's hash, so a form asking on every keystroke costs a lookup.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use quire_armbian::{Checker, Severity, Tree};
use quire_collab::Collab;
use quire_core::{DocumentKind, Error, Principal, Result};
use quire_store::Store;
use serde::Serialize;
use serde_json::Value;

/// Results kept for configurations asked about again.
pub const CACHE_ENTRIES: usize = 4_096;

/// One schema of a build, ready to serve and to check with.
pub struct BuildSchema {
    /// `82a0c923f9` for the shipped one; `<commit>-<hash>` or `local-<hash>` for a checkout's.
    pub version: String,
    /// The schema as served (JSON).
    pub body: bytes::Bytes,
    /// Where it came from: `shipped` or the checkout's directory.
    pub source: String,
    /// How many boards and releases it offers.
    pub boards: usize,
    pub releases: usize,
    pub checker: Checker,
}

impl BuildSchema {
    fn new(version: String, schema: Value, source: String) -> Result<BuildSchema> {
        let count = |field: &str| schema["properties"][field]["oneOf"].as_array().map_or(0, Vec::len);
        let (boards, releases) = (count("BOARD"), count("RELEASE"));
        let body = bytes::Bytes::from(serde_json::to_vec(&schema).map_err(|e| Error::Internal(e.to_string()))?);
        let checker = Checker::new(schema).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(BuildSchema { version, body, source, boards, releases, checker })
    }

    /// The shipped schema (of the snapshot Quire was built with).
    pub fn shipped() -> BuildSchema {
        let schema = serde_json::from_str(quire_armbian::shipped()).expect("the shipped schema is JSON");
        BuildSchema::new(quire_armbian::SNAPSHOT.into(), schema, "shipped".into()).expect("the shipped schema compiles")
    }

    /// The schema of the checkout at `dir`: its boards and releases as they are now.
    pub fn of_checkout(dir: &Path) -> Result<BuildSchema> {
        let tree = Tree::read(dir).map_err(|e| {
            Error::invalid("armbian_dir", format!("cannot read the Armbian checkout at {}: {e}", dir.display()))
        })?;
        // The version names the commit and what was derived, so a changed tree is a new version.
        let provisional = quire_armbian::schema(&tree, "checkout");
        let hash = quire_assets::objects::sha256_hex(provisional.to_string().as_bytes());
        let version = match git_commit(dir) {
            Some(commit) => format!("{}-{}", &commit[..commit.len().min(10)], &hash[..8]),
            None => format!("local-{}", &hash[..8]),
        };
        BuildSchema::new(version.clone(), quire_armbian::schema(&tree, &version), dir.display().to_string())
    }
}

/// The commit a checkout has out (`.git/HEAD`, directly or through a ref, loose or packed).
fn git_commit(dir: &Path) -> Option<String> {
    let git = dir.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let is_commit = |s: &str| s.len() >= 40 && s.chars().all(|c| c.is_ascii_hexdigit());
    let Some(name) = head.strip_prefix("ref: ") else { return is_commit(head).then(|| head.to_string()) };
    if let Ok(loose) = std::fs::read_to_string(git.join(name)) {
        return is_commit(loose.trim()).then(|| loose.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (commit, r) = l.split_once(' ')?;
        (r == name && is_commit(commit)).then(|| commit.to_string())
    })
}

/// One problem with a configuration, as the API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfigProblem {
    /// JSON pointer to the field (`/BRANCH`); empty for the whole configuration.
    pub path: String,
    /// `required`, `not_allowed`, `unknown`, `type`, `format`, `range`, `interactive`,
    /// `unsafe_value`, `unmaintained`, `invalid`.
    pub code: String,
    pub message: String,
    /// `error` (it cannot be built so) or `warning` (it can, but someone should know).
    pub severity: String,
}

/// What checking one configuration found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Validation {
    /// The schema it was checked against.
    pub schema_version: String,
    /// SHA-256 of the configuration as checked (its canonical JSON).
    pub config_hash: String,
    /// No errors (warnings allowed).
    pub valid: bool,
    pub problems: Vec<ConfigProblem>,
}

#[derive(Default)]
struct Cache {
    results: HashMap<(String, String), Arc<Validation>>,
    order: VecDeque<(String, String)>,
    hits: u64,
    misses: u64,
}

/// The board-configuration service.
pub struct BoardConfigs {
    store: Arc<dyn Store>,
    collab: Arc<Collab>,
    checkout: Option<PathBuf>,
    schema: RwLock<Arc<BuildSchema>>,
    cache: Mutex<Cache>,
}

impl BoardConfigs {
    /// Over the checkout at `checkout` (read now; an unreadable one is an error that names
    /// the setting), or the shipped schema.
    pub fn new(store: Arc<dyn Store>, collab: Arc<Collab>, checkout: Option<PathBuf>) -> Result<Arc<BoardConfigs>> {
        let schema = match &checkout {
            Some(dir) => BuildSchema::of_checkout(dir)?,
            None => BuildSchema::shipped(),
        };
        tracing::info!(version = %schema.version, source = %schema.source, boards = schema.boards, "board build schema");
        Ok(Arc::new(BoardConfigs {
            store,
            collab,
            checkout,
            schema: RwLock::new(Arc::new(schema)),
            cache: Mutex::default(),
        }))
    }

    /// The Armbian checkout builds run in, when the instance has one.
    pub fn checkout(&self) -> Option<&Path> {
        self.checkout.as_deref()
    }

    /// The schema in force.
    pub fn schema(&self) -> Arc<BuildSchema> {
        self.schema.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Derives the schema from the checkout again (instance admins); the shipped schema stays
    /// when the instance has no checkout.
    pub async fn refresh(&self, who: &Principal) -> Result<Arc<BuildSchema>> {
        if !who.is_superuser() {
            return Err(Error::Forbidden("reading the Armbian checkout again is for instance admins".into()));
        }
        let Some(dir) = self.checkout.clone() else { return Ok(self.schema()) };
        let schema = tokio::task::spawn_blocking(move || BuildSchema::of_checkout(&dir))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let schema = Arc::new(schema);
        *self.schema.write().unwrap_or_else(|e| e.into_inner()) = schema.clone();
        tracing::info!(version = %schema.version, boards = schema.boards, "board build schema derived again");
        Ok(schema)
    }

    /// Checks a configuration against the schema in force (cached by schema version and
    /// configuration hash). Its files, if any, are not the schema's business.
    pub fn validate(&self, config: &Value) -> Arc<Validation> {
        let config = &quire_collab::build_config::settings(config);
        let schema = self.schema();
        // serde_json's maps are ordered by key, so equal configurations hash alike.
        let hash = quire_assets::objects::sha256_hex(config.to_string().as_bytes());
        let key = (schema.version.clone(), hash);
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = cache.results.get(&key).cloned() {
                cache.hits += 1;
                return found;
            }
            cache.misses += 1;
        }
        let problems: Vec<ConfigProblem> = schema
            .checker
            .check(config)
            .into_iter()
            .map(|p| ConfigProblem {
                path: p.path,
                code: p.code.into(),
                message: p.message,
                severity: match p.severity {
                    Severity::Error => "error".into(),
                    Severity::Warning => "warning".into(),
                },
            })
            .collect();
        let result = Arc::new(Validation {
            schema_version: key.0.clone(),
            config_hash: key.1.clone(),
            valid: problems.iter().all(|p| p.severity != "error"),
            problems,
        });
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.results.insert(key.clone(), result.clone()).is_none() {
            cache.order.push_back(key);
        }
        while cache.order.len() > CACHE_ENTRIES {
            if let Some(old) = cache.order.pop_front() {
                cache.results.remove(&old);
            }
        }
        result
    }

    /// Checks the configuration a document holds now.
    pub async fn validate_document(&self, who: &Principal, id: &str) -> Result<Arc<Validation>> {
        let (doc, _) = self.store.role_on_document(who, id).await?;
        if doc.kind != DocumentKind::BoardConfig {
            return Err(Error::invalid(
                "id",
                format!("{} is a {}, not a board configuration", doc.id, doc.kind.as_str()),
            ));
        }
        let kind = quire_collab::kinds::of(doc.kind);
        let config = self.collab.read(&doc.id, |d| kind.read_json(d)).await?;
        Ok(self.validate(&config))
    }

    /// Cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        (cache.hits, cache.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkouts_commit_is_read_loose_packed_or_detached() {
        let dir = std::env::temp_dir().join(format!("quire-git-{}", std::process::id()));
        let git = dir.join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        let commit = "82a0c923f9".repeat(4);
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("packed-refs"), format!("# pack-refs\n{commit} refs/heads/main\n")).unwrap();
        assert_eq!(git_commit(&dir).as_deref(), Some(commit.as_str()));
        let newer = "a".repeat(40);
        std::fs::write(git.join("refs/heads/main"), format!("{newer}\n")).unwrap();
        assert_eq!(git_commit(&dir).as_deref(), Some(newer.as_str()));
        std::fs::write(git.join("HEAD"), format!("{commit}\n")).unwrap();
        assert_eq!(git_commit(&dir).as_deref(), Some(commit.as_str()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(git_commit(&dir), None);
    }
}
