//! Contexts: the jobs of Quire's pipeline engine, in the shape of the contexts service.
//!
//! A context is a typed bag of `data` that a pipeline — a named list of components — works
//! on in order. Each component's additions are merged into `data`; `processing` records which
//! components have run and when. The engine (`quire-jobs`) claims contexts with a lease,
//! retries them with backoff and records every status change, progress report and log line
//! as a [`ContextEvent`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{Error, PageRequest, Result};

/// Where a context is in its lifecycle: `pending → processing → completed`, or
/// `processing → failed → retrying → processing`; `cancelled` ends it early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContextStatus {
    /// Waiting for a worker (possibly until `run_at`).
    Pending,
    /// A worker holds it and runs its pipeline.
    Processing,
    Completed,
    /// Attempts exhausted or a permanent error; `POST …/retry` replays it.
    Failed,
    /// Waiting for a worker after a failed attempt (until `run_at`, the backoff).
    Retrying,
    Cancelled,
}

impl ContextStatus {
    pub const ALL: [ContextStatus; 6] = [
        ContextStatus::Pending,
        ContextStatus::Processing,
        ContextStatus::Completed,
        ContextStatus::Failed,
        ContextStatus::Retrying,
        ContextStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContextStatus::Pending => "pending",
            ContextStatus::Processing => "processing",
            ContextStatus::Completed => "completed",
            ContextStatus::Failed => "failed",
            ContextStatus::Retrying => "retrying",
            ContextStatus::Cancelled => "cancelled",
        }
    }

    /// Completed, failed or cancelled: nothing runs it any more unless it is retried.
    pub fn is_terminal(self) -> bool {
        matches!(self, ContextStatus::Completed | ContextStatus::Failed | ContextStatus::Cancelled)
    }
}

impl std::str::FromStr for ContextStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ContextStatus::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::invalid(
                "status",
                format!("unknown status '{s}'; expected pending, processing, completed, failed, retrying or cancelled"),
            )
        })
    }
}

/// What the engine records about a pipeline run (the seed's `processing` object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Processing {
    /// The component running now, or the last one that ran while the context is processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_component: Option<String>,
    /// Components whose additions are in `data`, in pipeline order; a retry resumes after them.
    #[serde(default)]
    pub completed_components: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub start_time: Option<time::OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub end_time: Option<time::OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// The last progress a component reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// 0 to 100.
    pub percent: f32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

/// Why the last attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextError {
    /// A stable code: `component_failed`, `worker_lost`, `unknown_component`, `timeout`, …
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Permanent errors are not retried.
    pub permanent: bool,
    pub attempt: i32,
}

/// A context: one run of a pipeline over its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Context {
    /// `ctx_` followed by a ULID.
    pub id: String,
    pub workspace_id: String,
    /// What the context produces (`article`, `prd`, `moodboard`, …); templates are chosen by it.
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ContextStatus,
    /// Component names, run in order.
    pub pipeline: Vec<String>,
    /// The submitted data plus every completed component's additions.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<Processing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ContextError>,
    /// Workers claim higher priorities first.
    pub priority: i32,
    pub queue: String,
    /// Attempts started so far, and the most allowed before the context fails.
    pub attempts: i32,
    pub max_attempts: i32,
    /// How many times a worker has claimed it (never reset): the fence of a worker's lease.
    #[serde(skip)]
    pub claims: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Earliest time a worker may take it (a delayed context, or a retry's backoff).
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: time::OffsetDateTime,
    /// A cancellation was asked for while a worker runs it; the worker stops and records it.
    pub cancel_requested: bool,
    /// The user or key that submitted it, or `system`.
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// When its result was approved into its document (an AI draft), and by whom.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub approved_at: Option<time::OffsetDateTime>,
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// A context to submit.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContext {
    /// The workspace (id or slug). Left out: an API key's own, or the caller's default (the
    /// first workspace they joined).
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub pipeline: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// -100 to 100; default 0.
    #[serde(default)]
    pub priority: i32,
    /// A repeated submission with the same key returns the context the first one made.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The queue whose workers run it; default `default`.
    #[serde(default)]
    pub queue: Option<String>,
    /// Do not run before this many milliseconds from now.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Attempts before it fails (1 to 25); default 5.
    #[serde(default)]
    pub max_attempts: Option<i32>,
}

impl NewContext {
    /// A context with defaults for everything but its type, pipeline and data.
    pub fn new(kind: impl Into<String>, pipeline: &[&str], data: Map<String, Value>) -> NewContext {
        NewContext {
            workspace: None,
            kind: kind.into(),
            pipeline: pipeline.iter().map(|s| s.to_string()).collect(),
            data,
            priority: 0,
            idempotency_key: None,
            queue: None,
            delay_ms: None,
            max_attempts: None,
        }
    }

    /// Checks sizes and ranges; component names are checked by the engine's registry.
    pub fn validate(&self, limits: &JobLimits) -> Result<()> {
        name_field("type", &self.kind, 64)?;
        if self.pipeline.is_empty() {
            return Err(Error::invalid("pipeline", "name at least one component"));
        }
        if self.pipeline.len() > limits.max_pipeline_components {
            return Err(Error::invalid(
                "pipeline",
                format!("has {} components; at most {}", self.pipeline.len(), limits.max_pipeline_components),
            ));
        }
        for c in &self.pipeline {
            name_field("pipeline", c, 64)?;
        }
        if !(-100..=100).contains(&self.priority) {
            return Err(Error::invalid("priority", format!("is {}; use -100 to 100", self.priority)));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(Error::invalid("idempotency_key", "must be 1 to 255 bytes"));
        }
        if let Some(q) = &self.queue {
            name_field("queue", q, 64)?;
        }
        if let Some(d) = self.delay_ms
            && d > limits.max_delay_ms
        {
            return Err(Error::invalid("delay_ms", format!("is {d}; at most {} (30 days)", limits.max_delay_ms)));
        }
        if let Some(m) = self.max_attempts
            && !(1..=25).contains(&m)
        {
            return Err(Error::invalid("max_attempts", format!("is {m}; use 1 to 25")));
        }
        let size = serde_json::to_string(&self.data).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > limits.max_data_bytes {
            return Err(Error::invalid(
                "data",
                format!("is {size} bytes of JSON; at most {} bytes", limits.max_data_bytes),
            ));
        }
        Ok(())
    }

    /// A stable fingerprint of what was asked, to tell a repeated submission from a
    /// different one reusing its idempotency key (FNV-1a over the canonical JSON).
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([self.kind, self.pipeline, self.data, self.priority, self.queue]).to_string();
        format!("{:016x}", crate::stable_hash(canonical.bytes()))
    }
}

/// FNV-1a over `bytes`: a hash that stays the same across processes, builds and Rust
/// releases (std's hashers promise none of that), for fingerprints and reproducible jitter.
pub fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// `[a-z0-9_.-]`, 1 to `max` bytes: names of types, components and queues.
fn name_field(field: &str, value: &str, max: usize) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("'{value}' is not a name: use 1 to {max} of a-z, 0-9, '_', '-' and '.'")))
    }
}

/// Bounds on what a context may hold.
#[derive(Debug, Clone)]
pub struct JobLimits {
    pub max_pipeline_components: usize,
    /// Largest `data`, submitted or grown by components, in bytes of JSON.
    pub max_data_bytes: usize,
    pub max_delay_ms: u64,
    /// Most contexts in one batch.
    pub max_batch: usize,
    /// Most events (progress, logs, status changes) kept per context; later log lines are dropped.
    pub max_events_per_context: i64,
    /// Longest log line kept, in bytes (longer ones are cut).
    pub max_log_bytes: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_pipeline_components: 32,
            max_data_bytes: 1024 * 1024,
            max_delay_ms: 30 * 24 * 3600 * 1000,
            max_batch: 100,
            max_events_per_context: 10_000,
            max_log_bytes: 4096,
        }
    }
}

/// One entry of a context's event stream: a status change, a component starting or
/// finishing, progress, or a log line. `seq` counts from 1 per context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextEvent {
    pub seq: i64,
    /// `status`, `component`, `progress` or `log`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

/// A validated request for a page of contexts.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextQuery {
    /// Only this workspace's (id or slug); all the caller may see otherwise.
    pub workspace: Option<String>,
    pub status: Option<ContextStatus>,
    pub kind: Option<String>,
    /// Only those submitted with this `data.document_id`.
    pub document: Option<String>,
    pub page: PageRequest,
}

/// How a worker's attempt at a context ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    /// Try again at `run_at` (ms).
    Retry {
        error: ContextError,
        run_at: i64,
    },
    Failed {
        error: ContextError,
    },
    Cancelled,
}

/// A worker process's registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    /// `wrk_` followed by a ULID, new each time a worker starts.
    pub id: String,
    /// `host:pid`.
    pub name: String,
    pub queues: Vec<String>,
    /// Contexts it runs at once.
    pub concurrency: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub heartbeat_at: time::OffsetDateTime,
    /// Heartbeat recent (within three intervals) and not stopped.
    pub alive: bool,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<time::OffsetDateTime>,
    /// The contexts it holds now.
    pub current: Vec<WorkerJob>,
}

/// A context a worker holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerJob {
    pub id: String,
    pub workspace_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: time::OffsetDateTime,
}

/// A versioned template: the structure a `template` component puts into a context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    /// `tmpl_` followed by a ULID; every version of a template shares it. Built-in templates
    /// have readable ids such as `tmpl_article_technical`.
    pub id: String,
    /// `None` for templates built into Quire, which every workspace sees.
    pub workspace_id: Option<String>,
    pub name: String,
    /// The context type it serves.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<String>,
    pub version: i32,
    pub description: String,
    /// The structure: section objects (`type`, `instructions`, …) in order.
    #[schema(value_type = Vec<Object>)]
    pub sections: Vec<Value>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// A template, or a new version of one, to store.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    /// A new version of this template; a new template when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub tone: Option<String>,
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Vec<Object>)]
    pub sections: Vec<Value>,
}

impl NewTemplate {
    pub fn validate(&self) -> Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        name_field("type", &self.kind, 64)?;
        if let Some(t) = &self.tone {
            name_field("tone", t, 64)?;
        }
        if self.description.chars().count() > 2000 {
            return Err(Error::invalid("description", "at most 2000 characters"));
        }
        if self.sections.is_empty() || self.sections.len() > 100 {
            return Err(Error::invalid("sections", "name 1 to 100 sections"));
        }
        for (i, s) in self.sections.iter().enumerate() {
            let Some(kind) = s.get("type").and_then(Value::as_str) else {
                return Err(Error::invalid(format!("sections[{i}]"), "must be an object with a string 'type'"));
            };
            if kind.is_empty() || kind.len() > 100 {
                return Err(Error::invalid(format!("sections[{i}].type"), "must be 1 to 100 bytes"));
            }
        }
        let size = serde_json::to_string(&self.sections).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > 64 * 1024 {
            return Err(Error::invalid("sections", format!("are {size} bytes of JSON; at most 65536")));
        }
        Ok(())
    }
}

/// A cron schedule that submits a context each time it fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Unique; the engine upserts schedules by name at start.
    pub name: String,
    /// Five-field cron in UTC (`0 3 * * *`).
    pub cron: String,
    pub kind: String,
    pub pipeline: Vec<String>,
    pub data: Map<String, Value>,
    pub queue: String,
    /// The next firing, in ms.
    pub next_run_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(pipeline: &[&str]) -> NewContext {
        NewContext::new("article", pipeline, json!({"title": "T"}).as_object().unwrap().clone())
    }

    #[test]
    fn new_contexts_are_validated() {
        let limits = JobLimits::default();
        assert!(new(&["template", "transformer"]).validate(&limits).is_ok());
        assert!(new(&[]).validate(&limits).is_err());
        assert!(new(&["Bad Name"]).validate(&limits).is_err());
        let long: Vec<&str> = vec!["noop"; 33];
        assert!(new(&long).validate(&limits).is_err());
        let mut c = new(&["noop"]);
        c.priority = 101;
        assert!(c.validate(&limits).is_err());
        let mut c = new(&["noop"]);
        c.max_attempts = Some(0);
        assert!(c.validate(&limits).is_err());
        let mut c = new(&["noop"]);
        c.data.insert("blob".into(), json!("x".repeat(limits.max_data_bytes)));
        let err = c.validate(&limits).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "data"), "{err:?}");
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = new(&["noop"]);
        let mut b = new(&["noop"]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.data.insert("x".into(), json!(1));
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = new(&["noop"]);
        c.idempotency_key = Some("k".into());
        assert_eq!(a.fingerprint(), c.fingerprint(), "the key itself is not part of the request");
    }

    #[test]
    fn processing_serialises_in_the_seed_shape() {
        let p = Processing {
            current_component: Some("template".into()),
            completed_components: vec!["template".into()],
            start_time: Some(crate::timestamp_from_ms(1_684_146_660_000)),
            end_time: None,
            duration_ms: None,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"current_component": "template", "completed_components": ["template"], "start_time": "2023-05-15T10:31:00Z"})
        );
    }
}
