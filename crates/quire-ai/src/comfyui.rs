//! Image generation through ComfyUI's API: the workflow (API format) is queued with
//! `POST /prompt`, progress is followed on the `/ws` WebSocket (or by reading `/history` when
//! the socket cannot be had), and the images are read from `/history/{id}` and `/view`.
//!
//! The workflow is Quire's own text-to-image graph (checkpoint, two prompts, empty latent,
//! KSampler, VAE decode, save) unless the settings give one exported from ComfyUI ("Save
//! (API format)"), where these strings stand for the request's values: `{{prompt}}`,
//! `{{negative_prompt}}` (also inside longer strings), `{{width}}`, `{{height}}`, `{{seed}}`,
//! `{{count}}`, `{{steps}}`, `{{cfg}}`, `{{model}}` (as whole values, typed).
//!
//! To paint from an image, the image is first uploaded with `POST /upload/image` (multipart)
//! and an image-to-image workflow runs: Quire's own (load image, VAE encode, repeat to the
//! batch size, KSampler with `denoise` below 1) unless the settings give one, with two more
//! placeholders: `{{image}}` (the uploaded file's name, for a LoadImage node) and
//! `{{denoise}}`. A provider with a workflow of its own and no image workflow paints from
//! the prompt alone.
//!
//! When the caller goes away, the prompt is deleted from the server's queue and, if it is
//! running, interrupted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite;

use crate::remote::{Credentials, Remote};
use crate::resilience::GuardSettings;
use crate::{AiError, AiErrorKind, Image, ImageProvider, ImageRequest, Images, Progress};

#[derive(Debug, Clone)]
pub struct ComfyUiSettings {
    pub name: String,
    /// ComfyUI's address, e.g. `http://127.0.0.1:8188`.
    pub base_url: String,
    pub credentials: Credentials,
    /// The checkpoint file used when a request names none.
    pub checkpoint: String,
    pub steps: u32,
    pub cfg: f32,
    pub sampler: String,
    pub scheduler: String,
    /// A workflow in ComfyUI's API format with the placeholders above; `None`: Quire's own.
    pub workflow: Option<Value>,
    /// The image-to-image workflow (with `{{image}}` and `{{denoise}}` too); `None`: Quire's
    /// own, unless `workflow` is someone's own (then it cannot paint from images).
    pub image_workflow: Option<Value>,
    /// How long one HTTP call may take.
    pub request_timeout: Duration,
    /// How long the server may stay silent about a queued prompt.
    pub idle_timeout: Duration,
    /// How long a generation may take in all, queueing included.
    pub generation_timeout: Duration,
    /// How often `/history` is read when there is no WebSocket.
    pub poll_every: Duration,
    pub guard: GuardSettings,
}

impl ComfyUiSettings {
    pub fn new(name: &str, base_url: &str) -> Self {
        ComfyUiSettings {
            name: name.to_string(),
            base_url: base_url.to_string(),
            credentials: Credentials::None,
            checkpoint: "v1-5-pruned-emaonly.safetensors".into(),
            steps: 20,
            cfg: 7.0,
            sampler: "euler".into(),
            scheduler: "normal".into(),
            workflow: None,
            image_workflow: None,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            generation_timeout: Duration::from_secs(1800),
            poll_every: Duration::from_secs(1),
            guard: GuardSettings::default(),
        }
    }
}

pub struct ComfyUi {
    settings: ComfyUiSettings,
    workflow: Value,
    image_workflow: Option<Value>,
    remote: Arc<Remote>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

impl ComfyUi {
    pub fn new(settings: ComfyUiSettings) -> Result<Self, AiError> {
        let remote =
            Remote::new(&settings.name, &settings.base_url, settings.credentials.clone(), settings.guard.clone())?;
        let workflow = match &settings.workflow {
            None => default_workflow(),
            Some(w) => checked(&remote, w, &["{{prompt}}"])?,
        };
        let image_workflow = match (&settings.image_workflow, &settings.workflow) {
            (Some(w), _) => Some(checked(&remote, w, &["{{prompt}}", "{{image}}"])?),
            (None, None) => Some(default_image_workflow()),
            (None, Some(_)) => None,
        };
        Ok(ComfyUi { settings, workflow, image_workflow, remote: Arc::new(remote) })
    }

    /// The workflow with the request's values in place of the placeholders; the
    /// image-to-image one when there is an uploaded `image` to paint from.
    fn graph(&self, request: &ImageRequest, seed: u64, image: Option<&str>) -> (Value, String) {
        let model = request.model.clone().unwrap_or_else(|| self.settings.checkpoint.clone());
        let strength = request.init_image.as_ref().map_or(1.0, |i| i.strength);
        let whole = [
            ("{{image}}", json!(image.unwrap_or_default())),
            ("{{denoise}}", json!(strength)),
            ("{{width}}", json!(request.width)),
            ("{{height}}", json!(request.height)),
            ("{{seed}}", json!(seed)),
            ("{{count}}", json!(request.count.max(1))),
            ("{{steps}}", json!(self.settings.steps)),
            ("{{cfg}}", json!(self.settings.cfg)),
            ("{{model}}", json!(model)),
            ("{{sampler}}", json!(self.settings.sampler)),
            ("{{scheduler}}", json!(self.settings.scheduler)),
        ];
        let inner = [
            ("{{prompt}}", request.prompt.as_str()),
            ("{{negative_prompt}}", request.negative_prompt.as_deref().unwrap_or("")),
        ];
        fn fill(v: &mut Value, whole: &[(&str, Value)], inner: &[(&str, &str)]) {
            match v {
                Value::String(s) => {
                    if let Some((_, value)) = whole.iter().find(|(k, _)| k == s) {
                        *v = value.clone();
                    } else if s.contains("{{") {
                        for (k, text) in inner {
                            *s = s.replace(k, text);
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(|i| fill(i, whole, inner)),
                Value::Object(map) => map.values_mut().for_each(|i| fill(i, whole, inner)),
                _ => {}
            }
        }
        let mut graph = match (image, &self.image_workflow) {
            (Some(_), Some(w)) => w.clone(),
            _ => self.workflow.clone(),
        };
        fill(&mut graph, &whole, &inner);
        (graph, model)
    }

    /// The WebSocket that tells this client about its prompts, when it can be had.
    async fn socket(&self, client_id: &str) -> Option<Socket> {
        let url = reqwest::Url::parse(&self.remote.base_url).ok()?;
        if url.scheme() != "http" {
            return None; // wss would need TLS here; progress is read from /history instead.
        }
        let (host, port) = (url.host_str()?, url.port_or_known_default()?);
        let connect = tokio::net::TcpStream::connect((host, port));
        let tcp = tokio::time::timeout(Duration::from_secs(10), connect).await.ok()?.ok()?;
        let path = url.path().trim_end_matches('/');
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{host}:{port}{path}/ws?clientId={client_id}"
        ))
        .ok()?;
        if let Some(auth) = self.remote.credentials.authorization() {
            request.headers_mut().insert("authorization", auth.parse().ok()?);
        }
        let handshake = tokio_tungstenite::client_async(request, tcp);
        let (socket, _) = tokio::time::timeout(Duration::from_secs(10), handshake).await.ok()?.ok()?;
        Some(socket)
    }

    /// Follows the prompt on the socket until the server says it is done or failed.
    async fn follow(&self, socket: &mut Socket, prompt_id: &str, progress: Progress<'_>) -> Result<bool, AiError> {
        loop {
            let message = match tokio::time::timeout(self.settings.idle_timeout, socket.next()).await {
                Err(_) => return Err(self.silent()),
                // The socket went away: the caller falls back to reading /history.
                Ok(None | Some(Err(_))) => return Ok(false),
                Ok(Some(Ok(m))) => m,
            };
            let tungstenite::Message::Text(text) = message else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
            let data = &v["data"];
            if data["prompt_id"].as_str() != Some(prompt_id) {
                continue;
            }
            match v["type"].as_str().unwrap_or_default() {
                "progress" => {
                    let (value, max) = (data["value"].as_f64().unwrap_or(0.0), data["max"].as_f64().unwrap_or(0.0));
                    if max > 0.0 {
                        progress((value / max).clamp(0.0, 1.0) as f32);
                    }
                }
                "executing" if data["node"].is_null() => return Ok(true),
                "execution_success" => return Ok(true),
                "execution_error" => return Err(self.failed_node(data)),
                "execution_interrupted" => {
                    return Err(self
                        .remote
                        .error(AiErrorKind::Unavailable, "the generation was interrupted on the server"));
                }
                _ => {}
            }
        }
    }

    fn silent(&self) -> AiError {
        let secs = self.settings.idle_timeout.as_secs_f32();
        self.remote.error(AiErrorKind::Timeout, format!("the server said nothing about the prompt for {secs} s"))
    }

    fn failed_node(&self, data: &Value) -> AiError {
        let node = data["node_id"].as_str().unwrap_or("?");
        let kind = data["node_type"].as_str().unwrap_or("a node");
        let why = data["exception_message"].as_str().unwrap_or("no reason given").trim();
        self.remote.error(AiErrorKind::Unavailable, format!("node {node} ({kind}) failed: {why}"))
    }

    /// Reads `/history/{id}` until the prompt is there and finished; its entry.
    async fn finished(&self, prompt_id: &str) -> Result<Value, AiError> {
        let path = format!("/history/{prompt_id}");
        let mut quiet = Duration::ZERO;
        loop {
            let history = self.remote.json(&path, None, self.settings.request_timeout).await?;
            let entry = &history[prompt_id];
            let status = &entry["status"];
            if status["status_str"] == "error" {
                let data = status["messages"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m[0] == "execution_error"))
                    .map(|m| m[1].clone())
                    .unwrap_or(Value::Null);
                return Err(self.failed_node(&data));
            }
            if entry.is_object() && (status["completed"] == true || status.is_null()) {
                return Ok(entry.clone());
            }
            if quiet >= self.settings.idle_timeout {
                return Err(self.silent());
            }
            tokio::time::sleep(self.settings.poll_every).await;
            quiet += self.settings.poll_every;
        }
    }

    /// Uploads an image to paint from into the server's input folder; the name a LoadImage
    /// node takes. The name comes from the bytes, so the same image is not kept twice.
    async fn upload(&self, png: &bytes::Bytes) -> Result<String, AiError> {
        let name = format!("quire-{:016x}.png", {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            png.hash(&mut h);
            h.finish()
        });
        let form = || {
            let part = reqwest::multipart::Part::bytes(png.to_vec())
                .file_name(name.clone())
                .mime_str("image/png")
                .expect("a valid media type");
            reqwest::multipart::Form::new().part("image", part).text("type", "input").text("overwrite", "true")
        };
        let answer = self.remote.form("/upload/image", form, self.settings.request_timeout).await?;
        let stored = answer["name"]
            .as_str()
            .ok_or_else(|| self.remote.error(AiErrorKind::Protocol, "/upload/image answered no name"))?;
        Ok(match answer["subfolder"].as_str().filter(|s| !s.is_empty()) {
            Some(folder) => format!("{folder}/{stored}"),
            None => stored.to_string(),
        })
    }

    async fn run(&self, request: &ImageRequest, progress: Progress<'_>) -> Result<Images, AiError> {
        let client_id = format!("quire-{:016x}", random());
        let seed = request.seed.unwrap_or_else(|| random() >> 11);
        let image = match (&request.init_image, &self.image_workflow) {
            (Some(init), Some(_)) => Some(self.upload(&init.png).await?),
            _ => None,
        };
        let (graph, model) = self.graph(request, seed, image.as_deref());
        let mut socket = self.socket(&client_id).await;
        let body = json!({ "prompt": graph, "client_id": client_id });
        let queued = self.remote.json("/prompt", Some(&body), self.settings.request_timeout).await?;
        let prompt_id = queued["prompt_id"]
            .as_str()
            .ok_or_else(|| self.remote.error(AiErrorKind::Protocol, "/prompt answered no prompt_id"))?
            .to_string();
        let mut cancel = Cancel { remote: Some(self.remote.clone()), prompt_id: prompt_id.clone() };
        if let Some(s) = socket.as_mut() {
            self.follow(s, &prompt_id, progress).await?;
        }
        let entry = self.finished(&prompt_id).await?;
        cancel.remote = None;
        progress(1.0);
        let mut outputs: Vec<(&String, &Value)> =
            entry["outputs"].as_object().map(Map::iter).into_iter().flatten().collect();
        outputs.sort_by_key(|(node, _)| node.parse::<u64>().unwrap_or(u64::MAX));
        let mut images = Vec::new();
        for file in outputs.iter().flat_map(|(_, o)| o["images"].as_array().into_iter().flatten()) {
            if file["type"] != "output" {
                continue; // previews
            }
            let mut query = reqwest::Url::parse("http://view/").expect("a constant URL");
            query
                .query_pairs_mut()
                .append_pair("filename", file["filename"].as_str().unwrap_or_default())
                .append_pair("subfolder", file["subfolder"].as_str().unwrap_or_default())
                .append_pair("type", "output");
            let path = format!("/view?{}", query.query().unwrap_or_default());
            let bytes = self.remote.bytes(&path, self.settings.request_timeout).await?;
            images.push(Image::sniffed(bytes));
        }
        if images.is_empty() {
            return Err(self.remote.error(
                AiErrorKind::Protocol,
                "the workflow ran but saved no image (does it end in a SaveImage node?)",
            ));
        }
        Ok(Images { model, images })
    }
}

#[async_trait]
impl ImageProvider for ComfyUi {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn circuit(&self) -> Option<crate::resilience::Circuit> {
        Some(self.remote.guard.circuit())
    }

    fn paints_from_images(&self) -> bool {
        self.image_workflow.is_some()
    }

    async fn generate_images(&self, request: &ImageRequest, progress: Progress<'_>) -> Result<Images, AiError> {
        match tokio::time::timeout(self.settings.generation_timeout, self.run(request, progress)).await {
            Ok(result) => result,
            Err(_) => Err(self.remote.error(
                AiErrorKind::Timeout,
                format!("the generation took longer than {} s", self.settings.generation_timeout.as_secs()),
            )),
        }
    }
}

/// Deletes a queued prompt and interrupts it if it runs, unless disarmed (`remote: None`)
/// because it finished.
struct Cancel {
    remote: Option<Arc<Remote>>,
    prompt_id: String,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        let (Some(remote), Ok(runtime)) = (self.remote.take(), tokio::runtime::Handle::try_current()) else { return };
        let id = std::mem::take(&mut self.prompt_id);
        runtime.spawn(async move {
            let wait = Duration::from_secs(10);
            let deleted = remote.send("/queue", Some(&json!({ "delete": [id] })), wait).await;
            let interrupted = remote.send("/interrupt", Some(&json!({ "prompt_id": id })), wait).await;
            if let Err(e) = deleted.and(interrupted) {
                tracing::warn!(provider = %remote.name, prompt_id = %id, error = %e, "could not cancel a ComfyUI prompt");
            }
        });
    }
}

/// A random number (seeds, client ids) without a generator of our own.
fn random() -> u64 {
    use std::hash::BuildHasher;
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Quire's text-to-image graph, ComfyUI's own default workflow in API format.
fn default_workflow() -> Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {
            "seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}", "sampler_name": "{{sampler}}",
            "scheduler": "{{scheduler}}", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": "{{count}}"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative_prompt}}", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "quire", "images": ["8", 0]}}
    })
}

/// Quire's image-to-image graph: the text-to-image one with the uploaded image, encoded and
/// repeated to the batch size, in place of the empty latent, and `denoise` below 1.
fn default_image_workflow() -> Value {
    let mut graph = default_workflow();
    let nodes = graph.as_object_mut().expect("an object of nodes");
    nodes.remove("5");
    nodes.insert("10".into(), json!({"class_type": "LoadImage", "inputs": {"image": "{{image}}"}}));
    nodes.insert("11".into(), json!({"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}));
    nodes.insert(
        "12".into(),
        json!({"class_type": "RepeatLatentBatch", "inputs": {"samples": ["11", 0], "amount": "{{count}}"}}),
    );
    let sampler = &mut nodes.get_mut("3").expect("the KSampler")["inputs"];
    sampler["latent_image"] = json!(["12", 0]);
    sampler["denoise"] = json!("{{denoise}}");
    graph
}

/// `w` if it is a workflow in ComfyUI's API format with each of the `placeholders`.
fn checked(remote: &Remote, w: &Value, placeholders: &[&str]) -> Result<Value, AiError> {
    let nodes = w.as_object().filter(|o| !o.is_empty() && o.values().all(|n| n["class_type"].is_string()));
    if nodes.is_none() {
        return Err(remote.error(
            AiErrorKind::Rejected,
            "the workflow is not in ComfyUI's API format (an object of nodes with a class_type each; \
             export it with \"Save (API format)\")",
        ));
    }
    let text = w.to_string();
    for p in placeholders {
        if !text.contains(p) {
            let whereto = match *p {
                "{{image}}" => "where a LoadImage node's image name goes",
                _ => "where the positive prompt's text goes",
            };
            return Err(
                remote.error(AiErrorKind::Rejected, format!("the workflow has no {p} placeholder: put it {whereto}"))
            );
        }
    }
    Ok(w.clone())
}
