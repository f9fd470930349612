//! Properties of the judgement and the diffs over generated documents.

use proptest::prelude::*;
use quire_history::{Bump, Format, Thresholds, diff, judge};

/// A Markdown document of a few sections with short bodies.
fn document() -> impl Strategy<Value = String> {
    let section = ("[A-Z][a-z]{2,8}", prop::collection::vec("[a-z ]{0,30}", 0..4));
    ("[A-Z][a-z ]{0,12}", prop::collection::vec(section, 0..6)).prop_map(|(title, sections)| {
        let mut s = format!("# {title}\n");
        for (heading, lines) in sections {
            s.push_str(&format!("\n## {heading}\n"));
            for l in lines {
                s.push_str(&l);
                s.push('\n');
            }
        }
        s
    })
}

proptest! {
    #[test]
    fn a_document_against_itself_is_no_change(doc in document()) {
        prop_assert_eq!(judge(Format::Markdown, Some(&doc), &doc, &Thresholds::default()), None);
        prop_assert_eq!(diff::unified(&doc, &doc, "a", "b"), "");
        prop_assert!(diff::by_section(Format::Markdown, &doc, &doc).is_empty());
    }

    #[test]
    fn any_real_change_makes_a_version_and_says_so(a in document(), b in document()) {
        let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let j = judge(Format::Markdown, Some(&a), &b, &Thresholds::default());
        prop_assert_eq!(j.is_some(), collapse(&a) != collapse(&b));
        if let Some(j) = j {
            prop_assert!(!j.message.is_empty());
            prop_assert!(j.changed_chars > 0);
            if j.bump != Bump::Major {
                // No structural change: the same section titles, in any order.
                let titles = |s: &str| {
                    let mut t: Vec<String> = quire_history::sections(Format::Markdown, s).iter().map(|x| x.title.to_lowercase()).collect();
                    t.sort();
                    t
                };
                prop_assert_eq!(titles(&a), titles(&b));
            }
        }
    }
}
