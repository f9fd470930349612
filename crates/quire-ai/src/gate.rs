//! The quality gate a generation passes before its result is kept: text that is not empty,
//! not too long and has every required section as a heading; images that decode, have the
//! size asked for, and are not blank or one flat colour. A failure says why, so that a job
//! can retry or fail with the reason.

use serde::Serialize;

use crate::{Image, Section};

/// Why a result failed the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason}")]
pub struct GateFailure {
    /// `empty`, `too_long`, `missing_sections`, `empty_sections`, `repetition`,
    /// `invented_figures`, `echoed_instructions`, `off_topic` (`crate::relevance`),
    /// `undecodable`, `wrong_size`, `blank`.
    pub check: &'static str,
    pub reason: String,
}

fn fail(check: &'static str, reason: impl Into<String>) -> GateFailure {
    GateFailure { check, reason: reason.into() }
}

/// The headings of a markdown text, without their `#`s or a trailing colon.
pub fn headings(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| h.trim_start_matches('#').trim().trim_end_matches(':').to_string())
        .collect()
}

impl Section {
    /// How closely a (lower-cased) heading names this section: `None` unless it holds the
    /// section's title or its key with spaces; the longer what it holds, the closer; a
    /// heading that is exactly one of them, closest of all.
    fn title_match(&self, heading: &str) -> Option<usize> {
        let names = [self.title.to_lowercase(), self.key.replace('_', " ")];
        if names.iter().any(|n| n == heading) {
            return Some(usize::MAX);
        }
        names.iter().filter(|n| !n.is_empty() && heading.contains(n.as_str())).map(String::len).max()
    }
}

/// The section of `outline` a (lower-cased) heading is: the one it names most closely, the
/// first of equals. "Non-goals" holds "goals" too, but is the non-goals section.
pub fn section_for<'a>(outline: &'a [Section], heading: &str) -> Option<&'a Section> {
    outline
        .iter()
        .filter_map(|s| s.title_match(heading).map(|m| (m, s)))
        .min_by_key(|(m, _)| std::cmp::Reverse(*m))
        .map(|(_, s)| s)
}

/// Whether a (lower-cased) heading is `section`'s among `outline`'s.
pub fn heads(outline: &[Section], section: &Section, heading: &str) -> bool {
    section_for(outline, heading).is_some_and(|s| s.key == section.key)
}

/// Words a required section needs under its heading.
pub const MIN_SECTION_WORDS: usize = 2;

/// Checks a generated text: at least one word, at most `max_chars`, a heading for every
/// required section — the section's title, or its key with spaces — and at least
/// [`MIN_SECTION_WORDS`] words under it.
pub fn check_text(text: &str, sections: &[Section], max_chars: usize) -> Result<(), GateFailure> {
    if !text.chars().any(char::is_alphanumeric) {
        return Err(fail("empty", "the text is empty"));
    }
    let n = text.chars().count();
    if n > max_chars {
        return Err(fail("too_long", format!("the text is {n} characters; the most is {max_chars}")));
    }
    let found: Vec<String> = headings(text).iter().map(|h| h.to_lowercase()).collect();
    let missing: Vec<&str> = sections
        .iter()
        .filter(|s| s.required && !found.iter().any(|h| heads(sections, s, h)))
        .map(|s| s.title.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(fail("missing_sections", format!("required sections missing: {}", missing.join(", "))));
    }
    let empty: Vec<&str> = sections
        .iter()
        .filter(|s| s.required && words_under(text, sections, s) < MIN_SECTION_WORDS)
        .map(|s| s.title.as_str())
        .collect();
    if !empty.is_empty() {
        return Err(fail(
            "empty_sections",
            format!("required sections with fewer than {MIN_SECTION_WORDS} words: {}", empty.join(", ")),
        ));
    }
    repetition(text)
}

/// Sentences of at least this many words count towards repetition (shorter ones, "None.",
/// "To be decided.", repeat in good writing).
const REPEAT_MIN_WORDS: usize = 4;

/// Lines in a row that are the same (empty list items included) before the text loops.
const SAME_LINES_IN_A_ROW: usize = 3;

/// A text that says the same sentences again and again (small models loop) fails: at least
/// three sentences said before, making up more than a third of its sentences; or the same
/// line three times in a row (`- ` with nothing after it, too).
fn repetition(text: &str) -> Result<(), GateFailure> {
    let mut run: (String, usize) = (String::new(), 0);
    // Table rows are left out: a table may hold empty rows to fill in.
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|')) {
        let same: String = line.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
        run = if same == run.0 { (same, run.1 + 1) } else { (same, 1) };
        if run.1 >= SAME_LINES_IN_A_ROW {
            let example: String = line.chars().take(80).collect();
            return Err(fail(
                "repetition",
                format!("the text repeats itself: the same line {SAME_LINES_IN_A_ROW} times in a row (\"{example}\")"),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let (mut total, mut repeats) = (0usize, Vec::new());
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for sentence in line.split_inclusive(['.', '!', '?']) {
            let words: Vec<String> = sentence
                .split_whitespace()
                .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase())
                .filter(|w| !w.is_empty())
                .collect();
            if words.len() < REPEAT_MIN_WORDS {
                continue;
            }
            total += 1;
            if !seen.insert(words.join(" ")) {
                repeats.push(sentence.trim().trim_start_matches(['-', '*', ' ']).to_string());
            }
        }
    }
    if repeats.len() >= 3 && repeats.len() * 3 > total {
        let example: String = repeats[0].chars().take(80).collect();
        return Err(fail(
            "repetition",
            format!(
                "the text repeats itself: {} of its {total} sentences are said again (\"{example}\")",
                repeats.len()
            ),
        ));
    }
    Ok(())
}

/// Words under the first heading that is `section`'s, its sub-sections included.
fn words_under(text: &str, outline: &[Section], section: &Section) -> usize {
    word_count(&section_text(text, outline, section))
}

/// Words of a (Markdown) text, its marks not counted.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

/// The lines under the first heading that is `section`'s, its sub-sections included (up to
/// the next heading of its level or above); empty when no heading is.
pub fn section_text(text: &str, outline: &[Section], section: &Section) -> String {
    let mut level = None;
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let depth = trimmed.chars().take_while(|c| *c == '#').count();
        if depth > 0 {
            match level {
                Some(l) if depth <= l => break,
                Some(_) => {}
                None => {
                    let heading = trimmed[depth..].trim().trim_end_matches(':').to_lowercase();
                    level = heads(outline, section, &heading).then_some(depth);
                    continue;
                }
            }
        }
        if level.is_some() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim().to_string()
}

/// Words in a row that, found in a draft as in its instructions, show it copied them.
const ECHO_WORDS: usize = 6;

/// A text's runs of [`ECHO_WORDS`] words, lower-cased, marks left out.
fn shingles(text: &str) -> std::collections::HashSet<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(ECHO_WORDS).map(|w| w.join(" ")).collect()
}

/// A draft that repeats the instructions it was given ("Write the Goals section: list three
/// to five goals…") instead of following them fails: two or more runs of six words from
/// `instructions` (its prompt, the outline's section prompts) that the request itself does
/// not hold.
pub fn check_echo(text: &str, instructions: &[&str], request: &str) -> Result<(), GateFailure> {
    let given = shingles(request);
    let told: std::collections::HashSet<String> =
        instructions.iter().flat_map(|i| shingles(i)).filter(|s| !given.contains(s)).collect();
    let mut echoed: Vec<String> = shingles(text).into_iter().filter(|s| told.contains(s)).collect();
    if echoed.len() < 2 {
        return Ok(());
    }
    echoed.sort();
    Err(fail(
        "echoed_instructions",
        format!("the draft repeats the instructions it was given instead of following them (\"{}…\")", echoed[0]),
    ))
}

/// Number words a request may use for a figure a draft writes in digits.
const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// The figures a text states that read as facts rather than counts: percentages, sums of
/// money, years (1900–2099), numbers of a thousand or more, and "N million" or "billion".
/// Each as written, with its digits alone (`"$1,200"` → `"1200"`).
pub fn figures(text: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || (matches!(chars[i], ',' | '.') && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
        {
            i += 1;
        }
        let number: String = chars[start..i].iter().collect();
        let digits: String = number.chars().take_while(|c| *c != '.').filter(char::is_ascii_digit).collect();
        let value: u64 = digits.parse().unwrap_or(u64::MAX);
        let money = start > 0 && matches!(chars[start - 1], '$' | '€' | '£' | '¥');
        let rest: String = chars[i..chars.len().min(i + 10)].iter().collect::<String>().to_lowercase();
        let word = ["percent", "million", "billion", "thousand"]
            .into_iter()
            .find(|w| rest.trim_start().starts_with(w) && rest.trim_start().len() >= w.len());
        let percent = rest.starts_with('%') || word == Some("percent");
        // "5k", "2m", "3bn": a unit letter straight after the digits, then no more letters.
        let unit = ["bn", "k", "m"]
            .into_iter()
            .find(|u| rest.starts_with(u) && !rest[u.len()..].starts_with(|c: char| c.is_alphanumeric()));
        let scale = word.is_some_and(|w| w != "percent") || unit.is_some();
        let year = digits.len() == 4 && number.len() == 4 && (1900..2100).contains(&value);
        if money || percent || scale || year || value >= 1000 {
            let mut shown = if money { format!("{}{number}", chars[start - 1]) } else { number.clone() };
            if rest.starts_with('%') {
                shown.push('%');
            } else if let Some(w) = word {
                shown = format!("{shown} {w}");
            } else if let Some(u) = unit {
                shown.push_str(u);
            }
            out.push((shown, digits));
        }
    }
    out
}

/// A draft's sections that state facts (the problem, the personas) may hold only the figures
/// the request gave: a percentage, a year or a sum there that the request did not give was
/// made up. Targets, limits and dates belong to other sections and are not checked.
pub fn check_figures(request: &str, text: &str, outline: &[Section]) -> Result<(), GateFailure> {
    let mut given: std::collections::HashSet<String> =
        request.split(|c: char| !c.is_ascii_digit()).filter(|d| !d.is_empty()).map(str::to_string).collect();
    let lower = request.to_lowercase();
    for (n, word) in NUMBER_WORDS.iter().enumerate() {
        if lower.split(|c: char| !c.is_alphabetic()).any(|w| w == *word) {
            given.insert(n.to_string());
        }
    }
    given.extend(figures(request).into_iter().map(|(_, d)| d));
    let mut invented = Vec::new();
    for section in outline.iter().filter(|s| s.facts) {
        let body = section_text(text, outline, section);
        for (shown, digits) in figures(&body) {
            if !given.contains(&digits) {
                invented.push(format!("{shown} ({})", section.title));
            }
        }
    }
    if invented.is_empty() {
        return Ok(());
    }
    invented.dedup();
    let some: Vec<&str> = invented.iter().take(3).map(String::as_str).collect();
    Err(fail(
        "invented_figures",
        format!(
            "the draft states figures the request did not give, as facts: {}{}",
            some.join(", "),
            if invented.len() > 3 { format!(" and {} more", invented.len() - 3) } else { String::new() }
        ),
    ))
}

/// How far a provider may round the size asked for (Stable Diffusion works in multiples of 8
/// or 64).
const SIZE_SLACK: u32 = 64;

/// Checks a generated image: it decodes, it is the size asked for (within the rounding
/// servers do), and it is not blank or one flat colour. Its actual size.
pub fn check_image(image: &Image, width: u32, height: u32) -> Result<(u32, u32), GateFailure> {
    let decoded = image::load_from_memory(&image.bytes)
        .map_err(|e| fail("undecodable", format!("the image does not decode ({}): {e}", image.media_type)))?;
    let (w, h) = (decoded.width(), decoded.height());
    if w.abs_diff(width) > SIZE_SLACK || h.abs_diff(height) > SIZE_SLACK {
        return Err(fail("wrong_size", format!("the image is {w}x{h}; {width}x{height} was asked for")));
    }
    // Luma on a grid of at most 64x64 samples.
    let luma = decoded.to_luma8();
    let (sx, sy) = ((w / 64).max(1), (h / 64).max(1));
    let samples: Vec<f64> = (0..h)
        .step_by(sy as usize)
        .flat_map(|y| (0..w).step_by(sx as usize).map(move |x| (x, y)))
        .map(|(x, y)| f64::from(luma.get_pixel(x, y).0[0]))
        .collect();
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let spread = (samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    if mean < 4.0 {
        return Err(fail("blank", "the image is black (a provider's safety filter blanks images so)"));
    }
    if spread < 3.0 {
        return Err(fail("blank", format!("the image is one flat colour (brightness varies by {spread:.1} of 255)")));
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: image::RgbImage) -> Image {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        Image { bytes: out.into_inner().into(), media_type: "image/png".into(), flagged: None }
    }

    #[test]
    fn text_needs_words_a_bound_and_its_required_sections() {
        let sections = crate::taxonomy::prd_outline();
        assert_eq!(check_text("  \n# \n", &sections, 100).unwrap_err().check, "empty");
        assert_eq!(check_text("word ".repeat(30).as_str(), &[], 100).unwrap_err().check, "too_long");
        let partial =
            "# PRD\n## Problem\nx y z\n## Goals\nfaster checkout now\n### User Stories:\n- as a buyer I pay\n";
        assert_eq!(
            check_text(partial, &sections, 10_000).unwrap_err().reason,
            "required sections missing: Functional requirements, Success metrics"
        );
        let whole =
            format!("{partial}## 4. Functional requirements\n- one tap pay\n## Success metrics\n- 20% more orders\n");
        check_text(&whole, &sections, 10_000).unwrap();
        // A required section needs a few words under its heading.
        let thin = whole.replace("- one tap pay", "- ok").replace("- 20% more orders", "");
        assert_eq!(
            check_text(&thin, &sections, 10_000).unwrap_err().reason,
            "required sections with fewer than 2 words: Functional requirements, Success metrics"
        );
        check_text("just text", &[], 100).unwrap();
        // A text that loops fails; a few short lines said twice do not.
        let looping =
            "## Goals\n".to_string() + &"Notes sync when the connection returns. ".repeat(6) + "\nAlso new.\n";
        let f = check_text(&looping, &[], 10_000).unwrap_err();
        assert_eq!(f.check, "repetition");
        assert!(f.reason.starts_with("the text repeats itself: 5 of its 6 sentences"), "{}", f.reason);
        let fine = "## Risks\n- None.\n## Timeline\n- None.\n- To be decided.\n- To be decided.\nEach release ships in two weeks.\n";
        check_text(fine, &[], 10_000).unwrap();
        // The same line three times in a row is a loop, empty list items too; twice is not.
        for looped in
            ["## Problem\n- \n- \n- \n", "The problem ( ) . . .\nThe problem ( ) . . .\nThe problem ( ) . . .\n"]
        {
            let f = check_text(looped, &[], 10_000).unwrap_err();
            assert!(f.reason.contains("the same line 3 times in a row"), "{looped:?}: {f:?}");
        }
        check_text("- TBD\n- TBD\n- done\n| a | |\n| a | |\n| a | |\n", &[], 10_000).unwrap();
        let two =
            "One sentence repeated here today. One sentence repeated here today. A third different one follows now.";
        check_text(two, &[], 10_000).unwrap();
        // "Non-goals" holds "goals", but does not stand in for the goals.
        let goals: Vec<Section> = ["goals", "non_goals"].iter().map(|k| Section::from_key(k)).collect();
        let text = "## Non-goals\nno offline edits here\n";
        assert_eq!(check_text(text, &goals, 10_000).unwrap_err().reason, "required sections missing: Goals");
        let title = |h: &str| section_for(&goals, h).map(|s| s.key.as_str());
        assert_eq!(
            (title("non-goals"), title("goals"), title("our goals"), title("risks")),
            (Some("non_goals"), Some("goals"), Some("goals"), None)
        );
        // A template's own section: by its title, or by its key.
        let own = [Section::of_template("body", Some("Main points"), Some("Cover them"))];
        assert_eq!(check_text("## Intro\nx", &own, 100).unwrap_err().reason, "required sections missing: Main points");
        check_text("## The main points\nx y z", &own, 100).unwrap();
        // Words in a section's sub-sections count; the next section's do not.
        check_text("## Body\n### One\nDetail here.\n## After\nmore words", &own, 100).unwrap();
        assert!(check_text("## Body\n## After\nmany more words", &own, 100).is_err());
        check_text("## Body\nx y z", &own, 100).unwrap();
    }

    #[test]
    fn figures_are_percentages_sums_years_and_large_numbers() {
        let found: Vec<String> = figures(
            "In 2020, 45% of 3 teams lost $1,200 each (10,000 users; 5 million notes; 12 percent; v2.1; 30 s; 5k).",
        )
        .into_iter()
        .map(|(shown, digits)| format!("{shown}={digits}"))
        .collect();
        assert_eq!(
            found,
            ["2020=2020", "45%=45", "$1,200=1200", "10,000=10000", "5 million=5", "12 percent=12", "5k=5"]
        );
        assert!(figures("Sync within 5 seconds for 3 personas in step 2.").is_empty());
    }

    #[test]
    fn facts_may_hold_only_the_figures_the_request_gave() {
        let outline = crate::taxonomy::prd_outline();
        let request = "Checkout takes six steps and 50% of mobile buyers give up before paying $20.";
        let draft = "## Problem\nCheckout takes 6 steps and 50% of buyers give up on $20 baskets.\n\
                     ## Goals\n- Raise conversion by 20% by 2027.\n";
        check_figures(request, draft, &outline).unwrap();
        let invented = "## Problem\nSince 2019, 70% of buyers give up; it costs $3 million a year.\n## Goals\n- 20%\n";
        let f = check_figures(request, invented, &outline).unwrap_err();
        assert_eq!(f.check, "invented_figures");
        assert_eq!(
            f.reason,
            "the draft states figures the request did not give, as facts: 2019 (Problem), 70% (Problem), $3 million (Problem)"
        );
        // Personas state facts too; a section the outline does not have is not read.
        let persona = "## Personas\n- Dana, a buyer since 2015.\n## Appendix\n- 1999\n";
        assert!(check_figures(request, persona, &outline).unwrap_err().reason.contains("2015 (Personas)"));
        check_figures(request, "## Appendix\n- 1999\n", &outline).unwrap();
    }

    #[test]
    fn images_must_decode_fit_and_show_something() {
        let mut varied = image::RgbImage::new(256, 256);
        for (x, y, p) in varied.enumerate_pixels_mut() {
            *p = image::Rgb([x as u8, y as u8, 128]);
        }
        check_image(&png(varied.clone()), 256, 256).unwrap();
        check_image(&png(varied.clone()), 256 + 64, 256).unwrap();
        assert_eq!(check_image(&png(varied), 512, 512).unwrap_err().check, "wrong_size");
        let flat = png(image::RgbImage::from_pixel(256, 256, image::Rgb([200, 180, 160])));
        assert!(check_image(&flat, 256, 256).unwrap_err().reason.starts_with("the image is one flat colour"));
        let black = png(image::RgbImage::new(256, 256));
        assert!(check_image(&black, 256, 256).unwrap_err().reason.starts_with("the image is black"));
        let junk = Image {
            bytes: bytes::Bytes::from_static(b"<html>oops</html>"),
            media_type: "text/html".into(),
            flagged: None,
        };
        assert_eq!(check_image(&junk, 256, 256).unwrap_err().check, "undecodable");
    }
}
