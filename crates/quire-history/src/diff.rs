//! Diffs between two versions of a document's file: unified, and section by section.

use serde::Serialize;
use similar::TextDiff;

use crate::Format;
use crate::sections::{collapse, sections};

/// A unified diff (`---`/`+++` headers, hunks with 3 lines of context); empty when the texts
/// are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(old_name, new_name).to_string()
}

/// One section's part of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionDiff {
    pub section: String,
    /// `added`, `removed` or `edited`.
    pub change: &'static str,
    /// The section's lines as a unified diff.
    pub diff: String,
}

/// The sections that differ, in the new file's order, then those only the old one has.
/// Whitespace-only differences do not count.
pub fn by_section(format: Format, old: &str, new: &str) -> Vec<SectionDiff> {
    let before = sections(format, old);
    let after = sections(format, new);
    let mut out = Vec::new();
    for s in &after {
        match before.iter().find(|b| b.key() == s.key()) {
            None => out.push(SectionDiff {
                section: s.title.clone(),
                change: "added",
                diff: unified("", &s.body, "/dev/null", &s.title),
            }),
            Some(b) if collapse(&b.body) != collapse(&s.body) => out.push(SectionDiff {
                section: s.title.clone(),
                change: "edited",
                diff: unified(&b.body, &s.body, &b.title, &s.title),
            }),
            Some(_) => {}
        }
    }
    for b in before.iter().filter(|b| !after.iter().any(|s| s.key() == b.key())) {
        out.push(SectionDiff {
            section: b.title.clone(),
            change: "removed",
            diff: unified(&b.body, "", &b.title, "/dev/null"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_and_per_section() {
        let old = "# T\n## Goals\n- Fast\n## Notes\nx\n";
        let new = "# T\n## Goals\n- Faster\n## Risks\nFraud\n";
        let u = unified(old, new, "a/doc.md", "b/doc.md");
        assert!(u.starts_with("--- a/doc.md\n+++ b/doc.md\n@@"), "{u}");
        assert!(u.contains("-- Fast\n") && u.contains("+- Faster\n") && u.contains("+## Risks\n"), "{u}");
        assert_eq!(unified(old, old, "a", "b"), "");
        let s = by_section(Format::Markdown, old, new);
        let summary: Vec<(&str, &str)> = s.iter().map(|d| (d.section.as_str(), d.change)).collect();
        assert_eq!(summary, [("Goals", "edited"), ("Risks", "added"), ("Notes", "removed")]);
        assert!(s[0].diff.contains("+- Faster"), "{}", s[0].diff);
        assert!(by_section(Format::Markdown, old, old).is_empty());
    }
}
