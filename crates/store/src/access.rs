//! Who may read what: artists' sessions, the `.blend` files each artist
//! uploaded, the previews of verified frames, and the gateway's secrets.
//!
//! A session is stored as the hash of its bearer token, so a copy of the
//! database does not sign anyone in.

use alloy_primitives::{Address, B256};
use lumen_protocol::{ContentHash, JobId, TaskState};

use crate::{Hex, JobRow, Store, StoreResult, now_ms};

/// Aggregates anyone may see (`GET /api/v1/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregates {
    /// Jobs by state (wire form of the state).
    pub jobs_by_state: Vec<(String, u64)>,
    /// Distinct artists with a job.
    pub artists: u64,
    /// Frames verified.
    pub frames_verified: u64,
    /// Frames paid on-chain (mirror).
    pub frames_paid: u64,
}

impl Store {
    /// The secret `name`, created (32 random bytes) on first use. Every
    /// gateway on this database reads the same value.
    pub async fn secret(&self, name: &str) -> StoreResult<B256> {
        let fresh = B256::from(rand::random::<[u8; 32]>());
        sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(Hex(fresh))
            .execute(self.pool())
            .await?;
        let (Hex(value),): (Hex<B256>,) = sqlx::query_as("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        Ok(value)
    }

    /// Marks a sign-in nonce used until `expires_at_ms`; false if it was
    /// used before.
    pub async fn use_nonce(&self, nonce: &str, expires_at_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO used_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Opens a session for `address` whose token hashes to `token_hash`.
    pub async fn create_session(
        &self,
        token_hash: B256,
        address: Address,
        expires_at_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, address, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(Hex(token_hash))
        .bind(Hex(address))
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The wallet and end (ms) of the unexpired session whose token hashes
    /// to `token_hash`.
    pub async fn session(&self, token_hash: B256) -> StoreResult<Option<(Address, i64)>> {
        let row: Option<(Hex<Address>, i64)> = sqlx::query_as(
            "SELECT address, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(Hex(token_hash))
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(Hex(address), expires)| (address, expires)))
    }

    /// Ends a session (sign-out); false if there was none.
    pub async fn end_session(&self, token_hash: B256) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(Hex(token_hash))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets expired sessions and nonces; how many rows went.
    pub async fn prune_sessions(&self) -> StoreResult<u64> {
        let now = now_ms();
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(self.pool()).await?;
        let nonces = sqlx::query("DELETE FROM used_nonces WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(sessions.rows_affected() + nonces.rows_affected())
    }

    /// Records that `artist` uploaded the `.blend` `blend_hash`.
    pub async fn add_blend_owner(&self, blend_hash: ContentHash, artist: Address) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO blend_owners (blend_hash, artist, uploaded_at) VALUES ($1, $2, $3) \
             ON CONFLICT (blend_hash, artist) DO NOTHING",
        )
        .bind(blend_hash)
        .bind(Hex(artist))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether `artist` uploaded the `.blend` `blend_hash`.
    pub async fn owns_blend(&self, blend_hash: ContentHash, artist: Address) -> StoreResult<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM blend_owners WHERE blend_hash = $1 AND artist = $2")
                .bind(blend_hash)
                .bind(Hex(artist))
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some())
    }

    /// Whether `node` runs a task of a job that renders the `.blend`
    /// `blend_hash` (and so may download it).
    pub async fn node_renders_blend(&self, node: Address, blend_hash: ContentHash) -> StoreResult<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM tasks t JOIN jobs j ON j.job_id = t.job_id \
             WHERE t.node = $1 AND t.state = $2 AND j.blend_hash = $3 LIMIT 1",
        )
        .bind(Hex(node))
        .bind(TaskState::Running)
        .bind(blend_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// `artist`'s jobs, newest first.
    pub async fn jobs_of(&self, artist: Address, limit: i64) -> StoreResult<Vec<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE artist = $1 ORDER BY job_id DESC LIMIT $2")
            .bind(Hex(artist))
            .bind(limit)
            .fetch_all(self.pool())
            .await?)
    }

    /// A stamp of everything a job's view shows (its state, frames, renders,
    /// previews and mirrored chain events): it changes whenever the view
    /// may have, so live views rebuild only then.
    pub async fn job_stamp(&self, job_id: JobId) -> StoreResult<String> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE((SELECT updated_at FROM jobs WHERE job_id = $1), 0) \
             || '-' || COALESCE((SELECT MAX(updated_at) FROM frames WHERE job_id = $1), 0) \
             || '-' || (SELECT COUNT(*) FROM tasks WHERE job_id = $1) \
             || '-' || COALESCE((SELECT MAX(COALESCE(finished_at, created_at)) FROM tasks WHERE job_id = $1), 0) \
             || '-' || (SELECT COUNT(*) FROM tasks t JOIN previews p ON p.output_hash = t.output_hash \
                        WHERE t.job_id = $1) \
             || '-' || (SELECT COUNT(*) FROM chain_events WHERE job_id = $1)",
        )
        .bind(job_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Stamps of the whole network's jobs and of the chain mirror, for the
    /// dashboard's change feed: `(jobs, chain)`. The jobs stamp moves when
    /// any job or frame is written or a render starts or ends; the chain
    /// stamp when an event is mirrored or the indexer reads further. Every
    /// part is an indexed maximum (migration 0013), so it costs the same
    /// however many jobs there are.
    pub async fn network_stamps(&self) -> StoreResult<(String, String)> {
        Ok(sqlx::query_as(
            "SELECT COALESCE((SELECT MAX(updated_at) FROM jobs), 0) \
             || '-' || COALESCE((SELECT MAX(updated_at) FROM frames), 0) \
             || '-' || COALESCE((SELECT MAX(task_id) FROM tasks), 0) \
             || '-' || COALESCE((SELECT MAX(finished_at) FROM tasks), 0), \
             COALESCE((SELECT block_number || '.' || log_index || '.' || entry FROM chain_events \
                       ORDER BY block_number DESC, log_index DESC, entry DESC LIMIT 1), '') \
             || '-' || COALESCE((SELECT SUM(block_number) FROM indexer_cursor), 0)",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// The artist of job `job_id`, if it is registered.
    pub async fn job_artist(&self, job_id: JobId) -> StoreResult<Option<Address>> {
        let row: Option<(Hex<Address>,)> = sqlx::query_as("SELECT artist FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(Hex(a),)| a))
    }

    /// Records the preview of the output `output_hash`.
    pub async fn record_preview(
        &self,
        output_hash: ContentHash,
        preview_hash: ContentHash,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO previews (output_hash, preview_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (output_hash) DO NOTHING",
        )
        .bind(output_hash)
        .bind(preview_hash)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The preview of the output `output_hash`, if one was made.
    pub async fn preview(&self, output_hash: ContentHash) -> StoreResult<Option<ContentHash>> {
        let row: Option<(ContentHash,)> =
            sqlx::query_as("SELECT preview_hash FROM previews WHERE output_hash = $1")
                .bind(output_hash)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(h,)| h))
    }

    /// The outputs of job `job_id`'s frames that have a preview.
    pub async fn previewed(&self, job_id: JobId) -> StoreResult<Vec<ContentHash>> {
        let rows: Vec<(ContentHash,)> = sqlx::query_as(
            "SELECT p.output_hash FROM previews p JOIN frames f ON f.output_hash = p.output_hash \
             WHERE f.job_id = $1",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(h,)| h).collect())
    }

    /// What anyone may see of the network's work.
    pub async fn aggregates(&self) -> StoreResult<Aggregates> {
        let by_state: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?;
        let (artists,): (i64,) =
            sqlx::query_as("SELECT COUNT(DISTINCT artist) FROM jobs").fetch_one(self.pool()).await?;
        let (verified,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM frames WHERE state = $1")
            .bind(lumen_protocol::FrameState::Verified)
            .fetch_one(self.pool())
            .await?;
        let (paid,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM frame_payouts").fetch_one(self.pool()).await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Aggregates {
            jobs_by_state: by_state.into_iter().map(|(s, n)| (s, count(n))).collect(),
            artists: count(artists),
            frames_verified: count(verified),
            frames_paid: count(paid),
        })
    }
}
