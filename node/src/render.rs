//! Running one task: fetch the `.blend`, render, upload, sign.

use std::{path::PathBuf, sync::Arc, time::Instant};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use lumen_chain::sign::{FrameResult, result_digest, sign_digest};
use lumen_protocol::{
    ContentHash, ContentHasher, TaskId, content_hash,
    ws::{Dispatch, NodeMessage},
};
use tokio::io::AsyncWriteExt as _;
use tracing::{info, warn};

use crate::{Fault, NodeConfig};

/// Everything a task needs from its session.
pub(crate) struct TaskContext {
    pub(crate) blender: Arc<lumen_blender::Blender>,
    pub(crate) key: PrivateKeySigner,
    pub(crate) http: reqwest::Client,
    pub(crate) http_base: String,
    pub(crate) session: String,
    pub(crate) chain_id: u64,
    pub(crate) escrow: Address,
    pub(crate) config: NodeConfig,
    /// What a cheating node remembers across tasks (failure tests only).
    pub(crate) cheat: Arc<CheatMemory>,
}

/// What a cheating node remembers across tasks ([`Fault`]s only).
#[derive(Debug, Default)]
pub(crate) struct CheatMemory {
    /// The first frame it rendered ([`Fault::CopyFrame`]).
    first_output: std::sync::Mutex<Option<Vec<u8>>>,
    /// Frames rendered so far ([`Fault::HonestThenNoise`]).
    rendered: std::sync::atomic::AtomicU32,
    /// Held while the other scene is generated ([`Fault::OtherScene`]).
    other_scene: tokio::sync::Mutex<()>,
}

/// Frames a [`Fault::HonestThenNoise`] node renders honestly first.
const HONEST_FRAMES: u32 = 2;

/// Layout of the scene a [`Fault::OtherScene`] node renders instead of the
/// job's (`make-sample-scene.py --seed`; the tests' jobs use layout 0).
const OTHER_SCENE_SEED: u32 = 7;

/// A task failure as reported to the gateway.
struct Failure {
    code: String,
    message: String,
    deterministic: bool,
}

impl Failure {
    fn transient(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), deterministic: false }
    }
}

impl TaskContext {
    /// Runs a task to the message that reports it.
    pub(crate) async fn execute(&self, dispatch: Dispatch) -> NodeMessage {
        let started = Instant::now();
        let task_id = dispatch.task_id;
        match self.try_execute(&dispatch).await {
            Ok((output_hash, signature)) => NodeMessage::TaskResult {
                task_id,
                job_id: dispatch.job_id,
                frame_index: dispatch.frame_index,
                output_hash,
                signature,
                render_secs: started.elapsed().as_secs_f64(),
            },
            Err(f) => {
                warn!(target: "node::render", %task_id, code = %f.code, message = %f.message, deterministic = f.deterministic, "Job failed");
                NodeMessage::TaskFailed {
                    task_id,
                    code: f.code,
                    message: f.message,
                    deterministic: f.deterministic,
                }
            }
        }
    }

    async fn try_execute(&self, d: &Dispatch) -> Result<(ContentHash, alloy::primitives::Bytes), Failure> {
        let bytes = match self.config.fault {
            Some(Fault::Silent) => std::future::pending().await,
            Some(Fault::FakeFailure) => {
                return Err(Failure {
                    code: "missing_feature".into(),
                    message: "Build without OpenImageDenoiser".into(),
                    deterministic: true,
                });
            }
            Some(Fault::Noise) => noise_png(d.width, d.height, d.task_id.0),
            Some(Fault::Smooth) => gradient_png(d.width, d.height),
            Some(Fault::CopyFrame) => {
                let copied =
                    self.cheat.first_output.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                match copied {
                    Some(bytes) => bytes,
                    None => {
                        let bytes = self.render(d, d.frame).await?;
                        *self.cheat.first_output.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(bytes.clone());
                        bytes
                    }
                }
            }
            // 1↔2, 3↔4, …: always a frame of the scene's range.
            Some(Fault::Neighbour) => {
                self.render(d, if d.frame % 2 == 1 { d.frame + 1 } else { d.frame - 1 }).await?
            }
            Some(Fault::HonestThenNoise)
                if self.cheat.rendered.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    >= HONEST_FRAMES =>
            {
                noise_png(d.width, d.height, d.task_id.0)
            }
            Some(Fault::BlackFrames) => {
                self.render(d, d.frame).await?;
                black_png(d.width, d.height)
            }
            Some(Fault::OtherScene) => {
                let other = self.other_scene(d.width, d.height).await?;
                self.run_blender(d, other, d.frame).await?
            }
            _ => self.render(d, d.frame).await?,
        };
        self.deliver(d, bytes).await
    }

    /// Renders Blender frame `frame` of the dispatch's scene.
    async fn render(&self, d: &Dispatch, frame: i32) -> Result<Vec<u8>, Failure> {
        let blend = self.fetch_blend(&d.blend_hash, d.blend_size).await?;
        self.run_blender(d, blend, frame).await
    }

    /// A scene other than any job's, `width`×`height`, generated with
    /// Blender into the data folder the first time it is needed
    /// ([`Fault::OtherScene`]).
    async fn other_scene(&self, width: u32, height: u32) -> Result<PathBuf, Failure> {
        let dir = self.config.data_dir.join("cheat");
        let path = dir.join(format!("other-scene-{OTHER_SCENE_SEED}-{width}x{height}.blend"));
        let _generating = self.cheat.other_scene.lock().await;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Failure::transient("io", e.to_string()))?;
        let scene = lumen_blender::sample::SampleScene {
            width,
            height,
            seed: OTHER_SCENE_SEED,
            ..lumen_blender::sample::SampleScene::default()
        };
        // Written beside and renamed, so a cut-short run leaves no half file.
        let tmp = dir.join(format!(".other-scene-{width}x{height}.{}.blend", std::process::id()));
        lumen_blender::sample::make_scene(&self.blender, &scene, &tmp)
            .await
            .map_err(|e| Failure::transient("other_scene", e.to_string()))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| Failure::transient("io", e.to_string()))?;
        info!(target: "node::render", path = %path.display(), "generated another scene to render instead of a job's");
        Ok(path)
    }

    /// Renders Blender frame `frame` of `blend` under the dispatch's limits.
    async fn run_blender(&self, d: &Dispatch, blend: PathBuf, frame: i32) -> Result<Vec<u8>, Failure> {
        let work = self.config.data_dir.join("work");
        tokio::fs::create_dir_all(&work).await.map_err(|e| Failure::transient("io", e.to_string()))?;
        let request = lumen_blender::RenderRequest {
            blend,
            frame,
            work_dir: work,
            limits: lumen_blender::ResourceLimits {
                timeout: std::time::Duration::from_secs(d.timeout_secs.max(1)),
                memory_bytes: self.config.memory_bytes,
                cpu_seconds: self.config.cpu_seconds,
            },
            threads: self.config.threads,
            expected_range: None,
            probe: false,
            samples_override: (self.config.fault == Some(Fault::FewerSamples)).then_some(1),
        };
        let output = self.blender.render_frame(&request).await.map_err(|e| Failure {
            code: e.kind().to_owned(),
            message: e.to_string(),
            deterministic: e.is_deterministic(),
        })?;
        Ok(output.bytes)
    }

    /// Uploads the output and signs `(job, frame, output hash)`.
    async fn deliver(
        &self,
        d: &Dispatch,
        bytes: Vec<u8>,
    ) -> Result<(ContentHash, alloy::primitives::Bytes), Failure> {
        let hash = content_hash(&bytes);
        self.upload(d.task_id, bytes, &hash).await?;
        let result = FrameResult {
            jobId: d.job_id.to_u256(),
            frameIndex: d.frame_index.get(),
            outputHash: hash.to_b256(),
        };
        let signer = match self.config.fault {
            Some(Fault::WrongKey) => PrivateKeySigner::random(),
            _ => self.key.clone(),
        };
        let signature = sign_digest(&signer, result_digest(&result, self.chain_id, self.escrow))
            .await
            .map_err(|e| Failure::transient("signing", e.to_string()))?;
        info!(target: "node::render", task_id = %d.task_id, frame = d.frame, %hash, "frame rendered and uploaded");
        Ok((hash, signature))
    }

    /// The `.blend`, from the local cache or the gateway, checked against its
    /// hash. The download streams to a temporary file, hashed on the way and
    /// cut off past the size the dispatch announced (or [`MAX_BLEND_BYTES`]),
    /// so a huge or endless body cannot exhaust the node's memory.
    async fn fetch_blend(&self, hash: &ContentHash, size: u64) -> Result<PathBuf, Failure> {
        let io = |e: std::io::Error| Failure::transient("io", e.to_string());
        let cache = self.config.data_dir.join("cache");
        let path = cache.join(format!("{}.blend", hash.to_hex()));
        match hash_file(&path).await {
            Ok(cached) if cached == *hash => return Ok(path),
            Ok(_) => warn!(target: "node::cache", %hash, "cached .blend is corrupt; fetching again"),
            Err(_) => {}
        }
        let url = format!("{}/api/v1/blobs/{hash}", self.http_base);
        // The gateway hands a `.blend` only to nodes running a task of it.
        let mut response = self
            .http
            .get(&url)
            .bearer_auth(&self.session)
            .send()
            .await
            .map_err(|e| Failure::transient("fetch", e.to_string()))?;
        if !response.status().is_success() {
            return Err(Failure::transient("fetch", format!("GET {url}: {}", response.status())));
        }
        let max = if size == 0 { MAX_BLEND_BYTES } else { size };
        let mismatch = || {
            Failure::transient("blend_mismatch", format!("the gateway sent bytes that do not hash to {hash}"))
        };
        if response.content_length().is_some_and(|len| len > max) {
            return Err(mismatch());
        }
        tokio::fs::create_dir_all(&cache).await.map_err(io)?;
        let tmp =
            tempfile::Builder::new().prefix(".fetch-").tempfile_in(&cache).map_err(io)?.into_temp_path();
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut hasher = ContentHasher::new();
        let mut received = 0u64;
        while let Some(piece) =
            response.chunk().await.map_err(|e| Failure::transient("fetch", e.to_string()))?
        {
            received += piece.len() as u64;
            if received > max {
                return Err(mismatch());
            }
            hasher.update(&piece);
            file.write_all(&piece).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        if hasher.finalize() != *hash || (size != 0 && received != size) {
            return Err(mismatch());
        }
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(path)
    }

    async fn upload(&self, task_id: TaskId, bytes: Vec<u8>, hash: &ContentHash) -> Result<(), Failure> {
        let url = format!("{}/api/v1/tasks/{task_id}/output", self.http_base);
        let response = self
            .http
            .put(&url)
            .bearer_auth(&self.session)
            .body(bytes)
            .send()
            .await
            .map_err(|e| Failure::transient("upload", e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(Failure::transient("upload", format!("PUT {url}: {status} {body}")));
        }
        let body: serde_json::Value =
            response.json().await.map_err(|e| Failure::transient("upload", e.to_string()))?;
        if body.get("hash").and_then(|h| h.as_str()) != Some(format!("{hash}").as_str()) {
            return Err(Failure::transient("upload", "the gateway stored different bytes than sent"));
        }
        Ok(())
    }
}

/// Largest `.blend` a node fetches when the dispatch does not give its size
/// (the gateway's own default cap).
const MAX_BLEND_BYTES: u64 = 1 << 30;

/// The content hash of a file, read in pieces.
async fn hash_file(path: &std::path::Path) -> std::io::Result<ContentHash> {
    use tokio::io::AsyncReadExt as _;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// An all-black PNG (the [`Fault::BlackFrames`] misbehaviour).
fn black_png(width: u32, height: u32) -> Vec<u8> {
    encode_png(&image::RgbaImage::from_pixel(width.max(1), height.max(1), image::Rgba([0, 0, 0, 255])))
}

/// Random noise ([`Fault::Noise`]): decodes, the right size, not uniform.
fn noise_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    encode_png(&image::RgbaImage::from_fn(width.max(1), height.max(1), |_, _| {
        image::Rgba([rng.random(), rng.random(), rng.random(), 255])
    }))
}

/// A smooth synthetic image ([`Fault::Smooth`]): a diagonal colour gradient.
fn gradient_png(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width.max(1), height.max(1));
    encode_png(&image::RgbaImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        image::Rgba([(fx * 255.0) as u8, (fy * 255.0) as u8, ((1.0 - fx) * 160.0) as u8, 255])
    }))
}

fn encode_png(image: &image::RgbaImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}
