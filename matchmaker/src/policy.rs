//! The pure decisions of the matchmaker: which node gets a frame, how much
//! work a node has earned, how often its frames are re-rendered by another
//! owner, and what becomes of a frame that failed somewhere. Kept free of
//! I/O (randomness is passed in) so they can be property-tested.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use lumen_protocol::{Address, TaskState, Wei};
use lumen_store::{NodeRecord, TaskRow};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How trust is earned and spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustPolicy {
    /// Agreeing samples a node needs before its frames are sampled less
    /// than always (default 10).
    pub warmup_samples: u32,
    /// Lowest share of a trusted node's frames that still gets a
    /// verification render (default 0.1).
    pub sampling_floor: f64,
    /// Accepted renders per extra concurrent frame a node earns; a node
    /// starts with one frame at a time whatever `slots` it announces
    /// (default 5).
    pub renders_per_slot: u32,
    /// Accepted renders that put a node in good standing, so that its
    /// failure reports can fail frames and jobs (default 3).
    pub good_standing_renders: u32,
    /// Failures (failed or rejected renders) of one node in one job after
    /// which it gets no more frames of that job (Flamenco's rule; default 3).
    pub max_failures_per_job: u32,
    /// Accepted renders a node without stake may do, all of them sampled;
    /// after that it needs stake for more work (default 20).
    pub trial_renders: u32,
    /// Stake that covers one frame in flight whose render is not verified
    /// by another owner (default 0.01 ETH): a node with more unverified
    /// frames in flight than its stake covers gets its next frames sampled.
    pub stake_per_unverified_frame: Wei,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            warmup_samples: 10,
            sampling_floor: 0.1,
            renders_per_slot: 5,
            good_standing_renders: 3,
            max_failures_per_job: 3,
            trial_renders: 20,
            stake_per_unverified_frame: Wei::from(10_000_000_000_000_000u128),
        }
    }
}

/// The trust that agreeing samples built, less what failures cost: every
/// render rejected by the integrity checks takes back `warmup_samples`.
fn earned_trust(record: &NodeRecord, policy: &TrustPolicy) -> i64 {
    i64::from(record.agreed_samples) - i64::from(policy.warmup_samples) * i64::from(record.rejected)
}

/// The chance that a frame first rendered by this node also gets an
/// independent verification render: 1 until the node has
/// `warmup_samples` agreeing samples (net of rejections), then
/// `warmup_samples / trust`, never below `sampling_floor`. A node ever
/// outvoted is always sampled (it is also banned).
///
/// `warmup_samples = 0` makes every node sampled at the floor from the
/// start; with a floor of 0 that turns sampling off (for tests of other
/// rules, never in production).
pub fn sampling_rate(record: &NodeRecord, policy: &TrustPolicy) -> f64 {
    let floor = policy.sampling_floor.clamp(0.0, 1.0);
    if record.outvoted > 0 {
        return 1.0;
    }
    if policy.warmup_samples == 0 {
        return floor;
    }
    let trust = earned_trust(record, policy);
    let warmup = i64::from(policy.warmup_samples);
    if trust < warmup {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)] // sample counts are far below 2^52
    let rate = warmup as f64 / trust as f64;
    rate.clamp(floor, 1.0)
}

/// Whether a node may be given a first render: a node without stake only
/// during its trial.
pub fn may_render(record: &NodeRecord, stake: Wei, policy: &TrustPolicy) -> bool {
    !stake.is_zero() || record.accepted < policy.trial_renders
}

/// Stake that must stand behind one unverified frame of a job paying
/// `price` per frame: the configured minimum, and at least what cheating on
/// it could win before a sample catches the node — `(1 − floor) / floor`
/// frames' price at the sampling floor (9 × price at the default 0.1), so
/// that cheating has a negative expected value (docs/trust.md).
pub fn stake_per_unverified_frame(price: Wei, policy: &TrustPolicy) -> alloy_primitives::U256 {
    let floor = policy.sampling_floor.clamp(0.0, 1.0);
    let at_risk = if floor > 0.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small positive ratio
        let frames = ((1.0 - floor) / floor).ceil() as u64;
        price.get().saturating_mul(alloy_primitives::U256::from(frames))
    } else {
        alloy_primitives::U256::ZERO
    };
    policy.stake_per_unverified_frame.get().max(at_risk).max(alloy_primitives::U256::from(1u8))
}

/// The chance that a node's next first render is sampled, given its stake
/// and how many of its unverified frames are in flight: its
/// [`sampling_rate`], but always 1 without stake or beyond what the stake
/// covers at [`stake_per_unverified_frame`] for a job paying `price`.
pub fn sampling_rate_staked(
    record: &NodeRecord,
    stake: Wei,
    unverified_in_flight: u32,
    price: Wei,
    policy: &TrustPolicy,
) -> f64 {
    let covered = stake.get() / stake_per_unverified_frame(price, policy);
    if stake.is_zero() || alloy_primitives::U256::from(unverified_in_flight) >= covered {
        return 1.0;
    }
    sampling_rate(record, policy)
}

/// Frames a node may render at once: one to start, one more per
/// `renders_per_slot` accepted renders net of three per failure, never more
/// than it announces.
pub fn earned_slots(record: &NodeRecord, announced: u32, policy: &TrustPolicy) -> u32 {
    let bad = 3 * (u64::from(record.rejected) + u64::from(record.failed) + u64::from(record.lost));
    let net = u64::from(record.accepted).saturating_sub(bad);
    let earned = 1 + net / u64::from(policy.renders_per_slot.max(1));
    u32::try_from(earned).unwrap_or(u32::MAX).min(announced.max(1))
}

/// Reputation in (0, 1]: accepted renders against failures, rejections
/// weighing triple; 0 for a node ever outvoted. Used to weight the choice
/// among equally loaded nodes.
pub fn reputation(record: &NodeRecord) -> f64 {
    if record.outvoted > 0 {
        return 0.0;
    }
    let good = f64::from(record.accepted) + 1.0;
    let bad = 3.0 * f64::from(record.rejected) + f64::from(record.failed) + f64::from(record.lost);
    good / (good + bad)
}

/// Whether a node's failure reports are believed enough to fail frames and
/// jobs: enough accepted renders, never outvoted.
pub fn in_good_standing(record: &NodeRecord, policy: &TrustPolicy) -> bool {
    record.outvoted == 0 && record.accepted >= policy.good_standing_renders
}

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

/// Decides the fate of a frame from its attempts (oldest first). Only
/// failures of nodes in good standing (`trusted`) count towards failing
/// the frame or the job, and each owner counts once: fresh keys cannot fail
/// anybody's work by reporting fake failures. A deterministic failure the
/// verifier's own probe confirmed fails the job at once; one it refuted
/// counts for nothing. `max_attempts` bounds the rest.
pub fn frame_outcome(
    tasks: &[TaskRow],
    policy: &FailurePolicy,
    trusted: impl Fn(&Address) -> bool,
) -> FrameOutcome {
    let owner = |t: &TaskRow| t.owner.unwrap_or(t.node);
    let mut deterministic: BTreeMap<&str, (BTreeSet<Address>, bool)> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.state == TaskState::Failed && t.deterministic) {
        let confirmed = t.confirmed == Some(true);
        if !confirmed && (t.confirmed == Some(false) || !trusted(&t.node)) {
            continue;
        }
        let entry = deterministic.entry(t.failure_code.as_deref().unwrap_or("unknown")).or_default();
        entry.0.insert(owner(t));
        entry.1 |= confirmed;
    }
    for (code, (owners, confirmed)) in &deterministic {
        if *confirmed || owners.len() >= policy.deterministic_quorum as usize {
            let message = tasks
                .iter()
                .rev()
                .find(|t| t.failure_code.as_deref() == Some(*code))
                .and_then(|t| t.failure_message.clone())
                .unwrap_or_default();
            let by = if *confirmed {
                "confirmed by the gateway's own probe render".to_owned()
            } else {
                format!("same failure on nodes of {} owners", owners.len())
            };
            return FrameOutcome::FailJob { reason: format!("{code}: {message} ({by})") };
        }
    }

    let failed_owners: BTreeSet<Address> =
        tasks.iter().filter(|t| t.state.is_failure() && trusted(&t.node)).map(owner).collect();
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
    if failed_owners.len() >= policy.max_failed_nodes as usize {
        return FrameOutcome::FailFrame {
            reason: format!("failed on nodes of {} owners; last: {last_reason}", failed_owners.len()),
        };
    }
    if tasks.len() >= policy.max_attempts as usize {
        return FrameOutcome::FailFrame { reason: format!("{} attempts; last: {last_reason}", tasks.len()) };
    }
    FrameOutcome::Retry
}

/// One candidate node's load.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Node key address.
    pub node: Address,
    /// Tasks running on it.
    pub running: u32,
    /// Tasks it may run at once (at least 1): what it earned, not what it
    /// announced ([`earned_slots`]).
    pub slots: u32,
    /// Its [`reputation`], the weight among equally loaded nodes.
    pub reputation: f64,
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

/// Nodes with `max_failures` or more failed or rejected renders in a job's
/// tasks: they get no more of its frames.
pub fn failing_in_job(job_tasks: &[TaskRow], max_failures: u32) -> HashSet<Address> {
    let mut failures: BTreeMap<Address, u32> = BTreeMap::new();
    for t in job_tasks.iter().filter(|t| t.state.is_failure()) {
        *failures.entry(t.node).or_default() += 1;
    }
    failures.into_iter().filter(|(_, n)| *n >= max_failures.max(1)).map(|(node, _)| node).collect()
}

/// A least-loaded node with a free slot that is not excluded: among those
/// with the lowest running/slots ratio, one drawn at random weighted by
/// reputation. Never decided by address, so grinding keys buys nothing.
pub fn pick_node(loads: &[Load], excluded: &HashSet<Address>, rng: &mut impl Rng) -> Option<usize> {
    let eligible: Vec<usize> = (0..loads.len())
        .filter(|&i| loads[i].running < loads[i].slots.max(1) && !excluded.contains(&loads[i].node))
        .collect();
    // a.running / a.slots vs b.running / b.slots without floats.
    let ratio = |i: usize| (u64::from(loads[i].running), u64::from(loads[i].slots.max(1)));
    let least = eligible.iter().copied().min_by(|&a, &b| {
        let ((ra, sa), (rb, sb)) = (ratio(a), ratio(b));
        (ra * sb).cmp(&(rb * sa))
    })?;
    let (rl, sl) = ratio(least);
    let tier: Vec<usize> = eligible
        .into_iter()
        .filter(|&i| {
            let (r, s) = ratio(i);
            r * sl == rl * s
        })
        .collect();
    // Nodes with no reputation left still get a sliver, so a tier of them is not stuck.
    let weights: Vec<f64> = tier.iter().map(|&i| loads[i].reputation.max(1e-3)).collect();
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (i, w) in tier.iter().zip(&weights) {
        if draw < *w {
            return Some(*i);
        }
        draw -= w;
    }
    tier.last().copied()
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
            owner: None,
            blender_version: None,
            opengl: None,
            role: lumen_protocol::TaskRole::Primary,
            state,
            upload_hash: None,
            output_hash: None,
            signature: None,
            failure_code: code.map(Into::into),
            failure_message: code.map(|c| format!("{c} happened")),
            deterministic,
            confirmed: None,
            render_secs: None,
            lease_until: 0,
            progress_at: None,
            created_at: 0,
            finished_at: None,
            verdict_seq: None,
        }
    }

    fn load(node: &str, running: u32, slots: u32) -> Load {
        Load { node: addr(node), running, slots, reputation: 1.0 }
    }

    fn trusted(_: &Address) -> bool {
        true
    }

    fn rng() -> rand::rngs::StdRng {
        rand::SeedableRng::seed_from_u64(7)
    }

    fn record(accepted: u32, agreed: u32, rejected: u32, outvoted: u32) -> NodeRecord {
        NodeRecord {
            node: Address::ZERO,
            accepted,
            agreed_samples: agreed,
            rejected,
            outvoted,
            failed: 0,
            lost: 0,
        }
    }

    #[test]
    fn deterministic_failure_on_two_nodes_fails_the_job() {
        let p = FailurePolicy::default();
        let one = [task("a", TaskState::Failed, Some("missing_feature"), true)];
        assert_eq!(frame_outcome(&one, &p, trusted), FrameOutcome::Retry);
        let same_node_twice = [
            task("a", TaskState::Failed, Some("missing_feature"), true),
            task("a", TaskState::Failed, Some("missing_feature"), true),
        ];
        assert_eq!(frame_outcome(&same_node_twice, &p, trusted), FrameOutcome::Retry);
        let two = [
            task("a", TaskState::Failed, Some("missing_feature"), true),
            task("b", TaskState::Failed, Some("missing_feature"), true),
        ];
        let FrameOutcome::FailJob { reason } = frame_outcome(&two, &p, trusted) else {
            panic!("expected FailJob")
        };
        assert!(reason.starts_with("missing_feature: missing_feature happened"), "{reason}");
        // Two keys of one owner are one voice; keys not in good standing have none.
        let mut one_owner = two.clone();
        for t in &mut one_owner {
            t.owner = Some(addr("owner"));
        }
        assert_eq!(frame_outcome(&one_owner, &p, trusted), FrameOutcome::Retry);
        assert_eq!(frame_outcome(&two, &p, |_: &Address| false), FrameOutcome::Retry);
    }

    #[test]
    fn a_probe_confirms_or_refutes_a_deterministic_failure() {
        let p = FailurePolicy::default();
        let mut claim = task("a", TaskState::Failed, Some("missing_feature"), true);
        assert_eq!(frame_outcome(std::slice::from_ref(&claim), &p, |_: &Address| false), FrameOutcome::Retry);
        claim.confirmed = Some(true);
        let FrameOutcome::FailJob { reason } =
            frame_outcome(std::slice::from_ref(&claim), &p, |_: &Address| false)
        else {
            panic!("a confirmed failure fails the job")
        };
        assert!(reason.contains("probe"), "{reason}");
        // Refuted claims count for nothing, even from nodes in good standing.
        let mut refuted = vec![
            task("a", TaskState::Failed, Some("missing_feature"), true),
            task("b", TaskState::Failed, Some("missing_feature"), true),
        ];
        for t in &mut refuted {
            t.confirmed = Some(false);
        }
        assert_eq!(frame_outcome(&refuted, &p, trusted), FrameOutcome::Retry);
    }

    #[test]
    fn fresh_keys_cannot_fail_a_frame_but_attempts_stay_bounded() {
        let p = FailurePolicy::default();
        let tasks: Vec<_> =
            ["a", "b", "c", "d"].iter().map(|n| task(n, TaskState::Failed, Some("crashed"), false)).collect();
        assert_eq!(frame_outcome(&tasks, &p, |_: &Address| false), FrameOutcome::Retry);
        assert!(matches!(frame_outcome(&tasks, &p, trusted), FrameOutcome::FailFrame { .. }));
        let many = vec![task("x", TaskState::Failed, Some("crashed"), false); 8];
        assert!(matches!(frame_outcome(&many, &p, |_: &Address| false), FrameOutcome::FailFrame { .. }));
    }

    #[test]
    fn new_nodes_are_always_sampled_and_trusted_ones_down_to_the_floor() {
        let p = TrustPolicy::default();
        assert_eq!(sampling_rate(&record(0, 0, 0, 0), &p), 1.0);
        assert_eq!(sampling_rate(&record(50, 9, 0, 0), &p), 1.0, "9 agreeing samples are not enough");
        assert_eq!(sampling_rate(&record(50, 10, 0, 0), &p), 1.0);
        assert!((sampling_rate(&record(50, 20, 0, 0), &p) - 0.5).abs() < 1e-12);
        assert!((sampling_rate(&record(500, 400, 0, 0), &p) - 0.1).abs() < 1e-12, "the floor");
        // A rejection costs `warmup_samples` of trust; being outvoted costs all of it.
        assert_eq!(sampling_rate(&record(50, 15, 1, 0), &p), 1.0);
        assert_eq!(sampling_rate(&record(500, 400, 0, 1), &p), 1.0);
    }

    #[test]
    fn stake_bounds_unverified_work_and_unstaked_nodes_only_get_a_trial() {
        let p = TrustPolicy::default();
        let trusted = record(500, 400, 0, 0);
        let eth = |n: u128| Wei::from(n * 1_000_000_000_000_000_000);
        let cheap = Wei::from(1_000u128);
        assert!((sampling_rate_staked(&trusted, eth(1), 0, cheap, &p) - 0.1).abs() < 1e-12);
        assert_eq!(
            sampling_rate_staked(&trusted, Wei::from(0u128), 0, cheap, &p),
            1.0,
            "no stake: always sampled"
        );
        // 1 ETH covers 100 unverified frames at the 0.01 ETH minimum each...
        assert!(sampling_rate_staked(&trusted, eth(1), 99, cheap, &p) < 1.0);
        assert_eq!(sampling_rate_staked(&trusted, eth(1), 100, cheap, &p), 1.0);
        // ...and 11 of a job paying 0.01 ETH a frame (9 × price at risk each).
        let dear = Wei::from(10_000_000_000_000_000u128);
        assert_eq!(stake_per_unverified_frame(dear, &p), dear.get() * alloy_primitives::U256::from(9u8));
        assert!(sampling_rate_staked(&trusted, eth(1), 10, dear, &p) < 1.0);
        assert_eq!(sampling_rate_staked(&trusted, eth(1), 12, dear, &p), 1.0);
        assert!(may_render(&record(19, 0, 0, 0), Wei::from(0u128), &p));
        assert!(!may_render(&record(20, 0, 0, 0), Wei::from(0u128), &p), "the trial is over");
        assert!(may_render(&record(20, 0, 0, 0), eth(1), &p));
    }

    #[test]
    fn slots_are_earned_not_announced() {
        let p = TrustPolicy::default();
        assert_eq!(earned_slots(&record(0, 0, 0, 0), 64, &p), 1, "a fresh node renders one frame at a time");
        assert_eq!(earned_slots(&record(5, 0, 0, 0), 64, &p), 2);
        assert_eq!(earned_slots(&record(50, 0, 0, 0), 4, &p), 4, "never more than announced");
        let mut lossy = record(10, 0, 0, 0);
        lossy.lost = 2;
        assert_eq!(earned_slots(&lossy, 64, &p), 1, "each loss costs three renders");
        assert!(reputation(&lossy) < reputation(&record(10, 0, 0, 0)));
        assert_eq!(reputation(&record(100, 50, 0, 1)), 0.0);
        assert!(in_good_standing(&record(3, 0, 0, 0), &p) && !in_good_standing(&record(2, 0, 0, 0), &p));
    }

    #[test]
    fn ties_are_broken_at_random_not_by_address() {
        let loads: Vec<Load> = (1..=4u8)
            .map(|n| Load { node: Address::repeat_byte(n), running: 0, slots: 1, reputation: 1.0 })
            .collect();
        let mut rng = rng();
        let mut seen = [0u32; 4];
        for _ in 0..400 {
            seen[pick_node(&loads, &HashSet::new(), &mut rng).unwrap()] += 1;
        }
        assert!(
            seen.iter().all(|n| *n > 60),
            "every tied node is picked about a quarter of the time: {seen:?}"
        );
        // Reputation weighs the draw.
        let mut weighted = loads.clone();
        weighted[0].reputation = 0.01;
        let mut low = 0;
        for _ in 0..400 {
            low += u32::from(pick_node(&weighted, &HashSet::new(), &mut rng) == Some(0));
        }
        assert!(low < 10, "a node with little reputation is rarely picked: {low}");
    }

    #[test]
    fn three_failures_in_a_job_exclude_a_node_from_it() {
        let mut tasks = vec![task("a", TaskState::Failed, Some("crashed"), false); 2];
        tasks.push(task("b", TaskState::Lost, Some("timeout"), false));
        assert!(failing_in_job(&tasks, 3).is_empty());
        tasks.push(task("a", TaskState::Rejected, Some("all_black"), false));
        assert_eq!(failing_in_job(&tasks, 3), [addr("a")].into());
    }

    #[test]
    fn three_failed_nodes_fail_the_frame_but_lost_tasks_do_not_count() {
        let p = FailurePolicy::default();
        let tasks = [
            task("a", TaskState::Rejected, Some("all_black"), false),
            task("b", TaskState::Lost, Some("timeout"), false),
            task("c", TaskState::Failed, Some("crashed"), false),
        ];
        assert_eq!(frame_outcome(&tasks, &p, trusted), FrameOutcome::Retry);
        let mut tasks = tasks.to_vec();
        tasks.push(task("d", TaskState::Failed, Some("crashed"), false));
        assert!(matches!(frame_outcome(&tasks, &p, trusted), FrameOutcome::FailFrame { .. }));
    }

    #[test]
    fn attempts_cap_fails_the_frame() {
        let p = FailurePolicy { max_attempts: 3, ..Default::default() };
        let tasks = vec![task("a", TaskState::Lost, Some("disconnected"), false); 3];
        assert!(matches!(frame_outcome(&tasks, &p, trusted), FrameOutcome::FailFrame { .. }));
    }

    #[test]
    fn least_loaded_wins_and_full_or_excluded_nodes_are_skipped() {
        let loads = [load("a", 1, 1), load("b", 1, 4), load("c", 0, 1)];
        assert_eq!(pick_node(&loads, &HashSet::new(), &mut rng()), Some(2));
        let excluded: HashSet<Address> = [addr("c")].into();
        assert_eq!(pick_node(&loads, &excluded, &mut rng()), Some(1));
        assert_eq!(pick_node(&[load("a", 2, 2)], &HashSet::new(), &mut rng()), None);
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
                raw.iter().enumerate().map(|(i, (r, s))| Load { node: Address::with_last_byte(u8::try_from(i).unwrap()), running: *r, slots: *s, reputation: 1.0 }).collect();
            let excluded: HashSet<Address> = loads
                .iter()
                .zip(&excluded_mask)
                .filter(|(_, x)| **x)
                .map(|(l, _)| l.node)
                .collect();
            let eligible: Vec<&Load> =
                loads.iter().filter(|l| l.running < l.slots && !excluded.contains(&l.node)).collect();
            match pick_node(&loads, &excluded, &mut rng()) {
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
