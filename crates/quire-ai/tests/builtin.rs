//! The built-in provider: drafts made of the request's own words in the template's sections,
//! procedural images in the style's palette, lexical embeddings; always `quire-builtin`.

use futures_util::StreamExt;
use quire_ai::builtin::{Builtin, DIMENSIONS, MODEL};
use quire_ai::taxonomy;
use quire_ai::{
    EmbeddingProvider, ImageProvider, ImageRequest, Message, Outline, TextEvent, TextProvider, TextRequest, Usage,
};

const REQUEST: &str = "Teams lose hours copying meeting notes into tickets by hand. \
We want a ticket drafted from a note in under a minute. \
As a product manager I want to turn a meeting note into a ticket. \
It must support Jira and Linear. \
Adoption should reach 40% of teams. \
Should guests be able to see drafts?";

fn prd_request() -> TextRequest {
    TextRequest {
        messages: vec![Message::system("Write a PRD."), Message::user(REQUEST)],
        outline: Some(Outline {
            title: Some("Notes to tickets".into()),
            request: REQUEST.into(),
            sections: taxonomy::prd_outline(),
        }),
        ..Default::default()
    }
}

async fn run(req: &TextRequest) -> (String, TextEvent) {
    let mut stream = Builtin.stream_text(req).await.unwrap();
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            TextEvent::Delta(d) => text.push_str(&d),
            done => return (text, done),
        }
    }
    panic!("no Done")
}

/// The bullets under a heading.
fn section<'a>(draft: &'a str, heading: &str) -> Vec<&'a str> {
    let start = draft.find(&format!("## {heading}\n")).unwrap_or_else(|| panic!("no section {heading}:\n{draft}"));
    draft[start..].lines().skip(1).take_while(|l| !l.starts_with("## ")).filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test]
async fn a_draft_places_the_requests_statements_and_asks_the_rest() {
    let (draft, done) = run(&prd_request()).await;
    assert!(draft.starts_with("# Notes to tickets\n\n> Drafted by quire-builtin"), "{draft}");
    assert!(draft.contains("no language model wrote this"));
    assert_eq!(section(&draft, "Problem"), ["- Teams lose hours copying meeting notes into tickets by hand."]);
    assert_eq!(section(&draft, "Goals"), ["- We want a ticket drafted from a note in under a minute."]);
    assert_eq!(
        section(&draft, "User stories"),
        [
            "- As a product manager I want to turn a meeting note into a ticket.",
            "  - [ ] Acceptance criteria: open question — what shows this works?"
        ]
    );
    assert_eq!(section(&draft, "Functional requirements"), ["- It must support Jira and Linear."]);
    assert_eq!(section(&draft, "Success metrics"), ["- Adoption should reach 40% of teams."]);
    assert_eq!(section(&draft, "Non-goals"), ["_Open question:_ What is deliberately out of scope for this work?"]);
    let open = section(&draft, "Open questions");
    assert_eq!(open[0], "- Should guests be able to see drafts?", "the request's own question first");
    assert!(open.contains(&"- Non-goals: What is deliberately out of scope for this work?"), "{open:?}");
    assert!(open.contains(&"- Timeline: What are the milestones, and by when must each land?"), "{open:?}");
    // Every heading of the outline, in its order.
    let headings: Vec<&str> = draft.lines().filter_map(|l| l.strip_prefix("## ")).collect();
    let titles: Vec<&str> = taxonomy::prd_sections().iter().map(|s| s.title).collect();
    assert_eq!(headings, titles);
    // Nothing is made up: every placed statement is the request's own.
    for line in draft.lines().filter_map(|l| l.strip_prefix("- ")) {
        assert!(REQUEST.contains(line) || line.contains(": "), "invented: {line}");
    }
    quire_ai::gate::check_text(&draft, &taxonomy::prd_outline(), 100_000)
        .expect("a built-in draft passes the quality gate");
    let TextEvent::Done { model, usage, finish_reason } = done else { unreachable!() };
    assert_eq!((model.as_str(), finish_reason.as_deref()), (MODEL, Some("stop")));
    let words = draft.split_whitespace().count() as u32;
    assert_eq!(
        usage,
        Some(Usage { prompt_tokens: 3 + REQUEST.split_whitespace().count() as u32, completion_tokens: words })
    );
}

#[tokio::test]
async fn without_an_outline_the_draft_keeps_the_notes_and_max_tokens_cuts_it() {
    let req = TextRequest { messages: vec![Message::user("- Ship the beta.\n- Who signs off?")], ..Default::default() };
    let (draft, _) = run(&req).await;
    assert_eq!(section(&draft, "Notes"), ["- Ship the beta."]);
    assert_eq!(section(&draft, "Open questions"), ["- Who signs off?"]);
    let mut short = prd_request();
    short.max_tokens = Some(12);
    let (draft, done) = run(&short).await;
    assert_eq!(draft.split_whitespace().count(), 12);
    assert!(matches!(done, TextEvent::Done { finish_reason: Some(ref r), .. } if r == "length"));
    assert!(Builtin.stream_text(&TextRequest::default()).await.is_err(), "nothing to draft from");
}

#[tokio::test]
async fn a_templates_own_sections_get_their_instructions_as_questions() {
    use quire_ai::Section;
    let said = "Teams lose hours copying notes by hand. It must support Jira.";
    let req = TextRequest {
        messages: vec![Message::user(said)],
        outline: Some(Outline {
            title: Some("Notes".into()),
            request: said.into(),
            sections: vec![
                Section::of_template("problem", None, None),
                Section::of_template("requirements", Some("Requirements"), Some("Functional and non-functional")),
                Section::of_template("conclusion", None, Some("Summarize the key takeaways")),
            ],
        }),
        ..Default::default()
    };
    let (draft, _) = run(&req).await;
    assert_eq!(section(&draft, "Problem"), ["- Teams lose hours copying notes by hand."]);
    assert_eq!(
        section(&draft, "Requirements"),
        ["- It must support Jira."],
        "'requirements' places statements as the taxonomy's functional requirements do"
    );
    assert_eq!(
        section(&draft, "Conclusion"),
        ["_Open question:_ What belongs in 'Conclusion'? The template asks: Summarize the key takeaways"]
    );
}

fn distance(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (*x as i32 - y as i32).unsigned_abs()).sum()
}

#[tokio::test]
async fn images_are_painted_in_the_styles_palette() {
    let mut req = ImageRequest {
        prompt: "a japandi bedroom".into(),
        width: 320,
        height: 240,
        count: 2,
        seed: Some(7),
        ..Default::default()
    };
    let out = Builtin.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    assert_eq!((out.model.as_str(), out.images.len()), (MODEL, 2));
    let style = taxonomy::design_style("japandi").unwrap();
    let palette: Vec<[u8; 3]> = style.palette.iter().map(|h| taxonomy::rgb(h)).collect();
    let first = image::load_from_memory(&out.images[0].bytes).unwrap().to_rgb8();
    assert_eq!((first.width(), first.height(), out.images[0].media_type.as_str()), (320, 240, "image/png"));
    // Near the top-left is wall, below the horizon is floor: the style's first two colours.
    assert!(distance(first.get_pixel(2, 40).0, palette[0]) < 40, "{:?}", first.get_pixel(2, 40));
    assert!(distance(first.get_pixel(2, 175).0, palette[1]) < 60, "{:?}", first.get_pixel(2, 175));
    let distinct: std::collections::HashSet<[u8; 3]> = first.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 50, "not flat: {} colours", distinct.len());
    assert_ne!(out.images[0].bytes, out.images[1].bytes, "each image of a batch differs");
    for img in &out.images {
        quire_ai::gate::check_image(img, 320, 240).expect("a built-in image passes the quality gate");
    }
    let again = Builtin.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    assert_eq!(again.images[0].bytes, out.images[0].bytes, "the same seed paints the same image");

    req.style = Some("art_deco".into());
    let deco = Builtin.generate_images(&req, &quire_ai::no_progress).await.unwrap();
    let deco = image::load_from_memory(&deco.images[0].bytes).unwrap().to_rgb8();
    let wall = taxonomy::rgb(taxonomy::design_style("art_deco").unwrap().palette[0]);
    let at = deco.get_pixel(2, 40).0;
    assert!(distance(at, wall) < 60, "the request's style wins over the prompt's: {at:?}, not {wall:?}");

    req.width = 5000;
    let e = Builtin.generate_images(&req, &quire_ai::no_progress).await.unwrap_err();
    assert!(e.to_string().contains("from 16 to 2048 pixels a side, not 5000x240"), "{e}");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_lexical_and_normalised() {
    let texts: Vec<String> =
        ["Export the moodboard as a PDF", "export moodboard to pdf", "Quarterly revenue grew in Europe", ""]
            .map(String::from)
            .to_vec();
    let e = Builtin.embed(None, &texts).await.unwrap();
    assert_eq!((e.model.as_str(), e.vectors.len()), (MODEL, 4));
    for v in &e.vectors[..3] {
        assert_eq!(v.len(), DIMENSIONS);
        assert!((cosine(v, v) - 1.0).abs() < 1e-5);
    }
    assert!(e.vectors[3].iter().all(|x| *x == 0.0), "an empty text is the zero vector");
    let near = cosine(&e.vectors[0], &e.vectors[1]);
    let far = cosine(&e.vectors[0], &e.vectors[2]);
    assert!(near > 0.6 && far.abs() < 0.2, "near {near}, far {far}");
}
