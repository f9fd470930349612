//! A configuration's files laid into an Armbian checkout's `userpatches/` for one build, and
//! the checkout put back as it was afterwards: files Quire wrote are removed, the checkout's
//! own files they stood in for come back, folders Quire made go.
//!
//! What was done is written first to `userpatches/.quire-laid.json`, so a worker that died
//! mid-build leaves enough behind for the next build to undo it before laying its own.
//! The checkout's own files wait in `userpatches/.quire-saved/` meanwhile.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use quire_collab::build_config::FileEntry;
use serde::{Deserialize, Serialize};

/// The record of what a build laid out.
const MANIFEST: &str = ".quire-laid.json";
/// Where the checkout's own files wait.
const SAVED: &str = ".quire-saved";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// Files written, relative to `userpatches/`.
    written: Vec<String>,
    /// The checkout's own files moved aside (to the same path under `.quire-saved/`).
    saved: Vec<String>,
    /// Folders made, deepest last.
    made: Vec<String>,
}

/// Files laid out for a build; dropping it puts the checkout back.
#[derive(Debug)]
pub struct Laid {
    root: PathBuf,
    manifest: Manifest,
}

impl Drop for Laid {
    fn drop(&mut self) {
        undo(&self.root, &self.manifest);
        let _ = std::fs::remove_file(self.root.join(MANIFEST));
    }
}

fn undo(root: &Path, m: &Manifest) {
    for p in &m.written {
        let _ = std::fs::remove_file(root.join(p));
    }
    for p in &m.saved {
        let _ = std::fs::rename(root.join(SAVED).join(p), root.join(p));
    }
    for d in m.made.iter().rev() {
        let _ = std::fs::remove_dir(root.join(d));
    }
    let _ = remove_empty_dirs(&root.join(SAVED));
}

fn remove_empty_dirs(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            remove_empty_dirs(&e.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Undoes what a build that never finished laid out (its manifest is still there).
pub fn recover(checkout: &Path) {
    let root = checkout.join("userpatches");
    let Ok(text) = std::fs::read_to_string(root.join(MANIFEST)) else { return };
    if let Ok(m) = serde_json::from_str::<Manifest>(&text) {
        tracing::warn!(files = m.written.len(), "putting back userpatches/ after a build that did not finish");
        undo(&root, &m);
    }
    let _ = std::fs::remove_file(root.join(MANIFEST));
}

/// Lays `files` into `<checkout>/userpatches/`, reading each one's bytes with `read`.
pub async fn lay<F, Fut>(checkout: &Path, files: &[(String, FileEntry)], read: F) -> std::io::Result<Laid>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<bytes::Bytes>>,
{
    recover(checkout);
    let root = checkout.join("userpatches");
    let mut laid = Laid { root: root.clone(), manifest: Manifest::default() };
    if files.is_empty() {
        return Ok(laid);
    }
    // userpatches/ itself stays: Armbian makes it on its first run anyway.
    std::fs::create_dir_all(&root)?;
    for (path, entry) in files {
        // Paths were checked when written (quire_collab::build_config::check_path); a
        // snapshot is data, so they are checked again before they touch the disk.
        quire_collab::build_config::check_path(path).map_err(std::io::Error::other)?;
        let target = root.join(path);
        let mut folder = PathBuf::new();
        for part in Path::new(path).parent().into_iter().flat_map(Path::components) {
            folder.push(part);
            let dir = root.join(&folder);
            if !dir.exists() {
                std::fs::create_dir_all(&dir)?;
                laid.manifest.made.push(folder.to_string_lossy().into_owned());
            }
        }
        if target.symlink_metadata().is_ok() {
            let aside = root.join(SAVED).join(path);
            std::fs::create_dir_all(aside.parent().expect("inside userpatches"))?;
            laid.manifest.saved.push(path.clone());
            write_manifest(&root, &laid.manifest)?;
            std::fs::rename(&target, &aside)?;
        }
        laid.manifest.written.push(path.clone());
        write_manifest(&root, &laid.manifest)?;
        let bytes = read(entry.sha256.clone()).await?;
        if bytes.len() as u64 != entry.size {
            return Err(std::io::Error::other(format!(
                "{path}: the asset store holds {} bytes, the configuration says {}",
                bytes.len(),
                entry.size
            )));
        }
        tokio::fs::write(&target, &bytes).await?;
        let mode = if entry.mode == "755" { 0o755 } else { 0o644 };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(laid)
}

fn write_manifest(root: &Path, m: &Manifest) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!("{MANIFEST}.part"));
    std::fs::write(&tmp, serde_json::to_vec(m).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, root.join(MANIFEST))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8], mode: &str) -> FileEntry {
        FileEntry {
            sha256: String::from_utf8_lossy(bytes).into_owned(),
            size: bytes.len() as u64,
            mode: mode.into(),
            text: true,
            updated_by: String::new(),
            updated_by_name: String::new(),
            updated_at: 0,
        }
    }

    async fn read(sha: String) -> std::io::Result<bytes::Bytes> {
        Ok(bytes::Bytes::from(sha))
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if p.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &p, out);
                } else {
                    out.push(format!("{rel}={}", std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[tokio::test]
    async fn files_are_laid_and_the_checkout_put_back() {
        let checkout = tempfile::tempdir().unwrap();
        let up = checkout.path().join("userpatches");
        std::fs::create_dir_all(up.join("overlay")).unwrap();
        std::fs::write(up.join("customize-image.sh"), "checkout's own").unwrap();
        std::fs::write(up.join("config-default.conf"), "kept").unwrap();
        let before = tree(checkout.path());

        let files = vec![
            ("customize-image.sh".to_string(), entry(b"ours", "755")),
            ("overlay/etc/motd".to_string(), entry(b"hello", "644")),
        ];
        let laid = lay(checkout.path(), &files, read).await.unwrap();
        assert_eq!(std::fs::read_to_string(up.join("customize-image.sh")).unwrap(), "ours");
        assert_eq!(std::fs::metadata(up.join("customize-image.sh")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read_to_string(up.join("overlay/etc/motd")).unwrap(), "hello");
        assert_eq!(std::fs::read_to_string(up.join("config-default.conf")).unwrap(), "kept");
        drop(laid);
        assert_eq!(tree(checkout.path()), before, "the checkout is as it was");

        // A worker that died mid-build: the next build undoes what it did first.
        let laid = lay(checkout.path(), &files, read).await.unwrap();
        std::mem::forget(laid);
        assert_eq!(std::fs::read_to_string(up.join("customize-image.sh")).unwrap(), "ours");
        let laid = lay(checkout.path(), &[], read).await.unwrap();
        drop(laid);
        assert_eq!(tree(checkout.path()), before, "the checkout is as it was after a crash too");

        // A size that does not match what the store holds stops the build, and is undone.
        let bad = vec![("a.sh".to_string(), FileEntry { size: 99, ..entry(b"x", "755") })];
        let err = lay(checkout.path(), &bad, read).await.unwrap_err();
        assert!(err.to_string().contains("a.sh"), "{err}");
        recover(checkout.path());
        assert_eq!(tree(checkout.path()), before);
    }
}
