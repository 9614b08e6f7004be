//! Contract events as the indexer mirrors them: decoded once from the log,
//! then typed all the way to the database row and the API.

use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use crate::{FrameIndex, JobId, Wei, wire_enum};

wire_enum! {
    /// Which event a mirrored log is (its Solidity name).
    pub enum ChainEventKind: "chain event" {
        /// `RenderEscrow.JobOpened`.
        JobOpened = "JobOpened",
        /// `RenderEscrow.FramesReleased`.
        FramesReleased = "FramesReleased",
        /// `RenderEscrow.VerificationsReleased`.
        VerificationsReleased = "VerificationsReleased",
        /// `RenderEscrow.JobCancelled`.
        JobCancelled = "JobCancelled",
        /// `RenderEscrow.JobRefunded`.
        JobRefunded = "JobRefunded",
        /// `RenderEscrow.CreditsWithdrawn`.
        CreditsWithdrawn = "CreditsWithdrawn",
        /// `RenderEscrow.FeesWithdrawn`.
        FeesWithdrawn = "FeesWithdrawn",
        /// `NodeRegistry.NodeRegistered`.
        NodeRegistered = "NodeRegistered",
        /// `NodeRegistry.NodeDeregistered`.
        NodeDeregistered = "NodeDeregistered",
        /// `NodeRegistry.NodeSlashed`.
        NodeSlashed = "NodeSlashed",
        /// `NodeRegistry.StakeAdded`.
        StakeAdded = "StakeAdded",
        /// `NodeRegistry.UnstakeRequested`.
        UnstakeRequested = "UnstakeRequested",
        /// `NodeRegistry.StakeWithdrawn`.
        StakeWithdrawn = "StakeWithdrawn",
        /// `NodeRegistry.ClaimableWithdrawn`.
        ClaimableWithdrawn = "ClaimableWithdrawn",
        /// An administrative event (settler, treasury, fee, pause, delays).
        Admin = "Admin",
    }
}

/// One contract event, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum ChainEvent {
    /// An artist locked payment for a job.
    JobOpened {
        /// The new job.
        job_id: JobId,
        /// Who opened and funded it.
        artist: Address,
        /// EIP-712 hash of the job spec.
        spec_hash: B256,
        /// Payment token (zero: native coin).
        token: Address,
        /// Price of one frame.
        price_per_frame: Wei,
        /// Frames paid for.
        frame_count: u32,
        /// Verification budget: at most this many verification renders, one per
        /// paid frame, may be paid at `price_per_frame`.
        verifications: u32,
        /// Unix time after which the artist may always refund.
        deadline: u64,
        /// Unix time the job was opened (block timestamp): only nodes bound
        /// before it can be paid for the job.
        opened_at: u64,
        /// Amount locked.
        amount: Wei,
        /// Protocol fee snapshotted for the job, basis points.
        fee_bps: u16,
    },
    /// Frames of one 256-frame bitmap word were paid to a node's owner.
    FramesReleased {
        /// The job.
        job_id: JobId,
        /// The node that rendered them.
        node: Address,
        /// The owner credited.
        owner: Address,
        /// The frames paid: one bitmap word, as the contract emitted it.
        frames: FrameWord,
        /// Gross amount for them.
        amount: Wei,
        /// Protocol fee taken from it.
        fee: Wei,
    },
    /// Verification renders of paid frames of one bitmap word were paid to
    /// the verifying node's owner, from the job's verification budget.
    VerificationsReleased {
        /// The job.
        job_id: JobId,
        /// The node that rendered the verification renders.
        node: Address,
        /// The owner credited.
        owner: Address,
        /// The frames whose verification render was paid: one bitmap word.
        frames: FrameWord,
        /// Gross amount for them.
        amount: Wei,
        /// Protocol fee taken from it.
        fee: Wei,
    },
    /// The artist cancelled a job.
    JobCancelled {
        /// The job.
        job_id: JobId,
        /// The artist.
        artist: Address,
        /// When the refund becomes possible.
        refundable_at: u64,
    },
    /// The unspent rest of a job went back to its artist.
    JobRefunded {
        /// The job.
        job_id: JobId,
        /// The artist.
        artist: Address,
        /// Amount refunded.
        amount: Wei,
    },
    /// An owner withdrew credits.
    CreditsWithdrawn {
        /// The owner.
        account: Address,
        /// Token withdrawn.
        token: Address,
        /// Amount.
        amount: Wei,
    },
    /// Accrued fees were sent to the treasury.
    FeesWithdrawn {
        /// The treasury.
        treasury: Address,
        /// Token.
        token: Address,
        /// Amount.
        amount: Wei,
    },
    /// A node key was bound to an owner.
    NodeRegistered {
        /// Node key.
        node: Address,
        /// Owner wallet.
        owner: Address,
        /// Stake locked with it.
        stake: Wei,
    },
    /// A node was unbound; its stake starts unbonding.
    NodeDeregistered {
        /// Node key.
        node: Address,
        /// Owner wallet.
        owner: Address,
        /// Stake unbonding.
        unbonding: Wei,
        /// When it can be withdrawn.
        available_at: u64,
    },
    /// A node's stake was slashed.
    NodeSlashed {
        /// Node key.
        node: Address,
        /// Its owner.
        owner: Address,
        /// Who receives the slashed amount.
        recipient: Address,
        /// Amount slashed.
        amount: Wei,
        /// Hash of the evidence bundle.
        evidence: B256,
    },
    /// Stake was added to a node.
    StakeAdded {
        /// Node key.
        node: Address,
        /// Owner.
        owner: Address,
        /// Amount added.
        amount: Wei,
        /// Stake after.
        stake: Wei,
    },
    /// An owner asked to unstake.
    UnstakeRequested {
        /// Node key.
        node: Address,
        /// Owner.
        owner: Address,
        /// Amount.
        amount: Wei,
        /// When it can be withdrawn.
        available_at: u64,
    },
    /// Unbonded stake was withdrawn.
    StakeWithdrawn {
        /// Node key.
        node: Address,
        /// Owner.
        owner: Address,
        /// Amount.
        amount: Wei,
    },
    /// Slash proceeds were withdrawn.
    ClaimableWithdrawn {
        /// Recipient.
        account: Address,
        /// Amount.
        amount: Wei,
    },
    /// An administrative change, recorded for the audit trail.
    Admin {
        /// Which one (`SettlerChanged`, `FeeBpsChanged`, `Paused`, …).
        name: String,
    },
}

impl ChainEvent {
    /// Which event this is.
    pub const fn kind(&self) -> ChainEventKind {
        match self {
            Self::JobOpened { .. } => ChainEventKind::JobOpened,
            Self::FramesReleased { .. } => ChainEventKind::FramesReleased,
            Self::VerificationsReleased { .. } => ChainEventKind::VerificationsReleased,
            Self::JobCancelled { .. } => ChainEventKind::JobCancelled,
            Self::JobRefunded { .. } => ChainEventKind::JobRefunded,
            Self::CreditsWithdrawn { .. } => ChainEventKind::CreditsWithdrawn,
            Self::FeesWithdrawn { .. } => ChainEventKind::FeesWithdrawn,
            Self::NodeRegistered { .. } => ChainEventKind::NodeRegistered,
            Self::NodeDeregistered { .. } => ChainEventKind::NodeDeregistered,
            Self::NodeSlashed { .. } => ChainEventKind::NodeSlashed,
            Self::StakeAdded { .. } => ChainEventKind::StakeAdded,
            Self::UnstakeRequested { .. } => ChainEventKind::UnstakeRequested,
            Self::StakeWithdrawn { .. } => ChainEventKind::StakeWithdrawn,
            Self::ClaimableWithdrawn { .. } => ChainEventKind::ClaimableWithdrawn,
            Self::Admin { .. } => ChainEventKind::Admin,
        }
    }

    /// The job the event concerns, if any.
    pub const fn job_id(&self) -> Option<JobId> {
        match self {
            Self::JobOpened { job_id, .. }
            | Self::FramesReleased { job_id, .. }
            | Self::VerificationsReleased { job_id, .. }
            | Self::JobCancelled { job_id, .. }
            | Self::JobRefunded { job_id, .. } => Some(*job_id),
            _ => None,
        }
    }

    /// The amount the event moved, where it has one.
    pub const fn amount(&self) -> Option<Wei> {
        match self {
            Self::JobOpened { amount, .. }
            | Self::FramesReleased { amount, .. }
            | Self::VerificationsReleased { amount, .. }
            | Self::JobRefunded { amount, .. }
            | Self::CreditsWithdrawn { amount, .. }
            | Self::FeesWithdrawn { amount, .. }
            | Self::NodeSlashed { amount, .. }
            | Self::StakeAdded { amount, .. }
            | Self::UnstakeRequested { amount, .. }
            | Self::StakeWithdrawn { amount, .. }
            | Self::ClaimableWithdrawn { amount, .. } => Some(*amount),
            Self::NodeRegistered { stake, .. } => Some(*stake),
            Self::NodeDeregistered { unbonding, .. } => Some(*unbonding),
            Self::JobCancelled { .. } | Self::Admin { .. } => None,
        }
    }
}

/// A mirrored event with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredEvent {
    /// Block number.
    pub block_number: u64,
    /// Log index within the block.
    pub log_index: u64,
    /// Position within the log: the escrow's `FramesReleased` lists several
    /// frame sets, mirrored as one event each (frames first, then
    /// verification renders); 0 for every other log.
    #[serde(default)]
    pub entry: u32,
    /// Block hash (reorg detection).
    pub block_hash: B256,
    /// The block's timestamp, unix seconds (statements are per month).
    #[serde(default)]
    pub block_time: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// The event.
    pub event: ChainEvent,
}

/// What the escrow released for one frame set of `frames` frames at
/// `price` each, with the job's fee of `fee_bps` basis points: `(amount,
/// fee)`, the fee rounded down, as `RenderEscrow` computes it per set (its
/// `FramesReleased` event leaves both to the job's terms).
pub fn release_amount(price: Wei, fee_bps: u16, frames: usize) -> (Wei, Wei) {
    let amount = price.0.saturating_mul(U256::from(frames));
    let fee = amount.saturating_mul(U256::from(fee_bps)) / U256::from(10_000u32);
    (Wei(amount), Wei(fee))
}

/// Splits a released amount over its frames: every frame gets the same
/// share, and the fee's rounding remainder goes to the last frame so that
/// sums are exact. Returns `(amount, fee)` per frame, in order.
pub fn split_release(amount: Wei, fee: Wei, frames: usize) -> Vec<(Wei, Wei)> {
    if frames == 0 {
        return Vec::new();
    }
    let n = U256::from(frames);
    let (per_frame, fee_each, fee_rest) = (amount.0 / n, fee.0 / n, fee.0 % n);
    (0..frames)
        .map(|i| {
            let fee = if i + 1 == frames { fee_each + fee_rest } else { fee_each };
            (Wei(per_frame), Wei(fee))
        })
        .collect()
}

/// Frames per bitmap word of the escrow's `FrameSet`.
pub const WORD_BITS: u32 = 256;

/// One word of a release bitmap, as `RenderEscrow` takes and emits it: bit
/// `i` pays frame index `index × 256 + i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameWord {
    /// Which word of the job's frames.
    pub index: u32,
    /// One bit per frame of the word.
    pub bits: U256,
}

impl FrameWord {
    /// The empty word that `frame` belongs to.
    pub fn containing(frame: FrameIndex) -> Self {
        Self { index: frame.get() / WORD_BITS, bits: U256::ZERO }
    }

    /// The words that hold exactly `frames` (in ascending word order).
    pub fn pack(frames: impl IntoIterator<Item = FrameIndex>) -> Vec<Self> {
        let mut words = std::collections::BTreeMap::<u32, U256>::new();
        for frame in frames {
            words
                .entry(frame.get() / WORD_BITS)
                .or_default()
                .set_bit((frame.get() % WORD_BITS) as usize, true);
        }
        words.into_iter().map(|(index, bits)| Self { index, bits }).collect()
    }

    /// Adds `frame`; false (and nothing changes) when it is in another word.
    pub fn insert(&mut self, frame: FrameIndex) -> bool {
        if frame.get() / WORD_BITS != self.index {
            return false;
        }
        self.bits.set_bit((frame.get() % WORD_BITS) as usize, true);
        true
    }

    /// The frames this word pays, in ascending order.
    pub fn frames(&self) -> impl Iterator<Item = FrameIndex> + use<> {
        let Self { index, bits } = *self;
        (0..WORD_BITS).filter(move |i| bits.bit(*i as usize)).map(move |i| FrameIndex(index * WORD_BITS + i))
    }

    /// How many frames this word pays.
    pub fn len(&self) -> usize {
        self.bits.count_ones()
    }

    /// Whether this word pays no frame.
    pub fn is_empty(&self) -> bool {
        self.bits.is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_words_pack_and_unpack_the_contract_layout() {
        let frames = [0, 3, 255, 256, 700].map(FrameIndex);
        let words = FrameWord::pack(frames);
        assert_eq!(words.iter().map(|w| (w.index, w.len())).collect::<Vec<_>>(), [(0, 3), (1, 1), (2, 1)]);
        assert_eq!(words[0].bits, U256::from(1u8) | U256::from(8u8) | (U256::from(1u8) << 255));
        assert_eq!(words.iter().flat_map(FrameWord::frames).collect::<Vec<_>>(), frames);
        let mut word = FrameWord::containing(FrameIndex(300));
        assert!(word.insert(FrameIndex(300)) && !word.insert(FrameIndex(3)));
        assert_eq!(word.frames().collect::<Vec<_>>(), [FrameIndex(300)]);
        assert!(FrameWord::default().is_empty());
    }

    #[test]
    fn release_split_sums_the_fee_exactly() {
        let parts = split_release(Wei::from(300u128), Wei::from(10u128), 3);
        assert_eq!(parts.iter().map(|p| p.0).sum::<Wei>(), Wei::from(300u128));
        assert_eq!(parts.iter().map(|p| p.1).sum::<Wei>(), Wei::from(10u128));
        assert!(split_release(Wei::ZERO, Wei::ZERO, 0).is_empty());
    }

    #[test]
    fn release_amount_rounds_the_fee_down_per_set() {
        let (amount, fee) = release_amount(Wei::from(333u128), 250, 3);
        assert_eq!(amount, Wei::from(999u128));
        // 999 * 250 / 10_000 = 24.975
        assert_eq!(fee, Wei::from(24u128));
        assert_eq!(release_amount(Wei::from(7u128), 0, 2), (Wei::from(14u128), Wei::ZERO));
    }

    #[test]
    fn event_json_names_the_event() {
        let e = ChainEvent::JobRefunded { job_id: JobId(3), artist: Address::ZERO, amount: Wei::from(5u128) };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], ChainEventKind::JobRefunded.as_str());
        assert_eq!(json["amount"], "5");
        assert_eq!(serde_json::from_value::<ChainEvent>(json).unwrap(), e);
    }
}
