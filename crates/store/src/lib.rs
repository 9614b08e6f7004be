//! Lumen's storage: the database of jobs, frames and render attempts (sqlx
//! with migrations; SQLite by default) and the content-addressed blob store.
//!
//! Services share one [`Store`]. State changes that several workers could
//! race on (claiming a frame for a node, accepting a result) are single
//! conditional `UPDATE`s whose affected-row count decides who won, so they
//! stay safe when several gateways share one database.

pub mod blobs;
pub mod bus;
pub mod error;
mod rows;

use std::{
    path::Path,
    str::FromStr,
    time::{SystemTime, UNIX_EPOCH},
};

use sqlx::{
    Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tracing::debug;

pub use blobs::BlobStore;
pub use bus::{Bus, Event};
pub use error::{StoreError, StoreResult};
pub use rows::*;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit i64 until the year 292 million")
}

/// The database and the blob store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
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

    /// The connection pool, for queries this crate does not wrap.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    // ----------------------------------------------------------------- blobs

    /// Stores bytes (skipping the write when present) and records them.
    pub async fn put_blob(&self, bytes: &[u8]) -> StoreResult<lumen_protocol::ContentHash> {
        let hash = self.blobs.put(bytes).await?;
        sqlx::query("INSERT INTO blobs (hash, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(hash.to_string())
            .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(hash)
    }

    // ------------------------------------------------------------------ jobs

    /// Registers a job and creates its frames, all `pending`.
    pub async fn insert_job(&self, job: &NewJob) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO jobs (job_id, artist, spec_json, spec_hash, signature, blend_hash, frame_count, width, \
             height, engine, token, price_per_frame, state, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job.job_id)
        .bind(&job.artist)
        .bind(&job.spec_json)
        .bind(&job.spec_hash)
        .bind(&job.signature)
        .bind(&job.blend_hash)
        .bind(i64::from(job.frame_count))
        .bind(i64::from(job.width))
        .bind(i64::from(job.height))
        .bind(&job.engine)
        .bind(&job.token)
        .bind(&job.price_per_frame)
        .bind(JobState::AwaitingChain)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::JobExists(job.job_id));
        }
        for (index, number) in job.frame_numbers.iter().enumerate() {
            sqlx::query(
                "INSERT INTO frames (job_id, frame_index, frame_number, state, updated_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(job.job_id)
            .bind(i64::try_from(index).expect("frame counts are u32"))
            .bind(i64::from(*number))
            .bind(FrameState::Pending)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One job.
    pub async fn job(&self, job_id: i64) -> StoreResult<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Jobs in a state, oldest first.
    pub async fn jobs_in_state(&self, state: JobState) -> StoreResult<Vec<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE state = ? ORDER BY job_id")
            .bind(state)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every job, newest first.
    pub async fn jobs(&self, limit: i64) -> StoreResult<Vec<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs ORDER BY job_id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Moves a job from `from` to `to`; false when it was not in `from`.
    pub async fn transition_job(
        &self,
        job_id: i64,
        from: JobState,
        to: JobState,
        failure: Option<&str>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = ?, failure = COALESCE(?, failure), updated_at = ? \
             WHERE job_id = ? AND state = ?",
        )
        .bind(to)
        .bind(failure)
        .bind(now_ms())
        .bind(job_id)
        .bind(from)
        .execute(&self.pool)
        .await?;
        debug!(target: "store::jobs", job_id, ?from, ?to, changed = done.rows_affected(), "job transition");
        Ok(done.rows_affected() == 1)
    }

    /// Records why a job failed without changing its state.
    pub async fn set_job_failure(&self, job_id: i64, failure: &str) -> StoreResult<()> {
        sqlx::query("UPDATE jobs SET failure = ?, updated_at = ? WHERE job_id = ? AND failure IS NULL")
            .bind(failure)
            .bind(now_ms())
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- frames

    /// The frames of a job, by index.
    pub async fn frames(&self, job_id: i64) -> StoreResult<Vec<FrameRow>> {
        Ok(sqlx::query_as("SELECT * FROM frames WHERE job_id = ? ORDER BY frame_index")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// One frame.
    pub async fn frame(&self, job_id: i64, frame_index: i64) -> StoreResult<Option<FrameRow>> {
        Ok(sqlx::query_as("SELECT * FROM frames WHERE job_id = ? AND frame_index = ?")
            .bind(job_id)
            .bind(frame_index)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Pending frames of rendering jobs, in job then frame order.
    pub async fn pending_frames(&self, limit: i64) -> StoreResult<Vec<FrameRow>> {
        Ok(sqlx::query_as(
            "SELECT f.* FROM frames f JOIN jobs j ON j.job_id = f.job_id \
             WHERE f.state = 'pending' AND j.state = 'rendering' \
             ORDER BY f.job_id, f.frame_index LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Counts of a job's frames per state.
    pub async fn frame_counts(&self, job_id: i64) -> StoreResult<FrameCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM frames WHERE job_id = ? GROUP BY state")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        let mut counts = FrameCounts::default();
        for row in rows {
            let n: i64 = row.try_get("n")?;
            match row.try_get::<FrameState, _>("state")? {
                FrameState::Pending => counts.pending = n,
                FrameState::Rendering => counts.rendering = n,
                FrameState::Verifying => counts.verifying = n,
                FrameState::Verified => counts.verified = n,
                FrameState::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// Fails a frame for good (no more attempts).
    pub async fn fail_frame(&self, job_id: i64, frame_index: i64, reason: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE frames SET state = 'failed', failure = ?, updated_at = ? \
             WHERE job_id = ? AND frame_index = ? AND state IN ('pending', 'rendering')",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(job_id)
        .bind(frame_index)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Fails every frame of a job not yet rendered or being checked, and
    /// cancels their running tasks, which are returned so their nodes can be
    /// told to stop.
    pub async fn fail_unfinished_frames(&self, job_id: i64, reason: &str) -> StoreResult<Vec<TaskRow>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let cancelled: Vec<TaskRow> = sqlx::query_as(
            "UPDATE tasks SET state = 'cancelled', finished_at = ? WHERE job_id = ? AND state = 'running' \
             RETURNING *",
        )
        .bind(now)
        .bind(job_id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE frames SET state = 'failed', failure = ?, updated_at = ? \
             WHERE job_id = ? AND state IN ('pending', 'rendering')",
        )
        .bind(reason)
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    // ----------------------------------------------------------------- tasks

    /// Claims a pending frame for `node`: the frame becomes `rendering` and a
    /// `running` task is created. `None` when someone else claimed it first.
    pub async fn claim_frame(
        &self,
        job_id: i64,
        frame_index: i64,
        node: &str,
        lease_until: i64,
    ) -> StoreResult<Option<TaskRow>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE frames SET state = 'rendering', attempts = attempts + 1, updated_at = ? \
             WHERE job_id = ? AND frame_index = ? AND state = 'pending'",
        )
        .bind(now)
        .bind(job_id)
        .bind(frame_index)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let task: TaskRow = sqlx::query_as(
            "INSERT INTO tasks (job_id, frame_index, node, state, lease_until, created_at) \
             VALUES (?, ?, ?, 'running', ?, ?) RETURNING *",
        )
        .bind(job_id)
        .bind(frame_index)
        .bind(node)
        .bind(lease_until)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(task))
    }

    /// One task.
    pub async fn task(&self, task_id: i64) -> StoreResult<Option<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE task_id = ?")
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The attempts at one frame, oldest first.
    pub async fn frame_tasks(&self, job_id: i64, frame_index: i64) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE job_id = ? AND frame_index = ? ORDER BY task_id")
            .bind(job_id)
            .bind(frame_index)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Tasks in a state, oldest first (`running`: the load the matchmaker
    /// balances; `uploaded`: results waiting for the verifier).
    pub async fn tasks_in_state(&self, state: TaskState) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE state = ? ORDER BY task_id")
            .bind(state)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Ends a running task without a result (`failed`, `lost`): the frame
    /// goes back to `pending` for another node. False when the task was no
    /// longer running.
    pub async fn end_task(&self, task_id: i64, end: &TaskEnd) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let task: Option<TaskRow> = sqlx::query_as(
            "UPDATE tasks SET state = ?, failure_code = ?, failure_message = ?, deterministic = ?, \
             finished_at = ? WHERE task_id = ? AND state = 'running' RETURNING *",
        )
        .bind(end.state)
        .bind(&end.code)
        .bind(&end.message)
        .bind(end.deterministic)
        .bind(now)
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(task) = task else { return Ok(false) };
        sqlx::query(
            "UPDATE frames SET state = 'pending', updated_at = ? \
             WHERE job_id = ? AND frame_index = ? AND state = 'rendering'",
        )
        .bind(now)
        .bind(task.job_id)
        .bind(task.frame_index)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that a running task's output was uploaded with `hash`.
    pub async fn record_upload(&self, task_id: i64, hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tasks SET upload_hash = ? WHERE task_id = ? AND state = 'running'")
            .bind(hash)
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a signed result: the task becomes `uploaded`, its frame
    /// `verifying`. False when the task was no longer running.
    pub async fn record_result(
        &self,
        task_id: i64,
        output_hash: &str,
        signature: &str,
        render_secs: f64,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let task: Option<TaskRow> = sqlx::query_as(
            "UPDATE tasks SET state = 'uploaded', output_hash = ?, signature = ?, render_secs = ?, \
             finished_at = ? WHERE task_id = ? AND state = 'running' RETURNING *",
        )
        .bind(output_hash)
        .bind(signature)
        .bind(render_secs)
        .bind(now)
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(task) = task else { return Ok(false) };
        sqlx::query(
            "UPDATE frames SET state = 'verifying', node = ?, output_hash = ?, updated_at = ? \
             WHERE job_id = ? AND frame_index = ? AND state = 'rendering'",
        )
        .bind(&task.node)
        .bind(output_hash)
        .bind(now)
        .bind(task.job_id)
        .bind(task.frame_index)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Tasks judged after verdict number `after`, in the order they were
    /// judged: how a gateway in another process follows the verifier.
    pub async fn judged_tasks_after(&self, after: i64) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE verdict_seq > ? ORDER BY verdict_seq")
            .bind(after)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The number of the latest verdict (0 when there is none).
    pub async fn last_verdict_seq(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(verdict_seq), 0) FROM tasks")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The verifier's verdict on an uploaded result. Accepted: the frame is
    /// `verified`. Rejected: the frame goes back to `pending`, so another
    /// node renders it, and is never paid for this output.
    pub async fn record_verdict(&self, task_id: i64, verdict: &Verdict) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let (task_state, code, message) = match verdict {
            Verdict::Accepted => (TaskState::Accepted, None, None),
            Verdict::Rejected { code, message } => (TaskState::Rejected, Some(code), Some(message)),
        };
        let task: Option<TaskRow> = sqlx::query_as(
            "UPDATE tasks SET state = ?, failure_code = ?, failure_message = ?, \
             verdict_seq = (SELECT COALESCE(MAX(verdict_seq), 0) + 1 FROM tasks) \
             WHERE task_id = ? AND state = 'uploaded' RETURNING *",
        )
        .bind(task_state)
        .bind(code)
        .bind(message)
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(task) = task else { return Ok(false) };
        match verdict {
            Verdict::Accepted => {
                sqlx::query(
                    "UPDATE frames SET state = 'verified', verdict = 'accepted', updated_at = ? \
                     WHERE job_id = ? AND frame_index = ? AND state = 'verifying'",
                )
                .bind(now)
                .bind(task.job_id)
                .bind(task.frame_index)
                .execute(&mut *tx)
                .await?;
            }
            Verdict::Rejected { code, .. } => {
                sqlx::query(
                    "UPDATE frames SET state = 'pending', node = NULL, output_hash = NULL, verdict = ?, \
                     updated_at = ? WHERE job_id = ? AND frame_index = ? AND state = 'verifying'",
                )
                .bind(format!("rejected: {code}"))
                .bind(now)
                .bind(task.job_id)
                .bind(task.frame_index)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    // ------------------------------------------------------------ settlement

    /// Verified frames of a job with no payout in the mirror yet.
    pub async fn unpaid_verified_frames(&self, job_id: i64) -> StoreResult<Vec<FrameRow>> {
        Ok(sqlx::query_as(
            "SELECT f.* FROM frames f LEFT JOIN frame_payouts p \
             ON p.job_id = f.job_id AND p.frame_index = f.frame_index \
             WHERE f.job_id = ? AND f.state = 'verified' AND p.tx_hash IS NULL ORDER BY f.frame_index",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The payouts of a job, from the mirror.
    pub async fn payouts(&self, job_id: i64) -> StoreResult<Vec<PayoutRow>> {
        Ok(sqlx::query_as("SELECT * FROM frame_payouts WHERE job_id = ? ORDER BY frame_index")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every payout, newest first.
    pub async fn all_payouts(&self, limit: i64) -> StoreResult<Vec<PayoutRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM frame_payouts ORDER BY block_number DESC, job_id, frame_index LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores a batch of mirrored events, their derived payouts, and the new
    /// cursor, atomically. Events already stored are skipped.
    pub async fn apply_chain_batch(
        &self,
        events: &[ChainEventRow],
        payouts: &[PayoutRow],
        cursor: &Cursor,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO chain_events (block_number, log_index, block_hash, tx_hash, contract, name, job_id, \
                 node, account, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(e.block_number)
            .bind(e.log_index)
            .bind(&e.block_hash)
            .bind(&e.tx_hash)
            .bind(&e.contract)
            .bind(&e.name)
            .bind(e.job_id)
            .bind(&e.node)
            .bind(&e.account)
            .bind(&e.data)
            .execute(&mut *tx)
            .await?;
        }
        for p in payouts {
            sqlx::query(
                "INSERT INTO frame_payouts (job_id, frame_index, node, owner, amount, fee, tx_hash, block_number) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(p.job_id)
            .bind(p.frame_index)
            .bind(&p.node)
            .bind(&p.owner)
            .bind(&p.amount)
            .bind(&p.fee)
            .bind(&p.tx_hash)
            .bind(p.block_number)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO indexer_cursor (name, block_number, block_hash) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET block_number = excluded.block_number, \
             block_hash = excluded.block_hash",
        )
        .bind(&cursor.name)
        .bind(cursor.block_number)
        .bind(&cursor.block_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where the mirror named `name` stopped.
    pub async fn cursor(&self, name: &str) -> StoreResult<Option<Cursor>> {
        Ok(sqlx::query_as("SELECT * FROM indexer_cursor WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Mirrored events of a job (or all events when `job_id` is `None`), in chain order.
    pub async fn chain_events(&self, job_id: Option<i64>) -> StoreResult<Vec<ChainEventRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM chain_events WHERE (? IS NULL OR job_id = ?) ORDER BY block_number, log_index",
        )
        .bind(job_id)
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes mirrored events and payouts above `block_number` (after a
    /// reorg), so they are read again from the canonical chain.
    pub async fn rewind_mirror(&self, block_number: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chain_events WHERE block_number > ?")
            .bind(block_number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM frame_payouts WHERE block_number > ?")
            .bind(block_number)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
