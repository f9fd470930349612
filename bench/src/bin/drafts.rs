//! Draft quality of every local chat model Quire can fetch, on the 20 fixed requests
//! (`quire_bench::REQUESTS`), drafted as the `ai_generator` component drafts them: the
//! built-in `prd.draft` template, the taxonomy's outline, the app's temperature (0.7) and
//! token limit, section by section for a small model. For each model:
//!
//! * gate: drafts that pass the whole quality gate (shape, repetition, invented figures,
//!   relevance), and the checks the others failed;
//! * relevance by all-MiniLM-L6-v2: the whole draft's cosine similarity to its request, the
//!   drafts whose request is among the 2 texts they read closest to (of the request and 13
//!   unrelated ones), and the share of sections that do not stray (about the request or
//!   about what the section is for);
//! * sections filled: sections of the outline with at least 8 words;
//! * seconds to a full draft.
//!
//! The built-in provider (an outline from the request, no model) is drafted the same way
//! for reference, and each model's drafts are judged once more against another request of
//! the set: relevance that cannot tell the two apart would pass those too.
//!
//! `cargo run --release -p quire-bench --bin drafts [-- DUMP.jsonl]` fetches every model of
//! `quire_local::fetch::PACKAGES` and `OPTIONAL` into the shared cache (`QUIRE_TEST_MODELS`,
//! default `~/.cache/quire-models`) first; DUMP gets every draft with its scores.
//! `-- --rejudge DUMP.jsonl [NEW.jsonl]` judges an earlier run's drafts again (after the
//! gate changed) without writing them anew.

use std::io::Write;
use std::time::Instant;

use futures_util::StreamExt;
use quire_ai::relevance::{self, Relevance};
use quire_ai::{EmbeddingProvider, TextEvent, TextProvider};
use quire_bench::REQUESTS;
use serde_json::json;

/// Against which other request a draft is judged once more: the one this far on.
const OTHER: usize = 7;

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: std::collections::BTreeMap<&'static str, usize>,
    whole_on_topic: usize,
    sections_on_topic: (usize, usize),
    sections_filled: (usize, usize),
    similarity: f64,
    seconds: f64,
    /// Drafts judged against another request that relevance still passed.
    other_passed: usize,
}

/// One model's draft for one of the requests.
struct Draft {
    model: String,
    request: usize,
    seconds: f64,
    text: String,
}

/// The request the app sends for a title and what was asked.
fn text_request(title: &str, request: &str) -> quire_ai::TextRequest {
    let template = quire_ai::prompt::builtin_templates().into_iter().find(|t| t.name == "prd.draft").unwrap();
    let outline = quire_ai::taxonomy::prd_outline();
    let values = [("request".to_string(), request.to_string()), ("title".to_string(), title.to_string())];
    let around = quire_ai::prompt::Surroundings { outline: Some(outline), ..Default::default() };
    let rendered = template.render(&values.into_iter().collect(), &around).unwrap();
    let mut req = rendered.text_request(Some(title.into()), request);
    req.max_tokens = Some(2000);
    req.temperature = Some(0.7);
    req
}

async fn draft(provider: &dyn TextProvider, model: &str) -> Vec<Draft> {
    let mut out = Vec::new();
    for (i, (title, request)) in REQUESTS.iter().enumerate() {
        let t = Instant::now();
        let mut stream = provider.stream_text(&text_request(title, request)).await.unwrap();
        let mut text = String::new();
        while let Some(e) = stream.next().await {
            if let TextEvent::Delta(d) = e.unwrap() {
                text.push_str(&d);
            }
        }
        out.push(Draft { model: model.into(), request: i, seconds: t.elapsed().as_secs_f64(), text });
        print!(".");
        std::io::stdout().flush().unwrap();
    }
    println!(" {model}");
    out
}

/// Judges one model's drafts as ai_generator does, and once more against another request.
async fn judge(drafts: &[&Draft], embedder: &dyn EmbeddingProvider, dump: &mut Option<std::fs::File>) -> Tally {
    let outline = quire_ai::taxonomy::prd_outline();
    let mut t = Tally::default();
    for d in drafts {
        let (title, request) = REQUESTS[d.request];
        let asked = format!("{title}. {request}");
        let text = &d.text;
        t.seconds += d.seconds;
        // As ai_generator does: the built-in provider's text (the request and questions) is
        // judged for its shape only.
        let sent = text_request(title, request);
        let judged = relevance::Asked {
            request: if d.model == quire_ai::builtin::MODEL { "" } else { asked.as_str() },
            instructions: sent.messages.iter().map(|m| m.content.as_str()).collect(),
        };
        let gate = relevance::check_draft(text, &outline, 100_000, &judged, embedder, None).await;
        match &gate {
            Ok(_) => t.passed += 1,
            Err(f) => *t.failed.entry(f.check).or_default() += 1,
        }
        let r: Relevance = relevance::score(embedder, None, &asked, text, &outline).await.unwrap();
        t.whole_on_topic += usize::from(r.request_rank <= relevance::WHOLE_RANK);
        t.sections_on_topic.0 += r.sections.iter().filter(|s| !s.strays()).count();
        t.sections_on_topic.1 += r.sections.len();
        t.sections_filled.0 += r.sections.len();
        t.sections_filled.1 += outline.len();
        t.similarity += f64::from(r.request);
        let (other_title, other_request) = REQUESTS[(d.request + OTHER) % REQUESTS.len()];
        let other =
            relevance::score(embedder, None, &format!("{other_title}. {other_request}"), text, &outline).await.unwrap();
        t.other_passed += usize::from(other.judge().is_ok());
        if let Some(f) = dump {
            let line = json!({
                "model": d.model, "request": asked, "request_index": d.request, "seconds": d.seconds, "text": text,
                "gate": gate.as_ref().err().map(|f| json!({"check": f.check, "reason": f.reason})),
                "relevance": r, "against_other": other,
            });
            writeln!(f, "{line}").unwrap();
        }
    }
    t
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = quire_local::fetch::shared_cache().unwrap();
    let embedder =
        quire_local::embed::LocalEmbeddings::load("local", &dir.join(quire_local::catalog::DEFAULT_EMBEDDING)).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let drafts: Vec<Draft> = if args.first().is_some_and(|a| a == "--rejudge") {
        // The drafts of an earlier run, judged again (after the gate changed).
        let from = args.get(1).expect("--rejudge DUMP.jsonl [NEW_DUMP.jsonl]");
        let text = std::fs::read_to_string(from).unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let request = v["request_index"].as_u64().map(|i| i as usize).unwrap_or_else(|| {
                    REQUESTS.iter().position(|(t, r)| format!("{t}. {r}") == v["request"].as_str().unwrap()).unwrap()
                });
                Draft {
                    model: v["model"].as_str().unwrap().into(),
                    request,
                    seconds: v["seconds"].as_f64().unwrap(),
                    text: v["text"].as_str().unwrap().into(),
                }
            })
            .collect()
    } else {
        for p in quire_local::fetch::OPTIONAL {
            quire_local::fetch::fetch_one(p, &dir).unwrap();
        }
        let models: Vec<_> = quire_local::catalog::scan(&dir)
            .into_iter()
            .filter(|f| f.kind == quire_local::catalog::Kind::Text && f.problem.is_none())
            .collect();
        println!("PRD drafts, {} requests, {threads} cores", REQUESTS.len());
        let mut all = draft(&quire_ai::builtin::Builtin, quire_ai::builtin::MODEL).await;
        for m in &models {
            let model = quire_local::text::LocalText::load("local", &m.path).unwrap();
            all.extend(draft(&model, &m.name).await);
        }
        all
    };
    let dump_to = if args.first().is_some_and(|a| a == "--rejudge") { args.get(2) } else { args.first() };
    let mut dump = dump_to.map(|p| std::fs::File::create(p).unwrap());
    println!("judged by {}", embedder.model_name());

    let mut names: Vec<&str> = Vec::new();
    for d in &drafts {
        if !names.contains(&d.model.as_str()) {
            names.push(&d.model);
        }
    }
    let n = REQUESTS.len();
    let mut rows = Vec::new();
    for name in names {
        let mine: Vec<&Draft> = drafts.iter().filter(|d| d.model == name).collect();
        rows.push((name.to_string(), judge(&mine, &embedder, &mut dump).await));
    }
    println!(
        "\n| model | pass the gate | failed | draft on topic | sections not straying | sections filled | cosine to \
         request | s per draft | relevance passes against another request |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (name, t) in rows {
        let failed: Vec<String> = t.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let pct = |(a, b): (usize, usize)| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        println!(
            "| {name} | {}/{n} | {} | {}/{n} | {:.0} % | {:.0} % | {:.2} | {:.1} | {}/{n} |",
            t.passed,
            if failed.is_empty() { "—".into() } else { failed.join(", ") },
            t.whole_on_topic,
            pct(t.sections_on_topic),
            pct(t.sections_filled),
            t.similarity / n as f64,
            t.seconds / n as f64,
            t.other_passed,
        );
    }
}
