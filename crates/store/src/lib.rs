//! Lumen's storage: the database of jobs, frames, render tasks and the chain
//! mirror (sqlx with migrations), and the content-addressed blob store.
//!
//! One module per aggregate: [`jobs`], [`work`] (frames and their render
//! tasks), [`mirror`] (chain events, payouts, cursors), and `scenes` (what
//! inspection read from each `.blend`). Every value is read
//! and written as its `lumen-protocol` type.
//!
//! State changes that several workers could race on are decided by one
//! conditional statement whose affected-row count picks the winner: a task
//! moves only from the state it was read in, and a frame's derived state is
//! written with a compare-and-swap on its `version`. That holds when several
//! gateways share one database.
//!
//! # The backend seam
//! The database is named once, by [`Db`]. Queries use only SQL that SQLite
//! and PostgreSQL both accept (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), and the domain types map to columns generically over the
//! database, so a PostgreSQL backend is a new [`Db`] choice and connect
//! options, not a change to callers.

pub mod access;
pub mod blobs;
pub mod bus;
mod codec;
pub mod earnings;
pub mod error;
pub mod jobs;
pub mod mirror;
mod scenes;
pub mod settlement;
pub mod trust;
pub mod work;

use std::{
    path::Path,
    str::FromStr,
    time::{SystemTime, UNIX_EPOCH},
};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use access::Aggregates;
pub use blobs::{BlobReader, BlobStore, BlobWriter, PendingBlob};
pub use bus::{Bus, Event};
pub use codec::{Hex, OptHex};
pub use error::{StoreError, StoreResult};
pub use jobs::{JobRow, NewJob, StopReason};
pub use mirror::{Cursor, PayoutRow};
pub use settlement::{EventMark, ParkRow};
pub use trust::{BanRow, NewBan, NodeRecord};
pub use work::{FrameCounts, FrameRow, Renderer, TaskEnd, TaskRow};

/// The database backend.
pub type Db = sqlx::Sqlite;

/// A pool of connections to [`Db`].
pub type Pool = sqlx::Pool<Db>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit i64 until the year 292 million")
}

/// The database and the blob store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    blobs: BlobStore,
}

impl Store {
    /// Opens (creating if needed) `dir/lumen.db` and `dir/blobs`, and runs
    /// the migrations.
    pub async fn open(dir: &Path) -> StoreResult<Self> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| StoreError::Io { path: dir.to_owned(), source })?;
        let url = format!("sqlite://{}", dir.join("lumen.db").display());
        Self::connect(&url, BlobStore::open(&dir.join("blobs")).await?).await
    }

    /// Connects to a database URL (`sqlite://path`) with the given blob store.
    pub async fn connect(url: &str, blobs: BlobStore) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool, blobs })
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Moves a streamed blob into the store and records it.
    pub async fn commit_blob(&self, blob: blobs::PendingBlob) -> StoreResult<lumen_protocol::ContentHash> {
        let size = blob.size();
        let hash = blob.commit().await?;
        self.record_blob(hash, size).await?;
        Ok(hash)
    }

    async fn record_blob(&self, hash: lumen_protocol::ContentHash, size: u64) -> StoreResult<()> {
        sqlx::query("INSERT INTO blobs (hash, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(hash)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores bytes (skipping the write when present) and records them.
    pub async fn put_blob(&self, bytes: &[u8]) -> StoreResult<lumen_protocol::ContentHash> {
        let hash = self.blobs.put(bytes).await?;
        self.record_blob(hash, bytes.len() as u64).await?;
        Ok(hash)
    }
}
