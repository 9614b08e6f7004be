//! Test harness: a real Anvil on a free port with Lumen's contracts deployed.
//!
//! ```no_run
//! # async fn demo() -> eyre::Result<()> {
//! let chain = lumen_testkit::TestChain::spawn().await?;
//! let artist = chain.account(3);
//! let provider = chain.provider(&artist);
//! # let _ = provider; Ok(()) }
//! ```
//!
//! Account roles follow Anvil's dev accounts: 0 is admin, settler and
//! treasury; the others are free for artists and node owners.

use alloy::{
    eips::BlockNumberOrTag,
    node_bindings::AnvilInstance,
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use lumen_chain::{
    DeployConfig, Deployment,
    contracts::{NodeRegistry, RenderEscrow},
    deploy::send,
};

/// A running Anvil with the contracts deployed. Anvil stops when this drops.
#[derive(Debug)]
pub struct TestChain {
    anvil: AnvilInstance,
    /// Where the contracts are.
    pub deployment: Deployment,
}

impl TestChain {
    /// Spawns Anvil and deploys with [`DeployConfig::devnet`] for account 0.
    pub async fn spawn() -> eyre::Result<Self> {
        Self::spawn_with(DeployConfig::devnet).await
    }

    /// Spawns Anvil and deploys with the configuration `configure` builds
    /// from account 0's address.
    pub async fn spawn_with(
        configure: impl FnOnce(alloy::primitives::Address) -> DeployConfig,
    ) -> eyre::Result<Self> {
        let anvil = lumen_chain::anvil::spawn()?;
        let admin = PrivateKeySigner::from(anvil.keys()[0].clone());
        let provider = connect(&admin, &anvil.endpoint())?;
        let deployment = lumen_chain::deploy(&provider, &configure(admin.address())).await?;
        Ok(Self { anvil, deployment })
    }

    /// Anvil's dev account `index` (0..10).
    pub fn account(&self, index: usize) -> PrivateKeySigner {
        PrivateKeySigner::from(self.anvil.keys()[index].clone())
    }

    /// The admin / settler / treasury account.
    pub fn admin(&self) -> PrivateKeySigner {
        self.account(0)
    }

    /// The settler (the admin account) with a provider, as the indexer takes it.
    pub fn settler(&self) -> lumen_chain::Settler {
        lumen_chain::Settler { provider: self.provider(&self.admin()), key: self.admin() }
    }

    /// HTTP RPC URL.
    pub fn rpc_url(&self) -> String {
        self.anvil.endpoint()
    }

    /// A provider that signs with `key`.
    pub fn provider(&self, key: &PrivateKeySigner) -> DynProvider {
        connect(key, &self.rpc_url()).expect("Anvil's endpoint is a valid URL")
    }

    /// The underlying Anvil process.
    pub fn anvil(&self) -> &AnvilInstance {
        &self.anvil
    }

    /// Binds the node key `node` to `owner` in the `NodeRegistry`, without
    /// stake: the node key signs the binding and the owner sends it, as
    /// `lumen node register` does. Releases then pay `owner`.
    pub async fn bind_node(&self, owner: &PrivateKeySigner, node: &PrivateKeySigner) -> eyre::Result<()> {
        let provider = self.provider(owner);
        let registry = NodeRegistry::new(self.deployment.registry, &provider);
        let nonce = registry.nonces(node.address()).call().await?;
        let deadline = U256::from(u64::MAX);
        let (chain_id, at) = (self.deployment.chain_id, self.deployment.registry);
        let signature = lumen_chain::bind::sign(node, owner.address(), nonce, deadline, chain_id, at).await?;
        send(registry.register(node.address(), deadline, signature)).await?;
        // A job opened from now on opens strictly after the binding: the
        // escrow pays only nodes bound before a job opened.
        self.advance_time(1).await
    }

    /// Opens a job paid in the native coin as `artist`, locking exactly the
    /// escrow's quote for `frames` frames and as many verification renders
    /// at `price_per_frame`, with a deadline `deadline_in` seconds after the
    /// latest block.
    pub async fn open_job(
        &self,
        artist: &PrivateKeySigner,
        spec_hash: B256,
        price_per_frame: u128,
        frames: u32,
        deadline_in: u64,
    ) -> eyre::Result<OpenedJob> {
        let provider = self.provider(artist);
        let escrow = RenderEscrow::new(self.deployment.escrow, &provider);
        let amount = escrow.quote(frames, frames, price_per_frame).call().await?;
        let deadline = self.timestamp().await? + deadline_in;
        let receipt = send(
            escrow.openJob(spec_hash, Address::ZERO, price_per_frame, frames, frames, deadline).value(amount),
        )
        .await?;
        let opened = receipt
            .decoded_log::<RenderEscrow::JobOpened>()
            .ok_or_else(|| eyre::eyre!("openJob emitted no JobOpened"))?;
        let job_id = lumen_protocol::JobId::from_u256(opened.jobId)
            .ok_or_else(|| eyre::eyre!("job id {} beyond 64 bits", opened.jobId))?;
        Ok(OpenedJob { job_id, amount, deadline, receipt })
    }

    /// The latest block's timestamp (seconds).
    pub async fn timestamp(&self) -> eyre::Result<u64> {
        let provider = self.provider(&self.admin());
        let block = provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| eyre::eyre!("no latest block"))?;
        Ok(block.header.timestamp)
    }

    /// Moves the chain's clock `secs` seconds forward and mines a block
    /// with the new time (`evm_increaseTime` + `evm_mine`).
    pub async fn advance_time(&self, secs: u64) -> eyre::Result<()> {
        let provider = self.provider(&self.admin());
        let _: serde_json::Value =
            provider.raw_request("evm_increaseTime".into(), [U256::from(secs)]).await?;
        self.mine(1).await
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) -> eyre::Result<()> {
        let provider = self.provider(&self.admin());
        for _ in 0..blocks {
            let _: serde_json::Value = provider.raw_request("evm_mine".into(), NO_PARAMS).await?;
        }
        Ok(())
    }

    /// Snapshots the chain (`evm_snapshot`); [`TestChain::revert`] returns
    /// to it, dropping every block mined since: how tests make a reorg.
    pub async fn snapshot(&self) -> eyre::Result<U256> {
        Ok(self.provider(&self.admin()).raw_request("evm_snapshot".into(), NO_PARAMS).await?)
    }

    /// Reverts the chain to a snapshot (`evm_revert`); false when Anvil does
    /// not know the snapshot (each one can be reverted to once).
    pub async fn revert(&self, snapshot: U256) -> eyre::Result<bool> {
        Ok(self.provider(&self.admin()).raw_request("evm_revert".into(), [snapshot]).await?)
    }
}

/// JSON-RPC parameters of a method that takes none (an empty array).
const NO_PARAMS: [u8; 0] = [];

/// A job opened by [`TestChain::open_job`].
#[derive(Debug, Clone)]
pub struct OpenedJob {
    /// The id the escrow assigned.
    pub job_id: lumen_protocol::JobId,
    /// What the artist locked (`frames × price`).
    pub amount: U256,
    /// The job's deadline (Unix seconds).
    pub deadline: u64,
    /// The `openJob` receipt (for the artist's gas cost).
    pub receipt: TransactionReceipt,
}

/// A provider for `url` that signs with `key`.
pub fn connect(key: &PrivateKeySigner, url: &str) -> eyre::Result<DynProvider> {
    Ok(lumen_chain::signer_provider(key, url)?)
}

/// A job as the gateway would register it, for tests of the services below
/// the gateway: `frames` frames numbered from 1, 64×36 Cycles, 1 wei each,
/// paid in the native coin, for the `.blend` `blend_hash`.
pub fn new_job(
    job_id: lumen_protocol::JobId,
    blend_hash: lumen_protocol::ContentHash,
    frames: u32,
) -> lumen_store::NewJob {
    use alloy::primitives::{Address, B256};
    lumen_store::NewJob {
        job_id,
        artist: Address::repeat_byte(0xa),
        spec_json: "{}".into(),
        spec_hash: B256::repeat_byte(1),
        signature: Default::default(),
        blend_hash,
        width: 64,
        height: 36,
        engine: "CYCLES".into(),
        token: Address::ZERO,
        price_per_frame: lumen_protocol::Wei::from(1u128),
        frame_numbers: (1..=i32::try_from(frames).expect("test jobs are small")).collect(),
    }
}

/// A node that owns itself and runs Blender 3.4.1: who renders in tests
/// where owners only need to differ per node.
pub fn renderer(node: alloy::primitives::Address) -> lumen_store::Renderer {
    lumen_store::Renderer { node, owner: node, blender_version: "3.4.1".into(), opengl: None }
}
