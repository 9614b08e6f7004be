//! Confirming registered jobs against their `JobOpened` event: a job the
//! chain does not back as registered is rejected and never paid.

use alloy::primitives::B256;
use lumen_protocol::{ChainEventKind, JobId, JobState, Wei};
use lumen_store::NewJob;

use crate::support::{PRICE, World, fee, net, payout_of, price, round, summary};

/// Changes a registration away from what the artist opened.
type Change = fn(&World, &mut NewJob);

#[tokio::test]
async fn a_job_the_chain_does_not_back_is_rejected_and_nothing_is_released() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.eager();

    // Five jobs of four frames are opened; each but the last is registered with one thing changed.
    let changes: [(Change, &str); 5] = [
        (|_, job| job.frame_numbers.truncate(3), "frame count, verification budget, locked amount"),
        (|_, job| job.price_per_frame = Wei::from(2 * PRICE), "price per frame, locked amount"),
        (|_, job| job.spec_hash = B256::repeat_byte(0x77), "spec hash"),
        (|w, job| job.artist = w.a.owner.address(), "artist"),
        (|_, _| {}, ""),
    ];
    let mut cases = Vec::new();
    for (change, expected) in changes {
        let opened = w.open(4).await?;
        let mut job = w.registration(opened.job_id, 4);
        change(&w, &mut job);
        w.register(&job).await?;
        cases.push((opened, u32::try_from(job.frame_numbers.len())?, expected));
    }
    // A job registered before the artist opened it waits.
    let unopened = JobId(cases[4].0.job_id.get() + 1);
    w.register(&w.registration(unopened, 4)).await?;

    // Every frame of every job is verified before the indexer sees anything.
    for (opened, frames, _) in &cases {
        for frame in 0..*frames {
            w.verify(opened.job_id, frame, &w.a).await?;
        }
    }
    round(&indexer).await;
    assert_eq!(w.state(unopened).await, JobState::AwaitingChain);

    for (opened, _, expected) in &cases {
        let id = opened.job_id;
        if expected.is_empty() {
            continue;
        }
        assert_eq!(w.state(id).await, JobState::Rejected, "job {id}");
        let reason = format!("on-chain job does not match the registered spec: {expected}");
        assert_eq!(w.failure(id).await.as_deref(), Some(reason.as_str()), "job {id}");
    }

    // The waiting job is confirmed once the artist opens it.
    assert_eq!(w.open(4).await?.job_id, unopened);
    round(&indexer).await;
    assert_eq!(w.state(unopened).await, JobState::Rendering);

    // More rounds: the rejected jobs stay rejected and none of their frames is paid.
    for _ in 0..3 {
        round(&indexer).await;
    }
    let mut paid_jobs = Vec::new();
    for (opened, _, expected) in &cases {
        let id = opened.job_id;
        let released = w.events(id, ChainEventKind::FramesReleased).await;
        if expected.is_empty() {
            paid_jobs.push(id);
            continue;
        }
        assert_eq!(w.state(id).await, JobState::Rejected, "job {id}");
        assert!(released.is_empty(), "job {id}: {released:?}");
        assert!(w.payouts(id).await.is_empty(), "job {id}");
        assert!(!w.is_paid(id, 0).await, "job {id}");
        assert_eq!(w.remaining(id).await, opened.amount, "job {id} keeps its lock");
    }

    // The one job registered as opened was confirmed, paid in full and completed.
    let [good] = paid_jobs[..] else { panic!("{paid_jobs:?}") };
    assert_eq!(w.state(good).await, JobState::Completed);
    let expected: Vec<_> = (0..4).map(|f| payout_of(good, f, &w.a)).collect();
    assert_eq!(summary(&w.payouts(good).await), expected);
    assert_eq!(w.credits(w.a.owner.address()).await, net(4));
    assert_eq!(w.fees().await, fee(price(4)));
    Ok(())
}
