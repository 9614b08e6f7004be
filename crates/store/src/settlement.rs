//! Settlement the indexer parked: a settle or slash whose revert cannot
//! pass as it is, and nodes whose frames of a job can never be paid.

use alloy_primitives::Address;
use lumen_protocol::{JobId, SlashState};

use crate::{Hex, Store, StoreResult, now_ms};

/// A job whose settlement is parked.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ParkRow {
    /// The job.
    pub job_id: JobId,
    /// The decoded revert.
    pub reason: String,
    /// The job's mirrored chain events when it was parked.
    #[sqlx(try_from = "i64")]
    pub events: u64,
    /// The block of the last of them (0: none).
    #[sqlx(try_from = "i64")]
    pub last_block: u64,
    /// When (ms).
    pub parked_at: i64,
}

/// Where a job's mirrored chain events stand: a park holds while this does
/// not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark {
    /// How many events of the job are mirrored.
    pub events: u64,
    /// The block of the last one (0: none).
    pub last_block: u64,
}

impl Store {
    /// Where the mirrored chain events of `job_id` stand.
    pub async fn event_mark(&self, job_id: JobId) -> StoreResult<EventMark> {
        let (events, last_block): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MAX(block_number) FROM chain_events WHERE job_id = $1")
                .bind(job_id)
                .fetch_one(self.pool())
                .await?;
        Ok(EventMark {
            events: u64::try_from(events).unwrap_or(0),
            last_block: u64::try_from(last_block.unwrap_or(0)).unwrap_or(0),
        })
    }

    /// Parks the settlement of `job_id` with the decoded `reason`, at the
    /// job's current event mark (a later park replaces an earlier one).
    pub async fn park_settlement(&self, job_id: JobId, reason: &str) -> StoreResult<()> {
        let mark = self.event_mark(job_id).await?;
        sqlx::query(
            "INSERT INTO settlement_parks (job_id, reason, events, last_block, parked_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO UPDATE SET reason = $2, events = $3, \
             last_block = $4, parked_at = $5",
        )
        .bind(job_id)
        .bind(reason)
        .bind(i64::try_from(mark.events).unwrap_or(i64::MAX))
        .bind(i64::try_from(mark.last_block).unwrap_or(i64::MAX))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The park of `job_id`'s settlement, if any.
    pub async fn settlement_park(&self, job_id: JobId) -> StoreResult<Option<ParkRow>> {
        Ok(sqlx::query_as("SELECT * FROM settlement_parks WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Every parked settlement, oldest first.
    pub async fn settlement_parks(&self) -> StoreResult<Vec<ParkRow>> {
        Ok(sqlx::query_as("SELECT * FROM settlement_parks ORDER BY parked_at").fetch_all(self.pool()).await?)
    }

    /// Unparks `job_id`'s settlement; false when it was not parked.
    pub async fn unpark_settlement(&self, job_id: JobId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM settlement_parks WHERE job_id = $1")
            .bind(job_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the escrow will never pay `node` for frames of
    /// `job_id`, and why; true when it is new.
    pub async fn mark_unpayable(&self, job_id: JobId, node: Address, reason: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO unpayable_nodes (job_id, node, reason, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(job_id)
        .bind(Hex(node))
        .bind(reason)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Nodes the escrow will never pay for frames of `job_id`, with why.
    pub async fn unpayable_nodes(&self, job_id: JobId) -> StoreResult<Vec<(Address, String)>> {
        let rows: Vec<(Hex<Address>, String)> = sqlx::query_as(
            "SELECT node, reason FROM unpayable_nodes WHERE job_id = $1 ORDER BY created_at, node",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(node, reason)| (node.0, reason)).collect())
    }

    /// Parks a pending slash of `node` with the decoded `reason`; it is
    /// not tried again. True when the slash was pending.
    pub async fn park_slash(&self, node: Address, reason: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE node_bans SET slash_state = $1, slash_failure = $2 WHERE node = $3 AND slash_state = $4",
        )
        .bind(SlashState::Parked)
        .bind(reason)
        .bind(Hex(node))
        .bind(SlashState::Pending)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a parked slash of `node` back to pending; true when it was parked.
    pub async fn unpark_slash(&self, node: Address) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE node_bans SET slash_state = $1, slash_failure = NULL WHERE node = $2 AND slash_state = $3",
        )
        .bind(SlashState::Pending)
        .bind(Hex(node))
        .bind(SlashState::Parked)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
