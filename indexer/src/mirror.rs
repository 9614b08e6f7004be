//! The chain mirror: every escrow and registry event, in chain order, in the
//! database, plus per-frame payouts derived from `FramesReleased`.
//!
//! Resumable (a cursor per deployment) and reorg-aware: before reading on,
//! the cursor's block hash is compared with the chain's; on a mismatch the
//! mirror drops what it stored above a safe depth and reads it again.

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEventInterface,
};
use lumen_chain::contracts::{
    escrow::RenderEscrow::RenderEscrowEvents, registry::NodeRegistry::NodeRegistryEvents,
};
use lumen_store::{ChainEventRow, Cursor, PayoutRow, Store};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::IndexerError;

/// How far back to re-read after a reorg is detected.
const REORG_DEPTH: u64 = 64;
/// Blocks per `eth_getLogs` request.
const CHUNK: u64 = 2_000;

/// Reads contract events into the store.
#[derive(Debug, Clone)]
pub struct Mirror {
    escrow: Address,
    registry: Address,
    deploy_block: u64,
    confirmations: u64,
    name: String,
}

impl Mirror {
    /// A mirror of one deployment.
    pub fn new(escrow: Address, registry: Address, deploy_block: u64, confirmations: u64) -> Self {
        Self { escrow, registry, deploy_block, confirmations, name: format!("mirror:{escrow:#x}") }
    }

    /// Reads everything new up to the head (minus confirmations); returns the
    /// last mirrored block.
    pub async fn sync<P: Provider>(&self, provider: &P, store: &Store) -> Result<u64, IndexerError> {
        let head = provider.get_block_number().await?.saturating_sub(self.confirmations);
        let mut from = match store.cursor(&self.name).await? {
            Some(cursor) => {
                let number = u64::try_from(cursor.block_number).unwrap_or(0);
                let canonical = provider.get_block_by_number(number.into()).await?.map(|b| b.header.hash);
                if canonical.map(|h| format!("{h:#x}")) == Some(cursor.block_hash.clone()) {
                    number + 1
                } else {
                    let back = number.saturating_sub(REORG_DEPTH).max(self.deploy_block);
                    warn!(target: "indexer::reorg", stored = number, rewind_to = back, "cursor block is not canonical: re-reading");
                    store.rewind_mirror(i64::try_from(back).unwrap_or(0) - 1).await?;
                    back
                }
            }
            None => self.deploy_block,
        };
        let mut last = from.saturating_sub(1);
        while from <= head {
            let to = (from + CHUNK - 1).min(head);
            let filter =
                Filter::new().address(vec![self.escrow, self.registry]).from_block(from).to_block(to);
            let logs = provider.get_logs(&filter).await?;
            let block =
                provider.get_block_by_number(to.into()).await?.ok_or(IndexerError::MissingBlock(to))?;
            let mut events = Vec::with_capacity(logs.len());
            let mut payouts = Vec::new();
            for log in &logs {
                if let Some((event, derived)) = self.decode(log) {
                    events.push(event);
                    payouts.extend(derived);
                }
            }
            let cursor = Cursor {
                name: self.name.clone(),
                block_number: i64::try_from(to).unwrap_or(i64::MAX),
                block_hash: format!("{:#x}", block.header.hash),
            };
            store.apply_chain_batch(&events, &payouts, &cursor).await?;
            if !events.is_empty() {
                info!(target: "indexer::mirror", from, to, events = events.len(), payouts = payouts.len(), "mirrored");
            } else {
                debug!(target: "indexer::mirror", from, to, "no events");
            }
            last = to;
            from = to + 1;
        }
        Ok(last)
    }

    /// One log as a stored event (and the payouts it implies), or `None`
    /// for logs of other contracts or unknown shape.
    fn decode(&self, log: &Log) -> Option<(ChainEventRow, Vec<PayoutRow>)> {
        let block_number = i64::try_from(log.block_number?).ok()?;
        let log_index = i64::try_from(log.log_index?).ok()?;
        let tx_hash = format!("{:#x}", log.transaction_hash?);
        let block_hash = format!("{:#x}", log.block_hash?);
        let row = |contract: &str,
                   name: &str,
                   job_id: Option<U256>,
                   node: Option<Address>,
                   account: Option<Address>,
                   data: serde_json::Value| ChainEventRow {
            block_number,
            log_index,
            block_hash: block_hash.clone(),
            tx_hash: tx_hash.clone(),
            contract: contract.into(),
            name: name.into(),
            job_id: job_id.and_then(|j| i64::try_from(j).ok()),
            node: node.map(|n| format!("{n:#x}")),
            account: account.map(|a| format!("{a:#x}")),
            data: data.to_string(),
        };
        let mut payouts = Vec::new();
        let event = if log.address() == self.escrow {
            match RenderEscrowEvents::decode_log(&log.inner).ok()?.data {
                RenderEscrowEvents::JobOpened(e) => row(
                    "escrow",
                    "JobOpened",
                    Some(e.jobId),
                    None,
                    Some(e.artist),
                    json!({
                        "spec_hash": format!("{:#x}", e.specHash), "token": format!("{:#x}", e.token),
                        "price_per_frame": e.pricePerFrame.to_string(), "frame_count": e.frameCount,
                        "deadline": e.deadline, "amount": e.amount.to_string(), "fee_bps": e.feeBps,
                    }),
                ),
                RenderEscrowEvents::FramesReleased(e) => {
                    let frames: Vec<u32> = lumen_chain::frames::unpack(e.wordIndex, e.bits).collect();
                    let n = U256::from(frames.len().max(1));
                    let (per_frame, fee_each, fee_rest) = (e.amount / n, e.fee / n, e.fee % n);
                    for (i, index) in frames.iter().enumerate() {
                        // The fee's rounding remainder goes to the last frame so sums are exact.
                        let fee = if i + 1 == frames.len() { fee_each + fee_rest } else { fee_each };
                        payouts.push(PayoutRow {
                            job_id: i64::try_from(e.jobId).ok()?,
                            frame_index: i64::from(*index),
                            node: format!("{:#x}", e.node),
                            owner: format!("{:#x}", e.owner),
                            amount: per_frame.to_string(),
                            fee: fee.to_string(),
                            tx_hash: tx_hash.clone(),
                            block_number,
                        });
                    }
                    row(
                        "escrow",
                        "FramesReleased",
                        Some(e.jobId),
                        Some(e.node),
                        Some(e.owner),
                        json!({
                            "word_index": e.wordIndex, "frames": frames, "amount": e.amount.to_string(),
                            "fee": e.fee.to_string(),
                        }),
                    )
                }
                RenderEscrowEvents::JobCancelled(e) => row(
                    "escrow",
                    "JobCancelled",
                    Some(e.jobId),
                    None,
                    Some(e.artist),
                    json!({"refundable_at": e.refundableAt}),
                ),
                RenderEscrowEvents::JobClosed(e) => row(
                    "escrow",
                    "JobClosed",
                    Some(e.jobId),
                    None,
                    None,
                    json!({"remaining": e.remaining.to_string()}),
                ),
                RenderEscrowEvents::JobRefunded(e) => row(
                    "escrow",
                    "JobRefunded",
                    Some(e.jobId),
                    None,
                    Some(e.artist),
                    json!({"amount": e.amount.to_string()}),
                ),
                RenderEscrowEvents::CreditsWithdrawn(e) => row(
                    "escrow",
                    "CreditsWithdrawn",
                    None,
                    None,
                    Some(e.account),
                    json!({"token": format!("{:#x}", e.token), "amount": e.amount.to_string()}),
                ),
                RenderEscrowEvents::FeesWithdrawn(e) => row(
                    "escrow",
                    "FeesWithdrawn",
                    None,
                    None,
                    Some(e.treasury),
                    json!({"token": format!("{:#x}", e.token), "amount": e.amount.to_string()}),
                ),
                other => row(
                    "escrow",
                    event_name(&other),
                    None,
                    None,
                    None,
                    json!({ "debug": format!("{other:?}") }),
                ),
            }
        } else if log.address() == self.registry {
            match NodeRegistryEvents::decode_log(&log.inner).ok()?.data {
                NodeRegistryEvents::NodeRegistered(e) => row(
                    "registry",
                    "NodeRegistered",
                    None,
                    Some(e.node),
                    Some(e.owner),
                    json!({"stake": e.stake.to_string()}),
                ),
                NodeRegistryEvents::NodeDeregistered(e) => row(
                    "registry",
                    "NodeDeregistered",
                    None,
                    Some(e.node),
                    Some(e.owner),
                    json!({"unbonding": e.unbonding.to_string(), "available_at": e.availableAt}),
                ),
                NodeRegistryEvents::NodeSlashed(e) => row(
                    "registry",
                    "NodeSlashed",
                    None,
                    Some(e.node),
                    Some(e.recipient),
                    json!({"owner": format!("{:#x}", e.owner), "amount": e.amount.to_string(), "evidence": format!("{:#x}", e.evidenceHash)}),
                ),
                NodeRegistryEvents::StakeAdded(e) => row(
                    "registry",
                    "StakeAdded",
                    None,
                    Some(e.node),
                    Some(e.owner),
                    json!({"amount": e.amount.to_string(), "stake": e.stake.to_string()}),
                ),
                NodeRegistryEvents::StakeWithdrawn(e) => row(
                    "registry",
                    "StakeWithdrawn",
                    None,
                    Some(e.node),
                    Some(e.owner),
                    json!({"amount": e.amount.to_string()}),
                ),
                NodeRegistryEvents::UnstakeRequested(e) => row(
                    "registry",
                    "UnstakeRequested",
                    None,
                    Some(e.node),
                    Some(e.owner),
                    json!({"amount": e.amount.to_string(), "available_at": e.availableAt}),
                ),
                NodeRegistryEvents::ClaimableWithdrawn(e) => row(
                    "registry",
                    "ClaimableWithdrawn",
                    None,
                    None,
                    Some(e.account),
                    json!({"amount": e.amount.to_string()}),
                ),
                other => row(
                    "registry",
                    registry_event_name(&other),
                    None,
                    None,
                    None,
                    json!({ "debug": format!("{other:?}") }),
                ),
            }
        } else {
            return None;
        };
        Some((event, payouts))
    }
}

fn event_name(event: &RenderEscrowEvents) -> &'static str {
    match event {
        RenderEscrowEvents::SettlerChanged(_) => "SettlerChanged",
        RenderEscrowEvents::TreasuryChanged(_) => "TreasuryChanged",
        RenderEscrowEvents::FeeBpsChanged(_) => "FeeBpsChanged",
        RenderEscrowEvents::Paused(_) => "Paused",
        RenderEscrowEvents::Unpaused(_) => "Unpaused",
        _ => "Other",
    }
}

fn registry_event_name(event: &NodeRegistryEvents) -> &'static str {
    match event {
        NodeRegistryEvents::SettlerChanged(_) => "SettlerChanged",
        NodeRegistryEvents::UnstakeDelayChanged(_) => "UnstakeDelayChanged",
        _ => "Other",
    }
}
