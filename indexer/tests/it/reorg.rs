//! A reorg that drops a release: the mirror forgets the orphaned event and
//! payouts, reads the canonical chain, and the frames, unpaid there, are
//! released again.

use std::collections::BTreeSet;

use alloy::primitives::B256;
use lumen_indexer::Indexer;
use lumen_protocol::{ChainEvent, ChainEventKind, JobId, JobState};
use lumen_testkit::OpenedJob;

use crate::support::{World, fee, net, payout_of, price, round, summary};

/// What the reorg orphaned.
struct Orphaned {
    job: OpenedJob,
    tx: B256,
    block: u64,
}

/// Frames 0 (node a) and 1 (node b) of a 3-frame job are released by
/// `indexer`; then the chain is reverted to before the release, another
/// job is opened at the release's height, and two more blocks are mined.
/// The release transaction is gone for good (Anvil does not put it back
/// in its pool). `indexer` has synced the canonical chain when this returns.
async fn release_then_reorg(w: &World, indexer: &Indexer) -> eyre::Result<Orphaned> {
    let job = w.confirmed_job(indexer, 3).await?;
    let id = job.job_id;
    w.verify(id, 0, &w.a).await?;
    w.verify(id, 1, &w.b).await?;

    let snapshot = w.chain.snapshot().await?;
    round(indexer).await;
    let payouts = w.payouts(id).await;
    assert_eq!(summary(&payouts), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    let (tx, block) = (payouts[0].tx_hash, payouts[0].block_number);
    assert_eq!(w.credits(w.a.owner.address()).await, net(1));

    assert!(w.chain.revert(snapshot).await?);
    assert_eq!(w.credits(w.a.owner.address()).await, 0, "unpaid on the canonical chain");
    let other = w.open(2).await?;
    assert_eq!(other.receipt.block_number, Some(block), "the new job takes the orphaned height");
    w.chain.mine(2).await?;

    // Syncing alone drops what was orphaned and reads what replaced it.
    let head = indexer.sync().await?;
    assert_eq!(head, block + 2);
    assert!(w.payouts(id).await.is_empty());
    assert!(w.events(id, ChainEventKind::FramesReleased).await.is_empty());
    let all = w.store.chain_events(None).await?;
    assert!(all.iter().all(|e| e.tx_hash != tx), "no event of the orphaned release is left");
    let opened = w.events(other.job_id, ChainEventKind::JobOpened).await;
    assert!(
        matches!(&opened[..], [e] if e.block_number == block
            && matches!(e.event, ChainEvent::JobOpened { frame_count: 2, .. })),
        "{opened:?}"
    );
    // What came before the reorg is still mirrored, once.
    assert_eq!(w.events(id, ChainEventKind::JobOpened).await.len(), 1);
    assert_eq!(all.iter().filter(|e| e.event.kind() == ChainEventKind::NodeRegistered).count(), 2);
    assert_eq!(w.state(id).await, JobState::Rendering);
    Ok(Orphaned { job, tx, block })
}

/// After the reorg, `indexer` releases frames 0 and 1 again, on the
/// canonical chain, and only once.
async fn released_again(w: &World, indexer: &Indexer, orphaned: &Orphaned) {
    let id: JobId = orphaned.job.job_id;
    round(indexer).await;
    let payouts = w.payouts(id).await;
    assert_eq!(summary(&payouts), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    let txs: BTreeSet<_> = payouts.iter().map(|p| p.tx_hash).collect();
    assert!(!txs.contains(&orphaned.tx));
    assert!(payouts.iter().all(|p| p.block_number > orphaned.block + 2));
    assert_eq!(w.credits(w.a.owner.address()).await, net(1));
    assert_eq!(w.credits(w.b.owner.address()).await, net(1));
    assert_eq!(w.fees().await, fee(price(2)));
    assert_eq!(w.remaining(id).await, orphaned.job.amount - price(2));
    assert!(w.is_paid(id, 0).await && w.is_paid(id, 1).await && !w.is_paid(id, 2).await);

    round(indexer).await;
    assert_eq!(w.payouts(id).await, payouts);
    assert_eq!(w.events(id, ChainEventKind::FramesReleased).await.len(), 2);
    assert_eq!(w.state(id).await, JobState::Rendering);
}

#[tokio::test]
async fn a_reorged_release_is_forgotten_and_released_again_after_a_restart() -> eyre::Result<()> {
    let w = World::new().await?;
    let orphaned = release_then_reorg(&w, &w.eager()).await?;
    // A restarted indexer (same store, new settler provider) pays the frames again.
    released_again(&w, &w.eager(), &orphaned).await;
    Ok(())
}

/// The same indexer, whose settler provider sent the orphaned release, sends
/// it again: nonces come from the chain (`lumen_chain::signer_provider`), so
/// the dropped transaction leaves no gap.
#[tokio::test]
async fn a_reorged_release_is_released_again_by_the_same_indexer() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.eager();
    let orphaned = release_then_reorg(&w, &indexer).await?;
    released_again(&w, &indexer, &orphaned).await;
    Ok(())
}

/// The attack of issue 8: an attacker's cheap job takes id N and is
/// confirmed; a reorg gives id N to a victim's expensive job. The
/// attacker's registration stops (its running render is cancelled, nothing
/// of it is paid), the victim's registration of id N is accepted, and the
/// victim's job renders and is paid from the victim's lock.
#[tokio::test]
async fn a_job_id_a_reorg_gives_to_another_job_stops_the_old_one_and_registers_the_new_one()
-> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.batching(64);
    let snapshot = w.chain.snapshot().await?;

    // The attacker: 2 frames at 1 wei, confirmed; frame 0 verified (unpaid,
    // the batch never fills), frame 1 rendering on node b.
    let attacker = w.chain.account(7);
    let cheap = w.chain.open_job(&attacker, B256::repeat_byte(0xa7), 1, 2, crate::support::DAY).await?;
    let id = cheap.job_id;
    let mut registration = w.registration(id, 2);
    registration.artist = attacker.address();
    registration.spec_hash = B256::repeat_byte(0xa7);
    registration.price_per_frame = lumen_protocol::Wei::from(1u128);
    w.register(&registration).await?;
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Rendering);
    w.verify(id, 0, &w.a).await?;
    let running = w
        .store
        .claim_render(
            id,
            lumen_protocol::FrameIndex(1),
            &lumen_testkit::renderer(w.b.address()),
            lumen_protocol::TaskRole::Primary,
            i64::MAX,
        )
        .await?
        .unwrap();

    // The reorg: the victim's 3-frame job takes id N.
    assert!(w.chain.revert(snapshot).await?);
    let victim = w.open(3).await?;
    assert_eq!(victim.job_id, id, "the victim's job has the attacker's id");
    let theirs = w.registration(id, 3);
    assert!(
        matches!(w.store.insert_job(&theirs).await, Err(lumen_store::StoreError::JobExists(_))),
        "refused while the attacker's job is still confirmed"
    );

    // One round: the attacker's job loses its confirmation and is rejected;
    // its running task is one the matchmaker cancels.
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Rejected);
    let failure = w.failure(id).await.unwrap_or_default();
    assert!(failure.contains("spec hash"), "{failure}");
    let stopped = w.store.running_tasks_of_stopped_jobs().await?;
    assert_eq!(stopped.iter().map(|t| t.task_id).collect::<Vec<_>>(), [running.task_id]);
    assert!(w.payouts(id).await.is_empty());

    // The victim's registration now replaces the attacker's, renders, is paid.
    w.store.insert_job(&theirs).await?;
    assert_eq!(w.state(id).await, JobState::AwaitingChain);
    assert_eq!(w.store.job(id).await?.unwrap().spec_hash, crate::support::SPEC);
    assert!(w.store.job_tasks(id).await?.is_empty(), "the attacker's tasks went with it");
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Rendering);
    for (frame, node) in [(0, &w.a), (1, &w.b), (2, &w.a)] {
        w.verify(id, frame, node).await?;
    }
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Completed);
    assert_eq!(
        summary(&w.payouts(id).await),
        [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b), payout_of(id, 2, &w.a)]
    );
    assert_eq!(w.credits(w.a.owner.address()).await, net(2));
    assert_eq!(w.refunded(id).await, Some(victim.amount - price(3)));
    Ok(())
}

/// A confirmed job whose `JobOpened` a reorg removed (nothing took its id)
/// waits for the chain again: nothing is dispatched, its running render is
/// cancelled; when the same job is opened again it is confirmed and goes on.
#[tokio::test]
async fn a_confirmed_job_whose_opening_a_reorg_removed_waits_for_the_chain_again() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.batching(64);
    let snapshot = w.chain.snapshot().await?;
    let id = w.confirmed_job(&indexer, 2).await?.job_id;
    w.verify(id, 0, &w.a).await?;

    assert!(w.chain.revert(snapshot).await?);
    w.chain.mine(3).await?;
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::AwaitingChain);
    assert!(w.events(id, ChainEventKind::JobOpened).await.is_empty());

    // The artist opens it again (same spec, same id): confirmed, the
    // verified frame kept, and paid once the rest is.
    assert_eq!(w.open(2).await?.job_id, id);
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Rendering);
    w.verify(id, 1, &w.b).await?;
    round(&indexer).await;
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    assert_eq!(w.state(id).await, JobState::Completed);
    Ok(())
}
