//! Quire's version history: what a change to a document is worth.
//!
//! A document is versioned as a file: Markdown for a PRD, pretty JSON for a board
//! configuration or a moodboard. [`judge`] compares the last version's file with the
//! current one and says whether the change makes a version and which number it bumps:
//!
//! * nothing, when only whitespace changed or the edits were undone;
//! * **major** for a change of structure: a Markdown section added, removed or renamed; a
//!   JSON field added or removed, or its type changed;
//! * **patch** for a small fix: at most [`Thresholds::patch_max_chars`] characters changed;
//! * **minor** for any other change of content.
//!
//! It also writes the version's message from the change ("Added section 'Risks'; edited
//! 'Goals'"). [`diff`] gives unified and per-section diffs of any two versions.
//!
//! [`repo::Repo`] keeps a workspace's versions as commits of a bare git repository.
//!
//! Pushes go over git's smart HTTP protocol through Quire's own HTTP client (`http`), so
//! `https://` remotes need no TLS library in libgit2.
//!
//! **Knows nothing of storage or Quire's API.**

pub mod diff;
mod http;
mod judge;
pub mod remote;
pub mod repo;
mod sections;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use judge::{Change, Judgement, field_paths, judge};
pub use sections::{Section, last_changed, sections};

use serde::{Deserialize, Serialize};

/// How a document's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Markdown,
    Json,
}

impl Format {
    /// The file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Json => "json",
        }
    }
}

/// Which part of the version number a change bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

/// The limits the judgement uses; instance settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A change of at most this many characters (inserted plus deleted) is a patch.
    pub patch_max_chars: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { patch_max_chars: 20 }
    }
}

/// A semantic version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Semver {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Semver {
    /// A document's first version.
    pub const FIRST: Semver = Semver { major: 1, minor: 0, patch: 0 };

    pub fn bump(self, bump: Bump) -> Semver {
        match bump {
            Bump::Major => Semver { major: self.major + 1, minor: 0, patch: 0 },
            Bump::Minor => Semver { minor: self.minor + 1, patch: 0, ..self },
            Bump::Patch => Semver { patch: self.patch + 1, ..self },
        }
    }
}

impl std::fmt::Display for Semver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a version number could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a version: write it as major.minor.patch, e.g. 1.4.2")]
pub struct BadVersion(pub String);

impl std::str::FromStr for Semver {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.to_string());
        let mut parts = s.trim().trim_start_matches('v').split('.').map(|p| p.parse::<u32>().map_err(|_| bad()));
        let (Some(major), Some(minor), Some(patch), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Semver { major: major?, minor: minor?, patch: patch? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_bump_and_read_back() {
        let v = Semver::FIRST;
        assert_eq!(v.to_string(), "1.0.0");
        assert_eq!(v.bump(Bump::Patch).bump(Bump::Patch).to_string(), "1.0.2");
        assert_eq!(v.bump(Bump::Patch).bump(Bump::Minor).to_string(), "1.1.0");
        assert_eq!(v.bump(Bump::Minor).bump(Bump::Major).to_string(), "2.0.0");
        assert_eq!("2.10.3".parse::<Semver>().unwrap(), Semver { major: 2, minor: 10, patch: 3 });
        assert_eq!("v1.2.3".parse::<Semver>().unwrap().to_string(), "1.2.3");
        for bad in ["1.2", "1.2.3.4", "a.b.c", "", "1..2"] {
            assert!(bad.parse::<Semver>().is_err(), "{bad}");
        }
        assert!(Semver { major: 1, minor: 10, patch: 0 } > Semver { major: 1, minor: 9, patch: 9 });
    }
}
