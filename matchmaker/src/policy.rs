//! The pure decisions of the matchmaker: which node gets a frame, and what
//! becomes of a frame that failed somewhere. Kept free of I/O so they can be
//! property-tested.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use lumen_protocol::{Address, TaskState};
use lumen_store::TaskRow;
use serde::{Deserialize, Serialize};

/// When a failing frame stops being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailurePolicy {
    /// A frame fails after this many different nodes failed it (render
    /// error or rejected output). Flamenco uses 3.
    pub max_failed_nodes: u32,
    /// A deterministic failure (any node with the same Blender build would
    /// fail the same way) seen on this many different nodes with the same
    /// code fails the whole job at once, instead of cycling through nodes.
    pub deterministic_quorum: u32,
    /// A frame fails after this many attempts of any kind, lost ones included.
    pub max_attempts: u32,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self { max_failed_nodes: 3, deterministic_quorum: 2, max_attempts: 8 }
    }
}

/// What to do with a frame after its attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameOutcome {
    /// Give it to another node.
    Retry,
    /// Stop trying this frame.
    FailFrame {
        /// Shown to the artist.
        reason: String,
    },
    /// The scene itself cannot be rendered: fail every unfinished frame.
    FailJob {
        /// Shown to the artist.
        reason: String,
    },
}

/// Decides the fate of a frame from its attempts (oldest first).
pub fn frame_outcome(tasks: &[TaskRow], policy: &FailurePolicy) -> FrameOutcome {
    let mut deterministic: BTreeMap<&str, BTreeSet<Address>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.state == TaskState::Failed && t.deterministic) {
        deterministic.entry(t.failure_code.as_deref().unwrap_or("unknown")).or_default().insert(t.node);
    }
    for (code, nodes) in &deterministic {
        if nodes.len() >= policy.deterministic_quorum as usize {
            let message = tasks
                .iter()
                .rev()
                .find(|t| t.failure_code.as_deref() == Some(*code))
                .and_then(|t| t.failure_message.clone())
                .unwrap_or_default();
            return FrameOutcome::FailJob {
                reason: format!("{code}: {message} (same failure on {} nodes)", nodes.len()),
            };
        }
    }

    let failed_nodes: BTreeSet<Address> =
        tasks.iter().filter(|t| t.state.is_failure()).map(|t| t.node).collect();
    let last = tasks.iter().rev().find(|t| t.state != TaskState::Running);
    let last_reason = last
        .map(|t| {
            format!(
                "{}: {}",
                t.failure_code.as_deref().unwrap_or("unknown"),
                t.failure_message.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    if failed_nodes.len() >= policy.max_failed_nodes as usize {
        return FrameOutcome::FailFrame {
            reason: format!("failed on {} nodes; last: {last_reason}", failed_nodes.len()),
        };
    }
    if tasks.len() >= policy.max_attempts as usize {
        return FrameOutcome::FailFrame { reason: format!("{} attempts; last: {last_reason}", tasks.len()) };
    }
    FrameOutcome::Retry
}

/// One candidate node's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// Node key address.
    pub node: Address,
    /// Tasks running on it.
    pub running: u32,
    /// Tasks it can run at once (at least 1).
    pub slots: u32,
}

/// Nodes that should not get this frame again: those that failed or lost
/// it. When that would leave no candidate, nodes that failed it only once
/// get a second chance.
pub fn excluded_nodes(tasks: &[TaskRow], loads: &[Load], _policy: &FailurePolicy) -> HashSet<Address> {
    let mut failures: BTreeMap<Address, u32> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.state.is_failure() || t.state == TaskState::Lost) {
        *failures.entry(t.node).or_default() += 1;
    }
    let strict: HashSet<Address> = failures.keys().copied().collect();
    if loads.iter().any(|l| !strict.contains(&l.node)) {
        return strict;
    }
    failures.into_iter().filter(|(_, n)| *n >= 2).map(|(node, _)| node).collect()
}

/// The least-loaded node with a free slot that is not excluded: lowest
/// running/slots ratio, then fewest running tasks, then address (stable).
pub fn pick_node(loads: &[Load], excluded: &HashSet<Address>) -> Option<usize> {
    loads
        .iter()
        .enumerate()
        .filter(|(_, l)| l.running < l.slots.max(1) && !excluded.contains(&l.node))
        .min_by(|(_, a), (_, b)| {
            // a.running / a.slots vs b.running / b.slots without floats.
            (u64::from(a.running) * u64::from(b.slots.max(1)))
                .cmp(&(u64::from(b.running) * u64::from(a.slots.max(1))))
                .then(a.running.cmp(&b.running))
                .then(a.node.cmp(&b.node))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A node address named by a letter, so the tests read as before.
    fn addr(name: &str) -> Address {
        Address::repeat_byte(name.bytes().fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b)))
    }

    fn task(node: &str, state: TaskState, code: Option<&str>, deterministic: bool) -> TaskRow {
        TaskRow {
            task_id: lumen_protocol::TaskId(1),
            job_id: lumen_protocol::JobId(1),
            frame_index: lumen_protocol::FrameIndex(0),
            node: addr(node),
            role: lumen_protocol::TaskRole::Primary,
            state,
            upload_hash: None,
            output_hash: None,
            signature: None,
            failure_code: code.map(Into::into),
            failure_message: code.map(|c| format!("{c} happened")),
            deterministic,
            render_secs: None,
            lease_until: 0,
            created_at: 0,
            finished_at: None,
            verdict_seq: None,
        }
    }

    fn load(node: &str, running: u32, slots: u32) -> Load {
        Load { node: addr(node), running, slots }
    }

    #[test]
    fn deterministic_failure_on_two_nodes_fails_the_job() {
        let p = FailurePolicy::default();
        let one = [task("a", TaskState::Failed, Some("missing_feature"), true)];
        assert_eq!(frame_outcome(&one, &p), FrameOutcome::Retry);
        let same_node_twice = [
            task("a", TaskState::Failed, Some("missing_feature"), true),
            task("a", TaskState::Failed, Some("missing_feature"), true),
        ];
        assert_eq!(frame_outcome(&same_node_twice, &p), FrameOutcome::Retry);
        let two = [
            task("a", TaskState::Failed, Some("missing_feature"), true),
            task("b", TaskState::Failed, Some("missing_feature"), true),
        ];
        let FrameOutcome::FailJob { reason } = frame_outcome(&two, &p) else { panic!("expected FailJob") };
        assert!(reason.starts_with("missing_feature: missing_feature happened"), "{reason}");
    }

    #[test]
    fn three_failed_nodes_fail_the_frame_but_lost_tasks_do_not_count() {
        let p = FailurePolicy::default();
        let tasks = [
            task("a", TaskState::Rejected, Some("all_black"), false),
            task("b", TaskState::Lost, Some("timeout"), false),
            task("c", TaskState::Failed, Some("crashed"), false),
        ];
        assert_eq!(frame_outcome(&tasks, &p), FrameOutcome::Retry);
        let mut tasks = tasks.to_vec();
        tasks.push(task("d", TaskState::Failed, Some("crashed"), false));
        assert!(matches!(frame_outcome(&tasks, &p), FrameOutcome::FailFrame { .. }));
    }

    #[test]
    fn attempts_cap_fails_the_frame() {
        let p = FailurePolicy { max_attempts: 3, ..Default::default() };
        let tasks = vec![task("a", TaskState::Lost, Some("disconnected"), false); 3];
        assert!(matches!(frame_outcome(&tasks, &p), FrameOutcome::FailFrame { .. }));
    }

    #[test]
    fn least_loaded_wins_and_full_or_excluded_nodes_are_skipped() {
        let loads = [load("a", 1, 1), load("b", 1, 4), load("c", 0, 1)];
        assert_eq!(pick_node(&loads, &HashSet::new()), Some(2));
        let excluded: HashSet<Address> = [addr("c")].into();
        assert_eq!(pick_node(&loads, &excluded), Some(1));
        assert_eq!(pick_node(&[load("a", 2, 2)], &HashSet::new()), None);
    }

    #[test]
    fn failed_nodes_get_a_second_chance_only_when_nobody_else_is_left() {
        let loads = [load("a", 0, 1), load("b", 0, 1)];
        let tasks = [task("a", TaskState::Rejected, Some("all_black"), false)];
        assert_eq!(excluded_nodes(&tasks, &loads, &FailurePolicy::default()), [addr("a")].into());
        let tasks = [
            task("a", TaskState::Rejected, Some("all_black"), false),
            task("b", TaskState::Lost, Some("timeout"), false),
            task("b", TaskState::Lost, Some("timeout"), false),
        ];
        assert_eq!(excluded_nodes(&tasks, &loads, &FailurePolicy::default()), [addr("b")].into());
    }

    proptest! {
        #[test]
        fn pick_is_never_worse_than_any_eligible_node(
            raw in proptest::collection::vec((0u32..8, 1u32..8), 1..12),
            excluded_mask in proptest::collection::vec(any::<bool>(), 12),
        ) {
            let loads: Vec<Load> =
                raw.iter().enumerate().map(|(i, (r, s))| Load { node: Address::with_last_byte(u8::try_from(i).unwrap()), running: *r, slots: *s }).collect();
            let excluded: HashSet<Address> = loads
                .iter()
                .zip(&excluded_mask)
                .filter(|(_, x)| **x)
                .map(|(l, _)| l.node)
                .collect();
            let eligible: Vec<&Load> =
                loads.iter().filter(|l| l.running < l.slots && !excluded.contains(&l.node)).collect();
            match pick_node(&loads, &excluded) {
                None => prop_assert!(eligible.is_empty()),
                Some(i) => {
                    let chosen = &loads[i];
                    prop_assert!(chosen.running < chosen.slots && !excluded.contains(&chosen.node));
                    for other in eligible {
                        prop_assert!(
                            u64::from(chosen.running) * u64::from(other.slots)
                                <= u64::from(other.running) * u64::from(chosen.slots)
                        );
                    }
                }
            }
        }
    }
}
