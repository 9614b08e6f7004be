//! A chain for the gateway to authenticate nodes against: Anvil with the
//! contracts deployed, and node keys bound to owners in bulk.

use std::path::Path;

use alloy::{
    node_bindings::AnvilInstance,
    primitives::U256,
    providers::{PendingTransactionBuilder, Provider},
    signers::local::PrivateKeySigner,
};
use eyre::WrapErr;
use lumen_chain::contracts::NodeRegistry;
use lumen_protocol::Deployment;

/// Anvil with Lumen's contracts. Anvil stops when this drops.
#[derive(Debug)]
pub struct Chain {
    anvil: AnvilInstance,
    /// Where the contracts are (with the RPC URL).
    pub deployment: Deployment,
}

/// Anvil dev accounts 1..=9 own the nodes (0 deploys).
const OWNERS: usize = 9;

impl Chain {
    /// Starts Anvil and deploys as account 0.
    pub async fn start() -> eyre::Result<Self> {
        let anvil = lumen_chain::anvil::spawn()?;
        let admin = PrivateKeySigner::from(anvil.keys()[0].clone());
        let provider = lumen_chain::signer_provider(&admin, &anvil.endpoint())?;
        let deployment = lumen_chain::deploy(&provider, &lumen_chain::DeployConfig::devnet(admin.address()))
            .await?
            .with_rpc_url(anvil.endpoint());
        Ok(Self { anvil, deployment })
    }

    /// The RPC URL.
    pub fn rpc_url(&self) -> String {
        self.anvil.endpoint()
    }

    /// Writes the deployment file the gateway reads.
    pub fn save(&self, path: &Path) -> eyre::Result<()> {
        self.deployment.save(path).wrap_err("writing the deployment file")
    }

    /// `n` fresh node keys, each bound to one of nine owners (without stake).
    /// The registrations go into the pool with mining paused and are then
    /// mined a few blocks at a time under a raised block gas limit: one
    /// block per transaction makes Anvil keep thousands of states in memory.
    pub async fn bind_nodes(&self, n: usize) -> eyre::Result<Vec<PrivateKeySigner>> {
        let keys: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
        let d = &self.deployment;
        let admin = lumen_chain::signer_provider(&PrivateKeySigner::random(), &self.rpc_url())?;
        let _: serde_json::Value = admin.raw_request("evm_setAutomine".into(), [false]).await?;
        let _: serde_json::Value =
            admin.raw_request("evm_setBlockGasLimit".into(), [U256::from(3_000_000_000u64)]).await?;
        let mut owners = Vec::new();
        for o in 0..OWNERS.min(n.max(1)) {
            let owner = PrivateKeySigner::from(self.anvil.keys()[1 + o].clone());
            let provider = lumen_chain::signer_provider(&owner, &self.rpc_url())?;
            let nodes: Vec<PrivateKeySigner> = keys.iter().skip(o).step_by(OWNERS).cloned().collect();
            let (chain_id, registry) = (d.chain_id, d.registry);
            owners.push(async move {
                let contract = NodeRegistry::new(registry, &provider);
                let deadline = U256::from(u64::MAX);
                let first = provider.get_transaction_count(owner.address()).await?;
                let fees = provider.estimate_eip1559_fees().await?;
                for (i, node) in nodes.iter().enumerate() {
                    // A fresh key's binding nonce is 0.
                    let signature = lumen_chain::bind::sign(
                        node,
                        owner.address(),
                        U256::ZERO,
                        deadline,
                        chain_id,
                        registry,
                    )
                    .await?;
                    let call = contract
                        .register(node.address(), deadline, signature)
                        .gas(300_000)
                        .nonce(first + i as u64)
                        .max_fee_per_gas(fees.max_fee_per_gas * 2)
                        .max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
                    let _: PendingTransactionBuilder<_> = call.send().await?;
                }
                eyre::Ok((owner.address(), first + nodes.len() as u64))
            });
        }
        let expected = futures::future::try_join_all(owners).await?;
        // Mine until every owner's registrations are in.
        for _ in 0..10_000 {
            let _: serde_json::Value = admin.raw_request("evm_mine".into(), [0u8; 0]).await?;
            let mut done = true;
            for (owner, nonce) in &expected {
                done &= admin.get_transaction_count(*owner).await? >= *nonce;
            }
            if done {
                break;
            }
        }
        let _: serde_json::Value = admin.raw_request("evm_setAutomine".into(), [true]).await?;
        // Spot-check: every owner's registrations went through.
        let provider = admin;
        let registry = NodeRegistry::new(d.registry, &provider);
        for key in keys.iter().rev().take(OWNERS) {
            eyre::ensure!(
                registry.isActive(key.address()).call().await?,
                "node {} is not bound",
                key.address()
            );
        }
        let _ = provider.get_block_number().await?;
        Ok(keys)
    }
}
