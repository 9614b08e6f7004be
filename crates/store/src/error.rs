//! Errors of the storage layer.

use std::path::PathBuf;

use lumen_protocol::{ContentHash, JobId, JobState};

/// Result alias of this crate.
pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong storing or loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file operation of the blob store failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// A stored blob no longer matches its hash (disk corruption or tampering).
    #[error("blob {hash} is corrupt on disk")]
    CorruptBlob {
        /// The expected hash.
        hash: ContentHash,
    },
    /// A job with this id is already registered.
    #[error("job {0} is already registered")]
    JobExists(JobId),
    /// A caller asked for a job transition the state machine does not allow.
    #[error("job {job_id}: {from} cannot become {to}")]
    Transition {
        /// The job.
        job_id: JobId,
        /// Its state as the caller expected it.
        from: JobState,
        /// The state asked for.
        to: JobState,
    },
    /// A caller asked for a task transition the state machine does not allow.
    #[error("task {task_id}: {from} cannot become {to}")]
    TaskTransition {
        /// The task.
        task_id: lumen_protocol::TaskId,
        /// Its state as the caller expected it.
        from: lumen_protocol::TaskState,
        /// The state asked for.
        to: lumen_protocol::TaskState,
    },
    /// A frame kept changing under a compare-and-swap (another writer won
    /// every retry); the caller may try again.
    #[error("frame {frame_index} of job {job_id} is changing too fast")]
    Contended {
        /// The job.
        job_id: JobId,
        /// The frame.
        frame_index: u32,
    },
}

impl StoreError {
    /// Whether the same operation may succeed when retried (a busy database
    /// or a lost compare-and-swap), as opposed to a bug or bad input.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Contended { .. } => true,
            Self::Db(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => true,
            Self::Db(sqlx::Error::Database(e)) => {
                e.message().contains("locked") || e.message().contains("busy")
            }
            _ => false,
        }
    }
}
