//! Which local models are on disk: GGUF chat models and BERT-family embedding models in the
//! models folder (`<data dir>/models` by default), and any a user names by path.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::gguf;

/// The chat model `quire models fetch` brings (SmolLM2-135M-Instruct, Q4_1, Apache-2.0).
pub const DEFAULT_TEXT: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The embedding model `quire models fetch` brings (sentence-transformers' all-MiniLM-L6-v2).
pub const DEFAULT_EMBEDDING: &str = "all-MiniLM-L6-v2";

/// How a chat model Quire can fetch drafts a PRD: of the 20 fixed requests of
/// `bench/src/bin/drafts.rs`, how many drafts passed the quality gate, the seconds a draft
/// took on 2 cores, and what a person reading the drafts found (docs/benchmarks.md, "Draft
/// quality by local model").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    pub passed: u32,
    pub of: u32,
    pub seconds_per_draft: f32,
    /// Whether its drafts are worth reading as they come, by a person's reading of them: the
    /// gate checks shape, figures and relevance, not whether the sentences make sense.
    pub readable: bool,
    /// What the reader found, as a person deciding whether to draft with it needs it.
    pub verdict: &'static str,
}

/// The measured figures of a fetched chat model, by its name (the file's, without `.gguf`).
pub fn measured(name: &str) -> Option<Measured> {
    const MEASURED: &[(&str, Measured)] = &[
        (
            "SmolLM2-135M-Instruct.Q4_1",
            Measured {
                passed: 17,
                of: 20,
                seconds_per_draft: 17.7,
                readable: false,
                verdict: "but read through they are not worth keeping: sentences that contradict the request, personas \
                          written as dialogue, metrics that add up to nothing. Use one as raw material at most.",
            },
        ),
        (
            "gemma-3-270m.Q4_K_M",
            Measured {
                passed: 0,
                of: 20,
                seconds_per_draft: 40.2,
                readable: false,
                verdict: "and what it writes is not a document: it says its instructions back and loops (it is a \
                          pretrained model, not one tuned to follow requests).",
            },
        ),
    ];
    MEASURED.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

/// Architectures of encoder (embedding) models among GGUF files.
const ENCODERS: &[&str] = &["bert", "nomic-bert", "jina-bert-v2", "modern-bert", "neo-bert", "t5encoder"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Text,
    Embedding,
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// Its name as results show it: the file's or folder's name, without `.gguf`.
    pub name: String,
    pub kind: Kind,
    pub path: PathBuf,
    pub bytes: u64,
    /// `general.architecture` (GGUF) or `model_type` (a folder's config.json).
    pub architecture: String,
    /// Why it cannot be used, when it cannot (a damaged file says so here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A GGUF file's header as read: its path, length and modification time, and what it holds.
type Seen = (PathBuf, u64, Option<std::time::SystemTime>, Found);

/// What a path holds, if it is a model: a GGUF file, or a folder with `config.json`,
/// `*.safetensors` and a tokenizer (a Hugging Face BERT-family model).
pub fn inspect(path: &Path) -> Option<Found> {
    let name = path.file_name()?.to_string_lossy().to_string();
    if path.is_file() && name.to_ascii_lowercase().ends_with(".gguf") {
        let meta = path.metadata().ok();
        let bytes = meta.as_ref().map_or(0, |m| m.len());
        // A header is read once per file version: the folder is looked at again every few
        // seconds, and a chat model's header holds its whole vocabulary.
        static SEEN: std::sync::Mutex<Vec<Seen>> = std::sync::Mutex::new(Vec::new());
        let modified = meta.and_then(|m| m.modified().ok());
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((.., found)) = seen.iter().find(|(p, b, m, _)| p == path && *b == bytes && *m == modified) {
            return Some(found.clone());
        }
        let stem = name[..name.len() - 5].to_string();
        let found = match gguf::read_header(path) {
            Ok(h) => {
                let arch = h.architecture().unwrap_or("unknown").to_string();
                let kind = if ENCODERS.contains(&arch.as_str()) { Kind::Embedding } else { Kind::Text };
                Found { name: stem, kind, path: path.to_path_buf(), bytes, architecture: arch, problem: None }
            }
            Err(e) => Found {
                name: stem,
                kind: Kind::Text,
                path: path.to_path_buf(),
                bytes,
                architecture: "unknown".into(),
                problem: Some(e.reason),
            },
        };
        seen.retain(|(p, ..)| p != path);
        seen.push((path.to_path_buf(), bytes, modified, found.clone()));
        return Some(found);
    }
    if path.is_dir() && path.join("config.json").is_file() {
        let config: serde_json::Value =
            std::fs::read(path.join("config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok())?;
        let arch = config["model_type"].as_str()?.to_string();
        let weights: Vec<PathBuf> = std::fs::read_dir(path)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        if weights.is_empty() || !arch.contains("bert") {
            return None;
        }
        let bytes = weights.iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
        let problem = (!path.join("tokenizer.json").is_file() && !path.join("vocab.txt").is_file())
            .then(|| "has no tokenizer.json or vocab.txt".to_string());
        return Some(Found {
            name,
            kind: Kind::Embedding,
            path: path.to_path_buf(),
            bytes,
            architecture: arch,
            problem,
        });
    }
    None
}

/// Every model in `dir` (its files and folders, one level down), by name.
pub fn scan(dir: &Path) -> Vec<Found> {
    let mut out: Vec<Found> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| inspect(&e.path()))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The model of `kind` to use from `dir`: the one `quire models fetch` brings if it is
/// there and sound, else the first sound one by name.
pub fn choose(dir: &Path, kind: Kind) -> Option<Found> {
    let preferred = match kind {
        Kind::Text => DEFAULT_TEXT.trim_end_matches(".gguf"),
        Kind::Embedding => DEFAULT_EMBEDDING,
    };
    let usable: Vec<Found> = scan(dir).into_iter().filter(|f| f.kind == kind && f.problem.is_none()).collect();
    usable.iter().find(|f| f.name == preferred).or(usable.first()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::tests::{header, string};

    #[test]
    fn models_are_found_by_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Chat.gguf"), header(&[("general.architecture", 8, string("llama"))])).unwrap();
        std::fs::write(d.join("Embed.gguf"), header(&[("general.architecture", 8, string("bert"))])).unwrap();
        std::fs::write(d.join("broken.gguf"), b"GGUF\x03").unwrap();
        std::fs::write(d.join("notes.txt"), b"not a model").unwrap();
        let bert = d.join(DEFAULT_EMBEDDING);
        std::fs::create_dir(&bert).unwrap();
        std::fs::write(bert.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
        std::fs::write(bert.join("model.safetensors"), b"weights").unwrap();
        std::fs::write(bert.join("tokenizer.json"), b"{}").unwrap();

        let found = scan(d);
        let summary: Vec<(&str, Kind, bool)> =
            found.iter().map(|f| (f.name.as_str(), f.kind, f.problem.is_none())).collect();
        assert_eq!(
            summary,
            [
                ("Chat", Kind::Text, true),
                ("Embed", Kind::Embedding, true),
                (DEFAULT_EMBEDDING, Kind::Embedding, true),
                ("broken", Kind::Text, false),
            ]
        );
        assert!(found[3].problem.as_ref().unwrap().contains("truncated"));
        assert_eq!(choose(d, Kind::Text).unwrap().name, "Chat");
        assert_eq!(choose(d, Kind::Embedding).unwrap().name, DEFAULT_EMBEDDING, "the fetched one first");
        assert!(choose(&d.join("nowhere"), Kind::Text).is_none());
        // A file mended in place is read again.
        std::fs::write(d.join("broken.gguf"), header(&[("general.architecture", 8, string("qwen2"))])).unwrap();
        let mended = inspect(&d.join("broken.gguf")).unwrap();
        assert_eq!((mended.problem, mended.architecture.as_str()), (None, "qwen2"));
    }
}
