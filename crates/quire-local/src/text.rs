//! The `local` text provider: a GGUF chat model run by llama.cpp on this machine's CPU.
//!
//! The model's own chat template and tokenizer (both in the GGUF file) turn the messages
//! into its prompt. Each generation runs on a blocking thread with a context of its own and
//! hands its text to the stream as it comes (never a split UTF-8 character, never part of a
//! stop sequence); it stops as soon as the stream is dropped. At most one generation per
//! core runs at once; the others wait for a slot.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use quire_ai::{AiError, AiErrorKind, Speaker, TextEvent, TextProvider, TextRequest, TextStream, Usage};
use tokio::sync::mpsc;

use crate::{LocalError, Slots, backend};

/// Tokens written when a request does not say.
const DEFAULT_MAX_TOKENS: u32 = 512;
/// The longest context a generation opens (the model's own limit if smaller).
const MAX_CONTEXT: u32 = 8192;
/// Prompt tokens decoded per step.
const BATCH: usize = 512;

/// A loaded chat model.
pub struct LocalText {
    provider: String,
    model_name: String,
    model: Arc<LlamaModel>,
    template: LlamaChatTemplate,
    context_limit: u32,
    slots: Slots,
    /// llama.cpp may change a model while it makes a context: one at a time.
    opening: Arc<Mutex<()>>,
    /// A ban on the vocabulary's tokens that hold a digit: a section that states facts is
    /// written under it when the request gives no figures (small models invent dates and
    /// percentages there, which the quality gate refuses).
    no_digits: Arc<Vec<LlamaLogitBias>>,
}

impl std::fmt::Debug for LocalText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalText").field("provider", &self.provider).field("model", &self.model_name).finish()
    }
}

impl LocalText {
    /// Loads the GGUF chat model at `path` (blocking: a second or so for a small model) as
    /// provider `provider`. A damaged, truncated or foreign file is refused with the reason.
    pub fn load(provider: &str, path: &Path) -> Result<LocalText, LocalError> {
        let header = crate::gguf::read_header(path).map_err(|e| LocalError(e.to_string()))?;
        let model_name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "local".into());
        let model = LlamaModel::load_from_file(backend()?, path, &LlamaModelParams::default()).map_err(|e| {
            LocalError(format!(
                "{}: llama.cpp cannot load it ({e}): the file is damaged or truncated, or its architecture ({}) is not \
                 one llama.cpp runs",
                path.display(),
                header.architecture().unwrap_or("unknown")
            ))
        })?;
        // The model's own template; llama.cpp recognises the common ones (ChatML, Llama,
        // Mistral, Gemma, …). A model without one (a pretrained, not instruction-tuned,
        // file) is prompted in its family's turns where its vocabulary has them (Gemma's
        // `<start_of_turn>`), else in ChatML.
        let fallback = if header.architecture().is_some_and(|a| a.starts_with("gemma")) { "gemma" } else { "chatml" };
        let template = model
            .chat_template(None)
            .or_else(|_| LlamaChatTemplate::new(fallback))
            .map_err(|e| LocalError(format!("{}: its chat template cannot be read: {e}", path.display())))?;
        let context_limit = model.n_ctx_train().clamp(256, MAX_CONTEXT);
        let no_digits = model
            .tokens(false)
            .filter(|(_, bytes)| bytes.iter().any(u8::is_ascii_digit))
            .map(|(t, _)| LlamaLogitBias::new(t, f32::NEG_INFINITY))
            .collect();
        Ok(LocalText {
            no_digits: Arc::new(no_digits),
            provider: provider.to_string(),
            model_name,
            model: Arc::new(model),
            template,
            context_limit,
            slots: Slots::shared(),
            opening: Arc::new(Mutex::new(())),
        })
    }

    /// The model's name, as results show it (the file's name without `.gguf`).
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// Runs on `slots` rather than the process's shared ones.
    pub fn with_slots(mut self, slots: Slots) -> Self {
        self.slots = slots;
        self
    }

    fn error(&self, kind: AiErrorKind, message: impl Into<String>) -> AiError {
        AiError::new(&self.provider, kind, message)
    }

    /// The prompt the model's chat template makes of the messages.
    pub fn prompt(&self, request: &TextRequest) -> Result<String, AiError> {
        let mut chat = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            let role = match m.role {
                Speaker::System => "system",
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            chat.push(
                LlamaChatMessage::new(role.into(), m.content.clone())
                    .map_err(|_| self.error(AiErrorKind::Rejected, "a message holds a NUL character"))?,
            );
        }
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| self.error(AiErrorKind::Rejected, format!("the model's chat template failed: {e}")))
    }
}

/// Models below this many parameters draft a document section by section.
const SMALL_MODEL: u64 = 3_000_000_000;
/// Tokens one section may take at most, and takes when the request sets no limit.
const SECTION_TOKENS: u32 = 160;
const SECTION_TOKENS_DEFAULT: u32 = 120;

impl LocalText {
    /// The prompt's tokens, checked against the model's context.
    fn tokens(&self, prompt: &str) -> Result<Vec<LlamaToken>, AiError> {
        // The template wrote the special tokens (the beginning of text among them) itself.
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), false, true);
        if tokens.is_empty() {
            return Err(self.error(AiErrorKind::Rejected, "the prompt is empty"));
        }
        if tokens.len() as u32 + 1 >= self.context_limit {
            return Err(self.error(
                AiErrorKind::Rejected,
                format!("the prompt is {} tokens; this model reads at most {}", tokens.len(), self.context_limit - 1),
            ));
        }
        Ok(tokens)
    }

    /// What to generate: the request as it is, or — for a small model given an outline —
    /// one focused request per section, each answer begun as a list so that it stays one.
    fn parts(&self, request: &TextRequest) -> Result<Vec<Part>, AiError> {
        let stop: Vec<String> = request.stop.iter().filter(|s| !s.is_empty()).cloned().collect();
        let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).max(1);
        let outline = request.outline.as_ref().filter(|o| !o.sections.is_empty());
        let Some(outline) = outline.filter(|_| self.model.n_params() < SMALL_MODEL) else {
            let tokens = self.tokens(&self.prompt(request)?)?;
            return Ok(vec![Part { lead: String::new(), tokens, max_tokens, stop, banned: None }]);
        };
        let product = outline.title.clone().unwrap_or_else(|| "the product".into());
        let system = "You are a senior product manager writing one section of a product requirements document. \
                      Write only that section's content as 3 to 5 short, specific bullet points about this product. \
                      No heading, no introduction, no closing remarks.";
        let mut parts = Vec::with_capacity(outline.sections.len());
        let mut lead = outline.title.as_ref().map(|t| format!("# {t}\n\n")).unwrap_or_default();
        // A figure the request gives stands alone ("50%", "5 minutes"); the digits of a name
        // ("STM32") are no figure.
        let given = |t: &str| {
            let chars: Vec<char> = t.chars().collect();
            (0..chars.len()).any(|i| chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_alphanumeric()))
        };
        let figures_given = given(&outline.request) || given(&product);
        let per_section = match request.max_tokens {
            Some(m) => (m / outline.sections.len() as u32).clamp(16, SECTION_TOKENS),
            None => SECTION_TOKENS_DEFAULT,
        };
        for section in &outline.sections {
            let ask = if section.prompt.is_empty() {
                format!("Write the \"{}\" section.", section.title)
            } else {
                format!("Write the \"{}\" section: {}", section.title, section.prompt)
            };
            let messages = vec![
                quire_ai::Message::system(system),
                quire_ai::Message::user(format!(
                    "Product: {product}\nWhat the team asked for: {}\n\n{ask}",
                    outline.request
                )),
            ];
            let prompt = self.prompt(&TextRequest { messages, ..Default::default() })? + "- ";
            let mut stop = stop.clone();
            stop.extend(["\n#".to_string(), "\n\n\n".to_string()]);
            lead.push_str(&format!("## {}\n\n- ", section.title));
            let no_figures = section.facts && !figures_given;
            parts.push(Part {
                lead: std::mem::take(&mut lead),
                tokens: self.tokens(&prompt)?,
                max_tokens: per_section,
                stop,
                banned: no_figures.then(|| self.no_digits.clone()),
            });
            lead = "\n\n".into();
        }
        Ok(parts)
    }
}

#[async_trait]
impl TextProvider for LocalText {
    fn name(&self) -> &str {
        &self.provider
    }

    async fn stream_text(&self, request: &TextRequest) -> Result<TextStream, AiError> {
        if let Some(asked) = request.model.as_deref().filter(|m| *m != self.model_name) {
            return Err(self.error(
                AiErrorKind::Rejected,
                format!("this provider runs the local model '{}', not '{asked}'", self.model_name),
            ));
        }
        let parts = self.parts(request)?;
        // Wait for a slot (one job per core).
        let (permit, threads) = self.slots.take().await;
        let job = Job {
            provider: self.provider.clone(),
            model_name: self.model_name.clone(),
            model: self.model.clone(),
            opening: self.opening.clone(),
            parts,
            context: self.context_limit,
            threads,
            temperature: request.temperature.unwrap_or(0.7),
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let sender = tx.clone();
            if let Err(e) = job.run(&tx) {
                let _ = sender.blocking_send(Err(e));
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok(Box::pin(stream))
    }
}

/// One generation of a job: the text written before it (a section's heading), its prompt.
struct Part {
    lead: String,
    tokens: Vec<LlamaToken>,
    max_tokens: u32,
    stop: Vec<String>,
    /// Tokens it may not write.
    banned: Option<Arc<Vec<LlamaLogitBias>>>,
}

/// One request's generations, on a blocking thread.
struct Job {
    provider: String,
    model_name: String,
    model: Arc<LlamaModel>,
    opening: Arc<Mutex<()>>,
    parts: Vec<Part>,
    context: u32,
    threads: i32,
    temperature: f32,
}

type Sender = mpsc::Sender<Result<TextEvent, AiError>>;

/// How a part ended.
enum Ended {
    /// `stop` or `length`, with the tokens written.
    Finished(&'static str, u32),
    /// The caller went away.
    Abandoned,
}

impl Job {
    fn error(&self, message: impl Into<String>) -> AiError {
        AiError::new(&self.provider, AiErrorKind::Unavailable, message)
    }

    fn run(&self, tx: &Sender) -> Result<(), AiError> {
        let (mut prompt, mut written, mut finish) = (0, 0, "stop");
        let mut out = Out { tx, newlines: 0 };
        for part in &self.parts {
            // A section's heading follows the text before it after exactly one blank line.
            let skip = part.lead.chars().take_while(|c| *c == '\n').count().min(out.newlines);
            if !out.send(part.lead[skip..].to_string()) {
                return Ok(());
            }
            match self.generate(part, &mut out)? {
                Ended::Abandoned => return Ok(()),
                Ended::Finished(why, n) => {
                    prompt += part.tokens.len() as u32;
                    written += n;
                    if why == "length" {
                        finish = why;
                    }
                }
            }
        }
        let _ = tx.blocking_send(Ok(TextEvent::Done {
            model: self.model_name.clone(),
            usage: Some(Usage { prompt_tokens: prompt, completion_tokens: written }),
            finish_reason: Some(finish.into()),
        }));
        Ok(())
    }

    fn generate(&self, part: &Part, out: &mut Out<'_>) -> Result<Ended, AiError> {
        let tx = out.tx;
        let n_ctx = (part.tokens.len() as u32 + part.max_tokens + 1).min(self.context);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(BATCH as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = {
            let _one = self.opening.lock().unwrap_or_else(|e| e.into_inner());
            self.model
                .new_context(backend().map_err(|e| self.error(e.0))?, params)
                .map_err(|e| self.error(format!("cannot open a context for the model: {e}")))?
        };
        // The prompt, a batch at a time; logits for its last token only.
        let mut batch = LlamaBatch::new(BATCH, 1);
        let last = part.tokens.len() - 1;
        for (chunk_index, chunk) in part.tokens.chunks(BATCH).enumerate() {
            if tx.is_closed() {
                return Ok(Ended::Abandoned);
            }
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let pos = chunk_index * BATCH + i;
                batch.add(*token, pos as i32, &[0], pos == last).map_err(|e| self.error(e.to_string()))?;
            }
            ctx.decode(&mut batch).map_err(|e| self.error(format!("reading the prompt failed: {e}")))?;
        }
        // A light repetition penalty keeps small models out of loops.
        let n_vocab = self.model.n_vocab();
        let mut chain = Vec::with_capacity(6);
        if let Some(banned) = &part.banned {
            chain.push(LlamaSampler::logit_bias(n_vocab, banned));
        }
        chain.push(LlamaSampler::penalties(n_vocab, 64, 1.1, 0.0, 0.0));
        if self.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.extend([
                LlamaSampler::top_k(40),
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::temp(self.temperature),
                LlamaSampler::dist(seed()),
            ]);
        }
        let mut sampler = LlamaSampler::chain_simple(chain);
        let mut text = if part.lead.ends_with("- ") { Text::lines(&part.stop) } else { Text::new(&part.stop) };
        let mut pos = part.tokens.len() as i32;
        let mut written = 0u32;
        let mut decoder = Utf8::default();
        let vocab = self.model.vocab();
        let finish = loop {
            // Samples and accepts (the penalties remember it).
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                break "stop";
            }
            written += 1;
            let bytes = vocab.token_to_piece(token, false, None);
            let piece = decoder.push(&bytes);
            let (shown, stopped) = text.push(&piece);
            if !out.send(shown) {
                return Ok(Ended::Abandoned);
            }
            if stopped {
                break "stop";
            }
            if written >= part.max_tokens || pos as u32 + 1 >= n_ctx {
                break "length";
            }
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(|e| self.error(e.to_string()))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| self.error(format!("generation failed: {e}")))?;
        };
        let rest = text.finish(&decoder.finish(), finish == "length");
        let rest = if part.lead.ends_with("- ") { rest.trim_end().to_string() } else { rest };
        if !out.send(rest) {
            return Ok(Ended::Abandoned);
        }
        Ok(Ended::Finished(finish, written))
    }
}

/// Where a job's text goes, remembering how many line breaks it ends with.
struct Out<'a> {
    tx: &'a Sender,
    newlines: usize,
}

impl Out<'_> {
    /// Sends `text` (nothing when empty); false when the caller went away.
    fn send(&mut self, text: String) -> bool {
        if text.is_empty() {
            return true;
        }
        let trailing = text.chars().rev().take_while(|c| *c == '\n').count();
        self.newlines = if trailing == text.chars().count() { self.newlines + trailing } else { trailing };
        self.tx.blocking_send(Ok(TextEvent::Delta(text))).is_ok()
    }
}

/// A sampling seed: random, or (should the system's generator fail) the clock's nanoseconds,
/// so that two drafts still differ.
fn seed() -> u32 {
    let mut b = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()),
    }
}

/// Bytes to text: whole UTF-8 characters only, the rest kept for the next piece.
#[derive(Default)]
struct Utf8 {
    pending: Vec<u8>,
}

impl Utf8 {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Bytes that can never be UTF-8: shown as replacement characters.
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return s;
            }
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }

    fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// The generated text as it may be shown: held back while it could be the start of a stop
/// sequence, cut where one appears.
struct Text<'a> {
    stop: &'a [String],
    held: String,
    /// Shown a whole line at a time (a section's list), so that a cut-off line can be left out.
    lines: bool,
    shown_line: bool,
}

impl<'a> Text<'a> {
    fn new(stop: &'a [String]) -> Self {
        Text { stop, held: String::new(), lines: false, shown_line: false }
    }

    fn lines(stop: &'a [String]) -> Self {
        Text { lines: true, ..Text::new(stop) }
    }

    /// What can be shown now, and whether a stop sequence ended the text.
    fn push(&mut self, piece: &str) -> (String, bool) {
        self.held.push_str(piece);
        if let Some(at) = self.stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        // Keep the longest end of the text that begins some stop sequence.
        let keep = self
            .stop
            .iter()
            .flat_map(|s| (1..s.len()).filter(|n| s.is_char_boundary(*n)).map(move |n| &s[..n]))
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let mut cut = self.held.len() - keep;
        if self.lines {
            cut = self.held[..cut].rfind('\n').map_or(0, |i| i + 1);
            self.shown_line |= cut > 0;
        }
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// The rest, once generation ended; `cut_off` when it ended at the length limit (a line
    /// left unfinished is then dropped, or, if it is the only one, kept to its last sentence).
    fn finish(mut self, tail: &str, cut_off: bool) -> String {
        let (mut out, stopped) = self.push(tail);
        if stopped {
            return out;
        }
        let rest = std::mem::take(&mut self.held);
        let rest = match (self.lines && cut_off, self.shown_line || out.contains('\n')) {
            (false, _) => rest.as_str(),
            (true, true) => "",
            (true, false) => rest.rfind(". ").or(rest.rfind('.')).map_or(rest.as_str(), |i| &rest[..=i]),
        };
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_never_split() {
        let mut d = Utf8::default();
        let e = "é".as_bytes();
        assert_eq!(d.push(&e[..1]), "");
        assert_eq!(d.push(&e[1..]), "é");
        assert_eq!(d.push(b"ok "), "ok ");
        assert_eq!(d.push(&[0xF0, 0x9F]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }

    #[test]
    fn stop_sequences_are_never_shown() {
        let stop = vec!["</s>".to_string(), "\n\n##".to_string()];
        let mut t = Text::new(&stop);
        assert_eq!(t.push("Hello <"), ("Hello ".into(), false));
        assert_eq!(t.push("b>"), ("<b>".into(), false), "not a stop after all");
        assert_eq!(t.push(" end</"), (" end".into(), false));
        assert_eq!(t.push("s> more"), ("".into(), true));
        let mut t = Text::new(&stop);
        assert_eq!(t.push("Goals\n\n"), ("Goals".into(), false));
        assert_eq!(t.finish("", false), "\n\n", "held text is shown at the end");
        let none: Vec<String> = Vec::new();
        let mut t = Text::new(&none);
        assert_eq!(t.push("all of it"), ("all of it".into(), false));
    }

    #[test]
    fn lists_are_shown_a_line_at_a_time_and_a_cut_off_line_is_left_out() {
        let none: Vec<String> = Vec::new();
        let mut t = Text::lines(&none);
        assert_eq!(t.push("Sync on reconnect"), ("".into(), false));
        assert_eq!(t.push(".\n- Keep every"), ("Sync on reconnect.\n".into(), false));
        assert_eq!(t.finish(" edit wh", true), "", "the unfinished line is dropped");
        let mut t = Text::lines(&none);
        t.push("Only one line. It runs on and on wi");
        assert_eq!(t.finish("thout end", true), "Only one line.", "kept to its last sentence");
        let mut t = Text::lines(&none);
        t.push("A whole list\n- ending well");
        assert_eq!(t.finish("", false), "- ending well", "a list that ended is shown whole");
    }
}
