//! How Lumen's services are put together: one configuration model
//! ([`LumenConfig`], loaded from defaults, `lumen.toml`, `LUMEN_*`
//! variables and flags) and one composition function ([`spawn`]) that
//! starts any subset of gateway, matchmaker, verifier and indexer over one
//! store. `lumen devnet` runs all of them in one process; `lumen-gateway`,
//! `lumen-verifier` and `lumen-indexer` each run their part through
//! [`run`]; tests call [`spawn`] on free ports.
//!
//! The matchmaker always runs beside the gateway: it dispatches over the
//! gateway's node connections.

pub mod config;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use lumen_gateway::{GatewayDeps, GatewayError, NodeDirectory};
use lumen_indexer::IndexerError;
use lumen_protocol::Deployment;
use lumen_runtime::{BoxError, ServiceError, ServiceHandle};
use lumen_store::{Bus, Store, StoreError};
use tracing::{info, warn};

pub use config::{ChainArgs, ChainConfig, GatewayArgs, IndexerArgs, LumenConfig, Overrides, ServiceArgs};

/// Result alias of this crate.
pub type StackResult<T> = Result<T, StackError>;

/// What can stop a stack from starting, or what it ended with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The configuration file named on the command line does not exist.
    #[error("configuration file {0} does not exist")]
    ConfigFile(PathBuf),
    /// A configuration layer has an unknown key or a bad value.
    #[error("configuration: {0}")]
    Config(Box<figment::Error>),
    /// A required setting was given nowhere.
    #[error("missing setting {0}")]
    Missing(&'static str),
    /// The deployment file cannot be read.
    #[error("deployment file {path}: {reason}")]
    Deployment {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The settler key or RPC URL is unusable.
    #[error(transparent)]
    Chain(#[from] lumen_chain::ChainError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gateway cannot start.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The indexer cannot start.
    #[error(transparent)]
    Indexer(#[from] IndexerError),
    /// Services failed while running or stopping; every failure is listed.
    #[error("{}", list(.0))]
    Failed(Vec<ServiceError<BoxError>>),
}

fn list(failures: &[ServiceError<BoxError>]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services {
    /// The gateway and, beside it, the matchmaker.
    pub gateway: bool,
    /// The verifier.
    pub verifier: bool,
    /// The indexer (needs the settler key).
    pub indexer: bool,
}

impl Services {
    /// Everything: `lumen devnet` and tests.
    pub const ALL: Self = Self { gateway: true, verifier: true, indexer: true };
    /// `lumen-gateway`: the gateway and the matchmaker.
    pub const GATEWAY: Self = Self { gateway: true, verifier: false, indexer: false };
    /// `lumen-verifier`.
    pub const VERIFIER: Self = Self { gateway: false, verifier: true, indexer: false };
    /// `lumen-indexer`.
    pub const INDEXER: Self = Self { gateway: false, verifier: false, indexer: true };
}

/// What the services share: the chain, the store, the bus, and the
/// settler's key and provider when the indexer runs.
#[derive(Debug, Clone)]
pub struct StackDeps {
    /// The deployment, with its RPC URL (the gateway and the indexer need
    /// it; a verifier alone does not).
    pub deployment: Option<Deployment>,
    /// The database and blobs.
    pub store: Store,
    /// Wake-ups between the services of this process.
    pub bus: Bus,
    /// Signs releases, closes, refunds and slashes (the indexer's only).
    pub settler: Option<lumen_chain::Settler>,
}

impl StackDeps {
    /// Opens the store under `config.data_dir`; reads the deployment when
    /// `services` include the gateway or the indexer, and the settler key
    /// (from the variable `config.chain.settler_key_env`) when they include
    /// the indexer.
    pub async fn open(config: &LumenConfig, services: Services) -> StackResult<Self> {
        let deployment = (services.gateway || services.indexer).then(|| config.deployment()).transpose()?;
        let settler = match &deployment {
            Some(deployment) if services.indexer => {
                let key = lumen_chain::key_from_env(&config.chain.settler_key_env)?;
                let url =
                    deployment.rpc_url.as_deref().ok_or(StackError::Missing("chain.rpc_url (--rpc-url)"))?;
                Some(lumen_chain::Settler::connect(key, url)?)
            }
            _ => None,
        };
        let store = Store::open(&config.data_dir).await?;
        Ok(Self { deployment, store, bus: Bus::new(), settler })
    }
}

/// The running services of one process.
#[derive(Debug)]
pub struct StackHandle {
    gateway: Option<(SocketAddr, String)>,
    /// In start order; stopped in this order too, so the gateway stops
    /// taking results before the services that act on them.
    services: Vec<ServiceHandle<BoxError>>,
}

impl StackHandle {
    /// The gateway's bound address, when this stack runs one.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|(addr, _)| *addr)
    }

    /// The gateway's public URL (`http://…`), when this stack runs one.
    pub fn gateway_url(&self) -> Option<&str> {
        self.gateway.as_ref().map(|(_, url)| url.as_str())
    }

    /// The WebSocket URL nodes connect to, when this stack runs a gateway.
    pub fn ws_url(&self) -> Option<String> {
        self.gateway_url().map(|url| format!("{}/ws/node", url.replacen("http", "ws", 1)))
    }

    /// The names of the running services, in start order.
    pub fn services(&self) -> Vec<&'static str> {
        self.services.iter().map(ServiceHandle::name).collect()
    }

    /// Waits until any service ends by itself (it failed or panicked);
    /// returns its name. Pending forever when there are no services.
    pub async fn stopped(&mut self) -> &'static str {
        if self.services.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.services.iter_mut().map(|s| {
            Box::pin(async move {
                s.stopped().await;
                s.name()
            })
        });
        futures::future::select_all(waits).await.0
    }

    /// Stops every service in start order, each draining its work, and
    /// returns every failure, from running or from stopping.
    pub async fn shutdown(self) -> StackResult<()> {
        let mut failures = Vec::new();
        for service in self.services {
            let name = service.name();
            match service.shutdown().await {
                Ok(()) => info!(target: "stack", service = name, "stopped"),
                Err(err) => failures.push(err),
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(StackError::Failed(failures)) }
    }

    /// Runs until `signal` resolves or a service fails, then stops all.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> StackResult<()> {
        tokio::select! {
            () = signal => info!(target: "stack", "shutting down"),
            name = self.stopped() => warn!(target: "stack", service = name, "a service stopped: shutting the others down"),
        }
        self.shutdown().await
    }
}

/// Starts `services` over `deps` with `config`: the one place services are
/// wired together. When one cannot start, those already started are
/// stopped before the error is returned.
pub async fn spawn(config: &LumenConfig, services: Services, deps: StackDeps) -> StackResult<StackHandle> {
    let mut stack = StackHandle { gateway: None, services: Vec::new() };
    match start(&mut stack, config, services, deps).await {
        Ok(()) => {
            info!(target: "stack", services = ?stack.services(), "started");
            Ok(stack)
        }
        Err(err) => {
            if let Err(stopping) = stack.shutdown().await {
                warn!(target: "stack", %stopping, "stopping the services that had started failed");
            }
            Err(err)
        }
    }
}

async fn start(
    stack: &mut StackHandle,
    config: &LumenConfig,
    services: Services,
    deps: StackDeps,
) -> StackResult<()> {
    let StackDeps { deployment, store, bus, settler } = deps;
    let deployment = || deployment.clone().ok_or(StackError::Missing("chain.deployment (--deployment)"));
    if services.gateway {
        let nodes = Arc::new(NodeDirectory::new(config.gateway.health));
        let gateway_deps = GatewayDeps {
            chain: deployment()?,
            store: store.clone(),
            bus: bus.clone(),
            nodes: nodes.clone(),
        };
        let gateway = lumen_gateway::spawn(config.gateway.clone(), gateway_deps).await?;
        stack.gateway = Some((gateway.addr, gateway.url.clone()));
        stack.services.push(gateway.into_service().boxed());
        let matchmaker = lumen_matchmaker::spawn(config.matchmaker, store.clone(), bus.clone(), nodes);
        stack.services.push(matchmaker.boxed());
    }
    if services.verifier {
        stack.services.push(lumen_verifier::spawn(config.verifier, store.clone(), bus.clone()).boxed());
    }
    if services.indexer {
        let settler = settler.ok_or(StackError::Missing("the settler key (chain.settler_key_env)"))?;
        let indexer = lumen_indexer::spawn(config.indexer, &deployment()?, store, bus, settler).await?;
        stack.services.push(indexer.boxed());
    }
    Ok(())
}

/// What a service binary does: open the shared dependencies, start
/// `services`, run until `signal` or a failure, stop everything.
pub async fn run(
    config: &LumenConfig,
    services: Services,
    signal: impl Future<Output = ()>,
) -> StackResult<()> {
    let deps = StackDeps::open(config, services).await?;
    spawn(config, services, deps).await?.run_until(signal).await
}

/// The whole `main` of a service binary once its flags are parsed: set up
/// logging, load the configuration, [`run`] until Ctrl-C or SIGTERM, and
/// turn the outcome into an exit code (errors on stderr).
#[allow(clippy::disallowed_macros)] // a binary reporting its own failure
pub async fn main(services: Services, config: StackResult<LumenConfig>) -> std::process::ExitCode {
    lumen_runtime::init_logging();
    let ended = match config {
        Ok(config) => run(&config, services, lumen_runtime::shutdown_signal()).await,
        Err(err) => Err(err),
    };
    match ended {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
