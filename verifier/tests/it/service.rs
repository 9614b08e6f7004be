//! The verifier service on a real store: uploaded results are judged and
//! their frames move on.

#![allow(clippy::unwrap_used)]

use image::{DynamicImage, Rgb, RgbImage};
use lumen_protocol::{Address, FrameIndex, FrameState, JobId, JobState, TaskRole, TaskState};
use lumen_store::{Bus, Event, Store, now_ms};
use lumen_verifier::{VerifierConfig, VerifierService};

use crate::support::{default_scene, png, to_rgb8};

const JOB: JobId = JobId(1);

async fn store_with_job(frames: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let blend = store.put_blob(b"BLENDER-v304 stand-in").await.unwrap();
    store.insert_job(&lumen_testkit::new_job(JOB, blend, frames)).await.unwrap();
    store.transition_job(JOB, JobState::AwaitingChain, JobState::Rendering, None).await.unwrap();
    (dir, store)
}

/// Renders frame `index` "on" node `n`: claims it, uploads `bytes`, records the result.
async fn deliver(store: &Store, index: u32, n: u8, bytes: &[u8]) -> lumen_protocol::TaskId {
    deliver_as(store, index, n, bytes, TaskRole::Primary).await
}

/// [`deliver`] for a render with `role`; node `n` is its own owner.
async fn deliver_as(
    store: &Store,
    index: u32,
    n: u8,
    bytes: &[u8],
    role: TaskRole,
) -> lumen_protocol::TaskId {
    let node = Address::repeat_byte(n);
    let task = store
        .claim_render(JOB, FrameIndex(index), &lumen_testkit::renderer(node), role, now_ms() + 60_000)
        .await
        .unwrap()
        .unwrap();
    let hash = store.put_blob(bytes).await.unwrap();
    assert!(store.record_upload(task.task_id, hash).await.unwrap());
    assert!(store.record_result(task.task_id, hash, &Default::default(), 0.5).await.unwrap());
    task.task_id
}

#[tokio::test]
async fn good_frames_are_verified_and_corrupt_ones_requeued() {
    let (_dir, store) = store_with_job(3).await;
    let good = deliver(&store, 0, 1, &png(to_rgb8(&default_scene(64, 36)))).await;
    let black =
        deliver(&store, 1, 2, &png(DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 36, Rgb([0, 0, 0])))))
            .await;
    let wrong_size = deliver(&store, 2, 3, &png(to_rgb8(&default_scene(65, 36)))).await;

    let bus = Bus::new();
    let mut events = bus.subscribe();
    let verifier = VerifierService::new(store.clone(), bus, VerifierConfig::default());
    verifier.round().await.unwrap();

    let state = |id| {
        let store = store.clone();
        async move { store.task(id).await.unwrap().unwrap() }
    };
    assert_eq!(state(good).await.state, TaskState::Accepted);
    let black = state(black).await;
    assert_eq!((black.state, black.failure_code.as_deref()), (TaskState::Rejected, Some("all_black")));
    let wrong = state(wrong_size).await;
    assert_eq!((wrong.state, wrong.failure_code.as_deref()), (TaskState::Rejected, Some("wrong_size")));

    let frames = store.frames(JOB).await.unwrap();
    let states: Vec<FrameState> = frames.iter().map(|f| f.state).collect();
    assert_eq!(states, [FrameState::Verified, FrameState::Pending, FrameState::Pending]);
    assert_eq!(frames[0].node, Some(Address::repeat_byte(1)), "the accepted render's node is paid");

    let mut verdicts = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Verdict { accepted, .. } = event {
            verdicts.push(accepted);
        }
    }
    assert_eq!(verdicts.iter().filter(|a| **a).count(), 1);
    assert_eq!(verdicts.len(), 3);

    // Judged once: a second round changes nothing.
    let before = store.last_verdict_seq().await.unwrap();
    verifier.round().await.unwrap();
    assert_eq!(store.last_verdict_seq().await.unwrap(), before);
}

/// A random-noise frame of the right size: decodes, is neither black nor uniform.
fn noise(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = crate::support::Noise::new(seed);
    let image = RgbImage::from_fn(width, height, |_, _| {
        let v = rng.next_u64();
        Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    });
    png(DynamicImage::ImageRgb8(image))
}

fn honest() -> Vec<u8> {
    png(to_rgb8(&default_scene(64, 36)))
}

#[tokio::test]
async fn agreeing_independent_renders_verify_a_sampled_frame() {
    let (_dir, store) = store_with_job(1).await;
    assert!(store.set_renders_wanted(JOB, FrameIndex(0), 2).await.unwrap());
    let verifier = VerifierService::new(store.clone(), Bus::new(), VerifierConfig::default());
    let first = deliver(&store, 0, 1, &honest()).await;
    verifier.round().await.unwrap();
    // Sound, but alone: it waits for its verification render and is not payable.
    assert_eq!(store.task(first).await.unwrap().unwrap().state, TaskState::Checked);
    assert_eq!(store.frame(JOB, FrameIndex(0)).await.unwrap().unwrap().state, FrameState::Pending);
    // The same pixels, encoded by another node (different bytes, same image).
    let second = deliver_as(
        &store,
        0,
        2,
        &crate::support::png_recompressed(&to_rgb8(&default_scene(64, 36))),
        TaskRole::Verification,
    )
    .await;
    verifier.round().await.unwrap();
    for task in [first, second] {
        assert_eq!(store.task(task).await.unwrap().unwrap().state, TaskState::Accepted);
    }
    let frame = store.frame(JOB, FrameIndex(0)).await.unwrap().unwrap();
    assert_eq!(
        (frame.state, frame.node),
        (FrameState::Verified, Some(Address::repeat_byte(1))),
        "the first render is paid"
    );
    assert!(store.bans().await.unwrap().is_empty());
    let record = store.node_record(Address::repeat_byte(2)).await.unwrap();
    assert_eq!((record.accepted, record.agreed_samples), (1, 1));
}

#[tokio::test]
async fn a_cheater_outvoted_by_two_owners_is_banned_and_loses_its_unpaid_frames() {
    let (_dir, store) = store_with_job(2).await;
    let verifier = VerifierService::new(store.clone(), Bus::new(), VerifierConfig::default());
    let (honest_a, cheater, honest_b) =
        (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
    // The cheater's unsampled frame 1 passes the integrity checks on its own.
    let unsampled = deliver(&store, 1, 2, &noise(64, 36, 9)).await;
    verifier.round().await.unwrap();
    assert_eq!(store.task(unsampled).await.unwrap().unwrap().state, TaskState::Accepted);

    // Frame 0 is sampled: an honest first render, the cheater's noise as the verification.
    assert!(store.set_renders_wanted(JOB, FrameIndex(0), 2).await.unwrap());
    let first = deliver(&store, 0, 1, &honest()).await;
    let noisy = deliver_as(&store, 0, 2, &noise(64, 36, 1), TaskRole::Verification).await;
    verifier.round().await.unwrap();
    // They disagree: nobody is judged yet, a third owner arbitrates, and the
    // cheater's frame 1 is held back from payment meanwhile.
    let frame = store.frame(JOB, FrameIndex(0)).await.unwrap().unwrap();
    assert_eq!((frame.renders_wanted, frame.state), (3, FrameState::Pending));
    for task in [first, noisy] {
        assert_eq!(store.task(task).await.unwrap().unwrap().state, TaskState::Checked);
    }
    assert!(
        store.unpaid_verified_frames(JOB).await.unwrap().is_empty(),
        "the cheater's frame 1 waits for the vote"
    );

    let third = deliver_as(&store, 0, 3, &honest(), TaskRole::Arbitration).await;
    verifier.round().await.unwrap();
    let task = |id| {
        let store = store.clone();
        async move { store.task(id).await.unwrap().unwrap() }
    };
    assert_eq!(task(first).await.state, TaskState::Accepted);
    assert_eq!(task(third).await.state, TaskState::Accepted);
    let outvoted = task(noisy).await;
    assert_eq!((outvoted.state, outvoted.failure_code.as_deref()), (TaskState::Rejected, Some("outvoted")));
    // Its accepted, unpaid frame 1 is taken back and goes to another node.
    let revoked = task(unsampled).await;
    assert_eq!((revoked.state, revoked.failure_code.as_deref()), (TaskState::Rejected, Some("revoked")));
    let frames = store.frames(JOB).await.unwrap();
    assert_eq!((frames[0].state, frames[0].node), (FrameState::Verified, Some(honest_a)));
    assert_eq!(frames[1].state, FrameState::Pending);
    assert_eq!(
        store.unpaid_verified_frames(JOB).await.unwrap().len(),
        1,
        "frame 0 only, paid to the honest node"
    );

    // Banned, with evidence anyone can fetch and check.
    let bans = store.bans().await.unwrap();
    assert_eq!(bans.len(), 1);
    let ban = &bans[0];
    assert_eq!(
        (ban.node, ban.job_id, ban.frame_index, ban.slash_state),
        (cheater, JOB, FrameIndex(0), lumen_protocol::SlashState::Pending)
    );
    let evidence: serde_json::Value =
        serde_json::from_slice(&store.blobs().get(&ban.evidence_hash).await.unwrap().unwrap()).unwrap();
    assert_eq!(evidence["outvoted"], serde_json::json!([noisy]));
    assert_eq!(evidence["renders"].as_array().unwrap().len(), 3);
    let comparisons = evidence["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 3);
    assert_eq!(
        comparisons.iter().filter(|c| c["comparison"]["matches"] == true).count(),
        1,
        "{comparisons:#?}"
    );
    assert!(store.is_banned(cheater).await.unwrap() && !store.is_banned(honest_b).await.unwrap());
    let record = store.node_record(cheater).await.unwrap();
    assert_eq!(record.outvoted, 1);
}

#[tokio::test]
async fn accepted_frames_get_a_preview_and_results_of_a_refunded_job_are_not_verified() {
    let (_dir, store) = store_with_job(2).await;
    let frame = png(to_rgb8(&default_scene(64, 36)));
    let accepted = deliver(&store, 0, 1, &frame).await;
    let verifier = VerifierService::new(store.clone(), Bus::new(), VerifierConfig::default());
    verifier.round().await.unwrap();
    assert_eq!(store.task(accepted).await.unwrap().unwrap().state, TaskState::Accepted);
    // The preview: a quarter of the frame, in the blob store.
    let output = lumen_protocol::ContentHash::of(&frame);
    let preview = store.preview(output).await.unwrap().expect("a preview of the accepted frame");
    let preview = image::load_from_memory(&store.blobs().get(&preview).await.unwrap().unwrap()).unwrap();
    assert_eq!((preview.width(), preview.height()), (16, 9));

    // The artist refunds while frame 1's result waits for its verdict.
    let waiting = deliver(&store, 1, 2, &png(to_rgb8(&default_scene(64, 36)))).await;
    let refunded = lumen_protocol::MirroredEvent {
        block_number: 9,
        log_index: 0,
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: alloy_primitives::B256::repeat_byte(9),
        tx_hash: alloy_primitives::B256::repeat_byte(8),
        event: lumen_protocol::ChainEvent::JobRefunded {
            job_id: JOB,
            artist: Address::repeat_byte(0xa),
            amount: lumen_protocol::Wei::from(1u128),
        },
    };
    let cursor = lumen_store::Cursor {
        name: "escrow".into(),
        block_number: 9,
        block_hash: alloy_primitives::B256::repeat_byte(9),
    };
    store.apply_chain_batch(&[refunded], &cursor).await.unwrap();
    verifier.round().await.unwrap();
    let dropped = store.task(waiting).await.unwrap().unwrap();
    assert_eq!(
        (dropped.state, dropped.failure_code.as_deref()),
        (TaskState::Cancelled, Some("job_refunded"))
    );
    assert_eq!(dropped.verdict(), None, "never judged");
    let frames = store.frames(JOB).await.unwrap();
    assert_eq!(
        frames.iter().map(|f| f.state).collect::<Vec<_>>(),
        [FrameState::Verified, FrameState::Failed]
    );
}
