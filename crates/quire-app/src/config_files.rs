//! The files that go with a board configuration, as Armbian's `userpatches/` holds them
//! (`customize-image.sh`, `overlay/…`, kernel config fragments): kept with the configuration
//! itself — one entry per path in its `files` map (`quire_collab::build_config::FILES`), the
//! bytes in the asset store by SHA-256 — so that every change is a version of the
//! configuration in its history, everyone editing it sees the list change live, a build's
//! snapshot names exactly the bytes it lays out, and the asset collector sees them named.
//!
//! A write names the version it replaces (`If-Match` over HTTP): someone who saved in
//! between is never overwritten unseen.

use std::sync::Arc;

use bytes::Bytes;
use quire_collab::build_config::{self, FILES, FileEntry, MAX_FILE_BYTES};
use quire_core::{Document, DocumentKind, Error, PresenceUser, Principal, Result, Role};
use quire_store::Store;
use serde::Serialize;
use serde_json::{Value, json};

use crate::assets::{Assets, Delivery};

/// What a write expects of the path it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// Nothing: the write makes a new file (`If-None-Match: *`).
    Absent,
    /// The version with this SHA-256 (`If-Match`).
    Sha(String),
}

/// One file of a configuration: its path inside `userpatches/` and its entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: String,
    #[serde(flatten)]
    pub entry: FileEntry,
}

/// One version of a file in its configuration's history, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct FileVersion {
    /// The configuration's version (`major.minor.patch`).
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// Who made that version of the configuration: `[{id, name, email}]`.
    pub authors: Value,
    /// The file as that version holds it; `None` where the version removed it.
    pub file: Option<FileEntry>,
}

/// Most versions of the configuration a file's history looks through.
const HISTORY_DEPTH: u32 = 100;

/// Who writes: their principal, and how they are shown to those editing with them.
pub struct Writer<'a> {
    pub who: &'a Principal,
    pub presence: PresenceUser,
}

/// The files service.
pub struct ConfigFiles {
    store: Arc<dyn Store>,
    collab: Arc<quire_collab::Collab>,
    assets: Arc<Assets>,
}

fn entry_in(content: &Value, path: &str) -> Option<FileEntry> {
    content.get(FILES)?.get(path).and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn check_expectation(path: &str, current: Option<&FileEntry>, expect: &Expect) -> Result<()> {
    match (expect, current) {
        (Expect::Any, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Absent, Some(_)) => {
            Err(Error::Conflict(format!("there is already a file {path}: open it, or choose another name")))
        }
        (Expect::Sha(_), None) => Err(Error::Conflict(format!(
            "since you opened it, {path} was removed or renamed; your save was not applied (save it under a name to keep your text)"
        ))),
        (Expect::Sha(sha), Some(f)) if f.sha256 != *sha => {
            let who = [&f.updated_by_name, &f.updated_by]
                .into_iter()
                .find(|n| !n.is_empty())
                .map_or("someone", |n| n.as_str());
            Err(Error::Conflict(format!("{who} changed {path} since you opened it; your save was not applied")))
        }
        (Expect::Sha(_), Some(_)) => Ok(()),
    }
}

fn checked_path(path: &str) -> Result<()> {
    build_config::check_path(path).map_err(|m| Error::invalid("path", m))
}

fn checked_mode(mode: &str) -> Result<()> {
    if mode == "644" || mode == "755" {
        Ok(())
    } else {
        Err(Error::invalid("mode", "mode is 644, or 755 for a program (a script Armbian runs)"))
    }
}

/// Whether `bytes` are text a person edits: UTF-8 without NUL.
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

impl ConfigFiles {
    pub fn new(store: Arc<dyn Store>, collab: Arc<quire_collab::Collab>, assets: Arc<Assets>) -> Arc<ConfigFiles> {
        Arc::new(ConfigFiles { store, collab, assets })
    }

    /// The board configuration `id`, for someone with at least `role` on it.
    async fn config(&self, who: &Principal, id: &str, role: Role) -> Result<Document> {
        let (doc, has) = self.store.role_on_document(who, id).await?;
        if doc.kind != DocumentKind::BoardConfig {
            return Err(Error::invalid(
                "id",
                format!("{} is a {}; files go with board configurations", doc.id, doc.kind.as_str()),
            ));
        }
        if has < role {
            return Err(Error::Forbidden("changing a configuration's files needs the editor role".into()));
        }
        Ok(doc)
    }

    async fn content(&self, doc: &Document) -> Result<Value> {
        let kind = quire_collab::kinds::of(doc.kind);
        self.collab.read(&doc.id, |d| kind.read_json(d)).await
    }

    /// A configuration's files, in path order.
    pub async fn list(&self, who: &Principal, id: &str) -> Result<Vec<ConfigFile>> {
        let doc = self.config(who, id, Role::Viewer).await?;
        let content = self.content(&doc).await?;
        Ok(build_config::files(&content).into_iter().map(|(path, entry)| ConfigFile { path, entry }).collect())
    }

    /// Applies a change to the `files` map, checking first what is there (on the copy the
    /// change is made on, so what is checked is what is changed).
    async fn change_files(
        &self,
        doc: &Document,
        writer: PresenceUser,
        change: impl FnOnce(&Value) -> Result<Value> + Send,
    ) -> Result<()> {
        let kind = quire_collab::kinds::of(doc.kind);
        self.collab
            .edit(&doc.id, writer, move |d| {
                let patch = change(&kind.read_json(d))?;
                kind.patch_json(d, &json!({ FILES: patch }))
            })
            .await
    }

    /// Writes a file's bytes (a new file, or a new version of one). `mode` defaults to the
    /// file's own, or `755` for a new `.sh`. Answers the file and whether it is new.
    pub async fn put(
        &self,
        by: Writer<'_>,
        id: &str,
        path: &str,
        bytes: Bytes,
        mode: Option<&str>,
        expect: Expect,
    ) -> Result<(ConfigFile, bool)> {
        let Writer { who, presence: writer } = by;
        checked_path(path)?;
        if let Some(m) = mode {
            checked_mode(m)?;
        }
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::LimitExceeded(format!("a file is at most {MAX_FILE_BYTES} bytes")));
        }
        let doc = self.config(who, id, Role::Editor).await?;
        // Refused before any bytes are kept when it cannot be written.
        let before = self.content(&doc).await?;
        let current = entry_in(&before, path);
        check_expectation(path, current.as_ref(), &expect)?;
        if current.is_none() && build_config::files(&before).len() >= build_config::MAX_FILES {
            return Err(Error::LimitExceeded(format!(
                "a configuration holds at most {} files: remove one first",
                build_config::MAX_FILES
            )));
        }
        let text = is_text(&bytes);
        let size = bytes.len() as u64;
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let asset = self.assets.keep_file(who, &doc.workspace_id, &name, text, bytes).await?;
        let mode = mode.map(str::to_string).unwrap_or_else(|| match &current {
            Some(f) => f.mode.clone(),
            None if path.ends_with(".sh") => "755".into(),
            None => "644".into(),
        });
        let entry = FileEntry {
            sha256: asset.sha256,
            size,
            mode,
            text,
            updated_by: who.actor().to_string(),
            updated_by_name: writer.name.clone(),
            updated_at: quire_core::now_ms(),
        };
        let value = serde_json::to_value(&entry).map_err(|e| Error::Internal(e.to_string()))?;
        let at = path.to_string();
        self.change_files(&doc, writer, move |content| {
            check_expectation(&at, entry_in(content, &at).as_ref(), &expect)?;
            Ok(json!({ at: value }))
        })
        .await?;
        Ok((ConfigFile { path: path.to_string(), entry }, current.is_none()))
    }

    /// Renames a file and/or changes its mode. Answers it as it is now.
    pub async fn update(
        &self,
        by: Writer<'_>,
        id: &str,
        path: &str,
        to: Option<&str>,
        mode: Option<&str>,
        expect: Expect,
    ) -> Result<ConfigFile> {
        let Writer { who, presence: writer } = by;
        let to = to.unwrap_or(path).to_string();
        checked_path(&to)?;
        if let Some(m) = mode {
            checked_mode(m)?;
        }
        let doc = self.config(who, id, Role::Editor).await?;
        let (from, mode) = (path.to_string(), mode.map(str::to_string));
        let (by, by_name) = (who.actor().to_string(), writer.name.clone());
        let moved = std::sync::Arc::new(std::sync::Mutex::new(None));
        let out = moved.clone();
        self.change_files(&doc, writer, move |content| {
            let current = entry_in(content, &from).ok_or_else(|| Error::not_found("file", from.clone()))?;
            check_expectation(&from, Some(&current), &expect)?;
            if to != from && entry_in(content, &to).is_some() {
                return Err(Error::Conflict(format!(
                    "there is already a file {to}: remove it first, or choose another name"
                )));
            }
            let entry = FileEntry {
                mode: mode.unwrap_or(current.mode.clone()),
                updated_by: by,
                updated_by_name: by_name,
                updated_at: quire_core::now_ms(),
                ..current
            };
            let value = serde_json::to_value(&entry).map_err(|e| Error::Internal(e.to_string()))?;
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(ConfigFile { path: to.clone(), entry });
            Ok(if to == from { json!({ from: value }) } else { json!({ from: null, to: value }) })
        })
        .await?;
        let file = moved.lock().unwrap_or_else(|e| e.into_inner()).take();
        file.ok_or_else(|| Error::Internal("the change was not made".into()))
    }

    /// Removes a file from the configuration (its versions stay in the history).
    pub async fn delete(&self, by: Writer<'_>, id: &str, path: &str, expect: Expect) -> Result<()> {
        let Writer { who, presence: writer } = by;
        let doc = self.config(who, id, Role::Editor).await?;
        let at = path.to_string();
        self.change_files(&doc, writer, move |content| {
            let current = entry_in(content, &at).ok_or_else(|| Error::not_found("file", at.clone()))?;
            check_expectation(&at, Some(&current), &expect)?;
            Ok(json!({ at: null }))
        })
        .await
    }

    /// A file's bytes: as the configuration holds it now, or the version with `sha256`
    /// (one its history names: the workspace must hold those bytes).
    pub async fn open(&self, who: &Principal, id: &str, path: &str, sha256: Option<&str>) -> Result<Delivery> {
        let doc = self.config(who, id, Role::Viewer).await?;
        let sha = match sha256 {
            Some(s) => s.to_string(),
            None => {
                let content = self.content(&doc).await?;
                entry_in(&content, path).ok_or_else(|| Error::not_found("file", path))?.sha256
            }
        };
        let asset = match self.store.get_asset(&doc.workspace_id, &sha).await {
            Err(Error::NotFound { .. }) => return Err(Error::not_found("file", format!("{path} at {sha}"))),
            other => other?,
        };
        let media_type =
            if asset.media_type.starts_with("text/") { asset.media_type } else { "application/octet-stream".into() };
        Ok(Delivery::of_object(self.assets.objects(), media_type, sha, asset.size.max(0) as u64))
    }

    /// The versions of the configuration in which `path` changed, newest first (the last
    /// [`HISTORY_DEPTH`] versions looked through).
    pub async fn history(&self, who: &Principal, id: &str, path: &str) -> Result<Vec<FileVersion>> {
        let doc = self.config(who, id, Role::Viewer).await?;
        let versions = self.store.list_versions(&doc.id, None, HISTORY_DEPTH).await?;
        let mut seen = Vec::with_capacity(versions.len());
        for v in versions {
            let Some((version, content)) = self.store.get_version(&doc.id, &v.version).await? else { continue };
            let content: Value = serde_json::from_str(&content).unwrap_or(Value::Null);
            seen.push(FileVersion {
                version: version.version,
                created_at: version.created_at,
                authors: version.authors,
                file: entry_in(&content, path),
            });
        }
        // Oldest first, keeping the versions where the file differs from the one before.
        seen.reverse();
        let mut out: Vec<FileVersion> = Vec::new();
        let mut last: Option<Option<String>> = None;
        for v in seen {
            let now = v.file.as_ref().map(|f| format!("{}:{}", f.sha256, f.mode));
            let changed = match &last {
                None => now.is_some(),
                Some(before) => *before != now,
            };
            last = Some(now);
            if changed {
                out.push(v);
            }
        }
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str, by: &str) -> FileEntry {
        FileEntry {
            sha256: sha.into(),
            size: 1,
            mode: "644".into(),
            text: true,
            updated_by: by.into(),
            updated_by_name: String::new(),
            updated_at: 0,
        }
    }

    #[test]
    fn a_write_names_what_it_replaces() {
        let f = entry("aa", "usr_ada");
        check_expectation("x", None, &Expect::Any).unwrap();
        check_expectation("x", Some(&f), &Expect::Any).unwrap();
        check_expectation("x", None, &Expect::Absent).unwrap();
        check_expectation("x", Some(&f), &Expect::Sha("aa".into())).unwrap();
        let msg = |r: Result<()>| match r.unwrap_err() {
            Error::Conflict(m) => m,
            e => panic!("{e}"),
        };
        assert!(msg(check_expectation("x", Some(&f), &Expect::Absent)).contains("already a file"));
        assert!(
            msg(check_expectation("x", Some(&f), &Expect::Sha("bb".into())))
                .contains("usr_ada changed x since you opened it")
        );
        assert!(msg(check_expectation("x", None, &Expect::Sha("bb".into()))).contains("removed or renamed"));
    }

    #[test]
    fn text_is_utf8_without_nul() {
        assert!(is_text(b"#!/bin/bash\necho hi\n"));
        assert!(is_text("überall\n".as_bytes()));
        assert!(!is_text(b"\x7fELF\x00\x01"));
        assert!(!is_text(&[0xff, 0xfe, 0x41]));
    }
}
