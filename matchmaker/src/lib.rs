//! The matchmaker: turns pending frames into tasks on nodes.
//!
//! Each round it (1) ends tasks whose lease ran out, (2) decides the fate of
//! frames that failed somewhere — retry elsewhere, fail the frame, or fail
//! the job when the failure is deterministic and believed (nodes of
//! independent owners in good standing, or the verifier's probe) — and (3)
//! assigns pending renders: a frame's first render to a least-loaded
//! HEALTHY node within its earned slots (ties drawn at random, weighted by
//! reputation), with a hidden draw deciding whether the frame also gets a
//! verification render, which goes to a node of another owner running the
//! same Blender (`docs/trust.md`). It wakes on bus events and polls as a
//! fallback, so a lost wake-up only costs latency.
//!
//! Claims go through [`lumen_store::Store::claim_render`], a conditional
//! update, so two matchmakers sharing a database never hand out one render
//! twice.

pub mod policy;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use lumen_protocol::{
    Address, FrameState, JobId, TaskRole, TaskState,
    api::NodeView,
    ws::{Dispatch, ServerMessage, pairs_on_opengl},
};
use lumen_runtime::{Pace, Retryable, ServiceHandle};
use lumen_store::{
    Bus, Event, FrameRow, JobRow, NodeRecord, Renderer, Store, StoreError, TaskEnd, TaskRow, now_ms,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use policy::{FrameOutcome, Load, TrustPolicy, pick_node};

/// Result alias of this crate.
pub type MatchmakerResult<T> = Result<T, MatchmakerError>;

/// What can go wrong in a matchmaking round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatchmakerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Retryable for MatchmakerError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(err) => err.is_retryable(),
        }
    }
}

/// Matchmaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchmakerConfig {
    /// Poll interval when nothing wakes the matchmaker (ms).
    pub poll_ms: u64,
    /// Seconds a node may spend on one frame (sent with the task). Default
    /// 300, the operator guide's job timeout.
    pub task_timeout_secs: u64,
    /// Extra seconds past the timeout before the gateway gives up on a task
    /// (upload and reporting time).
    pub lease_grace_secs: u64,
    /// Failure rules.
    pub policy: policy::FailurePolicy,
    /// Sampling, earned slots and good standing.
    pub trust: policy::TrustPolicy,
    /// Seconds a running task may go without progress from its node before
    /// it is lost and goes to another node (default 30; nodes report every
    /// 5 s while they work).
    pub stall_secs: u64,
    /// Seconds a job's dispatch waits for the verifier to probe a
    /// deterministic failure a node reported, before going on without it
    /// (default 30).
    pub probe_wait_secs: u64,
    /// Seconds before a job's deadline from which it is stopped, so that its
    /// verified frames are paid and it is closed before the artist can
    /// refund (default 120). No frame is dispatched that could not finish,
    /// task timeout and grace included, before that point.
    pub settle_margin_secs: u64,
}

impl Default for MatchmakerConfig {
    fn default() -> Self {
        Self {
            poll_ms: 1_000,
            task_timeout_secs: 300,
            lease_grace_secs: 60,
            policy: Default::default(),
            trust: Default::default(),
            stall_secs: 30,
            probe_wait_secs: 30,
            settle_margin_secs: 120,
        }
    }
}

/// How the matchmaker reaches nodes; the gateway implements it over its
/// WebSocket connections.
pub trait NodeLink: Send + Sync + 'static {
    /// The nodes connected now.
    fn nodes(&self) -> Vec<NodeView>;
    /// Sends a message to a node; false when it is not connected.
    fn send(&self, node: &Address, message: ServerMessage) -> bool;
}

/// What one dispatch round knows about the nodes.
struct Round {
    /// Eligible nodes (healthy, rendering, not banned), by address.
    nodes: HashMap<Address, NodeView>,
    /// Their records.
    records: HashMap<Address, NodeRecord>,
    /// Their unsampled first renders in flight.
    unverified: HashMap<Address, u32>,
    /// Their loads, updated as frames go out.
    loads: Vec<Load>,
}

/// A running matchmaker.
pub type MatchmakerHandle = ServiceHandle<MatchmakerError>;

/// Starts the matchmaker: rounds on every bus event, or every
/// `config.poll_ms` when nothing happens.
pub fn spawn(config: MatchmakerConfig, store: Store, bus: Bus, link: Arc<dyn NodeLink>) -> MatchmakerHandle {
    let shutdown = CancellationToken::new();
    let matchmaker = Matchmaker::new(store, bus, link, config);
    let token = shutdown.clone();
    ServiceHandle::spawn("matchmaker", None, shutdown, async move { matchmaker.run(token).await })
}

/// The matchmaker service.
pub struct Matchmaker {
    store: Store,
    bus: Bus,
    link: Arc<dyn NodeLink>,
    config: MatchmakerConfig,
}

impl std::fmt::Debug for Matchmaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matchmaker").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Matchmaker {
    /// A matchmaker over a store, a bus and a node link.
    pub fn new(store: Store, bus: Bus, link: Arc<dyn NodeLink>, config: MatchmakerConfig) -> Self {
        Self { store, bus, link, config }
    }

    /// Runs rounds until `shutdown` is cancelled; fails when rounds keep
    /// failing with an error that retrying cannot fix.
    pub async fn run(&self, shutdown: CancellationToken) -> MatchmakerResult<()> {
        let pace = Pace::every_ms(self.config.poll_ms);
        lumen_runtime::rounds("matchmaker", pace, shutdown, self.bus.subscribe(), || self.round()).await
    }

    /// One round: stop jobs that must stop, expire leases, settle failed
    /// frames, dispatch.
    pub async fn round(&self) -> MatchmakerResult<()> {
        self.stop_jobs().await?;
        self.expire_leases().await?;
        // Read once per round: both steps judge nodes by the same record.
        let records = self.records().await?;
        let banned = self.store.banned_nodes().await?;
        self.resolve_failures(&records, &banned).await?;
        self.dispatch(records, &banned).await
    }

    /// Stops jobs the artist cancelled or refunded, or whose deadline is
    /// within the settle margin: nothing more is dispatched, running tasks
    /// are cancelled and their nodes told at once. Also cancels any task
    /// still running for a job that is no longer rendering.
    async fn stop_jobs(&self) -> MatchmakerResult<()> {
        for (job_id, reason) in self.store.jobs_to_stop(self.config.settle_margin_secs).await? {
            if let Some(cancelled) = self.store.stop_job(job_id, reason).await? {
                warn!(target: "matchmaker::stop", %job_id, reason = reason.message(), cancelled = cancelled.len(), "job stopped");
                self.cancel(&cancelled, reason.message());
            }
        }
        for task in self.store.running_tasks_of_stopped_jobs().await? {
            let end = TaskEnd {
                state: TaskState::Cancelled,
                code: "job_stopped".into(),
                message: "the job is no longer rendering".into(),
                deterministic: false,
            };
            if self.store.end_task(task.task_id, &end).await? {
                self.cancel(std::slice::from_ref(&task), "job stopped");
            }
        }
        Ok(())
    }

    /// Whether a frame dispatched now to `job` could still finish, task
    /// timeout and grace included, before the job must stop for its
    /// deadline.
    fn time_left_for_a_frame(&self, job: &JobRow) -> bool {
        let c = &self.config;
        let needed = c.task_timeout_secs + c.lease_grace_secs + c.settle_margin_secs;
        let now = u64::try_from(now_ms() / 1_000).unwrap_or(0);
        job.deadline == 0 || job.deadline >= now.saturating_add(needed)
    }

    async fn expire_leases(&self) -> MatchmakerResult<()> {
        let now = now_ms();
        let stall_ms = i64::try_from(self.config.stall_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
        for task in self.store.tasks_in_state(TaskState::Running).await? {
            let quiet_since = task.progress_at.unwrap_or(task.created_at);
            let end = if task.lease_until < now {
                TaskEnd {
                    state: TaskState::Lost,
                    code: "timeout".into(),
                    message: "no result before the task's lease ran out".into(),
                    deterministic: false,
                }
            } else if now.saturating_sub(quiet_since) > stall_ms {
                TaskEnd {
                    state: TaskState::Lost,
                    code: "stalled".into(),
                    message: format!("no progress for {} s", self.config.stall_secs),
                    deterministic: false,
                }
            } else {
                continue;
            };
            if self.store.end_task(task.task_id, &end).await? {
                warn!(target: "matchmaker::lease", task_id = %task.task_id, node = %task.node, code = %end.code, "task lost: the frame goes to another node");
                self.link.send(
                    &task.node,
                    ServerMessage::CancelTask { task_id: task.task_id, reason: end.code.clone() },
                );
                self.bus.publish(Event::TaskEnded { task_id: task.task_id, node: task.node });
            }
        }
        Ok(())
    }

    async fn resolve_failures(
        &self,
        records: &HashMap<Address, NodeRecord>,
        banned: &HashSet<Address>,
    ) -> MatchmakerResult<()> {
        let trusted = |node: &Address| {
            records.get(node).is_some_and(|r| policy::in_good_standing(r, &self.config.trust))
        };
        for frame in self.store.pending_frames(10_000).await? {
            if frame.attempts == 0 {
                continue;
            }
            // What banned nodes did to a frame does not count against it.
            let tasks: Vec<TaskRow> = self
                .store
                .frame_tasks(frame.job_id, frame.frame_index)
                .await?
                .into_iter()
                .filter(|t| !banned.contains(&t.node))
                .collect();
            match policy::frame_outcome(&tasks, &self.config.policy, trusted) {
                FrameOutcome::Retry => {}
                FrameOutcome::FailFrame { reason } => {
                    if let Some(cancelled) =
                        self.store.fail_frame(frame.job_id, frame.frame_index, &reason).await?
                    {
                        warn!(target: "matchmaker::failure", job_id = %frame.job_id, frame = frame.frame_number, %reason, "frame failed for good");
                        self.cancel(&cancelled, "frame failed");
                    }
                }
                FrameOutcome::FailJob { reason } => {
                    let reason = format!("frame {} failed: {reason}", frame.frame_number);
                    warn!(target: "matchmaker::failure", job_id = %frame.job_id, %reason, "deterministic failure: failing the job's unfinished frames");
                    self.store.set_job_failure(frame.job_id, &reason).await?;
                    let cancelled = self.store.fail_unfinished_frames(frame.job_id, &reason).await?;
                    self.cancel(&cancelled, "job failed");
                }
            }
        }
        Ok(())
    }

    /// Tells the nodes of cancelled tasks to stop them.
    fn cancel(&self, tasks: &[lumen_store::TaskRow], reason: &str) {
        for task in tasks {
            self.link
                .send(&task.node, ServerMessage::CancelTask { task_id: task.task_id, reason: reason.into() });
        }
    }

    async fn records(&self) -> MatchmakerResult<HashMap<Address, NodeRecord>> {
        Ok(self.store.node_records().await?.into_iter().map(|r| (r.node, r)).collect())
    }

    async fn dispatch(
        &self,
        records: HashMap<Address, NodeRecord>,
        banned: &HashSet<Address>,
    ) -> MatchmakerResult<()> {
        let pending = self.store.pending_frames(1_000).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let nodes: HashMap<Address, NodeView> = self
            .link
            .nodes()
            .into_iter()
            .filter(|n| n.state.receives_jobs() && n.capabilities.job_types.iter().any(|t| t == "render"))
            .filter(|n| !banned.contains(&n.address))
            .map(|n| (n.address, n))
            .collect();
        if nodes.is_empty() {
            debug!(target: "matchmaker::dispatch", pending = pending.len(), "no healthy render node");
            return Ok(());
        }
        let unverified = self.store.unverified_in_flight().await?;
        let mut running: HashMap<Address, u32> = HashMap::new();
        for task in self.store.tasks_in_state(TaskState::Running).await? {
            *running.entry(task.node).or_default() += 1;
        }
        let trust = &self.config.trust;
        let loads: Vec<Load> = nodes
            .values()
            .map(|n| {
                let record = records.get(&n.address).cloned().unwrap_or_default();
                Load {
                    node: n.address,
                    running: running.get(&n.address).copied().unwrap_or(0),
                    slots: policy::earned_slots(&record, n.capabilities.slots, trust),
                    reputation: policy::reputation(&record),
                }
            })
            .collect();

        // A job whose nodes report a deterministic failure waits (seconds)
        // for the verifier's probe, instead of burning renders on it.
        let probe_wait_ms = i64::try_from(self.config.probe_wait_secs * 1_000).unwrap_or(i64::MAX);
        let probing: HashSet<JobId> = self
            .store
            .unconfirmed_failures()
            .await?
            .into_iter()
            .filter(|t| now_ms() - t.finished_at.unwrap_or(t.created_at) < probe_wait_ms)
            .map(|t| t.job_id)
            .collect();
        let mut round = Round { nodes, records, unverified, loads };
        // Per job: the row, its nodes failing too often, and how many more
        // frames its verification budget can have verified.
        let mut jobs: HashMap<JobId, (JobRow, HashSet<Address>, u32)> = HashMap::new();
        for frame in pending {
            if probing.contains(&frame.job_id) {
                continue;
            }
            let (job, failing, budget) = match jobs.entry(frame.job_id) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let Some(job) = self.store.job(frame.job_id).await? else { continue };
                    let job_tasks = self.store.job_tasks(frame.job_id).await?;
                    let failing = policy::failing_in_job(&job_tasks, trust.max_failures_per_job);
                    let budget =
                        job.verifications.saturating_sub(self.store.sampled_frames(job.job_id).await?);
                    slot.insert((job, failing, budget))
                }
            };
            let (job, failing) = (&*job, &*failing);
            if !self.time_left_for_a_frame(job) {
                continue;
            }
            // A sampled frame may take its verification render in the same round.
            for _ in 0..3 {
                let more = self.dispatch_render(job, &frame, failing, budget, &mut round).await?;
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Dispatches the next render a pending frame needs, if a node may take
    /// it; true when one was dispatched and the frame may need another.
    async fn dispatch_render(
        &self,
        job: &JobRow,
        frame: &FrameRow,
        failing_in_job: &HashSet<Address>,
        budget: &mut u32,
        round: &mut Round,
    ) -> MatchmakerResult<bool> {
        let Round { nodes, records, unverified, loads } = round;
        let loads = loads.as_mut_slice();
        let Some(frame) = self.store.frame(frame.job_id, frame.frame_index).await? else { return Ok(false) };
        if frame.state != FrameState::Pending {
            return Ok(false);
        }
        let tasks = self.store.frame_tasks(frame.job_id, frame.frame_index).await?;
        let holding: Vec<&TaskRow> = tasks.iter().filter(|t| t.state.holds_render()).collect();
        let role = match (holding.len(), frame.renders_wanted) {
            (0, _) => TaskRole::Primary,
            (_, 2) => TaskRole::Verification,
            _ => TaskRole::Arbitration,
        };
        let mut excluded: HashSet<Address> = failing_in_job.iter().copied().collect();
        excluded.extend(holding.iter().map(|t| t.node));
        if role == TaskRole::Primary {
            // Without stake, only a trial's worth of work; and once the job's
            // verification budget is spent, a frame not sampled yet goes only
            // to nodes that need not be sampled on every frame.
            for load in loads.iter() {
                let record = records.get(&load.node).cloned().unwrap_or_default();
                let Some(view) = nodes.get(&load.node) else { continue };
                let unverifiable = *budget == 0 && frame.renders_wanted < 2 && {
                    let in_flight = unverified.get(&load.node).copied().unwrap_or(0);
                    let rate = policy::sampling_rate_staked(
                        &record,
                        view.stake,
                        in_flight,
                        job.price_per_frame,
                        &self.config.trust,
                    );
                    rate >= 1.0
                };
                if unverifiable || !policy::may_render(&record, view.stake, &self.config.trust) {
                    excluded.insert(load.node);
                }
            }
        } else {
            // Independent: another owner than every render held, the same
            // Blender build, and for engines that draw with OpenGL the same
            // OpenGL implementation (two rasterise differently).
            let owners: HashSet<Address> = holding.iter().map(|t| t.owner.unwrap_or(t.node)).collect();
            let version = holding.iter().find_map(|t| t.blender_version.clone());
            let opengl = pairs_on_opengl(&job.engine).then(|| holding.first().map(|t| t.opengl.clone()));
            for load in loads.iter() {
                let Some(view) = nodes.get(&load.node) else { continue };
                let same_build = version.as_deref().is_none_or(|v| v == view.capabilities.blender_version);
                let same_opengl = opengl
                    .as_ref()
                    .is_none_or(|gl| gl.as_ref().is_none_or(|gl| *gl == view.capabilities.opengl));
                if owners.contains(&view.owner) || !same_build || !same_opengl {
                    excluded.insert(load.node);
                }
            }
        }
        // Nodes that failed this frame, judged among the nodes otherwise
        // eligible: when every one of those failed it once, they may retry.
        let eligible: Vec<policy::Load> =
            loads.iter().filter(|l| !excluded.contains(&l.node)).cloned().collect();
        excluded.extend(policy::excluded_nodes(&tasks, &eligible, &self.config.policy));
        let Some(i) = pick_node(loads, &excluded, &mut rand::rng()) else {
            if role != TaskRole::Primary {
                debug!(target: "matchmaker::sampling", job_id = %frame.job_id, frame = frame.frame_number, ?role, "no node of an independent owner is free: the frame waits");
            }
            return Ok(false);
        };
        let node = loads[i].node;
        let view = &nodes[&node];
        let renderer = Renderer {
            node,
            owner: view.owner,
            blender_version: view.capabilities.blender_version.clone(),
            opengl: view.capabilities.opengl.clone(),
        };
        let lease_secs = self.config.task_timeout_secs + self.config.lease_grace_secs;
        let lease_until = now_ms() + i64::try_from(lease_secs * 1_000).unwrap_or(i64::MAX / 2);
        let Some(task) =
            self.store.claim_render(frame.job_id, frame.frame_index, &renderer, role, lease_until).await?
        else {
            return Ok(false);
        };
        let mut more = false;
        if role == TaskRole::Primary {
            // Decided here, from randomness no node sees, and stored with the
            // frame: the node gets the same message either way.
            let record = records.get(&node).cloned().unwrap_or_default();
            let in_flight = unverified.get(&node).copied().unwrap_or(0);
            let rate = policy::sampling_rate_staked(
                &record,
                view.stake,
                in_flight,
                job.price_per_frame,
                &self.config.trust,
            );
            // The artist's verification budget pays the sample; a spent
            // budget leaves the frame unsampled (only nodes trusted enough
            // got it, above).
            if frame.renders_wanted >= 2 {
                // Sampled already (its first render was lost or failed): the
                // budget holds its verification render.
                more = true;
            } else if *budget > 0 && rand::rng().random::<f64>() < rate {
                more = self.store.set_renders_wanted(frame.job_id, frame.frame_index, 2).await?;
                *budget -= u32::from(more);
            } else {
                *unverified.entry(node).or_default() += 1;
            }
            if more {
                debug!(target: "matchmaker::sampling", job_id = %frame.job_id, frame = frame.frame_number, %node, rate, "frame sampled for a verification render");
            }
        }
        let blend_size = self.store.blobs().size(&job.blend_hash).await.unwrap_or(0);
        let dispatch = Dispatch {
            task_id: task.task_id,
            job_id: job.job_id,
            frame_index: frame.frame_index,
            frame: frame.frame_number,
            blend_hash: job.blend_hash,
            blend_size,
            width: job.width,
            height: job.height,
            engine: job.engine.clone(),
            timeout_secs: self.config.task_timeout_secs,
        };
        if self.link.send(&node, ServerMessage::JobDispatch(dispatch)) {
            loads[i].running += 1;
            info!(target: "matchmaker::dispatch", job_id = %job.job_id, frame = frame.frame_number, task_id = %task.task_id, %node, ?role, "frame dispatched");
            Ok(more)
        } else {
            let end = TaskEnd {
                state: TaskState::Lost,
                code: "not_connected".into(),
                message: "node disconnected before the dispatch".into(),
                deterministic: false,
            };
            self.store.end_task(task.task_id, &end).await?;
            Ok(false)
        }
    }
}
