//! Whether a draft is about what was asked: each section's text, embedded, set against the
//! request and against requests for other products, and against what each section of the
//! outline is for. Similarities are compared, not read as absolute figures, so the same
//! judgement holds for any embedding model (MiniLM, OpenAI's) — but not for the built-in
//! provider's word counts, which cannot judge meaning (`check_draft` leaves it unjudged).
//!
//! The draft as a whole (the mean of its sections) must read closest to its request, or
//! second closest, among the request and [`UNRELATED`] requests for other products. A
//! section strays when the request is not among the [`TOPIC_RANK`] texts it reads closest to
//! *and* its own purpose is not among the [`PURPOSE_RANK`] purposes of the outline it reads
//! closest to: a section of generic but fitting content ("What is the baseline?") does not
//! stray; one about a pandemic in a PRD about offline notes does. Half or more of the
//! sections straying fails the draft. Calibrated on real drafts by the local models
//! (`bench/src/bin/drafts.rs`, docs/benchmarks.md).
use serde::Serialize;

use crate::gate::{GateFailure, section_text};
use crate::{AiError, EmbeddingProvider, Section};

/// Requests for other products, in fields far apart. A draft about what was asked reads
/// closer to its own request than to these; one about anything else does not.
pub const UNRELATED: &[&str] = &[
    "Drivers circle the stadium looking for parking. The app should show free spaces and let them reserve one.",
    "Waiters take orders on paper. Orders should go from a tablet at the table straight to the kitchen.",
    "Farmers guess when to water their crops. Soil sensors should say when each field needs water.",
    "Landlords chase rent by phone. Tenants should pay rent online and get a receipt.",
    "Musicians lose track of gigs and fees. They need one calendar of bookings with invoices.",
    "Researchers share datasets by email. Labs need a catalogue of datasets with versions and access rules.",
    "Pet owners forget their pets' vaccinations. The app should remind them and keep the vet's records.",
    "Cyclists have no safe route planner. Routes should prefer bike lanes and quiet streets.",
    "Players are matched against opponents far above their level. Matchmaking should pair players of similar skill.",
    "Translators receive files in many formats. The tool should keep terminology consistent across projects.",
    "Solar panel owners do not notice when output drops. They should be alerted when a panel underperforms.",
    "Wedding planners juggle vendors in chat threads. One board should hold vendors, payments and deadlines.",
    "Airline crews swap shifts by phone. Crew members should trade shifts in the app within the union's rules.",
    "Gardeners forget when to plant and prune. The app should plan the season for their climate.",
    "Museum visitors queue for audio guides. Visitors should hear the guide on their own phone.",
    "Fishermen cannot sell their catch before landing. Buyers should bid on the catch while the boat is at sea.",
];

/// Unrelated requests closest to the request itself are left out of the comparison, in
/// case the request happens to be about one of their fields.
const SET_ASIDE: usize = 3;
/// The draft is about its request when the request is at most this far down the texts the
/// whole draft reads closest to (1 = the closest).
pub const WHOLE_RANK: usize = 2;
/// A section is on topic when the request is at most this far down the texts it reads
/// closest to.
pub const TOPIC_RANK: usize = 3;
/// A section serves its purpose when its own purpose is at most this far down the outline's
/// purposes it reads closest to.
pub const PURPOSE_RANK: usize = 3;
/// Sections with fewer words are not judged (a one-line "None." says little either way).
const MIN_WORDS: usize = 8;

/// How one section of a draft relates to the request and to its purpose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionRelevance {
    pub key: String,
    pub title: String,
    /// Cosine similarity of its text to the request.
    pub request: f32,
    /// Where the request stands among the texts it reads closest to (1 = closest), out of
    /// [`Relevance::compared`].
    pub request_rank: usize,
    /// Cosine similarity of its text to its own purpose.
    pub purpose: f32,
    /// Where its own purpose stands among the outline's purposes it reads closest to.
    pub purpose_rank: usize,
}

impl SectionRelevance {
    pub fn on_topic(&self) -> bool {
        self.request_rank <= TOPIC_RANK
    }
    pub fn on_purpose(&self) -> bool {
        self.purpose_rank <= PURPOSE_RANK
    }
    /// About neither the request nor what the section is for.
    pub fn strays(&self) -> bool {
        !self.on_topic() && !self.on_purpose()
    }
}

/// How a draft relates to its request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relevance {
    /// The embedding model that judged.
    pub model: String,
    /// Cosine similarity of the whole draft (the mean of its sections) to the request.
    pub request: f32,
    /// Where the request stands among the texts the whole draft reads closest to.
    pub request_rank: usize,
    /// How many texts each rank is out of (the request and the unrelated ones compared).
    pub compared: usize,
    /// The sections judged (those with at least a few words).
    pub sections: Vec<SectionRelevance>,
}

impl Relevance {
    /// Passes, or fails with `off_topic` and the sections that read as about something else.
    pub fn judge(&self) -> Result<(), GateFailure> {
        if self.sections.is_empty() {
            return Ok(());
        }
        let off: Vec<&SectionRelevance> = self.sections.iter().filter(|s| s.strays()).collect();
        let whole_off = self.request_rank > WHOLE_RANK;
        if !whole_off && off.len() * 2 < self.sections.len() {
            return Ok(());
        }
        let reason = if whole_off {
            format!(
                "the draft reads as about something other than the request: {} of {} requests for other products \
                 read closer to it",
                self.request_rank - 1,
                self.compared - 1
            )
        } else {
            let names: Vec<&str> = off.iter().map(|s| s.title.as_str()).collect();
            format!(
                "{} of {} sections are about neither the request nor what the section is for: {}",
                off.len(),
                self.sections.len(),
                names.join(", ")
            )
        };
        Err(GateFailure { check: "off_topic", reason })
    }
}

/// What a section is for, as text to embed.
fn purpose(s: &Section) -> String {
    format!("{}: {}", s.title, s.prompt)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// Where `own` stands among `others` by similarity to `v` (1 = closest; ties go against it).
fn rank(v: &[f32], own: &[f32], others: &[&Vec<f32>]) -> (f32, usize) {
    let s = cosine(v, own);
    (s, 1 + others.iter().filter(|o| cosine(v, o) >= s).count())
}

/// Embeds the draft's sections, the request, the unrelated requests and the outline's
/// purposes (one call), and says how the draft relates to the request.
pub async fn score(
    embedder: &dyn EmbeddingProvider,
    model: Option<&str>,
    request: &str,
    text: &str,
    outline: &[Section],
) -> Result<Relevance, AiError> {
    // Every section with words counts towards the whole; those with a few are judged.
    let bodies: Vec<(&Section, String)> = outline
        .iter()
        .map(|s| (s, section_text(text, outline, s)))
        .filter(|(_, b)| b.chars().any(char::is_alphanumeric))
        .collect();
    let mut inputs: Vec<String> = vec![request.to_string()];
    inputs.extend(UNRELATED.iter().map(|u| u.to_string()));
    inputs.extend(outline.iter().map(purpose));
    inputs.extend(bodies.iter().map(|(_, b)| b.clone()));
    let embedded = embedder.embed(model, &inputs).await?;
    let v = &embedded.vectors;
    let (req, rest) = v.split_first().expect("the request was embedded");
    let (unrelated, rest) = rest.split_at(UNRELATED.len());
    let (purposes, texts) = rest.split_at(outline.len());

    // The unrelated requests compared: all but those nearest the request.
    let mut by_nearness: Vec<&Vec<f32>> = unrelated.iter().collect();
    by_nearness.sort_by(|a, b| cosine(req, b).total_cmp(&cosine(req, a)));
    let compared: Vec<&Vec<f32>> = by_nearness.into_iter().skip(SET_ASIDE).collect();

    let mut sections = Vec::new();
    let mut whole = vec![0f32; req.len()];
    for ((section, body), t) in bodies.iter().zip(texts) {
        let norm = t.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
        for (w, x) in whole.iter_mut().zip(t) {
            *w += x / norm;
        }
        if body.split_whitespace().count() < MIN_WORDS {
            continue;
        }
        let (request, request_rank) = rank(t, req, &compared);
        let at = outline.iter().position(|s| s.key == section.key).expect("a section of the outline");
        let others: Vec<&Vec<f32>> = purposes.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, p)| p).collect();
        let (purpose, purpose_rank) = rank(t, &purposes[at], &others);
        sections.push(SectionRelevance {
            key: section.key.clone(),
            title: section.title.clone(),
            request,
            request_rank,
            purpose,
            purpose_rank,
        });
    }
    let (request, request_rank) = rank(&whole, req, &compared);
    Ok(Relevance { model: embedded.model, request, request_rank, compared: compared.len() + 1, sections })
}

/// What the whole gate found in a draft that passed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    /// How it relates to the request, when an embedding model judged it.
    pub relevance: Option<Relevance>,
    /// Why relevance was not judged (the embedding provider failed), when it was not.
    pub unjudged: Option<String>,
}

/// What a draft was asked for: the request, and the instructions it came with (the prompt's
/// messages; the outline's section prompts are added).
pub struct Asked<'a> {
    pub request: &'a str,
    pub instructions: Vec<&'a str>,
}

/// The quality gate for a draft: its shape ([`crate::gate::check_text`]), figures it made
/// up ([`crate::gate::check_figures`]), instructions repeated back
/// ([`crate::gate::check_echo`]), then its relevance to the request by `embedder`. An
/// embedding provider that fails leaves relevance unjudged (said in [`Judged::unjudged`])
/// rather than failing a draft for another provider's fault. An empty request (a section's
/// rewrite, the built-in outline) is not judged for figures, echo or relevance.
pub async fn check_draft(
    text: &str,
    outline: &[Section],
    max_chars: usize,
    asked: &Asked<'_>,
    embedder: &dyn EmbeddingProvider,
    model: Option<&str>,
) -> Result<Judged, GateFailure> {
    crate::gate::check_text(text, outline, max_chars)?;
    let request = asked.request;
    if request.trim().is_empty() {
        return Ok(Judged { relevance: None, unjudged: Some("there is no request to judge against".into()) });
    }
    crate::gate::check_figures(request, text, outline)?;
    let mut instructions = asked.instructions.clone();
    instructions.extend(outline.iter().map(|s| s.prompt.as_str()));
    crate::gate::check_echo(text, &instructions, request)?;
    if request.split_whitespace().count() < 3 || outline.is_empty() {
        return Ok(Judged { relevance: None, unjudged: Some("the request is too short to judge against".into()) });
    }
    // Word counts are no judge of meaning: a good draft in other words than its request's
    // would be refused.
    if embedder.name() == crate::builtin::MODEL {
        let why = "no embedding model is there to judge it (quire-builtin only counts words): run `quire models fetch`";
        return Ok(Judged { relevance: None, unjudged: Some(why.into()) });
    }
    match score(embedder, model, request, text, outline).await {
        Ok(r) => {
            r.judge()?;
            Ok(Judged { relevance: Some(r), unjudged: None })
        }
        Err(e) => Ok(Judged { relevance: None, unjudged: Some(e.to_string()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::Builtin;

    const REQUEST: &str = "Offline notes. Field teams lose notes when offline. The app must sync edits when the \
                           connection returns.";

    fn draft(problem: &str, goals: &str, stories: &str) -> String {
        format!(
            "# Draft\n## Problem\n{problem}\n## Goals\n{goals}\n## User stories\n{stories}\n## Open questions\n- None.\n"
        )
    }

    fn outline() -> Vec<Section> {
        ["problem", "goals", "user_stories", "open_questions"].iter().map(|k| Section::from_key(k)).collect()
    }

    #[tokio::test]
    async fn a_draft_about_the_request_is_on_topic_and_one_about_anything_else_is_not() {
        let on = draft(
            "Field teams lose notes they take while offline, and edits made without a connection never sync.",
            "- Notes taken offline are kept on the device and sync when the connection returns.",
            "- As a field engineer, I want my offline notes to sync when the connection returns, so that no notes \
             are lost.",
        );
        let r = score(&Topics, None, REQUEST, &on, &outline()).await.unwrap();
        assert_eq!((r.request_rank, r.compared, r.sections.len()), (1, UNRELATED.len() - SET_ASIDE + 1, 3));
        assert!(r.sections.iter().all(SectionRelevance::on_topic), "{r:?}");
        r.judge().unwrap();

        // What a small model wrote for this request: dates, a pandemic and 3D printing.
        let off = draft(
            "In 2020 the pandemic closed factories, and the supply of 3D printing filament collapsed worldwide.",
            "- Print replacement parts with 3D printers in every factory by the end of the decade.",
            "- As a factory owner, I want cheaper filament for my 3D printers so that my production restarts.",
        );
        let r = score(&Topics, None, REQUEST, &off, &outline()).await.unwrap();
        let f = r.judge().unwrap_err();
        assert_eq!(f.check, "off_topic");
        assert!(f.reason.starts_with("the draft reads as about something other than the request"), "{}", f.reason);

        // The on-topic draft judged against another product's request is off topic too.
        let other = "Clinic booking. Patients phone the clinic to book. They should book and cancel appointments \
                     online at any hour.";
        assert_eq!(score(&Topics, None, other, &on, &outline()).await.unwrap().judge().unwrap_err().check, "off_topic");
    }

    #[tokio::test]
    async fn stray_sections_are_named_and_half_of_them_fail() {
        let stray = "In 2020 the pandemic closed factories and the supply of 3D printing filament collapsed.";
        let on = "- Field teams keep their offline notes, and edits sync when the connection returns.";
        let r = score(&Topics, None, REQUEST, &draft(on, on, stray), &outline()).await.unwrap();
        let off: Vec<&str> = r.sections.iter().filter(|s| s.strays()).map(|s| s.key.as_str()).collect();
        assert_eq!(off, ["user_stories"]);
        r.judge().unwrap();
        let r = score(&Topics, None, REQUEST, &draft(on, stray, stray), &outline()).await.unwrap();
        let f = r.judge().unwrap_err();
        assert_eq!(
            f.reason,
            "2 of 3 sections are about neither the request nor what the section is for: Goals, User stories"
        );
        // Generic content that fits its section does not stray.
        let generic = "- As a user, I want to do my work so that the outcome is met, with acceptance criteria.";
        let r = score(&Topics, None, REQUEST, &draft(on, on, generic), &outline()).await.unwrap();
        let stories = r.sections.iter().find(|s| s.key == "user_stories").unwrap();
        assert!(!stories.on_topic() && stories.on_purpose() && !stories.strays(), "{stories:?}");
        r.judge().unwrap();
        // Short sections are not judged: "None." says nothing either way.
        assert!(r.sections.iter().all(|s| s.key != "open_questions"));
    }

    /// Vectors by topic, for judgements that do not hang on chance: a dimension per topic,
    /// counting its words; other words count nowhere.
    struct Topics;

    const TOPICS: &[&[&str]] = &[
        &["notes", "offline", "sync", "connection", "field", "teams", "edits"],
        &["pandemic", "factories", "factory", "filament", "printing", "printers", "production"],
        &["user", "want", "acceptance", "criteria", "stories"],
    ];

    #[async_trait::async_trait]
    impl EmbeddingProvider for Topics {
        fn name(&self) -> &str {
            "topics"
        }
        async fn embed(&self, _: Option<&str>, inputs: &[String]) -> Result<crate::Embeddings, AiError> {
            let vector = |text: &str| {
                let words: Vec<String> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                TOPICS.iter().map(|t| words.iter().filter(|w| t.contains(&w.as_str())).count() as f32).collect()
            };
            Ok(crate::Embeddings {
                model: "topics".into(),
                vectors: inputs.iter().map(|i| vector(i)).collect(),
                usage: None,
            })
        }
    }

    struct Failing;

    #[async_trait::async_trait]
    impl EmbeddingProvider for Failing {
        fn name(&self) -> &str {
            "down"
        }
        async fn embed(&self, _: Option<&str>, _: &[String]) -> Result<crate::Embeddings, AiError> {
            Err(AiError::new("down", crate::AiErrorKind::Unavailable, "connection refused"))
        }
    }

    #[tokio::test]
    async fn the_whole_gate_checks_shape_figures_then_relevance() {
        let outline = outline();
        let on = draft(
            "Field teams lose notes they take while offline, and their edits never sync.",
            "- Notes taken offline sync when the connection returns.",
            "- As a field engineer, I want offline notes to sync so that none are lost.",
        );
        let prompt = "You are a product manager. Write a product requirements document for this request.";
        let asked = Asked { request: REQUEST, instructions: vec![prompt] };
        let judged = check_draft(&on, &outline, 10_000, &asked, &Topics, None).await.unwrap();
        assert_eq!(judged.relevance.unwrap().request_rank, 1);
        // Off topic: refused with the reason.
        let off = draft(
            "In 2020 the pandemic closed factories, and the supply of 3D printing filament collapsed worldwide.",
            "- Print replacement parts with 3D printers in every factory by the end of the decade.",
            "- As a factory owner, I want cheaper filament for my 3D printers so that my production restarts.",
        )
        .replace("In 2020 the", "The");
        let f = check_draft(&off, &outline, 10_000, &asked, &Topics, None).await.unwrap_err();
        assert_eq!(f.check, "off_topic", "{f:?}");
        // The built-in word counts are no judge of meaning: relevance is left unjudged.
        let judged = check_draft(&off, &outline, 10_000, &asked, &Builtin, None).await.unwrap();
        assert!(judged.relevance.is_none() && judged.unjudged.unwrap().contains("quire models fetch"));
        let missing = check_draft("## Problem\nfield notes are lost offline", &outline, 10_000, &asked, &Builtin, None);
        assert_eq!(missing.await.unwrap_err().check, "missing_sections");
        let made_up = on.replace("never sync.", "never sync; 40% of notes were lost in 2023.");
        let f = check_draft(&made_up, &outline, 10_000, &asked, &Builtin, None).await.unwrap_err();
        assert_eq!(f.check, "invented_figures");
        // A draft that says its instructions back (the prompt's, or a section's) is refused.
        let echo = on.replace(
            "- Notes taken offline sync",
            "Write a product requirements document for this request. List three to five goals as outcomes for \
             users or the business.\n- Notes taken offline sync",
        );
        let f = check_draft(&echo, &outline, 10_000, &asked, &Topics, None).await.unwrap_err();
        assert_eq!(f.check, "echoed_instructions", "{f:?}");
        // The request's own words are not instructions: a draft may quote them.
        let quoting =
            on.replace("- Notes taken offline sync", "- The app must sync edits when the connection returns.\n- Notes");
        check_draft(&quoting, &outline, 10_000, &asked, &Topics, None).await.unwrap();
        // An embedding provider that is down leaves relevance unjudged, saying why.
        let judged = check_draft(&on, &outline, 10_000, &asked, &Failing, None).await.unwrap();
        assert!(judged.relevance.is_none() && judged.unjudged.unwrap().contains("connection refused"));
        // No request (a section's rewrite): nothing to judge against.
        let none = Asked { request: "", instructions: vec![] };
        let judged = check_draft(&made_up, &outline, 10_000, &none, &Topics, None).await.unwrap();
        assert!(judged.relevance.is_none());
    }
}
