//! Errors of the chain layer.

use alloy::{
    contract::Error as ContractError,
    primitives::Address,
    sol_types::SolInterface,
    transports::{RpcError, TransportErrorKind},
};

use crate::contracts::{
    escrow::RenderEscrow::RenderEscrowErrors, registry::NodeRegistry::NodeRegistryErrors,
};

/// Result alias of this crate.
pub type ChainResult<T> = Result<T, ChainError>;

/// What can go wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// `RenderEscrow` reverted with one of its custom errors.
    #[error("escrow reverted: {0:?}")]
    EscrowReverted(RenderEscrowErrors),
    /// `NodeRegistry` reverted with one of its custom errors.
    #[error("registry reverted: {0:?}")]
    RegistryReverted(NodeRegistryErrors),
    /// A contract call failed for another reason (transport, unknown revert, decoding).
    #[error("contract call failed: {0}")]
    Contract(#[from] ContractError),
    /// The RPC transport failed.
    #[error("rpc transport: {0}")]
    Transport(#[from] RpcError<TransportErrorKind>),
    /// Waiting for a transaction receipt failed.
    #[error("pending transaction: {0}")]
    PendingTransaction(#[from] alloy::providers::PendingTransactionError),
    /// A transaction was mined but reverted.
    #[error("transaction {tx} reverted on chain")]
    TxReverted {
        /// The reverted transaction's hash.
        tx: alloy::primitives::TxHash,
    },
    /// A transaction could not be built or signed.
    #[error("building a transaction: {0}")]
    Build(String),
    /// A transaction was not mined at the highest fee the sender may pay;
    /// it stays in the pool and the next send at its nonce outbids it.
    #[error("transaction with nonce {nonce} not mined at the fee cap ({max_fee_per_gas} wei per gas)")]
    Stuck {
        /// The nonce.
        nonce: u64,
        /// The fee cap it reached.
        max_fee_per_gas: u128,
    },
    /// The nonce was used by another transaction than the one being sent
    /// (one a previous process left in the pool): read the chain again.
    #[error("nonce {nonce} was used by another transaction")]
    NonceTaken {
        /// The nonce.
        nonce: u64,
    },
    /// A deployment transaction produced no contract address.
    #[error("deployment of {contract} returned no address")]
    NoContractAddress {
        /// Which contract.
        contract: &'static str,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signer(#[from] alloy::signers::Error),
    /// The Anvil binary could not be found or started.
    #[error("anvil: {0}")]
    Anvil(String),
    /// A frame set cannot be built (frame index out of range, empty input).
    #[error("invalid frame set: {0}")]
    InvalidFrames(String),
    /// Reading or writing a deployment file failed.
    #[error(transparent)]
    Deployment(#[from] lumen_protocol::DeploymentError),
    /// A JSON-RPC URL does not parse.
    #[error("invalid RPC URL {0:?}")]
    RpcUrl(String),
    /// A private key could not be read from the environment.
    #[error("environment variable {var}: {reason}")]
    Key {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// The deployment file names a contract address with no code on this chain.
    #[error("no contract code at {address} on chain {chain_id}")]
    NoCode {
        /// The address without code.
        address: Address,
        /// The chain that was asked.
        chain_id: u64,
    },
}

impl ChainError {
    /// Wraps a contract error, decoding our contracts' custom errors when the
    /// revert data carries one.
    pub fn from_contract(err: ContractError) -> Self {
        if let Some(data) = err.as_revert_data() {
            if let Ok(e) = RenderEscrowErrors::abi_decode(&data) {
                return Self::EscrowReverted(e);
            }
            if let Ok(e) = NodeRegistryErrors::abi_decode(&data) {
                return Self::RegistryReverted(e);
            }
        }
        Self::Contract(err)
    }

    /// Whether retrying the same request later may succeed (transport
    /// trouble), as opposed to a revert or a local mistake.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(e) | Self::Contract(ContractError::TransportError(e)) => rpc_retryable(e),
            Self::PendingTransaction(_) | Self::Stuck { .. } | Self::NonceTaken { .. } => true,
            _ => false,
        }
    }
}

impl ChainError {
    /// The decoded reason when this is a revert the same call can never
    /// get past as it is (another job's terms own the job id, a node bound after
    /// the job opened, the sender is not the settler, …): retrying it only
    /// burns rounds, so it is parked. `None` for everything else, including
    /// reverts that mean the chain moved on since the call was built (a
    /// frame already paid, nothing left to settle, a paused contract): the
    /// next attempt, built from the chain again, may pass.
    pub fn permanent_revert(&self) -> Option<String> {
        use NodeRegistryErrors as R;
        use RenderEscrowErrors as E;
        match self {
            Self::EscrowReverted(e) => match e {
                E::Escrow_TermsMismatch(x) => Some(format!(
                    "Escrow_TermsMismatch: job {} on chain has other terms than the settlement names",
                    x.jobId
                )),
                E::Escrow_NodeBoundAfterOpen(x) => Some(format!(
                    "Escrow_NodeBoundAfterOpen: node {} was bound at {} after job {} opened at {}",
                    x.node, x.boundAt, x.jobId, x.openedAt
                )),
                E::Escrow_NodeNotBound(x) => {
                    Some(format!("Escrow_NodeNotBound: node {} has no owner", x.node))
                }
                E::Escrow_NotSettler(x) => {
                    Some(format!("Escrow_NotSettler: {} is not the escrow's settler", x.caller))
                }
                E::Escrow_FrameOutOfRange(_)
                | E::Escrow_EmptyFrameSet(_)
                | E::Escrow_FrameNotPaid(_)
                | E::Escrow_VerificationBudgetExceeded(_)
                | E::Escrow_ZeroAddress(_) => Some(format!("{e:?}")),
                _ => None,
            },
            Self::RegistryReverted(e) => match e {
                R::Registry_NotSettler(x) => {
                    Some(format!("Registry_NotSettler: {} is not the registry's settler", x.caller))
                }
                R::Registry_UnknownJob(x) => {
                    Some(format!("Registry_UnknownJob: job {} is not in the escrow", x.jobId))
                }
                R::Registry_EvidenceUsed(_) | R::Registry_NoEvidence(_) | R::Registry_EscrowLink(_) => {
                    Some(format!("{e:?}"))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

fn rpc_retryable(err: &RpcError<TransportErrorKind>) -> bool {
    match err {
        RpcError::Transport(kind) => kind.is_retry_err(),
        RpcError::ErrorResp(payload) => payload.is_retry_err(),
        RpcError::NullResp => true,
        _ => false,
    }
}
