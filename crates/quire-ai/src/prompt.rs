//! Prompt templates: minijinja sources with declared variables, a version, and limits. A
//! template is checked when it is defined (it parses, and it uses no name it did not
//! declare) and each rendering is checked (required values given, none too long, choices
//! respected, the prompt within its size), so that a bad template or value is a clear error
//! before any provider is called.
//!
//! A rendering sees the declared variables, `document` (kind, title, section headings),
//! `workspace` (name), `sections` (the outline's taxonomy entries), and `taxonomy.room` /
//! `taxonomy.style` (the entries named by `room_type` / `style` variables).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::taxonomy;
use crate::{ImageRequest, Message, Outline, Section, TextRequest};

/// The most a value may be, whatever a template declares.
pub const MAX_VALUE_CHARS: usize = 20_000;
/// The most a template's sources may be, together.
pub const MAX_TEMPLATE_CHARS: usize = 32_768;
/// The most a rendered prompt may be.
pub const MAX_PROMPT_CHARS: usize = 65_536;
pub const MAX_VARIABLES: usize = 32;
/// Rendering steps allowed (minijinja's fuel): a loop without end stops here.
const FUEL: u64 = 200_000;
/// Names every rendering provides besides the declared variables.
const CONTEXT: &[&str] = &["document", "workspace", "sections", "taxonomy"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Text,
    Image,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    /// The values allowed, when only some are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

fn default_max_chars() -> usize {
    4_000
}

/// A prompt template, as stored and as `GET /api/v1/ai/templates` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// `prd.draft`, `moodboard.image`, or a workspace's own name.
    pub name: String,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    pub output: Output,
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The system message (text templates).
    #[serde(default)]
    pub system: String,
    /// The user message (text) or the image prompt (images).
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    /// The draft's sections, as taxonomy keys (text templates); the quality gate checks the
    /// required ones are present.
    #[serde(default)]
    pub sections: Vec<String>,
}

/// Why a template or a rendering was refused; `code` is the API's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PromptError {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> PromptError {
    PromptError { code, message: message.into() }
}

/// Where a prompt is rendered: the document and workspace it is for, and the sections to
/// write when a pipeline's template gives them (else the prompt template's own).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Surroundings {
    pub document: Option<DocumentContext>,
    pub workspace: Option<String>,
    pub outline: Option<Vec<Section>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DocumentContext {
    pub kind: String,
    pub title: String,
    /// Its headings, in order.
    pub sections: Vec<String>,
}

/// A rendered template: what to send, and what was used to make it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    pub template: String,
    pub version: u32,
    pub output: Output,
    pub system: String,
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    pub sections: Vec<Section>,
    pub values: BTreeMap<String, String>,
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Fuel counts instructions, not bytes: a namespace carried through a loop can double a
    // string on each turn (`ns.s = ns.s ~ ns.s`) until memory runs out. Prompts need no
    // state across a loop's turns.
    env.remove_global("namespace");
    env
}

/// Whether a template's expressions use `*`: with a string or a list it repeats them (a
/// fuzzed template asked for the sections two million times and ran for minutes), and
/// prompts have no arithmetic to do. Text outside `{{ }}` and `{% %}` may use it freely.
fn multiplies(source: &str) -> bool {
    let mut rest = source;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start + 1..];
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        if body[..end].contains('*') {
            return true;
        }
        rest = &body[end..];
    }
    false
}

fn sources(t: &PromptTemplate) -> [(&'static str, &str); 3] {
    [("system", &t.system), ("prompt", &t.prompt), ("negative_prompt", &t.negative_prompt)]
}

impl PromptTemplate {
    /// Checks a template as it is defined.
    pub fn validate(&self) -> Result<(), PromptError> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !name_ok(&self.name) {
            return Err(refuse("invalid_template", "a template's name is 1 to 64 letters, digits, '.', '_' or '-'"));
        }
        if self.prompt.trim().is_empty() {
            return Err(refuse("invalid_template", "the template has no prompt"));
        }
        let size: usize = sources(self).iter().map(|(_, s)| s.len()).sum();
        if size > MAX_TEMPLATE_CHARS {
            return Err(refuse(
                "template_too_large",
                format!("the template is {size} characters; the most is {MAX_TEMPLATE_CHARS}"),
            ));
        }
        if self.variables.len() > MAX_VARIABLES {
            return Err(refuse(
                "invalid_template",
                format!("the template declares {} variables; the most is {MAX_VARIABLES}", self.variables.len()),
            ));
        }
        for (i, v) in self.variables.iter().enumerate() {
            if !v.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || v.name.is_empty()
                || CONTEXT.contains(&v.name.as_str())
            {
                return Err(refuse(
                    "invalid_template",
                    format!("'{}' cannot name a variable (letters, digits and '_'; not {CONTEXT:?})", v.name),
                ));
            }
            if self.variables[..i].iter().any(|o| o.name == v.name) {
                return Err(refuse("invalid_template", format!("variable '{}' is declared twice", v.name)));
            }
            if v.max_chars == 0 || v.max_chars > MAX_VALUE_CHARS {
                return Err(refuse(
                    "invalid_template",
                    format!("variable '{}': max_chars must be 1 to {MAX_VALUE_CHARS}", v.name),
                ));
            }
        }
        for key in &self.sections {
            if taxonomy::prd_section(key).is_none() {
                return Err(refuse(
                    "invalid_template",
                    format!("section '{key}' is not in the taxonomy (GET /api/v1/taxonomy/prd-sections)"),
                ));
            }
        }
        if let Some((field, _)) = sources(self).into_iter().find(|(_, s)| multiplies(s)) {
            return Err(refuse(
                "invalid_template",
                format!("{field}: '*' is not allowed in a template's expressions (it repeats text and lists)"),
            ));
        }
        let env = environment();
        for (field, source) in sources(self) {
            let template = env
                .template_from_str(source)
                .map_err(|e| refuse("invalid_template", format!("{field}: {}", describe(&e))))?;
            let mut unknown: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|n| {
                    !CONTEXT.contains(&n.as_str())
                        && !self.variables.iter().any(|v| &v.name == n)
                        && !env.globals().any(|(g, _)| g == n)
                })
                .collect();
            unknown.sort();
            if !unknown.is_empty() {
                return Err(refuse(
                    "invalid_template",
                    format!("{field} uses undeclared variables: {}", unknown.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Renders with the caller's values, checking them first.
    pub fn render(&self, values: &BTreeMap<String, String>, around: &Surroundings) -> Result<Rendered, PromptError> {
        if let Some(extra) = values.keys().find(|k| !self.variables.iter().any(|v| &v.name == *k)) {
            let declared: Vec<&str> = self.variables.iter().map(|v| v.name.as_str()).collect();
            return Err(refuse(
                "unknown_variable",
                format!("'{extra}' is not a variable of {} v{} (it takes {declared:?})", self.name, self.version),
            ));
        }
        let mut ctx = serde_json::Map::new();
        for v in &self.variables {
            match values.get(&v.name).filter(|s| !s.trim().is_empty()) {
                None if v.required => {
                    return Err(refuse(
                        "missing_variable",
                        format!("'{}' is required by {} v{}", v.name, self.name, self.version),
                    ));
                }
                None => {
                    ctx.insert(v.name.clone(), Value::String(String::new()));
                }
                Some(value) => {
                    let n = value.chars().count();
                    if n > v.max_chars {
                        return Err(refuse(
                            "variable_too_long",
                            format!("'{}' is {n} characters; the most is {}", v.name, v.max_chars),
                        ));
                    }
                    if !v.choices.is_empty() && !v.choices.contains(value) {
                        return Err(refuse(
                            "invalid_choice",
                            format!("'{}' must be one of {:?}, not '{value}'", v.name, v.choices),
                        ));
                    }
                    ctx.insert(v.name.clone(), Value::String(value.clone()));
                }
            }
        }
        let sections: Vec<Section> = match &around.outline {
            Some(outline) => outline.clone(),
            None => self.sections.iter().map(|k| Section::from_key(k)).collect(),
        };
        ctx.insert("sections".into(), json!(sections));
        ctx.insert("document".into(), json!(around.document.clone().unwrap_or_default()));
        ctx.insert("workspace".into(), json!({ "name": around.workspace.clone().unwrap_or_default() }));
        let pick = |var: &str| values.get(var).map(String::as_str).unwrap_or_default();
        ctx.insert(
            "taxonomy".into(),
            json!({ "room": taxonomy::room_type(pick("room_type")), "style": taxonomy::design_style(pick("style")) }),
        );
        let ctx = minijinja::Value::from(minijinja::value::Serde(Value::Object(ctx)));
        let env = environment();
        let mut out = [String::new(), String::new(), String::new()];
        for (slot, (field, source)) in out.iter_mut().zip(sources(self)) {
            let text = env.render_str(source, ctx.clone()).map_err(|e| {
                refuse("template_failed", format!("{} v{} {field}: {}", self.name, self.version, describe(&e)))
            })?;
            if text.len() > MAX_PROMPT_CHARS {
                return Err(refuse(
                    "prompt_too_large",
                    format!("the rendered {field} is {} characters; the most is {MAX_PROMPT_CHARS}", text.len()),
                ));
            }
            *slot = text.trim().to_string();
        }
        let [system, prompt, negative] = out;
        Ok(Rendered {
            template: self.name.clone(),
            version: self.version,
            output: self.output,
            system,
            prompt,
            negative_prompt: Some(negative).filter(|n| !n.is_empty()),
            sections,
            values: values.clone(),
        })
    }
}

/// A minijinja error in one line: what, and where.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e.detail().map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

impl Rendered {
    /// The text request this rendering makes; `request` is the user's own words, for the
    /// outline.
    pub fn text_request(&self, title: Option<String>, request: &str) -> TextRequest {
        let mut messages = Vec::with_capacity(2);
        if !self.system.is_empty() {
            messages.push(Message::system(&self.system));
        }
        messages.push(Message::user(&self.prompt));
        TextRequest {
            messages,
            outline: Some(Outline { title, request: request.to_string(), sections: self.sections.clone() }),
            ..Default::default()
        }
    }

    pub fn image_request(&self, width: u32, height: u32, count: u32, seed: Option<u64>) -> ImageRequest {
        ImageRequest {
            model: None,
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            width,
            height,
            count,
            seed,
            style: self.values.get("style").cloned(),
            palette: Vec::new(),
            init_image: None,
        }
    }
}

/// The templates Quire ships, version 1 each.
pub fn builtin_templates() -> Vec<PromptTemplate> {
    let rooms: Vec<String> = taxonomy::room_types().iter().map(|r| r.key.to_string()).collect();
    let styles: Vec<String> = taxonomy::design_styles().iter().map(|s| s.key.to_string()).collect();
    let var = |name: &str, description: &str, required: bool, max_chars: usize, choices: Vec<String>| Variable {
        name: name.into(),
        description: description.into(),
        required,
        max_chars,
        choices,
    };
    vec![
        PromptTemplate {
            name: "prd.draft".into(),
            version: 1,
            description: "A product requirements document drafted from a request, section by section.".into(),
            output: Output::Text,
            variables: vec![
                var("request", "What the product or feature is, in the user's words.", true, 8_000, vec![]),
                var("title", "The document's title.", false, 200, vec![]),
                var("target_audience", "Who will read the PRD.", false, 500, vec![]),
            ],
            system: "You are a senior product manager{% if workspace.name %} at {{ workspace.name }}{% endif %}. \
                     You write precise, testable product requirements in Markdown. Never invent facts the request \
                     does not support: where information is missing, write it as an open question."
                .into(),
            prompt: PRD_PROMPT.into(),
            negative_prompt: String::new(),
            sections: taxonomy::prd_sections().iter().map(|s| s.key.to_string()).collect(),
        },
        PromptTemplate {
            name: "prd.section".into(),
            version: 1,
            description: "One section of a PRD rewritten or extended as the user asks (\"make the goals measurable\").".into(),
            output: Output::Text,
            variables: vec![
                var("section", "The section's heading.", true, 200, vec![]),
                var("instruction", "What to do with it, in the user's words.", true, 2_000, vec![]),
                var("current", "The section's text now (Markdown).", false, 20_000, vec![]),
            ],
            system: "You are a senior product manager{% if workspace.name %} at {{ workspace.name }}{% endif %}, \
                     editing one section of a product requirements document. You change only what you are asked to, \
                     keep every fact the section states, and never invent facts: where information is missing, \
                     write it as an open question."
                .into(),
            prompt: SECTION_PROMPT.into(),
            negative_prompt: String::new(),
            sections: Vec::new(),
        },
        PromptTemplate {
            name: "content.draft".into(),
            version: 1,
            description: "A piece of writing in the sections a pipeline's template gives (an article, a brief).".into(),
            output: Output::Text,
            variables: vec![
                var("title", "The piece's title.", true, 200, vec![]),
                var("request", "What it is about, in the user's words.", false, 8_000, vec![]),
                var("keywords", "Terms it must cover, separated by commas.", false, 1_000, vec![]),
                var("target_audience", "Who will read it.", false, 500, vec![]),
                var("tone", "How it should sound (technical, friendly, formal…).", false, 64, vec![]),
            ],
            system: "You are a careful writer{% if workspace.name %} for {{ workspace.name }}{% endif %}. You write \
                     clear, accurate Markdown. Never invent facts, figures or quotations: where the request leaves \
                     something open, say what is missing."
                .into(),
            prompt: CONTENT_PROMPT.into(),
            negative_prompt: String::new(),
            sections: Vec::new(),
        },
        PromptTemplate {
            name: "moodboard.image".into(),
            version: 1,
            description: "One moodboard image of a room type in a design style.".into(),
            output: Output::Image,
            variables: vec![
                var("room_type", "A room type from the taxonomy.", true, 64, rooms),
                var("style", "A design style from the taxonomy.", true, 64, styles),
                var("notes", "Anything else the image must show.", false, 1_000, vec![]),
                var("palette", "The colours, in words (the board's palette).", false, 600, vec![]),
            ],
            system: String::new(),
            prompt: "{{ taxonomy.room.prompt }}, {{ taxonomy.style.prompt }}, materials: {{ taxonomy.style.materials | join(', ') }}\
                     {% if palette %}, colour palette: {{ palette }}{% endif %}\
                     {% if notes %}, {{ notes }}{% endif %}, interior design photograph, natural light, high detail"
                .into(),
            negative_prompt: "{{ taxonomy.style.negative_prompt }}, people, text, watermark, blurry, distorted".into(),
            sections: Vec::new(),
        },
    ]
}

const CONTENT_PROMPT: &str = r#"Write {% if tone %}a {{ tone }} piece{% else %}a piece{% endif %} titled "{{ title }}"{% if target_audience %} for {{ target_audience }}{% endif %}.
{% if keywords %}
Cover these terms: {{ keywords }}.
{% endif %}{% if sections %}
Use exactly these sections, each as a level-2 Markdown heading, in this order:
{% for s in sections %}
## {{ s.title }}
{{ s.prompt }}
{% endfor %}{% endif %}{% if request %}
The request:
"""
{{ request }}
"""{% endif %}"#;

const SECTION_PROMPT: &str = r#"In the PRD{% if document.title %} "{{ document.title }}"{% endif %}, rewrite the section "{{ section }}" as asked: {{ instruction }}
{% if document.sections %}
The document's sections are: {{ document.sections | join(", ") }}. Stay within "{{ section }}".
{% endif %}
Answer with the section's new text only, in Markdown, without its heading.
{% if current %}
The section now:
"""
{{ current }}
"""{% else %}
The section is empty now.{% endif %}"#;

const PRD_PROMPT: &str = r#"Write a product requirements document{% if title %} titled "{{ title }}"{% endif %}{% if target_audience %} for {{ target_audience }}{% endif %}.
{% if document.sections %}
The document already has these sections: {{ document.sections | join(", ") }}. Keep their headings.
{% endif %}
Use exactly these sections, each as a level-2 Markdown heading, in this order:
{% for s in sections %}
## {{ s.title }}
{{ s.prompt }}
{% endfor %}
The request:
"""
{{ request }}
""""#;

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn template(name: &str) -> PromptTemplate {
        builtin_templates().into_iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn the_builtin_templates_are_valid_and_render_with_their_context() {
        for t in builtin_templates() {
            t.validate().unwrap_or_else(|e| panic!("{}: {e}", t.name));
        }
        let around = Surroundings {
            document: Some(DocumentContext {
                kind: "prd".into(),
                title: "Sync".into(),
                sections: vec!["Problem".into(), "Notes".into()],
            }),
            workspace: Some("Acme".into()),
            outline: None,
        };
        let r = template("prd.draft").render(&values(&[("request", "Offline sync for field teams")]), &around).unwrap();
        assert!(r.system.starts_with("You are a senior product manager at Acme."), "{}", r.system);
        assert!(r.prompt.contains("## User stories\nWrite user stories as"), "{}", r.prompt);
        assert!(r.prompt.contains("already has these sections: Problem, Notes."), "{}", r.prompt);
        assert!(r.prompt.ends_with("\"\"\"\nOffline sync for field teams\n\"\"\""), "{}", r.prompt);
        let section = template("prd.section")
            .render(
                &values(&[("section", "Goals"), ("instruction", "make them measurable"), ("current", "- Faster sync")]),
                &around,
            )
            .unwrap();
        assert!(
            section
                .prompt
                .starts_with("In the PRD \"Sync\", rewrite the section \"Goals\" as asked: make them measurable"),
            "{}",
            section.prompt
        );
        assert!(section.prompt.contains("Stay within \"Goals\"."), "{}", section.prompt);
        assert!(section.prompt.ends_with("\"\"\"\n- Faster sync\n\"\"\""), "{}", section.prompt);
        assert!(section.sections.is_empty(), "a section is not drafted by outline");
        let req = r.text_request(Some("Sync".into()), "Offline sync for field teams");
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.outline.unwrap().sections.len(), taxonomy::prd_sections().len());

        let img = template("moodboard.image")
            .render(&values(&[("room_type", "bedroom"), ("style", "japandi")]), &Surroundings::default())
            .unwrap();
        assert!(img.prompt.starts_with("a bedroom with a made bed"), "{}", img.prompt);
        assert!(
            img.prompt.contains("japandi interior") && img.prompt.contains("materials: ash, paper, linen, stone"),
            "{}",
            img.prompt
        );
        assert!(img.negative_prompt.as_deref().unwrap().starts_with("clutter, bright colours"));
        assert_eq!(img.image_request(512, 512, 1, None).style.as_deref(), Some("japandi"));
    }

    /// Found by fuzzing: `{{ sections * 2e6 }}` repeated the outline two million times
    /// (minutes of work and gigabytes) within the fuel; a namespace could double a string on
    /// each turn of a loop. Both are refused when the template is defined.
    #[test]
    fn templates_cannot_make_unbounded_text() {
        let with = |prompt: &str| PromptTemplate { prompt: prompt.into(), ..template("content.draft") };
        for bad in ["{{ sections * 2000000 }}", "{% for s in sections * 9 %}x{% endfor %}", "{{ 'x' * 99999999 }}"] {
            let e = with(bad).validate().unwrap_err();
            assert_eq!(e.code, "invalid_template", "{bad}");
            assert!(e.message.contains("'*' is not allowed"), "{bad}: {e}");
        }
        let doubling =
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}";
        assert_eq!(with(doubling).validate().unwrap_err().code, "invalid_template", "no namespace");
        // '*' in the text itself is Markdown, and fine.
        with("Write **bold** points about {{ title }} * and more").validate().unwrap();
    }

    #[test]
    fn a_pipeline_templates_sections_replace_the_prompt_templates_own() {
        let outline = vec![
            Section::of_template("introduction", None, Some("Introduce the topic with technical context")),
            Section::of_template("risks", Some("What could go wrong"), None),
        ];
        let around = Surroundings { outline: Some(outline.clone()), ..Default::default() };
        let vars = values(&[("title", "Microservices"), ("keywords", "gRPC, tracing"), ("tone", "technical")]);
        let r = template("content.draft").render(&vars, &around).unwrap();
        assert!(r.prompt.starts_with("Write a technical piece titled \"Microservices\"."), "{}", r.prompt);
        assert!(r.prompt.contains("Cover these terms: gRPC, tracing."), "{}", r.prompt);
        assert!(
            r.prompt.contains("## Introduction\nIntroduce the topic with technical context\n"),
            "the template's instructions: {}",
            r.prompt
        );
        assert!(
            r.prompt.contains("## What could go wrong\nList risks with their likelihood"),
            "the taxonomy's prompt: {}",
            r.prompt
        );
        assert!(!r.prompt.contains("The request:"), "no request, no quote: {}", r.prompt);
        assert_eq!(r.sections, outline);
        assert!(r.sections.iter().all(|s| s.required), "a template's sections are required");
        let e = template("content.draft").render(&values(&[("tone", "dry")]), &around).unwrap_err();
        assert_eq!(e.code, "missing_variable");
    }

    #[test]
    fn values_are_checked_before_rendering() {
        let t = template("moodboard.image");
        let none = Surroundings::default();
        let code = |v: &[(&str, &str)]| t.render(&values(v), &none).unwrap_err().code;
        assert_eq!(code(&[("style", "japandi")]), "missing_variable");
        assert_eq!(code(&[("room_type", "garage"), ("style", "japandi")]), "invalid_choice");
        assert_eq!(code(&[("room_type", "bedroom"), ("style", "japandi"), ("mood", "x")]), "unknown_variable");
        let long = "x".repeat(1_001);
        assert_eq!(code(&[("room_type", "bedroom"), ("style", "japandi"), ("notes", &long)]), "variable_too_long");
    }

    #[test]
    fn a_template_is_checked_when_defined() {
        let mut t = template("prd.draft");
        t.prompt = "Hello {{ requester }}".into();
        assert_eq!(t.validate().unwrap_err().message, "prompt uses undeclared variables: requester");
        t.prompt = "{% for x in %}".into();
        assert_eq!(t.validate().unwrap_err().code, "invalid_template");
        t.prompt = "x".repeat(MAX_TEMPLATE_CHARS + 1);
        assert_eq!(t.validate().unwrap_err().code, "template_too_large");
        let mut t = template("prd.draft");
        t.sections.push("vibes".into());
        assert!(t.validate().unwrap_err().message.contains("section 'vibes' is not in the taxonomy"));
        let mut t = template("prd.draft");
        t.name = "../etc".into();
        assert_eq!(t.validate().unwrap_err().code, "invalid_template");
    }

    #[test]
    fn rendering_is_bounded() {
        let mut t = template("prd.draft");
        t.prompt = "{% for i in range(100000) %}{{ request }}{% endfor %}".into();
        t.validate().unwrap();
        let e = t.render(&values(&[("request", "abc")]), &Surroundings::default()).unwrap_err();
        assert_eq!(e.code, "template_failed", "{e}");
        t.prompt = "{% for i in range(3000) %}{{ request }}{% endfor %}".into();
        let e = t.render(&values(&[("request", &"y".repeat(100))]), &Surroundings::default()).unwrap_err();
        assert_eq!(e.code, "prompt_too_large", "{e}");
    }
}
