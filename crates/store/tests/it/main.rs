//! Store behaviour on a real SQLite database.

#![allow(clippy::unwrap_used)]

use lumen_store::{
    ChainEventRow, Cursor, FrameState, JobState, NewJob, PayoutRow, Store, TaskEnd, TaskState, Verdict,
    now_ms,
};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    (dir, store)
}

async fn job(store: &Store, job_id: i64, frames: u32) {
    let blend = store.put_blob(b"BLENDER-v300 fake scene").await.unwrap();
    store
        .insert_job(&NewJob {
            job_id,
            artist: "0xa".into(),
            spec_json: "{}".into(),
            spec_hash: "0x1".into(),
            signature: "0x".into(),
            blend_hash: format!("{blend}"),
            frame_count: frames,
            width: 64,
            height: 36,
            engine: "CYCLES".into(),
            token: "0x0".into(),
            price_per_frame: "1000".into(),
            frame_numbers: (1..=i32::try_from(frames).unwrap()).collect(),
        })
        .await
        .unwrap();
    assert!(store.transition_job(job_id, JobState::AwaitingChain, JobState::Rendering, None).await.unwrap());
}

#[tokio::test]
async fn a_frame_is_claimed_once_even_under_concurrency() {
    let (_dir, store) = store().await;
    job(&store, 1, 1).await;
    let claims = futures_like_join(&store, 16).await;
    assert_eq!(claims.iter().filter(|c| c.is_some()).count(), 1, "exactly one claim wins");
    assert_eq!(store.frame(1, 0).await.unwrap().unwrap().state, FrameState::Rendering);
    assert!(store.pending_frames(10).await.unwrap().is_empty());
}

async fn futures_like_join(store: &Store, n: usize) -> Vec<Option<lumen_store::TaskRow>> {
    let mut handles = Vec::new();
    for i in 0..n {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.claim_frame(1, 0, &format!("0xnode{i}"), now_ms() + 60_000).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn lost_tasks_requeue_and_verdicts_move_frames() {
    let (_dir, store) = store().await;
    job(&store, 7, 2).await;
    assert!(
        store.insert_job(&NewJob { job_id: 7, ..sample_new_job() }).await.is_err(),
        "duplicate id refused"
    );

    let task = store.claim_frame(7, 0, "0xaa", now_ms() + 60_000).await.unwrap().unwrap();
    let lost = TaskEnd {
        state: TaskState::Lost,
        code: "disconnected".into(),
        message: "gone".into(),
        deterministic: false,
    };
    assert!(store.end_task(task.task_id, &lost).await.unwrap());
    assert!(!store.end_task(task.task_id, &lost).await.unwrap(), "a task ends once");
    assert_eq!(store.frame(7, 0).await.unwrap().unwrap().state, FrameState::Pending);

    // A result for a task that already ended is not taken.
    assert!(!store.record_result(task.task_id, "0xhash", "0xsig", 1.0).await.unwrap());

    let task = store.claim_frame(7, 0, "0xbb", now_ms() + 60_000).await.unwrap().unwrap();
    assert!(store.record_upload(task.task_id, "0xhash").await.unwrap());
    assert!(store.record_result(task.task_id, "0xhash", "0xsig", 1.0).await.unwrap());
    assert_eq!(store.frame(7, 0).await.unwrap().unwrap().state, FrameState::Verifying);
    let rejected = Verdict::Rejected { code: "all_black".into(), message: "black".into() };
    assert!(store.record_verdict(task.task_id, &rejected).await.unwrap());
    let frame = store.frame(7, 0).await.unwrap().unwrap();
    assert_eq!((frame.state, frame.verdict.as_deref()), (FrameState::Pending, Some("rejected: all_black")));

    let task = store.claim_frame(7, 0, "0xcc", now_ms() + 60_000).await.unwrap().unwrap();
    store.record_upload(task.task_id, "0xgood").await.unwrap();
    store.record_result(task.task_id, "0xgood", "0xsig", 1.0).await.unwrap();
    assert!(store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap());
    assert!(!store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap(), "judged once");
    let frame = store.frame(7, 0).await.unwrap().unwrap();
    assert_eq!((frame.state, frame.node.as_deref()), (FrameState::Verified, Some("0xcc")));
    assert_eq!(store.frame_tasks(7, 0).await.unwrap().len(), 3);

    let counts = store.frame_counts(7).await.unwrap();
    assert_eq!((counts.verified, counts.pending), (1, 1));
    assert!(!counts.all_final());
    store.fail_unfinished_frames(7, "scene cannot render").await.unwrap();
    let counts = store.frame_counts(7).await.unwrap();
    assert_eq!((counts.verified, counts.failed), (1, 1));
    assert!(counts.all_final());
}

fn sample_new_job() -> NewJob {
    NewJob {
        job_id: 0,
        artist: "0xa".into(),
        spec_json: "{}".into(),
        spec_hash: "0x1".into(),
        signature: "0x".into(),
        blend_hash: "0x0".into(),
        frame_count: 1,
        width: 1,
        height: 1,
        engine: "CYCLES".into(),
        token: "0x0".into(),
        price_per_frame: "1".into(),
        frame_numbers: vec![1],
    }
}

#[tokio::test]
async fn mirror_batches_are_idempotent_and_rewindable() {
    let (_dir, store) = store().await;
    job(&store, 3, 2).await;
    let task = store.claim_frame(3, 1, "0xnode", now_ms() + 60_000).await.unwrap().unwrap();
    store.record_upload(task.task_id, "0xh").await.unwrap();
    store.record_result(task.task_id, "0xh", "0xs", 1.0).await.unwrap();
    store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap();
    assert_eq!(store.unpaid_verified_frames(3).await.unwrap().len(), 1);

    let event = ChainEventRow {
        block_number: 10,
        log_index: 0,
        block_hash: "0xb".into(),
        tx_hash: "0xt".into(),
        contract: "escrow".into(),
        name: "FramesReleased".into(),
        job_id: Some(3),
        node: Some("0xnode".into()),
        account: Some("0xowner".into()),
        data: "{}".into(),
    };
    let payout = PayoutRow {
        job_id: 3,
        frame_index: 1,
        node: "0xnode".into(),
        owner: "0xowner".into(),
        amount: "1000".into(),
        fee: "25".into(),
        tx_hash: "0xt".into(),
        block_number: 10,
    };
    let cursor = Cursor { name: "m".into(), block_number: 10, block_hash: "0xb".into() };
    store
        .apply_chain_batch(std::slice::from_ref(&event), std::slice::from_ref(&payout), &cursor)
        .await
        .unwrap();
    store.apply_chain_batch(&[event], &[payout], &cursor).await.unwrap();
    assert_eq!(store.chain_events(Some(3)).await.unwrap().len(), 1);
    assert_eq!(store.payouts(3).await.unwrap().len(), 1);
    assert!(store.unpaid_verified_frames(3).await.unwrap().is_empty());
    assert_eq!(store.cursor("m").await.unwrap().unwrap().block_number, 10);

    store.rewind_mirror(9).await.unwrap();
    assert!(store.chain_events(None).await.unwrap().is_empty());
    assert_eq!(
        store.unpaid_verified_frames(3).await.unwrap().len(),
        1,
        "payouts above the reorg point are forgotten"
    );
}

#[tokio::test]
async fn verdicts_are_numbered_in_the_order_they_are_given() {
    let (_dir, store) = store().await;
    job(&store, 9, 2).await;
    let first = store.claim_frame(9, 0, "0xa", now_ms() + 60_000).await.unwrap().unwrap();
    let second = store.claim_frame(9, 1, "0xb", now_ms() + 60_000).await.unwrap().unwrap();
    for t in [&first, &second] {
        store.record_upload(t.task_id, "0xh").await.unwrap();
        store.record_result(t.task_id, "0xh", "0xs", 1.0).await.unwrap();
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
