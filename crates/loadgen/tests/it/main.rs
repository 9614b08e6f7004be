//! The resource attacks against a real `lumen-gateway` process (built by
//! `cargo build --workspace --bins`, as CI does before the tests), with its
//! memory read from `/proc`.

#![allow(clippy::unwrap_used, clippy::disallowed_macros)] // tests fail loudly and print their table

use std::time::Duration;

use lumen_loadgen::{
    attack::{self, AttackOptions},
    chain::Chain,
    process::GatewayProcess,
};

/// The bound of issue 8.
const MEMORY_BOUND: u64 = 200 << 20;

/// Smaller than the attack (4 × 1 GiB uploads, 12 downloads of
/// 250 MiB: `scripts/bench-gateway-load.sh attack` runs that) but still far
/// over the bound for a gateway that held bodies whole: 4 × 128 MiB
/// uploads and 12 × 64 MiB downloads are 512 and 768 MiB buffered, and
/// stay flat streamed.
#[tokio::test]
async fn resource_attacks_leave_the_gateway_responsive_and_under_its_memory_bound() {
    // $LUMEN_GATEWAY_BIN, or the workspace's build beside this crate's binary.
    let bin = std::env::var_os("LUMEN_GATEWAY_BIN").map_or_else(
        || std::path::Path::new(env!("CARGO_BIN_EXE_lumen-gateway-load")).with_file_name("lumen-gateway"),
        std::path::PathBuf::from,
    );
    let chain = Chain::start().await.unwrap();
    let work = tempfile::Builder::new().prefix("lumen-attack-").tempdir().unwrap();
    let (deployment, data) = (work.path().join("deployment.json"), work.path().join("data"));
    chain.save(&deployment).unwrap();
    let flooders = chain.bind_nodes(8).await.unwrap();
    let gateway = GatewayProcess::start(&bin, &data, &deployment, &chain.rpc_url(), "").await.unwrap();

    let opts = AttackOptions {
        uploads: 4,
        upload_bytes: 128 << 20,
        upload_bytes_per_sec: 0,
        downloads: 12,
        download_bytes: 64 << 20,
        download_hold: Duration::from_secs(1),
        flooders,
        min_duration: Duration::from_secs(4),
    };
    let report = attack::run(&gateway, &data, &opts).await.unwrap();
    eprintln!("{}", report.table(&opts));
    let log = || gateway.log_tail();

    assert!(
        report.rss_peak < MEMORY_BOUND,
        "peak RSS {} MiB is over the bound\n{}",
        report.rss_peak >> 20,
        log()
    );
    // Received whole, then refused for what they are: not a .blend (or no
    // Blender to inspect with); not cut off, not an internal error.
    assert!(
        report.upload_statuses.iter().all(|s| [422, 503].contains(s)),
        "{:?}\n{}",
        report.upload_statuses,
        log()
    );
    assert_eq!(report.downloads_intact, opts.downloads, "{}", log());
    assert!(report.flood_closed_rate_limited >= 1, "the flood was never closed with 4006\n{}", log());
    assert_eq!(report.probe_failures, 0, "/healthz failed during the attacks\n{}", log());
    assert!(report.probe_max < Duration::from_secs(1), "/healthz took {:?}", report.probe_max);
    let incoming = data.join("blobs/.incoming");
    assert_eq!(std::fs::read_dir(&incoming).map_or(0, Iterator::count), 0, "refused uploads leave no file");
}
