//! Command-line arguments of a node, shared by `lumen-node` and `lumen node run`.
//! Environment variables follow the operator guide.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

use crate::{Fault, NodeConfig, NodeHandle, NodeResult};

/// How to run a node.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Gateway node WebSocket URL, e.g. ws://127.0.0.1:8080/ws/node.
    #[arg(long, env = "GATEWAY_URL")]
    pub gateway: String,
    /// Key file (created with mode 0600 if missing). Default: ~/.lumen/private_key.
    #[arg(long, env = "NODE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Cache and work folder. Default: ~/.lumen.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Health endpoint port on 127.0.0.1 (0 picks one).
    #[arg(long, env = "HEALTH_PORT", default_value_t = 8081)]
    pub health_port: u16,
    /// Frames rendered at once.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Render threads per frame (default: Blender decides).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Memory limit of one render, MiB (default 2048).
    #[arg(long, default_value_t = 2048)]
    pub memory_mb: u64,
    /// Deliberate misbehaviour, for failure tests only.
    #[arg(long, hide = true, env = "LUMEN_NODE_FAULT")]
    pub fault: Option<Fault>,
}

/// `~/.lumen`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".lumen")
}

impl RunArgs {
    /// The key file to use.
    pub fn key_file(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| default_home().join("private_key"))
    }

    /// The node configuration these arguments describe.
    pub fn config(&self) -> NodeConfig {
        let mut config =
            NodeConfig::new(self.gateway.clone(), self.data_dir.clone().unwrap_or_else(default_home));
        config.health_addr = SocketAddr::from(([127, 0, 0, 1], self.health_port));
        config.slots = self.slots.max(1);
        config.threads = self.threads;
        config.memory_bytes = self.memory_mb.max(64) << 20;
        config.fault = self.fault;
        config
    }

    /// Loads (or creates) the key and starts the node.
    pub async fn spawn(&self) -> NodeResult<NodeHandle> {
        let key = crate::key::load_or_create(&self.key_file())?;
        crate::spawn(self.config(), key).await
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_become_a_config() {
        let cli =
            Cli::parse_from(["node", "--gateway", "ws://g/ws/node", "--health-port", "0", "--slots", "2"]);
        let config = cli.run.config();
        assert_eq!(config.gateway_url, "ws://g/ws/node");
        assert_eq!(config.health_addr.port(), 0);
        assert_eq!(config.slots, 2);
        assert_eq!(config.memory_bytes, 2 << 30);
        assert!("eat-frames".parse::<Fault>().is_err());
        assert_eq!("wrong-key".parse::<Fault>().unwrap(), Fault::WrongKey);
        assert_eq!(Fault::BlackFrames.as_str().parse::<Fault>().unwrap(), Fault::BlackFrames);
    }
}
