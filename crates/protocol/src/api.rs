//! JSON bodies of the gateway's HTTP API, shared by the gateway and `lumen`.

use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::{
    ChainEventKind, ContentHash, FrameIndex, FrameState, JobId, JobState, TaskId, TaskRole, TaskState, Wei,
    eip712::JobSpec, node::NodeState, ws::Capabilities,
};

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
    /// Render samples per pixel (Cycles' samples, EEVEE's render samples);
    /// `None` for engines without, and for scenes inspected before this
    /// was read.
    #[serde(default)]
    pub samples: Option<u32>,
}

impl SceneSummary {
    /// How `spec` disagrees with this scene (empty when it asks for what
    /// the `.blend` renders): the resolution and engine must be the
    /// scene's, and every frame of the spec must be one the scene renders
    /// (inside its range, on its step). A spec that disagrees would have
    /// every honest render judged against the wrong expectation.
    pub fn spec_mismatches(&self, spec: &JobSpec) -> Vec<String> {
        let mut problems = Vec::new();
        if (spec.width, spec.height) != (self.width, self.height) {
            problems.push(format!(
                "resolution {}x{} is not the scene's {}x{}",
                spec.width, spec.height, self.width, self.height
            ));
        }
        if spec.engine != self.engine {
            problems.push(format!("engine {:?} is not the scene's {:?}", spec.engine, self.engine));
        }
        if spec.frameStart < self.frame_start || spec.frameEnd > self.frame_end {
            problems.push(format!(
                "frames {}-{} are outside the scene's range {}-{}",
                spec.frameStart, spec.frameEnd, self.frame_start, self.frame_end
            ));
        }
        let step = i64::from(self.frame_step.max(1));
        if (i64::from(spec.frameStart) - i64::from(self.frame_start)) % step != 0
            || i64::from(spec.frameStep) % step != 0
        {
            problems.push(format!(
                "frames from {} every {} are not on the scene's step {}",
                spec.frameStart, spec.frameStep, self.frame_step
            ));
        }
        problems
    }
}

/// Answer to `POST /api/v1/blends`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedBlend {
    /// blake3 of the file.
    pub hash: ContentHash,
    /// Size in bytes.
    pub size: u64,
    /// What the file describes.
    pub scene: SceneSummary,
}

/// Body of `POST /api/v1/jobs`: a job opened on-chain, with its signed spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterJob {
    /// The on-chain job id from `JobOpened`.
    pub job_id: JobId,
    /// The spec whose EIP-712 hash was locked.
    pub spec: JobSpec,
    /// The artist's signature over that hash.
    pub signature: Bytes,
}

/// One render of a frame (its first render, or a verification render).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderView {
    /// The attempt.
    pub task_id: TaskId,
    /// Why it exists.
    pub role: TaskRole,
    /// Where it stands.
    pub state: TaskState,
    /// The node that rendered it.
    pub node: Address,
    /// blake3 of its output, once a result is in.
    pub output_hash: Option<ContentHash>,
    /// Failure or rejection code, if it failed.
    pub failure: Option<String>,
    /// When it was dispatched to the node, ms since the Unix epoch.
    #[serde(default)]
    pub dispatched_at_ms: i64,
    /// When the node's part ended (result uploaded, failure reported, task
    /// lost or cancelled), ms since the Unix epoch; `None` while it runs.
    /// From dispatch to here it takes one of the node's slots.
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
}

/// One frame in a job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameView {
    /// Blender frame number.
    pub frame: i32,
    /// 0-based index within the job.
    pub index: FrameIndex,
    /// Where the frame stands.
    pub state: FrameState,
    /// Node whose output is current (the one paid once verified).
    pub node: Option<Address>,
    /// blake3 of that output.
    pub output_hash: Option<ContentHash>,
    /// Last verification verdict (`accepted`, `rejected: <code>`).
    pub verdict: Option<String>,
    /// Why the frame failed for good.
    pub failure: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// Release transaction that paid it (from the chain mirror).
    pub payout_tx: Option<B256>,
    /// Owner credited.
    pub payout_owner: Option<Address>,
    /// Gross amount paid for it.
    pub payout_amount: Option<Wei>,
    /// Protocol fee taken from that amount.
    pub payout_fee: Option<Wei>,
    /// The verification render of the frame paid from the artist's
    /// verification budget, if one was (from the chain mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_payout: Option<PayoutView>,
    /// Every render of the frame, oldest first.
    #[serde(default)]
    pub renders: Vec<RenderView>,
    /// Whether a reduced, watermarked preview of the verified output can
    /// be fetched (`GET /api/v1/jobs/{id}/frames/{frame}/preview`). The
    /// full frame is delivered only once its payment is final on-chain
    /// (`payout_tx` set).
    #[serde(default)]
    pub preview: bool,
}

/// A payment to a node's owner, from the chain mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutView {
    /// The node whose render was paid.
    pub node: Address,
    /// The owner credited.
    pub owner: Address,
    /// Gross amount.
    pub amount: Wei,
    /// Protocol fee taken from it.
    pub fee: Wei,
    /// The settlement transaction.
    pub tx: B256,
}

/// A transaction of the job's settlement, from the chain mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// Which event.
    pub event: ChainEventKind,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block.
    pub block_number: u64,
    /// Amount the event moved, where it has one.
    pub amount: Option<Wei>,
}

/// What moved on the network: the events of `GET /api/v1/changes`
/// (`event: changes`, this JSON). Each part is an opaque stamp, compared
/// only for equality: a page that shows a part reloads it when its stamp
/// differs from the last one it saw, so the dashboard needs no polling loop.
/// The first event of a stream is the current stamps (a page that
/// reconnects after a gateway restart compares them and catches up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Jobs, their frames and renders (any artist's).
    pub jobs: String,
    /// Nodes: connections, states, failures, capabilities, stake.
    pub nodes: String,
    /// The latest heartbeat heard from any node, in steps of
    /// [`Changes::HEARTBEAT_STEP_SECS`]: pages that show heartbeat ages
    /// reload at that pace while nodes are alive, and not when none are.
    pub heartbeats: String,
    /// The chain mirror: its last event, and how far the indexer has read.
    pub chain: String,
    /// The gateway's clock minute: figures kept per minute (uptime, and so
    /// the leaderboard) move with it.
    pub minute: String,
}

impl Changes {
    /// The step of [`Changes::heartbeats`], seconds.
    pub const HEARTBEAT_STEP_SECS: u64 = 10;

    /// The parts that differ between `self` and `other`, by wire name.
    pub fn differing(&self, other: &Self) -> Vec<&'static str> {
        [
            ("jobs", self.jobs != other.jobs),
            ("nodes", self.nodes != other.nodes),
            ("heartbeats", self.heartbeats != other.heartbeats),
            ("chain", self.chain != other.chain),
            ("minute", self.minute != other.minute),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

/// Answer to `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// On-chain job id.
    pub job_id: JobId,
    /// Where the job stands.
    pub state: JobState,
    /// Why the job failed.
    pub failure: Option<String>,
    /// Artist address.
    pub artist: Address,
    /// Frames.
    pub frame_count: u32,
    /// Price per frame.
    pub price_per_frame: Wei,
    /// Payment token (zero address: native coin).
    pub token: Address,
    /// EIP-712 spec hash.
    pub spec_hash: B256,
    /// blake3 of the `.blend`.
    pub blend_hash: ContentHash,
    /// Expected frame width.
    pub width: u32,
    /// Expected frame height.
    pub height: u32,
    /// Per-frame detail.
    pub frames: Vec<FrameView>,
    /// Settlement events of the job (open, releases, close, refund).
    pub transactions: Vec<TxView>,
    /// Why the indexer parked the job's settlement (a revert it can never
    /// pass as it is, decoded), while it is parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_parked: Option<String>,
    /// Nodes the escrow never pays for this job's frames (left out of its
    /// releases), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpayable: Vec<UnpayableNode>,
    /// The job's escrow as the chain mirror has it (absent until its
    /// `JobOpened` is mirrored): the terms every escrow call about the job
    /// names, so the artist's wallet can cancel and refund it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onchain: Option<OnchainJobView>,
}

/// A token's `symbol()` as it may be shown: a hostile token names itself,
/// so only printable ASCII is kept, at most 16 characters.
pub fn plain_symbol(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_graphic).take(16).collect()
}

/// A job's terms as opened on-chain (`IRenderEscrow.JobTerms`, field for
/// field): `cancel` and `refund` take them back, and the escrow checks them
/// against the hash it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTermsView {
    /// EIP-712 hash of the job spec.
    pub spec_hash: B256,
    /// Who opened and funded the job.
    pub artist: Address,
    /// Payment token (zero: native coin).
    pub token: Address,
    /// Price of one frame.
    pub price_per_frame: Wei,
    /// Frames paid for.
    pub frame_count: u32,
    /// Verification renders that may be paid.
    pub verifications: u32,
    /// Unix time after which the artist may always refund.
    pub deadline: u64,
    /// Unix time the job was opened.
    pub opened_at: u64,
    /// Protocol fee snapshotted for the job, basis points.
    pub fee_bps: u16,
}

/// Where a job's escrow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscrowState {
    /// Funded and running: the artist may cancel it, and refund it after
    /// its deadline.
    Open,
    /// Cancelled by its artist: nothing more is rendered, and the rest can
    /// be refunded once the cancel grace (or the deadline) has passed.
    Cancelled,
    /// Settled and closed, or refunded: the escrow holds nothing more for it.
    Closed,
}

/// A job on-chain: its terms, where its escrow stands, and from when its
/// artist may refund it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnchainJobView {
    /// The terms it was opened with.
    pub terms: JobTermsView,
    /// Where its escrow stands.
    pub state: EscrowState,
    /// Unix time from which `refund` succeeds (`None` once closed).
    pub refundable_at: Option<u64>,
}

impl OnchainJobView {
    /// Folds a job's chain events, in chain order, into its on-chain view;
    /// `None` without its `JobOpened`.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a crate::ChainEvent>) -> Option<Self> {
        use crate::ChainEvent as E;
        let mut view: Option<Self> = None;
        for event in events {
            match (event, view.as_mut()) {
                (
                    E::JobOpened {
                        spec_hash,
                        artist,
                        token,
                        price_per_frame,
                        frame_count,
                        verifications,
                        deadline,
                        opened_at,
                        fee_bps,
                        ..
                    },
                    _,
                ) => {
                    view = Some(Self {
                        terms: JobTermsView {
                            spec_hash: *spec_hash,
                            artist: *artist,
                            token: *token,
                            price_per_frame: *price_per_frame,
                            frame_count: *frame_count,
                            verifications: *verifications,
                            deadline: *deadline,
                            opened_at: *opened_at,
                            fee_bps: *fee_bps,
                        },
                        state: EscrowState::Open,
                        refundable_at: Some(*deadline),
                    });
                }
                (E::JobCancelled { refundable_at, .. }, Some(v)) if v.state == EscrowState::Open => {
                    v.state = EscrowState::Cancelled;
                    v.refundable_at = Some(*refundable_at);
                }
                // A closing settlement and a refund both end in `JobRefunded`.
                (E::JobRefunded { .. }, Some(v)) => {
                    v.state = EscrowState::Closed;
                    v.refundable_at = None;
                }
                _ => {}
            }
        }
        view
    }
}

/// A node whose frames of a job the escrow never pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpayableNode {
    /// The node key.
    pub node: Address,
    /// Why (the decoded revert).
    pub reason: String,
}

impl JobView {
    /// Whether the job will not change any more.
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }

    /// How many frames are in `state`.
    pub fn count(&self, state: FrameState) -> usize {
        self.frames.iter().filter(|f| f.state == state).count()
    }
}

/// A node in `GET /api/v1/nodes`, and what the matchmaker sees of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node key address.
    pub address: Address,
    /// Owner wallet bound on-chain.
    pub owner: Address,
    /// Health state.
    pub state: NodeState,
    /// Whether a connection is open.
    pub connected: bool,
    /// Capabilities it announced.
    pub capabilities: Capabilities,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Seconds since the last heartbeat.
    pub last_heartbeat_secs: Option<f64>,
    /// Tasks running on it now.
    pub running: u32,
    /// Stake bonded for it in the `NodeRegistry` when it connected.
    #[serde(default)]
    pub stake: Wei,
    /// Its record, from the renders the network stored (the gateway's
    /// `/api/v1/nodes` fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustView>,
}

/// A node's track record, derived from stored renders and verdicts, so it
/// survives restarts and anyone with the database can recompute it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrustView {
    /// Renders accepted.
    pub accepted: u32,
    /// Accepted renders of sampled frames (an independent owner agreed).
    pub agreed_samples: u32,
    /// Renders rejected by the integrity checks.
    pub rejected: u32,
    /// Renders outvoted by independent renders: proven wrong.
    pub outvoted: u32,
    /// Failed renders.
    pub failed: u32,
    /// Lost renders (silence, disconnection, lease overrun).
    pub lost: u32,
    /// Reputation in 0..=1 (matching weighs equally loaded nodes by it).
    pub reputation: f64,
    /// Banned network-wide for proven cheating.
    pub banned: bool,
}

/// What a gateway accepts as a job: its operator's market limits
/// (`[gateway.market]` in its configuration; `GET /api/v1/market`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Market {
    /// Most frames one job may have.
    pub max_frames_per_job: u32,
    /// Least time, in seconds, from registration to the job's on-chain
    /// deadline: a job must have time to render and settle before its
    /// artist can refund it.
    pub min_deadline_secs: u64,
    /// The payment tokens accepted (the zero address is the native coin),
    /// each with its lowest price per frame.
    pub tokens: Vec<TokenPrice>,
}

/// A payment token a gateway accepts, and its lowest price per frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPrice {
    /// The token (zero: the native coin).
    pub token: Address,
    /// Lowest price of one frame, in the token's smallest unit.
    pub min_price_per_frame: Wei,
}

impl Default for Market {
    /// 10,000 frames a job, an hour at least to the deadline; the native
    /// coin only, from 10^12 wei (0.000001 ETH) a frame.
    fn default() -> Self {
        Self {
            max_frames_per_job: 10_000,
            min_deadline_secs: 3_600,
            tokens: vec![TokenPrice {
                token: Address::ZERO,
                min_price_per_frame: Wei::from(1_000_000_000_000u128),
            }],
        }
    }
}

impl Market {
    /// Why a job paying `price` per frame in `token` for `frames` frames is
    /// refused, as an error code and a message; `None` when it is accepted.
    pub fn problem(&self, token: Address, price: Wei, frames: u32) -> Option<(&'static str, String)> {
        if frames > self.max_frames_per_job {
            return Some((
                "too_many_frames",
                format!("{frames} frames; this gateway takes at most {} per job", self.max_frames_per_job),
            ));
        }
        let Some(accepted) = self.tokens.iter().find(|t| t.token == token) else {
            return Some(("token_not_accepted", format!("this gateway does not take payment in {token}")));
        };
        (price < accepted.min_price_per_frame).then(|| {
            (
                "price_too_low",
                format!(
                    "{price} per frame; this gateway takes at least {} per frame in {token}",
                    accepted.min_price_per_frame
                ),
            )
        })
    }
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

#[cfg(test)]
mod market_tests {
    use super::*;

    #[test]
    fn the_market_refuses_unknown_tokens_low_prices_and_huge_jobs() {
        let market = Market::default();
        let floor = Wei::from(1_000_000_000_000u128);
        assert_eq!(market.problem(Address::ZERO, floor, 10_000), None);
        assert_eq!(market.problem(Address::ZERO, Wei::from(1u128), 6).map(|p| p.0), Some("price_too_low"));
        let minted = Address::repeat_byte(0xee);
        assert_eq!(market.problem(minted, floor, 6).map(|p| p.0), Some("token_not_accepted"));
        assert_eq!(market.problem(Address::ZERO, floor, 1_048_576).map(|p| p.0), Some("too_many_frames"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_the_parts_that_moved_by_their_wire_names() {
        let before = Changes {
            jobs: "1".into(),
            nodes: "a".into(),
            heartbeats: "".into(),
            chain: "5.0.0-5".into(),
            minute: "9".into(),
        };
        let json = serde_json::to_value(&before).unwrap();
        let names: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut all = Changes {
            jobs: "2".into(),
            nodes: "b".into(),
            heartbeats: "1".into(),
            chain: "6".into(),
            minute: "10".into(),
        }
        .differing(&before);
        all.sort_unstable();
        let mut wire = names.clone();
        wire.sort_unstable();
        assert_eq!(all, wire, "every part, by the name a page reads");
        let after = Changes { heartbeats: "3".into(), ..before.clone() };
        assert_eq!(after.differing(&before), ["heartbeats"]);
        assert!(before.differing(&before).is_empty());
    }

    fn scene() -> SceneSummary {
        SceneSummary {
            frame_start: 1,
            frame_end: 24,
            frame_step: 1,
            width: 320,
            height: 180,
            engine: "CYCLES".into(),
            fps: 24.0,
            saved_with: None,
            samples: Some(64),
        }
    }

    fn spec_for(scene: &SceneSummary) -> JobSpec {
        JobSpec {
            blendHash: B256::ZERO,
            frameStart: scene.frame_start,
            frameEnd: scene.frame_end,
            frameStep: 1,
            width: scene.width,
            height: scene.height,
            engine: scene.engine.clone(),
            token: Address::ZERO,
            pricePerFrame: 1,
            salt: Default::default(),
        }
    }

    #[test]
    fn a_spec_must_ask_for_what_the_scene_renders() {
        let scene = scene();
        assert!(scene.spec_mismatches(&spec_for(&scene)).is_empty());
        // A sub-range, every other frame: still frames the scene renders.
        let sub = JobSpec { frameStart: 5, frameEnd: 9, frameStep: 2, ..spec_for(&scene) };
        assert!(scene.spec_mismatches(&sub).is_empty());

        let cases = [
            (JobSpec { width: 321, ..spec_for(&scene) }, "resolution 321x180"),
            (JobSpec { height: 90, ..spec_for(&scene) }, "resolution 320x90"),
            (JobSpec { engine: "BLENDER_EEVEE".into(), ..spec_for(&scene) }, "engine"),
            (JobSpec { frameEnd: 25, ..spec_for(&scene) }, "outside the scene's range"),
            (JobSpec { frameStart: 0, ..spec_for(&scene) }, "outside the scene's range"),
        ];
        for (spec, expected) in cases {
            let problems = scene.spec_mismatches(&spec);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(expected), "{problems:?} lacks {expected:?}");
        }
        let stepped = SceneSummary { frame_step: 2, ..scene };
        let off_step = JobSpec { frameStart: 2, ..spec_for(&stepped) };
        assert!(stepped.spec_mismatches(&off_step).iter().any(|p| p.contains("step")));
    }

    /// Scenes recorded before inspection read the render samples still load.
    #[test]
    fn scene_summary_samples_default_to_none() {
        let json = r#"{"frame_start":1,"frame_end":24,"frame_step":1,"width":320,"height":180,
            "engine":"CYCLES","fps":24.0,"saved_with":"3.4.1"}"#;
        let scene: SceneSummary = serde_json::from_str(json).unwrap();
        assert_eq!(scene.samples, None);
        let round = serde_json::to_value(SceneSummary { samples: Some(64), ..scene }).unwrap();
        assert_eq!(round["samples"], 64);
    }

    /// The JSON of a job's status, as scripts read it: field names, lower-case
    /// state names, `0x` hex, decimal amounts.
    #[test]
    fn job_view_json_is_pinned() {
        let view = JobView {
            job_id: JobId(7),
            state: JobState::Completed,
            failure: None,
            artist: Address::repeat_byte(0xab),
            frame_count: 1,
            price_per_frame: Wei::from(1_000u128),
            token: Address::ZERO,
            spec_hash: B256::repeat_byte(1),
            blend_hash: ContentHash(B256::repeat_byte(2)),
            width: 64,
            height: 36,
            settlement_parked: None,
            unpayable: Vec::new(),
            onchain: None,
            frames: vec![FrameView {
                frame: 1,
                index: FrameIndex(0),
                state: FrameState::Verified,
                node: Some(Address::repeat_byte(0xcd)),
                output_hash: Some(ContentHash(B256::repeat_byte(3))),
                verdict: Some("accepted".into()),
                failure: None,
                attempts: 1,
                payout_tx: Some(B256::repeat_byte(4)),
                payout_owner: Some(Address::repeat_byte(0xef)),
                payout_amount: Some(Wei::from(1_000u128)),
                payout_fee: Some(Wei::from(25u128)),
                verification_payout: Some(PayoutView {
                    node: Address::repeat_byte(0xce),
                    owner: Address::repeat_byte(0xf0),
                    amount: Wei::from(1_000u128),
                    fee: Wei::from(25u128),
                    tx: B256::repeat_byte(4),
                }),
                renders: vec![],
                preview: true,
            }],
            transactions: vec![TxView {
                event: ChainEventKind::JobRefunded,
                tx_hash: B256::repeat_byte(5),
                block_number: 9,
                amount: Some(Wei::ZERO),
            }],
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["job_id"], 7);
        assert_eq!(json["state"], "completed");
        assert_eq!(json["artist"], format!("0x{}", "ab".repeat(20)));
        assert_eq!(json["price_per_frame"], "1000");
        assert_eq!(json["blend_hash"], format!("0x{}", "02".repeat(32)));
        let frame = &json["frames"][0];
        assert_eq!(frame["state"], "verified");
        assert_eq!(frame["index"], 0);
        assert_eq!(frame["payout_fee"], "25");
        assert_eq!(frame["payout_tx"], format!("0x{}", "04".repeat(32)));
        assert_eq!(json["transactions"][0]["event"], "JobRefunded");
        assert_eq!(json["transactions"][0]["amount"], "0");
        assert_eq!(serde_json::from_value::<JobView>(json).unwrap(), view);
    }
}

/// Answer to `GET /api/v1/auth/nonce`: what a Sign-In with Ethereum
/// (EIP-4361) message to this gateway must say. The nonce is single-use
/// and expires at `expiration_time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiweChallenge {
    /// The `domain` the message must name (this gateway's host and port).
    pub domain: String,
    /// The `URI` the message must name (this gateway's public URL).
    pub uri: String,
    /// The chain the gateway settles on.
    pub chain_id: u64,
    /// The nonce to sign.
    pub nonce: String,
    /// A statement for the wallet to show.
    pub statement: String,
    /// When the nonce was issued (RFC 3339).
    pub issued_at: String,
    /// When the nonce stops being accepted (RFC 3339).
    pub expiration_time: String,
}

impl SiweChallenge {
    /// The EIP-4361 message `address` signs to answer this challenge, in
    /// the standard's text form (what a wallet shows).
    pub fn message(&self, address: Address) -> String {
        format!(
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n{statement}\n\n\
             URI: {uri}\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: {issued}\n\
             Expiration Time: {expires}",
            domain = self.domain,
            address = address.to_checksum(None),
            statement = self.statement,
            uri = self.uri,
            chain = self.chain_id,
            nonce = self.nonce,
            issued = self.issued_at,
            expires = self.expiration_time,
        )
    }
}

/// Body of `POST /api/v1/auth/siwe`: a signed EIP-4361 message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The message, exactly as signed.
    pub message: String,
    /// The EIP-191 signature of it (65 bytes), or an ERC-1271 signature
    /// of a contract wallet.
    pub signature: Bytes,
}

/// An artist's session: the answer to a sign-in (with the bearer token,
/// also set as the `lumen_session` cookie) and to `GET /api/v1/auth/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The signed-in wallet.
    pub address: Address,
    /// When the session ends, ms since the Unix epoch.
    pub expires_at_ms: i64,
    /// The bearer token (only in the answer to the sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Answer to `GET /api/v1/stats`: what anyone may see of the network's
/// work, in aggregate (job lists and files are private to their artist).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Jobs registered, by state.
    pub jobs: std::collections::BTreeMap<String, u64>,
    /// Distinct artists with a registered job.
    pub artists: u64,
    /// Frames verified.
    pub frames_verified: u64,
    /// Frames paid on-chain.
    pub frames_paid: u64,
    /// Nodes connected now.
    pub nodes_connected: u64,
}

#[cfg(test)]
mod siwe_tests {
    use super::*;

    /// The dashboard builds the same message in TypeScript
    /// (`gateway/web/src/siwe.ts`) and is tested against the same fixture.
    #[test]
    fn the_siwe_message_matches_the_shared_fixture() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/siwe-message.json")).unwrap();
        let challenge: SiweChallenge = serde_json::from_value(fixture["challenge"].clone()).unwrap();
        let address: Address = fixture["address"].as_str().unwrap().parse().unwrap();
        assert_eq!(challenge.message(address), fixture["message"].as_str().unwrap());
    }
}

#[cfg(test)]
mod onchain_tests {
    use super::*;
    use crate::ChainEvent;

    fn opened(deadline: u64) -> ChainEvent {
        ChainEvent::JobOpened {
            job_id: JobId(7),
            artist: Address::repeat_byte(0xa1),
            spec_hash: B256::repeat_byte(0x5e),
            token: Address::ZERO,
            price_per_frame: Wei::from(1_000u128),
            frame_count: 12,
            verifications: 3,
            deadline,
            opened_at: 100,
            amount: Wei::from(15_000u128),
            fee_bps: 250,
        }
    }

    fn refunded() -> ChainEvent {
        ChainEvent::JobRefunded { job_id: JobId(7), artist: Address::repeat_byte(0xa1), amount: Wei::ZERO }
    }

    fn cancelled(at: u64) -> ChainEvent {
        ChainEvent::JobCancelled { job_id: JobId(7), artist: Address::repeat_byte(0xa1), refundable_at: at }
    }

    #[test]
    fn the_onchain_view_follows_open_cancel_and_close() {
        assert_eq!(OnchainJobView::from_events(&[]), None);
        // Events of a job whose JobOpened is not mirrored say nothing.
        assert_eq!(OnchainJobView::from_events(&[cancelled(5), refunded()]), None);

        let open = OnchainJobView::from_events(&[opened(9_000)]).unwrap();
        assert_eq!(open.state, EscrowState::Open);
        assert_eq!(open.refundable_at, Some(9_000));
        assert_eq!(open.terms.frame_count, 12);
        assert_eq!(open.terms.verifications, 3);
        assert_eq!(open.terms.fee_bps, 250);
        assert_eq!(open.terms.price_per_frame, Wei::from(1_000u128));

        let cancelled_view = OnchainJobView::from_events(&[opened(9_000), cancelled(4_000)]).unwrap();
        assert_eq!(cancelled_view.state, EscrowState::Cancelled);
        assert_eq!(cancelled_view.refundable_at, Some(4_000));
        assert_eq!(cancelled_view.terms, open.terms);

        for events in [vec![opened(9_000), refunded()], vec![opened(9_000), cancelled(4_000), refunded()]] {
            let closed = OnchainJobView::from_events(&events).unwrap();
            assert_eq!(closed.state, EscrowState::Closed);
            assert_eq!(closed.refundable_at, None);
        }
        // A cancel after the close (impossible on-chain) does not reopen it.
        let late = OnchainJobView::from_events(&[opened(9_000), refunded(), cancelled(4_000)]).unwrap();
        assert_eq!(late.state, EscrowState::Closed);
    }

    #[test]
    fn token_symbols_are_shown_plain_and_short() {
        assert_eq!(plain_symbol("LTD"), "LTD");
        assert_eq!(plain_symbol("<b>US D</b>\u{202e}\n"), "<b>USD</b>");
        assert_eq!(plain_symbol(&"X".repeat(100)).len(), 16);
    }

    #[test]
    fn the_terms_serialize_with_their_wire_names() {
        let view = OnchainJobView::from_events(&[opened(9_000)]).unwrap();
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["state"], "open");
        assert_eq!(json["refundable_at"], 9_000);
        assert_eq!(json["terms"]["deadline"], 9_000);
        assert_eq!(json["terms"]["price_per_frame"], "1000");
        let back: OnchainJobView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }
}
