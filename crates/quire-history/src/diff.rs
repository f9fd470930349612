//! Diffs between two versions of a document's file: unified, and section by section.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use similar::TextDiff;

use crate::Format;
use crate::sections::{collapse, sections};

/// How long one request's diffs may search for the smallest difference. Past it, the diff
/// falls back to a coarser one (still a correct diff, with more lines changed than needed),
/// so two large unrelated texts cost a bounded time.
pub const DEADLINE: Duration = Duration::from_millis(500);

/// A unified diff (`---`/`+++` headers, hunks with 3 lines of context); empty when the texts
/// are equal. Searches until [`DEADLINE`] from now.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    unified_until(old, new, old_name, new_name, Instant::now() + DEADLINE)
}

fn unified_until(old: &str, new: &str, old_name: &str, new_name: &str, deadline: Instant) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::configure()
        .deadline(deadline)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
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
/// Whitespace-only differences do not count. A section is matched by its title (the first
/// of the old file's sections with that title); the work is linear in the number of
/// sections, and all the sections' diffs together search until [`DEADLINE`] from now.
pub fn by_section(format: Format, old: &str, new: &str) -> Vec<SectionDiff> {
    let deadline = Instant::now() + DEADLINE;
    let before = sections(format, old);
    let after = sections(format, new);
    let mut old_by_key = HashMap::with_capacity(before.len());
    for b in &before {
        old_by_key.entry(b.key()).or_insert(b);
    }
    let mut new_keys = HashSet::with_capacity(after.len());
    let mut out = Vec::new();
    for s in &after {
        let key = s.key();
        match old_by_key.get(&key) {
            None => out.push(SectionDiff {
                section: s.title.clone(),
                change: "added",
                diff: unified_until("", &s.body, "/dev/null", &s.title, deadline),
            }),
            Some(b) if collapse(&b.body) != collapse(&s.body) => out.push(SectionDiff {
                section: s.title.clone(),
                change: "edited",
                diff: unified_until(&b.body, &s.body, &b.title, &s.title, deadline),
            }),
            Some(_) => {}
        }
        new_keys.insert(key);
    }
    for b in before.iter().filter(|b| !new_keys.contains(&b.key())) {
        out.push(SectionDiff {
            section: b.title.clone(),
            change: "removed",
            diff: unified_until(&b.body, "", &b.title, "/dev/null", deadline),
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

    /// Two large texts with nothing in common are Myers' worst case (its search grows with
    /// the product of their lengths); thousands of sections were a quadratic match. Both
    /// end in bounded time and still give a diff that turns one text into the other.
    #[test]
    fn worst_cases_are_bounded() {
        let old: String = (0..40_000).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..40_000).map(|i| format!("b{}\n", i * 7919 % 40_000)).collect();
        let started = Instant::now();
        let u = unified(&old, &new, "a", "b");
        let took = started.elapsed();
        assert!(took < DEADLINE * 20, "unbounded diff: {took:?}");
        assert!(u.contains("-a0\n") && u.contains("+b0\n"), "not a diff");
        assert_eq!(u.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).count(), 40_000);

        let many = |tag: &str| -> String { (0..20_000).map(|i| format!("## S{i}\n{tag}\n")).collect() };
        let started = Instant::now();
        let s = by_section(Format::Markdown, &many("x"), &many("y"));
        let took = started.elapsed();
        assert_eq!(s.len(), 20_000);
        assert!(s.iter().all(|d| d.change == "edited"));
        assert!(took < DEADLINE * 20, "sections took {took:?}");
    }
}
