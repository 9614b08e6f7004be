//! JSON bodies of the gateway's HTTP API, shared by the gateway and `lumen`.

use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::eip712::JobSpec;

/// A file the `.blend` references but does not contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalFile {
    /// Datablock kind: `image`, `library`, `sound`, `font`, `movieclip`, `volume`, `cache_file`.
    pub kind: String,
    /// Datablock name.
    pub name: String,
    /// The path it points at (`//` means relative to the `.blend`).
    pub path: String,
}

/// What the gateway read from an uploaded `.blend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneSummary {
    /// First frame of the scene's range.
    pub frame_start: i32,
    /// Last frame (inclusive).
    pub frame_end: i32,
    /// Frame step.
    pub frame_step: i32,
    /// Output width in pixels (after the resolution percentage).
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Render engine (`CYCLES`, `BLENDER_EEVEE`, `BLENDER_WORKBENCH`).
    pub engine: String,
    /// Frames per second.
    pub fps: f64,
    /// Blender version that saved the file.
    pub saved_with: Option<String>,
}

/// Answer to `POST /api/v1/blends`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedBlend {
    /// blake3 of the file.
    pub hash: B256,
    /// Size in bytes.
    pub size: u64,
    /// What the file describes.
    pub scene: SceneSummary,
}

/// Body of `POST /api/v1/jobs`: a job opened on-chain, with its signed spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterJob {
    /// The on-chain job id from `JobOpened`.
    pub job_id: u64,
    /// The spec whose EIP-712 hash was locked.
    pub spec: JobSpec,
    /// The artist's signature over that hash.
    pub signature: Bytes,
}

/// One frame in a job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameView {
    /// Blender frame number.
    pub frame: i64,
    /// 0-based index within the job.
    pub index: i64,
    /// `pending`, `rendering`, `verifying`, `verified`, `failed`.
    pub state: String,
    /// Node whose output is current.
    pub node: Option<String>,
    /// blake3 of that output.
    pub output_hash: Option<String>,
    /// Last verification verdict.
    pub verdict: Option<String>,
    /// Why the frame failed for good.
    pub failure: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// Release transaction that paid it (from the chain mirror).
    pub payout_tx: Option<String>,
    /// Owner credited.
    pub payout_owner: Option<String>,
    /// Gross amount paid for it, wei.
    pub payout_amount: Option<String>,
    /// Protocol fee taken from that amount, wei.
    pub payout_fee: Option<String>,
}

/// A transaction of the job's settlement, from the chain mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// Event name (`JobOpened`, `JobClosed`, `JobRefunded`, …).
    pub event: String,
    /// Transaction hash.
    pub tx_hash: String,
    /// Block.
    pub block_number: i64,
    /// Amount the event moved, wei, where it has one.
    pub amount: Option<String>,
}

/// Answer to `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// On-chain job id.
    pub job_id: i64,
    /// `awaiting_chain`, `rendering`, `settling`, `completed`, `failed`, `rejected`.
    pub state: String,
    /// Why the job failed.
    pub failure: Option<String>,
    /// Artist address.
    pub artist: String,
    /// Frames.
    pub frame_count: i64,
    /// Price per frame, wei.
    pub price_per_frame: String,
    /// Payment token (zero address: native coin).
    pub token: String,
    /// EIP-712 spec hash.
    pub spec_hash: String,
    /// blake3 of the `.blend`.
    pub blend_hash: String,
    /// Expected frame size.
    pub width: i64,
    /// Expected frame size.
    pub height: i64,
    /// Per-frame detail.
    pub frames: Vec<FrameView>,
    /// Settlement events of the job (open, releases, close, refund).
    pub transactions: Vec<TxView>,
}

impl JobView {
    /// Whether the job will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed" | "rejected")
    }
}

/// A node in `GET /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node key address.
    pub address: Address,
    /// Owner wallet.
    pub owner: Address,
    /// `REGISTERED`, `HEALTHY`, `UNHEALTHY`, `OFFLINE`.
    pub state: String,
    /// Whether it is connected now.
    pub connected: bool,
}

/// An API error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Stable code.
    pub code: String,
    /// Explanation.
    pub error: String,
    /// Structured detail.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// Answer to `GET /api/v1/info`: the chain this gateway settles on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Chain id.
    pub chain_id: u64,
    /// JSON-RPC URL the gateway uses (may be loopback: clients may need their own).
    pub rpc_url: String,
    /// `RenderEscrow` address.
    pub escrow: Address,
    /// `NodeRegistry` address.
    pub registry: Address,
}
