//! The settler's transaction sender: one nonce, simulation before sending,
//! receipts awaited with a timeout, stuck transactions replaced with higher
//! fees.
//!
//! Every settler transaction goes through one [`Sender`], which sends one
//! transaction at a time and holds it until it is mined:
//!
//! 1. the call is simulated (`eth_call`, then `eth_estimateGas`): a revert
//!    comes back decoded ([`ChainError::EscrowReverted`], …) and never
//!    costs gas;
//! 2. the nonce is the settler's mined transaction count. Nothing of ours
//!    is in flight when a send starts, so that count is right after a
//!    restart, after a reorg, and after a node dropped a transaction from
//!    its pool; a transaction a previous process left in the pool at that
//!    nonce is replaced (the node answers "replacement underpriced" until
//!    the fees outbid it);
//! 3. the receipt is awaited for [`SenderConfig::receipt_timeout_ms`]; a
//!    transaction not mined by then is sent again with the same nonce and
//!    both EIP-1559 fees raised by [`SenderConfig::fee_bump_percent`]
//!    (nodes refuse a replacement under +10 % or +12.5 %), until it is
//!    mined or the fees reach [`SenderConfig::max_fee_per_gas_gwei`], when
//!    the send fails with [`ChainError::Stuck`] (the next send continues
//!    from those fees). Every hash sent for the nonce is watched: a
//!    replaced transaction may still be the one that is mined.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy::{
    consensus::Transaction as _,
    eips::{BlockId, eip2718::Encodable2718},
    network::{EthereumWallet, NetworkTransactionBuilder as _, TransactionBuilder},
    primitives::{Address, B256, TxHash},
    providers::{DynProvider, Provider},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    transports::{RpcError, TransportErrorKind},
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::{ChainError, ChainResult};

/// One gwei in wei.
const GWEI: u128 = 1_000_000_000;
/// How long a receipt may lag the nonce its transaction moved before the
/// sender concludes another transaction took the nonce.
const RECEIPT_LAG: Duration = Duration::from_secs(2);
/// The smallest fee bump nodes accept for a replacement, rounded up (geth
/// asks +10 %, others +12.5 %).
const MIN_BUMP_PERCENT: u64 = 13;

/// How the settler sends (the `[indexer.sender]` table of `lumen.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderConfig {
    /// How long a transaction may wait to be mined before it is replaced
    /// with higher fees, ms (default 30000).
    pub receipt_timeout_ms: u64,
    /// How often the receipt is polled, ms (default 250).
    pub poll_ms: u64,
    /// How much a replacement raises both `maxFeePerGas` and
    /// `maxPriorityFeePerGas`, percent (default 25; at least 13 is used:
    /// nodes refuse a replacement below +12.5 %).
    pub fee_bump_percent: u64,
    /// The highest `maxFeePerGas` the settler pays, gwei (default 500).
    pub max_fee_per_gas_gwei: u64,
    /// Gas added to the estimate, percent (default 20).
    pub gas_margin_percent: u64,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            receipt_timeout_ms: 30_000,
            poll_ms: 250,
            fee_bump_percent: 25,
            max_fee_per_gas_gwei: 500,
            gas_margin_percent: 20,
        }
    }
}

impl SenderConfig {
    fn max_fee(&self) -> u128 {
        u128::from(self.max_fee_per_gas_gwei).saturating_mul(GWEI)
    }

    /// `fees` raised by the bump, capped at the maximum fee.
    fn bump(&self, fees: Fees) -> Fees {
        let percent = u128::from(self.fee_bump_percent.max(MIN_BUMP_PERCENT));
        let up = |fee: u128| fee.saturating_add((fee.saturating_mul(percent)).div_ceil(100)).max(fee + 1);
        self.capped(Fees { max_fee: up(fees.max_fee), priority: up(fees.priority) })
    }

    fn capped(&self, fees: Fees) -> Fees {
        let max_fee = fees.max_fee.min(self.max_fee());
        Fees { max_fee, priority: fees.priority.min(max_fee) }
    }
}

/// The EIP-1559 fees of one transaction, wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Fees {
    max_fee: u128,
    priority: u128,
}

impl Fees {
    /// The higher of each fee.
    fn max(self, other: Self) -> Self {
        Self { max_fee: self.max_fee.max(other.max_fee), priority: self.priority.max(other.priority) }
    }
}

/// One transaction sent for a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The nonce.
    pub nonce: u64,
    /// The transaction's hash.
    pub hash: TxHash,
    /// Its `maxFeePerGas`, wei.
    pub max_fee_per_gas: u128,
    /// Its `maxPriorityFeePerGas`, wei.
    pub max_priority_fee_per_gas: u128,
    /// Hash of its call (`to`, `value`, calldata): a transaction of an
    /// earlier send at the nonce is not this call.
    input: B256,
}

/// The settler's key and a provider for its chain.
#[derive(Clone)]
pub struct Settler {
    /// Reads the chain and carries the raw transactions.
    pub provider: DynProvider,
    /// Signs them.
    pub key: PrivateKeySigner,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler").field("address", &self.key.address()).finish_non_exhaustive()
    }
}

impl Settler {
    /// The settler `key` on the JSON-RPC endpoint `url`.
    pub fn connect(key: PrivateKeySigner, url: &str) -> ChainResult<Self> {
        Ok(Self { provider: crate::signer_provider(&key, url)?, key })
    }
}

/// Sends the settler's transactions, one at a time (see the module docs).
pub struct Sender {
    provider: DynProvider,
    wallet: EthereumWallet,
    from: Address,
    config: SenderConfig,
    /// Held for the whole of a send: one transaction in flight.
    turn: tokio::sync::Mutex<()>,
    /// What was sent for the last nonce not known to be mined.
    attempts: Mutex<Vec<Attempt>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("from", &self.from)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender for `settler`.
    pub fn new(settler: Settler, config: SenderConfig) -> Self {
        let from = settler.key.address();
        Self {
            provider: settler.provider,
            wallet: EthereumWallet::from(settler.key),
            from,
            config,
            turn: tokio::sync::Mutex::new(()),
            attempts: Mutex::new(Vec::new()),
        }
    }

    /// The settler's address.
    pub fn address(&self) -> Address {
        self.from
    }

    /// The provider the sender reads the chain with.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// What was sent for the nonce of the send under way (or of the last
    /// one that did not end mined), oldest first.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("never poisoned: no panics while held").clone()
    }

    /// Simulates a contract call; `Ok` when it would succeed now.
    pub async fn simulate<P, D>(&self, call: alloy::contract::CallBuilder<P, D>) -> ChainResult<()>
    where
        P: Provider,
        D: alloy::contract::CallDecoder,
    {
        let request = call.into_transaction_request().from(self.from);
        self.simulate_request(&request).await.map(|_| ())
    }

    /// Simulates, sends and waits for a contract call (see the module docs).
    pub async fn send<P, D>(
        &self,
        call: alloy::contract::CallBuilder<P, D>,
    ) -> ChainResult<TransactionReceipt>
    where
        P: Provider,
        D: alloy::contract::CallDecoder,
    {
        self.send_request(call.into_transaction_request()).await
    }

    /// Simulates, sends and waits for a transaction request (its `to`,
    /// `input` and `value`; the rest is the sender's).
    pub async fn send_request(&self, request: TransactionRequest) -> ChainResult<TransactionReceipt> {
        let _turn = self.turn.lock().await;
        let request = request.from(self.from);
        let gas = self.simulate_request(&request).await?;
        let gas = gas.saturating_add(gas.saturating_mul(self.config.gas_margin_percent) / 100);
        let nonce = self.provider.get_transaction_count(self.from).block_id(BlockId::latest()).await?;
        let input = call_hash(&request);
        let chain_id = self.provider.get_chain_id().await?;
        let estimate = self.provider.estimate_eip1559_fees().await?;
        let mut fees =
            Fees { max_fee: estimate.max_fee_per_gas, priority: estimate.max_priority_fee_per_gas };
        {
            let mut attempts = self.attempts.lock().expect("never poisoned");
            attempts.retain(|a| a.nonce == nonce);
            // A send that gave up at this nonce left its transactions in the pool: outbid them.
            if let Some(last) = attempts.last() {
                fees =
                    fees.max(self.config.bump(Fees {
                        max_fee: last.max_fee_per_gas,
                        priority: last.max_priority_fee_per_gas,
                    }));
            }
        }
        fees = self.config.capped(fees);
        let request = request.with_nonce(nonce).with_gas_limit(gas).with_chain_id(chain_id);
        loop {
            let tx = request
                .clone()
                .with_max_fee_per_gas(fees.max_fee)
                .with_max_priority_fee_per_gas(fees.priority)
                .build(&self.wallet)
                .await
                .map_err(|e| ChainError::Build(e.to_string()))?;
            let hash = *tx.tx_hash();
            let attempt = Attempt {
                nonce,
                hash,
                max_fee_per_gas: tx.max_fee_per_gas(),
                max_priority_fee_per_gas: tx.max_priority_fee_per_gas().unwrap_or_default(),
                input,
            };
            match self.provider.send_raw_transaction(&tx.encoded_2718()).await {
                Ok(_) => self.record(attempt, "sent"),
                Err(err) => match pool_refusal(&err) {
                    // Ours, already in the pool (sent before a timeout the node did not see).
                    Some(Refusal::Known) => self.record(attempt, "already in the pool"),
                    // Another transaction holds this nonce in the pool (sent before a restart,
                    // or a replacement the node has not taken): outbid it.
                    Some(Refusal::Underpriced) if fees.max_fee < self.config.max_fee() => {
                        warn!(target: "chain::sender", nonce, max_fee = fees.max_fee, "replacement underpriced: raising the fees");
                        fees = self.config.bump(fees);
                        continue;
                    }
                    Some(Refusal::Underpriced | Refusal::NonceTooLow) => {}
                    None => return Err(err.into()),
                },
            }
            let deadline = Instant::now() + Duration::from_millis(self.config.receipt_timeout_ms);
            if let Some(receipt) = self.wait(nonce, input, deadline).await? {
                return self.mined(receipt, &request).await;
            }
            if fees.max_fee >= self.config.max_fee() {
                warn!(target: "chain::sender", nonce, max_fee = fees.max_fee, "not mined at the highest fee allowed");
                return Err(ChainError::Stuck { nonce, max_fee_per_gas: fees.max_fee });
            }
            fees = self.config.bump(fees);
            info!(target: "chain::sender", nonce, max_fee = fees.max_fee, priority = fees.priority, "not mined in time: replacing with higher fees");
        }
    }

    fn record(&self, attempt: Attempt, what: &str) {
        debug!(target: "chain::sender", nonce = attempt.nonce, tx = %attempt.hash, max_fee = attempt.max_fee_per_gas, what);
        let mut attempts = self.attempts.lock().expect("never poisoned");
        if !attempts.iter().any(|a| a.hash == attempt.hash) {
            attempts.push(attempt);
        }
    }

    /// Polls the receipts of every transaction sent for `nonce` until one
    /// is mined or `deadline` passes. Fails with [`ChainError::NonceTaken`]
    /// when the nonce was used by a transaction that is not this call.
    async fn wait(
        &self,
        nonce: u64,
        input: B256,
        deadline: Instant,
    ) -> ChainResult<Option<TransactionReceipt>> {
        loop {
            let sent = self.attempts();
            for attempt in sent.iter().filter(|a| a.nonce == nonce) {
                if let Some(receipt) = self.provider.get_transaction_receipt(attempt.hash).await? {
                    if attempt.input != input {
                        // A transaction of an earlier send at this nonce was mined, not this call.
                        self.attempts.lock().expect("never poisoned").clear();
                        return Err(ChainError::NonceTaken { nonce });
                    }
                    return Ok(Some(receipt));
                }
            }
            let mined = self.provider.get_transaction_count(self.from).block_id(BlockId::latest()).await?;
            if mined > nonce {
                // Look again for a while: the receipt may come after the state
                // that moved the nonce (a node that stores them apart, as Anvil
                // under load does, or RPC nodes behind a balancer).
                let lag = Instant::now() + RECEIPT_LAG;
                loop {
                    for attempt in sent.iter().filter(|a| a.nonce == nonce && a.input == input) {
                        if let Some(receipt) = self.provider.get_transaction_receipt(attempt.hash).await? {
                            return Ok(Some(receipt));
                        }
                    }
                    if Instant::now() >= lag {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(self.config.poll_ms.min(100))).await;
                }
                self.attempts.lock().expect("never poisoned").clear();
                return Err(ChainError::NonceTaken { nonce });
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms)).await;
        }
    }

    /// A mined receipt: the nonce is done; a revert is decoded by
    /// simulating the call again on the new state.
    async fn mined(
        &self,
        receipt: TransactionReceipt,
        request: &TransactionRequest,
    ) -> ChainResult<TransactionReceipt> {
        self.attempts.lock().expect("never poisoned").clear();
        if receipt.status() {
            return Ok(receipt);
        }
        let tx = receipt.transaction_hash;
        warn!(target: "chain::sender", %tx, "transaction reverted on chain");
        let mut again = request.clone();
        again.nonce = None;
        self.simulate_request(&again).await?;
        Err(ChainError::TxReverted { tx })
    }

    /// `eth_call` then `eth_estimateGas`; returns the gas estimate, or the
    /// decoded revert.
    async fn simulate_request(&self, request: &TransactionRequest) -> ChainResult<u64> {
        let decode = |err: RpcError<TransportErrorKind>| {
            ChainError::from_contract(alloy::contract::Error::TransportError(err))
        };
        self.provider.call(request.clone()).await.map_err(decode)?;
        self.provider.estimate_gas(request.clone()).await.map_err(decode)
    }
}

/// What a transaction does: its recipient, value and calldata, hashed.
fn call_hash(request: &TransactionRequest) -> B256 {
    let to = match request.to {
        Some(alloy::primitives::TxKind::Call(to)) => to,
        _ => Address::ZERO,
    };
    let value = request.value.unwrap_or_default();
    let input = request.input.input().cloned().unwrap_or_default();
    alloy::primitives::keccak256([to.as_slice(), &value.to_be_bytes::<32>(), &input].concat())
}

/// Why a node refused a raw transaction, when it is about the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The same transaction is in the pool.
    Known,
    /// Another transaction with this nonce pays at least as much.
    Underpriced,
    /// The nonce is already mined.
    NonceTooLow,
}

/// Pool refusals come as JSON-RPC error messages, which no standard error
/// code tells apart; these are geth's, reth's and Anvil's words.
fn pool_refusal(err: &RpcError<TransportErrorKind>) -> Option<Refusal> {
    let message = err.as_error_resp()?.message.to_lowercase();
    if message.contains("already known") || message.contains("already imported") {
        Some(Refusal::Known)
    } else if message.contains("underpriced") {
        Some(Refusal::Underpriced)
    } else if message.contains("nonce too low") {
        Some(Refusal::NonceTooLow)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_raises_both_fees_by_at_least_an_eighth_and_stops_at_the_cap() {
        let config =
            SenderConfig { fee_bump_percent: 1, max_fee_per_gas_gwei: 10, ..SenderConfig::default() };
        let fees = Fees { max_fee: 2 * GWEI, priority: GWEI };
        let bumped = config.bump(fees);
        assert!(
            bumped.max_fee * 8 >= fees.max_fee * 9 && bumped.priority * 8 >= fees.priority * 9,
            "{bumped:?}"
        );
        // Tiny fees still move.
        assert_eq!(config.bump(Fees { max_fee: 1, priority: 0 }), Fees { max_fee: 2, priority: 1 });
        let mut f = fees;
        for _ in 0..100 {
            f = config.bump(f);
        }
        assert_eq!(f, Fees { max_fee: 10 * GWEI, priority: 10 * GWEI });
        let config = SenderConfig { fee_bump_percent: 50, ..config };
        assert_eq!(config.bump(fees), Fees { max_fee: 3 * GWEI, priority: GWEI + GWEI / 2 });
    }
}
