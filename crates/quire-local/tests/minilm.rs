//! The local embedding provider against the reference implementation: all-MiniLM-L6-v2
//! (from the shared models cache), compared with vectors sentence-transformers computed for
//! a fixed set of sentences (`data/minilm_reference.json`, made by `data/make_reference.py`).

use quire_ai::{AiErrorKind, EmbeddingProvider};
use quire_local::catalog::DEFAULT_EMBEDDING;
use quire_local::embed::LocalEmbeddings;
use serde_json::Value;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn load() -> LocalEmbeddings {
    let dir = quire_local::fetch::shared_cache().expect("the default models can be fetched");
    LocalEmbeddings::load("local", &dir.join(DEFAULT_EMBEDDING)).unwrap()
}

#[tokio::test]
async fn embeddings_match_sentence_transformers() {
    let reference: Value = serde_json::from_str(include_str!("data/minilm_reference.json")).unwrap();
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<String> = items.iter().map(|i| i["text"].as_str().unwrap().to_string()).collect();
    let local = load();
    assert_eq!(local.dimensions(), 384);
    let got = local.embed(None, &texts).await.unwrap();
    assert_eq!(got.model, "all-MiniLM-L6-v2");
    assert_eq!(got.vectors.len(), texts.len());
    for (item, v) in items.iter().zip(&got.vectors) {
        let expected: Vec<f32> =
            item["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let c = cosine(&expected, v);
        assert!(
            c >= 0.999,
            "cosine {c:.6} for {:?}",
            &item["text"].as_str().unwrap()[..40.min(item["text"].as_str().unwrap().len())]
        );
        let norm: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
    // One at a time gives the same as all together.
    let one = local.embed(None, &texts[..1]).await.unwrap();
    assert!(cosine(&one.vectors[0], &got.vectors[0]) > 0.99999);
    assert!(got.usage.unwrap().prompt_tokens > 300, "the long input counts its 256 tokens");
    // Similar sentences are nearer than unrelated ones.
    assert!(cosine(&got.vectors[0], &got.vectors[1]) > cosine(&got.vectors[0], &got.vectors[5]));
}

#[tokio::test]
async fn another_model_name_is_refused() {
    let e = load().embed(Some("text-embedding-3-small"), &["x".into()]).await.unwrap_err();
    assert_eq!(e.kind, AiErrorKind::Rejected);
    assert!(e.message.contains("all-MiniLM-L6-v2"), "{e}");
}

#[tokio::test]
async fn a_model_folder_that_cannot_be_written_is_converted_into_the_cache() {
    let source = quire_local::fetch::shared_cache().unwrap().join(DEFAULT_EMBEDDING);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("mounted-minilm");
    std::fs::create_dir_all(folder.join("1_Pooling")).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"] {
        std::fs::copy(source.join(file), folder.join(file)).unwrap();
    }
    // The folder refuses the converted file (as a read-only mount would; root writes
    // anywhere, so its names are taken by folders instead), and a folder is no conversion.
    let converted = quire_local::convert::CONVERTED;
    std::fs::create_dir(folder.join(converted)).unwrap();
    std::fs::create_dir(folder.join(format!(".{converted}.{}", std::process::id()))).unwrap();
    let cache = dir.path().join("cache");
    let out = quire_local::convert::converted_in(&folder, &cache).unwrap();
    assert!(
        out.starts_with(&cache) && out.file_name().unwrap().to_string_lossy().starts_with("mounted-minilm-"),
        "{out:?}"
    );
    assert_eq!(quire_local::convert::converted_in(&folder, &cache).unwrap(), out, "made once, then found");
    let header = quire_local::gguf::read_header(&out).unwrap();
    assert_eq!(header.architecture(), Some("bert"));
}
