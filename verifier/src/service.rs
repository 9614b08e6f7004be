//! The verifier service: judges every uploaded result.
//!
//! Wakes when a result is uploaded (and polls as a fallback), decodes the
//! frame off the async runtime, and records the verdict: accepted frames
//! become payable, rejected ones go back to the queue for another node and
//! are never paid. Verdicts are published so the gateway can adjust the
//! node's health.

use lumen_protocol::{TaskState, Verdict};
use lumen_runtime::{Pace, Retryable, ServiceHandle};
use lumen_store::{Bus, Event, Store, StoreError, TaskRow};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{FrameExpectation, Rejection, check_frame};

/// Verifier service settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierConfig {
    /// Poll interval when nothing wakes the verifier (ms).
    pub poll_ms: u64,
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: u64,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self { poll_ms: 1_000, max_frame_bytes: 256 << 20 }
    }
}

/// What stops a verifier round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Retryable for VerifierError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(err) => err.is_retryable(),
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
}

impl VerifierService {
    /// A verifier over a store and a bus.
    pub fn new(store: Store, bus: Bus, config: VerifierConfig) -> Self {
        Self { store, bus, config }
    }

    /// Judges uploads until `shutdown` is cancelled; fails when rounds keep
    /// failing with an error that retrying cannot fix.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), VerifierError> {
        let pace = Pace::every_ms(self.config.poll_ms);
        lumen_runtime::rounds("verifier", pace, shutdown, self.bus.subscribe(), || self.round()).await
    }

    /// Judges every result waiting now.
    pub async fn round(&self) -> Result<(), VerifierError> {
        for task in self.store.tasks_in_state(TaskState::Uploaded).await? {
            self.judge(&task).await?;
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
        if !self.store.record_verdict(task.task_id, &verdict).await? {
            return Ok(());
        }
        let accepted = verdict == Verdict::Accepted;
        if let Verdict::Rejected { code, message } = &verdict {
            warn!(target: "verifier::check", job_id = %task.job_id, frame_index = %task.frame_index, node = %task.node, %code, %message, "frame rejected");
        } else {
            info!(target: "verifier::check", job_id = %task.job_id, frame_index = %task.frame_index, node = %task.node, "frame verified");
        }
        self.bus.publish(Event::Verdict { task_id: task.task_id, node: task.node, accepted });
        self.bus.publish(if accepted {
            Event::FrameVerified { job_id: task.job_id }
        } else {
            Event::WorkAvailable
        });
        Ok(())
    }
}
