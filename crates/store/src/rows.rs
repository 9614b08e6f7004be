//! Row types and the states they move through.

use serde::{Deserialize, Serialize};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum JobState {
    /// Registered by the artist; the matching `JobOpened` event is not yet seen.
    AwaitingChain,
    /// Funded on-chain; frames are being rendered and verified.
    Rendering,
    /// Every frame is final; releases, close and refund are under way.
    Settling,
    /// Every frame verified and paid, job closed and refunded on-chain.
    Completed,
    /// Ended with frames that failed for good: verified frames paid, the rest refunded.
    Failed,
    /// The chain does not back the job as registered (spec hash, amount or artist differ).
    Rejected,
}

impl JobState {
    /// Whether nothing more will happen to the job.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Rejected)
    }
}

/// Where a frame stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum FrameState {
    /// Waiting for a node.
    Pending,
    /// A node is rendering it.
    Rendering,
    /// A result is uploaded and waits for the verifier.
    Verifying,
    /// The verifier accepted it: it will be paid.
    Verified,
    /// Failed for good; never paid.
    Failed,
}

/// Where one render attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum TaskState {
    /// Dispatched to the node.
    Running,
    /// Result signed and uploaded; waiting for the verifier.
    Uploaded,
    /// The verifier accepted the output.
    Accepted,
    /// The verifier rejected the output.
    Rejected,
    /// The node reported a failure.
    Failed,
    /// The node disconnected, went silent or overran its lease.
    Lost,
    /// Stopped because the job ended.
    Cancelled,
}

/// A job as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// On-chain job id.
    pub job_id: i64,
    /// Artist address.
    pub artist: String,
    /// The signed spec as JSON.
    pub spec_json: String,
    /// EIP-712 hash of the spec (what the escrow holds).
    pub spec_hash: String,
    /// The artist's signature over the spec.
    pub signature: String,
    /// blake3 of the `.blend`.
    pub blend_hash: String,
    /// Frames in the job.
    pub frame_count: u32,
    /// Expected frame width.
    pub width: u32,
    /// Expected frame height.
    pub height: u32,
    /// Render engine.
    pub engine: String,
    /// Payment token (zero address for the native coin).
    pub token: String,
    /// Price per frame in wei, decimal.
    pub price_per_frame: String,
    /// Blender frame number of each frame index.
    pub frame_numbers: Vec<i32>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobRow {
    /// On-chain job id.
    pub job_id: i64,
    /// Artist address.
    pub artist: String,
    /// The signed spec as JSON.
    pub spec_json: String,
    /// EIP-712 hash of the spec.
    pub spec_hash: String,
    /// The artist's signature.
    pub signature: String,
    /// blake3 of the `.blend`.
    pub blend_hash: String,
    /// Frames in the job.
    pub frame_count: i64,
    /// Expected frame width.
    pub width: i64,
    /// Expected frame height.
    pub height: i64,
    /// Render engine.
    pub engine: String,
    /// Payment token.
    pub token: String,
    /// Price per frame in wei, decimal.
    pub price_per_frame: String,
    /// Current state.
    pub state: JobState,
    /// Why the job failed or was rejected.
    pub failure: Option<String>,
    /// Registration time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// A stored frame.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FrameRow {
    /// Job id.
    pub job_id: i64,
    /// 0-based index within the job.
    pub frame_index: i64,
    /// Blender frame number.
    pub frame_number: i64,
    /// Current state.
    pub state: FrameState,
    /// Node whose output is current (verifying or verified).
    pub node: Option<String>,
    /// blake3 of that output.
    pub output_hash: Option<String>,
    /// Last verdict (`accepted`, `rejected: <code>`).
    pub verdict: Option<String>,
    /// Why the frame failed for good.
    pub failure: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// A stored render attempt.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TaskRow {
    /// Task id, sent to the node.
    pub task_id: i64,
    /// Job id.
    pub job_id: i64,
    /// Frame index.
    pub frame_index: i64,
    /// Node address.
    pub node: String,
    /// Current state.
    pub state: TaskState,
    /// Hash of the bytes the node uploaded.
    pub upload_hash: Option<String>,
    /// Hash the node signed.
    pub output_hash: Option<String>,
    /// The node's signature over (job, frame, output hash).
    pub signature: Option<String>,
    /// Failure code (node-reported or verifier rejection).
    pub failure_code: Option<String>,
    /// Failure detail.
    pub failure_message: Option<String>,
    /// Whether the failure would repeat on any node with the same build.
    pub deterministic: bool,
    /// Node-reported render time.
    pub render_secs: Option<f64>,
    /// The task is lost if no result arrives by then (ms).
    pub lease_until: i64,
    /// Dispatch time (ms).
    pub created_at: i64,
    /// End time (ms).
    pub finished_at: Option<i64>,
    /// Order of the verifier's verdict on it (1, 2, 3, ...).
    pub verdict_seq: Option<i64>,
}

/// How a task ended without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    /// `Failed` or `Lost` (or `Cancelled`).
    pub state: TaskState,
    /// Stable failure code.
    pub code: String,
    /// Detail.
    pub message: String,
    /// Whether the failure is deterministic.
    pub deterministic: bool,
}

/// The verifier's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The frame is good.
    Accepted,
    /// The frame is corrupt.
    Rejected {
        /// Stable rejection code.
        code: String,
        /// Detail.
        message: String,
    },
}

/// Frames of a job per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FrameCounts {
    /// Waiting for a node.
    pub pending: i64,
    /// Being rendered.
    pub rendering: i64,
    /// Being verified.
    pub verifying: i64,
    /// Verified.
    pub verified: i64,
    /// Failed for good.
    pub failed: i64,
}

impl FrameCounts {
    /// Whether every frame is verified or failed.
    pub fn all_final(&self) -> bool {
        self.pending == 0 && self.rendering == 0 && self.verifying == 0
    }
}

/// One mirrored contract event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ChainEventRow {
    /// Block number.
    pub block_number: i64,
    /// Log index within the block.
    pub log_index: i64,
    /// Block hash (for reorg detection).
    pub block_hash: String,
    /// Transaction hash.
    pub tx_hash: String,
    /// `escrow` or `registry`.
    pub contract: String,
    /// Event name.
    pub name: String,
    /// Job id, for escrow job events.
    pub job_id: Option<i64>,
    /// Node address, where the event has one.
    pub node: Option<String>,
    /// Artist, owner or other account the event concerns.
    pub account: Option<String>,
    /// The decoded event as JSON.
    pub data: String,
}

/// One frame's payout, derived from a `FramesReleased` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PayoutRow {
    /// Job id.
    pub job_id: i64,
    /// Frame index.
    pub frame_index: i64,
    /// Node that rendered it.
    pub node: String,
    /// Owner credited.
    pub owner: String,
    /// Gross amount for this frame, wei.
    pub amount: String,
    /// Protocol fee taken from it, wei.
    pub fee: String,
    /// The release transaction.
    pub tx_hash: String,
    /// Its block.
    pub block_number: i64,
}

/// How far a mirror has read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cursor {
    /// Mirror name.
    pub name: String,
    /// Last block fully applied.
    pub block_number: i64,
    /// Its hash.
    pub block_hash: String,
}
