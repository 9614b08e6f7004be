// The gateway's JSON, as `crates/protocol` serializes it. Field names and
// state names are the wire names; a state is compared only through these
// unions, so a rename on the Rust side fails the type check here.

/** `0x`-prefixed hex (addresses, hashes, signatures). */
export type Hex = `0x${string}`;

/** Wei amounts travel as decimal strings (they exceed 2^53). */
export type Wei = string;

/** `GET /api/v1/info`: the deployment (`lumen_protocol::Deployment`). */
export interface Info {
  chain_id: number;
  escrow: Hex;
  registry: Hex;
  deploy_block: number;
  settler: Hex;
  treasury: Hex;
  rpc_url?: string;
  explorer_url?: string;
}

/** `GET /api/v1/auth/nonce` (`SiweChallenge`). */
export interface SiweChallenge {
  domain: string;
  uri: string;
  chain_id: number;
  nonce: string;
  statement: string;
  issued_at: string;
  expiration_time: string;
}

/** Body of `POST /api/v1/auth/siwe` (`SignIn`). */
export interface SignIn {
  message: string;
  signature: Hex;
}

/** `SessionView`: the answer to a sign-in and to `GET /api/v1/auth/session`. */
export interface SessionView {
  address: Hex;
  expires_at_ms: number;
  token?: string;
}

/** `GET /api/v1/stats` (`NetworkStats`). */
export interface NetworkStats {
  jobs: Record<string, number>;
  artists: number;
  frames_verified: number;
  frames_paid: number;
  nodes_connected: number;
}

export type NodeState = "REGISTERED" | "HEALTHY" | "UNHEALTHY" | "OFFLINE";

export interface Capabilities {
  job_types: string[];
  blender_version: string;
  gpu: boolean;
  memory_mb: number;
  slots: number;
  opengl?: string;
}

export interface TrustView {
  accepted: number;
  agreed_samples: number;
  rejected: number;
  outvoted: number;
  failed: number;
  lost: number;
  reputation: number;
  banned: boolean;
}

/** An entry of `GET /api/v1/nodes` (`NodeView`). */
export interface NodeView {
  address: Hex;
  owner: Hex;
  state: NodeState;
  connected: boolean;
  capabilities: Capabilities;
  consecutive_failures: number;
  last_heartbeat_secs: number | null;
  running: number;
  stake: Wei;
  trust?: TrustView;
}

export type JobState = "awaiting_chain" | "rendering" | "settling" | "completed" | "failed" | "rejected";
export type FrameState = "pending" | "rendering" | "verifying" | "verified" | "failed";

export interface PayoutView {
  node: Hex;
  owner: Hex;
  amount: Wei;
  fee: Wei;
  tx: Hex;
}

export interface FrameView {
  frame: number;
  index: number;
  state: FrameState;
  node: Hex | null;
  output_hash: Hex | null;
  verdict: string | null;
  failure: string | null;
  attempts: number;
  payout_tx: Hex | null;
  payout_owner: Hex | null;
  payout_amount: Wei | null;
  payout_fee: Wei | null;
  verification_payout?: PayoutView;
  renders?: RenderView[];
  preview: boolean;
}

export interface TxView {
  event: string;
  tx_hash: Hex;
  block_number: number;
  amount: Wei | null;
}

/** `GET /api/v1/jobs/{id}` and the entries of `GET /api/v1/jobs` (`JobView`). */
export interface JobView {
  job_id: number;
  state: JobState;
  failure: string | null;
  artist: Hex;
  frame_count: number;
  price_per_frame: Wei;
  token: Hex;
  spec_hash: Hex;
  blend_hash: Hex;
  width: number;
  height: number;
  frames: FrameView[];
  transactions: TxView[];
  settlement_parked?: string;
  unpayable?: UnpayableNode[];
  onchain?: OnchainJobView;
}

/** A node the escrow never pays for a job's frames, and why. */
export interface UnpayableNode {
  node: Hex;
  reason: string;
}

export type TaskRole = "primary" | "verification" | "arbitration";
export type TaskState = "running" | "uploaded" | "checked" | "accepted" | "rejected" | "failed" | "lost" | "cancelled";

/** One render of a frame (`RenderView`): the paid one, a verification, an arbitration. */
export interface RenderView {
  task_id: number;
  role: TaskRole;
  state: TaskState;
  node: Hex;
  output_hash: Hex | null;
  failure: string | null;
  dispatched_at_ms: number;
  finished_at_ms: number | null;
}

/** A job's terms as opened on-chain (`JobTermsView`, `IRenderEscrow.JobTerms`). */
export interface JobTermsView {
  spec_hash: Hex;
  artist: Hex;
  token: Hex;
  price_per_frame: Wei;
  frame_count: number;
  verifications: number;
  deadline: number;
  opened_at: number;
  fee_bps: number;
}

export type EscrowState = "open" | "cancelled" | "closed";

/** `OnchainJobView`: the job's escrow as the chain mirror has it. */
export interface OnchainJobView {
  terms: JobTermsView;
  state: EscrowState;
  /** Unix time from which `refund` succeeds; `null` once closed. */
  refundable_at: number | null;
}

/** Every error answer of the API (`ApiErrorBody`). */
/** An event of `GET /api/v1/changes`: opaque stamps of what moved (compared for equality only). */
export interface Changes {
  jobs: string;
  nodes: string;
  heartbeats: string;
  chain: string;
  minute: string;
}

/** A part of the network a page's data comes from. */
export type ChangePart = keyof Changes;

export interface ApiErrorBody {
  code: string;
  error: string;
  details?: unknown;
}

/** An amount of one token (`address(0)`: the native coin), `TokenAmount`. */
export interface TokenAmount {
  token: Hex;
  amount: Wei;
}

/** One row of `GET /api/v1/leaderboard`. */
export interface LeaderboardEntry {
  rank: number;
  badge: "gold" | "silver" | "bronze" | null;
  node: Hex;
  owner: Hex;
  jobs_completed: number;
  credits: number;
  earned: TokenAmount[];
  uptime_percent: number;
}

/** `GET /api/v1/leaderboard`. */
export interface Leaderboard {
  computed_at: number;
  uptime_window_days: number;
  entries: LeaderboardEntry[];
}

/** A mirrored chain event (`MirroredEvent`): its `event` is tagged by name. */
export interface MirroredEvent {
  block_number: number;
  log_index: number;
  entry: number;
  block_time: number;
  tx_hash: Hex;
  event: { event: string } & Record<string, unknown>;
}

/** `GET /api/v1/explorer`: where transaction and address links point. */
export interface ExplorerLinks {
  tx_url: string;
  address_url: string;
}

/** `GET /api/v1/explorer/tx/{hash}`. */
export interface ExplorerTx {
  hash: Hex;
  block_number: number | null;
  block_time: number | null;
  success: boolean;
  from: Hex;
  to: Hex | null;
  gas_used: number;
  effective_gas_price: number;
  events: MirroredEvent[];
  /** The payment token of every job the events name. */
  job_tokens?: JobToken[];
}

/** The token a job pays in (`JobToken`). */
export interface JobToken {
  job_id: number;
  token: Hex;
}

/** An entry of `GET /api/v1/tokens` (`TokenInfo`): `null` where the token contract does not say. */
export interface TokenInfo {
  token: Hex;
  symbol: string | null;
  decimals: number | null;
}

/** What one node was paid (`NodeEarnings`). */
export interface NodeEarnings {
  node: Hex;
  owner: Hex;
  jobs_completed: number;
  credits: number;
  earned: TokenAmount[];
}

/** What an owner was paid and withdrew (`OwnerEarnings`). */
export interface OwnerEarnings {
  owner: Hex;
  nodes: NodeEarnings[];
  jobs_completed: number;
  credits: number;
  earned: TokenAmount[];
  withdrawn: TokenAmount[];
}

/** One node of `GET /api/v1/operators/{owner}` (`OperatorNode`). */
export interface OperatorNode {
  node: Hex;
  /** This gateway's view; `OFFLINE` for a node that never connected to it. */
  state: NodeState;
  connected: boolean;
  last_heartbeat_secs: number | null;
  trust: TrustView;
  /** Active in the registry and bound to this owner, on-chain. */
  registered: boolean;
  /** On-chain, wei. */
  stake: Wei;
  unbonding: Wei;
  jobs_completed: number;
  credits: number;
  earned: TokenAmount[];
}

/** One token of `GET /api/v1/operators/{owner}` (`OperatorToken`). */
export interface OperatorToken {
  token: Hex;
  symbol: string | null;
  decimals: number | null;
  /** `escrow.credits(owner, token)` at the view's block: what `withdraw(token)` pays now. */
  withdrawable: Wei;
  earned: Wei;
  withdrawn: Wei;
}

/** `GET /api/v1/operators/{owner}` (`OperatorView`). */
export interface OperatorView {
  owner: Hex;
  block_number: number;
  nodes: OperatorNode[];
  more_nodes: boolean;
  jobs_completed: number;
  credits: number;
  tokens: OperatorToken[];
}

/** `GET /api/v1/explorer/address/{address}`. */
export interface ExplorerAddress {
  address: Hex;
  events: MirroredEvent[];
  earnings: OwnerEarnings;
  job_tokens?: JobToken[];
}

/** A slash of a node that cheated on a job (`ExplorerSlash`). */
export interface ExplorerSlash {
  node: Hex;
  frame_index: number;
  reason: string;
  /** The evidence bundle: `GET /api/v1/evidence/{hash}`. */
  evidence: Hex;
  tx: Hex | null;
}

/** `GET /api/v1/explorer/jobs/{id}`. */
export interface ExplorerJob {
  job_id: number;
  events: MirroredEvent[];
  slashes: ExplorerSlash[];
}

/** What the gateway read from an uploaded `.blend` (`SceneSummary`). */
export interface SceneSummary {
  frame_start: number;
  frame_end: number;
  frame_step: number;
  width: number;
  height: number;
  /** `CYCLES`, `BLENDER_EEVEE`, `BLENDER_EEVEE_NEXT`, `BLENDER_WORKBENCH`, … */
  engine: string;
  fps: number;
  saved_with: string | null;
  /** Render samples per pixel; absent or `null` for engines without (Workbench). */
  samples?: number | null;
}

/** `POST /api/v1/blends` and `GET /api/v1/blends/{hash}` (`UploadedBlend`). */
export interface UploadedBlend {
  /** blake3 of the file. */
  hash: Hex;
  size: number;
  scene: SceneSummary;
}

/** A payment token a gateway accepts (`TokenPrice`; `address(0)`: the native coin). */
export interface TokenPrice {
  token: Hex;
  min_price_per_frame: Wei;
}

/** `GET /api/v1/market`: the jobs this gateway accepts (`Market`). */
export interface Market {
  max_frames_per_job: number;
  min_deadline_secs: number;
  tokens: TokenPrice[];
}

/** One field of an EIP-712 struct type. */
export interface TypedField {
  name: string;
  type: string;
}

/** `GET /api/v1/typed-data/job-spec`: what `eth_signTypedData_v4` needs, but the message. */
export interface JobSpecTypedData {
  domain: { name: string; version: string; chainId: number; verifyingContract: Hex };
  types: Record<string, TypedField[]>;
  primaryType: "JobSpec";
}

/** The artist's job spec (`eip712::JobSpec`): its EIP-712 hash is what the escrow locks. */
export interface JobSpec {
  blendHash: Hex;
  frameStart: number;
  frameEnd: number;
  frameStep: number;
  width: number;
  height: number;
  engine: string;
  token: Hex;
  /** A `uint128`: beyond what a JSON number holds exactly in JavaScript. */
  pricePerFrame: bigint;
  salt: bigint;
}
