//! The matchmaker: turns pending frames into tasks on nodes.
//!
//! Each round it (1) ends tasks whose lease ran out, (2) decides the fate of
//! frames that failed somewhere — retry elsewhere, fail the frame, or fail
//! the job when the failure is deterministic — and (3) assigns pending frames
//! to the least-loaded HEALTHY nodes that can render them, skipping nodes
//! that already failed the frame. It wakes on bus events and polls as a
//! fallback, so a lost wake-up only costs latency.
//!
//! Claims go through [`lumen_store::Store::claim_frame`], a conditional
//! update, so two matchmakers sharing a database never hand out one frame
//! twice.

pub mod policy;

use std::{collections::HashMap, sync::Arc};

use lumen_protocol::{
    Address, JobId, TaskRole, TaskState,
    api::NodeView,
    ws::{Dispatch, ServerMessage},
};
use lumen_runtime::{Pace, Retryable, ServiceHandle};
use lumen_store::{Bus, Event, JobRow, Store, StoreError, TaskEnd, now_ms};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use policy::{FrameOutcome, Load, pick_node};

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
}

impl Default for MatchmakerConfig {
    fn default() -> Self {
        Self { poll_ms: 1_000, task_timeout_secs: 300, lease_grace_secs: 60, policy: Default::default() }
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

    /// One round: expire leases, settle failed frames, dispatch.
    pub async fn round(&self) -> MatchmakerResult<()> {
        self.expire_leases().await?;
        self.resolve_failures().await?;
        self.dispatch().await
    }

    async fn expire_leases(&self) -> MatchmakerResult<()> {
        let now = now_ms();
        for task in self.store.tasks_in_state(TaskState::Running).await? {
            if task.lease_until >= now {
                continue;
            }
            let end = TaskEnd {
                state: TaskState::Lost,
                code: "timeout".into(),
                message: "no result before the task's lease ran out".into(),
                deterministic: false,
            };
            if self.store.end_task(task.task_id, &end).await? {
                warn!(target: "matchmaker::lease", task_id = %task.task_id, node = %task.node, "task lease expired");
                self.link.send(
                    &task.node,
                    ServerMessage::CancelTask { task_id: task.task_id, reason: "timeout".into() },
                );
                self.bus.publish(Event::TaskEnded { task_id: task.task_id, node: task.node });
            }
        }
        Ok(())
    }

    async fn resolve_failures(&self) -> MatchmakerResult<()> {
        for frame in self.store.pending_frames(10_000).await? {
            if frame.attempts == 0 {
                continue;
            }
            let tasks = self.store.frame_tasks(frame.job_id, frame.frame_index).await?;
            match policy::frame_outcome(&tasks, &self.config.policy) {
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

    async fn dispatch(&self) -> MatchmakerResult<()> {
        let pending = self.store.pending_frames(1_000).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let nodes: Vec<NodeView> = self
            .link
            .nodes()
            .into_iter()
            .filter(|n| n.state.receives_jobs() && n.capabilities.job_types.iter().any(|t| t == "render"))
            .collect();
        if nodes.is_empty() {
            debug!(target: "matchmaker::dispatch", pending = pending.len(), "no healthy render node");
            return Ok(());
        }
        let mut running: HashMap<Address, u32> = HashMap::new();
        for task in self.store.tasks_in_state(TaskState::Running).await? {
            *running.entry(task.node).or_default() += 1;
        }
        let mut loads: Vec<Load> = nodes
            .iter()
            .map(|n| Load {
                node: n.address,
                running: running.get(&n.address).copied().unwrap_or(0),
                slots: n.capabilities.slots.max(1),
            })
            .collect();

        let mut jobs: HashMap<JobId, JobRow> = HashMap::new();
        for frame in pending {
            let job = match jobs.get(&frame.job_id) {
                Some(job) => job.clone(),
                None => match self.store.job(frame.job_id).await? {
                    Some(job) => {
                        jobs.insert(frame.job_id, job.clone());
                        job
                    }
                    None => continue,
                },
            };
            let tasks = self.store.frame_tasks(frame.job_id, frame.frame_index).await?;
            let excluded = policy::excluded_nodes(&tasks, &loads, &self.config.policy);
            let Some(i) = pick_node(&loads, &excluded) else { continue };
            let node = loads[i].node;
            let lease_secs = self.config.task_timeout_secs + self.config.lease_grace_secs;
            let lease_until = now_ms() + i64::try_from(lease_secs * 1_000).unwrap_or(i64::MAX / 2);
            let role = if tasks.iter().any(|t| t.role == TaskRole::Primary && t.state.holds_render()) {
                TaskRole::Verification
            } else {
                TaskRole::Primary
            };
            let Some(task) =
                self.store.claim_render(frame.job_id, frame.frame_index, node, role, lease_until).await?
            else {
                continue;
            };
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
            } else {
                let end = TaskEnd {
                    state: TaskState::Lost,
                    code: "not_connected".into(),
                    message: "node disconnected before the dispatch".into(),
                    deterministic: false,
                };
                self.store.end_task(task.task_id, &end).await?;
            }
        }
        Ok(())
    }
}
