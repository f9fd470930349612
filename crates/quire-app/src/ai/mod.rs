//! The AI service: which provider serves a workspace, and one logged, gated call to it.
//!
//! `quire-builtin` is always there. `local` (models run in this process, `local.rs`) is there
//! when a local model is, and is then the default text provider; otherwise `quire-builtin`
//! is the default. Instance administrators add remote
//! providers (OpenAI-compatible, Automatic1111, ComfyUI) with `PUT /api/v1/ai/providers/{name}`;
//! each is stored as an instance setting `ai.provider.<name>`, sealed with the instance's
//! secret keys (its API key never leaves it), and built once per node. A workspace picks its
//! providers with `PUT /api/v1/workspaces/{ws}/ai` (setting `ai.workspace.<id>`).

pub mod board;
pub mod components;
pub mod local;
pub mod log;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quire_ai::automatic1111::{Automatic1111, Automatic1111Settings};
use quire_ai::builtin::{Builtin, MODEL as BUILTIN};
use quire_ai::comfyui::{ComfyUi, ComfyUiSettings};
use quire_ai::openai::{OpenAi, OpenAiSettings};
use quire_ai::prompt::{DocumentContext, PromptTemplate, builtin_templates};
use quire_ai::{Credentials, EmbeddingProvider, ImageProvider, TextProvider};
use quire_auth::Keyring;
use quire_core::{Error, Result};
use quire_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// A remote provider, as an administrator defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// `openai` (any OpenAI-compatible server), `automatic1111` or `comfyui`.
    pub kind: String,
    pub base_url: String,
    /// The bearer key (`openai`); never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// HTTP basic credentials (`automatic1111 --api-auth`); the password is never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
    /// Tries per call, the first included (1 to 10; 3 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Calls failing in a row that open the provider's circuit (1 to 100; 5 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_after: Option<u32>,
    /// Seconds an open circuit refuses calls before one tries again (1 to 3600; 30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_down_secs: Option<u64>,
}

/// A provider as `GET /api/v1/ai/providers` shows it: what it serves, no secrets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: String,
    pub base_url: Option<String>,
    pub text: bool,
    pub image: bool,
    pub embedding: bool,
    pub api_key_set: bool,
    pub text_model: Option<String>,
    pub image_model: Option<String>,
    pub embedding_model: Option<String>,
    /// How well its chat model drafts, where Quire measured it (the local models it
    /// fetches): the app tells a person before drafting when its drafts often fail the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafting: Option<Drafting>,
}

/// Providers chosen by name for some purposes: the instance's default, or a workspace's own.
/// A purpose left out inherits (a workspace's from the instance's default, the default's
/// from `quire-builtin`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AiChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
}

impl AiChoice {
    fn purposes(&self) -> [(&'static str, &Option<String>); 3] {
        [("text", &self.text), ("image", &self.image), ("embedding", &self.embedding)]
    }

    fn uses(&self, provider: &str) -> bool {
        self.purposes().iter().any(|(_, n)| n.as_deref() == Some(provider))
    }
}

/// The providers a workspace uses, by name, and what it chose itself.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkspaceAi {
    pub text: String,
    pub image: String,
    pub embedding: String,
    /// The workspace's own choice; what it leaves out comes from the instance's default.
    pub chosen: AiChoice,
}

/// A local chat model's drafts, as measured on Quire's 20 fixed requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Drafting {
    pub model: String,
    /// Drafts that passed the quality gate, of `of`.
    pub passed: u32,
    pub of: u32,
    /// Seconds a draft took on a 2-core machine.
    pub seconds_per_draft: f32,
    /// Worth reading as they come, by a person's reading of the drafts (the gate checks
    /// shape, figures and relevance, not sense): when not, the app says so before drafting
    /// and offers the built-in outline and the other providers.
    pub acceptable: bool,
    /// What the reading found.
    pub verdict: String,
}

/// One provider's capabilities.
#[derive(Clone, Default)]
pub struct Built {
    pub name: String,
    pub text: Option<Arc<dyn TextProvider>>,
    pub image: Option<Arc<dyn ImageProvider>>,
    pub embedding: Option<Arc<dyn EmbeddingProvider>>,
}

const PROVIDER_PREFIX: &str = "ai.provider.";
const WORKSPACE_PREFIX: &str = "ai.workspace.";
/// The instance's default choice of providers.
const DEFAULT_SLOT: &str = "ai.default";
/// The most remote providers an instance holds.
pub const MAX_PROVIDERS: usize = 32;

pub struct Ai {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    collab: Arc<quire_collab::Collab>,
    log: Arc<log::Writer>,
    builtin: Built,
    local: Arc<local::Local>,
    /// Built providers by name (a changed setting, on any node, builds anew; an unchanged
    /// one keeps its circuit breaker).
    built: Mutex<HashMap<String, Cached>>,
    /// The settings lately read, by slot: a generation reads two (the workspace's choice,
    /// its provider), so they are kept for `SETTINGS_TTL`.
    settings: Mutex<HashMap<String, Fresh>>,
    /// Choices (the default's, workspaces'), by the sealed setting they were opened from.
    choices: Mutex<HashMap<String, (String, AiChoice)>>,
}

/// How long a setting read is trusted: a change on another node is seen within this; on
/// the node that made it, at once.
pub const SETTINGS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

struct Fresh {
    value: Option<String>,
    read: std::time::Instant,
}

/// A provider built from the sealed setting it was read from.
struct Cached {
    sealed: String,
    spec: ProviderSpec,
    built: Built,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message)
}

impl ProviderSpec {
    fn build(&self, name: &str) -> Result<Built> {
        let err = |e: quire_ai::AiError| invalid("base_url", e.message);
        let credentials = match (&self.api_key, &self.username, &self.password) {
            (Some(key), None, None) => Credentials::Bearer(key.clone()),
            (None, Some(user), Some(password)) => Credentials::Basic { user: user.clone(), password: password.clone() },
            (None, None, None) => Credentials::None,
            _ => return Err(invalid("api_key", "give either api_key, or username and password, not both")),
        };
        let mut guard = quire_ai::resilience::GuardSettings::default();
        let within = |field: &str, v: Option<u64>, lo: u64, hi: u64| match v {
            Some(v) if !(lo..=hi).contains(&v) => Err(invalid(field, format!("must be {lo} to {hi}"))),
            _ => Ok(v),
        };
        if let Some(n) = within("max_attempts", self.max_attempts.map(u64::from), 1, 10)? {
            guard.attempts = n as u32;
        }
        if let Some(n) = within("open_after", self.open_after.map(u64::from), 1, 100)? {
            guard.open_after = n as u32;
        }
        if let Some(s) = within("cool_down_secs", self.cool_down_secs, 1, 3600)? {
            guard.cool_down = std::time::Duration::from_secs(s);
        }
        let mut built = Built { name: name.to_string(), ..Default::default() };
        match self.kind.as_str() {
            "openai" => {
                let mut s = OpenAiSettings::new(name, &self.base_url);
                s.guard = guard;
                s.api_key = self.api_key.clone();
                if let Some(m) = &self.text_model {
                    s.text_model = m.clone();
                }
                if let Some(m) = &self.image_model {
                    s.image_model = m.clone();
                }
                if let Some(m) = &self.embedding_model {
                    s.embedding_model = m.clone();
                }
                let p = Arc::new(OpenAi::new(s).map_err(err)?);
                built.text = Some(p.clone());
                built.image = Some(p.clone());
                built.embedding = Some(p);
            }
            "automatic1111" => {
                let mut s = Automatic1111Settings::new(name, &self.base_url);
                s.credentials = credentials;
                s.guard = guard;
                s.model = self.image_model.clone();
                built.image = Some(Arc::new(Automatic1111::new(s).map_err(err)?));
            }
            "comfyui" => {
                let mut s = ComfyUiSettings::new(name, &self.base_url);
                s.credentials = credentials;
                s.guard = guard;
                if let Some(m) = &self.image_model {
                    s.checkpoint = m.clone();
                }
                built.image = Some(Arc::new(ComfyUi::new(s).map_err(err)?));
            }
            other => {
                return Err(invalid(
                    "kind",
                    format!("'{other}' is not a provider kind; use openai, automatic1111 or comfyui"),
                ));
            }
        }
        Ok(built)
    }

    fn info(&self, name: &str, built: &Built) -> ProviderInfo {
        ProviderInfo {
            name: name.to_string(),
            kind: self.kind.clone(),
            base_url: Some(self.base_url.clone()),
            text: built.text.is_some(),
            image: built.image.is_some(),
            embedding: built.embedding.is_some(),
            api_key_set: self.api_key.is_some() || self.password.is_some(),
            text_model: self.text_model.clone(),
            image_model: self.image_model.clone(),
            embedding_model: self.embedding_model.clone(),
            drafting: None,
        }
    }
}

/// A stored template as the AI layer reads it, named and numbered by its row.
pub fn stored_template(stored: &quire_core::StoredPrompt) -> Result<PromptTemplate> {
    let mut t: PromptTemplate = serde_json::from_value(stored.body.clone())
        .map_err(|e| Error::Internal(format!("prompt template {} v{}: {e}", stored.name, stored.version)))?;
    t.name = stored.name.clone();
    t.version = stored.version.max(0) as u32;
    Ok(t)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name != BUILTIN
        && name != local::LOCAL;
    if ok {
        Ok(())
    } else {
        Err(invalid("name", "a provider's name is 1 to 40 of a-z, 0-9 and '-', and not quire-builtin or local"))
    }
}

impl Ai {
    /// The collaboration service it reads documents through.
    pub fn collab(&self) -> &Arc<quire_collab::Collab> {
        &self.collab
    }

    /// The service over `store`; `keyring` opens the providers' sealed settings, `collab`
    /// reads the documents that enrich prompts, `local` says where local models are.
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        collab: Arc<quire_collab::Collab>,
        local: local::LocalConfig,
    ) -> Ai {
        let b = Arc::new(Builtin);
        let builtin = Built { name: BUILTIN.into(), text: Some(b.clone()), image: Some(b.clone()), embedding: Some(b) };
        Ai {
            log: Arc::new(log::writer(store.clone())),
            store,
            keyring,
            collab,
            builtin,
            local: Arc::new(local::Local::new(local)),
            built: Mutex::new(HashMap::new()),
            settings: Mutex::new(HashMap::new()),
            choices: Mutex::new(HashMap::new()),
        }
    }

    /// An instance setting, read at most once per `SETTINGS_TTL`.
    async fn setting(&self, slot: &str) -> Result<Option<String>> {
        {
            let cache = self.settings.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = cache.get(slot).filter(|f| f.read.elapsed() < SETTINGS_TTL) {
                return Ok(f.value.clone());
            }
        }
        let read = std::time::Instant::now();
        let value = self.store.setting(slot).await?;
        let mut cache = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(slot.to_string(), Fresh { value: value.clone(), read });
        Ok(value)
    }

    /// Writes a setting and forgets what was read of it.
    async fn put_setting(&self, slot: &str, sealed: &str) -> Result<()> {
        self.store.put_setting(slot, sealed).await?;
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).remove(slot);
        Ok(())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A new entry of the interactions log, timed from now.
    pub fn log(&self, entry: quire_core::Interaction) -> log::Log {
        log::Log::start(self.log.clone(), entry)
    }

    /// Stores what the interactions log still holds (when the process stops).
    pub async fn shutdown(&self) {
        self.log.shutdown().await;
    }

    /// The prompt template called `name`, at `version` or its latest: a built-in one, or the
    /// workspace's own. `Ok(Err(message))` says where to look when there is none.
    pub async fn prompt_template(
        &self,
        workspace_id: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<std::result::Result<PromptTemplate, String>> {
        let mut builtin: Vec<PromptTemplate> = builtin_templates().into_iter().filter(|t| t.name == name).collect();
        let found = if builtin.is_empty() {
            let version = version.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
            match self.store.find_prompt(workspace_id, name, version).await? {
                Some(stored) => Some(stored_template(&stored)?),
                None => None,
            }
        } else {
            builtin.sort_by_key(|t| t.version);
            match version {
                Some(v) => builtin.into_iter().find(|t| t.version == v),
                None => builtin.pop(),
            }
        };
        Ok(found.ok_or_else(|| {
            let v = version.map(|v| format!(" version {v}")).unwrap_or_default();
            format!("no prompt template '{name}'{v}; GET /api/v1/ai/templates lists them")
        }))
    }

    /// Every prompt template a workspace sees: the built-in ones, then every version of its
    /// own (each with `source`, and for its own who made it and when).
    pub async fn prompt_templates(&self, who: &quire_core::Principal, workspace: Option<&str>) -> Result<Vec<Value>> {
        let mut out: Vec<Value> = builtin_templates()
            .into_iter()
            .map(|t| {
                let mut v = serde_json::to_value(t).unwrap_or_default();
                v["source"] = "builtin".into();
                v
            })
            .collect();
        if let Some(ws) = workspace {
            for stored in self.store.list_prompts(who, ws).await? {
                let mut v = serde_json::to_value(stored_template(&stored)?).unwrap_or_default();
                v["source"] = "workspace".into();
                v["created_by"] = stored.created_by.into();
                v["created_at"] = serde_json::to_value(stored.created_at.format(&Rfc3339).ok()).unwrap_or_default();
                out.push(v);
            }
        }
        Ok(out)
    }

    /// What a prompt learns of a document: its kind, title and (for a PRD) its headings.
    pub async fn document_context(&self, doc: &quire_core::Document) -> Result<DocumentContext> {
        let kind = doc.kind;
        let json = self.collab.read(&doc.id, |d| quire_collab::content::read_json(d, kind)).await?;
        let sections = if kind == quire_core::DocumentKind::Prd {
            quire_ai::gate::headings(&quire_collab::markdown::to_markdown(&json))
        } else {
            Vec::new()
        };
        Ok(DocumentContext { kind: kind.as_str().to_string(), title: doc.title.clone(), sections })
    }

    /// The provider a sealed setting defines: built once, and again only when the setting
    /// changed (so a call opens no secret and builds nothing).
    fn cached(&self, name: &str, sealed: &str) -> Result<(ProviderSpec, Built)> {
        let mut cache = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(name).filter(|c| c.sealed == sealed) {
            return Ok((c.spec.clone(), c.built.clone()));
        }
        let slot = format!("{PROVIDER_PREFIX}{name}");
        let json = self.keyring.open(&slot, sealed)?;
        let spec: ProviderSpec =
            serde_json::from_str(&json).map_err(|e| Error::Internal(format!("setting {slot}: {e}")))?;
        let built = spec.build(name)?;
        cache.insert(name.to_string(), Cached { sealed: sealed.to_string(), spec: spec.clone(), built: built.clone() });
        Ok((spec, built))
    }

    /// The provider called `name`.
    pub async fn provider(&self, name: &str) -> Result<Built> {
        if name == BUILTIN {
            return Ok(self.builtin.clone());
        }
        if name == local::LOCAL {
            use quire_local::catalog::Kind;
            let (has_text, has_embedding) = (self.local.has(Kind::Text), self.local.has(Kind::Embedding));
            if !has_text && !has_embedding {
                return Err(Error::NotFound { what: "AI provider", id: name.to_string() });
            }
            // Each model is loaded at its first call.
            let mut built = Built { name: name.to_string(), ..Default::default() };
            if has_text {
                built.text = Some(Arc::new(local::LazyText(self.local.clone())));
            }
            if has_embedding {
                built.embedding = Some(Arc::new(local::LazyEmbedding(self.local.clone())));
            }
            return Ok(built);
        }
        let Some(sealed) = self.setting(&format!("{PROVIDER_PREFIX}{name}")).await? else {
            return Err(Error::NotFound { what: "AI provider", id: name.to_string() });
        };
        Ok(self.cached(name, &sealed)?.1)
    }

    /// The circuit of every remote provider this process has built, by name.
    pub fn circuits(&self) -> Vec<(String, quire_ai::resilience::Circuit)> {
        let cache = self.built.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = cache
            .iter()
            .filter_map(|(name, c)| {
                let circuit = c.built.text.as_ref().and_then(|p| p.circuit());
                circuit.or_else(|| c.built.image.as_ref().and_then(|p| p.circuit())).map(|s| (name.clone(), s))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every provider, the built-in one first.
    pub async fn providers(&self) -> Result<Vec<ProviderInfo>> {
        let mut out = vec![ProviderInfo {
            name: BUILTIN.into(),
            kind: "builtin".into(),
            base_url: None,
            text: true,
            image: true,
            embedding: true,
            api_key_set: false,
            text_model: Some(BUILTIN.into()),
            image_model: Some(BUILTIN.into()),
            embedding_model: Some(BUILTIN.into()),
            drafting: None,
        }];
        out.extend(self.local.info());
        for (slot, sealed) in self.store.settings().await? {
            if let Some(name) = slot.strip_prefix(PROVIDER_PREFIX) {
                let (spec, built) = self.cached(name, &sealed)?;
                out.push(spec.info(name, &built));
            }
        }
        Ok(out)
    }

    /// Defines or replaces a provider (checked by building it); its setting is sealed.
    pub async fn put_provider(&self, name: &str, spec: &ProviderSpec) -> Result<ProviderInfo> {
        check_name(name)?;
        let built = spec.build(name)?;
        let slot = format!("{PROVIDER_PREFIX}{name}");
        if self.store.setting(&slot).await?.is_none() {
            let count = self.store.settings().await?.iter().filter(|(k, _)| k.starts_with(PROVIDER_PREFIX)).count();
            if count >= MAX_PROVIDERS {
                return Err(Error::LimitExceeded(format!("an instance holds at most {MAX_PROVIDERS} AI providers")));
            }
        }
        let json = serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?;
        self.put_setting(&slot, &self.keyring.seal(&slot, &json)).await?;
        Ok(spec.info(name, &built))
    }

    /// The choice stored under `slot` (none: an empty one).
    async fn choice(&self, slot: &str) -> Result<AiChoice> {
        let Some(sealed) = self.setting(slot).await? else { return Ok(AiChoice::default()) };
        let mut choices = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, choice)) = choices.get(slot).filter(|(s, _)| *s == sealed) {
            return Ok(choice.clone());
        }
        let json = self.keyring.open(slot, &sealed)?;
        let choice: AiChoice =
            serde_json::from_str(&json).map_err(|e| Error::Internal(format!("setting {slot}: {e}")))?;
        choices.insert(slot.to_string(), (sealed, choice.clone()));
        Ok(choice)
    }

    /// Checks that every provider a choice names exists and serves what it is chosen for,
    /// then stores it sealed under `slot`.
    async fn put_choice(&self, slot: &str, choice: &AiChoice) -> Result<()> {
        for (field, name) in choice.purposes() {
            let Some(name) = name else { continue };
            let built = self
                .provider(name)
                .await
                .map_err(|_| invalid(field, format!("no AI provider '{name}'; GET /api/v1/ai/providers lists them")))?;
            let serves = match field {
                "text" => built.text.is_some(),
                "image" => built.image.is_some(),
                _ => built.embedding.is_some(),
            };
            if !serves {
                return Err(invalid(field, format!("provider '{name}' does not serve {field} generation")));
            }
        }
        let json = serde_json::to_string(choice).map_err(|e| Error::Internal(e.to_string()))?;
        self.put_setting(slot, &self.keyring.seal(slot, &json)).await
    }

    /// The instance's default providers (what workspaces that choose none use).
    pub async fn default_choice(&self) -> Result<AiChoice> {
        self.choice(DEFAULT_SLOT).await
    }

    /// Sets the instance's default providers.
    pub async fn set_default(&self, choice: &AiChoice) -> Result<AiChoice> {
        self.put_choice(DEFAULT_SLOT, choice).await?;
        Ok(choice.clone())
    }

    /// The providers a workspace uses: its own choice, else the instance's default, else
    /// `local` for text and embeddings where a local model of the kind is there, else
    /// `quire-builtin`.
    pub async fn workspace(&self, workspace_id: &str) -> Result<WorkspaceAi> {
        let chosen = self.choice(&format!("{WORKSPACE_PREFIX}{workspace_id}")).await?;
        let default = self.default_choice().await?;
        let pick = |own: &Option<String>, default: &Option<String>, fallback: &str| {
            own.clone().or_else(|| default.clone()).unwrap_or_else(|| fallback.to_string())
        };
        let local_or_builtin = |kind| if self.local.has(kind) { local::LOCAL } else { BUILTIN };
        Ok(WorkspaceAi {
            text: pick(&chosen.text, &default.text, local_or_builtin(quire_local::catalog::Kind::Text)),
            image: pick(&chosen.image, &default.image, BUILTIN),
            embedding: pick(
                &chosen.embedding,
                &default.embedding,
                local_or_builtin(quire_local::catalog::Kind::Embedding),
            ),
            chosen,
        })
    }

    /// Chooses a workspace's providers.
    pub async fn set_workspace(&self, workspace_id: &str, choice: &AiChoice) -> Result<WorkspaceAi> {
        self.put_choice(&format!("{WORKSPACE_PREFIX}{workspace_id}"), choice).await?;
        self.workspace(workspace_id).await
    }

    /// Removes a provider no choice names (`Conflict` naming who still uses it).
    pub async fn delete_provider(&self, name: &str) -> Result<()> {
        let slot = format!("{PROVIDER_PREFIX}{name}");
        let mut users = Vec::new();
        for (key, _) in self.store.settings().await? {
            if key == DEFAULT_SLOT || key.starts_with(WORKSPACE_PREFIX) {
                // Read through, not from the cache: a choice made a moment ago on another
                // process counts.
                self.settings.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                if self.choice(&key).await?.uses(name) {
                    users.push(
                        key.strip_prefix(WORKSPACE_PREFIX)
                            .map_or("the instance's default".into(), |w| format!("workspace {w}")),
                    );
                }
            }
        }
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "AI provider '{name}' is still chosen by {}; choose another there first",
                users.join(", ")
            )));
        }
        if !self.store.delete_setting(&slot).await? {
            return Err(Error::NotFound { what: "AI provider", id: name.to_string() });
        }
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).remove(&slot);
        self.built.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        Ok(())
    }

    /// The provider a workspace uses for one purpose (`pick` reads it from the workspace's
    /// choice), or the one named when the caller picks.
    async fn chosen(&self, workspace_id: &str, named: Option<&str>, pick: fn(WorkspaceAi) -> String) -> Result<Built> {
        let name = match named {
            Some(n) => n.to_string(),
            None => pick(self.workspace(workspace_id).await?),
        };
        self.provider(&name).await
    }

    /// The text provider a workspace uses, or the one named when the caller picks.
    pub async fn text_provider(&self, workspace_id: &str, named: Option<&str>) -> Result<Arc<dyn TextProvider>> {
        let built = self.chosen(workspace_id, named, |w| w.text).await?;
        built.text.ok_or_else(|| invalid("provider", format!("provider '{}' does not generate text", built.name)))
    }

    pub async fn embedding_provider(
        &self,
        workspace_id: &str,
        named: Option<&str>,
    ) -> Result<Arc<dyn EmbeddingProvider>> {
        let built = self.chosen(workspace_id, named, |w| w.embedding).await?;
        built.embedding.ok_or_else(|| invalid("provider", format!("provider '{}' does not embed", built.name)))
    }

    pub async fn image_provider(&self, workspace_id: &str, named: Option<&str>) -> Result<Arc<dyn ImageProvider>> {
        let built = self.chosen(workspace_id, named, |w| w.image).await?;
        built.image.ok_or_else(|| invalid("provider", format!("provider '{}' does not generate images", built.name)))
    }
}
