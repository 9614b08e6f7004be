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
