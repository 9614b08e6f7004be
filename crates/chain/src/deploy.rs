//! Deploying the contracts and the deployment file that describes them.

use std::path::Path;

use alloy::{primitives::Address, providers::Provider, rpc::types::TransactionReceipt};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::{
    ChainError, ChainResult,
    contracts::{NodeRegistry, RenderEscrow},
};

/// Where the contracts of one deployment live; the JSON document written by
/// both deployers (`contracts/script/Deploy.s.sol` and [`deploy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `RenderEscrow` address.
    pub escrow: Address,
    /// `NodeRegistry` address.
    pub registry: Address,
    /// Block of the first deployment transaction: indexers start here.
    pub deploy_block: u64,
    /// The settlement role at deployment time.
    pub settler: Address,
    /// Where protocol fees go.
    pub treasury: Address,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> ChainResult<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ChainError::DeploymentFile { path: path.to_owned(), source })?;
        serde_json::from_str(&text)
            .map_err(|source| ChainError::DeploymentJson { path: path.to_owned(), source })
    }

    /// Writes the deployment file (pretty JSON), creating parent folders.
    pub fn save(&self, path: &Path) -> ChainResult<()> {
        let io = |source| ChainError::DeploymentFile { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).expect("a Deployment always serializes");
        std::fs::write(path, text + "\n").map_err(io)
    }

    /// Checks that both addresses hold code on the provider's chain, so a
    /// stale file from an earlier devnet fails loudly instead of silently
    /// talking to empty accounts.
    pub async fn verify_code<P: Provider>(&self, provider: &P) -> ChainResult<()> {
        for address in [self.escrow, self.registry] {
            if provider.get_code_at(address).await?.is_empty() {
                return Err(ChainError::NoCode { address, chain_id: self.chain_id });
            }
        }
        Ok(())
    }
}

/// Parameters of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployConfig {
    /// Admin of both contracts (rotates the settler, pauses, sets fees).
    pub admin: Address,
    /// The settlement role: releases frames, closes jobs, slashes.
    pub settler: Address,
    /// Receives protocol fees.
    pub treasury: Address,
    /// Protocol fee in basis points, taken from each release.
    pub fee_bps: u16,
    /// Seconds after an artist's cancel during which verified frames can
    /// still be released before the artist may refund.
    pub cancel_grace: u64,
    /// Seconds between an unstake request and the stake's withdrawal.
    pub unstake_delay: u64,
}

impl DeployConfig {
    /// Everything held by one account, no fee, short delays: for devnets.
    pub fn devnet(account: Address) -> Self {
        Self {
            admin: account,
            settler: account,
            treasury: account,
            fee_bps: 0,
            cancel_grace: 3_600,
            unstake_delay: 7 * 24 * 3_600,
        }
    }
}

/// Deploys `NodeRegistry` then `RenderEscrow` with the provider's default
/// signer and returns where they are.
pub async fn deploy<P: Provider>(provider: &P, config: &DeployConfig) -> ChainResult<Deployment> {
    let chain_id = provider.get_chain_id().await?;

    let receipt =
        send(NodeRegistry::deploy_builder(provider, config.admin, config.settler, config.unstake_delay))
            .await?;
    let registry =
        receipt.contract_address.ok_or(ChainError::NoContractAddress { contract: "NodeRegistry" })?;
    let deploy_block = receipt.block_number.unwrap_or_default();

    let receipt = send(RenderEscrow::deploy_builder(
        provider,
        config.admin,
        registry,
        config.settler,
        config.treasury,
        config.fee_bps,
        config.cancel_grace,
    ))
    .await?;
    let escrow =
        receipt.contract_address.ok_or(ChainError::NoContractAddress { contract: "RenderEscrow" })?;

    let deployment = Deployment {
        chain_id,
        escrow,
        registry,
        deploy_block,
        settler: config.settler,
        treasury: config.treasury,
    };
    info!(target: "chain::deploy", ?deployment, "contracts deployed");
    Ok(deployment)
}

/// Sends a contract call, waits for its receipt and checks it did not
/// revert; reverts are decoded into our contracts' typed errors.
pub async fn send<P, D>(call: alloy::contract::CallBuilder<P, D>) -> ChainResult<TransactionReceipt>
where
    P: Provider,
    D: alloy::contract::CallDecoder,
{
    let pending = call.send().await.map_err(ChainError::from_contract)?;
    confirmed(pending.get_receipt().await?)
}

/// Turns a mined-but-reverted receipt into an error.
pub fn confirmed(receipt: TransactionReceipt) -> ChainResult<TransactionReceipt> {
    if receipt.status() { Ok(receipt) } else { Err(ChainError::TxReverted { tx: receipt.transaction_hash }) }
}
