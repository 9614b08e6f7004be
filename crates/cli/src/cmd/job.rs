//! `lumen job submit|status|wait|download|cancel`.

use std::{path::PathBuf, time::Duration};

use alloy::{
    primitives::{
        Address, U256,
        utils::{format_ether, format_units},
    },
    providers::Provider,
};
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use lumen_chain::{
    ChainError,
    contracts::{Erc20, RenderEscrow},
    deploy::send,
    sign::{JobSpec, sign_digest, spec_hash},
};
use lumen_protocol::{
    ChainEventKind, FrameState, JobId, JobState, Wei,
    api::{JobView, Market, RegisterJob, UploadedBlend},
};
use rand::Rng;

use reqwest::Method;

use crate::{
    connect::{ConnectArgs, WalletArgs, decode},
    output,
    session::ArtistClient,
};

/// `lumen job …`
#[derive(Debug, Args)]
pub struct JobArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: JobCommand,
}

/// The job subcommands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Upload a .blend, lock payment in the escrow, and register the job.
    Submit(SubmitArgs),
    /// Show a job and its frames.
    Status(StatusArgs),
    /// Block until a job is finished; exit non-zero if any frame failed for good.
    Wait(WaitArgs),
    /// Download a job's verified frames.
    Download(DownloadArgs),
    /// Cancel a job on-chain (verified frames may still be paid during the grace period).
    Cancel(CancelArgs),
}

/// `lumen job submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The packed .blend file.
    pub file: PathBuf,
    /// Render only frames A-B (within the scene's range), e.g. `1-24`.
    #[arg(long, value_name = "A-B")]
    pub frames: Option<String>,
    /// Price of one verified frame, in the smallest unit of the payment
    /// token (wei for the native coin).
    #[arg(long, value_name = "WEI", default_value = "1000000000000000")]
    pub price_per_frame: u128,
    /// Pay in this ERC-20 token instead of the native coin. It must be one
    /// the gateway accepts (`GET /api/v1/market`); the escrow is approved
    /// for exactly the amount locked, then the job is opened.
    #[arg(long, value_name = "ADDRESS")]
    pub token: Option<Address>,
    /// The artist's wallet.
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Hours until the deadline after which the artist can always refund.
    #[arg(long, default_value_t = 24)]
    pub deadline_hours: u64,
    /// Verification budget: how many verification renders (independent
    /// re-renders of sampled frames, at most one per frame, at the frame
    /// price) the job may pay. Locked with the job; the unused part is
    /// refunded. Default: one per frame, so that every frame the network
    /// samples is verified. Below what the network samples, frames the
    /// budget cannot verify go only to nodes trusted enough to skip a sample
    /// (docs/trust.md).
    #[arg(long, value_name = "N")]
    pub verifications: Option<u32>,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen job status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Job id.
    pub job: JobId,
    /// Print the full JSON document.
    #[arg(long)]
    pub json: bool,
    /// The artist's wallet (signs in to the gateway).
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen job wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Job id.
    pub job: JobId,
    /// Give up after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// The artist's wallet (signs in to the gateway).
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen job download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Job id.
    pub job: JobId,
    /// Folder to write the frames into (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// The artist's wallet (signs in to the gateway).
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `lumen job cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Job id.
    pub job: JobId,
    /// The artist's wallet.
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs a job subcommand.
pub async fn run(args: JobArgs) -> eyre::Result<()> {
    match args.command {
        JobCommand::Submit(a) => submit(a).await,
        JobCommand::Status(a) => status(a).await,
        JobCommand::Wait(a) => wait(a).await,
        JobCommand::Download(a) => download(a).await,
        JobCommand::Cancel(a) => cancel(a).await,
    }
}

/// Parses `A-B` (or a single frame `A`).
fn parse_range(text: &str) -> eyre::Result<(i32, i32)> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let a: i32 = a.parse().wrap_err_with(|| format!("bad frame range {text:?}: expected A-B"))?;
    let b: i32 = b.parse().wrap_err_with(|| format!("bad frame range {text:?}: expected A-B"))?;
    if b < a {
        bail!("bad frame range {text:?}: the end is before the start");
    }
    Ok((a, b))
}

async fn submit(args: SubmitArgs) -> eyre::Result<()> {
    let artist = ArtistClient::new(args.connect.connect().await?, &args.wallet)?;
    let (conn, key) = (artist.conn(), artist.key());
    let bytes = std::fs::read(&args.file).wrap_err_with(|| format!("cannot read {}", args.file.display()))?;

    // Upload first: a bad file is refused here, before anything is locked on-chain.
    let response = artist.send(Method::POST, "/api/v1/blends", |r| r.body(bytes.clone())).await?;
    let uploaded: UploadedBlend = decode(response, "upload")
        .await
        .wrap_err_with(|| format!("{} was refused; nothing was locked on-chain", args.file.display()))?;
    let scene = &uploaded.scene;
    let (start, end) = match &args.frames {
        Some(text) => {
            let (a, b) = parse_range(text)?;
            if a < scene.frame_start || b > scene.frame_end {
                bail!(
                    "frames {a}-{b} are outside the scene's range {}-{}",
                    scene.frame_start,
                    scene.frame_end
                );
            }
            (a, b)
        }
        None => (scene.frame_start, scene.frame_end),
    };
    let spec = JobSpec {
        blendHash: uploaded.hash.to_b256(),
        frameStart: start,
        frameEnd: end,
        frameStep: u32::try_from(scene.frame_step).unwrap_or(1).max(1),
        width: scene.width,
        height: scene.height,
        engine: scene.engine.clone(),
        token: args.token.unwrap_or(Address::ZERO),
        pricePerFrame: args.price_per_frame,
        salt: U256::from_be_bytes(rand::rng().random::<[u8; 32]>()),
    };
    let frame_count = spec.frame_count().ok_or_else(|| eyre!("the frame range is empty"))?;
    let (chain_id, escrow_address) = (conn.deployment.chain_id, conn.deployment.escrow);
    let hash = spec_hash(&spec, chain_id, escrow_address);
    let signature = sign_digest(key, hash).await?;

    let provider = lumen_chain::signer_provider(key, &conn.rpc_url)?;
    let escrow = RenderEscrow::new(escrow_address, &provider);
    // The gateway's market limits, checked before any money is locked.
    let market: Market = decode(
        conn.http
            .get(format!("{}/api/v1/market", conn.gateway))
            .send()
            .await
            .wrap_err("cannot reach the gateway")?,
        "market limits",
    )
    .await?;
    if let Some((code, message)) = market.problem(spec.token, Wei::from(args.price_per_frame), frame_count) {
        bail!("the gateway would refuse this job ({code}): {message}");
    }
    let verifications = args.verifications.unwrap_or(frame_count);
    if verifications > frame_count {
        return Err(eyre!("--verifications {verifications} is above the job's {frame_count} frames"));
    }
    let cost = escrow
        .quote(frame_count, verifications, args.price_per_frame)
        .call()
        .await
        .map_err(ChainError::from_contract)?;
    let samples = scene.samples.map(|n| format!(", {n} samples")).unwrap_or_default();
    output::line(format!(
        "scene: {} frames {start}-{end} (step {}), {}x{}, {}{samples}, {:.0} fps",
        uploaded.hash, spec.frameStep, scene.width, scene.height, scene.engine, scene.fps
    ));
    let price = Wei::from(args.price_per_frame);
    let frames_cost = price.checked_mul(u64::from(frame_count)).ok_or_else(|| eyre!("cost overflows"))?;
    let budget =
        Wei(cost).checked_sub(frames_cost).ok_or_else(|| eyre!("the escrow quoted less than the frames"))?;
    let unit = Unit::of(spec.token, &provider).await?;
    output::line(format!(
        "cost: {frame_count} frames x {} = {}, paid only for verified frames",
        unit.show(price.0),
        unit.show(frames_cost.0)
    ));
    output::line(format!(
        "verification budget: up to {verifications} verification renders x {} = {}, unused part refunded",
        unit.show(price.0),
        unit.show(budget.0)
    ));
    // Every transaction printed links to the explorer (the gateway's own on a devnet).
    let links = conn.explorer_links().await;
    let link = |tx| links.as_ref().map(|l| format!(" {}", l.tx(tx))).unwrap_or_default();
    let me = key.address();
    if spec.token != Address::ZERO {
        // The escrow pulls the token: the artist must hold it, and the
        // escrow may take exactly what is locked, no more.
        let erc20 = Erc20::new(spec.token, &provider);
        let balance = erc20.balanceOf(me).call().await.map_err(ChainError::from_contract)?;
        if balance < cost {
            bail!(
                "{me} holds {}, less than the {} to lock; nothing was locked",
                unit.show(balance),
                unit.show(cost)
            );
        }
        let allowance =
            erc20.allowance(me, escrow_address).call().await.map_err(ChainError::from_contract)?;
        if allowance != cost {
            let receipt = send(erc20.approve(escrow_address, cost)).await?;
            output::line(format!(
                "approved escrow {escrow_address} for {} in tx {}{}",
                unit.show(cost),
                receipt.transaction_hash,
                link(receipt.transaction_hash)
            ));
        }
    }
    output::line(format!("locked in escrow {escrow_address}: {}", unit.show(cost)));

    let now = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await?
        .map(|b| b.header.timestamp)
        .ok_or_else(|| eyre!("the chain returned no latest block"))?;
    let deadline = now + args.deadline_hours.max(1) * 3_600;
    let receipt = send(
        escrow
            .openJob(hash, spec.token, args.price_per_frame, frame_count, verifications, deadline)
            .value(if spec.token == Address::ZERO { cost } else { U256::ZERO }),
    )
    .await?;
    let opened = receipt
        .decoded_log::<RenderEscrow::JobOpened>()
        .ok_or_else(|| eyre!("openJob succeeded but emitted no JobOpened event"))?;
    let job_id = JobId::from_u256(opened.jobId).ok_or_else(|| eyre!("job id out of range"))?;
    output::line(format!(
        "opened job {job_id} in tx {}{}",
        receipt.transaction_hash,
        link(receipt.transaction_hash)
    ));

    let registration = RegisterJob { job_id, spec, signature };
    let response = artist.send(Method::POST, "/api/v1/jobs", |r| r.json(&registration)).await?;
    let _: JobView = decode(response, "job registration").await.wrap_err_with(|| {
        format!("job {job_id} is funded on-chain but the gateway refused it; cancel it with `lumen job cancel {job_id}`")
    })?;
    output::line(job_id);
    Ok(())
}

async fn fetch_job(artist: &ArtistClient, job: JobId) -> eyre::Result<JobView> {
    artist.get_json(&format!("/api/v1/jobs/{job}")).await
}

async fn status(args: StatusArgs) -> eyre::Result<()> {
    let artist = ArtistClient::new(args.connect.connect().await?, &args.wallet)?;
    let job = fetch_job(&artist, args.job).await?;
    if args.json {
        output::json(&job);
        return Ok(());
    }
    let links = artist.conn().explorer_links().await;
    print_summary(&job, links.as_ref());
    Ok(())
}

/// The human view of a job: frames, payouts per owner, refund, transactions.
fn print_summary(job: &JobView, links: Option<&lumen_protocol::explorer::ExplorerLinks>) {
    let link = |tx| links.map(|l| format!(" {}", l.tx(tx))).unwrap_or_default();
    output::line(format!(
        "job {}: {}{}",
        job.job_id,
        job.state,
        job.failure.as_deref().map(|f| format!(" ({f})")).unwrap_or_default()
    ));
    for f in &job.frames {
        output::line(format!(
            "  frame {:>5}  {:<10} node {}  {}{}",
            f.frame,
            f.state.as_str(),
            f.node.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            f.payout_tx.map(|t| format!("paid in {t}{}", link(t))).unwrap_or_default(),
            f.failure.as_deref().map(|r| format!("failed: {r}")).unwrap_or_default(),
        ));
    }
    if let Some(reason) = &job.settlement_parked {
        output::line(format!("settlement parked: {reason}"));
    }
    for u in &job.unpayable {
        output::line(format!("node {} cannot be paid for this job: {}", u.node, u.reason));
    }
    let verified = job.count(FrameState::Verified);
    let failed = job.count(FrameState::Failed);
    output::line(format!("frames: {} total, {verified} verified, {failed} failed", job.frame_count));
    // Per owner: frames paid, verification renders paid, net amount.
    let mut per_owner: std::collections::BTreeMap<Address, (usize, usize, Wei)> = Default::default();
    let mut fees = Wei::ZERO;
    for f in &job.frames {
        if let (Some(owner), Some(amount), Some(fee)) = (f.payout_owner, f.payout_amount, f.payout_fee) {
            let entry = per_owner.entry(owner).or_default();
            entry.0 += 1;
            entry.2 += amount.saturating_sub(fee);
            fees += fee;
        }
        if let Some(check) = &f.verification_payout {
            let entry = per_owner.entry(check.owner).or_default();
            entry.1 += 1;
            entry.2 += check.amount.saturating_sub(check.fee);
            fees += check.fee;
        }
    }
    for (owner, (frames, checks, net)) in &per_owner {
        let checks = if *checks == 0 { String::new() } else { format!(" and {checks} verification renders") };
        output::line(format!(
            "paid to owner {owner:#x}: {frames} frames{checks}, {net} wei ({} ETH) after fee",
            format_ether(net.get())
        ));
    }
    if !fees.is_zero() {
        output::line(format!("protocol fee to the treasury: {fees} wei ({} ETH)", format_ether(fees.get())));
    }
    for tx in &job.transactions {
        let amount = tx.amount.map(|a| format!(" amount {a} wei")).unwrap_or_default();
        if tx.event == ChainEventKind::JobRefunded {
            let wei = tx.amount.unwrap_or_default();
            output::line(format!(
                "refund to artist: {wei} wei ({} ETH) in tx {}{}",
                format_ether(wei.get()),
                tx.tx_hash,
                link(tx.tx_hash)
            ));
        }
        output::line(format!(
            "  tx {} {} (block {}){amount}{}",
            tx.tx_hash,
            tx.event,
            tx.block_number,
            link(tx.tx_hash)
        ));
    }
}

async fn wait(args: WaitArgs) -> eyre::Result<()> {
    let artist = ArtistClient::new(args.connect.connect().await?, &args.wallet)?;
    let started = std::time::Instant::now();
    let mut last = String::new();
    let job = loop {
        let job = fetch_job(&artist, args.job).await?;
        let verified = job.count(FrameState::Verified);
        let paid = job.frames.iter().filter(|f| f.payout_tx.is_some()).count();
        let progress = format!(
            "job {}: {} ({verified}/{} verified, {paid} paid)",
            job.job_id, job.state, job.frame_count
        );
        if progress != last {
            tracing::info!(target: "cli::wait", "{progress}");
            last = progress;
        }
        if job.is_final() {
            break job;
        }
        if args.timeout > 0 && started.elapsed() > Duration::from_secs(args.timeout) {
            bail!("job {} is still {} after {} s", args.job, job.state, args.timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let failed: Vec<_> = job.frames.iter().filter(|f| f.state == FrameState::Failed).collect();
    if job.state == JobState::Completed && failed.is_empty() {
        output::line(format!("job {} completed: {} frames verified and paid", job.job_id, job.frame_count));
        return Ok(());
    }
    let reason = job.failure.clone().unwrap_or_else(|| "some frames failed".into());
    for f in &failed {
        output::line(format!("frame {} failed: {}", f.frame, f.failure.as_deref().unwrap_or("unknown")));
    }
    bail!(
        "job {} {}: {reason} ({} of {} frames failed)",
        job.job_id,
        job.state,
        failed.len(),
        job.frame_count
    )
}

async fn download(args: DownloadArgs) -> eyre::Result<()> {
    let artist = ArtistClient::new(args.connect.connect().await?, &args.wallet)?;
    let job = fetch_job(&artist, args.job).await?;
    std::fs::create_dir_all(&args.out).wrap_err_with(|| format!("cannot create {}", args.out.display()))?;
    let mut written = 0;
    // The gateway hands over a full frame once its payment is final on-chain.
    let verified = job.frames.iter().filter(|f| f.state == FrameState::Verified);
    let (paid, unpaid): (Vec<_>, Vec<_>) = verified.partition(|f| f.payout_tx.is_some());
    for f in paid {
        let path = format!("/api/v1/jobs/{}/frames/{}", job.job_id, f.frame);
        let response = artist.send(Method::GET, &path, |r| r).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("GET {path}: HTTP {status}: {body}");
        }
        let bytes = response.bytes().await?;
        let actual = lumen_protocol::content_hash(&bytes);
        if Some(actual) != f.output_hash {
            bail!("frame {} hashes to {actual}, not its verified hash", f.frame);
        }
        let path = args.out.join(format!("{:05}.png", f.frame));
        std::fs::write(&path, &bytes).wrap_err_with(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    output::line(format!("downloaded {written} paid frames of job {} to {}", job.job_id, args.out.display()));
    if !unpaid.is_empty() {
        output::line(format!(
            "{} verified frames are not paid on-chain yet: they can be downloaded once they are",
            unpaid.len()
        ));
    }
    Ok(())
}

async fn cancel(args: CancelArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let key = args.wallet.signer(&conn)?;
    let provider = lumen_chain::signer_provider(&key, &conn.rpc_url)?;
    // The escrow keeps a hash of the job's terms; the call names them.
    let (terms, _) = lumen_chain::job::find_terms(
        &provider,
        conn.deployment.escrow,
        conn.deployment.deploy_block,
        args.job,
    )
    .await?
    .ok_or_else(|| eyre!("job {} does not exist on this escrow", args.job))?;
    let escrow = RenderEscrow::new(conn.deployment.escrow, &provider);
    let receipt = send(escrow.cancel(args.job.to_u256(), terms)).await?;
    let link = conn.explorer_links().await.map(|l| format!(" {}", l.tx(receipt.transaction_hash)));
    output::line(format!(
        "cancelled job {} in tx {}{}",
        args.job,
        receipt.transaction_hash,
        link.unwrap_or_default()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn frame_ranges() {
        assert_eq!(parse_range("1-24").unwrap(), (1, 24));
        assert_eq!(parse_range("7").unwrap(), (7, 7));
        assert!(parse_range("5-2").is_err());
        assert!(parse_range("a-b").is_err());
    }
}

/// How amounts of a payment token are shown: in its units and in its
/// smallest one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    symbol: String,
    decimals: u8,
    /// The smallest unit's name (`wei` for the native coin).
    base: &'static str,
}

impl Unit {
    /// The native coin, or the ERC-20 at `token` as the token says
    /// (`symbol`, `decimals`).
    async fn of<P: Provider>(token: Address, provider: &P) -> eyre::Result<Self> {
        if token == Address::ZERO {
            return Ok(Self { symbol: "ETH".into(), decimals: 18, base: "wei" });
        }
        let erc20 = Erc20::new(token, provider);
        let decimals =
            erc20.decimals().call().await.map_err(ChainError::from_contract).wrap_err_with(|| {
                format!("{token} does not answer decimals(): is it an ERC-20 on this chain?")
            })?;
        let symbol = erc20.symbol().call().await.map_err(ChainError::from_contract)?;
        // A hostile token names itself: keep what is printed short and plain.
        let symbol = lumen_protocol::api::plain_symbol(&symbol);
        Ok(Self { symbol, decimals, base: "units" })
    }

    /// `amount` (smallest units) as `1500000 units (1.5 SYM)`.
    fn show(&self, amount: U256) -> String {
        let whole = format_units(amount, self.decimals).unwrap_or_else(|_| amount.to_string());
        let whole =
            if whole.contains('.') { whole.trim_end_matches('0').trim_end_matches('.') } else { &whole };
        format!("{amount} {} ({whole} {})", self.base, self.symbol)
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn amounts_show_in_the_smallest_unit_and_the_token_unit() {
        let eth = Unit { symbol: "ETH".into(), decimals: 18, base: "wei" };
        assert_eq!(eth.show(U256::from(6_000_000_000_000_000u64)), "6000000000000000 wei (0.006 ETH)");
        assert_eq!(eth.show(U256::from(2) * U256::from(10u64.pow(18))), "2000000000000000000 wei (2 ETH)");
        let usd = Unit { symbol: "TUSD".into(), decimals: 6, base: "units" };
        assert_eq!(usd.show(U256::from(1_500_000u64)), "1500000 units (1.5 TUSD)");
        assert_eq!(usd.show(U256::ZERO), "0 units (0 TUSD)");
    }
}
