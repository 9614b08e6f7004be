//! Releasing verified frames: in batches, to the owner bound to the node
//! whose render was accepted, with the fee to the treasury, and never twice.

use std::collections::BTreeSet;

use lumen_protocol::{ChainEvent, ChainEventKind, JobState};

use crate::support::{Node, World, fee, net, payout_of, price, round, summary};

#[tokio::test]
async fn verified_frames_are_released_in_batches_to_node_owners_exactly_once() -> eyre::Result<()> {
    let w = World::new().await?;
    let batching = w.indexer(|c| {
        c.batch_frames = 3;
        c.max_batch_delay_ms = 3_600_000;
        c.max_frames_per_tx = 2;
    });
    let job = w.confirmed_job(&batching, 6).await?;
    let id = job.job_id;

    // Two verified frames are fewer than a batch: nothing is released.
    w.verify(id, 0, &w.a).await?;
    w.reject(id, 1, &w.a).await?; // a's render of frame 1 is corrupt...
    w.verify(id, 1, &w.b).await?; // ...b's is accepted, so b's owner is paid for it
    round(&batching).await;
    assert!(w.payouts(id).await.is_empty());
    assert_eq!(w.credits(w.a.owner.address()).await, 0);
    assert_eq!(w.fees().await, 0);

    // The third fills the batch: all three are paid, two frames per transaction.
    w.verify(id, 2, &w.a).await?;
    round(&batching).await;
    let payouts = w.payouts(id).await;
    assert_eq!(summary(&payouts), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b), payout_of(id, 2, &w.a)]);
    let txs: BTreeSet<_> = payouts.iter().map(|p| p.tx_hash).collect();
    assert_eq!(txs.len(), 2, "max_frames_per_tx = 2 splits three frames into two releases");
    assert_eq!(w.credits(w.a.owner.address()).await, net(2));
    assert_eq!(w.credits(w.b.owner.address()).await, net(1));
    assert_eq!(w.credits(w.a.address()).await, 0, "the node key itself is never credited");
    assert_eq!(w.fees().await, fee(price(3)));
    assert_eq!(w.remaining(id).await, job.amount - price(3));
    for (frame, paid) in [(0, true), (1, true), (2, true), (3, false)] {
        assert_eq!(w.is_paid(id, frame).await, paid, "frame {frame}");
    }
    // One FramesReleased per (transaction, node): frames 0 (a) and 1 (b) together, then frame 2 (a).
    let released = w.events(id, ChainEventKind::FramesReleased).await;
    let shape: Vec<_> = released
        .iter()
        .map(|e| match &e.event {
            ChainEvent::FramesReleased { node, owner, amount, fee, .. } => {
                (e.tx_hash, *node, *owner, amount.get(), fee.get())
            }
            other => unreachable!("{other:?}"),
        })
        .collect();
    let one = |frame: usize, node: &Node| {
        (payouts[frame].tx_hash, node.address(), node.owner.address(), price(1), fee(price(1)))
    };
    // Within one transaction the sets go in node-address order (random keys): compare sorted.
    let mut expected = [one(0, &w.a), one(1, &w.b), one(2, &w.a)];
    let mut shape = shape;
    expected.sort();
    shape.sort();
    assert_eq!(shape, expected);
    assert_eq!(payouts[0].tx_hash, payouts[1].tx_hash);

    // More rounds pay nothing again: the mirror knows the frames are paid.
    let nonce = w.settler_nonce().await;
    for _ in 0..3 {
        round(&batching).await;
    }
    assert_eq!(w.payouts(id).await, payouts);
    assert_eq!(w.events(id, ChainEventKind::FramesReleased).await.len(), 3);
    assert_eq!(w.settler_nonce().await, nonce, "no transaction was even attempted");
    assert_eq!(w.credits(w.a.owner.address()).await, net(2));

    // A lone verified frame waits for its batch...
    w.verify(id, 3, &w.b).await?;
    round(&batching).await;
    assert_eq!(w.payouts(id).await.len(), 3);
    assert!(!w.is_paid(id, 3).await);

    // ...until it is older than the batch delay (0 here), then it goes alone.
    round(&w.eager()).await;
    let payouts = w.payouts(id).await;
    assert_eq!(summary(&payouts[3..]), [payout_of(id, 3, &w.b)]);
    assert_eq!(w.credits(w.b.owner.address()).await, net(2));
    assert_eq!(w.fees().await, fee(price(4)));
    assert_eq!(w.remaining(id).await, job.amount - price(4));

    // Frames 4 and 5 are still pending: the job renders on.
    assert_eq!(w.state(id).await, JobState::Rendering);
    Ok(())
}

/// With `confirmations` above 0 the mirror does not hold the indexer's own
/// release until it is confirmed; the next round must read the chain's
/// paid-frame bitmap and not send the frames again (the escrow would refuse,
/// and a refused send must not leave a nonce gap that stalls the settler).
#[tokio::test]
async fn with_confirmations_a_release_not_yet_mirrored_is_not_sent_again() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.indexer(|c| {
        c.confirmations = 1;
        c.max_batch_delay_ms = 0;
    });
    let job = w.open(3).await?;
    let id = job.job_id;
    w.register(&w.registration(id, 3)).await?;
    w.chain.mine(1).await?;
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Rendering);

    w.verify(id, 0, &w.a).await?;
    round(&indexer).await;
    assert!(w.is_paid(id, 0).await);
    assert!(w.payouts(id).await.is_empty(), "the release is not confirmed yet");
    // The next round, before the release is confirmed, must leave frame 0 alone.
    round(&indexer).await;
    w.chain.mine(1).await?;
    round(&indexer).await;
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a)]);

    // The settler can still pay what is verified next.
    w.verify(id, 1, &w.b).await?;
    round(&indexer).await;
    w.chain.mine(1).await?;
    round(&indexer).await;
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    assert_eq!(w.credits(w.b.owner.address()).await, net(1));
    Ok(())
}
