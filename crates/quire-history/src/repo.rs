//! A workspace's history as a git repository: one file per document, one commit per version,
//! written in-process with libgit2. Calls block: run them on a blocking thread.

use std::path::Path;

use git2::{FileMode, ObjectType, Oid, Repository, Signature, Time};

pub use crate::http::Credentials;

/// The branch versions are committed on.
pub const BRANCH: &str = "refs/heads/main";

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
#[error("history repository: {0}")]
pub struct RepoError(String);

impl From<git2::Error> for RepoError {
    fn from(e: git2::Error) -> Self {
        RepoError(e.message().to_string())
    }
}

/// Who made a version, as the commit names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// One version to commit: `content` becomes the whole of `path`.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
    /// The first author signs the commit; the others are `Co-authored-by` trailers.
    pub authors: &'a [Person],
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    pub message: &'a str,
}

/// A bare repository.
pub struct Repo {
    repo: Repository,
}

fn signature(p: &Person, at_ms: i64) -> Result<Signature<'static>, RepoError> {
    let name = if p.name.trim().is_empty() { "Quire" } else { p.name.trim() };
    let email = if p.email.trim().is_empty() { "quire@localhost" } else { p.email.trim() };
    Ok(Signature::new(name, email, &Time::new(at_ms.div_euclid(1000), 0))?)
}

impl Repo {
    /// Opens the bare repository at `path`, creating it (and its folders) if it is not there.
    pub fn open_or_init(path: &Path) -> Result<Repo, RepoError> {
        let repo = match Repository::open_bare(path) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(path).map_err(|e| RepoError(format!("{}: {e}", path.display())))?;
                let mut opts = git2::RepositoryInitOptions::new();
                opts.bare(true).initial_head("main");
                Repository::init_opts(path, &opts)?
            }
        };
        Ok(Repo { repo })
    }

    /// Commits a version on `main`; its hash.
    pub fn commit(&self, c: &Commit<'_>) -> Result<String, RepoError> {
        let blob = self.repo.blob(c.content)?;
        let parent = match self.repo.find_reference(BRANCH) {
            Ok(r) => Some(r.peel_to_commit()?),
            Err(_) => None,
        };
        let base = match &parent {
            Some(p) => p.tree()?,
            None => self.repo.find_tree(self.repo.treebuilder(None)?.write()?)?,
        };
        let mut update = git2::build::TreeUpdateBuilder::new();
        update.upsert(c.path, blob, FileMode::Blob);
        let tree = self.repo.find_tree(update.create_updated(&self.repo, &base)?)?;
        let quire = Person { name: "Quire".into(), email: "quire@localhost".into() };
        let author = signature(c.authors.first().unwrap_or(&quire), c.at_ms)?;
        let committer = signature(&quire, c.at_ms)?;
        let mut message = c.message.trim_end().to_string();
        let co: Vec<String> =
            c.authors.iter().skip(1).map(|p| format!("Co-authored-by: {} <{}>", p.name, p.email)).collect();
        if !co.is_empty() {
            message.push_str("\n\n");
            message.push_str(&co.join("\n"));
        }
        message.push('\n');
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = self.repo.commit(Some(BRANCH), &author, &committer, &message, &tree, &parents)?;
        Ok(oid.to_string())
    }

    /// The file at `path` as commit `hash` has it.
    pub fn read(&self, hash: &str, path: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let commit = self.repo.find_commit(Oid::from_str(hash)?)?;
        let entry = match commit.tree()?.get_path(Path::new(path)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let object = entry.to_object(&self.repo)?;
        match object.kind() {
            Some(ObjectType::Blob) => Ok(Some(object.peel_to_blob()?.content().to_vec())),
            _ => Ok(None),
        }
    }

    /// The hash `main` points at.
    pub fn head(&self) -> Result<Option<String>, RepoError> {
        match self.repo.find_reference(BRANCH) {
            Ok(r) => Ok(Some(r.peel_to_commit()?.id().to_string())),
            Err(_) => Ok(None),
        }
    }

    /// Commits on `main`, newest first: (hash, summary).
    pub fn log(&self, most: usize) -> Result<Vec<(String, String)>, RepoError> {
        if self.head()?.is_none() {
            return Ok(Vec::new());
        }
        let mut walk = self.repo.revwalk()?;
        walk.push_ref(BRANCH)?;
        let mut out = Vec::new();
        for oid in walk.take(most) {
            let c = self.repo.find_commit(oid?)?;
            out.push((c.id().to_string(), c.summary().ok().flatten().unwrap_or_default().to_string()));
        }
        Ok(out)
    }

    /// Pushes `main` to `url`: a path, a `file://` URL, or an `http(s)://` URL of a smart
    /// HTTP git server (with `credentials`, if it asks for them) at an address `outbound`
    /// permits (checked for the URL, every address its name resolves to, and redirects).
    pub fn push(
        &self,
        url: &str,
        credentials: Option<&Credentials>,
        outbound: &quire_net::Outbound,
    ) -> Result<(), RepoError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            outbound.check(url).map_err(|r| RepoError(r.0))?;
            crate::http::register().map_err(RepoError)?;
        }
        crate::http::with_settings(credentials, outbound, || self.push_to(url))
    }

    fn push_to(&self, url: &str) -> Result<(), RepoError> {
        let mut remote = self.repo.remote_anonymous(url)?;
        let refspec = format!("+{BRANCH}:{BRANCH}");
        let mut rejected: Option<String> = None;
        {
            let mut callbacks = git2::RemoteCallbacks::new();
            callbacks.push_update_reference(|reference, status| {
                if let Some(s) = status {
                    rejected = Some(format!("{reference}: {s}"));
                }
                Ok(())
            });
            let mut options = git2::PushOptions::new();
            options.remote_callbacks(callbacks);
            remote.push(&[refspec.as_str()], Some(&mut options))?;
        }
        match rejected {
            Some(why) => Err(RepoError(format!("the remote refused the push: {why}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The test git servers listen on loopback, which pushes must be allowed to reach.
    fn local() -> quire_net::Outbound {
        quire_net::Outbound::parse("127.0.0.1").unwrap()
    }

    use super::*;

    fn person(name: &str) -> Person {
        Person { name: name.into(), email: format!("{}@example.com", name.to_lowercase()) }
    }

    #[test]
    fn versions_are_commits_of_one_file_each() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open_or_init(&dir.path().join("ws_1.git")).unwrap();
        assert_eq!(repo.head().unwrap(), None);
        let (ada, bob) = (person("Ada"), person("Bob"));
        let first = repo
            .commit(&Commit {
                path: "documents/doc_1.md",
                content: b"# One\n",
                authors: std::slice::from_ref(&ada),
                at_ms: 1_700_000_000_000,
                message: "doc_1 1.0.0: First version",
            })
            .unwrap();
        let other = repo
            .commit(&Commit {
                path: "documents/doc_2.json",
                content: b"{}\n",
                authors: &[],
                at_ms: 1_700_000_001_000,
                message: "doc_2 1.0.0: First version",
            })
            .unwrap();
        let second = repo
            .commit(&Commit {
                path: "documents/doc_1.md",
                content: b"# One\n\n## Goals\n",
                authors: &[ada.clone(), bob],
                at_ms: 1_700_000_002_000,
                message: "doc_1 2.0.0: Added section 'Goals'",
            })
            .unwrap();
        assert_eq!(repo.read(&first, "documents/doc_1.md").unwrap().unwrap(), b"# One\n");
        assert_eq!(repo.read(&first, "documents/doc_2.json").unwrap(), None, "not there yet");
        assert_eq!(repo.read(&second, "documents/doc_1.md").unwrap().unwrap(), b"# One\n\n## Goals\n");
        assert_eq!(repo.read(&second, "documents/doc_2.json").unwrap().unwrap(), b"{}\n", "other files stay");
        assert_eq!(repo.head().unwrap().as_deref(), Some(second.as_str()));
        let log = repo.log(10).unwrap();
        assert_eq!(log.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(), [&second, &other, &first]);
        assert_eq!(log[0].1, "doc_1 2.0.0: Added section 'Goals'");
        let commit = repo.repo.find_commit(Oid::from_str(&second).unwrap()).unwrap();
        assert_eq!(commit.author().name().ok(), Some("Ada"));
        assert_eq!(commit.committer().name().ok(), Some("Quire"));
        assert!(commit.message().unwrap().contains("Co-authored-by: Bob <bob@example.com>"));
        assert_eq!(commit.time().seconds(), 1_700_000_002);
        // Opening again finds the same history.
        let again = Repo::open_or_init(&dir.path().join("ws_1.git")).unwrap();
        assert_eq!(again.head().unwrap(), Some(second));
    }

    #[test]
    fn main_pushes_to_a_bare_remote() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open_or_init(&dir.path().join("local.git")).unwrap();
        let remote_path = dir.path().join("remote.git");
        git2::Repository::init_bare(&remote_path).unwrap();
        let hash =
            repo.commit(&Commit { path: "a.md", content: b"x\n", authors: &[], at_ms: 0, message: "one" }).unwrap();
        repo.push(remote_path.to_str().unwrap(), None, &local()).unwrap();
        let remote = Repo::open_or_init(&remote_path).unwrap();
        assert_eq!(remote.head().unwrap(), Some(hash.clone()));
        let next =
            repo.commit(&Commit { path: "a.md", content: b"y\n", authors: &[], at_ms: 1000, message: "two" }).unwrap();
        repo.push(&format!("file://{}", remote_path.display()), None, &local()).unwrap();
        assert_eq!(remote.head().unwrap(), Some(next));
        let e = repo.push(dir.path().join("nowhere").to_str().unwrap(), None, &local()).unwrap_err();
        assert!(e.to_string().starts_with("history repository: "), "{e}");
    }

    #[test]
    fn main_pushes_over_smart_http_with_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open_or_init(&dir.path().join("local.git")).unwrap();
        let served = dir.path().join("served");
        git2::Repository::init_bare(served.join("team.git")).unwrap();
        let server = crate::testing::GitHttpServer::start(&served, Some(("ada", "s3cret-token"))).unwrap();
        let url = format!("{}/team.git", server.url);
        let hash =
            repo.commit(&Commit { path: "a.md", content: b"x\n", authors: &[], at_ms: 0, message: "one" }).unwrap();

        // Loopback is refused unless the instance allows it.
        let right = Credentials { username: "ada".into(), password: "s3cret-token".into() };
        let e = repo.push(&url, Some(&right), &quire_net::Outbound::public_only()).unwrap_err().to_string();
        assert!(e.contains(quire_net::SETTING), "{e}");
        let e = repo.push(&url, None, &local()).unwrap_err().to_string();
        assert!(e.contains("asks for credentials") && e.contains("401"), "{e}");
        let wrong = Credentials { username: "ada".into(), password: "wrong".into() };
        let e = repo.push(&url, Some(&wrong), &local()).unwrap_err().to_string();
        assert!(e.contains("401") && !e.contains("wrong"), "the password stays out of errors: {e}");
        assert_eq!(server.pushes(), 0);
        assert_eq!(server.refused(), 2);

        repo.push(&url, Some(&right), &local()).unwrap();
        let remote = Repo::open_or_init(&served.join("team.git")).unwrap();
        assert_eq!(remote.head().unwrap(), Some(hash));
        let next =
            repo.commit(&Commit { path: "a.md", content: b"y\n", authors: &[], at_ms: 1000, message: "two" }).unwrap();
        repo.push(&format!("{url}/"), Some(&right), &local()).unwrap();
        assert_eq!(remote.head().unwrap(), Some(next));
        assert_eq!(server.pushes(), 2);

        let e = repo.push(&format!("{}/missing.git", server.url), Some(&right), &local()).unwrap_err().to_string();
        assert!(e.contains("no git repository") || e.contains("404"), "{e}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = repo.push(&format!("http://{closed}/team.git"), Some(&right), &local()).unwrap_err().to_string();
        assert!(e.contains(&closed.to_string()), "{e}");
    }
}
