//! The chain mirror: every escrow and registry event, in chain order, in the
//! database, plus per-frame payouts derived from `FramesReleased`.
//!
//! Resumable (a cursor per deployment) and reorg-aware: before reading on,
//! the cursor's block hash is compared with the chain's; on a mismatch the
//! mirror drops what it stored above a safe depth and reads it again.

use alloy::{
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEventInterface,
};
use lumen_chain::contracts::{
    escrow::RenderEscrow::RenderEscrowEvents, registry::NodeRegistry::NodeRegistryEvents,
};
use std::collections::HashMap;

use lumen_chain::contracts::escrow::IRenderEscrow::FrameSet;
use lumen_protocol::{
    Address, ChainEvent, JobId, MirroredEvent, Wei,
    event::{FrameWord, release_amount},
};
use lumen_store::{Cursor, Store};
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
                let number = cursor.block_number;
                let canonical = provider.get_block_by_number(number.into()).await?.map(|b| b.header.hash);
                if canonical == Some(cursor.block_hash) {
                    number + 1
                } else {
                    let back = number.saturating_sub(REORG_DEPTH).max(self.deploy_block);
                    warn!(target: "indexer::reorg", stored = number, rewind_to = back, "cursor block is not canonical: re-reading");
                    store.rewind_mirror(back.saturating_sub(1)).await?;
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
            let events = self.decode_all(provider, &logs, store).await?;
            let cursor = Cursor { name: self.name.clone(), block_number: to, block_hash: block.header.hash };
            store.apply_chain_batch(&events, &cursor).await?;
            if events.is_empty() {
                debug!(target: "indexer::mirror", from, to, "no events");
            } else {
                info!(target: "indexer::mirror", from, to, events = events.len(), "mirrored");
            }
            last = to;
            from = to + 1;
        }
        Ok(last)
    }

    /// The logs of one chunk as mirrored events, in chain order: one per
    /// log, except `FramesReleased`, which becomes one per frame set it
    /// lists (frames first, then verification renders), priced from the
    /// job's terms as the escrow priced them and credited to the node's
    /// owner in the registry at that point (the event names neither: they
    /// follow from the job's `JobOpened` and the node's last
    /// `NodeRegistered`). Logs of other contracts or of unknown shape are
    /// left out.
    async fn decode_all<P: Provider>(
        &self,
        provider: &P,
        logs: &[Log],
        store: &Store,
    ) -> Result<Vec<MirroredEvent>, IndexerError> {
        let mut events = Vec::with_capacity(logs.len());
        // Block timestamps, for logs whose node does not include them.
        let mut times: HashMap<u64, u64> = HashMap::new();
        // (price per frame, fee bps) per job, from JobOpened.
        let mut terms: HashMap<JobId, (Wei, u16)> = HashMap::new();
        // The owner each node is bound to, from NodeRegistered.
        let mut owners: HashMap<Address, Address> = HashMap::new();
        for log in logs {
            let Some(logged) = self.decode(log) else { continue };
            let (Some(block_number), Some(log_index), Some(block_hash), Some(tx_hash)) =
                (log.block_number, log.log_index, log.block_hash, log.transaction_hash)
            else {
                continue;
            };
            let block_time = match log.block_timestamp.or_else(|| times.get(&block_number).copied()) {
                Some(t) => t,
                None => {
                    let block = provider
                        .get_block_by_number(block_number.into())
                        .await?
                        .ok_or(IndexerError::MissingBlock(block_number))?;
                    times.insert(block_number, block.header.timestamp);
                    block.header.timestamp
                }
            };
            let at = |entry: u32, event: ChainEvent| MirroredEvent {
                block_number,
                log_index,
                entry,
                block_hash,
                block_time,
                tx_hash,
                event,
            };
            match logged {
                Logged::One(event) => {
                    match &event {
                        ChainEvent::JobOpened { job_id, price_per_frame, fee_bps, .. } => {
                            terms.insert(*job_id, (*price_per_frame, *fee_bps));
                        }
                        ChainEvent::NodeRegistered { node, owner, .. } => {
                            owners.insert(*node, *owner);
                        }
                        _ => {}
                    }
                    events.push(at(0, event));
                }
                Logged::Released { job_id, frames, verifications } => {
                    let (price, fee_bps) = match terms.get(&job_id) {
                        Some(t) => *t,
                        None => {
                            let t = stored_terms(store, job_id).await?;
                            terms.insert(job_id, t);
                            t
                        }
                    };
                    let sets =
                        frames.iter().map(|r| (r, false)).chain(verifications.iter().map(|r| (r, true)));
                    for (entry, (r, verification)) in (0u32..).zip(sets) {
                        let frames = FrameWord { index: r.wordIndex, bits: r.bits };
                        let (amount, fee) = release_amount(price, fee_bps, frames.len());
                        let node = r.node;
                        let owner = match owners.get(&node) {
                            Some(owner) => *owner,
                            None => {
                                // The escrow pays only bound nodes: their binding is mirrored before.
                                let owner = store
                                    .node_owner(node)
                                    .await?
                                    .ok_or(IndexerError::ReleaseToUnknownNode(node))?;
                                owners.insert(node, owner);
                                owner
                            }
                        };
                        let event = if verification {
                            ChainEvent::VerificationsReleased { job_id, node, owner, frames, amount, fee }
                        } else {
                            ChainEvent::FramesReleased { job_id, node, owner, frames, amount, fee }
                        };
                        events.push(at(entry, event));
                    }
                }
            }
        }
        Ok(events)
    }

    /// One log as a typed event, or `None` for logs of other contracts,
    /// unknown shape, or a job id beyond 64 bits (the escrow counts from 1).
    fn decode(&self, log: &Log) -> Option<Logged> {
        if log.address() == self.escrow {
            match RenderEscrowEvents::decode_log(&log.inner).ok()?.data {
                RenderEscrowEvents::FramesReleased(e) => Some(Logged::Released {
                    job_id: JobId::from_u256(e.jobId)?,
                    frames: e.frames,
                    verifications: e.verifications,
                }),
                other => escrow_event(other).map(Logged::One),
            }
        } else if log.address() == self.registry {
            Some(Logged::One(registry_event(NodeRegistryEvents::decode_log(&log.inner).ok()?.data)))
        } else {
            None
        }
    }
}

/// A decoded log: one event, or the frame sets of a `FramesReleased`.
enum Logged {
    One(ChainEvent),
    Released { job_id: JobId, frames: Vec<FrameSet>, verifications: Vec<FrameSet> },
}

/// The price per frame and fee of a job mirrored in an earlier chunk.
async fn stored_terms(store: &Store, job_id: JobId) -> Result<(Wei, u16), IndexerError> {
    store
        .chain_events(Some(job_id))
        .await?
        .into_iter()
        .find_map(|e| match e.event {
            ChainEvent::JobOpened { price_per_frame, fee_bps, .. } => Some((price_per_frame, fee_bps)),
            _ => None,
        })
        // The escrow only pays jobs it opened, and the mirror reads in chain
        // order: a release without its JobOpened is a bug or a foreign log.
        .ok_or(IndexerError::ReleaseOfUnknownJob(job_id))
}

fn escrow_event(event: RenderEscrowEvents) -> Option<ChainEvent> {
    let job = JobId::from_u256;
    Some(match event {
        RenderEscrowEvents::JobOpened(e) => ChainEvent::JobOpened {
            job_id: job(e.jobId)?,
            artist: e.artist,
            spec_hash: e.specHash,
            token: e.token,
            price_per_frame: Wei::from(e.pricePerFrame),
            frame_count: e.frameCount,
            verifications: e.verifications,
            deadline: e.deadline,
            opened_at: e.openedAt,
            amount: Wei(e.amount),
            fee_bps: e.feeBps,
        },
        // Decoded by `Mirror::decode`: it needs the job's terms.
        RenderEscrowEvents::FramesReleased(_) => return None,
        RenderEscrowEvents::JobCancelled(e) => ChainEvent::JobCancelled {
            job_id: job(e.jobId)?,
            artist: e.artist,
            refundable_at: e.refundableAt,
        },
        RenderEscrowEvents::JobRefunded(e) => {
            ChainEvent::JobRefunded { job_id: job(e.jobId)?, artist: e.artist, amount: Wei(e.amount) }
        }
        RenderEscrowEvents::CreditsWithdrawn(e) => {
            ChainEvent::CreditsWithdrawn { account: e.account, token: e.token, amount: Wei(e.amount) }
        }
        RenderEscrowEvents::FeesWithdrawn(e) => {
            ChainEvent::FeesWithdrawn { treasury: e.treasury, token: e.token, amount: Wei(e.amount) }
        }
        other => ChainEvent::Admin { name: admin_name(&other).into() },
    })
}

fn registry_event(event: NodeRegistryEvents) -> ChainEvent {
    match event {
        NodeRegistryEvents::NodeRegistered(e) => {
            ChainEvent::NodeRegistered { node: e.node, owner: e.owner, stake: Wei(e.stake) }
        }
        NodeRegistryEvents::NodeDeregistered(e) => ChainEvent::NodeDeregistered {
            node: e.node,
            owner: e.owner,
            unbonding: Wei(e.unbonding),
            available_at: e.availableAt,
        },
        NodeRegistryEvents::NodeSlashed(e) => ChainEvent::NodeSlashed {
            node: e.node,
            owner: e.owner,
            recipient: e.recipient,
            amount: Wei(e.amount),
            evidence: e.evidenceHash,
        },
        NodeRegistryEvents::StakeAdded(e) => ChainEvent::StakeAdded {
            node: e.node,
            owner: e.owner,
            amount: Wei(e.amount),
            stake: Wei(e.stake),
        },
        NodeRegistryEvents::StakeWithdrawn(e) => {
            ChainEvent::StakeWithdrawn { node: e.node, owner: e.owner, amount: Wei(e.amount) }
        }
        NodeRegistryEvents::UnstakeRequested(e) => ChainEvent::UnstakeRequested {
            node: e.node,
            owner: e.owner,
            amount: Wei(e.amount),
            available_at: e.availableAt,
        },
        NodeRegistryEvents::ClaimableWithdrawn(e) => {
            ChainEvent::ClaimableWithdrawn { account: e.account, amount: Wei(e.amount) }
        }
        NodeRegistryEvents::SettlerChanged(_) => ChainEvent::Admin { name: "SettlerChanged".into() },
        NodeRegistryEvents::SettlerProposed(_) => ChainEvent::Admin { name: "SettlerProposed".into() },
        NodeRegistryEvents::SettlerProposalCancelled(_) => {
            ChainEvent::Admin { name: "SettlerProposalCancelled".into() }
        }
        NodeRegistryEvents::UnstakeDelayChanged(_) => {
            ChainEvent::Admin { name: "UnstakeDelayChanged".into() }
        }
        _ => ChainEvent::Admin { name: "Other".into() },
    }
}

fn admin_name(event: &RenderEscrowEvents) -> &'static str {
    match event {
        RenderEscrowEvents::SettlerChanged(_) => "SettlerChanged",
        RenderEscrowEvents::SettlerProposed(_) => "SettlerProposed",
        RenderEscrowEvents::SettlerProposalCancelled(_) => "SettlerProposalCancelled",
        RenderEscrowEvents::TreasuryChanged(_) => "TreasuryChanged",
        RenderEscrowEvents::FeeBpsChanged(_) => "FeeBpsChanged",
        RenderEscrowEvents::Paused(_) => "Paused",
        RenderEscrowEvents::Unpaused(_) => "Unpaused",
        _ => "Other",
    }
}
