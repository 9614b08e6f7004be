//! In-process notifications between services.
//!
//! The database is the source of truth; the bus only wakes the services
//! that have something to do now instead of at their next poll. Losing a
//! message (a lagging receiver) therefore costs latency, never correctness.

use lumen_protocol::{Address, JobId, TaskId};
use tokio::sync::broadcast;

/// Something happened that another service may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job was registered by its artist.
    JobRegistered {
        /// On-chain id.
        job_id: JobId,
    },
    /// A job became dispatchable or its frames went back to pending.
    WorkAvailable,
    /// A node connected, became healthy, or finished a task.
    NodeCapacity,
    /// A result was uploaded and waits for the verifier.
    ResultUploaded {
        /// The task.
        task_id: TaskId,
    },
    /// The verifier judged a result.
    Verdict {
        /// The task.
        task_id: TaskId,
        /// The node that rendered it.
        node: Address,
        /// Whether it was accepted.
        accepted: bool,
    },
    /// A task failed or was lost.
    TaskEnded {
        /// The task.
        task_id: TaskId,
        /// Its node.
        node: Address,
    },
    /// A frame was verified: settlement may act.
    FrameVerified {
        /// Job id.
        job_id: JobId,
    },
    /// A node was proven to cheat and banned.
    NodeBanned {
        /// The node key.
        node: Address,
    },
    /// The chain mirror advanced.
    ChainSynced {
        /// Last mirrored block.
        block_number: u64,
    },
}

/// A broadcast bus of [`Event`]s.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Event>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    /// A new bus.
    pub fn new() -> Self {
        Self { tx: broadcast::channel(1024).0 }
    }

    /// Publishes an event (dropped when nobody listens).
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Subscribes to events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
