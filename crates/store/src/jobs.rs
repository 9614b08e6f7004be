//! Jobs: registered by artists, confirmed against the chain, settled.

use alloy_primitives::{Address, B256, Bytes};
use lumen_protocol::{ChainEventKind, ContentHash, FrameState, JobId, JobState, TaskState, Wei};
use tracing::debug;

use crate::{Hex, Store, StoreError, StoreResult, now_ms};

/// A job as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// On-chain job id.
    pub job_id: JobId,
    /// Artist address (the spec's signer).
    pub artist: Address,
    /// The signed spec as JSON.
    pub spec_json: String,
    /// EIP-712 hash of the spec (what the escrow holds).
    pub spec_hash: B256,
    /// The artist's signature over the spec.
    pub signature: Bytes,
    /// blake3 of the `.blend`.
    pub blend_hash: ContentHash,
    /// Expected frame width.
    pub width: u32,
    /// Expected frame height.
    pub height: u32,
    /// Render engine.
    pub engine: String,
    /// Payment token (zero address for the native coin).
    pub token: Address,
    /// Price per frame.
    pub price_per_frame: Wei,
    /// Blender frame number of each frame index (one entry per frame).
    pub frame_numbers: Vec<i32>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    /// On-chain job id.
    pub job_id: JobId,
    /// Artist address.
    #[sqlx(try_from = "Hex<Address>")]
    pub artist: Address,
    /// The signed spec as JSON.
    pub spec_json: String,
    /// EIP-712 hash of the spec.
    #[sqlx(try_from = "Hex<B256>")]
    pub spec_hash: B256,
    /// The artist's signature.
    #[sqlx(try_from = "Hex<Bytes>")]
    pub signature: Bytes,
    /// blake3 of the `.blend`.
    pub blend_hash: ContentHash,
    /// Frames in the job.
    #[sqlx(try_from = "i64")]
    pub frame_count: u32,
    /// Expected frame width.
    #[sqlx(try_from = "i64")]
    pub width: u32,
    /// Expected frame height.
    #[sqlx(try_from = "i64")]
    pub height: u32,
    /// Render engine.
    pub engine: String,
    /// Payment token.
    #[sqlx(try_from = "Hex<Address>")]
    pub token: Address,
    /// Price per frame.
    pub price_per_frame: Wei,
    /// Verification budget the escrow holds for the job (from `JobOpened`;
    /// 0 until the indexer confirms the job).
    #[sqlx(try_from = "i64")]
    pub verifications: u32,
    /// The on-chain deadline, unix seconds, after which the artist can
    /// always refund (from `JobOpened`; 0 until the indexer confirms the job).
    #[sqlx(try_from = "i64")]
    pub deadline: u64,
    /// Current state.
    pub state: JobState,
    /// Why the job failed or was rejected.
    pub failure: Option<String>,
    /// Registration time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// Why a rendering job stops before all its frames are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The artist cancelled it on-chain.
    Cancelled,
    /// The artist refunded it on-chain (after a cancel or the deadline).
    Refunded,
    /// Its deadline is too close to render more and still settle in time.
    Deadline,
}

impl StopReason {
    /// Why, in words (the job's failure and its frames').
    pub const fn message(self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled by the artist",
            Self::Refunded => "refunded to the artist",
            Self::Deadline => "stopped before the deadline, to settle in time",
        }
    }
}

impl JobRow {
    /// The amount the escrow must hold for this job with a budget of
    /// `verifications` verification renders: `(frames + verifications) × price`.
    pub fn expected_lock(&self, verifications: u32) -> Option<Wei> {
        self.price_per_frame.checked_mul(u64::from(self.frame_count) + u64::from(verifications))
    }
}

impl Store {
    /// Registers a job and creates its frames, all `pending`.
    ///
    /// The id may be taken by a registration the chain does not back
    /// (`rejected`, or still `awaiting_chain`) with another spec hash: a
    /// reorg gave the id to another job. The caller has checked that the
    /// chain now holds `job` under this id (the gateway reads the escrow),
    /// so the old registration is kept in `superseded_jobs` and replaced,
    /// with its frames and tasks. Otherwise a taken id is
    /// [`StoreError::JobExists`] (a `rendering` job waits for the indexer
    /// to take back its confirmation first).
    pub async fn insert_job(&self, job: &NewJob) -> StoreResult<()> {
        let now = now_ms();
        let frame_count = u32::try_from(job.frame_numbers.len()).unwrap_or(u32::MAX);
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO jobs (job_id, artist, spec_json, spec_hash, signature, blend_hash, frame_count, width, \
             height, engine, token, price_per_frame, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job.job_id)
        .bind(Hex(job.artist))
        .bind(&job.spec_json)
        .bind(Hex(job.spec_hash))
        .bind(Hex(job.signature.clone()))
        .bind(job.blend_hash)
        .bind(i64::from(frame_count))
        .bind(i64::from(job.width))
        .bind(i64::from(job.height))
        .bind(&job.engine)
        .bind(Hex(job.token))
        .bind(job.price_per_frame)
        .bind(JobState::AwaitingChain)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            drop(tx);
            return self.supersede_job(job).await;
        }
        for (index, number) in job.frame_numbers.iter().enumerate() {
            sqlx::query(
                "INSERT INTO frames (job_id, frame_index, frame_number, state, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
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

    /// Replaces a registration of `job.job_id` the chain does not back
    /// (see [`Store::insert_job`]).
    async fn supersede_job(&self, job: &NewJob) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        let archived = sqlx::query(
            "INSERT INTO superseded_jobs (job_id, artist, spec_hash, spec_json, state, failure, created_at, \
             superseded_at) SELECT job_id, artist, spec_hash, spec_json, state, failure, created_at, $1 \
             FROM jobs WHERE job_id = $2 AND spec_hash <> $3 AND state IN ($4, $5)",
        )
        .bind(now_ms())
        .bind(job.job_id)
        .bind(Hex(job.spec_hash))
        .bind(JobState::Rejected)
        .bind(JobState::AwaitingChain)
        .execute(&mut *tx)
        .await?;
        if archived.rows_affected() == 0 {
            return Err(StoreError::JobExists(job.job_id));
        }
        for delete in [
            "DELETE FROM tasks WHERE job_id = $1",
            "DELETE FROM frames WHERE job_id = $1",
            "DELETE FROM settlement_parks WHERE job_id = $1",
            "DELETE FROM unpayable_nodes WHERE job_id = $1",
            "DELETE FROM jobs WHERE job_id = $1",
        ] {
            sqlx::query(delete).bind(job.job_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        debug!(target: "store::jobs", job_id = %job.job_id, "registration superseded: the chain gave its id to another job");
        Box::pin(self.insert_job(job)).await
    }

    /// Takes back the confirmation of a job whose `JobOpened` a reorg
    /// removed or gave to another spec: `from` (`rendering` or `settling`)
    /// → `awaiting_chain`. Nothing is dispatched for it any more and the
    /// matchmaker cancels its running tasks; its frames keep their states,
    /// so a job whose `JobOpened` comes back is confirmed and goes on.
    /// False when the job was not in `from`.
    pub async fn unconfirm_job(&self, job_id: JobId, from: JobState) -> StoreResult<bool> {
        self.transition_job(job_id, from, JobState::AwaitingChain, None).await
    }

    /// One job.
    pub async fn job(&self, job_id: JobId) -> StoreResult<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Jobs in a state, oldest first.
    pub async fn jobs_in_state(&self, state: JobState) -> StoreResult<Vec<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE state = $1 ORDER BY job_id")
            .bind(state)
            .fetch_all(self.pool())
            .await?)
    }

    /// Every job, newest first.
    pub async fn jobs(&self, limit: i64) -> StoreResult<Vec<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs ORDER BY job_id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await?)
    }

    /// Moves a job from `from` to `to`; false when it was not in `from`
    /// (someone else moved it first). A move the state machine does not
    /// allow is an error, whatever the job's state.
    pub async fn transition_job(
        &self,
        job_id: JobId,
        from: JobState,
        to: JobState,
        failure: Option<&str>,
    ) -> StoreResult<bool> {
        if !from.can_become(to) {
            return Err(StoreError::Transition { job_id, from, to });
        }
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, failure = COALESCE($2, failure), updated_at = $3 \
             WHERE job_id = $4 AND state = $5",
        )
        .bind(to)
        .bind(failure)
        .bind(now_ms())
        .bind(job_id)
        .bind(from)
        .execute(self.pool())
        .await?;
        debug!(target: "store::jobs", %job_id, %from, %to, changed = done.rows_affected(), "job transition");
        Ok(done.rows_affected() == 1)
    }

    /// Confirms a job the chain backs: records the verification budget its
    /// lock holds and its deadline, and moves it from `awaiting_chain` to
    /// `rendering`; false when it was not awaiting the chain.
    pub async fn confirm_job(&self, job_id: JobId, verifications: u32, deadline: u64) -> StoreResult<bool> {
        let (from, to) = (JobState::AwaitingChain, JobState::Rendering);
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, verifications = $2, deadline = $6, updated_at = $3 \
             WHERE job_id = $4 AND state = $5",
        )
        .bind(to)
        .bind(i64::from(verifications))
        .bind(now_ms())
        .bind(job_id)
        .bind(from)
        .bind(i64::try_from(deadline).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await?;
        debug!(target: "store::jobs", %job_id, %from, %to, verifications, deadline, changed = done.rows_affected(), "job confirmed");
        Ok(done.rows_affected() == 1)
    }

    /// Rendering jobs that must stop now, each with why: the artist
    /// cancelled or refunded it (the chain mirror says so), or its deadline
    /// is less than `margin_secs` away.
    pub async fn jobs_to_stop(&self, margin_secs: u64) -> StoreResult<Vec<(JobId, StopReason)>> {
        let rows: Vec<(JobId, Option<ChainEventKind>, i64)> = sqlx::query_as(
            "SELECT j.job_id, \
                 (SELECT e.kind FROM chain_events e WHERE e.job_id = j.job_id AND e.kind IN ($2, $3) \
                  ORDER BY e.block_number DESC, e.log_index DESC LIMIT 1), \
                 j.deadline \
             FROM jobs j WHERE j.state = $1 ORDER BY j.job_id",
        )
        .bind(JobState::Rendering)
        .bind(ChainEventKind::JobCancelled)
        .bind(ChainEventKind::JobRefunded)
        .fetch_all(self.pool())
        .await?;
        let now = u64::try_from(now_ms() / 1_000).unwrap_or(0);
        Ok(rows
            .into_iter()
            .filter_map(|(job_id, ended, deadline)| {
                let deadline = u64::try_from(deadline).unwrap_or(0);
                let reason = match ended {
                    Some(ChainEventKind::JobRefunded) => StopReason::Refunded,
                    Some(_) => StopReason::Cancelled,
                    None if deadline != 0 && deadline < now.saturating_add(margin_secs) => {
                        StopReason::Deadline
                    }
                    None => return None,
                };
                Some((job_id, reason))
            })
            .collect())
    }

    /// Stops a rendering job: every frame not final yet fails with
    /// `reason`, and the job goes to `settling` (its verified frames are
    /// still paid, then it is closed). Returns the running tasks it
    /// cancelled, so their nodes can be told to stop; `None` when the job
    /// was not rendering.
    pub async fn stop_job(
        &self,
        job_id: JobId,
        reason: StopReason,
    ) -> StoreResult<Option<Vec<crate::TaskRow>>> {
        let Some(job) = self.job(job_id).await? else { return Ok(None) };
        if job.state != JobState::Rendering {
            return Ok(None);
        }
        let cancelled = self.fail_unfinished_frames(job_id, reason.message()).await?;
        self.set_job_failure(job_id, reason.message()).await?;
        self.transition_job(job_id, JobState::Rendering, JobState::Settling, None).await?;
        debug!(target: "store::jobs", %job_id, reason = reason.message(), cancelled = cancelled.len(), "job stopped");
        Ok(Some(cancelled))
    }

    /// Drops the results still waiting for a verdict in jobs the artist
    /// refunded on-chain: nothing can pay for them any more, so they are
    /// not verified. Their tasks are cancelled and their frames fail.
    /// Returns how many tasks were dropped.
    pub async fn drop_results_of_refunded_jobs(&self) -> StoreResult<u64> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let tasks = sqlx::query(
            "UPDATE tasks SET state = $2, finished_at = COALESCE(finished_at, $3), failure_code = 'job_refunded', \
             failure_message = $4 WHERE state IN ($5, $6) \
             AND job_id IN (SELECT e.job_id FROM chain_events e WHERE e.kind = $1)",
        )
        .bind(ChainEventKind::JobRefunded)
        .bind(TaskState::Cancelled)
        .bind(now)
        .bind(StopReason::Refunded.message())
        .bind(TaskState::Uploaded)
        .bind(TaskState::Checked)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE frames SET state = $2, failure = $3, version = version + 1, updated_at = $4 \
             WHERE state IN ($5, $6, $7) \
             AND job_id IN (SELECT e.job_id FROM chain_events e WHERE e.kind = $1)",
        )
        .bind(ChainEventKind::JobRefunded)
        .bind(FrameState::Failed)
        .bind(StopReason::Refunded.message())
        .bind(now)
        .bind(FrameState::Pending)
        .bind(FrameState::Rendering)
        .bind(FrameState::Verifying)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(tasks.rows_affected())
    }

    /// Records why a job failed without changing its state (the first reason wins).
    pub async fn set_job_failure(&self, job_id: JobId, failure: &str) -> StoreResult<()> {
        sqlx::query("UPDATE jobs SET failure = $1, updated_at = $2 WHERE job_id = $3 AND failure IS NULL")
            .bind(failure)
            .bind(now_ms())
            .bind(job_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
