//! `lumen node run|register`.

use std::path::PathBuf;

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use clap::{Args, Subcommand};

use lumen_chain::{ChainError, bind, contracts::NodeRegistry, deploy::send};

use lumen_protocol::api::NodeView;

use crate::{connect::ConnectArgs, output};

/// `lumen node …`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// The node subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a render node until interrupted.
    Run(lumen_node::args::RunArgs),
    /// Create the node key if needed and bind it to an owner wallet on-chain.
    Register(RegisterArgs),
    /// The gateway's nodes: state, load, stake and track record.
    List(ListArgs),
    /// Withdraw the owner's credits from the escrow (what its nodes earned).
    Withdraw(WithdrawArgs),
}

/// `lumen node withdraw`.
#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// Environment variable holding the owner wallet's private key.
    #[arg(long, value_name = "VAR")]
    pub owner_key_env: String,
    /// Token to withdraw (an ERC-20 address); default: the native coin.
    #[arg(long)]
    pub token: Option<alloy::primitives::Address>,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen node list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the gateway's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen node register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Key file (created with mode 0600 if missing). Default: ~/.lumen/private_key.
    #[arg(long, env = "NODE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the owner wallet's private key.
    #[arg(long, value_name = "VAR")]
    pub owner_key_env: String,
    /// Stake to lock with the node, wei.
    #[arg(long, default_value_t = 0)]
    pub stake: u128,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs a node subcommand.
pub async fn run(args: NodeArgs) -> eyre::Result<()> {
    match args.command {
        NodeCommand::Run(a) => run_node(a).await,
        NodeCommand::Register(a) => register(a).await,
        NodeCommand::List(a) => list(a).await,
        NodeCommand::Withdraw(a) => withdraw(a).await,
    }
}

async fn list(args: ListArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let nodes: Vec<NodeView> =
        crate::connect::get_json(&conn.http, &format!("{}/api/v1/nodes", conn.gateway)).await?;
    if args.json {
        output::json(&nodes);
        return Ok(());
    }
    output::line(format!(
        "{:<42} {:<10} {:>7} {:>10} {:>8} {:>7} {:>8} {:>8}  {}",
        "node", "state", "running", "reputation", "accepted", "agreed", "outvoted", "rejected", "stake (wei)"
    ));
    for node in &nodes {
        let trust = node.trust.clone().unwrap_or_default();
        let state = if trust.banned { "BANNED".to_owned() } else { node.state.to_string() };
        output::line(format!(
            "{:<42} {:<10} {:>7} {:>10.3} {:>8} {:>7} {:>8} {:>8}  {}",
            format!("{:#x}", node.address),
            state,
            node.running,
            trust.reputation,
            trust.accepted,
            trust.agreed_samples,
            trust.outvoted,
            trust.rejected,
            node.stake
        ));
    }
    Ok(())
}

async fn run_node(args: lumen_node::args::RunArgs) -> eyre::Result<()> {
    let node = args.spawn().await?;
    output::line(format!("node {} running; health at http://{}/health", node.address, node.health_addr));
    node.run_until(crate::shutdown_signal()).await?;
    Ok(())
}

/// Binds `node_key` to the owner on-chain (used by `register` and the devnet).
pub async fn bind_node(
    rpc_url: &str,
    registry: alloy::primitives::Address,
    chain_id: u64,
    node_key: &PrivateKeySigner,
    owner: &PrivateKeySigner,
    stake: U256,
) -> eyre::Result<alloy::primitives::TxHash> {
    let provider = lumen_chain::signer_provider(owner, rpc_url)?;
    let contract = NodeRegistry::new(registry, &provider);
    let nonce = contract.nonces(node_key.address()).call().await.map_err(ChainError::from_contract)?;
    let deadline = U256::from(u64::MAX);
    let signature = bind::sign(node_key, owner.address(), nonce, deadline, chain_id, registry).await?;
    let receipt = send(contract.register(node_key.address(), deadline, signature).value(stake)).await?;
    Ok(receipt.transaction_hash)
}

async fn withdraw(args: WithdrawArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let owner = lumen_chain::key_from_env(&args.owner_key_env)?;
    let token = args.token.unwrap_or(alloy::primitives::Address::ZERO);
    let provider = lumen_chain::signer_provider(&owner, &conn.rpc_url)?;
    let escrow = lumen_chain::contracts::RenderEscrow::new(conn.deployment.escrow, &provider);
    let credit = escrow.credits(owner.address(), token).call().await.map_err(ChainError::from_contract)?;
    if credit.is_zero() {
        eyre::bail!("owner {} has no credits in {token:#x} to withdraw", owner.address());
    }
    let receipt = send(escrow.withdraw(token)).await?;
    let unit = if token.is_zero() { "wei".to_owned() } else { format!("of token {token:#x}") };
    let link = conn
        .explorer_links()
        .await
        .map(|l| format!(" {}", l.tx(receipt.transaction_hash)))
        .unwrap_or_default();
    output::line(format!(
        "withdrew {credit} {unit} to owner {} in tx {}{link}",
        owner.address(),
        receipt.transaction_hash
    ));
    Ok(())
}

async fn register(args: RegisterArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let key_file =
        args.key_file.clone().unwrap_or_else(|| lumen_node::args::default_home().join("private_key"));
    let node_key = lumen_node::key::load_or_create(&key_file)?;
    let owner = lumen_chain::key_from_env(&args.owner_key_env)?;
    let d = &conn.deployment;
    let tx =
        bind_node(&conn.rpc_url, d.registry, d.chain_id, &node_key, &owner, U256::from(args.stake)).await?;
    let link = conn.explorer_links().await.map(|l| format!(" {}", l.tx(tx))).unwrap_or_default();
    output::line(format!("node {} bound to owner {} in tx {tx}{link}", node_key.address(), owner.address()));
    Ok(())
}
