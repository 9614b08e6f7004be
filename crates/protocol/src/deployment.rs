//! Where a network's contracts are, and how to reach its chain: the one
//! description every service, command and file uses.
//!
//! The JSON document is what `contracts/script/Deploy.s.sol` and the Rust
//! deployer write (`deployments/<chain id>.json`); `rpc_url` and
//! `explorer_url` are optional there and usually come from configuration.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Reading or writing a deployment file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentError {
    /// The file could not be read or written.
    #[error("deployment file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// The file is not a deployment document.
    #[error("deployment file {path} is malformed: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse failure.
        source: serde_json::Error,
    },
}

/// One deployment of Lumen's contracts on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// EIP-155 chain id (part of every signed message's domain).
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
    /// JSON-RPC URL of the chain, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_url: Option<String>,
    /// Block explorer transaction URL template with `{tx}` (for example
    /// `https://explorer.example/tx/{tx}`); none on a devnet, whose
    /// transactions the gateway's own explorer shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explorer_url: Option<String>,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> Result<Self, DeploymentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| DeploymentError::Io { path: path.to_owned(), source })?;
        serde_json::from_str(&text).map_err(|source| DeploymentError::Json { path: path.to_owned(), source })
    }

    /// Writes the deployment file (pretty JSON) atomically, creating parent
    /// folders: readers never see half a file.
    pub fn save(&self, path: &Path) -> Result<(), DeploymentError> {
        let io = |source| DeploymentError::Io { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).expect("a Deployment always serializes");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The same deployment reached through `rpc_url`.
    pub fn with_rpc_url(mut self, rpc_url: impl Into<String>) -> Self {
        self.rpc_url = Some(rpc_url.into());
        self
    }

    /// Where to look at a transaction: the configured explorer, or `None`
    /// (the gateway's own explorer page is used on devnets).
    pub fn explorer_tx_url(&self, tx: B256) -> Option<String> {
        self.explorer_url.as_ref().map(|template| template.replace("{tx}", &format!("{tx:#x}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_forge_script_writes() {
        let json = r#"{"chain_id":31337,"escrow":"0x5fbdb2315678afecb367f032d93f642f64180aa3",
            "registry":"0xe7f1725e7734ce288f8367e1bb143e90bb3f0512","deploy_block":1,
            "settler":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","treasury":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"}"#;
        let d: Deployment = serde_json::from_str(json).unwrap();
        assert_eq!(d.chain_id, 31337);
        assert_eq!(d.rpc_url, None);
        let d = d.with_rpc_url("http://127.0.0.1:8545");
        let back: Deployment = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(d.explorer_tx_url(B256::ZERO), None);
    }
}
