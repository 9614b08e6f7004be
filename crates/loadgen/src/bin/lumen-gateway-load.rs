//! `lumen-gateway-load`: starts Anvil and a `lumen-gateway` process, then
//! either connects simulated nodes and measures what they cost (`nodes`),
//! or runs the resource attacks (`attack`). Prints a Markdown table.
//! `scripts/bench-gateway-load.sh` builds and runs it.

#![allow(clippy::disallowed_macros)] // a bench printing its table

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use lumen_loadgen::{
    attack::{self, AttackOptions},
    chain::Chain,
    mib, percentile,
    process::GatewayProcess,
    sim,
};
use rand::Rng;

/// Load and attack benchmarks against a gateway in its own process.
#[derive(Debug, Parser)]
#[command(name = "lumen-gateway-load", version, about)]
struct Cli {
    /// The `lumen-gateway` binary (default: beside this one).
    #[arg(long, global = true)]
    gateway_bin: Option<PathBuf>,
    /// Extra `lumen.toml` lines for the gateway.
    #[arg(long, global = true, default_value = "")]
    gateway_config: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect N simulated nodes, then measure heartbeats and the gateway's cost.
    Nodes {
        /// Simulated nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Loopback source addresses to spread connections over (127.0.0.1, .2, …).
        #[arg(long, default_value_t = 8)]
        source_ips: u8,
        /// Seconds of steady heartbeats measured after every node is connected.
        #[arg(long, default_value_t = 30)]
        steady_secs: u64,
    },
    /// The resource attacks (full size by default: 4 × 1 GiB uploads, 12 × 250 MiB downloads).
    Attack {
        /// Uploads at once.
        #[arg(long, default_value_t = 4)]
        uploads: usize,
        /// MiB per upload.
        #[arg(long, default_value_t = 1024)]
        upload_mib: u64,
        /// Pace of each upload in KiB/s (0: as fast as it goes).
        #[arg(long, default_value_t = 0)]
        upload_kib_per_sec: u64,
        /// Downloads at once.
        #[arg(long, default_value_t = 12)]
        downloads: usize,
        /// MiB of the downloaded blob.
        #[arg(long, default_value_t = 250)]
        download_mib: u64,
        /// Seconds each download holds its connection after its first MiB.
        #[arg(long, default_value_t = 2)]
        download_hold_secs: u64,
        /// Node keys flooding heartbeats.
        #[arg(long, default_value_t = 20)]
        flooders: usize,
        /// Least duration of the attack, seconds.
        #[arg(long, default_value_t = 10)]
        min_secs: u64,
    },
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    let gateway_bin = match cli.gateway_bin {
        Some(bin) => bin,
        None => std::env::current_exe()?.with_file_name("lumen-gateway"),
    };
    let work = tempfile::Builder::new().prefix("lumen-load-").tempdir()?;
    let chain = Chain::start().await?;
    let deployment = work.path().join("deployment.json");
    chain.save(&deployment)?;
    let data = work.path().join("data");
    match cli.command {
        Command::Nodes { nodes, concurrency, source_ips, steady_secs } => {
            let started = Instant::now();
            let keys = chain.bind_nodes(nodes).await?;
            eprintln!("bound {nodes} node keys on-chain in {:.1} s", started.elapsed().as_secs_f64());
            let gateway = GatewayProcess::start(
                &gateway_bin,
                &data,
                &deployment,
                &chain.rpc_url(),
                &cli.gateway_config,
            )
            .await?;
            run_nodes(&gateway, keys, concurrency, source_ips.max(1), Duration::from_secs(steady_secs)).await
        }
        Command::Attack {
            uploads,
            upload_mib,
            upload_kib_per_sec,
            downloads,
            download_mib,
            download_hold_secs,
            flooders,
            min_secs,
        } => {
            let flooders = chain.bind_nodes(flooders).await?;
            let gateway = GatewayProcess::start(
                &gateway_bin,
                &data,
                &deployment,
                &chain.rpc_url(),
                &cli.gateway_config,
            )
            .await?;
            let opts = AttackOptions {
                uploads,
                upload_bytes: upload_mib << 20,
                upload_bytes_per_sec: upload_kib_per_sec << 10,
                downloads,
                download_bytes: download_mib << 20,
                download_hold: Duration::from_secs(download_hold_secs),
                flooders,
                min_duration: Duration::from_secs(min_secs),
            };
            let report = attack::run(&gateway, &data, &opts).await?;
            println!("{}", report.table(&opts));
            Ok(())
        }
    }
}

async fn run_nodes(
    gateway: &GatewayProcess,
    keys: Vec<alloy::signers::local::PrivateKeySigner>,
    concurrency: usize,
    source_ips: u8,
    steady: Duration,
) -> eyre::Result<()> {
    let n = keys.len();
    let idle = gateway.sample()?;
    let connecting = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let (connected, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let recording = Arc::new(AtomicBool::new(false));
    let (rtts, hb_errors) = (Arc::new(Mutex::new(Vec::<u64>::new())), Arc::new(AtomicUsize::new(0)));
    let addr = gateway.addr;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, key) in keys.into_iter().enumerate() {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(source_ips)) as u8));
        let (connecting, connected, failed) = (connecting.clone(), connected.clone(), failed.clone());
        let (recording, rtts, hb_errors) = (recording.clone(), rtts.clone(), hb_errors.clone());
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await;
            let mut node = match sim::connect(addr, source, &key).await {
                Ok(node) => node,
                Err(err) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("connect failed: {err:#}");
                    }
                    return;
                }
            };
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            let interval = node.heartbeat_interval;
            // A random phase, as real nodes started at different times have.
            let phase = rand::rng().random_range(0.0..1.0);
            tokio::time::sleep(interval.mul_f64(phase)).await;
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                match node.heartbeat().await {
                    Ok(rtt) => {
                        if recording.load(Ordering::Relaxed) {
                            rtts.lock().expect("not poisoned").push(rtt.as_micros() as u64);
                        }
                    }
                    Err(_) => {
                        hb_errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let after_connect = gateway.sample()?;
    // One heartbeat interval to settle, then the steady window.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s0 = gateway.sample()?;
    recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(steady).await;
    recording.store(false, Ordering::Relaxed);
    let s1 = gateway.sample()?;
    let mut rtts = std::mem::take(&mut *rtts.lock().expect("not poisoned"));
    rtts.sort_unstable();
    let ok = connected.load(Ordering::Relaxed);
    let per_conn = s1.rss_bytes.saturating_sub(idle.rss_bytes) / ok.max(1) as u64;
    println!("| measure | value |\n|---|---|");
    println!("| nodes connected | {ok} of {n} ({} failed) |", failed.load(Ordering::Relaxed));
    println!("| connect rate | {:.0} nodes/s ({connect_secs:.1} s for all) |", ok as f64 / connect_secs);
    println!(
        "| heartbeats measured | {} in {} s ({} errors) |",
        rtts.len(),
        steady.as_secs(),
        hb_errors.load(Ordering::Relaxed)
    );
    println!(
        "| heartbeat round trip | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
        percentile(&rtts, 50.0) as f64 / 1000.0,
        percentile(&rtts, 99.0) as f64 / 1000.0,
        rtts.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!("| gateway CPU, steady heartbeats | {:.1} % of one core |", s1.cpu_since(&s0) * 100.0);
    println!(
        "| gateway CPU, while connecting | {:.1} % of one core |",
        after_connect.cpu_since(&idle) * 100.0
    );
    println!(
        "| gateway RSS | {:.1} MiB idle, {:.1} MiB with the nodes ({:.1} KiB per connection), peak {:.1} MiB |",
        mib(idle.rss_bytes),
        mib(s1.rss_bytes),
        per_conn as f64 / 1024.0,
        mib(s1.peak_rss_bytes)
    );
    println!("| gateway threads | {} |", s1.threads);
    for task in tasks {
        task.abort();
    }
    Ok(())
}
