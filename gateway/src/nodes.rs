//! The directory of nodes known to this gateway: live connections, health,
//! capabilities. It is what the matchmaker sees through [`NodeLink`].

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Instant,
};

use lumen_matchmaker::NodeLink;
use lumen_protocol::{
    Address, Wei,
    api::NodeView,
    node::{HealthPolicy, NodeHealth, NodeState},
    ws::{Capabilities, ServerMessage},
};
use tokio::sync::mpsc;

/// What the gateway sends down a node's connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A protocol message.
    Message(ServerMessage),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

#[derive(Debug)]
struct Entry {
    conn_id: u64,
    tx: Option<mpsc::UnboundedSender<Outgoing>>,
    health: NodeHealth,
    capabilities: Capabilities,
    owner: Address,
    stake: Wei,
    session: String,
    connected_at: Instant,
}

/// All nodes this gateway has seen.
#[derive(Debug)]
pub struct NodeDirectory {
    policy: HealthPolicy,
    entries: Mutex<HashMap<Address, Entry>>,
    next_conn: std::sync::atomic::AtomicU64,
}

impl NodeDirectory {
    /// An empty directory with these health rules.
    pub fn new(policy: HealthPolicy) -> Self {
        Self { policy, entries: Mutex::default(), next_conn: 0.into() }
    }

    /// The health rules.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Address, Entry>> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records an authenticated connection; returns its id and closes any
    /// older connection of the same node.
    pub fn connect(
        &self,
        node: Address,
        owner: Address,
        stake: Wei,
        capabilities: Capabilities,
        session: String,
        tx: mpsc::UnboundedSender<Outgoing>,
    ) -> u64 {
        let conn_id = self.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get_mut(&node) {
            Some(entry) => {
                if let Some(old) = entry.tx.take() {
                    let _ = old.send(Outgoing::Close(
                        lumen_protocol::ws::CLOSE_REPLACED,
                        "the node connected again".into(),
                    ));
                }
                entry.conn_id = conn_id;
                entry.tx = Some(tx);
                entry.capabilities = capabilities;
                entry.owner = owner;
                entry.stake = stake;
                entry.session = session;
                entry.connected_at = now;
                entry.health.reconnected(now);
            }
            None => {
                entries.insert(
                    node,
                    Entry {
                        conn_id,
                        tx: Some(tx),
                        health: NodeHealth::new(self.policy, now),
                        capabilities,
                        owner,
                        stake,
                        session,
                        connected_at: now,
                    },
                );
            }
        }
        conn_id
    }

    /// Forgets a connection (if it is still the node's current one).
    pub fn disconnect(&self, node: &Address, conn_id: u64) -> bool {
        let mut entries = self.lock();
        match entries.get_mut(node) {
            Some(entry) if entry.conn_id == conn_id => {
                entry.tx = None;
                entry.session.clear();
                true
            }
            _ => false,
        }
    }

    /// A heartbeat from a node; returns its state before and after.
    pub fn heartbeat(&self, node: &Address) -> Option<(NodeState, NodeState)> {
        self.lock().get_mut(node).map(|e| {
            let before = e.health.state();
            (before, e.health.heartbeat(Instant::now()))
        })
    }

    /// A task of the node failed (render error, rejected or invalid result, timeout).
    pub fn failure(&self, node: &Address) -> Option<NodeState> {
        self.lock().get_mut(node).map(|e| e.health.failure(Instant::now()))
    }

    /// A task of the node succeeded.
    pub fn success(&self, node: &Address) {
        if let Some(e) = self.lock().get_mut(node) {
            e.health.success();
        }
    }

    /// Closes the node's connection, if it has one, with `code`.
    pub fn close(&self, node: &Address, code: u16, reason: &str) -> bool {
        let mut entries = self.lock();
        let Some(tx) = entries.get_mut(node).and_then(|e| e.tx.take()) else { return false };
        tx.send(Outgoing::Close(code, reason.into())).is_ok()
    }

    /// The node whose session token this is.
    pub fn node_for_session(&self, token: &str) -> Option<Address> {
        if token.is_empty() {
            return None;
        }
        self.lock().iter().find(|(_, e)| e.tx.is_some() && e.session == token).map(|(a, _)| *a)
    }

    /// Nodes connected now and heard from within the heartbeat timeout:
    /// they are up (uptime is recorded from this once a minute).
    pub fn up(&self) -> Vec<Address> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, e)| {
                let heard = e.health.last_heartbeat().unwrap_or(e.connected_at);
                e.tx.is_some() && now.saturating_duration_since(heard) < self.policy.heartbeat_timeout
            })
            .map(|(a, _)| *a)
            .collect()
    }

    /// When the latest heartbeat from any node was heard.
    pub fn latest_heartbeat(&self) -> Option<Instant> {
        self.lock().values().filter_map(|e| e.health.last_heartbeat()).max()
    }

    /// Applies silence to every node; returns connected nodes whose
    /// heartbeat timed out (their connections are told to close).
    pub fn tick(&self) -> Vec<Address> {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        for (address, entry) in self.lock().iter_mut() {
            let before = entry.health.state();
            let after = entry.health.tick(now);
            let silent_since = entry.health.last_heartbeat().unwrap_or(entry.connected_at);
            if entry.tx.is_some()
                && now.saturating_duration_since(silent_since) >= self.policy.heartbeat_timeout
            {
                if let Some(tx) = entry.tx.take() {
                    let _ = tx.send(Outgoing::Close(
                        lumen_protocol::ws::CLOSE_HEARTBEAT_TIMEOUT,
                        "heartbeat timeout".into(),
                    ));
                }
                timed_out.push(*address);
            }
            if before != after {
                tracing::info!(target: "gateway::nodes", node = %address, from = %before, to = %after, "node state changed");
            }
        }
        timed_out
    }

    /// Every node this gateway has seen (`connected` ones first when
    /// `connected_only`), sorted by address. `running` is left at 0: the
    /// database knows it.
    pub fn views(&self, connected_only: bool) -> Vec<NodeView> {
        let now = Instant::now();
        let mut list: Vec<NodeView> = self
            .lock()
            .iter()
            .filter(|(_, e)| !connected_only || e.tx.is_some())
            .map(|(address, e)| NodeView {
                address: *address,
                owner: e.owner,
                state: e.health.state(),
                connected: e.tx.is_some(),
                capabilities: e.capabilities.clone(),
                consecutive_failures: e.health.consecutive_failures(),
                last_heartbeat_secs: e
                    .health
                    .last_heartbeat()
                    .map(|t| now.saturating_duration_since(t).as_secs_f64()),
                running: 0,
                stake: e.stake,
                trust: None,
            })
            .collect();
        list.sort_by_key(|s| s.address);
        list
    }
}

impl NodeLink for NodeDirectory {
    fn nodes(&self) -> Vec<NodeView> {
        self.views(true)
    }

    fn send(&self, node: &Address, message: ServerMessage) -> bool {
        self.lock()
            .get(node)
            .and_then(|e| e.tx.as_ref())
            .is_some_and(|tx| tx.send(Outgoing::Message(message)).is_ok())
    }
}
