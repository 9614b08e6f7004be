//! `lumen payouts` and `lumen leaderboard`: what operators earned, from the
//! gateway's mirror of the chain.

use clap::Args;
use lumen_protocol::{
    Address,
    earnings::{Leaderboard, Month, NodeEarnings, OwnerEarnings, Statement, TokenAmount},
};

use crate::{
    connect::{ConnectArgs, get_json},
    output,
};

/// `lumen payouts`.
#[derive(Debug, Args)]
pub struct PayoutsArgs {
    /// Only this owner: its nodes, earned and withdrawn.
    #[arg(long)]
    pub owner: Option<Address>,
    /// The owner's statement for this month (UTC), `YYYY-MM`; needs `--owner`.
    #[arg(long, requires = "owner")]
    pub month: Option<Month>,
    /// Print the gateway's JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the statement as CSV; needs `--month`.
    #[arg(long, requires = "month")]
    pub csv: bool,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen leaderboard`.
#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// Print the gateway's JSON.
    #[arg(long)]
    pub json: bool,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn amounts(list: &[TokenAmount]) -> String {
    if list.is_empty() {
        return "0".into();
    }
    list.iter()
        .map(|t| {
            if t.token == Address::ZERO {
                format!("{} wei", t.amount)
            } else {
                format!("{} {:#x}", t.amount, t.token)
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn print_nodes(nodes: &[NodeEarnings]) {
    output::line(format!("{:<42} {:<42} {:>6} {:>8}  {}", "node", "owner", "jobs", "credits", "earned"));
    for n in nodes {
        output::line(format!(
            "{:<42} {:<42} {:>6} {:>8}  {}",
            format!("{:#x}", n.node),
            format!("{:#x}", n.owner),
            n.jobs_completed,
            n.credits,
            amounts(&n.earned)
        ));
    }
}

/// Runs `lumen payouts`.
pub async fn payouts(args: PayoutsArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let base = format!("{}/api/v1/earnings", conn.gateway);
    let Some(owner) = args.owner else {
        let nodes: Vec<NodeEarnings> = get_json(&conn.http, &base).await?;
        if args.json {
            output::json(&nodes);
        } else {
            print_nodes(&nodes);
        }
        return Ok(());
    };
    let Some(month) = args.month else {
        let earnings: OwnerEarnings = get_json(&conn.http, &format!("{base}/{owner:#x}")).await?;
        if args.json {
            output::json(&earnings);
            return Ok(());
        }
        output::line(format!(
            "owner {owner:#x}: {} jobs, {} credits, earned {}, withdrawn {}",
            earnings.jobs_completed,
            earnings.credits,
            amounts(&earnings.earned),
            amounts(&earnings.withdrawn)
        ));
        print_nodes(&earnings.nodes);
        return Ok(());
    };
    let url = format!("{base}/{owner:#x}/statements/{month}");
    let statement: Statement = get_json(&conn.http, &url).await?;
    if args.csv {
        // The same rows the gateway serves with ?format=csv.
        output::raw(&statement.to_csv());
        return Ok(());
    }
    if args.json {
        output::json(&statement);
        return Ok(());
    }
    output::line(format!(
        "statement of {owner:#x} for {month}: {} jobs, {} credits, earned {}, withdrawn {}",
        statement.jobs_completed,
        statement.credits,
        amounts(&statement.earned),
        amounts(&statement.withdrawn)
    ));
    // Every transaction links to the explorer (the gateway's own on a devnet).
    let links = conn.explorer_links().await;
    let tx = |hash| links.as_ref().map_or_else(|| format!("{hash:#x}"), |l| l.tx(hash));
    output::line(format!(
        "{:<20} {:>6} {:<42} {:>6} {:>6} {:>8} {:>24}  {}",
        "time (unix)", "job", "node", "frames", "checks", "credits", "net", "tx"
    ));
    for l in &statement.lines {
        output::line(format!(
            "{:<20} {:>6} {:<42} {:>6} {:>6} {:>8} {:>24}  {}",
            l.time,
            l.job_id,
            format!("{:#x}", l.node),
            l.frames,
            l.verification_renders,
            l.credits,
            l.net.to_string(),
            tx(l.tx_hash)
        ));
    }
    for w in &statement.withdrawals {
        output::line(format!("{:<20} withdrew {} of {:#x} in {}", w.time, w.amount, w.token, tx(w.tx_hash)));
    }
    Ok(())
}

/// Runs `lumen leaderboard`.
pub async fn leaderboard(args: LeaderboardArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let board: Leaderboard = get_json(&conn.http, &format!("{}/api/v1/leaderboard", conn.gateway)).await?;
    if args.json {
        output::json(&board);
        return Ok(());
    }
    output::line(format!(
        "{:>4} {:<7} {:<42} {:>6} {:>8} {:>7}  {}",
        "rank", "badge", "node", "jobs", "credits", "uptime", "earned"
    ));
    for e in &board.entries {
        output::line(format!(
            "{:>4} {:<7} {:<42} {:>6} {:>8} {:>6.1}%  {}",
            e.rank,
            e.badge.map(|b| b.to_string()).unwrap_or_default(),
            format!("{:#x}", e.node),
            e.jobs_completed,
            e.credits,
            e.uptime_percent,
            amounts(&e.earned)
        ));
    }
    Ok(())
}
