//! Errors of the storage layer.

use std::path::PathBuf;

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
        hash: String,
    },
    /// A job with this id is already registered.
    #[error("job {0} is already registered")]
    JobExists(i64),
}
