//! Frames and their render tasks.
//!
//! A frame needs `renders_wanted` accepted renders: one normally, more when
//! it is sampled for a verification render. Each render attempt is a task
//! with its own node, output and verdict. A task moves only along
//! [`TaskState::can_become`], by one conditional `UPDATE … WHERE state = <from>`
//! that decides any race; the frame's state is then derived from all its
//! tasks ([`FrameState::derive`]) and written with a compare-and-swap on the
//! frame's `version`, in the same transaction. `failed` is the one frame
//! state set directly, and it is final.

use alloy_primitives::{Address, Bytes};
use lumen_protocol::{
    ContentHash, FrameIndex, FrameState, JobId, JobState, TaskId, TaskRole, TaskState, Verdict,
};
use serde::Serialize;
use tracing::debug;

use crate::{Db, Hex, OptHex, Store, StoreError, StoreResult, now_ms};

type Conn = <Db as sqlx::Database>::Connection;

/// Compare-and-swap attempts before a frame update gives up as contended.
const CAS_RETRIES: usize = 16;

/// A stored frame.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FrameRow {
    /// Job id.
    pub job_id: JobId,
    /// 0-based index within the job.
    pub frame_index: FrameIndex,
    /// Blender frame number.
    #[sqlx(try_from = "i64")]
    pub frame_number: i32,
    /// Current state.
    pub state: FrameState,
    /// Accepted renders the frame needs.
    #[sqlx(try_from = "i64")]
    pub renders_wanted: u32,
    /// Node whose output is current (uploaded or accepted).
    #[sqlx(try_from = "OptHex<Address>")]
    pub node: Option<Address>,
    /// blake3 of that output.
    pub output_hash: Option<ContentHash>,
    /// Why the frame failed for good.
    pub failure: Option<String>,
    /// Render attempts so far.
    #[sqlx(try_from = "i64")]
    pub attempts: u32,
    /// Compare-and-swap counter of the row.
    pub version: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// A stored render attempt.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRow {
    /// Task id, sent to the node.
    pub task_id: TaskId,
    /// Job id.
    pub job_id: JobId,
    /// Frame index.
    pub frame_index: FrameIndex,
    /// The node rendering it.
    #[sqlx(try_from = "Hex<Address>")]
    pub node: Address,
    /// The owner the node key was bound to at dispatch (none on tasks
    /// older than sampling).
    #[sqlx(try_from = "OptHex<Address>")]
    pub owner: Option<Address>,
    /// The node's Blender build at dispatch.
    pub blender_version: Option<String>,
    /// The node's OpenGL implementation at dispatch, as it announced it.
    pub opengl: Option<String>,
    /// Why the render exists.
    pub role: TaskRole,
    /// Current state.
    pub state: TaskState,
    /// Hash of the bytes the node uploaded.
    pub upload_hash: Option<ContentHash>,
    /// Hash the node signed.
    pub output_hash: Option<ContentHash>,
    /// The node's signature over (job, frame, output hash).
    #[sqlx(try_from = "OptHex<Bytes>")]
    pub signature: Option<Bytes>,
    /// Failure code (node-reported or verifier rejection).
    pub failure_code: Option<String>,
    /// Failure detail.
    pub failure_message: Option<String>,
    /// Whether the failure would repeat on any node with the same build.
    pub deterministic: bool,
    /// For a deterministic failure: whether the verifier's own probe render
    /// failed the same way (`None` until probed).
    pub confirmed: Option<bool>,
    /// Node-reported render time.
    pub render_secs: Option<f64>,
    /// The task is lost if no result arrives by then (ms).
    pub lease_until: i64,
    /// Last progress the node reported on it (ms), if any.
    pub progress_at: Option<i64>,
    /// Dispatch time (ms).
    pub created_at: i64,
    /// When it stopped running (ms): its result uploaded, or it failed,
    /// was lost or cancelled. Set once; a verdict does not move it.
    pub finished_at: Option<i64>,
    /// Order of the verifier's verdict on it (1, 2, 3, ...).
    pub verdict_seq: Option<i64>,
}

impl TaskRow {
    /// The verdict on the task, once judged.
    pub fn verdict(&self) -> Option<Verdict> {
        match self.state {
            TaskState::Accepted => Some(Verdict::Accepted),
            TaskState::Rejected => Some(Verdict::Rejected {
                code: self.failure_code.clone().unwrap_or_default(),
                message: self.failure_message.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// Who renders a task: the node key, the owner it is bound to, and its
/// Blender build (independent renders of one frame need different owners
/// and the same build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renderer {
    /// The node key's address.
    pub node: Address,
    /// The owner it is bound to on-chain.
    pub owner: Address,
    /// Its Blender version, e.g. `3.4.1`.
    pub blender_version: String,
    /// Its OpenGL implementation, as it announced it (`Capabilities::opengl`).
    pub opengl: Option<String>,
}

/// How a running task ended without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    /// `Failed`, `Lost` or `Cancelled`.
    pub state: TaskState,
    /// Stable failure code.
    pub code: String,
    /// Detail.
    pub message: String,
    /// Whether the failure is deterministic.
    pub deterministic: bool,
}

/// Frames of a job per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FrameCounts {
    /// Waiting for a node.
    pub pending: u32,
    /// Being rendered.
    pub rendering: u32,
    /// Being verified.
    pub verifying: u32,
    /// Verified.
    pub verified: u32,
    /// Failed for good.
    pub failed: u32,
}

impl FrameCounts {
    /// Whether every frame is verified or failed.
    pub fn all_final(&self) -> bool {
        self.pending == 0 && self.rendering == 0 && self.verifying == 0
    }

    fn add(&mut self, state: FrameState, n: u32) {
        let slot = match state {
            FrameState::Pending => &mut self.pending,
            FrameState::Rendering => &mut self.rendering,
            FrameState::Verifying => &mut self.verifying,
            FrameState::Verified => &mut self.verified,
            FrameState::Failed => &mut self.failed,
        };
        *slot += n;
    }
}

/// The output a frame shows, and the node paid for it: the first accepted
/// render (a sampled frame's verification renders check it), else the
/// newest one waiting for its verdict.
fn current_output(tasks: &[TaskRow]) -> (Option<Address>, Option<ContentHash>) {
    let accepted = tasks.iter().find(|t| t.state == TaskState::Accepted);
    let waiting = || tasks.iter().rev().find(|t| matches!(t.state, TaskState::Checked | TaskState::Uploaded));
    match accepted.or_else(waiting) {
        Some(t) => (Some(t.node), t.output_hash),
        None => (None, None),
    }
}

async fn load_frame(
    conn: &mut Conn,
    job_id: JobId,
    frame_index: FrameIndex,
) -> StoreResult<Option<FrameRow>> {
    Ok(sqlx::query_as("SELECT * FROM frames WHERE job_id = $1 AND frame_index = $2")
        .bind(job_id)
        .bind(frame_index)
        .fetch_optional(conn)
        .await?)
}

async fn load_tasks(conn: &mut Conn, job_id: JobId, frame_index: FrameIndex) -> StoreResult<Vec<TaskRow>> {
    Ok(sqlx::query_as("SELECT * FROM tasks WHERE job_id = $1 AND frame_index = $2 ORDER BY task_id")
        .bind(job_id)
        .bind(frame_index)
        .fetch_all(conn)
        .await?)
}

/// Writes a frame's derived state (and current output) if it changed,
/// unless the frame failed for good.
async fn rederive(conn: &mut Conn, job_id: JobId, frame_index: FrameIndex) -> StoreResult<()> {
    for _ in 0..CAS_RETRIES {
        let Some(frame) = load_frame(conn, job_id, frame_index).await? else { return Ok(()) };
        if frame.state == FrameState::Failed {
            return Ok(());
        }
        let tasks = load_tasks(conn, job_id, frame_index).await?;
        let state = FrameState::derive(frame.renders_wanted, tasks.iter().map(|t| t.state));
        let (node, output_hash) = current_output(&tasks);
        if (state, node, output_hash) == (frame.state, frame.node, frame.output_hash) {
            return Ok(());
        }
        let done = sqlx::query(
            "UPDATE frames SET state = $1, node = $2, output_hash = $3, version = version + 1, updated_at = $4 \
             WHERE job_id = $5 AND frame_index = $6 AND version = $7",
        )
        .bind(state)
        .bind(OptHex(node))
        .bind(output_hash)
        .bind(now_ms())
        .bind(job_id)
        .bind(frame_index)
        .bind(frame.version)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            debug!(target: "store::frames", %job_id, %frame_index, from = %frame.state, to = %state, "frame state");
            return Ok(());
        }
    }
    Err(StoreError::Contended { job_id, frame_index: frame_index.get() })
}

impl Store {
    /// The frames of a job, by index.
    pub async fn frames(&self, job_id: JobId) -> StoreResult<Vec<FrameRow>> {
        Ok(sqlx::query_as("SELECT * FROM frames WHERE job_id = $1 ORDER BY frame_index")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// One frame.
    pub async fn frame(&self, job_id: JobId, frame_index: FrameIndex) -> StoreResult<Option<FrameRow>> {
        load_frame(&mut *self.pool().acquire().await?, job_id, frame_index).await
    }

    /// Pending frames of rendering jobs, at most `limit`, in a fair order:
    /// artists take turns, and each artist's jobs take turns, frame by frame
    /// in frame order. So a job of thousands of frames, or an artist with many
    /// jobs, cannot hold back anybody else's next frame.
    pub async fn pending_frames(&self, limit: i64) -> StoreResult<Vec<FrameRow>> {
        Ok(sqlx::query_as(
            "WITH pending AS ( \
                 SELECT f.job_id, f.frame_index, j.artist, \
                        ROW_NUMBER() OVER (PARTITION BY f.job_id ORDER BY f.frame_index) AS in_job \
                 FROM frames f JOIN jobs j ON j.job_id = f.job_id \
                 WHERE f.state = $1 AND j.state = $2 \
             ), turns AS ( \
                 SELECT job_id, frame_index, \
                        ROW_NUMBER() OVER (PARTITION BY artist ORDER BY in_job, job_id) AS turn \
                 FROM pending WHERE in_job <= $3 \
             ) \
             SELECT f.* FROM frames f JOIN turns t ON t.job_id = f.job_id AND t.frame_index = f.frame_index \
             ORDER BY t.turn, f.job_id, f.frame_index LIMIT $3",
        )
        .bind(FrameState::Pending)
        .bind(JobState::Rendering)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Counts of a job's frames per state.
    pub async fn frame_counts(&self, job_id: JobId) -> StoreResult<FrameCounts> {
        let rows: Vec<(FrameState, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM frames WHERE job_id = $1 GROUP BY state")
                .bind(job_id)
                .fetch_all(self.pool())
                .await?;
        let mut counts = FrameCounts::default();
        for (state, n) in rows {
            counts.add(state, u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok(counts)
    }

    /// Verified frames of a job with no payout in the mirror yet that may be
    /// paid now. A banned node's frames are never paid (they are being
    /// revoked), and a node's frames wait while any sampled frame of the job
    /// it rendered is still undecided (its render running, uploaded or checked
    /// on a frame that wants several renders): if it loses that vote, its
    /// unpaid frames are revoked and rendered by others.
    pub async fn unpaid_verified_frames(&self, job_id: JobId) -> StoreResult<Vec<FrameRow>> {
        Ok(sqlx::query_as(
            "SELECT f.* FROM frames f LEFT JOIN frame_payouts p \
             ON p.job_id = f.job_id AND p.frame_index = f.frame_index \
             WHERE f.job_id = $1 AND f.state = $2 AND p.tx_hash IS NULL \
             AND NOT EXISTS (SELECT 1 FROM node_bans b WHERE b.node = f.node) \
             AND NOT EXISTS (SELECT 1 FROM tasks t JOIN frames s \
                 ON s.job_id = t.job_id AND s.frame_index = t.frame_index \
                 WHERE t.job_id = f.job_id AND t.node = f.node AND s.renders_wanted > 1 \
                 AND t.state IN ($3, $4, $5)) \
             ORDER BY f.frame_index",
        )
        .bind(job_id)
        .bind(FrameState::Verified)
        .bind(TaskState::Running)
        .bind(TaskState::Uploaded)
        .bind(TaskState::Checked)
        .fetch_all(self.pool())
        .await?)
    }

    /// Verification renders of `job_id` the escrow may pay: for each
    /// verified frame whose verification render is not paid in the mirror,
    /// the earliest judged accepted render by another node than the frame's
    /// render (`frames.node`, and the one paid for it if that differs), of a
    /// node not banned. Frame order.
    pub async fn unpaid_verification_renders(
        &self,
        job_id: JobId,
    ) -> StoreResult<Vec<(FrameIndex, Address)>> {
        let rows: Vec<(FrameIndex, Hex<Address>)> = sqlx::query_as(
            "SELECT frame_index, verifier FROM (SELECT f.frame_index, \
                 (SELECT t.node FROM tasks t WHERE t.job_id = f.job_id AND t.frame_index = f.frame_index \
                  AND t.state = $2 AND t.node <> f.node AND (p.node IS NULL OR t.node <> p.node) \
                  AND NOT EXISTS (SELECT 1 FROM node_bans b WHERE b.node = t.node) \
                  ORDER BY t.verdict_seq, t.task_id LIMIT 1) AS verifier \
               FROM frames f LEFT JOIN verification_payouts v \
               ON v.job_id = f.job_id AND v.frame_index = f.frame_index \
               LEFT JOIN frame_payouts p ON p.job_id = f.job_id AND p.frame_index = f.frame_index \
               WHERE f.job_id = $1 AND f.state = $3 AND v.tx_hash IS NULL) c \
             WHERE verifier IS NOT NULL ORDER BY frame_index",
        )
        .bind(job_id)
        .bind(TaskState::Accepted)
        .bind(FrameState::Verified)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(f, node)| (f, node.0)).collect())
    }

    /// Running tasks of jobs that are no longer rendering (stopped,
    /// settling or final): work nobody will verify or pay.
    pub async fn running_tasks_of_stopped_jobs(&self) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as(
            "SELECT t.* FROM tasks t JOIN jobs j ON j.job_id = t.job_id \
             WHERE t.state = $1 AND j.state <> $2 ORDER BY t.task_id",
        )
        .bind(TaskState::Running)
        .bind(JobState::Rendering)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many frames of `job_id` the matchmaker chose for a verification
    /// render (the draws its verification budget must cover).
    pub async fn sampled_frames(&self, job_id: JobId) -> StoreResult<u32> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM frames WHERE job_id = $1 AND renders_wanted > 1")
                .bind(job_id)
                .fetch_one(self.pool())
                .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Frames with a render that passed its integrity checks and waits for
    /// comparison, oldest first.
    pub async fn frames_awaiting_comparison(&self) -> StoreResult<Vec<(JobId, FrameIndex)>> {
        Ok(sqlx::query_as(
            "SELECT DISTINCT job_id, frame_index FROM tasks WHERE state = $1 ORDER BY job_id, frame_index",
        )
        .bind(TaskState::Checked)
        .fetch_all(self.pool())
        .await?)
    }

    /// Claims one more render of a pending frame for `node`: a `running`
    /// task with `role` is created and the frame's state re-derived. `None`
    /// when the frame needs no render now (someone else claimed the last
    /// one, it is final) or `node` already holds one of its renders.
    pub async fn claim_render(
        &self,
        job_id: JobId,
        frame_index: FrameIndex,
        renderer: &Renderer,
        role: TaskRole,
        lease_until: i64,
    ) -> StoreResult<Option<TaskRow>> {
        let node = renderer.node;
        for _ in 0..CAS_RETRIES {
            let mut conn = self.pool().acquire().await?;
            let Some(frame) = load_frame(&mut conn, job_id, frame_index).await? else { return Ok(None) };
            if frame.state != FrameState::Pending {
                return Ok(None);
            }
            let tasks = load_tasks(&mut conn, job_id, frame_index).await?;
            if tasks.iter().any(|t| t.node == node && t.state.holds_render()) {
                return Ok(None);
            }
            drop(conn);
            let states = tasks.iter().map(|t| t.state).chain([TaskState::Running]);
            let state = FrameState::derive(frame.renders_wanted, states);
            let now = now_ms();
            let mut tx = self.pool().begin().await?;
            // The first statement writes, so SQLite takes its write lock
            // here; the version check makes the claim safe on PostgreSQL.
            let claimed = sqlx::query(
                "UPDATE frames SET state = $1, attempts = attempts + 1, version = version + 1, updated_at = $2 \
                 WHERE job_id = $3 AND frame_index = $4 AND version = $5",
            )
            .bind(state)
            .bind(now)
            .bind(job_id)
            .bind(frame_index)
            .bind(frame.version)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let task: TaskRow = sqlx::query_as(
                "INSERT INTO tasks (job_id, frame_index, node, owner, blender_version, opengl, role, state, \
                 lease_until, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *",
            )
            .bind(job_id)
            .bind(frame_index)
            .bind(Hex(node))
            .bind(Hex(renderer.owner))
            .bind(&renderer.blender_version)
            .bind(&renderer.opengl)
            .bind(role)
            .bind(TaskState::Running)
            .bind(lease_until)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Some(task));
        }
        Err(StoreError::Contended { job_id, frame_index: frame_index.get() })
    }

    /// Moves a task from `from` to `to` with the given column updates, then
    /// re-derives its frame, in one transaction. `None` when the task was
    /// not in `from`.
    async fn move_task(
        &self,
        task_id: TaskId,
        from: TaskState,
        to: TaskState,
        update: TaskUpdate<'_>,
    ) -> StoreResult<Option<TaskRow>> {
        debug_assert!(from.can_become(to), "{from} -> {to}");
        let mut tx = self.pool().begin().await?;
        let task: Option<TaskRow> = sqlx::query_as(
            "UPDATE tasks SET state = $1, \
             failure_code = COALESCE($2, failure_code), failure_message = COALESCE($3, failure_message), \
             deterministic = $4, output_hash = COALESCE($5, output_hash), signature = COALESCE($6, signature), \
             render_secs = COALESCE($7, render_secs), \
             finished_at = CASE WHEN $8 THEN COALESCE(finished_at, $9) ELSE finished_at END, \
             verdict_seq = CASE WHEN $10 THEN (SELECT COALESCE(MAX(verdict_seq), 0) + 1 FROM tasks) \
                           ELSE verdict_seq END \
             WHERE task_id = $11 AND state = $12 RETURNING *",
        )
        .bind(to)
        .bind(update.code)
        .bind(update.message)
        .bind(update.deterministic)
        .bind(update.output_hash)
        .bind(OptHex(update.signature.cloned()))
        .bind(update.render_secs)
        .bind(!matches!(to, TaskState::Checked | TaskState::Accepted | TaskState::Rejected))
        .bind(now_ms())
        .bind(matches!(to, TaskState::Accepted | TaskState::Rejected))
        .bind(task_id)
        .bind(from)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(task) = task else { return Ok(None) };
        rederive(&mut tx, task.job_id, task.frame_index).await?;
        tx.commit().await?;
        Ok(Some(task))
    }

    /// Ends a running task without a result (`failed`, `lost`,
    /// `cancelled`): its render is open again for another node. False when
    /// the task was no longer running.
    pub async fn end_task(&self, task_id: TaskId, end: &TaskEnd) -> StoreResult<bool> {
        let update = TaskUpdate {
            code: Some(&end.code),
            message: Some(&end.message),
            deterministic: end.deterministic,
            ..TaskUpdate::default()
        };
        Ok(self.move_task(task_id, TaskState::Running, end.state, update).await?.is_some())
    }

    /// Records that `node` is still working on its running task. False when
    /// the task is not `node`'s or not running.
    pub async fn record_progress(&self, task_id: TaskId, node: Address) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE tasks SET progress_at = $1 WHERE task_id = $2 AND node = $3 AND state = $4")
                .bind(now_ms())
                .bind(task_id)
                .bind(Hex(node))
                .bind(TaskState::Running)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a running task's output was uploaded with `hash`.
    pub async fn record_upload(&self, task_id: TaskId, hash: ContentHash) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tasks SET upload_hash = $1 WHERE task_id = $2 AND state = $3")
            .bind(hash)
            .bind(task_id)
            .bind(TaskState::Running)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a signed result: the task becomes `uploaded` and waits for the
    /// verifier. False when the task was no longer running.
    pub async fn record_result(
        &self,
        task_id: TaskId,
        output_hash: ContentHash,
        signature: &Bytes,
        render_secs: f64,
    ) -> StoreResult<bool> {
        let update = TaskUpdate {
            output_hash: Some(output_hash),
            signature: Some(signature),
            render_secs: Some(render_secs),
            ..TaskUpdate::default()
        };
        Ok(self.move_task(task_id, TaskState::Running, TaskState::Uploaded, update).await?.is_some())
    }

    /// The verifier's verdict on an uploaded result, numbered in the order
    /// given. A rejected render is never paid and is open again for another
    /// node. False when the task was not waiting for a verdict.
    pub async fn record_verdict(&self, task_id: TaskId, verdict: &Verdict) -> StoreResult<bool> {
        self.judge_task(task_id, TaskState::Uploaded, verdict).await
    }

    /// A verdict on a task in `from`: `uploaded` (judged on its own),
    /// `checked` (judged by comparison with other renders), or `accepted`
    /// (revoked: only a rejection). False when the task was not in `from`.
    pub async fn judge_task(&self, task_id: TaskId, from: TaskState, verdict: &Verdict) -> StoreResult<bool> {
        let to = verdict.task_state();
        if !from.can_become(to) {
            return Err(StoreError::TaskTransition { task_id, from, to });
        }
        let update = match verdict {
            Verdict::Accepted => TaskUpdate::default(),
            Verdict::Rejected { code, message } => {
                TaskUpdate { code: Some(code), message: Some(message), ..TaskUpdate::default() }
            }
        };
        Ok(self.move_task(task_id, from, to, update).await?.is_some())
    }

    /// An uploaded render of a sampled frame passed its integrity checks:
    /// it waits, `checked`, for the renders it is compared with.
    pub async fn record_check(&self, task_id: TaskId) -> StoreResult<bool> {
        let update = TaskUpdate::default();
        Ok(self.move_task(task_id, TaskState::Uploaded, TaskState::Checked, update).await?.is_some())
    }

    /// Takes every render of `node` in `job_id` but `except` that is not
    /// paid away from it (the node was proven to cheat): accepted-but-unpaid,
    /// checked and uploaded renders are rejected with `code`, running ones
    /// cancelled;
    /// their frames go back to the queue. Returns the cancelled running
    /// tasks, so the node can be told to stop them.
    pub async fn revoke_node_renders(
        &self,
        node: Address,
        job_id: JobId,
        except: Option<TaskId>,
        code: &str,
        message: &str,
    ) -> StoreResult<Vec<TaskRow>> {
        let tasks: Vec<TaskRow> = sqlx::query_as(
            "SELECT t.* FROM tasks t LEFT JOIN frame_payouts p \
             ON p.job_id = t.job_id AND p.frame_index = t.frame_index \
             WHERE t.node = $1 AND t.job_id = $2 AND p.tx_hash IS NULL AND t.state IN ($3, $4, $5, $6) \
             ORDER BY t.task_id",
        )
        .bind(Hex(node))
        .bind(job_id)
        .bind(TaskState::Running)
        .bind(TaskState::Uploaded)
        .bind(TaskState::Checked)
        .bind(TaskState::Accepted)
        .fetch_all(self.pool())
        .await?;
        let tasks: Vec<TaskRow> = tasks.into_iter().filter(|t| Some(t.task_id) != except).collect();
        let rejected = Verdict::Rejected { code: code.into(), message: message.into() };
        let mut cancelled = Vec::new();
        let mut per_frame: std::collections::BTreeMap<FrameIndex, u32> = std::collections::BTreeMap::new();
        for task in &tasks {
            *per_frame.entry(task.frame_index).or_default() += 1;
        }
        for task in tasks {
            if task.state == TaskState::Running {
                let end = TaskEnd {
                    state: TaskState::Cancelled,
                    code: code.into(),
                    message: message.into(),
                    deterministic: false,
                };
                if self.end_task(task.task_id, &end).await? {
                    cancelled.push(task);
                }
            } else {
                self.judge_task(task.task_id, task.state, &rejected).await?;
            }
        }
        // Arbitration renders a cheater's disagreement called for are no
        // longer needed once its renders are gone: a sampled frame goes back
        // to wanting two (more renders are asked for if the rest disagree).
        for (frame_index, revoked) in per_frame {
            let Some(frame) = self.frame(job_id, frame_index).await? else { continue };
            if frame.renders_wanted > 2 {
                let wanted = frame.renders_wanted.saturating_sub(revoked).max(2);
                self.set_renders_wanted(job_id, frame_index, wanted).await?;
            }
        }
        Ok(cancelled)
    }

    /// Fails a frame for good (no more attempts) and cancels its unfinished
    /// tasks, which are returned so their nodes can be told to stop.
    pub async fn fail_frame(
        &self,
        job_id: JobId,
        frame_index: FrameIndex,
        reason: &str,
    ) -> StoreResult<Option<Vec<TaskRow>>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let failed = sqlx::query(
            "UPDATE frames SET state = $1, failure = $2, version = version + 1, updated_at = $3 \
             WHERE job_id = $4 AND frame_index = $5 AND state NOT IN ($6, $1)",
        )
        .bind(FrameState::Failed)
        .bind(reason)
        .bind(now)
        .bind(job_id)
        .bind(frame_index)
        .bind(FrameState::Verified)
        .execute(&mut *tx)
        .await?;
        if failed.rows_affected() != 1 {
            return Ok(None);
        }
        let cancelled = sqlx::query_as(
            "UPDATE tasks SET state = $1, finished_at = COALESCE(finished_at, $2) \
             WHERE job_id = $3 AND frame_index = $4 AND state IN ($5, $6) RETURNING *",
        )
        .bind(TaskState::Cancelled)
        .bind(now)
        .bind(job_id)
        .bind(frame_index)
        .bind(TaskState::Running)
        .bind(TaskState::Uploaded)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(cancelled))
    }

    /// Fails every frame of a job that is not yet rendered (pending or
    /// rendering) and cancels the job's running tasks, which are returned so
    /// their nodes can be told to stop. Frames waiting for a verdict keep it.
    pub async fn fail_unfinished_frames(&self, job_id: JobId, reason: &str) -> StoreResult<Vec<TaskRow>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE frames SET state = $1, failure = $2, version = version + 1, updated_at = $3 \
             WHERE job_id = $4 AND state IN ($5, $6)",
        )
        .bind(FrameState::Failed)
        .bind(reason)
        .bind(now)
        .bind(job_id)
        .bind(FrameState::Pending)
        .bind(FrameState::Rendering)
        .execute(&mut *tx)
        .await?;
        let cancelled: Vec<TaskRow> = sqlx::query_as(
            "UPDATE tasks SET state = $1, finished_at = $2 WHERE job_id = $3 AND state = $4 RETURNING *",
        )
        .bind(TaskState::Cancelled)
        .bind(now)
        .bind(job_id)
        .bind(TaskState::Running)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    /// One task.
    pub async fn task(&self, task_id: TaskId) -> StoreResult<Option<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The attempts at one frame, oldest first.
    pub async fn frame_tasks(&self, job_id: JobId, frame_index: FrameIndex) -> StoreResult<Vec<TaskRow>> {
        load_tasks(&mut *self.pool().acquire().await?, job_id, frame_index).await
    }

    /// Every attempt at a job's frames, by frame then age.
    pub async fn job_tasks(&self, job_id: JobId) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE job_id = $1 ORDER BY frame_index, task_id")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Tasks in a state, oldest first (`running`: the load the matchmaker
    /// balances; `uploaded`: results waiting for the verifier).
    pub async fn tasks_in_state(&self, state: TaskState) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE state = $1 ORDER BY task_id")
            .bind(state)
            .fetch_all(self.pool())
            .await?)
    }

    /// A node's tasks in a state, oldest first.
    pub async fn node_tasks(&self, node: Address, state: TaskState) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE node = $1 AND state = $2 ORDER BY task_id")
            .bind(Hex(node))
            .bind(state)
            .fetch_all(self.pool())
            .await?)
    }

    /// Tasks judged after verdict number `after`, in the order they were
    /// judged: how a gateway in another process follows the verifier.
    pub async fn judged_tasks_after(&self, after: i64) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as("SELECT * FROM tasks WHERE verdict_seq > $1 ORDER BY verdict_seq")
            .bind(after)
            .fetch_all(self.pool())
            .await?)
    }

    /// The number of the latest verdict (0 when there is none).
    pub async fn last_verdict_seq(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(verdict_seq), 0) FROM tasks")
            .fetch_one(self.pool())
            .await?)
    }
}

/// Columns a task transition may set (`None` leaves a column as it is).
#[derive(Debug, Default)]
struct TaskUpdate<'a> {
    code: Option<&'a str>,
    message: Option<&'a str>,
    deterministic: bool,
    output_hash: Option<ContentHash>,
    signature: Option<&'a Bytes>,
    render_secs: Option<f64>,
}

impl Store {
    /// Deterministic failures reported on rendering jobs that nobody has
    /// probed yet, oldest first.
    pub async fn unconfirmed_failures(&self) -> StoreResult<Vec<TaskRow>> {
        Ok(sqlx::query_as(
            "SELECT t.* FROM tasks t JOIN jobs j ON j.job_id = t.job_id \
             WHERE t.state = $1 AND t.deterministic AND t.confirmed IS NULL AND j.state = $2 ORDER BY t.task_id",
        )
        .bind(TaskState::Failed)
        .bind(JobState::Rendering)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the verifier's probe of the deterministic failure `code` in
    /// a job: every unprobed report of it is confirmed or refuted.
    pub async fn record_confirmation(&self, job_id: JobId, code: &str, confirmed: bool) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE tasks SET confirmed = $1 WHERE job_id = $2 AND failure_code = $3 AND deterministic \
             AND confirmed IS NULL",
        )
        .bind(confirmed)
        .bind(job_id)
        .bind(code)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Sets how many accepted renders a frame needs (1, or more when it is
    /// sampled for verification) and re-derives its state. False when the
    /// frame is final.
    pub async fn set_renders_wanted(
        &self,
        job_id: JobId,
        frame_index: FrameIndex,
        wanted: u32,
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE frames SET renders_wanted = $1, version = version + 1 \
             WHERE job_id = $2 AND frame_index = $3 AND state NOT IN ($4, $5)",
        )
        .bind(i64::from(wanted.max(1)))
        .bind(job_id)
        .bind(frame_index)
        .bind(FrameState::Verified)
        .bind(FrameState::Failed)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        rederive(&mut tx, job_id, frame_index).await?;
        tx.commit().await?;
        Ok(true)
    }
}
