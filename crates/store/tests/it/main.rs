//! Store behaviour on a real SQLite database.

#![allow(clippy::unwrap_used)]

use alloy_primitives::{Address, B256, Bytes};
use lumen_protocol::{
    ChainEvent, ContentHash, FrameIndex, FrameState, JobId, JobState, MirroredEvent, TaskRole, TaskState,
    Verdict, Wei, event::FrameWord, explorer::JobToken,
};
use lumen_store::{Cursor, NewJob, Renderer, Store, StoreError, TaskEnd, TaskRow, now_ms};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    (dir, store)
}

fn node(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn renderer(n: u8) -> Renderer {
    Renderer {
        node: node(n),
        owner: node(n.wrapping_add(100)),
        blender_version: "3.4.1".into(),
        opengl: None,
    }
}

fn hash(n: u8) -> ContentHash {
    ContentHash(B256::repeat_byte(n))
}

const F0: FrameIndex = FrameIndex(0);
const F1: FrameIndex = FrameIndex(1);

fn new_job(job_id: u64, frames: u32, blend_hash: ContentHash) -> NewJob {
    NewJob {
        job_id: JobId(job_id),
        artist: node(0xa),
        spec_json: "{}".into(),
        spec_hash: B256::repeat_byte(1),
        signature: Bytes::from_static(&[1, 2, 3]),
        blend_hash,
        width: 64,
        height: 36,
        engine: "CYCLES".into(),
        token: Address::ZERO,
        price_per_frame: Wei::from(1_000u128),
        frame_numbers: (1..=i32::try_from(frames).unwrap()).collect(),
    }
}

async fn job(store: &Store, job_id: u64, frames: u32) -> JobId {
    let blend = store.put_blob(b"BLENDER-v300 fake scene").await.unwrap();
    store.insert_job(&new_job(job_id, frames, blend)).await.unwrap();
    let id = JobId(job_id);
    assert!(store.transition_job(id, JobState::AwaitingChain, JobState::Rendering, None).await.unwrap());
    id
}

async fn claim(store: &Store, job: JobId, frame: FrameIndex, n: u8) -> Option<TaskRow> {
    store.claim_render(job, frame, &renderer(n), TaskRole::Primary, now_ms() + 60_000).await.unwrap()
}

async fn deliver(store: &Store, task: &TaskRow, output: ContentHash) {
    assert!(store.record_upload(task.task_id, output).await.unwrap());
    assert!(store.record_result(task.task_id, output, &Bytes::from_static(&[9]), 1.0).await.unwrap());
}

#[tokio::test]
async fn jobs_round_trip_typed_and_refuse_illegal_transitions() {
    let (_dir, store) = store().await;
    let id = job(&store, 4, 3).await;
    let row = store.job(id).await.unwrap().unwrap();
    assert_eq!((row.artist, row.frame_count, row.price_per_frame), (node(0xa), 3, Wei::from(1_000u128)));
    assert_eq!(row.expected_lock(0), Some(Wei::from(3_000u128)));
    assert_eq!(row.expected_lock(3), Some(Wei::from(6_000u128)), "frames and verification renders");
    assert_eq!(row.verifications, 0, "no budget until the chain is read");
    store.insert_job(&new_job(5, 3, row.blend_hash)).await.unwrap();
    assert!(store.confirm_job(JobId(5), 3, 4_000_000_000).await.unwrap());
    assert!(!store.confirm_job(JobId(5), 3, 4_000_000_000).await.unwrap(), "confirmed once");
    let confirmed = store.job(JobId(5)).await.unwrap().unwrap();
    assert_eq!((confirmed.state, confirmed.verifications), (JobState::Rendering, 3));
    assert_eq!(row.signature, Bytes::from_static(&[1, 2, 3]));
    assert!(matches!(
        store.insert_job(&new_job(4, 1, row.blend_hash)).await,
        Err(StoreError::JobExists(JobId(4)))
    ));
    assert!(matches!(
        store.transition_job(id, JobState::Completed, JobState::Rendering, None).await,
        Err(StoreError::Transition { .. })
    ));
    assert!(!store.transition_job(id, JobState::AwaitingChain, JobState::Rendering, None).await.unwrap());
    assert_eq!(store.jobs_in_state(JobState::Rendering).await.unwrap().len(), 2, "jobs 4 and 5");
}

#[tokio::test]
async fn a_frame_is_claimed_once_even_under_concurrency() {
    let (_dir, store) = store().await;
    let id = job(&store, 1, 1).await;
    let mut handles = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move { claim(&store, id, F0, i + 1).await }));
    }
    let mut won = 0;
    for h in handles {
        won += usize::from(h.await.unwrap().is_some());
    }
    assert_eq!(won, 1, "exactly one claim wins");
    assert_eq!(store.frame(id, F0).await.unwrap().unwrap().state, FrameState::Rendering);
    assert!(store.pending_frames(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn lost_tasks_requeue_and_verdicts_move_frames() {
    let (_dir, store) = store().await;
    let id = job(&store, 7, 2).await;

    let task = claim(&store, id, F0, 0xaa).await.unwrap();
    let lost = TaskEnd {
        state: TaskState::Lost,
        code: "disconnected".into(),
        message: "gone".into(),
        deterministic: false,
    };
    assert!(store.end_task(task.task_id, &lost).await.unwrap());
    assert!(!store.end_task(task.task_id, &lost).await.unwrap(), "a task ends once");
    assert_eq!(store.frame(id, F0).await.unwrap().unwrap().state, FrameState::Pending);
    // A result for a task that already ended is not taken.
    assert!(!store.record_result(task.task_id, hash(1), &Bytes::new(), 1.0).await.unwrap());

    let task = claim(&store, id, F0, 0xbb).await.unwrap();
    deliver(&store, &task, hash(2)).await;
    let frame = store.frame(id, F0).await.unwrap().unwrap();
    assert_eq!(
        (frame.state, frame.node, frame.output_hash),
        (FrameState::Verifying, Some(node(0xbb)), Some(hash(2)))
    );
    let rejected = Verdict::Rejected { code: "all_black".into(), message: "black".into() };
    assert!(store.record_verdict(task.task_id, &rejected).await.unwrap());
    let frame = store.frame(id, F0).await.unwrap().unwrap();
    assert_eq!((frame.state, frame.node), (FrameState::Pending, None));
    let judged = store.task(task.task_id).await.unwrap().unwrap();
    assert_eq!(judged.verdict(), Some(rejected));

    let task = claim(&store, id, F0, 0xcc).await.unwrap();
    deliver(&store, &task, hash(3)).await;
    assert!(store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap());
    assert!(!store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap(), "judged once");
    let frame = store.frame(id, F0).await.unwrap().unwrap();
    assert_eq!((frame.state, frame.node, frame.attempts), (FrameState::Verified, Some(node(0xcc)), 3));
    assert_eq!(store.frame_tasks(id, F0).await.unwrap().len(), 3);
    assert!(claim(&store, id, F0, 0xdd).await.is_none(), "a verified frame is not rendered again");

    let counts = store.frame_counts(id).await.unwrap();
    assert_eq!((counts.verified, counts.pending), (1, 1));
    assert!(!counts.all_final());
    store.fail_unfinished_frames(id, "scene cannot render").await.unwrap();
    let counts = store.frame_counts(id).await.unwrap();
    assert_eq!((counts.verified, counts.failed), (1, 1));
    assert!(counts.all_final());
}

#[tokio::test]
async fn a_frame_can_want_several_independent_renders() {
    let (_dir, store) = store().await;
    let id = job(&store, 5, 1).await;
    sqlx_set_wanted(&store, id, 2).await;

    let first = claim(&store, id, F0, 1).await.unwrap();
    assert_eq!(
        store.frame(id, F0).await.unwrap().unwrap().state,
        FrameState::Pending,
        "one render still open"
    );
    assert!(claim(&store, id, F0, 1).await.is_none(), "the same node never holds two renders of a frame");
    let second = store
        .claim_render(id, F0, &renderer(2), TaskRole::Verification, now_ms() + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.role, TaskRole::Verification);
    assert_eq!(store.frame(id, F0).await.unwrap().unwrap().state, FrameState::Rendering);
    assert!(claim(&store, id, F0, 3).await.is_none(), "both renders are taken");

    deliver(&store, &first, hash(1)).await;
    assert_eq!(
        store.frame(id, F0).await.unwrap().unwrap().state,
        FrameState::Rendering,
        "the second still runs"
    );
    deliver(&store, &second, hash(2)).await;
    assert_eq!(store.frame(id, F0).await.unwrap().unwrap().state, FrameState::Verifying);
    store.record_verdict(first.task_id, &Verdict::Accepted).await.unwrap();
    assert_eq!(store.frame(id, F0).await.unwrap().unwrap().state, FrameState::Verifying);
    store.record_verdict(second.task_id, &Verdict::Accepted).await.unwrap();
    assert_eq!(store.frame(id, F0).await.unwrap().unwrap().state, FrameState::Verified);

    // Failing a frame for good cancels what still runs on it.
    let id = job(&store, 6, 1).await;
    let running = claim(&store, id, F0, 1).await.unwrap();
    let cancelled = store.fail_frame(id, F0, "too many failures").await.unwrap().unwrap();
    assert_eq!(cancelled.iter().map(|t| t.task_id).collect::<Vec<_>>(), vec![running.task_id]);
    assert!(store.fail_frame(id, F0, "again").await.unwrap().is_none(), "failed once");
    assert!(!store.record_result(running.task_id, hash(1), &Bytes::new(), 1.0).await.unwrap());
}

#[tokio::test]
async fn a_task_stops_running_once_and_keeps_that_time() {
    let (_dir, store) = store().await;
    let id = job(&store, 7, 1).await;
    let task = claim(&store, id, F0, 1).await.unwrap();
    assert_eq!(task.finished_at, None, "running");
    deliver(&store, &task, hash(1)).await;
    let uploaded = store.task(task.task_id).await.unwrap().unwrap();
    assert_eq!(uploaded.state, TaskState::Uploaded);
    let stopped = uploaded.finished_at.expect("it stopped running when its result came");
    assert!(stopped >= task.created_at);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cancelled = store.fail_frame(id, F0, "gave up").await.unwrap().unwrap();
    assert_eq!(cancelled.iter().map(|t| t.task_id).collect::<Vec<_>>(), vec![task.task_id]);
    let task = store.task(task.task_id).await.unwrap().unwrap();
    assert_eq!(task.state, TaskState::Cancelled);
    assert_eq!(task.finished_at, Some(stopped), "cancelling a result does not move when it stopped running");
}

/// Marks every frame of a job as wanting `n` renders (what sampling will do).
async fn sqlx_set_wanted(store: &Store, job: JobId, n: u32) {
    store.set_renders_wanted(job, F0, n).await.unwrap();
}

fn released(job: JobId, frames: &[u32], block: u64) -> MirroredEvent {
    MirroredEvent {
        block_number: block,
        log_index: 0,
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: B256::repeat_byte(0xb),
        tx_hash: B256::repeat_byte(0x7),
        event: ChainEvent::FramesReleased {
            job_id: job,
            node: node(1),
            owner: node(2),
            frames: FrameWord::pack(frames.iter().copied().map(FrameIndex))[0],
            amount: Wei::from(2_000u128),
            fee: Wei::from(51u128),
        },
    }
}

#[tokio::test]
async fn mirror_batches_are_typed_idempotent_and_rewindable() {
    let (_dir, store) = store().await;
    let id = job(&store, 3, 2).await;
    let task = claim(&store, id, F1, 1).await.unwrap();
    deliver(&store, &task, hash(1)).await;
    store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap();
    assert_eq!(store.unpaid_verified_frames(id).await.unwrap().len(), 1);

    let event = released(id, &[0, 1], 10);
    let opened = MirroredEvent {
        block_number: 9,
        log_index: 3,
        entry: 0,
        block_time: 1_700_000_000,
        event: ChainEvent::JobOpened {
            job_id: id,
            artist: node(0xa),
            spec_hash: B256::repeat_byte(1),
            token: Address::ZERO,
            price_per_frame: Wei::from(1_000u128),
            frame_count: 2,
            verifications: 1,
            deadline: 1_700_000_000,
            opened_at: 1_699_990_000,
            amount: Wei::from(3_000u128),
            fee_bps: 250,
        },
        ..event.clone()
    };
    // The verification render is paid by the same FramesReleased log, as its next entry.
    let verified = MirroredEvent {
        entry: 1,
        event: ChainEvent::VerificationsReleased {
            job_id: id,
            node: node(3),
            owner: node(4),
            frames: FrameWord::pack([F1])[0],
            amount: Wei::from(1_000u128),
            fee: Wei::from(25u128),
        },
        ..event.clone()
    };
    let cursor = Cursor { name: "m".into(), block_number: 10, block_hash: B256::repeat_byte(0xb) };
    let batch = [opened.clone(), event.clone(), verified];
    store.apply_chain_batch(&batch, &cursor).await.unwrap();
    store.apply_chain_batch(&batch, &cursor).await.unwrap();
    assert_eq!(store.chain_events(Some(id)).await.unwrap(), batch.to_vec(), "events come back exactly");
    let payouts = store.payouts(id).await.unwrap();
    assert_eq!(payouts.len(), 2);
    assert_eq!(payouts.iter().map(|p| p.fee).sum::<Wei>(), Wei::from(51u128), "fee split exactly");
    let checks = store.verification_payouts(id).await.unwrap();
    assert_eq!(
        checks.iter().map(|p| (p.frame_index, p.node, p.owner, p.amount)).collect::<Vec<_>>(),
        [(F1, node(3), node(4), Wei::from(1_000u128))],
        "a verification render's payout is kept apart from the frame's"
    );
    assert!(store.unpaid_verified_frames(id).await.unwrap().is_empty());
    assert_eq!(store.cursor("m").await.unwrap().unwrap(), cursor);

    store.rewind_mirror(9).await.unwrap();
    assert_eq!(store.chain_events(None).await.unwrap(), vec![opened]);
    assert!(store.verification_payouts(id).await.unwrap().is_empty());
    assert_eq!(
        store.unpaid_verified_frames(id).await.unwrap().len(),
        1,
        "payouts above the reorg point are forgotten"
    );
}

#[tokio::test]
async fn an_owners_nodes_are_those_whose_last_binding_names_it() {
    let (_dir, store) = store().await;
    let (a, b) = (node(0xa), node(0xb));
    let registered = |n: u8, owner: Address, block: u64, log_index: u64| MirroredEvent {
        block_number: block,
        log_index,
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: B256::repeat_byte(u8::try_from(block).unwrap()),
        tx_hash: B256::repeat_byte(n),
        event: ChainEvent::NodeRegistered { node: node(n), owner, stake: Wei::ZERO },
    };
    // Node 1 stays with a; node 2 moves from a to b; node 3 moves from a
    // to b and back, in one block; node 4 is b's only.
    let batch = [
        registered(1, a, 1, 0),
        registered(2, a, 1, 1),
        registered(3, a, 1, 2),
        registered(4, b, 1, 3),
        registered(2, b, 2, 0),
        registered(3, b, 3, 0),
        registered(3, a, 3, 1),
    ];
    let cursor = Cursor { name: "m".into(), block_number: 3, block_hash: B256::repeat_byte(3) };
    store.apply_chain_batch(&batch, &cursor).await.unwrap();
    assert_eq!(store.nodes_of_owner(a, 10).await.unwrap(), [node(1), node(3)]);
    assert_eq!(store.nodes_of_owner(b, 10).await.unwrap(), [node(2), node(4)]);
    assert_eq!(store.nodes_of_owner(a, 1).await.unwrap(), [node(1)], "at most the limit, by address");
    assert!(store.nodes_of_owner(node(0xc), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_tokens_of_the_jobs_a_transaction_or_an_address_names_come_from_their_job_opened() {
    let (_dir, store) = store().await;
    let token = node(0x70);
    let opened = |job: u64, token: Address, block: u64| MirroredEvent {
        block_number: block,
        event: ChainEvent::JobOpened {
            job_id: JobId(job),
            artist: node(0xa),
            spec_hash: B256::repeat_byte(1),
            token,
            price_per_frame: Wei::from(1_000u128),
            frame_count: 2,
            verifications: 0,
            deadline: 1_700_000_000,
            opened_at: 1_699_990_000,
            amount: Wei::from(2_000u128),
            fee_bps: 250,
        },
        tx_hash: B256::repeat_byte(u8::try_from(block).unwrap()),
        ..released(JobId(job), &[0], block)
    };
    // Jobs 1 (native) and 2 (token) are paid to node 1's owner (node 2) in one transaction.
    let paid = |job: u64, log_index: u64| MirroredEvent { log_index, ..released(JobId(job), &[0, 1], 5) };
    let batch =
        [opened(1, Address::ZERO, 1), opened(2, token, 2), opened(3, token, 3), paid(1, 0), paid(2, 1)];
    let cursor = Cursor { name: "m".into(), block_number: 5, block_hash: B256::repeat_byte(5) };
    store.apply_chain_batch(&batch, &cursor).await.unwrap();
    let both = [JobToken { job_id: JobId(1), token: Address::ZERO }, JobToken { job_id: JobId(2), token }];
    assert_eq!(store.job_tokens_of_tx(paid(1, 0).tx_hash).await.unwrap(), both);
    assert_eq!(store.job_tokens_of_address(node(2), 10).await.unwrap(), both, "as owner");
    assert_eq!(store.job_tokens_of_address(node(0xa), 10).await.unwrap().len(), 3, "as artist");
    assert_eq!(
        store.job_tokens_of_address(node(2), 1).await.unwrap(),
        [JobToken { job_id: JobId(2), token }],
        "only the jobs of the newest events"
    );
    assert!(store.job_tokens_of_tx(B256::repeat_byte(9)).await.unwrap().is_empty());
}

#[tokio::test]
async fn verdicts_are_numbered_in_the_order_they_are_given() {
    let (_dir, store) = store().await;
    let id = job(&store, 9, 2).await;
    let first = claim(&store, id, F0, 0xa).await.unwrap();
    let second = claim(&store, id, F1, 0xb).await.unwrap();
    for t in [&first, &second] {
        deliver(&store, t, hash(4)).await;
    }
    assert_eq!(store.last_verdict_seq().await.unwrap(), 0);
    // The later task is judged first: followers must still see both, in verdict order.
    store.record_verdict(second.task_id, &Verdict::Accepted).await.unwrap();
    let seen = store.judged_tasks_after(0).await.unwrap();
    assert_eq!(seen.iter().map(|t| t.task_id).collect::<Vec<_>>(), vec![second.task_id]);
    let cursor = seen[0].verdict_seq.unwrap();
    store
        .record_verdict(first.task_id, &Verdict::Rejected { code: "uniform".into(), message: "flat".into() })
        .await
        .unwrap();
    let next = store.judged_tasks_after(cursor).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].task_id, next[0].state), (first.task_id, TaskState::Rejected));
    assert_eq!(store.last_verdict_seq().await.unwrap(), cursor + 1);
}

#[tokio::test]
async fn pending_frames_take_turns_between_artists_and_their_jobs() {
    let (_dir, store) = store().await;
    let blend = store.put_blob(b"BLENDER-v300 fake scene").await.unwrap();
    // Artist A opens a huge job and then another; artist B one small job last.
    for (id, frames, artist) in [(1, 500, 0xa), (2, 500, 0xa), (3, 2, 0xb)] {
        store.insert_job(&NewJob { artist: node(artist), ..new_job(id, frames, blend) }).await.unwrap();
        assert!(
            store
                .transition_job(JobId(id), JobState::AwaitingChain, JobState::Rendering, None)
                .await
                .unwrap()
        );
    }
    let order: Vec<(u64, u32)> = store
        .pending_frames(6)
        .await
        .unwrap()
        .iter()
        .map(|f| (f.job_id.get(), f.frame_index.get()))
        .collect();
    assert_eq!(
        order,
        [(1, 0), (3, 0), (2, 0), (3, 1), (1, 1), (2, 1)],
        "B's frames are not behind A's thousand"
    );
    // Once B's job is out of pending frames, A's jobs alternate.
    for f in [F0, F1] {
        claim(&store, JobId(3), f, 7).await.unwrap();
    }
    let order: Vec<(u64, u32)> = store
        .pending_frames(4)
        .await
        .unwrap()
        .iter()
        .map(|f| (f.job_id.get(), f.frame_index.get()))
        .collect();
    assert_eq!(order, [(1, 0), (2, 0), (1, 1), (2, 1)]);
}
