//! What the network knows about each node's honesty, derived from stored
//! renders: agreeing samples, lost votes, rejections; and the nodes banned
//! for proven cheating, with the state of their on-chain slash.

use std::collections::HashSet;

use alloy_primitives::{Address, B256};
use lumen_protocol::{ContentHash, FrameIndex, JobId, SlashState, TaskRole, TaskState, Wei};
use serde::Serialize;

use crate::{Hex, OptHex, Store, StoreResult, now_ms};

/// Verdict code of a render outvoted by independent renders of its frame.
pub const OUTVOTED: &str = "outvoted";
/// Verdict code of a render taken back because its node was proven to cheat.
pub const REVOKED: &str = "revoked";

/// A node's record, counted from its renders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NodeRecord {
    /// The node key.
    #[sqlx(try_from = "Hex<Address>")]
    pub node: Address,
    /// Renders accepted.
    #[sqlx(try_from = "i64")]
    pub accepted: u32,
    /// Accepted renders of sampled frames: independent renders agreed.
    #[sqlx(try_from = "i64")]
    pub agreed_samples: u32,
    /// Renders rejected by the integrity checks.
    #[sqlx(try_from = "i64")]
    pub rejected: u32,
    /// Renders outvoted by independent renders (proven wrong).
    #[sqlx(try_from = "i64")]
    pub outvoted: u32,
    /// Failed renders (node-reported or invalid results).
    #[sqlx(try_from = "i64")]
    pub failed: u32,
    /// Renders lost (silence, disconnection, lease overrun).
    #[sqlx(try_from = "i64")]
    pub lost: u32,
}

/// A node banned for proven cheating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BanRow {
    /// The node key.
    #[sqlx(try_from = "Hex<Address>")]
    pub node: Address,
    /// The owner it was bound to.
    #[sqlx(try_from = "OptHex<Address>")]
    pub owner: Option<Address>,
    /// Why.
    pub reason: String,
    /// The job it cheated on.
    pub job_id: JobId,
    /// The frame whose vote proved it.
    pub frame_index: FrameIndex,
    /// blake3 of the evidence bundle (a blob; its `B256` goes on-chain).
    pub evidence_hash: ContentHash,
    /// When (ms).
    pub created_at: i64,
    /// The on-chain slash.
    pub slash_state: SlashState,
    /// The slash transaction.
    #[sqlx(try_from = "OptHex<B256>")]
    pub slash_tx: Option<B256>,
    /// Amount slashed.
    pub slashed_amount: Option<Wei>,
    /// Why the slash is parked (`slash_state` `parked`).
    pub slash_failure: Option<String>,
}

/// A ban to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBan {
    /// The node key.
    pub node: Address,
    /// Its owner.
    pub owner: Option<Address>,
    /// Why.
    pub reason: String,
    /// The job.
    pub job_id: JobId,
    /// The frame whose vote proved it.
    pub frame_index: FrameIndex,
    /// The evidence bundle's hash.
    pub evidence_hash: ContentHash,
}

impl Store {
    /// Every node's record, from its renders.
    pub async fn node_records(&self) -> StoreResult<Vec<NodeRecord>> {
        self.records(None).await
    }

    /// One node's record (all zero for a node with no renders).
    pub async fn node_record(&self, node: Address) -> StoreResult<NodeRecord> {
        Ok(self
            .records(Some(node))
            .await?
            .into_iter()
            .next()
            .unwrap_or(NodeRecord { node, ..NodeRecord::default() }))
    }

    async fn records(&self, node: Option<Address>) -> StoreResult<Vec<NodeRecord>> {
        Ok(sqlx::query_as(
            "SELECT t.node AS node, \
             SUM(CASE WHEN t.state = $1 THEN 1 ELSE 0 END) AS accepted, \
             SUM(CASE WHEN t.state = $1 AND f.renders_wanted > 1 THEN 1 ELSE 0 END) AS agreed_samples, \
             SUM(CASE WHEN t.state = $2 AND COALESCE(t.failure_code, '') NOT IN ($3, $4) THEN 1 ELSE 0 END) \
                 AS rejected, \
             SUM(CASE WHEN t.state = $2 AND t.failure_code = $3 THEN 1 ELSE 0 END) AS outvoted, \
             SUM(CASE WHEN t.state = $5 THEN 1 ELSE 0 END) AS failed, \
             SUM(CASE WHEN t.state = $6 THEN 1 ELSE 0 END) AS lost \
             FROM tasks t JOIN frames f ON f.job_id = t.job_id AND f.frame_index = t.frame_index \
             WHERE $7 IS NULL OR t.node = $7 \
             GROUP BY t.node ORDER BY t.node",
        )
        .bind(TaskState::Accepted)
        .bind(TaskState::Rejected)
        .bind(OUTVOTED)
        .bind(REVOKED)
        .bind(TaskState::Failed)
        .bind(TaskState::Lost)
        .bind(OptHex(node))
        .fetch_all(self.pool())
        .await?)
    }

    /// Per node: first renders in flight (running or waiting for a
    /// verdict) of frames that are not sampled, i.e. work nobody else will
    /// check.
    pub async fn unverified_in_flight(&self) -> StoreResult<std::collections::HashMap<Address, u32>> {
        let rows: Vec<(Hex<Address>, i64)> = sqlx::query_as(
            "SELECT t.node, COUNT(*) FROM tasks t JOIN frames f \
             ON f.job_id = t.job_id AND f.frame_index = t.frame_index \
             WHERE t.role = $1 AND t.state IN ($2, $3) AND f.renders_wanted = 1 GROUP BY t.node",
        )
        .bind(TaskRole::Primary)
        .bind(TaskState::Running)
        .bind(TaskState::Uploaded)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(node, n)| (node.0, u32::try_from(n).unwrap_or(u32::MAX))).collect())
    }

    /// Bans a node for proven cheating; its slash is pending. False when it
    /// was banned already (the first evidence stands).
    pub async fn ban_node(&self, ban: &NewBan) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO node_bans (node, owner, reason, job_id, frame_index, evidence_hash, created_at, \
             slash_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (node) DO NOTHING",
        )
        .bind(Hex(ban.node))
        .bind(OptHex(ban.owner))
        .bind(&ban.reason)
        .bind(ban.job_id)
        .bind(ban.frame_index)
        .bind(ban.evidence_hash)
        .bind(now_ms())
        .bind(SlashState::Pending)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every ban, oldest first.
    pub async fn bans(&self) -> StoreResult<Vec<BanRow>> {
        Ok(sqlx::query_as("SELECT * FROM node_bans ORDER BY created_at, node").fetch_all(self.pool()).await?)
    }

    /// The banned node keys.
    pub async fn banned_nodes(&self) -> StoreResult<HashSet<Address>> {
        Ok(self.bans().await?.into_iter().map(|b| b.node).collect())
    }

    /// Whether `node` is banned.
    pub async fn is_banned(&self, node: Address) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM node_bans WHERE node = $1")
            .bind(Hex(node))
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// Records how a pending slash ended. False when it was not pending.
    pub async fn record_slash(
        &self,
        node: Address,
        state: SlashState,
        tx: Option<B256>,
        amount: Option<Wei>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE node_bans SET slash_state = $1, slash_tx = $2, slashed_amount = $3 \
             WHERE node = $4 AND slash_state = $5",
        )
        .bind(state)
        .bind(OptHex(tx))
        .bind(amount)
        .bind(Hex(node))
        .bind(SlashState::Pending)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
