//! A document's file cut into sections: a Markdown file at its headings, a JSON file at its
//! top-level fields.

use serde_json::Value;

use crate::Format;

/// One section: its heading (empty for what comes before the first) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    /// 1 to 6 for a Markdown heading's level; 0 before the first heading and for JSON fields.
    pub level: u8,
    pub body: String,
}

impl Section {
    /// The title as sections are matched: lower case, spaces collapsed, no trailing colon.
    pub(crate) fn key(&self) -> String {
        collapse(&self.title.to_lowercase()).trim_end_matches(':').to_string()
    }
}

/// Runs of whitespace as one space, trimmed.
pub(crate) fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An ATX heading's level and text (`## Goals` → 2, "Goals").
fn heading(line: &str) -> Option<(u8, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let hashes = trimmed.bytes().take_while(|b| *b == b'#').count();
    if hashes == 0 || hashes > 6 {
        return None;
    }
    let rest = &trimmed[hashes..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((hashes as u8, rest.trim().trim_end_matches('#').trim_end()))
}

/// The sections of a file. A Markdown heading inside a fenced code block is not one.
pub fn sections(format: Format, text: &str) -> Vec<Section> {
    match format {
        Format::Markdown => markdown_sections(text),
        Format::Json => json_sections(text),
    }
}

fn markdown_sections(text: &str) -> Vec<Section> {
    let mut out = vec![Section { title: String::new(), level: 0, body: String::new() }];
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(f) = fence {
            if t.starts_with(f) {
                fence = None;
            }
        } else if t.starts_with("```") || t.starts_with("~~~") {
            fence = Some(&t[..3]);
        } else if let Some((level, title)) = heading(line) {
            out.push(Section { title: title.to_string(), level, body: String::new() });
            continue;
        }
        let body = &mut out.last_mut().expect("never empty").body;
        body.push_str(line);
        body.push('\n');
    }
    if out[0].body.trim().is_empty() && out.len() > 1 {
        out.remove(0);
    }
    out
}

/// Which version last changed each section of the newest one. `versions` are a document's
/// files, newest first; for each section of `versions[0]` (in its order) the answer is the
/// index of the newest version whose section differs from the version before it (a section
/// that did not exist before counts as changed), or the oldest index when it never changed
/// within `versions`. Sections are matched by title, as [`crate::diff::by_section`] does.
pub fn last_changed(format: Format, versions: &[&str]) -> Vec<(Section, usize)> {
    let cut: Vec<Vec<Section>> = versions.iter().map(|v| sections(format, v)).collect();
    let Some(newest) = cut.first() else { return Vec::new() };
    let body_of = |i: usize, key: &str| cut[i].iter().find(|s| s.key() == key).map(|s| collapse(&s.body));
    newest
        .iter()
        .map(|s| {
            let key = s.key();
            let at = (0..cut.len().saturating_sub(1))
                .find(|&i| body_of(i, &key) != body_of(i + 1, &key))
                .unwrap_or(cut.len() - 1);
            (s.clone(), at)
        })
        .collect()
}

fn json_sections(text: &str) -> Vec<Section> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| Section {
                title: k.clone(),
                level: 0,
                body: serde_json::to_string_pretty(v).unwrap_or_default(),
            })
            .collect(),
        _ => vec![Section { title: String::new(), level: 0, body: text.to_string() }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_cut_at_headings_outside_code() {
        let md = "# Checkout\n\nIntro.\n\n## Goals\n- Fast\n\n```\n# not a heading\n```\n###Nope\n## Risks ##\nNone.\n";
        let s = sections(Format::Markdown, md);
        let titles: Vec<(&str, u8)> = s.iter().map(|s| (s.title.as_str(), s.level)).collect();
        assert_eq!(titles, [("Checkout", 1), ("Goals", 2), ("Risks", 2)]);
        assert!(s[1].body.contains("# not a heading") && s[1].body.contains("###Nope"), "{:?}", s[1]);
        let pre = sections(Format::Markdown, "Before.\n# T\n");
        assert_eq!((pre[0].title.as_str(), pre[0].body.as_str()), ("", "Before.\n"));
        assert_eq!(
            Section { title: "  Open   Questions: ".into(), level: 2, body: String::new() }.key(),
            "open questions"
        );
    }

    #[test]
    fn each_section_knows_the_version_that_last_changed_it() {
        let v1 = "# T\n## Goals\nFast.\n## Risks\nFraud.\n";
        let v2 = "# T\n## Goals\nFaster.\n## Risks\nFraud.\n";
        let v3 = "# T\n## Goals\nFaster.\n## Risks\nFraud.\n## Timeline\nMay.\n";
        let v4 = "# T\n## Goals\nFaster.\n\n## Risks\nFraud.  \n## Timeline\nMay.\n";
        let at: Vec<(String, usize)> =
            last_changed(Format::Markdown, &[v4, v3, v2, v1]).into_iter().map(|(s, i)| (s.title, i)).collect();
        // v4 only moved whitespace; Timeline came in v3, Goals changed in v2, the rest is v1's.
        assert_eq!(at, [("T".into(), 3), ("Goals".into(), 2), ("Risks".into(), 3), ("Timeline".into(), 1)]);
        assert!(last_changed(Format::Markdown, &[]).is_empty());
        assert_eq!(last_changed(Format::Markdown, &[v1])[1].1, 0, "one version: it made everything");
    }

    #[test]
    fn json_is_cut_at_top_level_fields() {
        let s = sections(Format::Json, r#"{"board": "esp32", "build": {"flags": ["-O2"]}}"#);
        assert_eq!(s.iter().map(|s| s.title.as_str()).collect::<Vec<_>>(), ["board", "build"]);
        assert!(s[1].body.contains("\"-O2\""));
        assert_eq!(sections(Format::Json, "[1, 2]").len(), 1, "not an object: one section");
    }
}
