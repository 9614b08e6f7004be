//! `devnet.json`: how to reach a running devnet. `lumen devnet` writes it;
//! every `lumen job` command reads it when not told otherwise.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use eyre::WrapErr;
use lumen_protocol::Deployment;
use serde::{Deserialize, Serialize};

/// Default devnet folder.
pub const DEFAULT_DIR: &str = ".lumen-devnet";

/// One local node of the devnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetNode {
    /// Node key address.
    pub address: Address,
    /// Owner wallet it is bound to.
    pub owner: Address,
    /// Its key file (mode 0600).
    pub key_file: PathBuf,
    /// Its health endpoint.
    pub health_url: String,
    /// Its process id.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// The devnet description. Its JSON keeps the deployment's fields at the
/// top level (`rpc_url`, `chain_id`, `escrow`, `registry`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetFile {
    /// The contracts and Anvil's JSON-RPC URL.
    #[serde(flatten)]
    pub deployment: Deployment,
    /// Gateway HTTP URL.
    pub gateway_url: String,
    /// Node WebSocket URL.
    pub ws_url: String,
    /// Protocol fee, basis points.
    pub fee_bps: u16,
    /// The demo artist's address.
    pub artist: Address,
    /// The demo artist's private key (an Anvil dev account, public knowledge).
    pub artist_private_key: String,
    /// A test ERC-20 the gateway accepts, minted to the demo artist
    /// (`lumen job submit --token`).
    #[serde(default)]
    pub test_token: Option<Address>,
    /// The local nodes.
    pub nodes: Vec<DevnetNode>,
    /// The devnet process.
    pub pid: u32,
}

impl DevnetFile {
    /// `DIR/devnet.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("devnet.json")
    }

    /// Reads a devnet file.
    pub fn load(path: &Path) -> eyre::Result<Self> {
        let text = std::fs::read_to_string(path).wrap_err_with(|| {
            format!("cannot read {} (is `lumen devnet` running? or pass --gateway)", path.display())
        })?;
        serde_json::from_str(&text).wrap_err_with(|| format!("{} is not a devnet file", path.display()))
    }

    /// Anvil's JSON-RPC URL.
    pub fn rpc_url(&self) -> &str {
        self.deployment.rpc_url.as_deref().unwrap_or_default()
    }

    /// Writes it atomically (readers never see half a file).
    pub fn save(&self, path: &Path) -> eyre::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
