//! `lumen devnet`: a whole local network in one process.
//!
//! Starts Anvil (the project-local binary), deploys the contracts, runs the
//! gateway, matchmaker, verifier and indexer in this process on SQLite and
//! the built-in blob store under `--data-dir`, and starts `--nodes` render
//! nodes as child processes, each with a fresh key bound on-chain to its own
//! owner account. Writes `DIR/devnet.json` when ready and runs until Ctrl-C.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
};

use alloy::{
    primitives::{U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
};
use clap::Args;
use eyre::{WrapErr, bail};
use lumen_chain::{DeployConfig, Deployment};
use lumen_stack::{LumenConfig, Overrides, Services, StackDeps};
use lumen_store::{Bus, Store};
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::{
    devnet_file::{DevnetFile, DevnetNode},
    output,
};

/// Arguments of `lumen devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Number of local render nodes to start (at most 8: one Anvil account owns each).
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    /// Where the devnet keeps its database, blobs, node keys and `devnet.json`.
    #[arg(long, default_value = crate::devnet_file::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Gateway HTTP port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// Protocol fee in basis points taken from each release.
    #[arg(long, default_value_t = 250)]
    pub fee_bps: u16,
    /// Service settings (TOML, see docs/configuration.md); `[chain]` is
    /// ignored: the devnet deploys its own contracts.
    #[arg(long, env = "LUMEN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Misbehaving node for failure tests: `INDEX=FAULT`, where FAULT is one
    /// of black-frames, wrong-key, noise, smooth, copy-frame, neighbour,
    /// fake-failure, silent, honest-then-noise, fewer-samples, other-scene,
    /// slot-hoarder.
    #[arg(long, hide = true, value_name = "INDEX=FAULT")]
    pub node_fault: Vec<String>,
}

/// Anvil's dev account roles.
const ADMIN: usize = 0;
const ARTIST: usize = 1;
const FIRST_OWNER: usize = 2;

/// Runs the devnet until Ctrl-C (or SIGTERM); SIGHUP restarts its services.
pub async fn run(args: DevnetArgs) -> eyre::Result<()> {
    if args.nodes as usize > 10 - FIRST_OWNER {
        bail!("--nodes is at most {} (one Anvil dev account owns each node)", 10 - FIRST_OWNER);
    }
    let faults = parse_faults(&args.node_fault)?;
    let dir = prepare_dir(&args.data_dir)?;

    let anvil = lumen_chain::anvil::spawn()?;
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let (admin, artist) = (key(ADMIN), key(ARTIST));
    let rpc_url = anvil.endpoint();
    info!(target: "devnet", %rpc_url, chain_id = anvil.chain_id(), "anvil started");

    let admin_provider = lumen_chain::signer_provider(&admin, &rpc_url)?;
    let deploy_config = DeployConfig { fee_bps: args.fee_bps, ..DeployConfig::devnet(admin.address()) };
    let deployment = lumen_chain::deploy(&admin_provider, &deploy_config).await?;
    deployment.save(&dir.join("deployment.json"))?;
    // A test ERC-20 for jobs paid in a token, minted to the artist.
    let token =
        lumen_chain::contracts::Erc20::deploy(&admin_provider, "Lumen Test Dollar".into(), "LTD".into())
            .await
            .map_err(lumen_chain::ChainError::from_contract)?;
    lumen_chain::deploy::send(token.mint(artist.address(), U256::from(10u128.pow(24)))).await?;
    let test_token = *token.address();
    // The escrow's fee slot for it exists from the start, as the native
    // coin's does: the first job paid in it does not pay for that storage.
    let escrow = lumen_chain::contracts::RenderEscrow::new(deployment.escrow, &admin_provider);
    lumen_chain::deploy::send(escrow.openFees(test_token)).await?;

    let figment = LumenConfig::figment(args.config.as_deref())?.merge(
        Overrides::new()
            .set("data_dir", Some(&dir))
            .set("gateway.listen", Some(SocketAddr::from(([127, 0, 0, 1], args.gateway_port))))
            .into_figment(),
    );
    let mut config = LumenConfig::extract(&figment)?;
    // The gateway accepts the test token at the native coin's lowest price.
    let tokens = &mut config.gateway.market.tokens;
    if !tokens.iter().any(|t| t.token == test_token) {
        let floor = tokens
            .iter()
            .find(|t| t.token == alloy::primitives::Address::ZERO)
            .map(|t| t.min_price_per_frame);
        tokens.push(lumen_protocol::api::TokenPrice {
            token: test_token,
            min_price_per_frame: floor.unwrap_or(lumen_protocol::Wei::from(1u128)),
        });
    }
    let deployment = deployment.with_rpc_url(rpc_url.clone());
    let store = Store::open(&dir).await?;
    let settler = lumen_chain::Settler { provider: admin_provider.clone(), key: admin.clone() };
    let deps = || StackDeps {
        deployment: Some(deployment.clone()),
        store: store.clone(),
        bus: Bus::new(),
        settler: Some(settler.clone()),
    };
    let mut stack = lumen_stack::spawn(&config, Services::ALL, deps()).await?;
    // A restart (SIGHUP) binds the same address again: clients reconnect to it.
    if let Some(addr) = stack.gateway_addr() {
        config.gateway.listen = addr;
    }
    let (gateway_url, ws_url) = (
        stack.gateway_url().expect("the devnet runs a gateway").to_owned(),
        stack.ws_url().expect("the devnet runs a gateway"),
    );

    let mut children = Vec::new();
    let mut devnet_nodes = Vec::new();
    for i in 0..args.nodes as usize {
        let (node, child) = start_node(
            &dir,
            i,
            &key(FIRST_OWNER + i),
            &deployment,
            &rpc_url,
            &ws_url,
            faults.get(&i).copied(),
        )
        .await?;
        devnet_nodes.push(node);
        children.push(child);
    }
    // The escrow pays only nodes bound before a job opened: move the chain's
    // clock past the bindings, so a job submitted at once opens after them.
    use alloy::providers::Provider as _;
    let _: serde_json::Value = admin_provider.raw_request("evm_increaseTime".into(), [U256::from(1)]).await?;
    let _: serde_json::Value = admin_provider.raw_request("evm_mine".into(), [0u8; 0]).await?;

    let file = DevnetFile {
        deployment: deployment.clone(),
        gateway_url: gateway_url.clone(),
        ws_url,
        fee_bps: args.fee_bps,
        artist: artist.address(),
        artist_private_key: alloy::hex::encode_prefixed(artist.to_bytes()),
        test_token: Some(test_token),
        nodes: devnet_nodes,
        pid: std::process::id(),
    };
    let path = DevnetFile::path(&dir);
    file.save(&path)?;
    output::line(format!("Gateway: {gateway_url}"));
    output::line(format!("RPC: {rpc_url} (chain {})", deployment.chain_id));
    output::line(format!("Escrow: {}  Registry: {}", deployment.escrow, deployment.registry));
    output::line(format!("Test token (LTD, minted to the artist): {test_token}"));
    output::line(format!("devnet ready with {} nodes: {}", args.nodes, path.display()));

    // SIGHUP restarts the services (gateway, matchmaker, verifier, indexer)
    // on the same chain, database and address, as redeploying a gateway
    // would: nodes and open dashboards must reconnect and catch up.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            () = crate::shutdown_signal() => info!(target: "devnet", "shutting down"),
            name = stack.stopped() => warn!(target: "devnet", service = name, "a service stopped: shutting down"),
            _ = hangup.recv() => {
                info!(target: "devnet", "SIGHUP: restarting the services");
                if let Err(err) = stack.shutdown().await {
                    warn!(target: "devnet", %err, "stopping the services before the restart failed");
                }
                stack = lumen_stack::spawn(&config, Services::ALL, deps()).await?;
                info!(target: "devnet", url = stack.gateway_url(), "services restarted");
                continue;
            }
        }
        break;
    }
    for child in &mut children {
        stop_child(child).await;
    }
    let stopped = stack.shutdown().await;
    drop(anvil);
    let _ = std::fs::remove_file(&path);
    info!(target: "devnet", "stopped");
    Ok(stopped?)
}

fn parse_faults(specs: &[String]) -> eyre::Result<std::collections::HashMap<usize, lumen_node::Fault>> {
    specs
        .iter()
        .map(|spec| {
            let (index, fault) =
                spec.split_once('=').ok_or_else(|| eyre::eyre!("--node-fault expects INDEX=FAULT"))?;
            let fault: lumen_node::Fault = fault.parse().map_err(|e: String| eyre::eyre!(e))?;
            Ok((index.parse().wrap_err("--node-fault index")?, fault))
        })
        .collect()
}

/// A fresh devnet: the chain is new, so the old database, keys and devnet
/// file mean nothing. Blobs are kept (content-addressed, still valid).
fn prepare_dir(dir: &Path) -> eyre::Result<PathBuf> {
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    for name in ["lumen.db", "lumen.db-wal", "lumen.db-shm", "devnet.json", "deployment.json"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir_all(dir.join("nodes"));
    Ok(dir)
}

fn free_port() -> eyre::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_node(
    dir: &Path,
    index: usize,
    owner: &PrivateKeySigner,
    deployment: &Deployment,
    rpc_url: &str,
    ws_url: &str,
    fault: Option<lumen_node::Fault>,
) -> eyre::Result<(DevnetNode, Child)> {
    let node_dir = dir.join("nodes").join(format!("node-{index}"));
    let key_file = node_dir.join("private_key");
    let node_key = lumen_node::key::load_or_create(&key_file)?;
    crate::cmd::node::bind_node(
        rpc_url,
        deployment.registry,
        deployment.chain_id,
        &node_key,
        owner,
        U256::from(parse_ether("1")?),
    )
    .await
    .wrap_err_with(|| format!("binding node {index}"))?;

    let port = free_port()?;
    let log = node_dir.join("node.log");
    let log_file = std::fs::File::create(&log)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["node", "run", "--gateway", ws_url, "--health-port", &port.to_string()])
        .arg("--key-file")
        .arg(&key_file)
        .arg("--data-dir")
        .arg(&node_dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true);
    if let Some(fault) = fault {
        command.env("LUMEN_NODE_FAULT", fault.as_str());
        warn!(target: "devnet", index, ?fault, "starting a deliberately misbehaving node");
    }
    let child = command.spawn().wrap_err("cannot start a node process")?;
    let pid = child.id().unwrap_or_default();
    info!(target: "devnet", index, node = %node_key.address(), owner = %owner.address(), pid, "node started");
    Ok((
        DevnetNode {
            address: node_key.address(),
            owner: owner.address(),
            key_file,
            health_url: format!("http://127.0.0.1:{port}/health"),
            pid,
            log,
        },
        child,
    ))
}

/// Asks a node to stop (SIGTERM: it kills its renders), then makes sure.
async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use clap::Args as _;

    use super::*;

    #[test]
    fn the_node_fault_help_names_every_fault() {
        let command = DevnetArgs::augment_args(clap::Command::new("devnet"));
        let arg = command.get_arguments().find(|a| a.get_id() == "node_fault").unwrap();
        let help = arg.get_long_help().or_else(|| arg.get_help()).unwrap().to_string();
        for fault in lumen_node::Fault::ALL {
            assert!(help.contains(fault.as_str()), "--node-fault help misses {}: {help}", fault.as_str());
        }
        let faults = parse_faults(&["3=other-scene".into(), "0=slot-hoarder".into()]).unwrap();
        assert_eq!(faults[&3], lumen_node::Fault::OtherScene);
        assert_eq!(faults[&0], lumen_node::Fault::SlotHoarder);
        assert!(parse_faults(&["1=hoard".into()]).is_err());
    }
}
