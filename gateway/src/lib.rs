//! The gateway: the artists' HTTP API, the nodes' WebSocket, the blob store
//! and the dashboard.
//!
//! Who may call what ([`session`]): *public* — anyone; *artist* — signed in
//! with their wallet (Sign-In with Ethereum), and only for their own jobs
//! and files; *node* — the session token of a node's WebSocket.
//!
//! - `GET /api/v1/auth/nonce`, `POST /api/v1/auth/siwe`,
//!   `GET /api/v1/auth/session`, `POST /api/v1/auth/logout` — sign in and out.
//! - `POST /api/v1/blends` (artist) — upload a `.blend`; it is stored by
//!   blake3 hash and inspected (frame range, resolution, engine, unpacked
//!   external files) in a sandboxed Blender subprocess.
//! - `POST /api/v1/jobs` (artist, the spec's signer) — register a job
//!   opened on-chain with its signed spec, of a `.blend` they uploaded.
//! - `GET /api/v1/jobs` (artist) — their own jobs.
//! - `GET /api/v1/jobs/{id}` (the job's artist) — job and per-frame status
//!   (payouts from the chain mirror).
//! - `GET /api/v1/jobs/{id}/frames/{frame}/preview` (the job's artist) — a
//!   reduced, watermarked preview of a verified frame.
//! - `GET /api/v1/jobs/{id}/frames/{frame}` (the job's artist) — the full
//!   frame, once its payment is final on-chain.
//! - `GET /api/v1/blobs/{hash}` (node rendering it, or the artist who
//!   uploaded it) — a `.blend` by hash.
//! - `PUT /api/v1/tasks/{id}/output` (node running the task) — a frame.
//! - `GET /api/v1/changes` (public) — what moved on the network, as
//!   server-sent events: the dashboard's pages reload on them ([`changes`]).
//! - `GET /api/v1/stats`, `GET /api/v1/nodes`, `GET /api/v1/market`,
//!   `GET /api/v1/info` (public) — aggregates, nodes, what jobs are
//!   accepted, the deployment.
//! - `GET /api/v1/earnings…`, `GET /api/v1/leaderboard` (public) — what
//!   operators earned ([`earnings`]); `GET /api/v1/operators/{owner}`
//!   (public) — an owner's nodes and what it can withdraw now
//!   ([`operators`]); `GET /api/v1/tokens` (public) — the accepted tokens'
//!   symbols and decimals ([`tokens`]); `GET /api/v1/explorer…` (public) — the payout
//!   explorer ([`explorer`]).
//! - `GET /ws/node` — the node WebSocket ([`lumen_protocol::ws`]).
//! - `GET /`, `GET /assets/app.js`, `GET /assets/app.css` (public) — the
//!   dashboard, embedded at compile time ([`web`]).

mod api;
mod archive;
mod body;
mod changes;
mod earnings;
pub mod error;
mod explorer;
mod inspect;
pub mod limits;
mod live;
mod memo;
pub mod nodes;
mod operators;
mod session;
mod submit;
mod tokens;
mod web;
mod ws;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use axum::{Router, routing::get};
use lumen_chain::contracts::{NodeRegistry, RenderEscrow};
use lumen_protocol::{Address, Deployment, TaskState, node::HealthPolicy, ws::CLOSE_BANNED};
use lumen_runtime::{ServiceError, ServiceHandle};
use lumen_store::{Bus, Store};
use serde::{Deserialize, Serialize};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

pub use error::{ApiError, GatewayError, GatewayResult};
pub use limits::LimitsConfig;
pub use nodes::NodeDirectory;

/// Gateway settings (the `[gateway]` table of `lumen.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to listen (default `127.0.0.1:8080`). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The URL nodes use to reach this gateway; part of the signed auth
    /// challenge. Defaults to `http://<bound address>`.
    pub public_url: Option<String>,
    /// Node health thresholds (the operator guide's by default).
    pub health: HealthPolicy,
    /// Largest `.blend` upload, bytes (default 1 GiB).
    pub max_blend_bytes: usize,
    /// Largest frame upload, bytes (default 256 MiB).
    pub max_frame_bytes: usize,
    /// Seconds a node has to answer the challenge (default 10).
    pub auth_timeout_secs: u64,
    /// Seconds Blender may spend inspecting an upload (default 60).
    pub inspect_timeout_secs: u64,
    /// How long an artist's sign-in (Sign-In with Ethereum) lasts, seconds
    /// (default 86400: a day).
    pub session_ttl_secs: u64,
    /// What jobs the gateway accepts: payment tokens and their lowest price
    /// per frame, and the most frames a job may have (`[gateway.market]`).
    pub market: lumen_protocol::api::Market,
    /// What one client may cost: request and message rates, upload pace
    /// and concurrency (`[gateway.limits]`).
    pub limits: LimitsConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            health: HealthPolicy::default(),
            max_blend_bytes: 1 << 30,
            max_frame_bytes: 256 << 20,
            auth_timeout_secs: 10,
            inspect_timeout_secs: 60,
            session_ttl_secs: 86_400,
            market: lumen_protocol::api::Market::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Defaults on `127.0.0.1:0` (a free port), for tests.
    pub fn test() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Self::default() }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    config: Arc<GatewayConfig>,
    /// The settlement chain, with its `rpc_url` set.
    chain: Arc<Deployment>,
    public_url: Arc<str>,
    store: Store,
    bus: Bus,
    nodes: Arc<NodeDirectory>,
    registry: NodeRegistry::NodeRegistryInstance<DynProvider>,
    escrow: RenderEscrow::RenderEscrowInstance<DynProvider>,
    blender: Option<Arc<lumen_blender::Blender>>,
    /// Sign-in settings.
    auth: session::SharedAuth,
    limits: limits::Limits,
    /// The leaderboard's JSON, computed once per clock minute and mirror
    /// stamp.
    leaderboard: memo::Memo<(u64, String), axum::body::Bytes>,
    /// Every paid node's earnings as JSON, computed once per mirror stamp.
    node_earnings: memo::Memo<String, axum::body::Bytes>,
    /// The network's aggregates (`GET /api/v1/stats`), counted once per
    /// change of the network's stamps.
    aggregates: memo::Memo<(String, String), lumen_store::Aggregates>,
    /// Symbols and decimals of payment tokens, read once.
    token_names: tokens::TokenNames,
    /// Open live job views (server-sent events), per artist.
    live: live::StreamSlots<Address>,
    /// Open change feeds (server-sent events), per client address.
    feeds: live::StreamSlots<std::net::IpAddr>,
    /// The network's latest change stamps, kept by [`changes::keep_current`].
    changes: changes::Feed,
    /// Permits for building frame archives.
    archives: archive::Builds,
    /// Cancelled when the gateway stops: WebSocket sessions close (1001)
    /// and background loops return.
    shutdown: CancellationToken,
    /// Every WebSocket session and background loop, so shutdown waits for
    /// them (axum's graceful shutdown does not see upgraded connections).
    tasks: TaskTracker,
}

impl AppState {
    fn new(config: GatewayConfig, public_url: String, deps: GatewayDeps) -> GatewayResult<Self> {
        let chain = deps.chain;
        let rpc_url = chain.rpc_url.clone().ok_or_else(|| GatewayError::RpcUrl("(none)".into()))?;
        let url = rpc_url.parse().map_err(|_| GatewayError::RpcUrl(rpc_url.clone()))?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        let blender = match lumen_blender::Blender::locate() {
            Ok(b) => Some(Arc::new(b)),
            Err(err) => {
                tracing::warn!(target: "gateway", %err, "no usable Blender (missing, or no sandbox to run it in): uploads cannot be inspected");
                None
            }
        };
        let auth = Arc::new(session::Auth::new(
            &public_url,
            chain.chain_id,
            Duration::from_secs(config.session_ttl_secs.max(60)),
        ));
        Ok(Self {
            auth,
            registry: NodeRegistry::new(chain.registry, provider.clone()),
            escrow: RenderEscrow::new(chain.escrow, provider),
            chain: Arc::new(chain),
            limits: limits::Limits::new(config.limits),
            config: Arc::new(config),
            public_url: public_url.into(),
            store: deps.store,
            bus: deps.bus,
            nodes: deps.nodes,
            blender,
            leaderboard: memo::Memo::new(Duration::from_secs(60)),
            node_earnings: memo::Memo::new(memo::SAME_STAMP_MAX_AGE),
            aggregates: memo::Memo::new(memo::SAME_STAMP_MAX_AGE),
            token_names: tokens::TokenNames::default(),
            live: live::StreamSlots::new(live::MAX_STREAMS, live::MAX_STREAMS_PER_ARTIST),
            feeds: live::StreamSlots::new(changes::MAX_FEEDS, changes::MAX_FEEDS_PER_PEER),
            changes: changes::Feed::default(),
            archives: archive::Builds::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }
}

/// What the gateway shares with the services beside it.
#[derive(Debug, Clone)]
pub struct GatewayDeps {
    /// The settlement chain: the deployment, with its `rpc_url` set.
    pub chain: Deployment,
    /// The database and blob store.
    pub store: Store,
    /// Wake-ups between services of this process.
    pub bus: Bus,
    /// The connected nodes (the matchmaker dispatches through it).
    pub nodes: Arc<NodeDirectory>,
}

/// A running gateway. [`GatewayHandle::shutdown`] stops it gracefully;
/// dropping the handle stops it too.
#[derive(Debug)]
pub struct GatewayHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The public URL (`http://…`).
    pub url: String,
    service: ServiceHandle<GatewayError>,
}

impl GatewayHandle {
    /// The WebSocket URL nodes connect to.
    pub fn ws_url(&self) -> String {
        format!("{}/ws/node", self.url.replacen("http", "ws", 1))
    }

    /// Waits until the gateway stops by itself (its server failed).
    pub async fn stopped(&mut self) {
        self.service.stopped().await;
    }

    /// Stops accepting connections, lets requests in flight finish, closes
    /// every node session with 1001 (their running frames go back to the
    /// queue), waits for all of it, and returns how the gateway ended.
    pub async fn shutdown(self) -> Result<(), ServiceError<GatewayError>> {
        self.service.shutdown().await
    }

    /// The service handle, to stop it among others.
    pub fn into_service(self) -> ServiceHandle<GatewayError> {
        self.service
    }
}

/// Starts the gateway: binds `config.listen` and serves until shut down.
pub async fn spawn(config: GatewayConfig, deps: GatewayDeps) -> GatewayResult<GatewayHandle> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let state = AppState::new(config, public_url.clone(), deps)?;
    let shutdown = state.shutdown.clone();
    let tasks = state.tasks.clone();
    tasks.spawn(tick_health(state.clone()));
    tasks.spawn(verdict_feedback(state.clone()));
    tasks.spawn(changes::keep_current(state.clone()));
    let app = routes(state);
    let stop = shutdown.clone();
    let serve = async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await;
        // However the server ended, sessions and loops end with it.
        stop.cancel();
        tasks.close();
        tasks.wait().await;
        info!(target: "gateway", "gateway stopped");
        served.map_err(GatewayError::Serve)
    };
    info!(target: "gateway", %addr, url = %public_url, "gateway listening");
    let service = ServiceHandle::spawn("gateway", Some(addr), shutdown, serve);
    Ok(GatewayHandle { addr, url: public_url, service })
}

/// The gateway's routes over its state, without a listener: for in-process
/// tests (`tower::ServiceExt::oneshot`). The router's background loops
/// (health ticks, verdict feedback) do not run; node sessions do.
pub fn router(config: GatewayConfig, deps: GatewayDeps) -> GatewayResult<Router> {
    let public_url = config.public_url.clone().unwrap_or_else(|| "http://gateway.invalid".into());
    Ok(routes(AppState::new(config, public_url, deps)?))
}

/// Upload bodies are capped while they stream in (`crate::body`), not by
/// axum's body limit; every request counts against its connection's rate.
fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/assets/app.js", get(web::app_js))
        .route("/assets/app.css", get(web::app_css))
        .route("/healthz", get(api::healthz))
        .route("/api/v1/info", get(api::info))
        .route("/api/v1/market", get(api::market))
        .route("/api/v1/stats", get(api::stats))
        .route("/api/v1/auth/nonce", get(session::nonce))
        .route("/api/v1/auth/siwe", axum::routing::post(session::sign_in))
        .route("/api/v1/auth/session", get(session::current))
        .route("/api/v1/auth/logout", axum::routing::post(session::sign_out))
        .route("/api/v1/blends", axum::routing::post(api::upload_blend))
        .route("/api/v1/blobs/{hash}", get(api::get_blob))
        .route("/api/v1/blends/{hash}", get(submit::own_blend))
        .route("/api/v1/typed-data/job-spec", get(submit::job_spec_types))
        .route("/api/v1/jobs", axum::routing::post(api::register_job).get(api::list_jobs))
        .route("/api/v1/jobs/{id}", get(api::job_status))
        .route("/api/v1/jobs/{id}/events", get(live::job_events))
        .route("/api/v1/changes", get(changes::feed))
        .route("/api/v1/jobs/{id}/frames.zip", get(archive::paid_frames))
        .route("/api/v1/jobs/{id}/frames/{frame}", get(api::job_frame))
        .route("/api/v1/jobs/{id}/frames/{frame}/preview", get(api::job_preview))
        .route("/api/v1/tasks/{id}/output", axum::routing::put(api::upload_output))
        .route("/api/v1/nodes", get(api::list_nodes))
        .route("/api/v1/earnings", get(earnings::nodes))
        .route("/api/v1/earnings/{owner}", get(earnings::owner))
        .route("/api/v1/earnings/{owner}/statements/{month}", get(earnings::statement))
        .route("/api/v1/leaderboard", get(earnings::leaderboard))
        .route("/api/v1/operators/{owner}", get(operators::operator))
        .route("/api/v1/tokens", get(tokens::tokens))
        .route("/api/v1/explorer", get(explorer::explorer_links))
        .route("/api/v1/explorer/tx/{hash}", get(explorer::tx))
        .route("/api/v1/explorer/address/{address}", get(explorer::address))
        .route("/api/v1/explorer/jobs/{id}", get(explorer::job))
        .route("/api/v1/evidence/{hash}", get(explorer::evidence))
        .route("/ws/node", get(ws::upgrade))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::per_connection))
        .with_state(state)
}

/// Applies heartbeat silence once a second; nodes that time out lose their
/// running tasks to the matchmaker. Once a minute the rate limiters forget
/// clients that went quiet.
async fn tick_health(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            state.limits.http.forget_idle();
            state.limits.ws.forget_idle();
            state.limits.http_key.forget_idle();
            state.limits.handshakes.forget_idle();
        }
        if ticks.is_multiple_of(60)
            && let Err(err) = state.store.prune_sessions().await
        {
            tracing::warn!(target: "gateway::auth", %err, "cannot forget expired sessions");
        }
        // Uptime: the minute goes to every node connected and heard from
        // within the heartbeat timeout (one transaction a minute).
        if ticks.is_multiple_of(60) {
            let now = u64::try_from(lumen_store::now_ms() / 1_000).unwrap_or(0);
            if let Err(err) = state.store.record_uptime(&state.nodes.up(), 60, now).await {
                tracing::warn!(target: "gateway::nodes", %err, "cannot record uptime");
            }
        }
        for node in state.nodes.tick() {
            tracing::warn!(target: "gateway::nodes", %node, "heartbeat timeout: closing connection (4002)");
        }
    }
}

/// Verifier verdicts feed node health: a rejected frame counts as a
/// failure of the node that rendered it, an accepted one as a success. The
/// verdicts are read from the database, so a verifier in another process
/// counts too; a bus event only makes it prompt.
async fn verdict_feedback(state: AppState) {
    let mut events = state.bus.subscribe();
    let mut seen = match state.store.last_verdict_seq().await {
        Ok(id) => id,
        Err(err) => {
            tracing::error!(target: "gateway::nodes", %err, "cannot read tasks: verdicts will not affect node health");
            return;
        }
    };
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = events.recv() => {}
        }
        let judged = match state.store.judged_tasks_after(seen).await {
            Ok(judged) => judged,
            Err(err) => {
                tracing::warn!(target: "gateway::nodes", %err, "cannot read verdicts");
                continue;
            }
        };
        match state.store.banned_nodes().await {
            Ok(banned) => {
                for node in banned {
                    if state.nodes.close(&node, CLOSE_BANNED, "banned: proven to cheat") {
                        tracing::warn!(target: "gateway::nodes", %node, "banned node disconnected (4005)");
                    }
                }
            }
            Err(err) => tracing::warn!(target: "gateway::nodes", %err, "cannot read bans"),
        }
        for task in judged {
            seen = task.verdict_seq.unwrap_or(seen);
            let node = task.node;
            if task.state == TaskState::Accepted {
                state.nodes.success(&node);
            } else if let Some(now) = state.nodes.failure(&node) {
                tracing::warn!(target: "gateway::nodes", %node, state = %now, "rejected frame counted against the node");
            }
        }
    }
}
