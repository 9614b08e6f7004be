//! The node's health endpoint: `GET /health`.

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use alloy::primitives::Address;
use axum::{Json, Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{NodeError, Status};

/// The health document (the operator guide's shape, plus identity and load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `healthy` while connected to the gateway, `degraded` otherwise.
    pub status: String,
    /// Whether the gateway connection is up.
    pub relay_connected: bool,
    /// Seconds since the node started.
    pub uptime_seconds: u64,
    /// The node key's address.
    pub node: Address,
    /// Frames rendering now.
    pub running: u32,
}

#[derive(Clone)]
struct HealthState {
    node: Address,
    status: Arc<Status>,
}

async fn health(State(s): State<HealthState>) -> Json<Health> {
    let connected = s.status.relay_connected.load(Ordering::Relaxed);
    Json(Health {
        status: if connected { "healthy" } else { "degraded" }.into(),
        relay_connected: connected,
        uptime_seconds: s.status.started.elapsed().as_secs(),
        node: s.node,
        running: s.status.running.load(Ordering::Relaxed),
    })
}

pub(crate) async fn serve(
    addr: SocketAddr,
    node: Address,
    status: Arc<Status>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = ()> + use<>), NodeError> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| NodeError::Health { addr, source })?;
    let bound = listener.local_addr().map_err(|source| NodeError::Health { addr, source })?;
    let app = Router::new().route("/health", get(health)).with_state(HealthState { node, status });
    let serve = async move {
        if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
        {
            tracing::warn!(target: "node::health", %err, "health endpoint failed");
        }
    };
    Ok((bound, serve))
}
