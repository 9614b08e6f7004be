//! The operator node.
//!
//! Connects to the gateway's WebSocket, proves it holds its EVM key by
//! signing the gateway's challenge, sends heartbeats, and renders the frames
//! it is given with headless Blender in a sandbox, under resource limits
//! (a node without a working sandbox refuses to start). Each result is
//! uploaded over HTTP and then reported with a signature over
//! `(job, frame, output hash)`. A dropped connection is retried with
//! exponential backoff (1 s, 2 s, 4 s … 30 s, with jitter). A small HTTP
//! endpoint reports health as the operator guide describes:
//! `{"status": "healthy", "relay_connected": true, "uptime_seconds": N}`.

pub mod args;
mod client;
pub mod health;
pub mod key;
mod render;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32},
    },
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use lumen_runtime::{ServiceError, ServiceHandle};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Result alias of this crate.
pub type NodeResult<T> = Result<T, NodeError>;

/// What can go wrong running a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The key file is missing, unreadable, unsafe or invalid.
    #[error("key file {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The health endpoint could not listen.
    #[error("health endpoint on {addr}: {source}")]
    Health {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Blender is not installed, or cannot run in its sandbox here
    /// (bubblewrap missing or without user namespaces, and no
    /// `LUMEN_SANDBOX=off`): the node refuses to start rather than render
    /// untrusted scenes unconfined.
    #[error("blender: {0}")]
    Blender(String),
    /// The gateway URL is not a ws:// or wss:// URL.
    #[error("gateway URL {0:?} must start with ws:// or wss://")]
    GatewayUrl(String),
}

impl NodeError {
    fn key(path: &std::path::Path, err: &std::io::Error) -> Self {
        Self::Key { path: path.to_owned(), reason: err.to_string() }
    }
}

/// Deliberate misbehaviour, for failure tests only: a node operator who
/// cheats or is broken. Never set in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Upload an all-black frame of the right size instead of the render.
    BlackFrames,
    /// Sign results with a key other than the node's.
    WrongKey,
    /// Upload random noise of the right size without rendering.
    Noise,
    /// Upload a smooth synthetic gradient of the right size without rendering.
    Smooth,
    /// Render the first frame given, then upload that frame for every other.
    CopyFrame,
    /// Render the neighbouring frame of the animation instead of the one asked.
    Neighbour,
    /// Report a deterministic `missing_feature` failure for every frame.
    FakeFailure,
    /// Accept every frame and never answer (while heartbeating).
    Silent,
    /// Render honestly for the first frames, then upload noise.
    HonestThenNoise,
    /// Render with one sample instead of the scene's.
    FewerSamples,
    /// Render, with real Blender at the dispatched size, the same frame
    /// number of another scene than the job's (a generated sample scene of
    /// another layout).
    OtherScene,
    /// Announce [`HOARDER_SLOTS`] slots, and render honestly whatever it is given.
    SlotHoarder,
}

/// Slots a [`Fault::SlotHoarder`] node announces.
pub const HOARDER_SLOTS: u32 = 64;

impl Fault {
    /// Every fault, in the order of [`Fault::as_str`]'s names.
    pub const ALL: [Self; 12] = [
        Self::BlackFrames,
        Self::WrongKey,
        Self::Noise,
        Self::Smooth,
        Self::CopyFrame,
        Self::Neighbour,
        Self::FakeFailure,
        Self::Silent,
        Self::HonestThenNoise,
        Self::FewerSamples,
        Self::OtherScene,
        Self::SlotHoarder,
    ];

    /// The name used on the command line and in `LUMEN_NODE_FAULT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlackFrames => "black-frames",
            Self::WrongKey => "wrong-key",
            Self::Noise => "noise",
            Self::Smooth => "smooth",
            Self::CopyFrame => "copy-frame",
            Self::Neighbour => "neighbour",
            Self::FakeFailure => "fake-failure",
            Self::Silent => "silent",
            Self::HonestThenNoise => "honest-then-noise",
            Self::FewerSamples => "fewer-samples",
            Self::OtherScene => "other-scene",
            Self::SlotHoarder => "slot-hoarder",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|f| f.as_str() == text).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown fault {text:?} ({})", names.join(", "))
        })
    }
}

/// Node settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The gateway's node WebSocket, e.g. `ws://127.0.0.1:8080/ws/node`.
    pub gateway_url: String,
    /// Where the node caches `.blend` files and renders.
    pub data_dir: PathBuf,
    /// Health endpoint address (port 8081 by default; 0 picks one).
    pub health_addr: SocketAddr,
    /// Frames rendered at once.
    pub slots: u32,
    /// Memory limit of one render, bytes (default 2 GiB).
    pub memory_bytes: u64,
    /// CPU-time limit of one render, seconds (default 600).
    pub cpu_seconds: u64,
    /// Render threads per frame (`None`: Blender decides).
    pub threads: Option<u32>,
    /// Deliberate misbehaviour (failure tests only).
    pub fault: Option<Fault>,
}

impl NodeConfig {
    /// Defaults from the operator guide for a gateway and data folder.
    pub fn new(gateway_url: impl Into<String>, data_dir: PathBuf) -> Self {
        Self {
            gateway_url: gateway_url.into(),
            data_dir,
            health_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            slots: 1,
            memory_bytes: 2 << 30,
            cpu_seconds: 600,
            threads: None,
            fault: None,
        }
    }

    /// The slots the node announces to the gateway: its own, or
    /// [`HOARDER_SLOTS`] for a [`Fault::SlotHoarder`].
    pub fn announced_slots(&self) -> u32 {
        if self.fault == Some(Fault::SlotHoarder) { HOARDER_SLOTS } else { self.slots.max(1) }
    }
}

/// Live state shared by the client and the health endpoint.
#[derive(Debug)]
pub(crate) struct Status {
    started: Instant,
    relay_connected: AtomicBool,
    running: AtomicU32,
}

/// A running node. [`NodeHandle::shutdown`] stops it (running renders are
/// killed); dropping the handle stops it too.
#[derive(Debug)]
pub struct NodeHandle {
    /// The node key's address (its identity).
    pub address: alloy::primitives::Address,
    /// Where the health endpoint listens.
    pub health_addr: SocketAddr,
    service: ServiceHandle<NodeError>,
}

impl NodeHandle {
    /// Stops the node (running renders are killed) and waits for it.
    pub async fn shutdown(self) -> Result<(), ServiceError<NodeError>> {
        self.service.shutdown().await
    }

    /// Runs until `signal` resolves, then stops the node.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), ServiceError<NodeError>> {
        self.service.run_until(signal).await
    }
}

/// Starts a node with `key`.
pub async fn spawn(config: NodeConfig, key: PrivateKeySigner) -> NodeResult<NodeHandle> {
    if !(config.gateway_url.starts_with("ws://") || config.gateway_url.starts_with("wss://")) {
        return Err(NodeError::GatewayUrl(config.gateway_url));
    }
    let blender = lumen_blender::Blender::locate().map_err(|e| NodeError::Blender(e.to_string()))?;
    if !blender.sandbox().is_on() {
        tracing::warn!(target: "node", "renders run WITHOUT the sandbox ({}=off): scenes can read this node's key and files", lumen_blender::sandbox::SANDBOX_ENV);
    }
    let status =
        Arc::new(Status { started: Instant::now(), relay_connected: false.into(), running: 0.into() });
    let shutdown = CancellationToken::new();
    let (health_addr, health) =
        health::serve(config.health_addr, key.address(), status.clone(), shutdown.clone()).await?;
    let address = key.address();
    let client = client::Client::new(config, key, blender, status).await;
    let token = shutdown.clone();
    let node = async move {
        let client = async {
            client.run(token.clone()).await;
            token.cancel();
        };
        tokio::join!(client, health);
        Ok(())
    };
    let service = ServiceHandle::spawn("node", Some(health_addr), shutdown, node);
    Ok(NodeHandle { address, health_addr, service })
}

/// Delay before reconnect attempt `attempt` (0-based): 1 s, 2 s, 4 s … capped
/// at 30 s, times a jitter factor in `[0.8, 1.2]` so a fleet that lost the
/// gateway at once does not come back at once.
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let base = 2f64.powi(attempt.min(5) as i32).min(30.0);
    Duration::from_secs_f64(base * jitter.clamp(0.8, 1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let secs: Vec<u64> = (0..8).map(|a| backoff_delay(a, 1.0).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff_delay(0, 0.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(9, 5.0), Duration::from_secs(36));
    }

    #[test]
    fn every_fault_has_one_name_on_the_command_line_and_in_config() {
        let mut names = std::collections::HashSet::new();
        for fault in Fault::ALL {
            let name = fault.as_str();
            assert!(names.insert(name), "{name} is used twice");
            assert_eq!(name.parse::<Fault>(), Ok(fault));
            assert_eq!(serde_json::to_value(fault).unwrap(), name, "serde and as_str agree");
        }
        assert_eq!("other-scene".parse::<Fault>(), Ok(Fault::OtherScene));
        assert_eq!("slot-hoarder".parse::<Fault>(), Ok(Fault::SlotHoarder));
    }

    #[test]
    fn a_slot_hoarder_announces_many_slots_and_others_their_own() {
        let mut config = NodeConfig::new("ws://g/ws/node", PathBuf::from("/tmp"));
        config.slots = 0;
        assert_eq!(config.announced_slots(), 1);
        config.slots = 3;
        assert_eq!(config.announced_slots(), 3);
        config.fault = Some(Fault::FewerSamples);
        assert_eq!(config.announced_slots(), 3);
        config.fault = Some(Fault::SlotHoarder);
        assert_eq!(config.announced_slots(), HOARDER_SLOTS);
    }
}
