//! Image generation through Automatic1111's Stable Diffusion web UI API (started with
//! `--api`): `POST /sdapi/v1/txt2img` (or `/sdapi/v1/img2img` with `init_images` and
//! `denoising_strength`, to paint from an image) answers base64 images once the batch is
//! done; progress is read meanwhile from `GET /sdapi/v1/progress`. The checkpoint is chosen per request with
//! `override_settings.sd_model_checkpoint` (the server's loaded model when none is set).
//!
//! The API has no way to stop one request: when the caller goes away, Quire stops waiting,
//! and the server finishes that batch on its own.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::remote::{Credentials, Remote};
use crate::resilience::GuardSettings;
use crate::{AiError, AiErrorKind, Image, ImageProvider, ImageRequest, Images, Progress};

#[derive(Debug, Clone)]
pub struct Automatic1111Settings {
    pub name: String,
    /// The web UI's address, e.g. `http://127.0.0.1:7860`.
    pub base_url: String,
    /// `--api-auth user:password`, when the server asks for it.
    pub credentials: Credentials,
    /// The checkpoint to use when a request names none (`None`: the one loaded).
    pub model: Option<String>,
    pub steps: u32,
    pub cfg_scale: f32,
    pub sampler: String,
    /// How long a batch may take.
    pub request_timeout: Duration,
    /// How often progress is read while a batch runs.
    pub progress_every: Duration,
    pub guard: GuardSettings,
}

impl Automatic1111Settings {
    pub fn new(name: &str, base_url: &str) -> Self {
        Automatic1111Settings {
            name: name.to_string(),
            base_url: base_url.to_string(),
            credentials: Credentials::None,
            model: None,
            steps: 20,
            cfg_scale: 7.0,
            sampler: "Euler a".into(),
            request_timeout: Duration::from_secs(600),
            progress_every: Duration::from_secs(1),
            guard: GuardSettings::default(),
        }
    }
}

pub struct Automatic1111 {
    settings: Automatic1111Settings,
    remote: Remote,
}

impl Automatic1111 {
    pub fn new(settings: Automatic1111Settings) -> Result<Self, AiError> {
        let remote =
            Remote::new(&settings.name, &settings.base_url, settings.credentials.clone(), settings.guard.clone())?;
        Ok(Automatic1111 { settings, remote })
    }

    fn body(&self, request: &ImageRequest) -> Value {
        let mut body = json!({
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt.as_deref().unwrap_or(""),
            "width": request.width,
            "height": request.height,
            "batch_size": request.count.max(1),
            "n_iter": 1,
            "seed": request.seed.map_or(-1, |s| s as i64),
            "steps": self.settings.steps,
            "cfg_scale": self.settings.cfg_scale,
            "sampler_name": self.settings.sampler,
        });
        if let Some(model) = request.model.as_ref().or(self.settings.model.as_ref()) {
            body["override_settings"] = json!({ "sd_model_checkpoint": model });
        }
        if let Some(init) = &request.init_image {
            body["init_images"] = json!([base64::engine::general_purpose::STANDARD.encode(&init.png)]);
            body["denoising_strength"] = json!(init.strength);
            body["resize_mode"] = json!(0); // "Just resize": it is the size asked for already
        }
        body
    }

    /// Reads the server's progress until cancelled (the batch ended).
    async fn follow(&self, progress: Progress<'_>) {
        let mut tick = tokio::time::interval(self.settings.progress_every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let read =
                self.remote.json_once("/sdapi/v1/progress?skip_current_image=true", None, Duration::from_secs(5));
            if let Ok(Some(p)) = read.await.map(|v| v["progress"].as_f64()) {
                progress(p.clamp(0.0, 1.0) as f32);
            }
        }
    }
}

#[async_trait]
impl ImageProvider for Automatic1111 {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn circuit(&self) -> Option<crate::resilience::Circuit> {
        Some(self.remote.guard.circuit())
    }

    fn paints_from_images(&self) -> bool {
        true
    }

    async fn generate_images(&self, request: &ImageRequest, progress: Progress<'_>) -> Result<Images, AiError> {
        let body = self.body(request);
        let path = if request.init_image.is_some() { "/sdapi/v1/img2img" } else { "/sdapi/v1/txt2img" };
        let answer = tokio::select! {
            answer = self.remote.json(path, Some(&body), self.settings.request_timeout) => answer?,
            () = self.follow(progress) => unreachable!("following progress never ends"),
        };
        let encoded = answer["images"]
            .as_array()
            .ok_or_else(|| self.remote.error(AiErrorKind::Protocol, format!("{path} answered no list of images")))?;
        // With a batch of several, the server may put a grid of them first.
        let wanted = request.count.max(1) as usize;
        let skip = encoded.len().saturating_sub(wanted);
        let mut images = Vec::with_capacity(wanted);
        for item in &encoded[skip..] {
            let b64 = item.as_str().unwrap_or_default();
            // Some versions prefix a data URL header.
            let b64 = b64.split_once("base64,").map_or(b64, |(_, b)| b);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| self.remote.error(AiErrorKind::Protocol, format!("an image is not base64: {e}")))?;
            images.push(Image::sniffed(bytes.into()));
        }
        if images.is_empty() {
            return Err(self.remote.error(AiErrorKind::Protocol, format!("{path} answered no image")));
        }
        progress(1.0);
        // `info` is a JSON document in a string; it names the checkpoint that ran.
        let info: Value = answer["info"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        let model = info["sd_model_name"]
            .as_str()
            .map(String::from)
            .or_else(|| request.model.clone())
            .or_else(|| self.settings.model.clone())
            .unwrap_or_else(|| self.settings.name.clone());
        Ok(Images { model, images })
    }
}
