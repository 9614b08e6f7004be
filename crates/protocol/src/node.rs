//! Node states and the health rules of the operator guide.
//!
//! ```text
//! REGISTERED ──(heartbeat)──→ HEALTHY
//! HEALTHY ──(3 failures)──→ UNHEALTHY
//! HEALTHY ──(missed heartbeats)──→ UNHEALTHY
//! UNHEALTHY ──(heartbeat)──→ HEALTHY
//! HEALTHY/UNHEALTHY ──(no heartbeat 5 min)──→ OFFLINE
//! OFFLINE ──(heartbeat)──→ HEALTHY
//! ```
//!
//! One refinement: a node made UNHEALTHY by failures returns to HEALTHY on a
//! heartbeat only once `failure_cooldown` has passed since its last failure
//! (or when it reconnects, the guide's "fix the plugin, restart the node").
//! Otherwise a node that fails every frame would be healthy again ten seconds
//! later and keep eating frames.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where a node stands with the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    /// Authenticated, no heartbeat yet. Receives no work.
    Registered,
    /// Active and accepting work.
    Healthy,
    /// Too many failures or missed heartbeats. Receives no work.
    Unhealthy,
    /// No heartbeat for a long time. Receives no work.
    Offline,
}

impl NodeState {
    /// Whether the matchmaker may give this node work.
    pub fn receives_jobs(self) -> bool {
        self == Self::Healthy
    }

    /// The state's name as the operator guide writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "REGISTERED",
            Self::Healthy => "HEALTHY",
            Self::Unhealthy => "UNHEALTHY",
            Self::Offline => "OFFLINE",
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds of the health rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthPolicy {
    /// How often nodes send heartbeats.
    #[serde(with = "secs")]
    pub heartbeat_interval: Duration,
    /// Silence after which a HEALTHY node becomes UNHEALTHY (and the gateway
    /// closes its connection with 4002).
    #[serde(with = "secs")]
    pub heartbeat_timeout: Duration,
    /// Silence after which a node is OFFLINE.
    #[serde(with = "secs")]
    pub offline_after: Duration,
    /// Consecutive failed tasks that make a node UNHEALTHY.
    pub max_consecutive_failures: u32,
    /// How long after its last failure a failing node must wait before a
    /// heartbeat makes it HEALTHY again.
    #[serde(with = "secs")]
    pub failure_cooldown: Duration,
}

impl Default for HealthPolicy {
    /// The operator guide's numbers: 3 failures, OFFLINE after 5 minutes.
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            offline_after: Duration::from_secs(300),
            max_consecutive_failures: 3,
            failure_cooldown: Duration::from_secs(60),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Why a node is UNHEALTHY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnhealthyCause {
    Failures,
    Silence,
}

/// The health of one node: feed it events, read its state.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    policy: HealthPolicy,
    state: NodeState,
    cause: Option<UnhealthyCause>,
    last_heartbeat: Option<Instant>,
    connected_at: Instant,
    consecutive_failures: u32,
    last_failure: Option<Instant>,
}

impl NodeHealth {
    /// A node that has just authenticated.
    pub fn new(policy: HealthPolicy, now: Instant) -> Self {
        Self {
            policy,
            state: NodeState::Registered,
            cause: None,
            last_heartbeat: None,
            connected_at: now,
            consecutive_failures: 0,
            last_failure: None,
        }
    }

    /// The current state (call [`NodeHealth::tick`] first to apply silence).
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// Consecutive failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last_heartbeat
    }

    /// The node reconnected: failures are forgiven, it must heartbeat again.
    pub fn reconnected(&mut self, now: Instant) {
        self.connected_at = now;
        self.consecutive_failures = 0;
        self.last_failure = None;
        self.cause = None;
        if self.state != NodeState::Offline {
            self.state = NodeState::Registered;
        }
    }

    /// A heartbeat arrived.
    pub fn heartbeat(&mut self, now: Instant) -> NodeState {
        self.last_heartbeat = Some(now);
        self.state = match (self.state, self.cause) {
            (NodeState::Unhealthy, Some(UnhealthyCause::Failures)) => {
                let cooled = self
                    .last_failure
                    .is_none_or(|at| now.saturating_duration_since(at) >= self.policy.failure_cooldown);
                if cooled {
                    self.consecutive_failures = 0;
                    self.cause = None;
                    NodeState::Healthy
                } else {
                    NodeState::Unhealthy
                }
            }
            _ => {
                self.cause = None;
                NodeState::Healthy
            }
        };
        self.state
    }

    /// A task finished well.
    pub fn success(&mut self) {
        self.consecutive_failures = 0;
    }

    /// A task failed (render error, rejected frame, timeout).
    pub fn failure(&mut self, now: Instant) -> NodeState {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_failure = Some(now);
        if self.consecutive_failures >= self.policy.max_consecutive_failures
            && matches!(self.state, NodeState::Healthy | NodeState::Registered)
        {
            self.state = NodeState::Unhealthy;
            self.cause = Some(UnhealthyCause::Failures);
        }
        self.state
    }

    /// Applies silence: UNHEALTHY after `heartbeat_timeout`, OFFLINE after
    /// `offline_after` without a heartbeat.
    pub fn tick(&mut self, now: Instant) -> NodeState {
        let since = self.last_heartbeat.unwrap_or(self.connected_at);
        let silent = now.saturating_duration_since(since);
        if silent >= self.policy.offline_after {
            self.state = NodeState::Offline;
            self.cause = None;
        } else if silent >= self.policy.heartbeat_timeout && self.state == NodeState::Healthy {
            self.state = NodeState::Unhealthy;
            self.cause = Some(UnhealthyCause::Silence);
        }
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (NodeHealth, Instant) {
        let t0 = Instant::now();
        (NodeHealth::new(HealthPolicy::default(), t0), t0)
    }

    #[test]
    fn registered_until_first_heartbeat() {
        let (mut h, t0) = setup();
        assert_eq!(h.state(), NodeState::Registered);
        assert!(!h.state().receives_jobs());
        assert_eq!(h.heartbeat(t0 + Duration::from_secs(1)), NodeState::Healthy);
        assert!(h.state().receives_jobs());
    }

    #[test]
    fn three_failures_make_unhealthy_and_cooldown_gates_recovery() {
        let (mut h, t0) = setup();
        h.heartbeat(t0);
        let t = t0 + Duration::from_secs(5);
        assert_eq!(h.failure(t), NodeState::Healthy);
        assert_eq!(h.failure(t), NodeState::Healthy);
        assert_eq!(h.failure(t), NodeState::Unhealthy);
        // A heartbeat before the cool-down does not heal a failing node.
        assert_eq!(h.heartbeat(t + Duration::from_secs(10)), NodeState::Unhealthy);
        assert_eq!(h.heartbeat(t + Duration::from_secs(60)), NodeState::Healthy);
        assert_eq!(h.consecutive_failures(), 0);
    }

    #[test]
    fn success_resets_failure_count() {
        let (mut h, t0) = setup();
        h.heartbeat(t0);
        h.failure(t0);
        h.failure(t0);
        h.success();
        assert_eq!(h.failure(t0), NodeState::Healthy);
    }

    #[test]
    fn silence_makes_unhealthy_then_offline_and_heartbeat_heals() {
        let (mut h, t0) = setup();
        h.heartbeat(t0);
        assert_eq!(h.tick(t0 + Duration::from_secs(29)), NodeState::Healthy);
        assert_eq!(h.tick(t0 + Duration::from_secs(30)), NodeState::Unhealthy);
        assert_eq!(h.tick(t0 + Duration::from_secs(299)), NodeState::Unhealthy);
        assert_eq!(h.tick(t0 + Duration::from_secs(300)), NodeState::Offline);
        assert_eq!(h.heartbeat(t0 + Duration::from_secs(301)), NodeState::Healthy);
    }

    #[test]
    fn silent_unhealthy_heals_on_heartbeat() {
        let (mut h, t0) = setup();
        h.heartbeat(t0);
        h.tick(t0 + Duration::from_secs(40));
        assert_eq!(h.heartbeat(t0 + Duration::from_secs(41)), NodeState::Healthy);
    }

    #[test]
    fn reconnect_forgives_failures() {
        let (mut h, t0) = setup();
        h.heartbeat(t0);
        for _ in 0..3 {
            h.failure(t0);
        }
        h.reconnected(t0 + Duration::from_secs(1));
        assert_eq!(h.state(), NodeState::Registered);
        assert_eq!(h.heartbeat(t0 + Duration::from_secs(2)), NodeState::Healthy);
    }

    #[test]
    fn policy_roundtrips_as_seconds() {
        let json = serde_json::to_string(&HealthPolicy::default()).unwrap();
        assert!(json.contains("\"offline_after\":300"), "{json}");
        let back: HealthPolicy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, HealthPolicy::default());
    }
}
