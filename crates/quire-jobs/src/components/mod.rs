//! The components built into the engine and the templates it ships with. Later layers add
//! theirs (`ai_generator`, `image_generator`, `build`, `export`) to the same [`Registry`].

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{Component, ComponentError, ComponentInfo, Registry, Run};

mod transformer;

pub use transformer::{Transformer, outline_of, render_markdown};

/// The clean-up component's name (run nightly by the `cleanup.contexts` schedule).
pub const CLEANUP: &str = "cleanup";

/// The longest retention the clean-up accepts (a century): days are multiplied into
/// milliseconds, which must not overflow.
pub const MAX_RETENTION_DAYS: u64 = 36_500;

/// A registry holding every built-in component.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    r.register(TemplateLoader).register(Transformer).register(Wait).register(Noop).register(Cleanup);
    r
}

/// Loads a template into `data.template`: the one `data.template_id` names (at
/// `data.template_version`, else its latest), or else the newest one for the context's type
/// and `data.tone`, the workspace's own before Quire's built-in ones.
pub struct TemplateLoader;

#[async_trait]
impl Component for TemplateLoader {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "template",
            "Loads a template (by template_id, or by the context's type and tone) into data.template",
            &["template_id", "template_version", "tone"],
            &["template"],
        )
    }

    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        if run.data().get("template").and_then(|t| t.get("sections")).is_some_and(Value::is_array) {
            run.log("info", "data already holds a template; keeping it").await;
            return Ok(Map::new());
        }
        let id = run.str("template_id");
        let version = match run.data().get("template_version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().and_then(|v| i32::try_from(v).ok()).ok_or_else(|| {
                ComponentError::permanent("invalid_input", "template_version must be a whole number")
            })?),
        };
        let ctx = run.context();
        let tone = run.str("tone");
        let found = run.store().find_template(&ctx.workspace_id, id, version, &ctx.kind, tone).await?;
        let Some(t) = found else {
            let what = match (id, tone) {
                (Some(id), _) => {
                    format!("no template '{id}'{}", version.map(|v| format!(" at version {v}")).unwrap_or_default())
                }
                (None, Some(tone)) => format!("no template for type '{}' and tone '{tone}'", ctx.kind),
                (None, None) => format!("no template for type '{}'", ctx.kind),
            };
            return Err(ComponentError::permanent(
                "template_not_found",
                format!("{what}; create one with POST /api/v1/templates"),
            ));
        };
        run.log("info", format!("using template '{}' version {}", t.id, t.version)).await;
        let mut out = Map::new();
        out.insert(
            "template".into(),
            json!({ "id": t.id, "version": t.version, "name": t.name, "sections": t.sections }),
        );
        Ok(out)
    }
}

/// Waits `data.wait_ms` milliseconds (at most an hour), reporting progress: a pause
/// between steps, and a way to watch the engine work.
pub struct Wait;

#[async_trait]
impl Component for Wait {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            "wait",
            "Waits data.wait_ms milliseconds (at most 3600000), reporting progress",
            &["wait_ms"],
            &[],
        )
    }

    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        let ms = match run.data().get("wait_ms") {
            None => 0,
            Some(v) => v
                .as_u64()
                .filter(|ms| *ms <= 3_600_000)
                .ok_or_else(|| ComponentError::permanent("invalid_input", "wait_ms must be 0 to 3600000"))?,
        };
        let step = Duration::from_millis(ms / 10);
        for i in 1..=10 {
            tokio::time::sleep(step).await;
            if run.is_cancelled() {
                break;
            }
            run.progress(i as f32 * 10.0, format!("waited {} of {ms} ms", ms * i / 10)).await;
        }
        Ok(Map::new())
    }
}

/// Does nothing: for measuring the engine itself and checking that workers run.
pub struct Noop;

#[async_trait]
impl Component for Noop {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new("noop", "Does nothing; measures the engine's own cost", &[], &[])
    }

    async fn run(&self, _run: Run) -> Result<Map<String, Value>, ComponentError> {
        Ok(Map::new())
    }
}

/// Deletes contexts that ended more than `data.retention_days` days ago, with their events,
/// and workers silent as long; contexts of the types `data.keep_types` names stay.
pub struct Cleanup;

#[async_trait]
impl Component for Cleanup {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            CLEANUP,
            "Deletes contexts of every workspace that ended more than retention_days days ago, and long-gone workers",
            &["retention_days", "keep_types"],
            &["purged_contexts"],
        )
        .system_only()
    }

    async fn run(&self, run: Run) -> Result<Map<String, Value>, ComponentError> {
        let days = match run.data().get("retention_days") {
            None => 30,
            Some(v) => v.as_u64().filter(|d| (1..=MAX_RETENTION_DAYS).contains(d)).ok_or_else(|| {
                ComponentError::permanent(
                    "invalid_input",
                    format!("retention_days must be a whole number from 1 to {MAX_RETENTION_DAYS}"),
                )
            })?,
        };
        let keep: Vec<String> = run
            .data()
            .get("keep_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).take(32).map(str::to_string).collect())
            .unwrap_or_default();
        let before = run.now_ms().saturating_sub((days * 86_400_000) as i64);
        let purged = run.store().purge_contexts(before, &keep).await?;
        run.log("info", format!("deleted {purged} contexts that ended more than {days} days ago")).await;
        let mut out = Map::new();
        out.insert("purged_contexts".into(), purged.into());
        Ok(out)
    }
}

/// The templates Quire ships with, visible to every workspace.
pub fn builtin_templates() -> Vec<quire_core::Template> {
    let t = |id: &str, name: &str, kind: &str, tone: Option<&str>, description: &str, sections: Value| {
        quire_core::Template {
            id: id.into(),
            workspace_id: None,
            name: name.into(),
            kind: kind.into(),
            tone: tone.map(String::from),
            version: 1,
            description: description.into(),
            sections: sections.as_array().cloned().unwrap_or_default(),
            created_by: "system".into(),
            created_at: quire_core::timestamp_from_ms(0),
        }
    };
    vec![
        t(
            "tmpl_article_technical",
            "Technical article",
            "article",
            Some("technical"),
            "An article for practitioners: context, three main points, takeaways",
            json!([
                {"type": "introduction", "instructions": "Introduce the topic with technical context"},
                {"type": "body", "sections": 3, "instructions": "Cover the main points in detail"},
                {"type": "conclusion", "instructions": "Summarize the key takeaways"}
            ]),
        ),
        t(
            "tmpl_prd_standard",
            "Product requirements",
            "prd",
            None,
            "A complete PRD: why, for whom, what, how it is measured and what could go wrong",
            json!([
                {"type": "problem", "title": "Problem", "instructions": "State the problem, who has it and the evidence"},
                {"type": "goals", "title": "Goals", "instructions": "Measurable outcomes this work must achieve"},
                {"type": "non_goals", "title": "Non-goals", "instructions": "What is deliberately out of scope"},
                {"type": "personas", "title": "Personas", "instructions": "The users affected and what they need"},
                {"type": "user_stories", "title": "User stories", "instructions": "As a …, I want …, so that …; each with acceptance criteria"},
                {"type": "requirements", "title": "Requirements", "instructions": "Functional and non-functional requirements"},
                {"type": "success_metrics", "title": "Success metrics", "instructions": "How success is measured, with targets"},
                {"type": "risks", "title": "Risks", "instructions": "What could go wrong and the mitigations"},
                {"type": "timeline", "title": "Timeline", "instructions": "Milestones and their order"},
                {"type": "open_questions", "title": "Open questions", "instructions": "Decisions still to make, with owners"}
            ]),
        ),
    ]
}
