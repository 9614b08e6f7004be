//! The node ↔ gateway WebSocket protocol.
//!
//! Every message is a JSON text frame `{"v": 1, "type": "<kind>", ...}`.
//! The gateway speaks [`ServerMessage`], the node [`NodeMessage`]. A
//! connection goes:
//!
//! 1. gateway → `challenge` (fresh nonce); node → `auth` (signature over
//!    [`crate::auth::challenge_message`], capabilities); gateway → `welcome`
//!    or closes with [`CLOSE_AUTH_FAILED`].
//! 2. node → `heartbeat` every `heartbeat_interval`; gateway → `heartbeat_ack`
//!    with the node's state. Silence closes with [`CLOSE_HEARTBEAT_TIMEOUT`].
//! 3. gateway → `job_dispatch`; node renders, uploads the frame over HTTP,
//!    then → `task_result` signed over (job, frame, output hash), or
//!    → `task_failed`. Gateway → `result_ack`.

use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::{ContentHash, FrameIndex, JobId, TaskId, node::NodeState};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Close code: authentication failed (bad signature, unknown or unbound node).
pub const CLOSE_AUTH_FAILED: u16 = 4001;
/// Close code: no heartbeat within the timeout.
pub const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4002;
/// Close code: a message was malformed, too large, of another version, or
/// not allowed in the connection's current phase.
pub const CLOSE_PROTOCOL_ERROR: u16 = 4003;
/// Close code: the same node key connected again; the older connection goes.
pub const CLOSE_REPLACED: u16 = 4004;
/// Close code: the node was proven to cheat and is banned network-wide.
pub const CLOSE_BANNED: u16 = 4005;
/// Close code: the node sent messages faster than the gateway's limit
/// (`[gateway.limits] ws_messages_per_sec`, `ws_burst`, counted per node
/// key across its connections); reconnect with backoff.
pub const CLOSE_RATE_LIMITED: u16 = 4006;

/// Largest text frame either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What a node can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Job types the node runs (`"render"` for Blender frames).
    pub job_types: Vec<String>,
    /// Blender version, e.g. `"3.4.1"`; redundant samples pair equal versions.
    pub blender_version: String,
    /// Whether a GPU is available for rendering.
    pub gpu: bool,
    /// Memory the node gives one render, in MiB.
    pub memory_mb: u64,
    /// Frames the node renders at once.
    pub slots: u32,
    /// The OpenGL implementation Blender draws Eevee and Workbench frames
    /// with, `renderer; version` as `gpu.platform` names them (e.g.
    /// `llvmpipe (LLVM 15.0.6, 256 bits); 4.5 (Core Profile) Mesa 22.3.6`);
    /// absent when Blender cannot draw on the node. Verification renders of
    /// those engines pair nodes that report the same value
    /// ([`pairs_on_opengl`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opengl: Option<String>,
}

/// Longest `blender_version` a node may announce.
pub const MAX_VERSION_CHARS: usize = 64;
/// Longest `opengl` a node may announce.
pub const MAX_OPENGL_CHARS: usize = 256;
/// Most job types a node may announce, and the longest of them.
pub const MAX_JOB_TYPES: usize = 16;

impl Capabilities {
    /// Why these capabilities are not acceptable (sizes the gateway stores
    /// with every task), if they are not.
    pub fn problem(&self) -> Option<String> {
        let opengl = self.opengl.as_deref().unwrap_or_default();
        if self.blender_version.chars().count() > MAX_VERSION_CHARS {
            Some(format!("blender_version is longer than {MAX_VERSION_CHARS} characters"))
        } else if opengl.chars().count() > MAX_OPENGL_CHARS {
            Some(format!("opengl is longer than {MAX_OPENGL_CHARS} characters"))
        } else if self.job_types.len() > MAX_JOB_TYPES
            || self.job_types.iter().any(|t| t.chars().count() > 32)
        {
            Some(format!("more than {MAX_JOB_TYPES} job types, or one longer than 32 characters"))
        } else {
            None
        }
    }
}

/// Whether two renders of `engine` must come from the same OpenGL
/// implementation to be comparable: every engine but Cycles, which does not
/// draw with OpenGL (Eevee and Workbench do; an engine we do not know is
/// treated as if it did).
pub fn pairs_on_opengl(engine: &str) -> bool {
    engine != "CYCLES"
}

/// One frame to render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// The gateway's id of this attempt; results name it.
    pub task_id: TaskId,
    /// The on-chain job id.
    pub job_id: JobId,
    /// 0-based frame index within the job (what the escrow pays).
    pub frame_index: FrameIndex,
    /// The Blender frame number to render.
    pub frame: i32,
    /// blake3 of the `.blend`; fetch it from `/api/v1/blobs/<hash>` and check.
    pub blend_hash: ContentHash,
    /// Size of the `.blend` in bytes.
    pub blend_size: u64,
    /// Expected output width in pixels.
    pub width: u32,
    /// Expected output height in pixels.
    pub height: u32,
    /// Render engine named in the job spec.
    pub engine: String,
    /// Seconds the node may spend on the frame.
    pub timeout_secs: u64,
}

/// Messages from the gateway to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Prove you hold your key: sign the challenge text with this nonce.
    Challenge {
        /// Fresh random nonce.
        nonce: B256,
        /// Chain the network settles on.
        chain_id: u64,
        /// The gateway's public URL, part of the signed text.
        gateway: String,
    },
    /// Authentication succeeded.
    Welcome {
        /// The node's address, as recovered.
        node: Address,
        /// The owner wallet the node is bound to on-chain.
        owner: Address,
        /// How often to send heartbeats, in seconds.
        heartbeat_interval_secs: f64,
        /// Bearer token for this connection's uploads.
        session: String,
        /// Chain id of the EIP-712 domain results are signed in.
        chain_id: u64,
        /// Escrow address of that domain.
        escrow: Address,
    },
    /// A heartbeat was received.
    HeartbeatAck {
        /// The node's state after the heartbeat.
        state: NodeState,
    },
    /// Render this frame.
    JobDispatch(Dispatch),
    /// Stop working on a task (its frame went elsewhere or the job ended).
    CancelTask {
        /// The task to drop.
        task_id: TaskId,
        /// Why.
        reason: String,
    },
    /// What became of a result or failure report.
    ResultAck {
        /// The task reported on.
        task_id: TaskId,
        /// Whether the result was taken (signature, assignment and upload check out).
        accepted: bool,
        /// Why not, if not.
        reason: Option<String>,
    },
}

/// Messages from a node to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMessage {
    /// Answer to the challenge.
    Auth {
        /// The node's address (must match the signature).
        node: Address,
        /// 65-byte EIP-191 signature over the challenge text.
        signature: Bytes,
        /// What this node can run.
        capabilities: Capabilities,
        /// The node software's version.
        client_version: String,
    },
    /// I am alive.
    Heartbeat {
        /// Tasks currently running.
        running: u32,
    },
    /// A frame is rendered and uploaded.
    TaskResult {
        /// The task.
        task_id: TaskId,
        /// The job (checked against the task).
        job_id: JobId,
        /// The frame index (checked against the task).
        frame_index: FrameIndex,
        /// blake3 of the uploaded frame.
        output_hash: ContentHash,
        /// 65-byte EIP-712 signature by the node key over (job, frame, output hash).
        signature: Bytes,
        /// Wall time the node spent, in seconds.
        render_secs: f64,
    },
    /// A task is still being worked on (fetching, rendering or uploading);
    /// sent every few seconds while it is. A task that goes quiet is moved to
    /// another node.
    TaskProgress {
        /// The task.
        task_id: TaskId,
    },
    /// A frame could not be rendered.
    TaskFailed {
        /// The task.
        task_id: TaskId,
        /// Stable short code, e.g. `missing_feature`, `timeout`.
        code: String,
        /// Human-readable detail.
        message: String,
        /// Whether any node with the same Blender build would fail the same way.
        deterministic: bool,
    },
}

/// A message with its protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Protocol version.
    pub v: u32,
    /// The message.
    #[serde(flatten)]
    pub msg: T,
}

/// Why a text frame is not a message we accept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame exceeds [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0} (this side speaks {PROTOCOL_VERSION})")]
    Version(u32),
    /// Not JSON of a known message shape.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Encodes a message with the current version.
pub fn encode<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(&Envelope { v: PROTOCOL_VERSION, msg }).expect("protocol messages always serialize")
}

/// Decodes and version-checks a text frame.
pub fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(text.len()));
    }
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let Version { v } = serde_json::from_str(text)?;
    if v != PROTOCOL_VERSION {
        return Err(DecodeError::Version(v));
    }
    Ok(serde_json::from_str::<Envelope<T>>(text)?.msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_flat_and_tagged() {
        let text = encode(&NodeMessage::Heartbeat { running: 2 });
        assert_eq!(text, r#"{"v":1,"type":"heartbeat","running":2}"#);
        let back: NodeMessage = decode(&text).unwrap();
        assert_eq!(back, NodeMessage::Heartbeat { running: 2 });
    }

    #[test]
    fn dispatch_roundtrips() {
        let msg = ServerMessage::JobDispatch(Dispatch {
            task_id: TaskId(7),
            job_id: JobId(1),
            frame_index: FrameIndex(0),
            frame: 1,
            blend_hash: ContentHash(B256::repeat_byte(1)),
            blend_size: 1234,
            width: 320,
            height: 180,
            engine: "CYCLES".into(),
            timeout_secs: 300,
        });
        let back: ServerMessage = decode(&encode(&msg)).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn rejects_other_versions_unknown_types_and_huge_frames() {
        assert!(matches!(
            decode::<NodeMessage>(r#"{"v":2,"type":"heartbeat","running":0}"#),
            Err(DecodeError::Version(2))
        ));
        assert!(matches!(
            decode::<NodeMessage>(r#"{"v":1,"type":"steal_money"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(decode::<NodeMessage>("not json"), Err(DecodeError::Malformed(_))));
        let huge = format!(r#"{{"v":1,"type":"heartbeat","running":0,"pad":"{}"}}"#, "x".repeat(70_000));
        assert!(matches!(decode::<NodeMessage>(&huge), Err(DecodeError::TooLarge(_))));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(text in ".{0,512}") {
            let _ = decode::<NodeMessage>(&text);
            let _ = decode::<ServerMessage>(&text);
        }
    }
}
