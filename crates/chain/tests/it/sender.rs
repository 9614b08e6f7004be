//! The settler's sender against a real Anvil whose automatic mining is off,
//! so a transaction stays in the pool until the test mines it: replaced
//! with higher fees at the same nonce, given up at the fee cap, outbidding
//! what a previous process left in the pool.

use std::time::{Duration, Instant};

use alloy::{
    consensus::Transaction as _,
    node_bindings::AnvilInstance,
    primitives::{Address, TxHash, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use lumen_chain::{ChainError, Sender, SenderConfig, Settler};

const GWEI: u128 = 1_000_000_000;

struct Chain {
    anvil: AnvilInstance,
    key: PrivateKeySigner,
}

impl Chain {
    /// Anvil with automatic mining off.
    async fn manual() -> eyre::Result<Self> {
        let anvil = lumen_chain::anvil::spawn()?;
        let key = PrivateKeySigner::from(anvil.keys()[0].clone());
        let chain = Self { anvil, key };
        let _: serde_json::Value = chain.provider().raw_request("evm_setAutomine".into(), [false]).await?;
        Ok(chain)
    }

    fn settler(&self) -> Settler {
        Settler::connect(self.key.clone(), &self.anvil.endpoint()).unwrap()
    }

    fn sender(&self, config: SenderConfig) -> Sender {
        Sender::new(self.settler(), config)
    }

    fn provider(&self) -> alloy::providers::DynProvider {
        lumen_chain::signer_provider(&self.key, &self.anvil.endpoint()).unwrap()
    }

    async fn mine(&self) -> eyre::Result<()> {
        let _: serde_json::Value = self.provider().raw_request("evm_mine".into(), [0u8; 0]).await?;
        Ok(())
    }

    async fn nonce(&self) -> u64 {
        self.provider().get_transaction_count(self.key.address()).await.unwrap()
    }

    async fn balance(&self, account: Address) -> U256 {
        self.provider().get_balance(account).await.unwrap()
    }

    /// The mined transaction's nonce and `maxFeePerGas`.
    async fn mined(&self, hash: TxHash) -> (u64, u128) {
        let tx = self.provider().get_transaction_by_hash(hash).await.unwrap().unwrap();
        (tx.inner.nonce(), tx.inner.max_fee_per_gas())
    }
}

/// A transfer of `wei` to `to`.
fn pay(to: Address, wei: u64) -> TransactionRequest {
    TransactionRequest::default().to(to).value(U256::from(wei))
}

fn quick(max_fee_gwei: u64) -> SenderConfig {
    SenderConfig {
        receipt_timeout_ms: 300,
        poll_ms: 20,
        fee_bump_percent: 25,
        max_fee_per_gas_gwei: max_fee_gwei,
        ..SenderConfig::default()
    }
}

/// Waits until `sender` has sent `n` transactions for its current nonce.
async fn attempts(sender: &Sender, n: usize) -> Vec<lumen_chain::sender::Attempt> {
    let limit = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = sender.attempts();
        if sent.len() >= n {
            return sent;
        }
        assert!(Instant::now() < limit, "only {} transactions sent: {sent:?}", sent.len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_transaction_not_mined_in_time_is_replaced_at_the_same_nonce_with_higher_fees() -> eyre::Result<()>
{
    let chain = Chain::manual().await?;
    let sender = std::sync::Arc::new(chain.sender(quick(1_000)));
    let to = Address::repeat_byte(0x77);
    let send = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_request(pay(to, 1)).await }
    });
    // The first transaction is dropped from the pool, as a busy node may:
    // the replacement goes out anyway, once the receipt timeout passes.
    let first = attempts(&sender, 1).await[0];
    let _: serde_json::Value =
        chain.provider().raw_request("anvil_dropTransaction".into(), [first.hash]).await?;
    let sent = attempts(&sender, 3).await;
    chain.mine().await?;
    let receipt = send.await??;

    assert!(sent.iter().all(|a| a.nonce == first.nonce), "one nonce: {sent:?}");
    for pair in sent.windows(2) {
        assert!(pair[1].max_fee_per_gas * 8 >= pair[0].max_fee_per_gas * 9, "{sent:?}");
        assert!(pair[1].max_priority_fee_per_gas * 8 >= pair[0].max_priority_fee_per_gas * 9, "{sent:?}");
    }
    let (nonce, max_fee) = chain.mined(receipt.transaction_hash).await;
    assert_eq!(nonce, first.nonce);
    assert!(
        max_fee > first.max_fee_per_gas,
        "the mined one paid more: {max_fee} vs {}",
        first.max_fee_per_gas
    );
    assert_ne!(receipt.transaction_hash, first.hash);
    assert_eq!(chain.nonce().await, first.nonce + 1, "one transaction mined");
    assert_eq!(chain.balance(to).await, U256::from(1), "paid once");
    assert!(sender.attempts().is_empty(), "nothing left in flight");
    Ok(())
}

#[tokio::test]
async fn a_send_gives_up_at_the_fee_cap_after_the_receipt_timeout_and_the_next_send_waits_for_it()
-> eyre::Result<()> {
    let chain = Chain::manual().await?;
    let estimate = chain.provider().estimate_eip1559_fees().await?;
    // Room for one replacement: 25 % above the estimate, then the cap.
    let cap = u64::try_from(estimate.max_fee_per_gas * 3 / 2 / GWEI + 1)?;
    let config = quick(cap);
    let sender = chain.sender(config);
    let started = Instant::now();
    let err = sender.send_request(pay(Address::repeat_byte(0x78), 1)).await.unwrap_err();
    let waited = started.elapsed();
    let sent = sender.attempts();
    assert!(
        matches!(err, ChainError::Stuck { nonce: 0, max_fee_per_gas } if max_fee_per_gas == u128::from(cap) * GWEI),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(sent.len() >= 2, "{sent:?}");
    assert_eq!(sent.last().unwrap().max_fee_per_gas, u128::from(cap) * GWEI);
    // Each transaction was given the whole timeout to be mined.
    assert!(
        waited >= Duration::from_millis(config.receipt_timeout_ms) * u32::try_from(sent.len())?,
        "{waited:?}"
    );
    assert_eq!(chain.nonce().await, 0);

    // The next send reuses the nonce; at the cap it cannot outbid the
    // stuck one, so it waits for it: when the block comes, the stuck
    // transfer (another call) is what was mined at the nonce.
    let sender = std::sync::Arc::new(sender);
    let next = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_request(pay(Address::repeat_byte(0x79), 2)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    chain.mine().await?;
    let err = next.await?.unwrap_err();
    assert!(matches!(err, ChainError::NonceTaken { nonce: 0 }), "{err}");
    assert_eq!(chain.balance(Address::repeat_byte(0x78)).await, U256::from(1));
    assert_eq!(chain.balance(Address::repeat_byte(0x79)).await, U256::ZERO);
    Ok(())
}

#[tokio::test]
async fn a_restarted_sender_replaces_what_the_previous_process_left_in_the_pool() -> eyre::Result<()> {
    let chain = Chain::manual().await?;
    // The previous process sent a transfer and stopped before it was mined.
    let before = chain.sender(quick(1_000));
    let err = tokio::time::timeout(
        Duration::from_millis(150),
        before.send_request(pay(Address::repeat_byte(1), 1)),
    )
    .await;
    assert!(err.is_err(), "still waiting for its receipt");
    let orphan = before.attempts()[0];
    drop(before);

    // A new sender starts at the mined count, the same nonce: the node
    // refuses it as underpriced until its fees outbid the orphan.
    let sender = std::sync::Arc::new(chain.sender(quick(1_000)));
    let send = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_request(pay(Address::repeat_byte(2), 2)).await }
    });
    let sent = attempts(&sender, 1).await;
    assert_eq!(sent[0].nonce, orphan.nonce);
    assert!(sent[0].max_fee_per_gas > orphan.max_fee_per_gas, "{sent:?} vs {orphan:?}");
    chain.mine().await?;
    let receipt = send.await??;
    assert_eq!(chain.mined(receipt.transaction_hash).await.0, orphan.nonce);
    assert_eq!(chain.balance(Address::repeat_byte(2)).await, U256::from(2));
    assert_eq!(chain.balance(Address::repeat_byte(1)).await, U256::ZERO, "the orphan was replaced");
    assert!(chain.provider().get_transaction_receipt(orphan.hash).await?.is_none());
    Ok(())
}
