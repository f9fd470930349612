//! Checking a build configuration against its schema, and against the rules the schema
//! cannot say: every problem names the field it is about (`/BRANCH`), says what is wrong in
//! words a person acts on, and is an error (the image cannot be built so) or a warning (it
//! can, but someone should know). The browser checks the same schema file with AJV; the
//! server's answer is this one.

use serde::Serialize;
use serde_json::{Map, Value};

/// How much a problem matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The image cannot be built with it.
    Error,
    /// It builds, but someone should know.
    Warning,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A JSON pointer to the field (`/BRANCH`); empty for the whole configuration.
    pub path: String,
    /// What kind of problem, for programs: `required`, `not_allowed`, `unknown`, `type`,
    /// `format`, `range`, `interactive`, `unsafe_value`, `unmaintained`.
    pub code: &'static str,
    pub message: String,
    pub severity: Severity,
}

impl Problem {
    fn error(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Problem {
        Problem { path: path.into(), code, message: message.into(), severity: Severity::Error }
    }
}

/// Why a schema could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the build schema is not a valid draft-07 schema: {0}")]
pub struct BadSchema(String);

/// A compiled schema with what its messages need.
pub struct Checker {
    validator: jsonschema::Validator,
    schema: Value,
}

/// Characters Quire passes to Armbian in a value. Armbian reads `KEY=value` arguments into
/// shell variables that its scripts expand, so quotes, `$`, backticks, `;`, `|`, `&`,
/// redirections and line breaks stay out.
fn safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " ._,:/=+@%-".contains(c)
}

impl Checker {
    pub fn new(schema: Value) -> Result<Checker, BadSchema> {
        let validator = jsonschema::draft7::new(&schema).map_err(|e| BadSchema(e.to_string()))?;
        Ok(Checker { validator, schema })
    }

    /// The schema's own description of a field (`title`, or the field's name).
    fn title(&self, field: &str) -> String {
        self.schema["properties"][field]["title"].as_str().unwrap_or(field).to_string()
    }

    /// The `oneOf` entry of a field whose `const` is `value`.
    fn choice(&self, field: &str, value: &str) -> Option<&Value> {
        self.schema["properties"][field]["oneOf"].as_array()?.iter().find(|c| c["const"] == value)
    }

    /// Everything wrong with `config`, errors first, each field once per kind of problem.
    pub fn check(&self, config: &Value) -> Vec<Problem> {
        let mut out: Vec<Problem> = self.validator.iter_errors(config).map(|e| self.explain(config, &e)).collect();
        let Some(fields) = config.as_object() else { return out };
        out.extend(rules(fields));
        out.extend(self.support_warnings(fields));
        // One problem per field and code (a `oneOf` may fail once per branch of an `allOf`).
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert((p.path.clone(), p.code)));
        out.sort_by_key(|p| p.severity != Severity::Error);
        out
    }

    fn explain(&self, config: &Value, e: &jsonschema::ValidationError<'_>) -> Problem {
        use jsonschema::error::ValidationErrorKind as K;
        let path = e.instance_path().as_str().to_string();
        let field = path.strip_prefix('/').unwrap_or(&path).to_string();
        let value = e.instance().as_ref().as_str().map(str::to_string).unwrap_or_else(|| e.instance().to_string());
        let board = config["BOARD"].as_str().unwrap_or("this board");
        match e.kind() {
            K::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let why = match name {
                    "DESKTOP_ENVIRONMENT" => "a desktop image names its desktop environment".to_string(),
                    "FIXED_IMAGE_SIZE" => "an f2fs image needs its size in MiB".to_string(),
                    _ => format!("{} is required", self.title(name)),
                };
                Problem::error(format!("/{name}"), "required", why)
            }
            K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => {
                let what = match field.as_str() {
                    "BOARD" => "a board",
                    "RELEASE" => "a release",
                    _ => "one of the choices",
                };
                Problem::error(path, "unknown", format!("'{value}' is not {what} of this Armbian configuration"))
            }
            K::Enum { .. } if field == "BUILD_DESKTOP" => Problem::error(
                path,
                "not_allowed",
                "a minimal image has no desktop: BUILD_DESKTOP must be no while BUILD_MINIMAL is yes",
            ),
            K::Enum { options } => {
                let list = options.as_array().map(|o| join(o, 12)).unwrap_or_default();
                let message = match field.as_str() {
                    "BRANCH" => format!("{board} does not build the '{value}' kernel branch; it builds {list}"),
                    "RELEASE" => {
                        // The rule's own description says the architecture.
                        let arch = self.rule_description(e).unwrap_or_default();
                        let arch = arch.strip_prefix("The releases built for ").unwrap_or("its architecture");
                        format!("'{value}' is not built for {arch}, the architecture of {board}; choose {list}")
                    }
                    _ => format!("{} is '{value}'; it takes {list}", self.title(&field)),
                };
                Problem::error(path, "not_allowed", message)
            }
            K::Type { .. } => {
                let want = match self.schema["properties"][&field]["type"].as_str() {
                    Some("integer") => "a whole number",
                    Some("string") => "text",
                    _ => "of another type",
                };
                Problem::error(path, "type", format!("{} must be {want}, not {value}", self.title(&field)))
            }
            K::Pattern { .. } if field == "COMPRESS_OUTPUTIMAGE" => Problem::error(
                path,
                "format",
                format!("'{value}' is not a comma-separated list of sha, gpg, img, xz and zst"),
            ),
            K::Minimum { limit } | K::Maximum { limit } => Problem::error(
                path,
                "range",
                format!(
                    "{} is {value}; {} {limit}",
                    self.title(&field),
                    if matches!(e.kind(), K::Minimum { .. }) { "at least" } else { "at most" }
                ),
            ),
            _ => Problem::error(path, "invalid", format!("{}: {e}", self.title(&field))),
        }
    }

    /// The `description` beside the keyword that failed, where the schema says one.
    fn rule_description(&self, e: &jsonschema::ValidationError<'_>) -> Option<String> {
        let keyword = e.schema_path().as_str();
        let parent = &keyword[..keyword.rfind('/')?];
        self.schema.pointer(parent)?.get("description")?.as_str().map(str::to_string)
    }

    fn support_warnings(&self, fields: &Map<String, Value>) -> Vec<Problem> {
        let mut out = Vec::new();
        for (field, what) in [("BOARD", "board"), ("RELEASE", "release")] {
            let Some(value) = fields.get(field).and_then(Value::as_str) else { continue };
            let Some(choice) = self.choice(field, value) else { continue };
            let support = choice["x-support"].as_str().unwrap_or("supported");
            let said = match support {
                "end_of_support" => "has reached the end of Armbian's support: it may not build, and nobody fixes it",
                "tv_box" => "is a TV box: Armbian builds it as is, without support",
                "community" => "is community supported: Armbian's maintainers do not test it",
                _ => continue,
            };
            let name = choice["title"].as_str().unwrap_or(value);
            out.push(Problem {
                path: format!("/{field}"),
                code: "unmaintained",
                message: format!("the {what} {name} {said}"),
                severity: Severity::Warning,
            });
        }
        out
    }

    /// The `KEY=value` arguments of `./compile.sh build` for `config`: every switch the
    /// schema gives a default to and the configuration leaves out is passed with its
    /// default, so that Armbian never stops to ask. `None` when it has errors.
    pub fn build_arguments(&self, config: &Value) -> Option<Vec<String>> {
        if self.check(config).iter().any(|p| p.severity == Severity::Error) {
            return None;
        }
        let mut fields = config.as_object()?.clone();
        if let Some(props) = self.schema["properties"].as_object() {
            for (k, p) in props {
                if let Some(d) = p.get("default").filter(|_| !fields.contains_key(k)) {
                    fields.insert(k.clone(), d.clone());
                }
            }
        }
        Some(fields.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect())
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        other => other.to_string(),
    }
}

fn join(options: &[Value], at_most: usize) -> String {
    let mut names: Vec<String> = options.iter().take(at_most).map(scalar).collect();
    if options.len() > at_most {
        names.push(format!("… ({} in all)", options.len()));
    }
    match names.len() {
        0 => String::new(),
        1 => names.remove(0),
        n => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

/// Quire's own rules: what JSON Schema cannot say about a build that runs unattended.
fn rules(fields: &Map<String, Value>) -> Vec<Problem> {
    let mut out = Vec::new();
    if fields.get("KERNEL_CONFIGURE").and_then(Value::as_str) == Some("yes") {
        out.push(Problem::error(
            "/KERNEL_CONFIGURE",
            "interactive",
            "KERNEL_CONFIGURE=yes opens the kernel's menuconfig, which needs someone at a terminal; \
             set it to no and add a kernel configuration fragment to the files instead",
        ));
    }
    for (k, v) in fields {
        let text = scalar(v);
        if let Some(c) = text.chars().find(|c| !safe_char(*c)) {
            out.push(Problem::error(
                format!("/{k}"),
                "unsafe_value",
                format!(
                    "{k} holds {c:?}; values take letters, digits, spaces and . , : / = + @ % _ - only, \
                     because Armbian's scripts expand them as shell variables"
                ),
            ));
        }
    }
    out
}
