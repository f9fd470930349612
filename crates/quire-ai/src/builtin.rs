//! `quire-builtin`: the provider every fresh install has, with no network and no model. It
//! never pretends to be a model: every result says `model: "quire-builtin"`, and what it makes
//! comes from the request and Quire's taxonomy only.
//!
//! * Text: a structured draft. The outline's sections become headings; the request is split
//!   into statements (lines, bullets, sentences) and each is placed under the section whose
//!   taxonomy keywords it matches best (a statement that matches none goes under the first
//!   section; a question goes under "Open questions"). A section no statement fits holds an
//!   explicit open question (the taxonomy's), and the questions are gathered at the end. A
//!   note under the title says how the draft was made. Usage is counted in words.
//! * Images: procedural PNGs of a room: wall, floor, window and furniture shapes laid out as
//!   the style's composition says, in the style's palette, with a little grain; the same
//!   request and seed give the same image. Asked to paint from an image, it lays the room
//!   over it, the image showing through as much as the strength leaves.
//! * Embeddings: lexical, not semantic: hashed term vectors (words and word pairs, stop words
//!   dropped, feature hashing into 512 signed dimensions, L2-normalised). Texts that share
//!   words are near; synonyms are not.

use std::sync::Arc;

use async_trait::async_trait;

use crate::taxonomy::{self, Composition, DesignStyle, PrdSection};
use crate::{
    AiError, AiErrorKind, EmbeddingProvider, Embeddings, Image, ImageProvider, ImageRequest, Images, Progress, Section,
    Speaker, TextEvent, TextProvider, TextRequest, TextStream, Usage,
};

/// What every result of this provider names as its model.
pub const MODEL: &str = "quire-builtin";
/// The length of its embedding vectors.
pub const DIMENSIONS: usize = 512;
/// The largest image side it paints.
pub const MAX_SIDE: u32 = 2048;

#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl Builtin {
    fn error(message: impl Into<String>) -> AiError {
        AiError::new(MODEL, AiErrorKind::Rejected, message)
    }
}

// ------------------------------------------------------------------ text

/// The request's statements: lines, bullets and sentences, trimmed, in order.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches(['-', '*', '•', '#', '>']).trim_start();
        let line = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start_matches(['.', ')']).trim();
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            let ends = matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|&(_, n)| n.is_whitespace());
            if ends {
                let end = at + c.len_utf8();
                push_statement(&mut out, &line[start..end]);
                start = end;
            }
        }
        push_statement(&mut out, &line[start..]);
    }
    out
}

fn push_statement(out: &mut Vec<String>, s: &str) {
    let s = s.trim();
    if s.chars().any(char::is_alphanumeric) {
        out.push(s.to_string());
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '%'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// A statement as the keywords are matched against it: lower-cased with spaces around, and
/// its words.
struct Said {
    lower: String,
    tokens: Vec<String>,
}

impl Said {
    fn new(statement: &str) -> Said {
        Said { lower: format!(" {} ", statement.to_lowercase()), tokens: words(statement).collect() }
    }
}

/// How strongly a statement belongs to a section: its keywords found in it.
fn score(Said { lower, tokens }: &Said, section: &PrdSection) -> usize {
    section
        .keywords
        .iter()
        .filter(|k| {
            if let Some(prefix) = k.strip_suffix('*') {
                tokens.iter().any(|t| t.starts_with(prefix))
            } else if k.chars().all(char::is_alphanumeric) {
                tokens.iter().any(|t| t == *k)
            } else if k.starts_with(char::is_alphanumeric) {
                lower.contains(&format!(" {k}")) // a phrase: "as a", "so that", "can't"
            } else {
                lower.contains(*k) // a symbol: "%"
            }
        })
        .count()
}

/// The taxonomy section whose keywords and question place statements in an outline's
/// section: the one with its key, or else the first whose key ends with it (a template's
/// `requirements` reads as `functional_requirements`), or a plain one with neither.
fn section_for(key: &str) -> PrdSection {
    let suffix = format!("_{key}");
    taxonomy::prd_section(key)
        .or_else(|| taxonomy::prd_sections().iter().find(|s| s.key.ends_with(&suffix)))
        .cloned()
        .unwrap_or(PrdSection {
            key: "custom",
            title: "",
            description: "",
            prompt: "",
            required: false,
            facts: false,
            keywords: &[],
            question: "",
        })
}

/// The draft for a request, as markdown.
pub fn draft(request: &TextRequest) -> String {
    let (title, said, keys) = match &request.outline {
        Some(o) => (o.title.clone(), o.request.clone(), o.sections.clone()),
        None => {
            let said = request.messages.iter().rev().find(|m| m.role == Speaker::User).map(|m| m.content.clone());
            (None, said.unwrap_or_default(), Vec::new())
        }
    };
    let said_statements = statements(&said);
    let title = title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| {
        let first = said_statements.first().map_or("Draft", String::as_str);
        let mut t: Vec<&str> = first.trim_end_matches(['.', '!', '?']).split_whitespace().take(10).collect();
        if t.is_empty() {
            t.push("Draft");
        }
        t.join(" ")
    });
    let mut out = format!(
        "# {title}\n\n> Drafted by quire-builtin, Quire's offline drafting aid: no language model wrote this. \
         The request's own statements are placed under the sections they fit; every other section holds \
         the question it has to answer.\n"
    );
    if keys.is_empty() {
        out.push_str("\n## Notes\n\n");
        for s in said_statements.iter().filter(|s| !s.ends_with('?')) {
            out.push_str(&format!("- {s}\n"));
        }
        let questions: Vec<&String> = said_statements.iter().filter(|s| s.ends_with('?')).collect();
        out.push_str("\n## Open questions\n\n");
        if questions.is_empty() {
            out.push_str(
                "- What should this say beyond the request's own words? A language model provider can draft it.\n",
            );
        }
        for q in questions {
            out.push_str(&format!("- {q}\n"));
        }
        return out;
    }
    let sections: Vec<(&Section, PrdSection)> = keys.iter().map(|k| (k, section_for(&k.key))).collect();
    let mut placed: Vec<Vec<&String>> = vec![Vec::new(); sections.len()];
    let questions_at = sections.iter().position(|(k, _)| k.key == "open_questions");
    for s in &said_statements {
        let at = match questions_at {
            Some(q) if s.ends_with('?') => q,
            _ => {
                let said = Said::new(s);
                let best = sections
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != questions_at)
                    .map(|(i, (_, sec))| (score(&said, sec), i))
                    .max_by_key(|&(score, i)| (score, std::cmp::Reverse(i)));
                match best {
                    Some((score, i)) if score > 0 => i,
                    _ => usize::from(questions_at == Some(0)),
                }
            }
        };
        placed[at.min(sections.len() - 1)].push(s);
    }
    let mut asked: Vec<String> = Vec::new();
    for (i, (outlined, sec)) in sections.iter().enumerate() {
        let heading = &outlined.title;
        out.push_str(&format!("\n## {heading}\n\n"));
        if Some(i) == questions_at {
            for s in &placed[i] {
                out.push_str(&format!("- {s}\n"));
            }
            for q in &asked {
                out.push_str(&format!("- {q}\n"));
            }
            if placed[i].is_empty() && asked.is_empty() {
                out.push_str("- None yet.\n");
            }
            continue;
        }
        if placed[i].is_empty() {
            let question = match (sec.question, outlined.prompt.as_str()) {
                (q, _) if !q.is_empty() && taxonomy::prd_section(&outlined.key).is_some() => q.to_string(),
                (_, "") => format!("What belongs in '{heading}'?"),
                (_, asks) => format!("What belongs in '{heading}'? The template asks: {asks}"),
            };
            out.push_str(&format!("_Open question:_ {question}\n"));
            asked.push(format!("{heading}: {question}"));
            continue;
        }
        for s in &placed[i] {
            out.push_str(&format!("- {s}\n"));
            if outlined.key == "user_stories" {
                out.push_str("  - [ ] Acceptance criteria: open question — what shows this works?\n");
            }
        }
    }
    out
}

#[async_trait]
impl TextProvider for Builtin {
    fn name(&self) -> &str {
        MODEL
    }

    async fn stream_text(&self, request: &TextRequest) -> Result<TextStream, AiError> {
        if request.messages.is_empty() && request.outline.is_none() {
            return Err(Self::error("the request has no messages"));
        }
        let text = draft(request);
        let mut finish_reason = "stop";
        let mut pieces: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
        if let Some(max) = request.max_tokens {
            // Words stand for tokens here.
            let mut left = max as usize;
            let mut kept = Vec::new();
            for piece in pieces {
                let n = piece.split_whitespace().count();
                if n > left {
                    let cut: Vec<&str> = piece.split_whitespace().take(left).collect();
                    if !cut.is_empty() {
                        kept.push(cut.join(" "));
                    }
                    finish_reason = "length";
                    break;
                }
                left -= n;
                kept.push(piece);
            }
            pieces = kept;
        }
        let prompt_tokens: usize = request.messages.iter().map(|m| m.content.split_whitespace().count()).sum();
        let completion_tokens: usize = pieces.iter().map(|p| p.split_whitespace().count()).sum();
        let done = TextEvent::Done {
            model: MODEL.into(),
            usage: Some(Usage { prompt_tokens: prompt_tokens as u32, completion_tokens: completion_tokens as u32 }),
            finish_reason: Some(finish_reason.into()),
        };
        let events = pieces.into_iter().map(|p| Ok(TextEvent::Delta(p))).chain(std::iter::once(Ok(done)));
        Ok(Box::pin(futures_util::stream::iter(events)))
    }
}

// ------------------------------------------------------------------ images

/// xorshift64*: a small deterministic generator for compositions and grain.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `lo..hi`.
    fn between(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (self.next() >> 40) as f32 / (1u64 << 24) as f32 * (hi - lo)
    }
}

fn shade(c: [u8; 3], by: f32) -> [u8; 3] {
    c.map(|v| if by >= 0.0 { v as f32 + (255.0 - v as f32) * by } else { v as f32 * (1.0 + by) }.round() as u8)
}

struct Canvas {
    img: image::RgbImage,
    /// Moves every shape drawn across by this fraction of the width.
    dx: f32,
}

impl Canvas {
    fn w(&self) -> f32 {
        self.img.width() as f32
    }
    fn h(&self) -> f32 {
        self.img.height() as f32
    }
    /// Fills the rectangle (fractions of the canvas) with `c`.
    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [u8; 3]) {
        self.fill(x0, y0, x1, y1, c, |_, _| true);
    }
    /// Fills the ellipse inscribed in the rectangle.
    fn ellipse(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [u8; 3]) {
        self.fill(x0, y0, x1, y1, c, |u, v| (u - 0.5).powi(2) + (v - 0.5).powi(2) <= 0.25);
    }
    /// Fills an arch: a rectangle with a half-disc on top.
    fn arch(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [u8; 3]) {
        let aspect = (x1 - x0) * self.w() / ((y1 - y0) * self.h()).max(1.0);
        self.fill(x0, y0, x1, y1, c, |u, v| {
            let r = 0.5;
            let vy = v / aspect; // v in units of the width
            vy >= r || (u - 0.5).powi(2) + (vy - r).powi(2) <= r * r
        });
    }
    fn fill(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [u8; 3], inside: impl Fn(f32, f32) -> bool) {
        let (w, h) = (self.w(), self.h());
        let (x0, x1) = (x0 + self.dx, x1 + self.dx);
        let (px0, px1) = ((x0 * w).max(0.0) as u32, ((x1 * w).min(w)) as u32);
        let (py0, py1) = ((y0 * h).max(0.0) as u32, ((y1 * h).min(h)) as u32);
        for y in py0..py1 {
            for x in px0..px1 {
                let u = (x - px0) as f32 / (px1 - px0).max(1) as f32;
                let v = (y - py0) as f32 / (py1 - py0).max(1) as f32;
                if inside(u, v) {
                    // A vertical falloff gives each shape some volume.
                    self.img.put_pixel(x, y, image::Rgb(shade(c, -0.12 * v)));
                }
            }
        }
    }
}

/// Paints one room in the style's palette and composition.
pub fn paint(style: &DesignStyle, width: u32, height: u32, seed: u64) -> image::RgbImage {
    paint_in(style, &[], width, height, seed)
}

/// Paints one room in the style's composition and `palette` (`#rrggbb`: wall, floor, then
/// accents, used in turn when there are fewer than five); the style's own palette when empty.
pub fn paint_in(style: &DesignStyle, palette: &[String], width: u32, height: u32, seed: u64) -> image::RgbImage {
    let mut dice = Dice(seed | 1);
    let p: Vec<[u8; 3]> = if palette.is_empty() {
        style.palette.iter().map(|h| taxonomy::rgb(h)).collect()
    } else {
        palette.iter().map(|h| taxonomy::rgb(h)).collect()
    };
    let at = |i: usize| p[i % p.len()];
    let (wall, floor, a, b, c) = (at(0), at(1), at(2), at(3), at(4));
    let mut cv = Canvas { img: image::RgbImage::new(width.max(1), height.max(1)), dx: 0.0 };
    // Each seed frames the room its own way: where the floor meets the wall, where the
    // furniture stands, one window or two, and which way round, so that the paintings of one
    // request are different pictures (a generation refuses near-duplicates).
    let horizon = dice.between(0.52, 0.72);
    let shift = dice.between(-0.14, 0.14);
    let mirrored = dice.next().is_multiple_of(2);
    // Wall and floor, each a gradient.
    let (w, h) = (cv.img.width(), cv.img.height());
    for y in 0..h {
        let v = y as f32 / h as f32;
        let colour = if v < horizon {
            shade(wall, 0.10 * (1.0 - v / horizon))
        } else {
            shade(floor, -0.25 * (v - horizon) / (1.0 - horizon))
        };
        for x in 0..w {
            cv.img.put_pixel(x, y, image::Rgb(colour));
        }
    }
    // A window (or two), its light and frame.
    let windows = 1 + (dice.next() % 2) as usize;
    for _ in 0..windows {
        let wx = dice.between(0.08, 0.6);
        let ww = dice.between(0.12, 0.3) / windows as f32;
        let top = dice.between(0.06, 0.16);
        cv.rect(wx - 0.01, top, wx + ww + 0.01, horizon - 0.17, shade(c, -0.2));
        cv.rect(wx, top + 0.01, wx + ww, horizon - 0.18, shade(wall, 0.55));
    }
    cv.dx = shift;
    match style.composition {
        Composition::Airy => {
            cv.rect(0.12, horizon - 0.1, 0.7, horizon + 0.06, a); // a long low sofa
            cv.rect(0.12, horizon - 0.16, 0.7, horizon - 0.1, shade(a, 0.15));
            cv.ellipse(0.3, horizon + 0.1, 0.62, horizon + 0.2, shade(floor, 0.25)); // a rug
            cv.ellipse(0.8, horizon - 0.3, 0.92, horizon - 0.1, c); // a plant
            cv.rect(0.85, horizon - 0.1, 0.87, horizon + 0.05, b);
        }
        Composition::Layered => {
            cv.ellipse(0.05, horizon + 0.02, 0.95, horizon + 0.3, b); // layered rugs
            cv.ellipse(0.2, horizon + 0.06, 0.7, horizon + 0.22, shade(a, 0.3));
            for i in 0..7 {
                let x = dice.between(0.02, 0.85);
                let s = dice.between(0.05, 0.14);
                let colour = [a, b, c][i % 3];
                if i % 2 == 0 {
                    cv.ellipse(x, horizon - s * 2.2, x + s, horizon - s * 0.2, colour);
                } else {
                    cv.rect(x, horizon - s * 1.5, x + s * 1.4, horizon + s * 0.3, colour);
                }
            }
        }
        Composition::Grid => {
            let cols = 3 + (dice.next() % 3) as usize;
            let start = dice.between(0.5, 0.66);
            for i in 0..cols {
                let x0 = start + i as f32 * (0.35 / cols as f32);
                cv.rect(x0, 0.2, x0 + 0.3 / cols as f32, horizon + 0.02, if i % 2 == 0 { a } else { b });
                for j in 1..5 {
                    let y = 0.2 + j as f32 * (horizon - 0.18) / 5.0;
                    cv.rect(x0, y, x0 + 0.3 / cols as f32, y + 0.006, shade(c, -0.3));
                }
            }
            let long = dice.between(0.28, 0.42);
            cv.rect(0.08, horizon - 0.08, 0.08 + long, horizon + 0.05, c); // a sideboard
            for k in 1..6 {
                let y = horizon + (1.0 - horizon) * k as f32 / 6.0; // floor boards
                cv.rect(0.0, y, 1.0, y + 0.004, shade(floor, -0.3));
            }
        }
        Composition::Organic => {
            cv.arch(0.58, 0.12, 0.86, horizon, shade(a, 0.2)); // an arched niche
            cv.ellipse(0.08, horizon - 0.12, 0.55, horizon + 0.1, a); // a curved sofa
            cv.ellipse(0.35, horizon + 0.08, 0.65, horizon + 0.2, b); // a round table
            cv.ellipse(0.66, horizon - 0.22, 0.76, horizon - 0.02, c); // a vase
        }
    }
    cv.dx = 0.0;
    if mirrored {
        image::imageops::flip_horizontal_in_place(&mut cv.img);
    }
    // Grain, so that no area is perfectly flat.
    for px in cv.img.pixels_mut() {
        let g = (dice.next() % 7) as i16 - 3;
        px.0 = px.0.map(|v| (v as i16 + g).clamp(0, 255) as u8);
    }
    cv.img
}

/// `painted` over `from`: `strength` of the painting, the rest of the image (same sizes).
fn blend(painted: &mut image::RgbImage, from: &image::RgbImage, strength: f64) {
    let strength = strength as f32;
    for (p, f) in painted.pixels_mut().zip(from.pixels()) {
        for (c, o) in p.0.iter_mut().zip(f.0) {
            *c = (f32::from(*c) * strength + f32::from(o) * (1.0 - strength)).round() as u8;
        }
    }
}

fn seed_of(request: &ImageRequest) -> u64 {
    request.seed.unwrap_or_else(|| fnv(request.prompt.as_bytes()))
}

#[async_trait]
impl ImageProvider for Builtin {
    fn name(&self) -> &str {
        MODEL
    }

    /// It paints its room over the image, the image showing through as much as the strength
    /// leaves of it: no model, but the result keeps the image's colours and shapes.
    fn paints_from_images(&self) -> bool {
        true
    }

    async fn generate_images(&self, request: &ImageRequest, progress: Progress<'_>) -> Result<Images, AiError> {
        let (w, h) = (request.width, request.height);
        if !(16..=MAX_SIDE).contains(&w) || !(16..=MAX_SIDE).contains(&h) {
            return Err(Self::error(format!("it paints images from 16 to {MAX_SIDE} pixels a side, not {w}x{h}")));
        }
        let init = match &request.init_image {
            Some(init) => {
                let mut image = image::load_from_memory(&init.png)
                    .map_err(|e| Self::error(format!("the image to paint from does not decode: {e}")))?;
                // `InitImage::fitted` made it the size asked for; another caller may not have.
                if (image.width(), image.height()) != (w, h) {
                    image = image.resize_exact(w, h, image::imageops::FilterType::Triangle);
                }
                let image = image.to_rgb8();
                Some((Arc::new(image), init.strength))
            }
            None => None,
        };
        let style = request
            .style
            .as_deref()
            .and_then(taxonomy::design_style)
            .or_else(|| taxonomy::style_in(&request.prompt))
            .unwrap_or(&taxonomy::design_styles()[0]);
        let count = request.count.max(1);
        let mut images = Vec::with_capacity(count as usize);
        for i in 0..count {
            let seed = seed_of(request).wrapping_add(u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (style, init, palette) = (style.clone(), init.clone(), request.palette.clone());
            let png = tokio::task::spawn_blocking(move || {
                let mut out = std::io::Cursor::new(Vec::new());
                let mut painted = paint_in(&style, &palette, w, h, seed);
                if let Some((from, strength)) = init {
                    blend(&mut painted, &from, strength);
                }
                painted.write_to(&mut out, image::ImageFormat::Png).map(|()| out.into_inner())
            })
            .await
            .map_err(|e| Self::error(format!("painting failed: {e}")))?
            .map_err(|e| Self::error(format!("encoding failed: {e}")))?;
            images.push(Image { bytes: png.into(), media_type: "image/png".into(), flagged: None });
            progress((i + 1) as f32 / count as f32);
        }
        Ok(Images { model: MODEL.into(), images })
    }
}

// ------------------------------------------------------------------ embeddings

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it", "its", "of", "on",
    "or", "that", "the", "this", "to", "was", "were", "will", "with",
];

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A text's hashed term vector: words (weight 1) and adjacent word pairs (weight ½), each
/// hashed to a dimension and a sign, L2-normalised. An empty text is the zero vector.
pub fn term_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMENSIONS];
    let tokens: Vec<String> = words(text).filter(|w| !STOP_WORDS.contains(&w.as_str())).collect();
    let mut add = |feature: &str, weight: f32| {
        let h = fnv(feature.as_bytes());
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % DIMENSIONS as u64) as usize] += sign * weight;
    };
    for t in &tokens {
        add(t, 1.0);
    }
    for pair in tokens.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]), 0.5);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[async_trait]
impl EmbeddingProvider for Builtin {
    fn name(&self) -> &str {
        MODEL
    }

    async fn embed(&self, _model: Option<&str>, inputs: &[String]) -> Result<Embeddings, AiError> {
        let words: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
        Ok(Embeddings {
            model: MODEL.into(),
            vectors: inputs.iter().map(|i| term_vector(i)).collect(),
            usage: Some(Usage { prompt_tokens: words as u32, completion_tokens: 0 }),
        })
    }
}
