//! The local models against their peers on this machine, in one run:
//!
//! * SmolLM2-135M-Instruct (Q4_1): prompt and generation tokens per second through Quire's
//!   `local` provider (in-process), and through llama-cpp-python's OpenAI-compatible server
//!   (`python -m llama_cpp.server`) with the same file, threads and greedy decoding. Runs
//!   alternate between the two; each figure is the median of the runs.
//! * all-MiniLM-L6-v2: sentences embedded per second by Quire and by sentence-transformers on
//!   the CPU, the same sentences, each side's model loaded before the clock starts.
//!
//! * PRD drafts by SmolLM2 for 20 fixed requests with the built-in `prd.draft` template and
//!   the taxonomy's outline, written whole (one prompt) and section by section (what the
//!   `local` provider does for a small model): how many pass the quality gate, and how long
//!   a draft takes.
//!
//! `cargo run --release -p quire-bench --bin local-models [-- RUNS]` (default 5). The Python
//! peers come from a virtual environment (`QUIRE_BENCH_PYTHON`, default
//! `~/.cache/quire-bench-venv/bin/python`) holding `llama-cpp-python[server]` and
//! `sentence-transformers`, from PyPI:
//!
//! ```sh
//! python3 -m venv ~/.cache/quire-bench-venv
//! ~/.cache/quire-bench-venv/bin/pip install 'llama-cpp-python[server]' sentence-transformers
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use quire_ai::{EmbeddingProvider, Message, TextEvent, TextProvider, TextRequest};
use quire_bench::REQUESTS;
use quire_local::catalog::{DEFAULT_EMBEDDING, DEFAULT_TEXT};
use serde_json::{Value, json};

const MAX_TOKENS: u32 = 128;
const SENTENCES: usize = 2000;

/// The request of run `n`: it differs from its first token on, so neither side can reuse a
/// previous run's prompt (llama-cpp-python keeps the last prompt's cache).
fn messages(n: usize) -> Vec<Message> {
    let request = "Write a detailed product requirements document for an offline-first note taking app used by \
                   field teams: the problem, the users, goals, user stories, functional and non-functional \
                   requirements, risks and open questions. Field teams lose notes when they are offline, edits \
                   conflict when two people change the same note, and the app must sync edits when the \
                   connection returns without asking the user. ";
    vec![
        Message::system(format!("Request {n}. You are a senior product manager. Write clear, complete documents.")),
        Message::user(request.repeat(3)),
    ]
}

/// One generation's timing: (prompt tokens, generated tokens, to the first token, from the
/// first token to the last).
#[derive(Debug, Clone, Copy)]
struct Run {
    prompt: u32,
    generated: u32,
    first: Duration,
    rest: Duration,
}

impl Run {
    fn prompt_rate(&self) -> f64 {
        self.prompt as f64 / self.first.as_secs_f64()
    }
    fn generation_rate(&self) -> f64 {
        (self.generated.saturating_sub(1)) as f64 / self.rest.as_secs_f64()
    }
}

async fn quire_run(model: &quire_local::text::LocalText, n: usize) -> Run {
    let request = TextRequest {
        messages: messages(n),
        max_tokens: Some(MAX_TOKENS),
        temperature: Some(0.0),
        ..Default::default()
    };
    let start = Instant::now();
    let mut stream = model.stream_text(&request).await.unwrap();
    let mut first = None;
    let mut last = start;
    loop {
        match stream.next().await.expect("the stream ends with Done").unwrap() {
            TextEvent::Delta(_) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            TextEvent::Done { usage, .. } => {
                let usage = usage.unwrap();
                let first = first.unwrap();
                return Run {
                    prompt: usage.prompt_tokens,
                    generated: usage.completion_tokens,
                    first: first - start,
                    rest: last - first,
                };
            }
        }
    }
}

async fn peer_run(http: &reqwest::Client, url: &str, prompt_tokens: u32, n: usize) -> Run {
    let msgs: Vec<Value> = messages(n)
        .iter()
        .map(|m| json!({"role": serde_json::to_value(m.role).unwrap(), "content": m.content}))
        .collect();
    let body = json!({"messages": msgs, "max_tokens": MAX_TOKENS, "temperature": 0.0, "stream": true,
                      "repeat_penalty": 1.1, "top_k": 1});
    let start = Instant::now();
    let mut res = http.post(format!("{url}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (mut first, mut last, mut tokens) = (None, start, 0u32);
    let mut buf = String::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(at) = buf.find("\n\n") {
            let frame: String = buf.drain(..at + 2).collect();
            let Some(data) = frame.trim().strip_prefix("data: ") else { continue };
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(data).unwrap();
            if v["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                tokens += 1; // llama-cpp-python sends one chunk per token
            }
        }
    }
    let first = first.expect("the server wrote something");
    Run { prompt: prompt_tokens, generated: tokens, first: first - start, rest: last - first }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn python() -> PathBuf {
    std::env::var_os("QUIRE_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/quire-bench-venv/bin/python"))
}

/// The llama-cpp-python server on a free port, once it answers.
async fn start_peer(model: &std::path::Path, threads: usize) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(python())
        .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "2048"])
        .args(["--n_threads", &threads.to_string(), "--n_threads_batch", &threads.to_string(), "--model"])
        .arg(model)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("llama-cpp-python's server starts (see the header for the environment)");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..600 {
        if reqwest::get(format!("{url}/v1/models")).await.is_ok_and(|r| r.status().is_success()) {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("llama-cpp-python's server did not start");
}

fn sentences() -> Vec<String> {
    let subjects = ["Field teams", "The checkout", "Our designers", "The build server", "Support agents"];
    let verbs = ["lose", "need", "review", "sync", "deploy", "rename", "export"];
    let objects = [
        "notes when offline",
        "the moodboard palette",
        "firmware for the STM32 board",
        "a PRD draft",
        "quarterly revenue numbers",
        "the Scandinavian living room concept",
    ];
    (0..SENTENCES)
        .map(|i| {
            let s = subjects[i % subjects.len()];
            let v = verbs[(i / 5) % verbs.len()];
            let o = objects[(i / 35) % objects.len()];
            format!("{s} {v} {o} ({i}).")
        })
        .collect()
}

/// sentence-transformers: sentences per second, the model loaded first.
fn peer_embeddings(model: &std::path::Path, texts: &[String]) -> f64 {
    let script = r#"
import json, sys, time
from sentence_transformers import SentenceTransformer
texts = json.load(sys.stdin)
m = SentenceTransformer(sys.argv[1], device="cpu")
m.encode(texts[:64], normalize_embeddings=True)
t = time.perf_counter()
m.encode(texts, normalize_embeddings=True, batch_size=64)
print(len(texts) / (time.perf_counter() - t))
"#;
    let mut child = Command::new(python())
        .args(["-c", script])
        .arg(model)
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sentence-transformers runs (see the header for the environment)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(serde_json::to_string(texts).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("sentence-transformers printed its rate")
}

/// Drafts each request whole and section by section; passes of the gate and seconds per
/// draft, for each way.
async fn drafts(model: &quire_local::text::LocalText) -> [(usize, f64); 2] {
    let template = quire_ai::prompt::builtin_templates().into_iter().find(|t| t.name == "prd.draft").unwrap();
    let outline = quire_ai::taxonomy::prd_outline();
    let mut out = [(0, 0.0); 2];
    for (way, sectioned) in [false, true].into_iter().enumerate() {
        for (title, request) in REQUESTS {
            let values = [("request".to_string(), request.to_string()), ("title".to_string(), title.to_string())];
            let around = quire_ai::prompt::Surroundings { outline: Some(outline.clone()), ..Default::default() };
            let rendered = template.render(&values.into_iter().collect(), &around).unwrap();
            let mut req = rendered.text_request(Some(title.into()), request);
            req.max_tokens = Some(1024);
            req.temperature = Some(0.0);
            if !sectioned {
                req.outline = None;
            }
            let t = Instant::now();
            let mut stream = model.stream_text(&req).await.unwrap();
            let mut text = String::new();
            while let Some(e) = stream.next().await {
                if let TextEvent::Delta(d) = e.unwrap() {
                    text.push_str(&d);
                }
            }
            out[way].1 += t.elapsed().as_secs_f64();
            if quire_ai::gate::check_text(&text, &rendered.sections, 100_000).is_ok() {
                out[way].0 += 1;
            }
        }
        out[way].1 /= REQUESTS.len() as f64;
    }
    out
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let models = quire_local::fetch::shared_cache().unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("local models on {threads} cores, {runs} runs each way, {MAX_TOKENS} tokens per generation\n");

    let quire = quire_local::text::LocalText::load("local", &models.join(DEFAULT_TEXT)).unwrap();
    let (mut peer, url) = start_peer(&models.join(DEFAULT_TEXT), threads).await;
    let http = reqwest::Client::new();
    // Warm both (page cache, first-call costs).
    let warm = quire_run(&quire, 0).await;
    peer_run(&http, &url, warm.prompt, 0).await;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for n in 1..=runs {
        ours.push(quire_run(&quire, n).await);
        theirs.push(peer_run(&http, &url, warm.prompt, n).await);
    }
    let _ = peer.kill();
    let _ = peer.wait();
    let [whole, sectioned] = drafts(&quire).await;
    let rate = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    let (qp, qg) = (rate(&ours, Run::prompt_rate), rate(&ours, Run::generation_rate));
    let (pp, pg) = (rate(&theirs, Run::prompt_rate), rate(&theirs, Run::generation_rate));
    println!("SmolLM2-135M-Instruct Q4_1, prompt {} tokens:", warm.prompt);
    println!("  {:<34} {:>12} {:>16}", "", "prompt tok/s", "generation tok/s");
    println!("  {:<34} {qp:>12.0} {qg:>16.1}", "Quire (local provider, in-process)");
    println!("  {:<34} {pp:>12.0} {pg:>16.1}", "llama-cpp-python server");
    println!("  {:<34} {:>11.2}× {:>15.2}×", "ratio (goal ≥ 0.9×)", qp / pp, qg / pg);
    println!("\nPRD drafts by SmolLM2 (prd.draft, the taxonomy's outline), {} requests:", REQUESTS.len());
    println!("  {:<34} {:>14} {:>12}", "", "pass the gate", "s per draft");
    println!("  {:<34} {:>11}/{} {:>12.1}", "whole document, one prompt", whole.0, REQUESTS.len(), whole.1);
    println!("  {:<34} {:>11}/{} {:>12.1}", "section by section (local)", sectioned.0, REQUESTS.len(), sectioned.1);

    let texts = sentences();
    let embedder = quire_local::embed::LocalEmbeddings::load("local", &models.join(DEFAULT_EMBEDDING)).unwrap();
    embedder.embed(None, &texts[..64]).await.unwrap();
    let mut ours = Vec::new();
    for _ in 0..runs.min(3) {
        let t = Instant::now();
        let got = embedder.embed(None, &texts).await.unwrap();
        assert_eq!(got.vectors.len(), texts.len());
        ours.push(texts.len() as f64 / t.elapsed().as_secs_f64());
    }
    let theirs: Vec<f64> = (0..runs.min(3)).map(|_| peer_embeddings(&models.join(DEFAULT_EMBEDDING), &texts)).collect();
    let (q, p) = (median(ours), median(theirs));
    println!("\nall-MiniLM-L6-v2, {} sentences:", texts.len());
    println!("  {:<34} {q:>10.0} sentences/s", "Quire (local provider, in-process)");
    println!("  {:<34} {p:>10.0} sentences/s", "sentence-transformers (CPU)");
    println!("  {:<34} {:>9.2}×", "ratio (goal ≥ 1×)", q / p);
}
