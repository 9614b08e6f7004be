//! The one configuration model of the services: `lumen.toml`.
//!
//! Layers, each overriding the one before:
//! 1. defaults (every field documented with its default on its type);
//! 2. the TOML file given with `--config` / `LUMEN_CONFIG`;
//! 3. environment variables `LUMEN_<TABLE>__<FIELD>`, e.g.
//!    `LUMEN_GATEWAY__MAX_BLEND_BYTES=1048576` or
//!    `LUMEN_INDEXER__CONFIRMATIONS=12` (a double underscore separates the
//!    table from the field);
//! 4. flags, each of which also reads its own variable (`--listen` /
//!    `LUMEN_LISTEN`, `--rpc-url` / `LUMEN_RPC_URL`, …), see [`ServiceArgs`].
//!
//! Secrets never come from the file: the settler's key is read from the
//! environment variable the configuration names (`chain.settler_key_env`).
//!
//! ```toml
//! data_dir = "/var/lib/lumen"
//!
//! [chain]
//! rpc_url = "https://rpc.example.org"
//! deployment = "/etc/lumen/deployment.json"
//! explorer_url = "https://explorer.example.org"
//!
//! [gateway]
//! listen = "0.0.0.0:8080"
//! public_url = "https://render.example.org"
//!
//! [indexer]
//! confirmations = 12
//! ```

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use lumen_gateway::GatewayConfig;
use lumen_indexer::IndexerConfig;
use lumen_matchmaker::MatchmakerConfig;
use lumen_protocol::Deployment;
use lumen_verifier::VerifierConfig;
use serde::{Deserialize, Serialize};

use crate::{StackError, StackResult};

/// Everything a Lumen service process reads at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LumenConfig {
    /// The database and blob folder shared by the services (default
    /// `lumen-data`).
    pub data_dir: PathBuf,
    /// Which chain and contracts.
    pub chain: ChainConfig,
    /// The gateway (`[gateway]`).
    pub gateway: GatewayConfig,
    /// The matchmaker (`[matchmaker]`).
    pub matchmaker: MatchmakerConfig,
    /// The verifier (`[verifier]`).
    pub verifier: VerifierConfig,
    /// The indexer (`[indexer]`).
    pub indexer: IndexerConfig,
}

impl Default for LumenConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("lumen-data"),
            chain: ChainConfig::default(),
            gateway: GatewayConfig::default(),
            matchmaker: MatchmakerConfig::default(),
            verifier: VerifierConfig::default(),
            indexer: IndexerConfig::default(),
        }
    }
}

/// Which chain and contracts (`[chain]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC URL (no default; overrides the deployment file's).
    pub rpc_url: Option<String>,
    /// The deployment file written by `Deploy.s.sol` or `lumen devnet` (no
    /// default).
    pub deployment: Option<PathBuf>,
    /// Block explorer base URL for payout links (overrides the deployment
    /// file's; none by default).
    pub explorer_url: Option<String>,
    /// Environment variable holding the settler's private key (default
    /// `LUMEN_SETTLER_KEY`); only the indexer needs it.
    pub settler_key_env: String,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: None,
            deployment: None,
            explorer_url: None,
            settler_key_env: "LUMEN_SETTLER_KEY".into(),
        }
    }
}

impl LumenConfig {
    /// Defaults on free ports, for tests.
    pub fn test(data_dir: PathBuf) -> Self {
        Self { data_dir, gateway: GatewayConfig::test(), ..Self::default() }
    }

    /// The layers below the flags: defaults, then `file`, then `LUMEN_*__*`
    /// variables. Merge flags on top and [`extract`](Self::extract).
    pub fn figment(file: Option<&std::path::Path>) -> StackResult<Figment> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(StackError::ConfigFile(file.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only table-qualified variables: `LUMEN_DATA_DIR`, `LUMEN_LISTEN` and
        // friends belong to flags, and secrets such as `LUMEN_SETTLER_KEY`
        // must never be read as configuration.
        let env = Env::prefixed("LUMEN_").filter(|key| key.as_str().contains("__")).split("__");
        Ok(figment.merge(env))
    }

    /// Reads the merged layers; unknown keys and bad values are errors that
    /// name the key and the layer it came from.
    pub fn extract(figment: &Figment) -> StackResult<Self> {
        figment.extract().map_err(|e| StackError::Config(Box::new(e)))
    }

    /// The deployment named by `chain.deployment`, with `chain.rpc_url` and
    /// `chain.explorer_url` applied. An RPC URL is required.
    pub fn deployment(&self) -> StackResult<Deployment> {
        let path =
            self.chain.deployment.as_ref().ok_or(StackError::Missing("chain.deployment (--deployment)"))?;
        let mut deployment = Deployment::load(path)
            .map_err(|source| StackError::Deployment { path: path.clone(), reason: source.to_string() })?;
        if let Some(url) = &self.chain.rpc_url {
            deployment = deployment.with_rpc_url(url.clone());
        }
        if deployment.rpc_url.is_none() {
            return Err(StackError::Missing("chain.rpc_url (--rpc-url)"));
        }
        if let Some(url) = &self.chain.explorer_url {
            deployment.explorer_url = Some(url.clone());
        }
        Ok(deployment)
    }
}

/// The flags every service binary shares. Each flag also reads its own
/// environment variable and, when given, wins over the file and the
/// `LUMEN_<TABLE>__<FIELD>` variables.
#[derive(Debug, Clone, Default, Args)]
pub struct ServiceArgs {
    /// Configuration file (TOML; see docs/configuration.md).
    #[arg(long, env = "LUMEN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database and blob folder shared by the services [default: lumen-data].
    #[arg(long, env = "LUMEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The chain.
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Where the chain and the contracts are: shared by every command that
/// reads or writes the chain.
#[derive(Debug, Clone, Default, Args)]
pub struct ChainArgs {
    /// Chain JSON-RPC URL.
    #[arg(long, env = "LUMEN_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Deployment file (from Deploy.s.sol or `lumen devnet`).
    #[arg(long, env = "LUMEN_DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
}

/// The gateway's own flags.
#[derive(Debug, Clone, Default, Args)]
pub struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LUMEN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// URL nodes use to reach this gateway (part of the signed challenge).
    #[arg(long, env = "LUMEN_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// The indexer's own flags.
#[derive(Debug, Clone, Default, Args)]
pub struct IndexerArgs {
    /// Environment variable holding the settler's private key [default: LUMEN_SETTLER_KEY].
    #[arg(long, value_name = "VAR")]
    pub settler_key_env: Option<String>,
    /// Blocks to stay behind the head [default: 0].
    #[arg(long)]
    pub confirmations: Option<u64>,
}

/// Flags on top of a figment: only the flags that were given (or whose
/// variable was set) override.
#[derive(Debug, Default)]
pub struct Overrides(Figment);

impl Overrides {
    /// No overrides yet.
    pub fn new() -> Self {
        Self(Figment::new())
    }

    /// Sets `key` (a dotted path such as `gateway.listen`) when `value` is
    /// given.
    pub fn set<T: Serialize>(mut self, key: &str, value: Option<T>) -> Self {
        if let Some(value) = value {
            self.0 = self.0.merge(Serialized::default(key, value));
        }
        self
    }

    /// The overrides as a layer to merge on top of others.
    pub fn into_figment(self) -> Figment {
        self.0
    }

    /// The shared flags.
    pub fn service(self, args: &ServiceArgs) -> Self {
        self.set("data_dir", args.data_dir.clone())
            .set("chain.rpc_url", args.chain.rpc_url.clone())
            .set("chain.deployment", args.chain.deployment.clone())
    }

    /// The gateway's flags.
    pub fn gateway(self, args: &GatewayArgs) -> Self {
        self.set("gateway.listen", args.listen).set("gateway.public_url", args.public_url.clone())
    }

    /// The indexer's flags.
    pub fn indexer(self, args: &IndexerArgs) -> Self {
        self.set("chain.settler_key_env", args.settler_key_env.clone())
            .set("indexer.confirmations", args.confirmations)
    }
}

impl ServiceArgs {
    /// Loads the configuration: defaults, the file, `LUMEN_*__*`
    /// variables, then `overrides` (built from this and the binary's own
    /// flags).
    pub fn load(&self, overrides: Overrides) -> StackResult<LumenConfig> {
        let figment = LumenConfig::figment(self.config.as_deref())?.merge(overrides.service(self).0);
        LumenConfig::extract(&figment)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its (large) error type
mod tests {
    use clap::Parser;
    use figment::Jail;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
        #[command(flatten)]
        indexer: IndexerArgs,
    }

    fn load(args: &[&str]) -> StackResult<LumenConfig> {
        let cli = Cli::try_parse_from(std::iter::once("lumen-test").chain(args.iter().copied()))
            .expect("the test's flags parse");
        cli.service.load(Overrides::new().gateway(&cli.gateway).indexer(&cli.indexer))
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        Jail::expect_with(|_| {
            let config = load(&[]).unwrap();
            assert_eq!(config, LumenConfig::default());
            assert_eq!(config.gateway.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
            assert_eq!(config.chain.settler_key_env, "LUMEN_SETTLER_KEY");
            assert_eq!(config.indexer.batch_frames, 1_024);
            assert_eq!(config.matchmaker.task_timeout_secs, 300);
            Ok(())
        });
    }

    #[test]
    fn file_then_env_then_flags_each_override() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "lumen.toml",
                r#"
                data_dir = "from-file"
                [gateway]
                listen = "0.0.0.0:9000"
                max_blend_bytes = 1000
                [gateway.health]
                max_consecutive_failures = 5
                [indexer]
                confirmations = 3
                batch_frames = 8
                "#,
            )?;
            let config = load(&["--config", "lumen.toml"]).unwrap();
            assert_eq!(config.data_dir, PathBuf::from("from-file"));
            assert_eq!(config.gateway.listen.port(), 9000);
            assert_eq!(config.gateway.max_blend_bytes, 1000);
            assert_eq!(config.gateway.health.max_consecutive_failures, 5);
            // Untouched fields of a partly given table keep their defaults.
            assert_eq!(config.gateway.health.heartbeat_timeout.as_secs(), 30);
            assert_eq!(config.indexer.max_frames_per_tx, 1_024);

            // Table-qualified variables beat the file.
            jail.set_env("LUMEN_GATEWAY__MAX_BLEND_BYTES", "2000");
            jail.set_env("LUMEN_INDEXER__CONFIRMATIONS", "7");
            let config = load(&["--config", "lumen.toml"]).unwrap();
            assert_eq!(config.gateway.max_blend_bytes, 2000);
            assert_eq!(config.indexer.confirmations, 7);
            assert_eq!(config.indexer.batch_frames, 8);

            // A flag's own variable beats both; the flag itself beats that.
            jail.set_env("LUMEN_LISTEN", "127.0.0.1:9100");
            jail.set_env("LUMEN_DATA_DIR", "from-env");
            let config = load(&["--config", "lumen.toml"]).unwrap();
            assert_eq!(config.gateway.listen.port(), 9100);
            assert_eq!(config.data_dir, PathBuf::from("from-env"));
            let config =
                load(&["--config", "lumen.toml", "--listen", "127.0.0.1:9200", "--confirmations", "1"])
                    .unwrap();
            assert_eq!(config.gateway.listen.port(), 9200);
            assert_eq!(config.indexer.confirmations, 1);
            Ok(())
        });
    }

    /// docs/configuration.md lists every key with its default: the file
    /// must parse (no unknown key) and give exactly the defaults.
    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = &doc[doc.find("## Every key").expect("the section exists")..];
        let start = section.find("```toml\n").expect("a TOML block") + "```toml\n".len();
        let toml = &section[start..start + section[start..].find("```").expect("the block ends")];
        Jail::expect_with(|jail| {
            jail.create_file("documented.toml", toml)?;
            let documented = load(&["--config", "documented.toml"]).unwrap();
            assert_eq!(documented, LumenConfig::default());
            Ok(())
        });
    }

    #[test]
    fn secrets_and_flag_variables_are_not_read_as_configuration() {
        Jail::expect_with(|jail| {
            // Neither would be a known key: reading them would fail.
            jail.set_env("LUMEN_SETTLER_KEY", "0x01");
            jail.set_env("LUMEN_NODE_FAULT", "black-frames");
            assert_eq!(load(&[]).unwrap(), LumenConfig::default());
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_bad_values_and_missing_files_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[gateway]\nlisten_addr = \"0.0.0.0:1\"\n")?;
            let err = load(&["--config", "typo.toml"]).unwrap_err().to_string();
            assert!(err.contains("listen_addr"), "{err}");

            jail.create_file("bad.toml", "[indexer]\nconfirmations = \"twelve\"\n")?;
            let err = load(&["--config", "bad.toml"]).unwrap_err().to_string();
            assert!(err.contains("confirmations"), "{err}");

            let err = load(&["--config", "missing.toml"]).unwrap_err().to_string();
            assert!(err.contains("missing.toml"), "{err}");

            jail.set_env("LUMEN_INDEXER__BATCH_FRAMES", "-1");
            let err = load(&[]).unwrap_err().to_string().to_lowercase();
            assert!(err.contains("indexer.batch_frames"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_deployment_takes_the_configured_rpc_and_explorer() {
        Jail::expect_with(|jail| {
            let deployment = Deployment {
                chain_id: 31337,
                escrow: alloy::primitives::Address::repeat_byte(1),
                registry: alloy::primitives::Address::repeat_byte(2),
                deploy_block: 1,
                settler: alloy::primitives::Address::repeat_byte(3),
                treasury: alloy::primitives::Address::repeat_byte(4),
                rpc_url: None,
                explorer_url: None,
            };
            deployment.save(&jail.directory().join("deployment.json")).unwrap();
            let err = load(&["--deployment", "deployment.json"]).unwrap().deployment().unwrap_err();
            assert!(err.to_string().contains("rpc_url"), "{err}");

            jail.set_env("LUMEN_CHAIN__EXPLORER_URL", "https://explorer.example");
            let config =
                load(&["--deployment", "deployment.json", "--rpc-url", "http://rpc.example"]).unwrap();
            let loaded = config.deployment().unwrap();
            assert_eq!(loaded.rpc_url.as_deref(), Some("http://rpc.example"));
            assert_eq!(loaded.explorer_url.as_deref(), Some("https://explorer.example"));
            assert_eq!(loaded.escrow, deployment.escrow);
            Ok(())
        });
    }
}
