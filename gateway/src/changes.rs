//! `GET /api/v1/changes` (public): what moved on the network, as
//! server-sent events, so the dashboard's pages reload their data when it
//! changed instead of on a timer. Every event is `event: changes` with a
//! [`Changes`] (opaque stamps of jobs, nodes, heartbeats, the chain mirror
//! and the clock minute); the first is the current stamps, so a page that
//! reconnects after a gateway restart compares them and catches up.
//!
//! One loop per gateway ([`keep_current`]) computes the stamps, when anything
//! happens on the bus (at most every [`MIN_GAP`]) and at least every
//! [`CHECK_EVERY`] (the verifier and the indexer may run in other
//! processes), with one indexed query; streams only wait on a
//! [`tokio::sync::watch`] channel, so an open feed costs memory, not
//! queries. At most [`MAX_FEEDS`] are open at once, [`MAX_FEEDS_PER_PEER`]
//! per client address.
//!
//! Public, like the figures it stamps: the jobs stamp says that some job
//! somewhere moved, and when, which `GET /api/v1/stats` says already.

use std::{
    collections::hash_map::DefaultHasher,
    convert::Infallible,
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use lumen_protocol::api::Changes;
use tokio::sync::watch;

use crate::{AppState, api::ApiResult, error::ApiError, live::Slot};

/// How often the stamps are computed without a bus event.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The least time between two computations (bus events come in bursts).
pub(crate) const MIN_GAP: Duration = Duration::from_millis(250);
/// Open feeds at once.
pub(crate) const MAX_FEEDS: usize = 4096;
/// Open feeds per client address (tabs, and clients behind one NAT).
pub(crate) const MAX_FEEDS_PER_PEER: usize = 64;

/// The latest stamps, shared by every open feed.
#[derive(Debug, Clone)]
pub(crate) struct Feed(Arc<watch::Sender<Changes>>);

impl Default for Feed {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Changes::default())))
    }
}

/// Keeps [`AppState::changes`] current until the gateway stops.
pub(crate) async fn keep_current(state: AppState) {
    let started = Instant::now();
    let mut wake = state.bus.subscribe();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match stamps(&state, started).await {
            Ok(now) => {
                state.changes.0.send_if_modified(|current| {
                    let moved = *current != now;
                    if moved {
                        tracing::trace!(target: "gateway::changes", parts = ?now.differing(current), "network changed");
                        *current = now;
                    }
                    moved
                });
            }
            Err(err) => tracing::warn!(target: "gateway::changes", %err, "cannot stamp the network"),
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(MIN_GAP) => {}
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            // Lagged or not, look again.
            _ = wake.recv() => {}
            _ = tick.tick() => {}
        }
    }
}

/// The network's stamps now.
async fn stamps(state: &AppState, started: Instant) -> Result<Changes, lumen_store::StoreError> {
    let (jobs, chain) = state.store.network_stamps().await?;
    // Nodes without their heartbeat ages (those move every second): a
    // heartbeat changes `heartbeats`, a state change `nodes`.
    let mut views = state.nodes.views(false);
    for view in &mut views {
        view.last_heartbeat_secs = None;
    }
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(&views).unwrap_or_default().hash(&mut hasher);
    let heartbeats = state
        .nodes
        .latest_heartbeat()
        .map(|at| {
            (at.saturating_duration_since(started).as_secs() / Changes::HEARTBEAT_STEP_SECS).to_string()
        })
        .unwrap_or_default();
    Ok(Changes {
        jobs,
        nodes: format!("{:016x}", hasher.finish()),
        heartbeats,
        chain,
        minute: crate::earnings::clock_minute().to_string(),
    })
}

/// One open feed.
struct Open {
    changes: watch::Receiver<Changes>,
    first: bool,
    shutdown: tokio_util::sync::CancellationToken,
    _slot: Slot<IpAddr>,
}

impl Open {
    /// The next event: the current stamps first, then each change. `None`
    /// ends the stream (the gateway is stopping).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if !std::mem::take(&mut self.first) {
            tokio::select! {
                changed = self.changes.changed() => changed.ok()?,
                () = self.shutdown.cancelled() => return None,
            }
        }
        let json = serde_json::to_string(&*self.changes.borrow_and_update()).ok()?;
        Some((Ok(Event::default().event("changes").data(json)), self))
    }
}

/// `GET /api/v1/changes`: anyone, within the caps.
pub(crate) async fn feed(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // In-process tests have no peer address: they share one slot holder.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip());
    let Some(slot) = state.feeds.take(peer) else {
        return Err(ApiError::client(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "at most {MAX_FEEDS_PER_PEER} change feeds per client address ({MAX_FEEDS} in all) at once"
            ),
        ));
    };
    let open = Open {
        changes: state.changes.0.subscribe(),
        first: true,
        shutdown: state.shutdown.clone(),
        _slot: slot,
    };
    Ok(Sse::new(futures::stream::unfold(open, Open::next)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_peer_and_come_back() {
        let slots = crate::live::StreamSlots::new(3, 2);
        let (a, b) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "a third feed from one address");
        let _third = slots.take(b).unwrap();
        assert!(slots.take(b).is_none(), "over the total");
        drop(first);
        assert!(slots.take(b).is_some(), "a closed feed gives its slot back");
    }
}
