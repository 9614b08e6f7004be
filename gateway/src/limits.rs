//! What one client may cost the gateway: request and message rates, upload
//! pace and concurrency (`[gateway.limits]`).
//!
//! - Every HTTP request counts against its **connection** (the peer's
//!   address and port): one abusive client cannot starve another, even when
//!   many nodes share one address behind a NAT (or 10,000 simulated nodes
//!   share loopback). Over the limit the answer is `429 rate_limited` with a
//!   `Retry-After` header.
//! - Every WebSocket message after authentication counts against the
//!   **node key**, whichever connection it arrives on (a node that reconnects
//!   does not get a fresh allowance). Over the limit the session is closed
//!   with [`lumen_protocol::ws::CLOSE_RATE_LIMITED`].
//! - Uploads stream to disk under a size cap, an idle timeout and a floor
//!   on their average pace ([`crate::body`]); at most
//!   `max_concurrent_uploads` are received at once.
//! - Public pages answered from the chain's RPC (an operator's view: a read
//!   per node and per token; an explorer transaction: a receipt and a
//!   block) are served `max_concurrent_chain_views` at a time, in turn, so
//!   a flood of them from many connections costs the RPC a bounded load;
//!   each waits for its turn and the RPC `chain_view_timeout_secs` at most.
//!
//! Rates are GCRA buckets ([`governor`]): `*_per_sec` sustained, `*_burst`
//! at once.

use std::{hash::Hash, net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{AppState, error::ApiError};

/// The `[gateway.limits]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// HTTP requests per second one connection may make, sustained (default 20).
    pub http_requests_per_sec: u32,
    /// HTTP requests one connection may make at once (default 100).
    pub http_burst: u32,
    /// HTTP requests per second under one credential (an artist's session
    /// or a node's token), over all its connections, sustained (default 100).
    pub http_key_requests_per_sec: u32,
    /// HTTP requests one credential may make at once (default 1000: a job
    /// page loading its frames' previews).
    pub http_key_burst: u32,
    /// WebSocket handshakes per second from one IP address, sustained,
    /// before any authentication (each costs a signature recovery and a
    /// registry call; default 100).
    pub ws_handshakes_per_sec: u32,
    /// WebSocket handshakes one IP address may start at once (default 1000).
    pub ws_handshake_burst: u32,
    /// WebSocket messages per second one node may send, sustained (default
    /// 10; an honest node sends a heartbeat every 10 s and a progress report
    /// per running frame every 5 s).
    pub ws_messages_per_sec: u32,
    /// WebSocket messages one node may send at once (default 50).
    pub ws_burst: u32,
    /// Longest pause, in seconds, between two pieces of an upload (default 30).
    pub upload_idle_secs: u64,
    /// Slowest average pace of an upload, bytes per second, counted after
    /// its first `upload_idle_secs` (default 65536: a 1 GiB `.blend` may
    /// take up to 4.5 hours, a 1-byte-a-second sender is cut off).
    pub upload_min_bytes_per_sec: u64,
    /// Uploads received at once; more are refused with 503 (default 16).
    pub max_concurrent_uploads: u32,
    /// Public requests answered from the chain's RPC (operator views,
    /// explorer transactions) served at once; more wait their turn (default
    /// 16).
    pub max_concurrent_chain_views: u32,
    /// Longest a public request answered from the chain's RPC may take, in
    /// seconds, its turn included: then 503 `busy` if it had no turn yet,
    /// 504 `chain_timeout` if the RPC did not answer (default 15).
    pub chain_view_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            http_requests_per_sec: 20,
            http_burst: 100,
            http_key_requests_per_sec: 100,
            http_key_burst: 1_000,
            ws_handshakes_per_sec: 100,
            ws_handshake_burst: 1_000,
            ws_messages_per_sec: 10,
            ws_burst: 50,
            upload_idle_secs: 30,
            upload_min_bytes_per_sec: 64 * 1024,
            max_concurrent_uploads: 16,
            max_concurrent_chain_views: 16,
            chain_view_timeout_secs: 15,
        }
    }
}

impl LimitsConfig {
    /// How long an upload may pause between two pieces.
    pub fn upload_idle(&self) -> Duration {
        Duration::from_secs(self.upload_idle_secs)
    }
}

/// A rate per key; keys not seen for a while are forgotten by [`Limiter::forget_idle`].
#[derive(Debug)]
pub(crate) struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `per_sec` sustained, `burst` at once (each at least 1).
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        let per_sec = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self { inner: RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)) }
    }

    /// Whether `key` may act now (and counts it if so).
    pub(crate) fn allow(&self, key: &K) -> bool {
        self.inner.check_key(key).is_ok()
    }

    /// Drops the state of keys whose bucket is full again (they would be
    /// allowed a whole burst anyway), so departed clients cost nothing.
    pub(crate) fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// The gateway's shared limiters.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) config: LimitsConfig,
    pub(crate) http: Arc<Limiter<SocketAddr>>,
    /// HTTP requests per credential (the hash of the presented token).
    pub(crate) http_key: Arc<Limiter<[u8; 32]>>,
    /// WebSocket handshakes per IP address.
    pub(crate) handshakes: Arc<Limiter<std::net::IpAddr>>,
    pub(crate) ws: Arc<Limiter<lumen_protocol::Address>>,
    pub(crate) uploads: Arc<Semaphore>,
    pub(crate) chain_views: Arc<Semaphore>,
}

impl Limits {
    pub(crate) fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            http: Arc::new(Limiter::new(config.http_requests_per_sec, config.http_burst)),
            http_key: Arc::new(Limiter::new(config.http_key_requests_per_sec, config.http_key_burst)),
            handshakes: Arc::new(Limiter::new(config.ws_handshakes_per_sec, config.ws_handshake_burst)),
            ws: Arc::new(Limiter::new(config.ws_messages_per_sec, config.ws_burst)),
            uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads.max(1) as usize)),
            chain_views: Arc::new(Semaphore::new(config.max_concurrent_chain_views.max(1) as usize)),
        }
    }

    /// A place among the uploads received at once, held until dropped; 503
    /// when all are taken.
    pub(crate) fn upload_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "the gateway is receiving {} uploads already; try again shortly",
                    self.config.max_concurrent_uploads
                ),
            )
        })
    }

    /// Answers a public request from the chain's RPC: in one of
    /// `max_concurrent_chain_views` places, waited for in turn, all within
    /// `chain_view_timeout_secs` — 503 `busy` when no place came in that
    /// time, 504 `chain_timeout` when the RPC did not answer in it (so a
    /// stalled RPC cannot hold the places for good, and a burst waits
    /// rather than fails).
    pub(crate) async fn chain_view<T>(
        &self,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let limit = Duration::from_secs(self.config.chain_view_timeout_secs.max(1));
        let deadline = tokio::time::Instant::now() + limit;
        let place = tokio::time::timeout_at(deadline, self.chain_views.clone().acquire_owned()).await;
        let _place = match place {
            // A turn that came with time left for the RPC to answer.
            Ok(Ok(place)) if tokio::time::Instant::now() < deadline => place,
            // None within the time, or at its very end (no use asking the
            // RPC then), or (never: it is not closed) a closed semaphore.
            Ok(_) | Err(_) => {
                return Err(ApiError::client(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "the gateway is reading the chain for {} requests and more were waiting for {} s; \
                         try again shortly",
                        self.config.max_concurrent_chain_views,
                        limit.as_secs()
                    ),
                ));
            }
        };
        tokio::time::timeout_at(deadline, work).await.unwrap_or_else(|_| {
            Err(ApiError::client(
                StatusCode::GATEWAY_TIMEOUT,
                "chain_timeout",
                format!("the chain's RPC did not answer within {} s; try again shortly", limit.as_secs()),
            ))
        })
    }
}

/// Middleware: counts the request against its connection; 429 over the limit.
/// Requests without a peer address (in-process tests) are not counted.
pub(crate) async fn per_connection(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = &state.limits;
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if let Some(peer) = peer
        && !limits.http.allow(&peer)
    {
        tracing::debug!(target: "gateway::limits", %peer, "HTTP rate limit exceeded (429)");
        return too_many(format!(
            "more than {} requests a second on this connection; slow down",
            limits.config.http_requests_per_sec
        ));
    }
    // A credential counts over all the connections it is used on.
    if let Some(key) = credential(request.headers())
        && !limits.http_key.allow(&key)
    {
        tracing::debug!(target: "gateway::limits", "HTTP rate limit of a credential exceeded (429)");
        return too_many(format!(
            "more than {} requests a second under this session; slow down",
            limits.config.http_key_requests_per_sec
        ));
    }
    next.run(request).await
}

/// The hash of the bearer token or session cookie a request presents.
fn credential(headers: &axum::http::HeaderMap) -> Option<[u8; 32]> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = bearer.or_else(|| {
        let jar = axum_extra::extract::CookieJar::from_headers(headers);
        jar.get(crate::session::COOKIE).map(|c| c.value().to_owned())
    })?;
    Some(*blake3::hash(token.as_bytes()).as_bytes())
}

/// 429 with `Retry-After: 1`.
pub(crate) fn too_many(message: String) -> Response {
    let mut response =
        ApiError::client(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_key_is_held_to_its_rate() {
        let limiter = Limiter::new(1, 3);
        let (a, b) = (1u8, 2u8);
        assert!((0..3).all(|_| limiter.allow(&a)), "the burst");
        assert!(!limiter.allow(&a), "over the burst");
        assert!(limiter.allow(&b), "another key has its own allowance");
        limiter.forget_idle();
        assert!(!limiter.allow(&a), "a key still limited is not forgotten");
    }

    #[test]
    fn the_allowance_comes_back_at_the_sustained_rate_of_real_time() {
        let limiter = Limiter::new(10, 1);
        assert!(limiter.allow(&0u8));
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(!limiter.allow(&0u8), "a tenth of a second has not passed");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(limiter.allow(&0u8), "it has now");
    }
}
