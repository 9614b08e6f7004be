//! The chain mirror: every escrow and registry event, typed, in chain order;
//! the per-frame payouts derived from `FramesReleased` and
//! `VerificationsReleased`; and how far each
//! mirror has read. All of it is rebuildable from the chain.

use alloy_primitives::{Address, B256, U256};
use lumen_protocol::{
    ChainEvent, ChainEventKind, FrameIndex, JobId, MirroredEvent, Wei,
    event::{FrameWord, split_release},
    explorer::JobToken,
};

use crate::{Hex, OptHex, Store, StoreResult};

/// One frame's payout, derived from a `FramesReleased` event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PayoutRow {
    /// Job id.
    pub job_id: JobId,
    /// Frame index.
    pub frame_index: FrameIndex,
    /// Node that rendered it.
    #[sqlx(try_from = "Hex<Address>")]
    pub node: Address,
    /// Owner credited.
    #[sqlx(try_from = "Hex<Address>")]
    pub owner: Address,
    /// Gross amount for this frame.
    pub amount: Wei,
    /// Protocol fee taken from it.
    pub fee: Wei,
    /// The release transaction.
    #[sqlx(try_from = "Hex<B256>")]
    pub tx_hash: B256,
    /// Its block.
    #[sqlx(try_from = "i64")]
    pub block_number: u64,
    /// The block's timestamp, unix seconds.
    #[sqlx(try_from = "i64")]
    pub block_time: u64,
}

/// How far a mirror has read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cursor {
    /// Mirror name.
    pub name: String,
    /// Last block fully applied.
    #[sqlx(try_from = "i64")]
    pub block_number: u64,
    /// Its hash.
    #[sqlx(try_from = "Hex<B256>")]
    pub block_hash: B256,
}

/// A `chain_events` row: one typed column per event field (see the
/// migration for which event uses which column).
#[derive(Debug, Default, sqlx::FromRow)]
struct EventRow {
    #[sqlx(try_from = "i64")]
    block_number: u64,
    #[sqlx(try_from = "i64")]
    log_index: u64,
    #[sqlx(try_from = "i64")]
    entry: u32,
    #[sqlx(try_from = "Hex<B256>")]
    block_hash: B256,
    #[sqlx(try_from = "i64")]
    block_time: u64,
    #[sqlx(try_from = "Hex<B256>")]
    tx_hash: B256,
    kind: Option<ChainEventKind>,
    job_id: Option<JobId>,
    #[sqlx(try_from = "OptHex<Address>")]
    node: Option<Address>,
    #[sqlx(try_from = "OptHex<Address>")]
    account: Option<Address>,
    #[sqlx(try_from = "OptHex<Address>")]
    owner: Option<Address>,
    #[sqlx(try_from = "OptHex<Address>")]
    token: Option<Address>,
    amount: Option<Wei>,
    fee: Option<Wei>,
    total: Option<Wei>,
    price: Option<Wei>,
    #[sqlx(try_from = "OptHex<B256>")]
    hash: Option<B256>,
    frame_count: Option<i64>,
    verifications: Option<i64>,
    at_time: Option<i64>,
    opened_at: Option<i64>,
    fee_bps: Option<i64>,
    word_index: Option<i64>,
    #[sqlx(try_from = "OptHex<B256>")]
    bits: Option<B256>,
    name: Option<String>,
}

/// A job's `JobOpened` token column.
#[derive(Debug, sqlx::FromRow)]
struct JobTokenRow {
    job_id: JobId,
    #[sqlx(try_from = "OptHex<Address>")]
    token: Option<Address>,
}

impl JobTokenRow {
    fn into_job_token(self) -> Option<JobToken> {
        Some(JobToken { job_id: self.job_id, token: self.token? })
    }
}

/// A stored event that does not decode back (a row written by a bug or by hand).
#[derive(Debug, thiserror::Error)]
#[error("mirrored event at block {block} log {log} is missing its {field}")]
pub struct BadEventRow {
    block: u64,
    log: u64,
    field: &'static str,
}

impl EventRow {
    fn from_event(e: &MirroredEvent) -> Self {
        let mut row = Self {
            block_number: e.block_number,
            log_index: e.log_index,
            entry: e.entry,
            block_time: e.block_time,
            block_hash: e.block_hash,
            tx_hash: e.tx_hash,
            kind: Some(e.event.kind()),
            job_id: e.event.job_id(),
            amount: e.event.amount(),
            ..Self::default()
        };
        let unix = |t: u64| Some(i64::try_from(t).unwrap_or(i64::MAX));
        match &e.event {
            ChainEvent::JobOpened {
                artist,
                spec_hash,
                token,
                price_per_frame,
                frame_count,
                verifications,
                deadline,
                opened_at,
                fee_bps,
                ..
            } => {
                row.account = Some(*artist);
                row.hash = Some(*spec_hash);
                row.token = Some(*token);
                row.price = Some(*price_per_frame);
                row.frame_count = Some(i64::from(*frame_count));
                row.verifications = Some(i64::from(*verifications));
                row.at_time = unix(*deadline);
                row.opened_at = unix(*opened_at);
                row.fee_bps = Some(i64::from(*fee_bps));
            }
            ChainEvent::FramesReleased { node, owner, frames, fee, .. }
            | ChainEvent::VerificationsReleased { node, owner, frames, fee, .. } => {
                row.node = Some(*node);
                row.account = Some(*owner);
                row.fee = Some(*fee);
                row.word_index = Some(i64::from(frames.index));
                row.bits = Some(B256::from(frames.bits));
            }
            ChainEvent::JobCancelled { artist, refundable_at, .. } => {
                row.account = Some(*artist);
                row.at_time = unix(*refundable_at);
            }
            ChainEvent::JobRefunded { artist, .. } => row.account = Some(*artist),
            ChainEvent::CreditsWithdrawn { account, token, .. } => {
                row.account = Some(*account);
                row.token = Some(*token);
            }
            ChainEvent::FeesWithdrawn { treasury, token, .. } => {
                row.account = Some(*treasury);
                row.token = Some(*token);
            }
            ChainEvent::NodeRegistered { node, owner, .. }
            | ChainEvent::StakeWithdrawn { node, owner, .. } => {
                row.node = Some(*node);
                row.account = Some(*owner);
            }
            ChainEvent::NodeDeregistered { node, owner, available_at, .. }
            | ChainEvent::UnstakeRequested { node, owner, available_at, .. } => {
                row.node = Some(*node);
                row.account = Some(*owner);
                row.at_time = unix(*available_at);
            }
            ChainEvent::NodeSlashed { node, owner, recipient, evidence, .. } => {
                row.node = Some(*node);
                row.account = Some(*recipient);
                row.owner = Some(*owner);
                row.hash = Some(*evidence);
            }
            ChainEvent::StakeAdded { node, owner, stake, .. } => {
                row.node = Some(*node);
                row.account = Some(*owner);
                row.total = Some(*stake);
            }
            ChainEvent::ClaimableWithdrawn { account, .. } => row.account = Some(*account),
            ChainEvent::Admin { name } => row.name = Some(name.clone()),
        }
        row
    }

    fn into_event(self) -> Result<MirroredEvent, BadEventRow> {
        let (block, log) = (self.block_number, self.log_index);
        let need = |field: &'static str| BadEventRow { block, log, field };
        let kind = self.kind.ok_or_else(|| need("kind"))?;
        let job_id = || self.job_id.ok_or_else(|| need("job_id"));
        let node = || self.node.ok_or_else(|| need("node"));
        let account = || self.account.ok_or_else(|| need("account"));
        let amount = || self.amount.ok_or_else(|| need("amount"));
        let token = || self.token.ok_or_else(|| need("token"));
        let time = || self.at_time.and_then(|t| u64::try_from(t).ok()).ok_or_else(|| need("at_time"));
        let event = match kind {
            ChainEventKind::JobOpened => ChainEvent::JobOpened {
                job_id: job_id()?,
                artist: account()?,
                spec_hash: self.hash.ok_or_else(|| need("hash"))?,
                token: token()?,
                price_per_frame: self.price.ok_or_else(|| need("price"))?,
                frame_count: self
                    .frame_count
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| need("frame_count"))?,
                verifications: self
                    .verifications
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| need("verifications"))?,
                deadline: time()?,
                opened_at: self
                    .opened_at
                    .and_then(|t| u64::try_from(t).ok())
                    .ok_or_else(|| need("opened_at"))?,
                amount: amount()?,
                fee_bps: self.fee_bps.and_then(|n| u16::try_from(n).ok()).ok_or_else(|| need("fee_bps"))?,
            },
            ChainEventKind::FramesReleased | ChainEventKind::VerificationsReleased => {
                let word =
                    self.word_index.and_then(|w| u32::try_from(w).ok()).ok_or_else(|| need("word_index"))?;
                let bits = self.bits.ok_or_else(|| need("bits"))?;
                let (job_id, node, owner) = (job_id()?, node()?, account()?);
                let frames = FrameWord { index: word, bits: U256::from_be_bytes(bits.0) };
                let (amount, fee) = (amount()?, self.fee.ok_or_else(|| need("fee"))?);
                if kind == ChainEventKind::FramesReleased {
                    ChainEvent::FramesReleased { job_id, node, owner, frames, amount, fee }
                } else {
                    ChainEvent::VerificationsReleased { job_id, node, owner, frames, amount, fee }
                }
            }
            ChainEventKind::JobCancelled => {
                ChainEvent::JobCancelled { job_id: job_id()?, artist: account()?, refundable_at: time()? }
            }
            ChainEventKind::JobRefunded => {
                ChainEvent::JobRefunded { job_id: job_id()?, artist: account()?, amount: amount()? }
            }
            ChainEventKind::CreditsWithdrawn => {
                ChainEvent::CreditsWithdrawn { account: account()?, token: token()?, amount: amount()? }
            }
            ChainEventKind::FeesWithdrawn => {
                ChainEvent::FeesWithdrawn { treasury: account()?, token: token()?, amount: amount()? }
            }
            ChainEventKind::NodeRegistered => {
                ChainEvent::NodeRegistered { node: node()?, owner: account()?, stake: amount()? }
            }
            ChainEventKind::NodeDeregistered => ChainEvent::NodeDeregistered {
                node: node()?,
                owner: account()?,
                unbonding: amount()?,
                available_at: time()?,
            },
            ChainEventKind::NodeSlashed => ChainEvent::NodeSlashed {
                node: node()?,
                owner: self.owner.ok_or_else(|| need("owner"))?,
                recipient: account()?,
                amount: amount()?,
                evidence: self.hash.ok_or_else(|| need("hash"))?,
            },
            ChainEventKind::StakeAdded => ChainEvent::StakeAdded {
                node: node()?,
                owner: account()?,
                amount: amount()?,
                stake: self.total.ok_or_else(|| need("total"))?,
            },
            ChainEventKind::UnstakeRequested => ChainEvent::UnstakeRequested {
                node: node()?,
                owner: account()?,
                amount: amount()?,
                available_at: time()?,
            },
            ChainEventKind::StakeWithdrawn => {
                ChainEvent::StakeWithdrawn { node: node()?, owner: account()?, amount: amount()? }
            }
            ChainEventKind::ClaimableWithdrawn => {
                ChainEvent::ClaimableWithdrawn { account: account()?, amount: amount()? }
            }
            ChainEventKind::Admin => {
                ChainEvent::Admin { name: self.name.clone().ok_or_else(|| need("name"))? }
            }
        };
        Ok(MirroredEvent {
            block_number: block,
            log_index: log,
            entry: self.entry,
            block_hash: self.block_hash,
            block_time: self.block_time,
            tx_hash: self.tx_hash,
            event,
        })
    }
}

/// The per-frame payouts a mirrored event implies: of frames
/// (`FramesReleased`) or of verification renders (`VerificationsReleased`);
/// none for any other event.
pub fn payouts_of(e: &MirroredEvent) -> Vec<PayoutRow> {
    let (ChainEvent::FramesReleased { job_id, node, owner, frames, amount, fee }
    | ChainEvent::VerificationsReleased { job_id, node, owner, frames, amount, fee }) = &e.event
    else {
        return Vec::new();
    };
    frames
        .frames()
        .zip(split_release(*amount, *fee, frames.len()))
        .map(|(frame_index, (amount, fee))| PayoutRow {
            job_id: *job_id,
            frame_index,
            node: *node,
            owner: *owner,
            amount,
            fee,
            tx_hash: e.tx_hash,
            block_number: e.block_number,
            block_time: e.block_time,
        })
        .collect()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Stores a batch of mirrored events, the payouts they imply, and the
    /// new cursor, atomically. Events already stored are skipped.
    pub async fn apply_chain_batch(&self, events: &[MirroredEvent], cursor: &Cursor) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        for e in events {
            let r = EventRow::from_event(e);
            sqlx::query(
                "INSERT INTO chain_events (block_number, log_index, block_hash, tx_hash, kind, job_id, node, account, \
                 owner, token, amount, fee, total, price, hash, frame_count, at_time, fee_bps, word_index, bits, name, \
                 verifications, opened_at, entry, block_time) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
                 $22, $23, $24, $25) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(to_i64(r.block_number))
            .bind(to_i64(r.log_index))
            .bind(Hex(r.block_hash))
            .bind(Hex(r.tx_hash))
            .bind(r.kind)
            .bind(r.job_id)
            .bind(OptHex(r.node))
            .bind(OptHex(r.account))
            .bind(OptHex(r.owner))
            .bind(OptHex(r.token))
            .bind(r.amount)
            .bind(r.fee)
            .bind(r.total)
            .bind(r.price)
            .bind(OptHex(r.hash))
            .bind(r.frame_count)
            .bind(r.at_time)
            .bind(r.fee_bps)
            .bind(r.word_index)
            .bind(OptHex(r.bits))
            .bind(r.name)
            .bind(r.verifications)
            .bind(r.opened_at)
            .bind(i64::from(r.entry))
            .bind(to_i64(r.block_time))
            .execute(&mut *tx)
            .await?;
            let insert = match e.event.kind() {
                ChainEventKind::VerificationsReleased => {
                    "INSERT INTO verification_payouts (job_id, frame_index, node, owner, amount, fee, tx_hash, \
                     block_number, block_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
                }
                _ => {
                    "INSERT INTO frame_payouts (job_id, frame_index, node, owner, amount, fee, tx_hash, block_number, \
                     block_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
                }
            };
            for p in payouts_of(e) {
                sqlx::query(insert)
                    .bind(p.job_id)
                    .bind(p.frame_index)
                    .bind(Hex(p.node))
                    .bind(Hex(p.owner))
                    .bind(p.amount)
                    .bind(p.fee)
                    .bind(Hex(p.tx_hash))
                    .bind(to_i64(p.block_number))
                    .bind(to_i64(p.block_time))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO indexer_cursor (name, block_number, block_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET block_number = excluded.block_number, \
             block_hash = excluded.block_hash",
        )
        .bind(&cursor.name)
        .bind(to_i64(cursor.block_number))
        .bind(Hex(cursor.block_hash))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Mirrored events of transaction `tx`, in log order.
    pub async fn chain_events_of_tx(&self, tx: B256) -> StoreResult<Vec<MirroredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT * FROM chain_events WHERE tx_hash = $1 ORDER BY block_number, log_index, entry",
        )
        .bind(Hex(tx))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| r.into_event().map_err(|e| sqlx::Error::Decode(Box::new(e)).into()))
            .collect()
    }

    /// Mirrored events naming `address` as node, account (artist, owner,
    /// treasury, recipient) or owner, in chain order, at most `limit`
    /// (the newest).
    pub async fn chain_events_of_address(
        &self,
        address: Address,
        limit: i64,
    ) -> StoreResult<Vec<MirroredEvent>> {
        let mut rows: Vec<EventRow> = sqlx::query_as(
            "SELECT * FROM chain_events WHERE node = $1 OR account = $1 OR owner = $1 \
             ORDER BY block_number DESC, log_index DESC, entry DESC LIMIT $2",
        )
        .bind(Hex(address))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.reverse();
        rows.into_iter()
            .map(|r| r.into_event().map_err(|e| sqlx::Error::Decode(Box::new(e)).into()))
            .collect()
    }

    /// The payment token of every job named by an event of transaction
    /// `tx`, from the jobs' mirrored `JobOpened`, by job.
    pub async fn job_tokens_of_tx(&self, tx: B256) -> StoreResult<Vec<JobToken>> {
        let rows: Vec<JobTokenRow> = sqlx::query_as(
            "SELECT job_id, token FROM chain_events WHERE kind = $1 AND job_id IN \
             (SELECT job_id FROM chain_events WHERE tx_hash = $2 AND job_id IS NOT NULL) ORDER BY job_id",
        )
        .bind(ChainEventKind::JobOpened)
        .bind(Hex(tx))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(JobTokenRow::into_job_token).collect())
    }

    /// The payment token of every job named by the `limit` newest events
    /// naming `address` (those [`Store::chain_events_of_address`] returns), by job.
    pub async fn job_tokens_of_address(&self, address: Address, limit: i64) -> StoreResult<Vec<JobToken>> {
        let rows: Vec<JobTokenRow> = sqlx::query_as(
            "SELECT job_id, token FROM chain_events WHERE kind = $1 AND job_id IN \
             (SELECT job_id FROM (SELECT job_id FROM chain_events WHERE node = $2 OR account = $2 OR owner = $2 \
             ORDER BY block_number DESC, log_index DESC, entry DESC LIMIT $3) WHERE job_id IS NOT NULL) \
             ORDER BY job_id",
        )
        .bind(ChainEventKind::JobOpened)
        .bind(Hex(address))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().filter_map(JobTokenRow::into_job_token).collect())
    }

    /// The owner `node` is bound to in the mirrored registry: that of its
    /// last `NodeRegistered`, if any.
    pub async fn node_owner(&self, node: Address) -> StoreResult<Option<Address>> {
        let owner: Option<Hex<Address>> = sqlx::query_scalar(
            "SELECT account FROM chain_events WHERE kind = $1 AND node = $2 \
             ORDER BY block_number DESC, log_index DESC LIMIT 1",
        )
        .bind(ChainEventKind::NodeRegistered)
        .bind(Hex(node))
        .fetch_optional(self.pool())
        .await?;
        Ok(owner.map(|h| h.0))
    }

    /// The nodes bound to `owner` in the mirrored registry (their last
    /// `NodeRegistered` names it, whether or not they deregistered since),
    /// by address, at most `limit`.
    pub async fn nodes_of_owner(&self, owner: Address, limit: i64) -> StoreResult<Vec<Address>> {
        let nodes: Vec<Hex<Address>> = sqlx::query_scalar(
            "SELECT DISTINCT e.node FROM chain_events e WHERE e.kind = $1 AND e.account = $2 \
             AND NOT EXISTS (SELECT 1 FROM chain_events l WHERE l.kind = $1 AND l.node = e.node \
             AND l.account <> $2 AND (l.block_number > e.block_number \
             OR (l.block_number = e.block_number AND l.log_index > e.log_index))) \
             ORDER BY e.node LIMIT $3",
        )
        .bind(ChainEventKind::NodeRegistered)
        .bind(Hex(owner))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(nodes.into_iter().map(|h| h.0).collect())
    }

    /// Where the mirror named `name` stopped.
    pub async fn cursor(&self, name: &str) -> StoreResult<Option<Cursor>> {
        Ok(sqlx::query_as("SELECT * FROM indexer_cursor WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Mirrored events of a job (or every event when `job_id` is `None`), in
    /// chain order. A row that does not decode is an error, never skipped.
    pub async fn chain_events(&self, job_id: Option<JobId>) -> StoreResult<Vec<MirroredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT * FROM chain_events WHERE ($1 IS NULL OR job_id = $1) ORDER BY block_number, log_index, entry",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| r.into_event().map_err(|e| sqlx::Error::Decode(Box::new(e)).into()))
            .collect()
    }

    /// The payouts of a job, from the mirror.
    pub async fn payouts(&self, job_id: JobId) -> StoreResult<Vec<PayoutRow>> {
        Ok(sqlx::query_as("SELECT * FROM frame_payouts WHERE job_id = $1 ORDER BY frame_index")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// The paid verification renders of a job, from the mirror.
    pub async fn verification_payouts(&self, job_id: JobId) -> StoreResult<Vec<PayoutRow>> {
        Ok(sqlx::query_as("SELECT * FROM verification_payouts WHERE job_id = $1 ORDER BY frame_index")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Every frame payout, newest first.
    pub async fn all_payouts(&self, limit: i64) -> StoreResult<Vec<PayoutRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM frame_payouts ORDER BY block_number DESC, job_id, frame_index LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forgets the whole chain mirror (events, payouts and the mirrors'
    /// cursors), so the next sync reads it again from each deployment's
    /// first block: `lumen indexer rebuild`. Nothing else is touched.
    pub async fn reset_mirror(&self) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        for delete in [
            "DELETE FROM chain_events",
            "DELETE FROM frame_payouts",
            "DELETE FROM verification_payouts",
            "DELETE FROM indexer_cursor WHERE name LIKE 'mirror:%'",
        ] {
            sqlx::query(delete).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes mirrored events and payouts above `block_number` (after a
    /// reorg), so they are read again from the canonical chain.
    pub async fn rewind_mirror(&self, block_number: u64) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM chain_events WHERE block_number > $1")
            .bind(to_i64(block_number))
            .execute(&mut *tx)
            .await?;
        for delete in [
            "DELETE FROM frame_payouts WHERE block_number > $1",
            "DELETE FROM verification_payouts WHERE block_number > $1",
        ] {
            sqlx::query(delete).bind(to_i64(block_number)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
