//! The verifier service: judges every uploaded result.
//!
//! Wakes when a result is uploaded (and polls as a fallback), decodes the
//! frame off the async runtime, and checks it (corrupt, wrong-size, black,
//! uniform, NaN frames are rejected, go back to the queue for another node
//! and are never paid). A frame the matchmaker sampled waits, `checked`,
//! until its independent renders are in; they are then compared by decoded
//! pixels ([`vote::tally`]): agreeing renders are accepted, a disagreement
//! calls for an arbitration render by a third owner, and a render the
//! majority outvotes gets its node banned, its unpaid renders in the job
//! revoked, and an evidence bundle stored for the slash. Verdicts are
//! published so the gateway can adjust the node's health.

use alloy_primitives::Bytes;
use lumen_protocol::{Address, ContentHash, FrameIndex, JobId, TaskId, TaskRole, TaskState, Verdict};
use lumen_runtime::{Pace, Retryable, ServiceHandle};
use lumen_store::{
    Bus, Event, FrameRow, NewBan, Store, StoreError, TaskRow,
    trust::{OUTVOTED, REVOKED},
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{
    Comparison, FrameExpectation, Rejection, Tolerance, check_frame, compare_frames,
    vote::{self, Tally},
};

/// Verifier service settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierConfig {
    /// Poll interval when nothing wakes the verifier (ms).
    pub poll_ms: u64,
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: u64,
    /// How far two honest renders of one frame may differ (see
    /// docs/verification.md for how the default was calibrated).
    pub tolerance: Tolerance,
    /// Most renders of one sampled frame before it is failed as
    /// undecidable (default 7: the first, the verification, and up to five
    /// arbitrations, so that up to five cheaters who do not collude cannot
    /// fail a frame that two honest owners render).
    pub max_renders: u32,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self { poll_ms: 1_000, max_frame_bytes: 256 << 20, tolerance: Tolerance::default(), max_renders: 7 }
    }
}

/// What stops a verifier round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Comparing renders failed outside the comparison itself (the worker
    /// thread died, the evidence could not be written).
    #[error("comparison: {0}")]
    Compare(String),
    /// A preview could not be made.
    #[error("preview: {0}")]
    Preview(String),
}

impl Retryable for VerifierError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(err) => err.is_retryable(),
            Self::Compare(_) | Self::Preview(_) => true,
        }
    }
}

/// A running verifier.
pub type VerifierHandle = ServiceHandle<VerifierError>;

/// Starts the verifier: judges every upload as it arrives, or every
/// `config.poll_ms` when nothing wakes it.
pub fn spawn(config: VerifierConfig, store: Store, bus: Bus) -> VerifierHandle {
    let shutdown = CancellationToken::new();
    let verifier = VerifierService::new(store, bus, config);
    let token = shutdown.clone();
    ServiceHandle::spawn("verifier", None, shutdown, async move { verifier.run(token).await })
}

/// The verifier service.
#[derive(Debug)]
pub struct VerifierService {
    store: Store,
    bus: Bus,
    config: VerifierConfig,
    /// Probes deterministic failures that nodes report; without Blender
    /// they stay unconfirmed (and fail a job only by a quorum of owners in
    /// good standing).
    blender: Option<lumen_blender::Blender>,
}

impl VerifierService {
    /// A verifier over a store and a bus, with the local Blender if there
    /// is one.
    pub fn new(store: Store, bus: Bus, config: VerifierConfig) -> Self {
        let blender = match lumen_blender::Blender::locate() {
            Ok(blender) => Some(blender),
            Err(err) => {
                warn!(target: "verifier", %err, "no Blender: reported deterministic failures cannot be probed");
                None
            }
        };
        Self { store, bus, config, blender }
    }

    /// Judges uploads until `shutdown` is cancelled; fails when rounds keep
    /// failing with an error that retrying cannot fix.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), VerifierError> {
        let pace = Pace::every_ms(self.config.poll_ms);
        lumen_runtime::rounds("verifier", pace, shutdown, self.bus.subscribe(), || self.round()).await
    }

    /// Judges every result waiting now, then decides every sampled frame
    /// whose renders are all in.
    pub async fn round(&self) -> Result<(), VerifierError> {
        let dropped = self.store.drop_results_of_refunded_jobs().await?;
        if dropped > 0 {
            info!(target: "verifier::check", dropped, "results of refunded jobs dropped unverified");
            self.bus.publish(Event::WorkAvailable);
        }
        for task in self.store.tasks_in_state(TaskState::Uploaded).await? {
            self.judge(&task).await?;
        }
        for (job_id, frame_index) in self.store.frames_awaiting_comparison().await? {
            self.decide(job_id, frame_index).await?;
        }
        self.probe_failures().await?;
        Ok(())
    }

    /// Confirms or refutes each deterministic failure nodes report, once
    /// per job and failure code, with a cheap probe render of the frame
    /// (tiny, one sample): a scene that really needs a missing feature
    /// fails the probe the same way, and a node lying to fail the job is
    /// caught.
    async fn probe_failures(&self) -> Result<(), VerifierError> {
        let Some(blender) = &self.blender else { return Ok(()) };
        let mut probed = std::collections::HashSet::new();
        for task in self.store.unconfirmed_failures().await? {
            let code = task.failure_code.clone().unwrap_or_default();
            if !probed.insert((task.job_id, code.clone())) {
                continue;
            }
            let (Some(job), Some(frame)) =
                (self.store.job(task.job_id).await?, self.store.frame(task.job_id, task.frame_index).await?)
            else {
                continue;
            };
            let work = tempfile::tempdir().map_err(|e| VerifierError::Compare(e.to_string()))?;
            let request = lumen_blender::RenderRequest {
                blend: self.store.blobs().path(&job.blend_hash),
                frame: frame.frame_number,
                work_dir: work.path().to_owned(),
                limits: lumen_blender::ResourceLimits {
                    timeout: std::time::Duration::from_secs(120),
                    ..Default::default()
                },
                threads: Some(1),
                expected_range: None,
                probe: true,
                samples_override: None,
            };
            let confirmed = match blender.render_frame(&request).await {
                Err(err) => err.is_deterministic() && err.kind() == code,
                Ok(_) => false,
            };
            let reports = self.store.record_confirmation(task.job_id, &code, confirmed).await?;
            if confirmed {
                warn!(target: "verifier::probe", job_id = %task.job_id, %code, reports, "the probe render fails the same way: deterministic failure confirmed");
            } else {
                warn!(target: "verifier::probe", job_id = %task.job_id, %code, node = %task.node, reports, "the probe render does not fail that way: the reported failure is refuted");
            }
            self.bus.publish(Event::WorkAvailable);
        }
        Ok(())
    }

    /// Checks one uploaded frame; the verdict that is recorded.
    async fn check(&self, task: &TaskRow, width: u32, height: u32) -> Verdict {
        let Some(hash) = task.output_hash else {
            return Verdict::Rejected {
                code: "missing_output".into(),
                message: "the task has no output".into(),
            };
        };
        let Ok(Some(bytes)) = self.store.blobs().get(&hash).await else {
            return Verdict::Rejected {
                code: "missing_output".into(),
                message: "the uploaded output is not in the blob store".into(),
            };
        };
        let expect = FrameExpectation { width, height, max_bytes: self.config.max_frame_bytes };
        let checked = tokio::task::spawn_blocking(move || check_frame(&bytes, &expect))
            .await
            .unwrap_or_else(|e| Err(Rejection::Undecodable { reason: e.to_string() }));
        match checked {
            Ok(stats) => {
                debug!(target: "verifier::check", task_id = %task.task_id, ?stats, "frame accepted");
                Verdict::Accepted
            }
            Err(rejection) => {
                Verdict::Rejected { code: rejection.code().to_owned(), message: rejection.to_string() }
            }
        }
    }

    async fn judge(&self, task: &TaskRow) -> Result<(), StoreError> {
        let Some(job) = self.store.job(task.job_id).await? else { return Ok(()) };
        let verdict = self.check(task, job.width, job.height).await;
        if verdict == Verdict::Accepted {
            let sampled =
                self.store.frame(task.job_id, task.frame_index).await?.is_some_and(|f| f.renders_wanted > 1);
            if sampled {
                // Sound on its own; its fate is decided with the other renders.
                if self.store.record_check(task.task_id).await? {
                    debug!(target: "verifier::check", task_id = %task.task_id, "sampled render checked: waiting for its comparison");
                    self.bus.publish(Event::WorkAvailable);
                }
                return Ok(());
            }
        }
        self.give(task, TaskState::Uploaded, &verdict).await
    }

    /// Records a verdict on a task in `from` and tells the other services.
    async fn give(&self, task: &TaskRow, from: TaskState, verdict: &Verdict) -> Result<(), StoreError> {
        if !self.store.judge_task(task.task_id, from, verdict).await? {
            return Ok(());
        }
        let accepted = *verdict == Verdict::Accepted;
        if let Verdict::Rejected { code, message } = verdict {
            warn!(target: "verifier::check", job_id = %task.job_id, frame_index = %task.frame_index, node = %task.node, %code, %message, "frame rejected");
        } else {
            info!(target: "verifier::check", job_id = %task.job_id, frame_index = %task.frame_index, node = %task.node, "frame verified");
        }
        if accepted {
            self.preview(task).await;
        }
        self.bus.publish(Event::Verdict { task_id: task.task_id, node: task.node, accepted });
        self.bus.publish(if accepted {
            Event::FrameVerified { job_id: task.job_id }
        } else {
            Event::WorkAvailable
        });
        Ok(())
    }

    /// Makes the preview of an accepted output, once: the artist sees it
    /// until the frame's payment is final. A failure costs the artist only
    /// the preview, so it is logged, not fatal.
    async fn preview(&self, task: &TaskRow) {
        let Some(output) = task.output_hash else { return };
        let made = async {
            if self.store.preview(output).await?.is_some() {
                return Ok::<_, VerifierError>(());
            }
            let Some(job) = self.store.job(task.job_id).await? else { return Ok(()) };
            let Some(bytes) = self.store.blobs().get(&output).await? else { return Ok(()) };
            let (width, height) = (job.width, job.height);
            let png =
                tokio::task::spawn_blocking(move || crate::preview::make_preview(&bytes, width, height))
                    .await
                    .map_err(|e| VerifierError::Preview(e.to_string()))?
                    .map_err(VerifierError::Preview)?;
            let hash = self.store.put_blob(&png).await?;
            self.store.record_preview(output, hash).await?;
            Ok(())
        };
        if let Err(err) = made.await {
            warn!(target: "verifier::preview", task_id = %task.task_id, %err, "cannot make the frame's preview");
        }
    }

    /// Decides a sampled frame once it has the renders it wants: compares
    /// them pairwise by decoded pixels and accepts the agreeing ones, asks
    /// for an arbitration render on a disagreement, and punishes the node
    /// a majority of independent owners outvoted.
    async fn decide(&self, job_id: JobId, frame_index: FrameIndex) -> Result<(), VerifierError> {
        let Some(frame) = self.store.frame(job_id, frame_index).await? else { return Ok(()) };
        let tasks = self.store.frame_tasks(job_id, frame_index).await?;
        let renders: Vec<&TaskRow> =
            tasks.iter().filter(|t| matches!(t.state, TaskState::Checked | TaskState::Accepted)).collect();
        if renders.len() < frame.renders_wanted as usize || renders.len() < 2 {
            return Ok(()); // another render is on its way (or waits for an independent owner)
        }
        let mut outputs = Vec::with_capacity(renders.len());
        for task in &renders {
            let bytes = match task.output_hash {
                Some(hash) => self.store.blobs().get(&hash).await?,
                None => None,
            };
            let Some(bytes) = bytes else {
                let missing = Verdict::Rejected {
                    code: "missing_output".into(),
                    message: "the checked output is not in the blob store".into(),
                };
                return Ok(self.give(task, task.state, &missing).await?);
            };
            outputs.push(bytes);
        }
        let tolerance = self.config.tolerance;
        let comparisons = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for a in 0..outputs.len() {
                for b in a + 1..outputs.len() {
                    all.push(((a, b), compare_frames(&outputs[a], &outputs[b], &tolerance)));
                }
            }
            all
        })
        .await
        .map_err(|e| VerifierError::Compare(e.to_string()))?;
        let agree = |a: usize, b: usize| {
            comparisons.iter().any(|((x, y), c)| {
                ((*x, *y) == (a, b) || (*y, *x) == (a, b)) && c.as_ref().is_ok_and(|c| c.matches)
            })
        };
        let tally = vote::tally(renders.len(), agree, self.config.max_renders as usize);
        debug!(target: "verifier::vote", %job_id, %frame_index, renders = renders.len(), ?tally, "sampled frame tallied");
        match tally {
            Tally::Agreed => {
                for task in renders.iter().filter(|t| t.state == TaskState::Checked) {
                    self.give(task, TaskState::Checked, &Verdict::Accepted).await?;
                }
            }
            Tally::NeedArbitration => {
                let wanted = u32::try_from(renders.len() + 1).unwrap_or(u32::MAX);
                if self.store.set_renders_wanted(job_id, frame_index, wanted).await? {
                    warn!(target: "verifier::vote", %job_id, %frame_index, "independent renders disagree: a third owner arbitrates");
                    self.bus.publish(Event::WorkAvailable);
                }
            }
            Tally::NoMajority => {
                let reason = "independent renders of this frame do not agree: the scene may not render the same way twice";
                if self.store.fail_frame(job_id, frame_index, reason).await?.is_some() {
                    warn!(target: "verifier::vote", %job_id, %frame_index, "no majority among renders: frame failed");
                    self.bus.publish(Event::WorkAvailable);
                }
            }
            Tally::Majority { accepted, outvoted } => {
                let evidence =
                    Evidence::new(&frame, &renders, &comparisons, &tolerance, &accepted, &outvoted);
                let bytes = serde_json::to_vec_pretty(&evidence)
                    .map_err(|e| VerifierError::Compare(e.to_string()))?;
                let evidence_hash = self.store.put_blob(&bytes).await?;
                // The frame wanted a third render only to settle the vote; the
                // winners are accepted before the loser is rejected, so the
                // frame never looks pending (and open to a fourth render) between.
                let agreeing = u32::try_from(accepted.len()).unwrap_or(u32::MAX);
                self.store.set_renders_wanted(job_id, frame_index, agreeing).await?;
                for &i in &accepted {
                    if renders[i].state == TaskState::Checked {
                        self.give(renders[i], TaskState::Checked, &Verdict::Accepted).await?;
                    }
                }
                for &i in &outvoted {
                    self.convict(renders[i], evidence_hash).await?;
                }
            }
        }
        Ok(())
    }

    /// A render outvoted by independent renders: rejected, its node banned
    /// (the indexer slashes it with the evidence hash), and every render
    /// of that node in the job that is not paid yet is taken back.
    async fn convict(&self, task: &TaskRow, evidence_hash: ContentHash) -> Result<(), StoreError> {
        // Ban first: a banned node's frames are never released, and its
        // render here stays undecided (holding its other frames of the job)
        // until every one of them is revoked.
        let ban = NewBan {
            node: task.node,
            owner: task.owner,
            reason: format!("outvoted on frame {} of job {}", task.frame_index, task.job_id),
            job_id: task.job_id,
            frame_index: task.frame_index,
            evidence_hash,
        };
        if self.store.ban_node(&ban).await? {
            error!(target: "verifier::vote", node = %task.node, owner = ?task.owner, job_id = %task.job_id, frame_index = %task.frame_index, %evidence_hash, "node proven to cheat: banned, slash pending");
        }
        let message = format!("the node was outvoted on frame {} of this job", task.frame_index);
        let cancelled = self
            .store
            .revoke_node_renders(task.node, task.job_id, Some(task.task_id), REVOKED, &message)
            .await?;
        for t in &cancelled {
            self.bus.publish(Event::TaskEnded { task_id: t.task_id, node: t.node });
        }
        let outvoted = Verdict::Rejected {
            code: OUTVOTED.into(),
            message: format!("outvoted by independent renders of the frame (evidence {evidence_hash})"),
        };
        self.give(task, task.state, &outvoted).await?;
        self.bus.publish(Event::NodeBanned { node: task.node });
        self.bus.publish(Event::WorkAvailable);
        Ok(())
    }
}

/// What proves a node cheated, stored as a blob whose hash goes on-chain
/// with the slash: the renders with their signatures, every comparison and
/// the decision. Anyone can fetch the outputs by hash and recompute it.
#[derive(Debug, Serialize)]
struct Evidence<'a> {
    version: u32,
    job_id: JobId,
    frame_index: FrameIndex,
    frame: i32,
    renders: Vec<EvidenceRender<'a>>,
    comparisons: Vec<EvidenceComparison>,
    tolerance: Tolerance,
    accepted: Vec<TaskId>,
    outvoted: Vec<TaskId>,
}

#[derive(Debug, Serialize)]
struct EvidenceRender<'a> {
    task_id: TaskId,
    node: Address,
    owner: Option<Address>,
    role: TaskRole,
    blender_version: Option<&'a str>,
    opengl: Option<&'a str>,
    output_hash: Option<ContentHash>,
    signature: Option<&'a Bytes>,
}

#[derive(Debug, Serialize)]
struct EvidenceComparison {
    a: TaskId,
    b: TaskId,
    comparison: Option<Comparison>,
    error: Option<String>,
}

type Compared = ((usize, usize), Result<Comparison, crate::CompareError>);

impl<'a> Evidence<'a> {
    fn new(
        frame: &FrameRow,
        renders: &[&'a TaskRow],
        comparisons: &[Compared],
        tolerance: &Tolerance,
        accepted: &[usize],
        outvoted: &[usize],
    ) -> Self {
        Self {
            version: 1,
            job_id: frame.job_id,
            frame_index: frame.frame_index,
            frame: frame.frame_number,
            renders: renders
                .iter()
                .map(|t| EvidenceRender {
                    task_id: t.task_id,
                    node: t.node,
                    owner: t.owner,
                    role: t.role,
                    blender_version: t.blender_version.as_deref(),
                    opengl: t.opengl.as_deref(),
                    output_hash: t.output_hash,
                    signature: t.signature.as_ref(),
                })
                .collect(),
            comparisons: comparisons
                .iter()
                .map(|((a, b), c)| EvidenceComparison {
                    a: renders[*a].task_id,
                    b: renders[*b].task_id,
                    comparison: c.as_ref().ok().copied(),
                    error: c.as_ref().err().map(ToString::to_string),
                })
                .collect(),
            tolerance: *tolerance,
            accepted: accepted.iter().map(|&i| renders[i].task_id).collect(),
            outvoted: outvoted.iter().map(|&i| renders[i].task_id).collect(),
        }
    }
}
