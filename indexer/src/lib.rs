//! The indexer: mirrors chain events into the database and settles jobs.
//!
//! Each round it
//! 1. reads new escrow and registry events ([`mirror::Mirror`]);
//! 2. confirms registered jobs against their `JobOpened` event (spec hash,
//!    artist, frame count, price, token and locked amount must all match);
//!    only confirmed jobs are dispatched;
//! 3. settles jobs with the settler key, batched for gas (see
//!    [`IndexerConfig`]): a job whose every frame is final is paid, closed
//!    and refunded in one call; a long job is paid along the way only when
//!    enough frames or time accumulate; several jobs due together share a
//!    `settleMany` transaction.
//!
//! Every transaction goes through one [`lumen_chain::Sender`] (the
//! settler's only nonce; simulated first, replaced with higher fees when
//! not mined in time). A settle or slash whose simulation reverts for a
//! reason it can never pass as it is
//! ([`lumen_chain::ChainError::permanent_revert`]) is *parked* with the
//! decoded reason (`settlement_parks`, `node_bans.slash_failure`) and not
//! sent again: a parked job is unparked when its mirrored chain events
//! change (a cancel, a refund, a reorg), and every park is lifted when the
//! indexer starts, so an operator who fixed the cause (the settler key,
//! say) restarts it; what still cannot pass is parked again after one
//! simulation, which costs no gas. A node the escrow will never pay for
//! a job (bound after it opened) is left out of its releases, recorded in
//! `unpayable_nodes`, so the job's other frames are still paid. Any other
//! failure is retried with exponential backoff.
//!
//! After a reorg, jobs already confirmed are confirmed again: a job whose
//! `JobOpened` vanished goes back to `awaiting_chain` (nothing is
//! dispatched, running tasks are cancelled); one whose id now carries
//! another spec is rejected, and the registration of the job that owns the
//! id on-chain replaces it.
//!
//! Payouts, credits and job outcomes are read back from the mirror, never
//! from what the indexer believes it sent, so the database can be rebuilt
//! from the chain alone.

pub mod mirror;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
};
use lumen_chain::{
    ChainError, Sender, SenderConfig, Settler,
    contracts::{
        JobStatus, NodeRegistry, RenderEscrow,
        escrow::{
            IRenderEscrow::{FrameSet, JobTerms, Settlement},
            RenderEscrow::RenderEscrowErrors,
        },
    },
    frames,
    job::{for_registry, terms_of},
};
use lumen_protocol::{
    ChainEvent, ChainEventKind, Deployment, FrameIndex, JobId, JobState, MirroredEvent, SlashState, Wei,
    event::{FrameWord, WORD_BITS},
};
use lumen_runtime::{Pace, Retryable, ServiceHandle};
use lumen_store::{BanRow, Bus, Event, FrameRow, JobRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use mirror::Mirror;

/// How many nodes one round may leave out of a job's settlement, each found
/// by one reverted simulation, before the rest waits for the next round.
const MAX_LEFT_OUT_PER_ROUND: usize = 8;

/// Result alias of this crate.
pub type IndexerResult<T> = Result<T, IndexerError>;

/// What can go wrong in an indexer round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// An RPC request failed.
    #[error("rpc: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// The node did not return a block it reported.
    #[error("block {0} is missing")]
    MissingBlock(u64),
    /// The escrow released frames of a job the mirror has no `JobOpened` of.
    #[error("FramesReleased for job {0}, which the mirror never saw opened")]
    ReleaseOfUnknownJob(JobId),
    /// The escrow paid a node the mirror has no `NodeRegistered` of.
    #[error("FramesReleased names node {0}, which the mirror never saw registered")]
    ReleaseToUnknownNode(Address),
    /// The deployment names an address without code on this chain.
    #[error("no {name} contract at {address} on this chain (wrong RPC URL or deployment file?)")]
    NoContract {
        /// The contract.
        name: &'static str,
        /// Its address in the deployment.
        address: Address,
    },
}

impl IndexerError {
    /// The decoded reason when this is a revert the same call can never
    /// pass as it is (see [`ChainError::permanent_revert`]).
    pub fn permanent_revert(&self) -> Option<String> {
        match self {
            Self::Chain(e) => e.permanent_revert(),
            _ => None,
        }
    }
}

impl Retryable for IndexerError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Chain(e) => e.is_retryable(),
            Self::Rpc(_) | Self::MissingBlock(_) => true,
            Self::Store(e) => e.is_retryable(),
            Self::NoContract { .. } | Self::ReleaseOfUnknownJob(_) | Self::ReleaseToUnknownNode(_) => false,
        }
    }
}

/// Indexer settings (the `[indexer]` table of `lumen.toml`).
///
/// Settlement is batched for gas: every transaction costs 21,000 gas before
/// it does anything, and each job, node owner and bitmap word it touches
/// costs a few thousand more whether it pays one frame or hundreds. So a
/// job is paid when its every frame is final (one call pays everything,
/// closes the job and refunds the artist), and before that only when
/// `batch_frames` verified frames wait, or the oldest has waited
/// `max_batch_delay_ms`, or waiting one more window would pass the job's
/// deadline (after which the artist may refund what is unpaid). Jobs due in
/// the same round share transactions. See docs/trust.md for what the
/// window means for nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// Blocks to stay behind the head (default 0, right for a devnet; use
    /// the chain's finality depth elsewhere). A job is confirmed, and
    /// dispatched, only once its `JobOpened` is this deep; a reorg deeper
    /// than this is still handled (jobs are confirmed again), but work may
    /// have been dispatched for a job that then vanished.
    pub confirmations: u64,
    /// Poll interval when nothing wakes the indexer, ms (default 1000).
    pub poll_ms: u64,
    /// Pay a job before it ends once this many of its verified frames wait
    /// (default 1024: four full bitmap words per payment).
    pub batch_frames: usize,
    /// Pay a job before it ends once its oldest unpaid verified frame is
    /// this old, ms (default 600000: nodes of a long job are paid every ten
    /// minutes; a job done sooner is paid once, at its end).
    pub max_batch_delay_ms: u64,
    /// Most frames and verification renders in one transaction (default 1024).
    pub max_frames_per_tx: usize,
    /// Longest wait before retrying a settle or slash that failed for a
    /// transient reason (RPC down, not mined), ms (default 60000); the
    /// wait starts at `poll_ms` and doubles with each failure.
    pub max_backoff_ms: u64,
    /// How settler transactions are sent (`[indexer.sender]`).
    pub sender: SenderConfig,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            confirmations: 0,
            poll_ms: 1_000,
            batch_frames: 1_024,
            max_batch_delay_ms: 600_000,
            max_frames_per_tx: 1_024,
            max_backoff_ms: 60_000,
            sender: SenderConfig::default(),
        }
    }
}

/// A running indexer.
pub type IndexerHandle = ServiceHandle<IndexerError>;

/// Starts the indexer after checking that the deployment's contracts exist
/// on the chain the settler's provider reaches (a wrong RPC or deployment
/// file fails here, not as an empty mirror).
pub async fn spawn(
    config: IndexerConfig,
    deployment: &Deployment,
    store: Store,
    bus: Bus,
    settler: Settler,
) -> IndexerResult<IndexerHandle> {
    for (name, address) in [("RenderEscrow", deployment.escrow), ("NodeRegistry", deployment.registry)] {
        if settler.provider.get_code_at(address).await?.is_empty() {
            return Err(IndexerError::NoContract { name, address });
        }
    }
    let shutdown = CancellationToken::new();
    let indexer = Indexer::new(store, bus, settler, deployment, config);
    let token = shutdown.clone();
    Ok(ServiceHandle::spawn("indexer", None, shutdown, async move { indexer.run(token).await }))
}

/// A settlement step that failed and waits before it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Settle(JobId),
    Slash(Address),
}

/// When a failed step may run again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    at: Instant,
}

/// The indexer service.
#[derive(Debug)]
pub struct Indexer {
    store: Store,
    bus: Bus,
    provider: DynProvider,
    sender: Sender,
    config: IndexerConfig,
    escrow: Address,
    registry: Address,
    mirror: Mirror,
    retries: Mutex<HashMap<Step, Retry>>,
}

impl Indexer {
    /// An indexer for a deployment, sending as `settler`.
    pub fn new(
        store: Store,
        bus: Bus,
        settler: Settler,
        deployment: &Deployment,
        config: IndexerConfig,
    ) -> Self {
        let mirror = Mirror::new(
            deployment.escrow,
            deployment.registry,
            deployment.deploy_block,
            config.confirmations,
        );
        Self {
            store,
            bus,
            provider: settler.provider.clone(),
            sender: Sender::new(settler, config.sender),
            config,
            escrow: deployment.escrow,
            registry: deployment.registry,
            mirror,
            retries: Mutex::new(HashMap::new()),
        }
    }

    /// The settler's transaction sender.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Runs rounds until `shutdown` is cancelled; fails when rounds keep
    /// failing with an error that retrying cannot fix.
    pub async fn run(&self, shutdown: CancellationToken) -> IndexerResult<()> {
        self.unpark_all().await?;
        let pace = Pace::every_ms(self.config.poll_ms);
        lumen_runtime::rounds("indexer", pace, shutdown, self.bus.subscribe(), || self.round()).await
    }

    /// Lifts every park, as a start does: what an operator changed before
    /// restarting (the settler key, a registry link) gets one more
    /// simulation, which costs no gas; what still cannot pass is parked
    /// again.
    pub async fn unpark_all(&self) -> IndexerResult<()> {
        for park in self.store.settlement_parks().await? {
            self.store.unpark_settlement(park.job_id).await?;
            info!(target: "indexer::settle", job_id = %park.job_id, reason = %park.reason, "unparked at start");
        }
        for ban in self.store.bans().await? {
            if ban.slash_state == SlashState::Parked && self.store.unpark_slash(ban.node).await? {
                info!(target: "indexer::slash", node = %ban.node, reason = ?ban.slash_failure, "unparked at start");
            }
        }
        Ok(())
    }

    /// Reads the chain into the mirror.
    pub async fn sync(&self) -> IndexerResult<u64> {
        let block = self.mirror.sync(&self.provider, &self.store).await?;
        Ok(block)
    }

    /// One round: sync, confirm, slash, settle.
    pub async fn round(&self) -> IndexerResult<()> {
        self.sync().await?;
        self.reconfirm_jobs().await?;
        self.confirm_jobs().await?;
        for ban in self.store.bans().await? {
            let step = Step::Slash(ban.node);
            if ban.slash_state != SlashState::Pending || !self.due(step) {
                continue;
            }
            let slashed = self.slash(&ban).await;
            if let Some(reason) = slashed.as_ref().err().and_then(IndexerError::permanent_revert) {
                error!(target: "indexer::slash", node = %ban.node, %reason, "slash parked: it cannot pass as it is");
                self.store.park_slash(ban.node, &reason).await?;
                self.forget(step);
            } else {
                self.record(step, slashed.map(|_| ()));
            }
        }
        self.settle_due().await
    }

    /// Whether a step's backoff has passed.
    fn due(&self, step: Step) -> bool {
        let retries = self.retries.lock().expect("never poisoned: no panics while held");
        retries.get(&step).is_none_or(|r| r.at <= Instant::now())
    }

    fn forget(&self, step: Step) {
        self.retries.lock().expect("never poisoned").remove(&step);
    }

    /// Records how a step went: a failure waits `poll_ms × 2^(failures-1)`,
    /// at most `max_backoff_ms`, before the step runs again.
    fn record(&self, step: Step, outcome: IndexerResult<()>) {
        let Err(err) = outcome else {
            self.forget(step);
            return;
        };
        let mut retries = self.retries.lock().expect("never poisoned");
        let failures = retries.get(&step).map_or(1, |r| r.failures.saturating_add(1));
        let wait = backoff(self.config.poll_ms, self.config.max_backoff_ms, failures);
        retries.insert(step, Retry { failures, at: Instant::now() + wait });
        let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if err.is_retryable() {
            warn!(target: "indexer::settle", ?step, failures, retry_in_ms, %err, "settlement step failed; retrying");
        } else {
            error!(target: "indexer::settle", ?step, failures, retry_in_ms, %err, "settlement step failed; retrying");
        }
    }

    /// Whether `job`'s settlement is parked. A park holds while the job's
    /// mirrored chain events stay as they were when it was parked; when
    /// they change the job is unparked and tried again.
    async fn parked(&self, job: &JobRow) -> IndexerResult<bool> {
        let Some(park) = self.store.settlement_park(job.job_id).await? else { return Ok(false) };
        let mark = self.store.event_mark(job.job_id).await?;
        if (mark.events, mark.last_block) == (park.events, park.last_block) {
            debug!(target: "indexer::settle", job_id = %job.job_id, reason = %park.reason, "settlement parked");
            return Ok(true);
        }
        info!(target: "indexer::settle", job_id = %job.job_id, reason = %park.reason, "the job's chain events changed: unparked, trying again");
        self.store.unpark_settlement(job.job_id).await?;
        Ok(false)
    }

    /// Confirms confirmed jobs again against the mirror, which a reorg may
    /// have changed: a job whose `JobOpened` is gone waits for the chain
    /// again, one whose id now carries another job is rejected
    /// ([`Indexer::confirm_jobs`] does that once it awaits the chain), so
    /// nothing more is dispatched or paid for it and its running tasks are
    /// cancelled (the matchmaker stops tasks of jobs not rendering).
    async fn reconfirm_jobs(&self) -> IndexerResult<()> {
        for state in [JobState::Rendering, JobState::Settling] {
            for job in self.store.jobs_in_state(state).await? {
                let events = self.store.chain_events(Some(job.job_id)).await?;
                let opened = events.iter().find(|e| e.event.kind() == ChainEventKind::JobOpened);
                let problems = opened.map(|o| opened_mismatches(&job, &o.event));
                let why = match &problems {
                    None => "its JobOpened is no longer on the chain".to_owned(),
                    Some(p) if !p.is_empty() => format!("the chain's job has another {}", p.join(", ")),
                    Some(_) => continue,
                };
                if self.store.unconfirm_job(job.job_id, state).await? {
                    warn!(target: "indexer::reorg", job_id = %job.job_id, %state, %why, "a reorg took the job's confirmation: back to awaiting the chain");
                    self.bus.publish(Event::WorkAvailable);
                }
            }
        }
        Ok(())
    }

    async fn confirm_jobs(&self) -> IndexerResult<()> {
        for job in self.store.jobs_in_state(JobState::AwaitingChain).await? {
            let events = self.store.chain_events(Some(job.job_id)).await?;
            let Some(opened) = events.iter().find(|e| e.event.kind() == ChainEventKind::JobOpened) else {
                continue;
            };
            let problems = opened_mismatches(&job, &opened.event);
            if let (true, ChainEvent::JobOpened { verifications, deadline, .. }) =
                (problems.is_empty(), &opened.event)
            {
                if self.store.confirm_job(job.job_id, *verifications, *deadline).await? {
                    info!(target: "indexer::jobs", job_id = %job.job_id, verifications, "JobOpened matches the registered spec: dispatching");
                    self.bus.publish(Event::WorkAvailable);
                }
            } else {
                let reason =
                    format!("on-chain job does not match the registered spec: {}", problems.join(", "));
                warn!(target: "indexer::jobs", job_id = %job.job_id, %reason, "job rejected");
                self.store
                    .transition_job(job.job_id, JobState::AwaitingChain, JobState::Rejected, Some(&reason))
                    .await?;
            }
        }
        Ok(())
    }

    /// Settles every job that is due, several jobs per transaction: see
    /// [`IndexerConfig`] for when a job is due. One transaction carries up
    /// to `max_frames_per_tx` frames and verification renders; a job whose
    /// every frame is final is paid, closed and refunded in the same call.
    async fn settle_due(&self) -> IndexerResult<()> {
        // Both lists are read before any job moves from one to the other, so
        // each job is looked at once.
        let mut jobs = self.store.jobs_in_state(JobState::Rendering).await?;
        jobs.extend(self.store.jobs_in_state(JobState::Settling).await?);
        let mut due = Vec::new();
        for job in jobs {
            let step = Step::Settle(job.job_id);
            if !self.due(step) || self.parked(&job).await? {
                continue;
            }
            match self.prepare(&job).await {
                Ok(Some(d)) => due.extend(d),
                Ok(None) => {}
                Err(err) => self.record(step, Err(err)),
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let per_tx = self.config.max_frames_per_tx.max(1);
        // Whether anything reached the chain, and needs mirroring now.
        let mut sent = false;
        for batch in batches(due, per_tx) {
            let ids: std::collections::BTreeSet<JobId> = batch.iter().map(|d| d.job_id).collect();
            match self.send_batch(&batch).await {
                Ok(()) => {
                    sent = true;
                    ids.iter().for_each(|id| self.forget(Step::Settle(*id)));
                }
                Err(err) if ids.len() == 1 => {
                    let id = *ids.first().expect("one job");
                    if self.settle_failed(id, err).await? {
                        sent |= self.settle_again(id).await?;
                    }
                }
                Err(err) => {
                    // One job's revert must not hold the others back: each alone.
                    warn!(target: "indexer::settle", jobs = ?ids, %err, "settlement of several jobs failed; settling them one by one");
                    for job_id in ids {
                        let alone: Vec<Due> = batch.iter().filter(|d| d.job_id == job_id).cloned().collect();
                        match self.send_batch(&alone).await {
                            Ok(()) => {
                                sent = true;
                                self.forget(Step::Settle(job_id));
                            }
                            Err(err) => {
                                if self.settle_failed(job_id, err).await? {
                                    sent |= self.settle_again(job_id).await?;
                                }
                            }
                        }
                    }
                }
            }
        }
        if !sent {
            // Nothing reached the chain: nothing to mirror (and a failed
            // step, recorded above, does not fail the round).
            return Ok(());
        }
        self.sync().await?;
        // Jobs closed just now end in this round, not the next.
        for job in self.store.jobs_in_state(JobState::Settling).await? {
            self.advance(&job).await?;
        }
        Ok(())
    }

    /// What a failed settlement of `job_id` leads to: a node the escrow
    /// cannot pay for the job is left out from now on (one node must not
    /// hold up everyone else's frames; its share goes back to the artist);
    /// a revert that cannot pass as it is parks the job's settlement; any
    /// other failure is retried after a backoff. Returns whether a node was
    /// left out just now, so that the rest can be settled at once.
    async fn settle_failed(&self, job_id: JobId, err: IndexerError) -> IndexerResult<bool> {
        let step = Step::Settle(job_id);
        if let Some((node, reason)) = unpayable_node(&err) {
            let new = self.store.mark_unpayable(job_id, node, &reason).await?;
            if new {
                warn!(target: "indexer::settle", %job_id, %node, %reason, "frames left out of settlement");
                self.store.set_job_failure(job_id, &format!("some frames cannot be paid: {reason}")).await?;
            }
            self.forget(step);
            return Ok(new);
        }
        if let Some(reason) = err.permanent_revert() {
            error!(target: "indexer::settle", %job_id, %reason, "settlement parked: it cannot pass as it is");
            self.store.park_settlement(job_id, &reason).await?;
            self.forget(step);
        } else {
            self.record(step, Err(err));
        }
        Ok(false)
    }

    /// Settles `job_id` alone again, after a node was left out of it: its
    /// other frames are paid in the same round. Each further node the
    /// escrow refuses is found by one more simulation (a revert costs no
    /// gas), at most `MAX_LEFT_OUT_PER_ROUND` times. Returns whether
    /// anything was sent.
    async fn settle_again(&self, job_id: JobId) -> IndexerResult<bool> {
        let mut sent = false;
        for _ in 0..MAX_LEFT_OUT_PER_ROUND {
            let Some(job) = self.store.job(job_id).await? else { break };
            let due = match self.prepare(&job).await {
                Ok(Some(due)) if !due.is_empty() => due,
                Ok(_) => break,
                Err(err) => {
                    self.record(Step::Settle(job_id), Err(err));
                    break;
                }
            };
            let mut left_out = false;
            for batch in batches(due, self.config.max_frames_per_tx.max(1)) {
                match self.send_batch(&batch).await {
                    Ok(()) => {
                        sent = true;
                        self.forget(Step::Settle(job_id));
                    }
                    Err(err) => {
                        left_out = self.settle_failed(job_id, err).await?;
                        break;
                    }
                }
            }
            if !left_out {
                break;
            }
        }
        Ok(sent)
    }

    /// Sends one settlement transaction: `settle` for one entry,
    /// `settleMany` for several.
    async fn send_batch(&self, batch: &[Due]) -> IndexerResult<()> {
        let escrow = RenderEscrow::new(self.escrow, &self.provider);
        let frames: usize = batch.iter().map(|d| d.renders).sum();
        let closed = batch.iter().filter(|d| d.close).count();
        let receipt = if let [one] = batch {
            self.sender
                .send(escrow.settle(
                    one.job_id.to_u256(),
                    one.terms.clone(),
                    one.frames.clone(),
                    one.verifications.clone(),
                    one.close,
                ))
                .await?
        } else {
            let entries = batch
                .iter()
                .map(|d| Settlement {
                    jobId: d.job_id.to_u256(),
                    terms: d.terms.clone(),
                    frames: d.frames.clone(),
                    verifications: d.verifications.clone(),
                    close: d.close,
                })
                .collect();
            self.sender.send(escrow.settleMany(entries)).await?
        };
        let jobs: Vec<String> = batch.iter().map(|d| d.job_id.to_string()).collect();
        info!(target: "indexer::settle", jobs = ?jobs, renders = frames, closed, tx = %receipt.transaction_hash, gas = receipt.gas_used, "settled");
        Ok(())
    }

    /// Moves `job` from Rendering to Settling once every frame is final,
    /// and to Completed or Failed once the chain refunded it. Returns its
    /// state and mirrored events while it is not finished.
    async fn advance(&self, job: &JobRow) -> IndexerResult<Option<(JobState, Vec<MirroredEvent>)>> {
        let counts = self.store.frame_counts(job.job_id).await?;
        let mut state = job.state;
        if state == JobState::Rendering && counts.all_final() {
            self.store.transition_job(job.job_id, JobState::Rendering, JobState::Settling, None).await?;
            state = JobState::Settling;
            info!(target: "indexer::settle", job_id = %job.job_id, verified = counts.verified, failed = counts.failed, "every frame final: settling");
        }
        let events = self.store.chain_events(Some(job.job_id)).await?;
        if !events.iter().any(|e| e.event.kind() == ChainEventKind::JobRefunded) {
            return Ok(Some((state, events)));
        }
        // The job ended on-chain (closed by us, or refunded by the artist after cancel or deadline).
        let unpaid = self.store.unpaid_verified_frames(job.job_id).await?;
        let outcome = if counts.failed == 0 && unpaid.is_empty() && counts.all_final() {
            JobState::Completed
        } else {
            JobState::Failed
        };
        let reason = (outcome == JobState::Failed && job.failure.is_none())
            .then(|| format!("{} frames failed, {} unpaid at refund", counts.failed, unpaid.len()));
        if self.store.transition_job(job.job_id, state, outcome, reason.as_deref()).await? {
            info!(target: "indexer::settle", job_id = %job.job_id, %outcome, "job finished");
        }
        Ok(None)
    }

    /// Moves `job` along (Rendering → Settling → Completed/Failed) and, when
    /// a payment or its close is due, returns what to send for it.
    async fn prepare(&self, job: &JobRow) -> IndexerResult<Option<Vec<Due>>> {
        let Some((state, events)) = self.advance(job).await? else { return Ok(None) };
        // The escrow keeps a hash of the job's terms; the mirrored JobOpened
        // event has them (a confirmed job always has one).
        let Some(terms) = events.iter().find_map(|e| terms_of(&e.event)) else { return Ok(None) };

        // The policy, from the mirror: is a payment or the close due?
        let unpaid = self.store.unpaid_verified_frames(job.job_id).await?;
        let settling = state == JobState::Settling;
        let now_ms = lumen_store::now_ms();
        let oldest = unpaid.iter().map(|f| f.updated_at).min().unwrap_or(now_ms);
        let waited = u64::try_from(now_ms.saturating_sub(oldest)).unwrap_or(0);
        let now_secs = u64::try_from(now_ms / 1_000).unwrap_or(0);
        // Waiting one more window would pass the deadline, after which the
        // artist may refund what is not paid yet: pay now.
        let window_ends_late =
            now_secs.saturating_add(self.config.max_batch_delay_ms / 1_000) >= job.deadline;
        let due = settling
            || (!unpaid.is_empty()
                && (unpaid.len() >= self.config.batch_frames
                    || waited >= self.config.max_batch_delay_ms
                    || window_ends_late));
        if !due {
            return Ok(None);
        }

        // Money moves on what the chain says now, not on the mirror, which
        // may stay `confirmations` blocks behind: a payment or close already
        // sent is never sent again.
        let escrow = RenderEscrow::new(self.escrow, &self.provider);
        let job_id = job.job_id.to_u256();
        let onchain = match escrow.getJob(job_id, terms.clone()).call().await {
            Ok(state) => state,
            Err(err) => match ChainError::from_contract(err) {
                ChainError::EscrowReverted(RenderEscrowErrors::Escrow_TermsMismatch(_)) => {
                    warn!(target: "indexer::settle", job_id = %job.job_id, "the escrow's job has other terms than the mirrored JobOpened (reorg?): waiting");
                    return Ok(None);
                }
                other => return Err(other.into()),
            },
        };
        match JobStatus::from_raw(onchain.status) {
            // Ended on-chain (or unknown): the mirror will see it and finish the job above.
            Some(JobStatus::Refunded | JobStatus::None) | None => return Ok(None),
            Some(JobStatus::Open | JobStatus::Cancelled) => {}
        }
        // Bitmaps exist only once a settlement paid frames without closing
        // the job: with none on chain, nothing is paid there yet.
        let partly_paid = onchain.framesPaid != 0;
        let mut unpaid = if partly_paid { self.unpaid_on_chain(&escrow, job, unpaid).await? } else { unpaid };
        let mut verifications =
            self.unpaid_verifications_on_chain(&escrow, job, onchain.verificationsLeft, partly_paid).await?;
        // Frames of nodes the escrow will never pay for this job are left out.
        let unpayable: Vec<Address> =
            self.store.unpayable_nodes(job.job_id).await?.into_iter().map(|(node, _)| node).collect();
        unpaid.retain(|f| f.node.is_none_or(|n| !unpayable.contains(&n)));
        verifications.retain(|v| !unpayable.contains(&v.node));
        if unpaid.is_empty() && verifications.is_empty() && !settling {
            return Ok(None);
        }
        // Once every frame is final, the last payment also closes the job
        // and refunds its rest: one call.
        let per_tx = self.config.max_frames_per_tx.max(1);
        Ok(Some(chunks(job, &terms, &unpaid, &verifications, settling, per_tx)?))
    }

    /// Slashes a banned node's whole stake (bonded and unbonding) to the
    /// artist of the job it cheated on, with the evidence bundle's hash.
    async fn slash(&self, ban: &BanRow) -> IndexerResult<()> {
        let registry = NodeRegistry::new(self.registry, &self.provider);
        let info = registry.nodeInfo(ban.node).call().await.map_err(ChainError::from_contract)?;
        let amount = info.stake + info.unbonding;
        if amount.is_zero() {
            self.store.record_slash(ban.node, SlashState::NoStake, None, None).await?;
            warn!(target: "indexer::slash", node = %ban.node, "banned node has no stake to slash");
            return Ok(());
        }
        let events = self.store.chain_events(Some(ban.job_id)).await?;
        let evidence = ban.evidence_hash.to_b256();
        // The registry pays the job's artist (the escrow checks the terms
        // that name it). A job is dispatched only once its JobOpened is in
        // the mirror: a ban for a job without one is for a job nobody paid
        // for, and its slash goes to the treasury (job 0).
        let (job_id, terms) = match events.iter().find_map(|e| terms_of(&e.event)) {
            Some(terms) => (ban.job_id.to_u256(), for_registry(&terms)),
            None => {
                warn!(target: "indexer::slash", node = %ban.node, job_id = %ban.job_id, "the job was never opened on-chain: slashing to the treasury");
                (U256::ZERO, lumen_chain::job::no_job_terms())
            }
        };
        let receipt = self.sender.send(registry.slash(ban.node, amount, job_id, terms, evidence)).await?;
        self.store
            .record_slash(ban.node, SlashState::Slashed, Some(receipt.transaction_hash), Some(Wei(amount)))
            .await?;
        info!(target: "indexer::slash", node = %ban.node, %amount, job_id = %ban.job_id, tx = %receipt.transaction_hash, "cheating node slashed");
        Ok(())
    }

    /// Verification renders of `job` that may be paid: those the chain's
    /// bitmaps do not show paid, at most as many as the budget has left,
    /// each with whether its frame is paid on chain already (if not, it can
    /// only go in the call that pays the frame). With nothing paid on chain
    /// yet (`partly_paid` false) there are no bitmaps to read.
    async fn unpaid_verifications_on_chain(
        &self,
        escrow: &RenderEscrow::RenderEscrowInstance<&DynProvider>,
        job: &JobRow,
        left: u32,
        partly_paid: bool,
    ) -> IndexerResult<Vec<Verification>> {
        if left == 0 {
            return Ok(Vec::new());
        }
        let unpaid = self.store.unpaid_verification_renders(job.job_id).await?;
        let job_id = job.job_id.to_u256();
        let mut words = std::collections::HashMap::new();
        if partly_paid {
            for word in FrameWord::pack(unpaid.iter().map(|(f, _)| *f)) {
                let index = U256::from(word.index);
                let paid =
                    escrow.paidFrames(job_id, index).call().await.map_err(ChainError::from_contract)?;
                let verified =
                    escrow.verifiedFrames(job_id, index).call().await.map_err(ChainError::from_contract)?;
                words.insert(word.index, (paid, verified));
            }
        }
        let bit = |bits: U256, f: FrameIndex| bits.bit((f.get() % WORD_BITS) as usize);
        Ok(unpaid
            .into_iter()
            .filter_map(|(frame, node)| {
                let (paid, verified) =
                    words.get(&FrameWord::containing(frame).index).copied().unwrap_or_default();
                (!bit(verified, frame)).then(|| Verification { frame, node, frame_paid: bit(paid, frame) })
            })
            .take(usize::try_from(left).unwrap_or(usize::MAX))
            .collect())
    }

    /// Of `unpaid` (verified frames of `job` unpaid in the mirror), those
    /// also unpaid in the chain's paid-frame bitmaps (a payment the mirror
    /// has not reached yet is not sent twice).
    async fn unpaid_on_chain(
        &self,
        escrow: &RenderEscrow::RenderEscrowInstance<&DynProvider>,
        job: &JobRow,
        unpaid: Vec<FrameRow>,
    ) -> IndexerResult<Vec<FrameRow>> {
        let mut paid = std::collections::HashMap::new();
        for word in FrameWord::pack(unpaid.iter().map(|f| f.frame_index)) {
            let bits = escrow
                .paidFrames(job.job_id.to_u256(), U256::from(word.index))
                .call()
                .await
                .map_err(ChainError::from_contract)?;
            paid.insert(word.index, FrameWord { index: word.index, bits });
        }
        Ok(unpaid
            .into_iter()
            .filter(|f| {
                let word = FrameWord::containing(f.frame_index);
                !paid.get(&word.index).is_some_and(|w| w.frames().any(|i| i == f.frame_index))
            })
            .collect())
    }
}

/// The node a settle reverted for because the escrow never pays it for
/// this job (bound after the job opened, or not bound at all), with why.
fn unpayable_node(err: &IndexerError) -> Option<(Address, String)> {
    let IndexerError::Chain(ChainError::EscrowReverted(e)) = err else { return None };
    match e {
        RenderEscrowErrors::Escrow_NodeBoundAfterOpen(bound) => Some((
            bound.node,
            format!(
                "node {} was bound to its owner at {}, not before the job opened at {}: the escrow never pays it for this job",
                bound.node, bound.boundAt, bound.openedAt
            ),
        )),
        RenderEscrowErrors::Escrow_NodeNotBound(unbound) => Some((
            unbound.node,
            format!("node {} is bound to no owner: the escrow cannot pay it", unbound.node),
        )),
        _ => None,
    }
}

/// How long a step that failed `failures` times waits: `base_ms` doubled
/// each time, at most `max_ms`.
fn backoff(base_ms: u64, max_ms: u64, failures: u32) -> Duration {
    let factor = 1u64.checked_shl(failures.saturating_sub(1).min(32)).unwrap_or(u64::MAX);
    Duration::from_millis(base_ms.max(1).saturating_mul(factor).min(max_ms.max(base_ms)))
}

/// A verification render the escrow may pay.
#[derive(Debug, Clone, Copy)]
struct Verification {
    frame: FrameIndex,
    node: Address,
    /// Whether the frame itself is paid on chain already.
    frame_paid: bool,
}

/// One entry of a settlement transaction: a job's frames and verification
/// renders, and whether it closes the job.
#[derive(Debug, Clone)]
struct Due {
    job_id: JobId,
    terms: JobTerms,
    frames: Vec<FrameSet>,
    verifications: Vec<FrameSet>,
    close: bool,
    /// Frames and verification renders it pays.
    renders: usize,
}

/// Splits a job's payment into entries of at most `per_tx` renders each; a
/// verification render goes in the entry that pays its frame or a later one.
/// With `close`, the last entry also closes the job (an entry of its own
/// when nothing is left to pay).
fn chunks(
    job: &JobRow,
    terms: &JobTerms,
    frames: &[FrameRow],
    verifications: &[Verification],
    close: bool,
    per_tx: usize,
) -> IndexerResult<Vec<Due>> {
    // A verified frame always has the node whose render was accepted.
    let frames: Vec<(Address, u32)> =
        frames.iter().filter_map(|f| Some((f.node?, f.frame_index.get()))).collect();
    let mut frames = frames.as_slice();
    let mut pending = verifications.to_vec();
    let mut out = Vec::new();
    loop {
        let (now, later) = frames.split_at(frames.len().min(per_tx));
        for v in &mut pending {
            v.frame_paid |= now.iter().any(|(_, f)| *f == v.frame.get());
        }
        let (ready, wait): (Vec<Verification>, Vec<Verification>) =
            pending.into_iter().partition(|v| v.frame_paid);
        let (checks, over) = ready.split_at(ready.len().min(per_tx - now.len()));
        let last = later.is_empty() && over.is_empty();
        if now.is_empty() && checks.is_empty() && !(close && last) {
            break;
        }
        out.push(Due {
            job_id: job.job_id,
            terms: terms.clone(),
            frames: frames::pack(now.iter().copied(), job.frame_count)?,
            verifications: frames::pack(checks.iter().map(|v| (v.node, v.frame.get())), job.frame_count)?,
            close: close && last,
            renders: now.len() + checks.len(),
        });
        if last {
            break;
        }
        pending = over.iter().copied().chain(wait).collect();
        frames = later;
    }
    Ok(out)
}

/// Groups entries (in order) into transactions of at most `per_tx` renders;
/// an entry that only closes a job rides along with any transaction.
fn batches(due: Vec<Due>, per_tx: usize) -> Vec<Vec<Due>> {
    let mut out: Vec<Vec<Due>> = Vec::new();
    let mut size = 0;
    for d in due {
        match out.last_mut() {
            Some(batch) if size + d.renders <= per_tx => {
                size += d.renders;
                batch.push(d);
            }
            _ => {
                size = d.renders;
                out.push(vec![d]);
            }
        }
    }
    out
}

/// What in a `JobOpened` event disagrees with the job as registered (empty
/// when the chain backs the job exactly).
pub fn opened_mismatches(job: &JobRow, opened: &ChainEvent) -> Vec<&'static str> {
    let ChainEvent::JobOpened {
        job_id,
        artist,
        spec_hash,
        token,
        price_per_frame,
        frame_count,
        verifications,
        amount,
        ..
    } = opened
    else {
        return vec!["event"];
    };
    let mut problems = Vec::new();
    let checks = [
        (*job_id == job.job_id, "job id"),
        (*spec_hash == job.spec_hash, "spec hash"),
        (*artist == job.artist, "artist"),
        (*frame_count == job.frame_count, "frame count"),
        (*price_per_frame == job.price_per_frame, "price per frame"),
        (*token == job.token, "token"),
        (*verifications <= job.frame_count, "verification budget"),
        (Some(*amount) == job.expected_lock(*verifications), "locked amount"),
    ];
    for (ok, what) in checks {
        if !ok {
            problems.push(what);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_poll_interval_up_to_the_cap() {
        let waits: Vec<u64> =
            (1..=8).map(|n| u64::try_from(backoff(1_000, 60_000, n).as_millis()).unwrap_or(0)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
        assert_eq!(backoff(1_000, 60_000, u32::MAX), Duration::from_secs(60));
        // A cap below the poll interval does not make retries faster than polling.
        assert_eq!(backoff(1_000, 10, 1), Duration::from_secs(1));
    }
}
