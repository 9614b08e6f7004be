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
    network::EthereumWallet,
    node_bindings::AnvilInstance,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use lumen_chain::{DeployConfig, Deployment};

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
}

/// A provider for `url` that signs with `key`.
pub fn connect(key: &PrivateKeySigner, url: &str) -> eyre::Result<DynProvider> {
    Ok(ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url.parse()?).erased())
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
