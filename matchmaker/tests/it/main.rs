//! Matchmaking rounds against a real store. The node connections are the
//! one boundary replaced: `Recorder` is a test double of the gateway's
//! `NodeLink` that records what would be sent.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use lumen_matchmaker::{Matchmaker, MatchmakerConfig, NodeLink, TrustPolicy};
use lumen_protocol::{
    Address, FrameIndex, FrameState, JobId, JobState, TaskRole, TaskState,
    api::NodeView,
    node::NodeState,
    ws::{Capabilities, ServerMessage},
};
use lumen_store::{Bus, Store, TaskEnd};

/// Mesa's software OpenGL, what most test nodes announce.
const LLVMPIPE: &str = "llvmpipe (LLVM 15.0.6, 256 bits); 4.5 (Core Profile) Mesa 22.3.6";

/// Test double of the gateway's node connections.
#[derive(Default)]
struct Recorder {
    nodes: Mutex<Vec<NodeView>>,
    sent: Mutex<HashMap<Address, Vec<ServerMessage>>>,
}

impl Recorder {
    fn add(&self, n: u8, slots: u32) -> Address {
        self.add_owned(n, n.wrapping_add(100), "3.4.1", slots)
    }

    fn add_owned(&self, n: u8, owner: u8, blender: &str, slots: u32) -> Address {
        self.add_drawing(n, owner, blender, LLVMPIPE, slots)
    }

    fn add_drawing(&self, n: u8, owner: u8, blender: &str, opengl: &str, slots: u32) -> Address {
        let address = Address::repeat_byte(n);
        self.nodes.lock().unwrap().push(NodeView {
            address,
            owner: Address::repeat_byte(owner),
            state: NodeState::Healthy,
            connected: true,
            capabilities: Capabilities {
                job_types: vec!["render".into()],
                blender_version: blender.into(),
                gpu: false,
                memory_mb: 2048,
                slots,
                opengl: Some(opengl.into()),
            },
            consecutive_failures: 0,
            last_heartbeat_secs: Some(0.0),
            running: 0,
            stake: lumen_protocol::Wei::from(1_000_000_000_000_000_000u128),
            trust: None,
        });
        address
    }

    fn dispatched(&self, node: Address) -> Vec<lumen_protocol::ws::Dispatch> {
        let sent = self.sent.lock().unwrap();
        sent.get(&node)
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                ServerMessage::JobDispatch(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }
}

impl NodeLink for Recorder {
    fn nodes(&self) -> Vec<NodeView> {
        self.nodes.lock().unwrap().clone()
    }

    fn send(&self, node: &Address, message: ServerMessage) -> bool {
        self.sent.lock().unwrap().entry(*node).or_default().push(message);
        true
    }
}

/// A verification budget above any test job's frame count: every sample
/// the policy draws is paid.
const FULL_BUDGET: u32 = 1_000;

/// A deadline no test reaches (unix seconds, in 2096).
const FAR: u64 = 4_000_000_000;

/// Sampling off and every node in good standing: the rules tested are others.
fn plain() -> MatchmakerConfig {
    let trust = TrustPolicy {
        warmup_samples: 0,
        sampling_floor: 0.0,
        good_standing_renders: 0,
        ..TrustPolicy::default()
    };
    MatchmakerConfig { trust, ..MatchmakerConfig::default() }
}

async fn setup_with(
    frames: u32,
    config: MatchmakerConfig,
) -> (tempfile::TempDir, Store, Arc<Recorder>, Matchmaker) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let blend = store.put_blob(b"BLENDER-v304 stand-in").await.unwrap();
    store.insert_job(&lumen_testkit::new_job(JobId(1), blend, frames)).await.unwrap();
    let link = Arc::new(Recorder::default());
    let matchmaker = Matchmaker::new(store.clone(), Bus::new(), link.clone(), config);
    (dir, store, link, matchmaker)
}

async fn setup(frames: u32) -> (tempfile::TempDir, Store, Arc<Recorder>, Matchmaker) {
    setup_with(frames, plain()).await
}

#[tokio::test]
async fn only_confirmed_jobs_are_dispatched_and_load_is_balanced() {
    let (_dir, store, link, matchmaker) = setup(4).await;
    let (a, b) = (link.add(1, 1), link.add(2, 1));

    matchmaker.round().await.unwrap();
    assert!(link.dispatched(a).is_empty() && link.dispatched(b).is_empty(), "not confirmed on-chain yet");

    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    matchmaker.round().await.unwrap();
    assert_eq!((link.dispatched(a).len(), link.dispatched(b).len()), (1, 1), "one slot each");
    let frames = store.frames(JobId(1)).await.unwrap();
    assert_eq!(frames.iter().filter(|f| f.state == FrameState::Rendering).count(), 2);

    // A round with every slot busy dispatches nothing more.
    matchmaker.round().await.unwrap();
    assert_eq!(link.dispatched(a).len() + link.dispatched(b).len(), 2);
    let d = &link.dispatched(a)[0];
    assert_eq!((d.job_id, d.width, d.height), (JobId(1), 64, 36));
}

#[tokio::test]
async fn a_frame_failing_on_three_nodes_fails_and_is_not_retried_on_them() {
    let (_dir, store, link, matchmaker) = setup(1).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    let nodes: Vec<Address> = (1..=4).map(|n| link.add(n, 1)).collect();
    let fail = TaskEnd {
        state: TaskState::Failed,
        code: "crashed".into(),
        message: "segfault".into(),
        deterministic: false,
    };
    let mut failed_on = Vec::new();
    for _ in 0..3 {
        matchmaker.round().await.unwrap();
        let task = store.tasks_in_state(TaskState::Running).await.unwrap().pop().unwrap();
        assert!(!failed_on.contains(&task.node), "a node that failed the frame does not get it again");
        failed_on.push(task.node);
        store.end_task(task.task_id, &fail).await.unwrap();
    }
    matchmaker.round().await.unwrap();
    let frame = store.frame(JobId(1), FrameIndex(0)).await.unwrap().unwrap();
    assert_eq!(frame.state, FrameState::Failed, "{frame:?}");
    assert!(frame.failure.unwrap().contains("failed on nodes of 3 owners"));
    assert!(store.tasks_in_state(TaskState::Running).await.unwrap().is_empty());
    assert_eq!(nodes.iter().map(|n| link.dispatched(*n).len()).sum::<usize>(), 3);
}

#[tokio::test]
async fn expired_leases_requeue_the_frame_and_cancel_the_task() {
    let (_dir, store, link, _) = setup(1).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    let a = link.add(1, 1);
    // No time to render: every lease expires at once.
    let config =
        MatchmakerConfig { task_timeout_secs: 0, lease_grace_secs: 0, ..MatchmakerConfig::default() };
    let matchmaker = Matchmaker::new(store.clone(), Bus::new(), link.clone(), config);
    matchmaker.round().await.unwrap();
    assert_eq!(link.dispatched(a).len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    matchmaker.round().await.unwrap();
    let tasks = store.frame_tasks(JobId(1), FrameIndex(0)).await.unwrap();
    assert_eq!(tasks[0].state, TaskState::Lost);
    assert_eq!(tasks[0].failure_code.as_deref(), Some("timeout"));
    let sent = link.sent.lock().unwrap();
    assert!(
        sent[&a]
            .iter()
            .any(|m| matches!(m, ServerMessage::CancelTask { task_id, .. } if *task_id == tasks[0].task_id))
    );
}

#[tokio::test]
async fn a_new_nodes_frames_are_rendered_again_by_an_independent_owner_with_the_same_blender() {
    let (_dir, store, link, matchmaker) = setup_with(1, MatchmakerConfig::default()).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    // a and b share an owner; d is independent.
    let a = link.add_owned(1, 50, "3.4.1", 4);
    let b = link.add_owned(2, 50, "3.4.1", 4);
    let d = link.add_owned(4, 52, "3.4.1", 4);
    matchmaker.round().await.unwrap();
    let tasks = store.frame_tasks(JobId(1), FrameIndex(0)).await.unwrap();
    assert_eq!(tasks.len(), 2, "a fresh node's frame is always sampled: {tasks:?}");
    assert_eq!(store.frame(JobId(1), FrameIndex(0)).await.unwrap().unwrap().renders_wanted, 2);
    let (first, second) = (&tasks[0], &tasks[1]);
    assert_eq!((first.role, second.role), (TaskRole::Primary, TaskRole::Verification));
    assert_ne!(first.owner, second.owner, "independent owners");
    assert_eq!(first.blender_version, second.blender_version, "the same Blender build");
    let pair: std::collections::HashSet<Address> = [first.node, second.node].into();
    assert!(pair.contains(&d), "d is the only independent node for a or b: {pair:?}");
    assert!(!(pair.contains(&a) && pair.contains(&b)), "one owner never verifies itself");
    // Both dispatches look the same to the nodes: no role on the wire.
    let sent: Vec<_> = [a, b, d].iter().flat_map(|n| link.dispatched(*n)).collect();
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].frame_index, sent[0].job_id), (sent[1].frame_index, sent[1].job_id));
}

#[tokio::test]
async fn with_no_independent_owner_online_a_sampled_frame_waits() {
    let (_dir, store, link, matchmaker) = setup_with(1, MatchmakerConfig::default()).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    link.add_owned(1, 50, "3.4.1", 4);
    link.add_owned(2, 50, "3.4.1", 4);
    matchmaker.round().await.unwrap();
    // Another owner with another Blender build does not count: its pixels may differ.
    let c = link.add_owned(3, 51, "4.2.0", 4);
    matchmaker.round().await.unwrap();
    assert!(link.dispatched(c).is_empty());
    let tasks = store.frame_tasks(JobId(1), FrameIndex(0)).await.unwrap();
    assert_eq!(tasks.len(), 1, "the verification render waits for another owner: {tasks:?}");
    let frame = store.frame(JobId(1), FrameIndex(0)).await.unwrap().unwrap();
    assert_eq!((frame.renders_wanted, frame.state), (2, FrameState::Pending));
    // Another owner comes online: the frame gets its verification render.
    let d = link.add_owned(4, 52, "3.4.1", 4);
    matchmaker.round().await.unwrap();
    assert_eq!(link.dispatched(d).len(), 1);
}

#[tokio::test]
async fn slots_are_earned_and_fake_failures_of_fresh_keys_cannot_fail_a_job() {
    let (_dir, store, link, matchmaker) = setup_with(
        4,
        MatchmakerConfig {
            trust: TrustPolicy { warmup_samples: 0, sampling_floor: 0.0, ..TrustPolicy::default() },
            ..MatchmakerConfig::default()
        },
    )
    .await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    // Two fresh keys of different owners announce 64 slots each: one frame each.
    let (a, b) = (link.add(1, 64), link.add(2, 64));
    matchmaker.round().await.unwrap();
    assert_eq!((link.dispatched(a).len(), link.dispatched(b).len()), (1, 1), "one frame at a time to start");
    // Both report the same deterministic failure: the job is not failed by them.
    let fake = TaskEnd {
        state: TaskState::Failed,
        code: "missing_feature".into(),
        message: "this build lacks OpenImageDenoise".into(),
        deterministic: true,
    };
    for task in store.tasks_in_state(TaskState::Running).await.unwrap() {
        store.end_task(task.task_id, &fake).await.unwrap();
    }
    matchmaker.round().await.unwrap();
    let job = store.job(JobId(1)).await.unwrap().unwrap();
    assert_eq!((job.state, job.failure), (JobState::Rendering, None), "two fresh keys cannot fail a job");
    assert!(store.frames(JobId(1)).await.unwrap().iter().all(|f| f.state != FrameState::Failed));
}

#[tokio::test]
async fn a_task_without_progress_moves_to_another_node_and_costs_its_node() {
    let config = MatchmakerConfig { stall_secs: 5, ..plain() };
    let (dir, store, link, matchmaker) = setup_with(2, config).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    let (quiet, busy) = (link.add(1, 1), link.add(2, 1));
    matchmaker.round().await.unwrap();
    let running = store.tasks_in_state(TaskState::Running).await.unwrap();
    assert_eq!(running.len(), 2);
    // Both were dispatched a minute ago; only `busy` reported progress since.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("lumen.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET created_at = created_at - 60000").execute(&db).await.unwrap();
    let busy_task = running.iter().find(|t| t.node == busy).unwrap();
    assert!(store.record_progress(busy_task.task_id, busy).await.unwrap());
    assert!(
        !store.record_progress(busy_task.task_id, quiet).await.unwrap(),
        "only the task's node reports on it"
    );

    matchmaker.round().await.unwrap();
    let quiet_task =
        store.task(running.iter().find(|t| t.node == quiet).unwrap().task_id).await.unwrap().unwrap();
    assert_eq!((quiet_task.state, quiet_task.failure_code.as_deref()), (TaskState::Lost, Some("stalled")));
    assert_eq!(store.task(busy_task.task_id).await.unwrap().unwrap().state, TaskState::Running);
    let cancelled = link.sent.lock().unwrap()[&quiet]
        .iter()
        .any(|m| matches!(m, ServerMessage::CancelTask { reason, .. } if reason == "stalled"));
    assert!(cancelled, "the node is told to stop");
    assert_eq!(
        store.node_record(quiet).await.unwrap().lost,
        1,
        "the silent node pays in reputation and slots"
    );
}

#[tokio::test]
async fn the_verification_budget_bounds_sampling_and_keeps_unsampled_frames_from_untrusted_nodes() {
    // Fresh nodes are sampled on every frame; the artist paid for one
    // verification render.
    let (_dir, store, link, matchmaker) = setup_with(4, MatchmakerConfig::default()).await;
    store.confirm_job(JobId(1), 1, FAR).await.unwrap();
    let nodes: Vec<Address> = (1..=3).map(|n| link.add(n, 1)).collect();
    matchmaker.round().await.unwrap();
    let sent: Vec<_> = nodes.iter().flat_map(|n| link.dispatched(*n)).collect();
    assert_eq!(
        sent.len(),
        2,
        "one frame and its verification render, nothing a fresh node renders unverified"
    );
    assert_eq!(sent[0].frame_index, sent[1].frame_index);
    assert_eq!(store.sampled_frames(JobId(1)).await.unwrap(), 1);
    matchmaker.round().await.unwrap();
    assert_eq!(nodes.iter().map(|n| link.dispatched(*n).len()).sum::<usize>(), 2, "the rest waits");
    // The sampled frame's first render fails: the budget already holds that
    // frame's verification, so it goes to another fresh node.
    let first = store.frame_tasks(JobId(1), sent[0].frame_index).await.unwrap();
    let primary = first.iter().find(|t| t.role == TaskRole::Primary).unwrap();
    let crash = TaskEnd {
        state: TaskState::Failed,
        code: "crashed".into(),
        message: "segfault".into(),
        deterministic: false,
    };
    store.end_task(primary.task_id, &crash).await.unwrap();
    matchmaker.round().await.unwrap();
    let again = store.frame_tasks(JobId(1), sent[0].frame_index).await.unwrap();
    assert_eq!(again.iter().filter(|t| t.state == TaskState::Running).count(), 2, "{again:?}");
    assert_eq!(store.sampled_frames(JobId(1)).await.unwrap(), 1, "still one sample, nothing else dispatched");

    // Nodes trusted enough to be sampled at a rate below 1 take frames the
    // budget cannot verify, and none is sampled.
    let config = MatchmakerConfig {
        trust: TrustPolicy { warmup_samples: 0, sampling_floor: 0.5, ..TrustPolicy::default() },
        ..MatchmakerConfig::default()
    };
    let (_dir, store, link, matchmaker) = setup_with(4, config).await;
    store.confirm_job(JobId(1), 0, FAR).await.unwrap();
    let nodes: Vec<Address> = (1..=4).map(|n| link.add(n, 1)).collect();
    matchmaker.round().await.unwrap();
    assert_eq!(nodes.iter().map(|n| link.dispatched(*n).len()).sum::<usize>(), 4);
    assert_eq!(store.sampled_frames(JobId(1)).await.unwrap(), 0, "no budget, no sample");
}

#[tokio::test]
async fn eevee_and_workbench_verification_renders_pair_equal_opengl_implementations() {
    for (engine, softpipe_may_verify) in
        [("BLENDER_EEVEE", false), ("BLENDER_WORKBENCH", false), ("CYCLES", true)]
    {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let blend = store.put_blob(b"BLENDER-v304 stand-in").await.unwrap();
        let mut job = lumen_testkit::new_job(JobId(1), blend, 1);
        job.engine = engine.into();
        store.insert_job(&job).await.unwrap();
        store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
        let link = Arc::new(Recorder::default());
        let matchmaker =
            Matchmaker::new(store.clone(), Bus::new(), link.clone(), MatchmakerConfig::default());
        let first = link.add_drawing(1, 50, "3.4.1", LLVMPIPE, 1);
        matchmaker.round().await.unwrap();
        assert_eq!(link.dispatched(first).len(), 1, "{engine}");
        // Another owner, same Blender, drawing with Mesa's reference rasteriser.
        let softpipe = link.add_drawing(2, 51, "3.4.1", "softpipe; 3.3 (Core Profile) Mesa 22.3.6", 1);
        matchmaker.round().await.unwrap();
        assert_eq!(!link.dispatched(softpipe).is_empty(), softpipe_may_verify, "{engine}");
        if !softpipe_may_verify {
            // One that draws like the first render's node verifies it.
            let llvmpipe = link.add_drawing(3, 52, "3.4.1", LLVMPIPE, 1);
            matchmaker.round().await.unwrap();
            assert_eq!(link.dispatched(llvmpipe).len(), 1, "{engine}");
            let tasks = store.frame_tasks(JobId(1), FrameIndex(0)).await.unwrap();
            assert!(tasks.iter().all(|t| t.opengl.as_deref() == Some(LLVMPIPE)), "{tasks:?}");
        }
    }
}

/// A mirrored `JobCancelled` event for job 1, as the indexer stores it.
fn cancelled_event(block: u64) -> lumen_protocol::MirroredEvent {
    lumen_protocol::MirroredEvent {
        block_number: block,
        log_index: 0,
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: lumen_protocol::B256::repeat_byte(0xb),
        tx_hash: lumen_protocol::B256::repeat_byte(0xc),
        event: lumen_protocol::ChainEvent::JobCancelled {
            job_id: JobId(1),
            artist: Address::repeat_byte(0xa),
            refundable_at: 0,
        },
    }
}

#[tokio::test]
async fn a_cancelled_job_stops_at_once_and_its_nodes_are_told() {
    let (_dir, store, link, matchmaker) = setup(4).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    let (a, b) = (link.add(1, 1), link.add(2, 1));
    matchmaker.round().await.unwrap();
    let running = store.tasks_in_state(TaskState::Running).await.unwrap();
    assert_eq!(running.len(), 2);

    let cursor =
        lumen_store::Cursor { name: "escrow".into(), block_number: 9, block_hash: Default::default() };
    store.apply_chain_batch(&[cancelled_event(9)], &cursor).await.unwrap();
    matchmaker.round().await.unwrap();
    let job = store.job(JobId(1)).await.unwrap().unwrap();
    assert_eq!((job.state, job.failure.as_deref()), (JobState::Settling, Some("cancelled by the artist")));
    for task in &running {
        assert_eq!(store.task(task.task_id).await.unwrap().unwrap().state, TaskState::Cancelled);
        let told = link.sent.lock().unwrap()[&task.node]
            .iter()
            .any(|m| matches!(m, ServerMessage::CancelTask { task_id, .. } if *task_id == task.task_id));
        assert!(told, "{} was told to stop", task.node);
    }
    assert!(store.frames(JobId(1)).await.unwrap().iter().all(|f| f.state == FrameState::Failed));
    // Nothing more goes out.
    matchmaker.round().await.unwrap();
    assert_eq!(link.dispatched(a).len() + link.dispatched(b).len(), 2);
}

#[tokio::test]
async fn near_its_deadline_a_job_gets_no_new_frame_and_then_stops() {
    let now = u64::try_from(lumen_store::now_ms() / 1_000).unwrap();
    let config = MatchmakerConfig::default();
    // 200 s left: more than the settle margin (120), less than a frame could
    // take (300 + 60) before it.
    let (_dir, store, link, matchmaker) = setup_with(2, config).await;
    store.confirm_job(JobId(1), FULL_BUDGET, now + 200).await.unwrap();
    let a = link.add(1, 1);
    matchmaker.round().await.unwrap();
    assert!(link.dispatched(a).is_empty(), "a frame that could not finish in time is not started");
    assert_eq!(store.job(JobId(1)).await.unwrap().unwrap().state, JobState::Rendering);

    // 100 s left: the job stops, to settle before the artist can refund.
    let (_dir, store, _link, matchmaker) = setup_with(2, config).await;
    store.confirm_job(JobId(1), FULL_BUDGET, now + 100).await.unwrap();
    matchmaker.round().await.unwrap();
    let job = store.job(JobId(1)).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.failure.as_deref()),
        (JobState::Settling, Some("stopped before the deadline, to settle in time"))
    );
}

#[tokio::test]
async fn with_two_owners_a_failed_verification_render_is_retried_by_the_only_other_owner() {
    // Fresh nodes: the frame is sampled, so it needs both owners.
    let (_dir, store, link, matchmaker) = setup_with(1, MatchmakerConfig::default()).await;
    store.confirm_job(JobId(1), FULL_BUDGET, FAR).await.unwrap();
    let (a, b) = (link.add(1, 1), link.add(2, 1));
    matchmaker.round().await.unwrap();
    assert_eq!(link.dispatched(a).len() + link.dispatched(b).len(), 2);
    // The verification render fails once (a crash), while the first render
    // still holds the frame: the only other owner gets a second chance
    // instead of the frame waiting forever.
    let tasks = store.frame_tasks(JobId(1), FrameIndex(0)).await.unwrap();
    let check = tasks.iter().find(|t| t.role == TaskRole::Verification).unwrap();
    let crash = TaskEnd {
        state: TaskState::Failed,
        code: "crashed".into(),
        message: "segfault".into(),
        deterministic: false,
    };
    store.end_task(check.task_id, &crash).await.unwrap();
    matchmaker.round().await.unwrap();
    assert_eq!(
        link.dispatched(check.node).len(),
        2,
        "{:?}",
        store.frame_tasks(JobId(1), FrameIndex(0)).await
    );
}
