//! The payout explorer's views: a transaction, an address and a job, as the
//! gateway serves them from its chain mirror and the chain's RPC.

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::{ContentHash, JobId, MirroredEvent, earnings::OwnerEarnings};

/// Where transaction and address links point: the gateway's own explorer
/// pages on a devnet, or an external explorer on a real chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplorerLinks {
    /// A transaction's page, with `{tx}` for its hash.
    pub tx_url: String,
    /// An address's page, with `{address}` for the address.
    pub address_url: String,
}

impl ExplorerLinks {
    /// The page of transaction `tx`.
    pub fn tx(&self, tx: B256) -> String {
        self.tx_url.replace("{tx}", &format!("{tx:#x}"))
    }

    /// The page of `address`.
    pub fn address(&self, address: Address) -> String {
        self.address_url.replace("{address}", &format!("{address:#x}"))
    }
}

/// A transaction: its receipt and the escrow and registry events it emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplorerTx {
    /// Its hash.
    pub hash: B256,
    /// Its block, if mined.
    pub block_number: Option<u64>,
    /// The block's timestamp, unix seconds.
    pub block_time: Option<u64>,
    /// Whether it succeeded (mined and not reverted).
    pub success: bool,
    /// Sender.
    pub from: Address,
    /// Recipient (the contract called).
    pub to: Option<Address>,
    /// Gas used.
    pub gas_used: u64,
    /// Price paid per gas, wei.
    pub effective_gas_price: u128,
    /// Its decoded escrow and registry events, from the mirror (empty until
    /// the mirror reaches its block).
    pub events: Vec<MirroredEvent>,
    /// The payment token of every job its events name (releases and
    /// refunds are paid in it), from the jobs' mirrored `JobOpened`.
    #[serde(default)]
    pub job_tokens: Vec<JobToken>,
}

/// The token a job pays in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobToken {
    /// The job.
    pub job_id: JobId,
    /// Its payment token (`address(0)`: the native coin).
    pub token: Address,
}

/// An address: every mirrored event naming it (as node, owner, artist,
/// account or recipient) and, if it is an owner, what it earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplorerAddress {
    /// The address.
    pub address: Address,
    /// Events in chain order: payouts, jobs, withdrawals, slashes, stake.
    pub events: Vec<MirroredEvent>,
    /// Its earnings as an owner (empty figures when it is none).
    pub earnings: OwnerEarnings,
    /// The payment token of every job its events name.
    #[serde(default)]
    pub job_tokens: Vec<JobToken>,
}

/// A slash of a node that cheated on a job, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplorerSlash {
    /// The node.
    pub node: Address,
    /// The frame whose vote proved it.
    pub frame_index: u32,
    /// Why.
    pub reason: String,
    /// The evidence bundle (`GET /api/v1/evidence/{hash}`), whose hash went on-chain.
    pub evidence: ContentHash,
    /// The slash transaction, once sent.
    pub tx: Option<B256>,
}

/// A job: every on-chain event of it, and the slashes of nodes that
/// cheated on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplorerJob {
    /// The job.
    pub job_id: JobId,
    /// Its events in chain order.
    pub events: Vec<MirroredEvent>,
    /// Slashes for cheating on it.
    pub slashes: Vec<ExplorerSlash>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fill_their_template() {
        let links = ExplorerLinks {
            tx_url: "https://scan.example/tx/{tx}".into(),
            address_url: "https://scan.example/address/{address}".into(),
        };
        let tx = B256::repeat_byte(0xab);
        assert_eq!(links.tx(tx), format!("https://scan.example/tx/0x{}", "ab".repeat(32)));
        assert_eq!(
            links.address(Address::repeat_byte(1)),
            format!("https://scan.example/address/0x{}", "01".repeat(20))
        );
    }
}
