//! Where the gateway and the chain are: flags, or the devnet file.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;
use clap::Args;
use eyre::{WrapErr, bail, eyre};
use lumen_protocol::{Deployment, api::ApiErrorBody};

use crate::devnet_file::{DEFAULT_DIR, DevnetFile};

/// How to reach the network.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Gateway URL (default: `gateway_url` of ./.lumen-devnet/devnet.json).
    #[arg(long, env = "LUMEN_GATEWAY")]
    pub gateway: Option<String>,
    /// Chain JSON-RPC URL (default: the devnet's, or the one the gateway reports).
    #[arg(long, env = "LUMEN_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Devnet folder to read `devnet.json` from.
    #[arg(long, default_value = DEFAULT_DIR)]
    pub devnet_dir: PathBuf,
}

/// A resolved connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Gateway base URL, no trailing slash.
    pub gateway: String,
    /// Chain JSON-RPC URL.
    pub rpc_url: String,
    /// The deployment the gateway settles on (with `rpc_url` resolved).
    pub deployment: Deployment,
    /// The devnet file, when one was used.
    pub devnet: Option<DevnetFile>,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl ConnectArgs {
    /// Resolves flags and the devnet file into a connection.
    pub async fn connect(&self) -> eyre::Result<Connection> {
        let http = reqwest::Client::new();
        let devnet = match &self.gateway {
            Some(_) => DevnetFile::load(&DevnetFile::path(&self.devnet_dir)).ok(),
            None => Some(DevnetFile::load(&DevnetFile::path(&self.devnet_dir))?),
        };
        let gateway = self
            .gateway
            .clone()
            .or_else(|| devnet.as_ref().map(|d| d.gateway_url.clone()))
            .expect("a devnet file was loaded when no gateway was given")
            .trim_end_matches('/')
            .to_owned();
        let info: Deployment = get_json(&http, &format!("{gateway}/api/v1/info")).await?;
        let rpc_url = self
            .rpc_url
            .clone()
            .or_else(|| {
                devnet
                    .as_ref()
                    .filter(|d| d.deployment.chain_id == info.chain_id)
                    .and_then(|d| d.deployment.rpc_url.clone())
            })
            .or_else(|| info.rpc_url.clone())
            .ok_or_else(|| eyre!("the gateway does not say which RPC URL to use: pass --rpc-url"))?;
        Ok(Connection { gateway, deployment: info.with_rpc_url(rpc_url.clone()), rpc_url, devnet, http })
    }
}

/// GETs JSON, turning API errors into readable ones.
pub async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> eyre::Result<T> {
    let response = http.get(url).send().await.wrap_err_with(|| format!("cannot reach {url}"))?;
    decode(response, url).await
}

impl Connection {
    /// Where the gateway's transaction and address links point (its own
    /// explorer on a devnet, the configured one elsewhere); `None` if it
    /// does not say.
    pub async fn explorer_links(&self) -> Option<lumen_protocol::explorer::ExplorerLinks> {
        get_json(&self.http, &format!("{}/api/v1/explorer", self.gateway)).await.ok()
    }
}

/// Decodes a response, turning API errors into readable ones.
pub async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> eyre::Result<T> {
    let status = response.status();
    let body = response.bytes().await.wrap_err_with(|| format!("reading {what}"))?;
    if !status.is_success() {
        if let Ok(err) = serde_json::from_slice::<ApiErrorBody>(&body) {
            bail!("{} ({}, HTTP {status})", err.error, err.code);
        }
        bail!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).wrap_err_with(|| format!("{what}: unexpected answer"))
}

/// Whose wallet signs: a private key from an environment variable, or on a
/// devnet its artist account.
#[derive(Debug, Clone, Args)]
pub struct WalletArgs {
    /// Environment variable holding the private key (default: the devnet's artist key).
    #[arg(long, value_name = "VAR")]
    pub private_key_env: Option<String>,
}

impl WalletArgs {
    /// The signer these arguments name.
    pub fn signer(&self, conn: &Connection) -> eyre::Result<PrivateKeySigner> {
        match &self.private_key_env {
            Some(var) => Ok(lumen_chain::key_from_env(var)?),
            None => {
                let devnet =
                    conn.devnet.as_ref().ok_or_else(|| eyre!("no key: pass --private-key-env VAR"))?;
                devnet.artist_private_key.trim().parse().map_err(|e| eyre!("invalid devnet artist key: {e}"))
            }
        }
    }
}
