//! The artist takes the rest back on their own (after a cancel and its
//! grace period, or after the deadline): the mirror sees `JobRefunded` and
//! the job finishes without another release.

use alloy::primitives::U256;
use lumen_chain::{
    ChainError, contracts::escrow::RenderEscrow::RenderEscrowErrors::Escrow_NotRefundable, deploy::send,
};
use lumen_protocol::{ChainEvent, ChainEventKind, JobState};

use crate::support::{
    CANCEL_GRACE, PRICE, REFUNDED, SPEC, World, fee, gas_cost, net, payout_of, price, round, summary,
};

#[tokio::test]
async fn after_a_cancel_and_its_grace_the_artist_refund_ends_the_job() -> eyre::Result<()> {
    let w = World::new().await?;
    let batching = w.batching(64);
    let job = w.confirmed_job(&batching, 4).await?;
    let id = job.job_id;

    send(w.artist_escrow().cancel(id.to_u256(), w.terms(id).await)).await?;
    w.verify(id, 0, &w.a).await?;

    // Within the grace period verified frames can still be paid.
    round(&w.eager()).await;
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a)]);
    let cancelled = w.events(id, ChainEventKind::JobCancelled).await;
    assert!(matches!(&cancelled[..], [e] if matches!(e.event, ChainEvent::JobCancelled { .. })));
    assert_eq!(w.state(id).await, JobState::Rendering, "a cancel alone does not end the job");

    // The artist cannot refund early. (A fresh provider for every send: a failed
    // send leaves a gap in a provider's cached nonce.)
    let early = send(w.artist_escrow().refund(id.to_u256(), w.terms(id).await)).await.unwrap_err();
    assert!(matches!(early, ChainError::EscrowReverted(Escrow_NotRefundable(_))), "{early:?}");

    // Frame 1 is verified but waits for its batch; then the grace runs out and the artist refunds.
    w.verify(id, 1, &w.b).await?;
    round(&batching).await;
    assert!(!w.is_paid(id, 1).await);
    w.chain.advance_time(CANCEL_GRACE).await?;
    let before = w.balance(w.artist.address()).await;
    let refund = send(w.artist_escrow().refund(id.to_u256(), w.terms(id).await)).await?;
    let rest = job.amount - price(1);
    assert_eq!(w.balance(w.artist.address()).await, before + rest - gas_cost(&refund));

    // The indexer sees the refund and ends the job without touching the chain again.
    let nonce = w.settler_nonce().await;
    round(&w.eager()).await;
    assert_eq!(w.refunded(id).await, Some(rest));
    assert_eq!(w.state(id).await, JobState::Failed);
    assert_eq!(w.failure(id).await.as_deref(), Some("0 frames failed, 1 unpaid at refund"));
    for _ in 0..2 {
        round(&w.eager()).await;
    }
    assert_eq!(w.settler_nonce().await, nonce, "no release or close after the refund");
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a)]);
    assert!(!w.is_paid(id, 1).await);
    assert_eq!(w.credits(w.a.owner.address()).await, net(1));
    assert_eq!(w.credits(w.b.owner.address()).await, 0);
    assert_eq!(w.fees().await, fee(price(1)));
    assert_eq!(w.onchain(id).await, (REFUNDED, U256::ZERO));
    Ok(())
}

#[tokio::test]
async fn after_the_deadline_the_artist_refund_ends_the_job() -> eyre::Result<()> {
    let w = World::new().await?;
    let batching = w.batching(64);
    // Further than the batch window (an hour): the frames wait for their batch.
    let job = w.chain.open_job(&w.artist, SPEC, PRICE, 3, 7_200).await?;
    let id = job.job_id;
    w.register(&w.registration(id, 3)).await?;
    round(&batching).await;
    assert_eq!(w.state(id).await, JobState::Rendering);

    w.verify(id, 0, &w.a).await?;
    w.verify(id, 1, &w.a).await?;
    round(&batching).await;
    assert!(w.payouts(id).await.is_empty(), "two frames are no batch of 64");

    // The settler is down until the deadline has passed: the artist takes everything back.
    w.chain.advance_time(7_200).await?;
    let before = w.balance(w.artist.address()).await;
    let refund = send(w.artist_escrow().refund(id.to_u256(), w.terms(id).await)).await?;
    assert_eq!(w.balance(w.artist.address()).await, before + job.amount - gas_cost(&refund));

    let nonce = w.settler_nonce().await;
    round(&w.eager()).await;
    assert_eq!(w.refunded(id).await, Some(job.amount));
    assert_eq!(w.state(id).await, JobState::Failed);
    assert_eq!(w.failure(id).await.as_deref(), Some("0 frames failed, 2 unpaid at refund"));
    assert_eq!(w.settler_nonce().await, nonce, "nothing is released after the refund");
    assert!(w.payouts(id).await.is_empty());
    assert_eq!(w.credits(w.a.owner.address()).await, 0);
    assert_eq!(w.balance(w.chain.deployment.escrow).await, 0);
    Ok(())
}
