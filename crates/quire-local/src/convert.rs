//! A Hugging Face BERT-family model folder (`config.json`, `*.safetensors`, `tokenizer.json`
//! or `vocab.txt`, sentence-transformers' `1_Pooling`) written as the GGUF file llama.cpp
//! runs: the tensors renamed to llama.cpp's BERT layout and its WordPiece vocabulary in
//! llama.cpp's form (a word's first piece marked with `▁`, a continuation without `##`).
//! Weights stay f32, so the embeddings are the model's own.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::LocalError;
use crate::gguf::{self, Put, Tensor};

/// The converted file, kept in the model's folder.
pub const CONVERTED: &str = "quire-f32.gguf";

/// Where a model whose folder cannot be written to (a read-only mount) has its converted
/// file: `$XDG_CACHE_HOME/quire/converted`, else `~/.cache/quire/converted`.
pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("quire").join("converted")
}

/// The GGUF file for the model folder `dir`, made once (and again when the weights or the
/// configuration change): in the folder, or in [`default_cache`] when the folder cannot be
/// written to.
pub fn converted(dir: &Path) -> Result<PathBuf, LocalError> {
    converted_in(dir, &default_cache())
}

/// [`converted`], with `cache` as the place for models in folders that cannot be written to.
pub fn converted_in(dir: &Path, cache: &Path) -> Result<PathBuf, LocalError> {
    let newest_source = weights(dir)?
        .iter()
        .chain([dir.join("config.json")].iter())
        .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
        .max();
    let fresh = |out: &Path| {
        let made = out.metadata().ok().filter(|m| m.is_file()).and_then(|m| m.modified().ok());
        made.zip(newest_source).is_some_and(|(o, s)| o >= s)
    };
    // The same folder always has the same file in the cache.
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let hash = canonical
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let places =
        [(dir.to_path_buf(), CONVERTED.to_string()), (cache.to_path_buf(), format!("{name}-{hash:016x}.gguf"))];
    if let Some((folder, file)) = places.iter().find(|(f, n)| fresh(&f.join(n))) {
        return Ok(folder.join(file));
    }
    // One conversion at a time in this process; another process writes its own file.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut refused = Vec::new();
    for (folder, file) in &places {
        let out = folder.join(file);
        if fresh(&out) {
            return Ok(out);
        }
        let partial = folder.join(format!(".{file}.{}", std::process::id()));
        // Can it be written here? (Checked before the conversion's work.)
        if let Err(e) = std::fs::create_dir_all(folder).and_then(|_| std::fs::File::create(&partial)) {
            refused.push(format!("{}: {e}", folder.display()));
            continue;
        }
        write(dir, &partial)?;
        match std::fs::rename(&partial, &out) {
            Ok(()) => return Ok(out),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                refused.push(format!("{}: {e}", out.display()));
            }
        }
    }
    Err(LocalError(format!("nowhere to write the converted model: {}", refused.join("; "))))
}

fn weights(dir: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LocalError(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LocalError(format!("{}: no .safetensors weights", dir.display())));
    }
    Ok(files)
}

fn read_json(path: &Path) -> Result<Value, LocalError> {
    let bytes = std::fs::read(path).map_err(|e| LocalError(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| LocalError(format!("{}: not JSON: {e}", path.display())))
}

/// The vocabulary by id, from `tokenizer.json` or `vocab.txt`, with the special tokens.
fn vocabulary(dir: &Path) -> Result<(Vec<String>, Vec<String>), LocalError> {
    let tokenizer = dir.join("tokenizer.json");
    if tokenizer.is_file() {
        let t = read_json(&tokenizer)?;
        let Some(vocab) = t["model"]["vocab"].as_object() else {
            return Err(LocalError(format!("{}: no WordPiece vocabulary", tokenizer.display())));
        };
        let mut tokens = vec![String::new(); vocab.len()];
        for (token, id) in vocab {
            let id = id
                .as_u64()
                .filter(|&i| (i as usize) < tokens.len())
                .ok_or_else(|| LocalError(format!("{}: token {token:?} has a bad id", tokenizer.display())))?;
            tokens[id as usize] = token.clone();
        }
        let special = t["added_tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["special"] == true)
            .filter_map(|a| a["content"].as_str().map(String::from))
            .collect();
        return Ok((tokens, special));
    }
    let vocab = dir.join("vocab.txt");
    let text = std::fs::read_to_string(&vocab)
        .map_err(|e| LocalError(format!("{}: no tokenizer.json, and vocab.txt: {e}", dir.display())))?;
    let tokens: Vec<String> = text.lines().map(String::from).collect();
    let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).to_vec();
    Ok((tokens, special))
}

/// llama.cpp's name for a BERT tensor; `None` for what embeddings do not use.
fn tensor_name(name: &str) -> Result<Option<String>, LocalError> {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    let name = name.replace(".gamma", ".weight").replace(".beta", ".bias");
    if name == "embeddings.position_ids" || name.starts_with("pooler.") || name.starts_with("cls.") {
        return Ok(None);
    }
    let (stem, kind) = name.rsplit_once('.').ok_or_else(|| LocalError(format!("unexpected tensor {name}")))?;
    let mapped = match stem {
        "embeddings.word_embeddings" => "token_embd".to_string(),
        "embeddings.position_embeddings" => "position_embd".to_string(),
        "embeddings.token_type_embeddings" => "token_types".to_string(),
        "embeddings.LayerNorm" => "token_embd_norm".to_string(),
        _ => {
            let rest = stem
                .strip_prefix("encoder.layer.")
                .ok_or_else(|| LocalError(format!("unexpected tensor {name} (not a BERT model?)")))?;
            let (layer, part) = rest.split_once('.').ok_or_else(|| LocalError(format!("unexpected tensor {name}")))?;
            let part = match part {
                "attention.self.query" => "attn_q",
                "attention.self.key" => "attn_k",
                "attention.self.value" => "attn_v",
                "attention.output.dense" => "attn_output",
                "attention.output.LayerNorm" => "attn_output_norm",
                "intermediate.dense" => "ffn_up",
                "output.dense" => "ffn_down",
                "output.LayerNorm" => "layer_output_norm",
                other => return Err(LocalError(format!("unexpected tensor part {other} in {name}"))),
            };
            format!("blk.{layer}.{part}")
        }
    };
    Ok(Some(format!("{mapped}.{kind}")))
}

fn f32s(view: &safetensors::tensor::TensorView<'_>, name: &str) -> Result<Vec<f32>, LocalError> {
    use safetensors::Dtype;
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::BF16 => {
            b.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect()
        }
        Dtype::F16 => b.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        other => return Err(LocalError(format!("tensor {name} is {other:?}; f32, f16 and bf16 are read"))),
    })
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((f << shift) & 0x3ff) << 13
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Writes the GGUF for the model folder `dir` to `out`.
pub fn write(dir: &Path, out: &Path) -> Result<(), LocalError> {
    let config = read_json(&dir.join("config.json"))?;
    let model_type = config["model_type"].as_str().unwrap_or_default();
    if model_type != "bert" {
        return Err(LocalError(format!(
            "{}: model_type '{model_type}' is not read; BERT models (all-MiniLM, bge, e5, gte) are",
            dir.display()
        )));
    }
    let num = |key: &str| -> Result<u32, LocalError> {
        config[key].as_u64().map(|v| v as u32).ok_or_else(|| LocalError(format!("config.json has no {key}")))
    };
    let pooling = match read_json(&dir.join("1_Pooling/config.json")) {
        Ok(p) if p["pooling_mode_cls_token"] == true => 2,
        _ => 1, // mean
    };
    let (tokens, special) = vocabulary(dir)?;
    let types: Vec<i32> = tokens.iter().map(|t| if special.contains(t) { 3 } else { 1 }).collect();
    let tokens: Vec<String> = tokens
        .into_iter()
        .map(|t| {
            if t.starts_with('[') && t.ends_with(']') {
                t
            } else if let Some(rest) = t.strip_prefix("##") {
                rest.to_string()
            } else {
                format!("\u{2581}{t}")
            }
        })
        .collect();
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let metadata = vec![
        ("general.architecture", Put::Text("bert".into())),
        ("general.name", Put::Text(name)),
        ("bert.context_length", Put::U32(num("max_position_embeddings")?)),
        ("bert.embedding_length", Put::U32(num("hidden_size")?)),
        ("bert.feed_forward_length", Put::U32(num("intermediate_size")?)),
        ("bert.block_count", Put::U32(num("num_hidden_layers")?)),
        ("bert.attention.head_count", Put::U32(num("num_attention_heads")?)),
        ("bert.attention.layer_norm_epsilon", Put::F32(config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32)),
        ("bert.attention.causal", Put::Bool(false)),
        ("bert.pooling_type", Put::U32(pooling)),
        ("tokenizer.ggml.model", Put::Text("bert".into())),
        ("tokenizer.ggml.token_type_count", Put::U32(config["type_vocab_size"].as_u64().unwrap_or(2) as u32)),
        ("tokenizer.ggml.tokens", Put::Texts(tokens)),
        ("tokenizer.ggml.token_type", Put::I32s(types)),
    ];
    let mut tensors = Vec::new();
    for file in weights(dir)? {
        let bytes = std::fs::read(&file).map_err(|e| LocalError(format!("{}: {e}", file.display())))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| LocalError(format!("{}: damaged or not safetensors: {e}", file.display())))?;
        for (name, view) in st.tensors() {
            let Some(mapped) = tensor_name(&name)? else { continue };
            let data = f32s(&view, &name)?;
            tensors.push(Tensor { name: mapped, shape: view.shape().iter().map(|&d| d as u64).collect(), data });
        }
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    gguf::write(out, &metadata, &tensors).map_err(|e| LocalError(format!("{}: {e}", out.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_tensors_get_llama_cpp_names() {
        let n = |s: &str| tensor_name(s).unwrap();
        assert_eq!(n("embeddings.word_embeddings.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(n("bert.embeddings.LayerNorm.gamma").as_deref(), Some("token_embd_norm.weight"));
        assert_eq!(n("encoder.layer.3.attention.self.key.bias").as_deref(), Some("blk.3.attn_k.bias"));
        assert_eq!(n("encoder.layer.0.output.LayerNorm.weight").as_deref(), Some("blk.0.layer_output_norm.weight"));
        assert_eq!(n("pooler.dense.weight"), None);
        assert_eq!(n("embeddings.position_ids"), None);
        assert!(tensor_name("decoder.layers.0.weight").is_err());
    }

    #[test]
    fn halves_widen_exactly() {
        for (h, f) in
            [(0x3c00u16, 1.0f32), (0xc000, -2.0), (0x0000, 0.0), (0x3555, 0.333_251_95), (0x0001, 5.960_464_5e-8)]
        {
            assert_eq!(f16_to_f32(h), f, "{h:#x}");
        }
    }
}
