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
    let node = Address::repeat_byte(n);
    let task = store
        .claim_render(JOB, FrameIndex(index), node, TaskRole::Primary, now_ms() + 60_000)
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
