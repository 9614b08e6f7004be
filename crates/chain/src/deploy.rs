//! Deploying the contracts and the deployment file that describes them.

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use tracing::info;

use crate::{
    ChainError, ChainResult,
    contracts::{NodeRegistry, RenderEscrow},
};

pub use lumen_protocol::Deployment;

/// Checks that both addresses of a deployment hold code on the provider's
/// chain, so a stale file from an earlier devnet fails loudly instead of
/// silently talking to empty accounts.
pub async fn verify_code<P: Provider>(deployment: &Deployment, provider: &P) -> ChainResult<()> {
    for address in [deployment.escrow, deployment.registry] {
        if provider.get_code_at(address).await?.is_empty() {
            return Err(ChainError::NoCode { address, chain_id: deployment.chain_id });
        }
    }
    Ok(())
}

/// Reads the private key held (as hex) by the environment variable `var`:
/// how every command and service takes a key without writing it to disk.
pub fn key_from_env(var: &str) -> ChainResult<PrivateKeySigner> {
    let text = std::env::var(var)
        .map_err(|_| ChainError::Key { var: var.to_owned(), reason: "the variable is not set".into() })?;
    text.trim()
        .parse()
        .map_err(|e| ChainError::Key { var: var.to_owned(), reason: format!("not a private key: {e}") })
}

/// A provider for the JSON-RPC endpoint `url` that signs with `key`.
///
/// The nonce of every transaction is read from the chain (the pending
/// count), never counted locally: a transaction the node refused, or one a
/// reorg dropped, must not leave a gap that stalls every later one.
pub fn signer_provider(key: &PrivateKeySigner, url: &str) -> ChainResult<DynProvider> {
    let url = url.parse().map_err(|_| ChainError::RpcUrl(url.to_owned()))?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url)
        .erased())
}

/// How long [`send`] waits for a receipt before giving up (the step is
/// retried: the nonce comes from the chain, so a retry replaces the
/// transaction instead of queueing behind it).
pub const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

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
    // Slashes pay the artist of a job in this escrow, or its treasury.
    send(NodeRegistry::new(registry, provider).linkEscrow(escrow)).await?;

    let deployment = Deployment {
        chain_id,
        escrow,
        registry,
        deploy_block,
        settler: config.settler,
        treasury: config.treasury,
        rpc_url: None,
        explorer_url: None,
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
    confirmed(pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await?)
}

/// Turns a mined-but-reverted receipt into an error.
pub fn confirmed(receipt: TransactionReceipt) -> ChainResult<TransactionReceipt> {
    if receipt.status() { Ok(receipt) } else { Err(ChainError::TxReverted { tx: receipt.transaction_hash }) }
}
