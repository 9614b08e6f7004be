//! The resource attacks of issue 8, run at once against a gateway process
//! while its memory and its `/healthz` are watched:
//!
//! - `uploads` uploads of `upload_bytes` each, at `upload_bytes_per_sec`
//!   (as fast as possible when 0), of bytes that are not a `.blend`: the
//!   gateway receives them whole, then refuses them;
//! - `downloads` parallel downloads of one blob of `download_bytes`, each
//!   reading a little, holding its connection for `download_hold`, then
//!   reading the rest;
//! - a heartbeat flood: each `flooders` key connects and sends heartbeats
//!   as fast as it can, again and again as it is closed.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use futures::future::join_all;
use lumen_protocol::ws::CLOSE_RATE_LIMITED;

use crate::{process::GatewayProcess, sim};

/// What to throw at the gateway.
#[derive(Debug, Clone)]
pub struct AttackOptions {
    /// Uploads at once.
    pub uploads: usize,
    /// Bytes per upload.
    pub upload_bytes: u64,
    /// Pace of each upload (0: as fast as it goes).
    pub upload_bytes_per_sec: u64,
    /// Downloads at once.
    pub downloads: usize,
    /// Size of the downloaded blob.
    pub download_bytes: u64,
    /// How long each download holds its connection after its first bytes.
    pub download_hold: Duration,
    /// Bound node keys that flood heartbeats.
    pub flooders: Vec<PrivateKeySigner>,
    /// The attack lasts at least this long (the flood goes on).
    pub min_duration: Duration,
}

/// What the attacks did and what they cost the gateway.
#[derive(Debug, Clone, Default)]
pub struct AttackReport {
    /// Resident memory before the attacks.
    pub rss_before: u64,
    /// The most resident memory sampled during them (every 50 ms).
    pub rss_max_sampled: u64,
    /// The gateway's `VmHWM` afterwards: its peak since it started.
    pub rss_peak: u64,
    /// CPU used during the attacks, as a share of one core.
    pub cpu: f64,
    /// Each upload's status (422 `not_a_blend`, or 503 `no_blender`, when
    /// it was received whole).
    pub upload_statuses: Vec<u16>,
    /// Downloads that got every byte.
    pub downloads_intact: usize,
    /// Heartbeats the flood sent.
    pub flood_messages: u64,
    /// Flood connections closed with 4006.
    pub flood_closed_rate_limited: u64,
    /// `/healthz` probes (one every 100 ms), the slowest answer, and probes
    /// that failed or took over 5 s.
    pub probes: u64,
    /// The slowest probe.
    pub probe_max: Duration,
    /// Probes that failed.
    pub probe_failures: u64,
    /// How long the attacks took.
    pub elapsed: Duration,
}

/// Plants a `.blend`-sized blob of `size` bytes in the gateway's store
/// (written in pieces, never whole in memory here either), as uploaded by
/// `owner`, who may then download it; returns its hash.
pub async fn plant_blob(
    data_dir: &Path,
    size: u64,
    owner: alloy::primitives::Address,
) -> eyre::Result<lumen_protocol::ContentHash> {
    let store = lumen_store::Store::open(data_dir).await?;
    let mut writer = store.blobs().writer().await?;
    let piece: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    while writer.size() < size {
        let n = piece.len().min((size - writer.size()) as usize);
        writer.write(&piece[..n]).await?;
    }
    let hash = store.commit_blob(writer.finish().await?).await?;
    store.add_blend_owner(hash, owner).await?;
    Ok(hash)
}

/// Runs the attacks against `gateway` (whose data folder is `data_dir`).
pub async fn run(
    gateway: &GatewayProcess,
    data_dir: &Path,
    opts: &AttackOptions,
) -> eyre::Result<AttackReport> {
    // The attacker is a signed-in artist (uploads need a session), who
    // downloads a large file of their own many times over.
    let attacker = alloy::signers::local::PrivateKeySigner::random();
    let token = crate::http::sign_in(gateway.addr, &attacker).await?;
    let blob = plant_blob(data_dir, opts.download_bytes, attacker.address()).await?;
    let before = gateway.sample()?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let pid = gateway.pid();
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = crate::process::sample(pid) {
                    max = max.max(s.rss_bytes);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            max
        })
    };
    let addr = gateway.addr;
    let prober = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut probes, mut failures, mut slowest) = (0u64, 0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                probes += 1;
                match crate::http::get(addr, "/healthz", Duration::from_secs(5)).await {
                    Ok((200, took)) => slowest = slowest.max(took),
                    _ => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (probes, failures, slowest)
        })
    };
    let (sent, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flood: Vec<_> = opts
        .flooders
        .iter()
        .cloned()
        .map(|key| {
            let (stop, sent, closed) = (stop.clone(), sent.clone(), closed.clone());
            tokio::spawn(async move { flood(addr, key, &stop, &sent, &closed).await })
        })
        .collect();

    let uploads = (0..opts.uploads).map(|_| async {
        let (size, pace) = (opts.upload_bytes, opts.upload_bytes_per_sec);
        crate::http::upload(addr, "POST", "/api/v1/blends", &token, size, pace).await
    });
    let path = format!("/api/v1/blobs/{blob}");
    let downloads =
        (0..opts.downloads).map(|_| crate::http::download(addr, &path, &token, 1 << 20, opts.download_hold));
    let (uploads, downloads) = tokio::join!(join_all(uploads), join_all(downloads));
    tokio::time::sleep(opts.min_duration.saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed();
    let after = gateway.sample()?;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }

    let mut report = AttackReport {
        rss_before: before.rss_bytes,
        cpu: after.cpu_since(&before),
        elapsed,
        flood_messages: sent.load(Ordering::Relaxed),
        flood_closed_rate_limited: closed.load(Ordering::Relaxed),
        ..AttackReport::default()
    };
    for upload in uploads {
        let (status, body) = upload?;
        tracing::debug!(target: "loadgen::attack", status, %body, "upload answered");
        report.upload_statuses.push(status);
    }
    for download in downloads {
        if let Ok((200, got)) = download
            && got == opts.download_bytes
        {
            report.downloads_intact += 1;
        }
    }
    report.rss_max_sampled = sampler.await?;
    (report.probes, report.probe_failures, report.probe_max) = prober.await?;
    report.rss_peak = gateway.sample()?.peak_rss_bytes;
    Ok(report)
}

/// One flooding key: connect, send heartbeats back to back (each as soon
/// as the previous one is answered), count the 4006 closes, reconnect,
/// until `stop`. (Heartbeats sent without waiting would also be closed,
/// but the close frame would be lost to the reset of a socket closed with
/// unread messages in it.)
async fn flood(
    gateway: std::net::SocketAddr,
    key: PrivateKeySigner,
    stop: &AtomicBool,
    sent: &AtomicU64,
    closed: &AtomicU64,
) {
    let source = std::net::IpAddr::from([127, 0, 0, 1]);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut node) = sim::connect(gateway, source, &key).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            sent.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(Duration::from_secs(5), node.heartbeat()).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    if err.downcast_ref::<sim::Closed>().is_some_and(|c| c.0 == CLOSE_RATE_LIMITED) {
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

impl AttackReport {
    /// The report as a table.
    pub fn table(&self, opts: &AttackOptions) -> String {
        use crate::mib;
        format!(
            "| measure | value |\n|---|---|\n\
             | uploads | {} × {:.0} MiB, statuses {:?} |\n\
             | downloads | {} × {:.0} MiB, {} intact |\n\
             | heartbeat flood | {} keys, {} heartbeats sent, {} connections closed with 4006 |\n\
             | gateway RSS before | {:.1} MiB |\n\
             | gateway RSS, most sampled during | {:.1} MiB |\n\
             | gateway peak RSS (VmHWM) | {:.1} MiB |\n\
             | gateway CPU during | {:.0} % of a core |\n\
             | /healthz probes | {} (slowest {:.0} ms, {} failed) |\n\
             | duration | {:.1} s |\n",
            opts.uploads,
            mib(opts.upload_bytes),
            self.upload_statuses,
            opts.downloads,
            mib(opts.download_bytes),
            self.downloads_intact,
            opts.flooders.len(),
            self.flood_messages,
            self.flood_closed_rate_limited,
            mib(self.rss_before),
            mib(self.rss_max_sampled),
            mib(self.rss_peak),
            self.cpu * 100.0,
            self.probes,
            self.probe_max.as_secs_f64() * 1000.0,
            self.probe_failures,
            self.elapsed.as_secs_f64(),
        )
    }
}
