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

    /// `n` fresh node keys, each bound to one of nine owners (without stake),
    /// the owners sending their registrations in parallel.
    pub async fn bind_nodes(&self, n: usize) -> eyre::Result<Vec<PrivateKeySigner>> {
        let keys: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
        let d = &self.deployment;
        let mut owners = Vec::new();
        for o in 0..OWNERS.min(n.max(1)) {
            let owner = PrivateKeySigner::from(self.anvil.keys()[1 + o].clone());
            let provider = lumen_chain::signer_provider(&owner, &self.rpc_url())?;
            let nodes: Vec<PrivateKeySigner> = keys.iter().skip(o).step_by(OWNERS).cloned().collect();
            let (chain_id, registry) = (d.chain_id, d.registry);
            owners.push(async move {
                let contract = NodeRegistry::new(registry, &provider);
                let deadline = U256::from(u64::MAX);
                let mut last: Option<PendingTransactionBuilder<_>> = None;
                for node in &nodes {
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
                    let call = contract.register(node.address(), deadline, signature).gas(300_000);
                    last = Some(call.send().await?);
                }
                if let Some(pending) = last {
                    let receipt = pending.get_receipt().await?;
                    eyre::ensure!(receipt.status(), "a registration reverted");
                }
                eyre::Ok(())
            });
        }
        futures::future::try_join_all(owners).await?;
        // Spot-check: every owner's registrations went through.
        let provider = lumen_chain::signer_provider(&PrivateKeySigner::random(), &self.rpc_url())?;
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
