//! Settling a job whose every frame is final: the verified frames are
//! released, the job is closed, the unspent rest goes back to the artist,
//! and the job ends `failed` or `completed`.

use alloy::primitives::{Address, U256};
use lumen_chain::{contracts::RenderEscrow, deploy::send};
use lumen_protocol::{ChainEvent, ChainEventKind, FrameIndex, JobState, TaskRole};

use crate::support::{PRICE, REFUNDED, SPEC, World, fee, gas_cost, net, payout_of, price, round, summary};

#[tokio::test]
async fn a_job_with_failed_frames_is_closed_refunded_and_failed() -> eyre::Result<()> {
    let w = World::new().await?;
    // The batch never fills and never gets old: only settling releases.
    let indexer = w.batching(64);
    let job = w.confirmed_job(&indexer, 4).await?;
    let id = job.job_id;

    w.verify(id, 0, &w.a).await?;
    w.verify(id, 2, &w.b).await?;
    // Frame 1 fails while a node still renders it; frame 3 never found a node.
    w.store
        .claim_render(id, FrameIndex(1), &lumen_testkit::renderer(w.a.address()), TaskRole::Primary, i64::MAX)
        .await?
        .unwrap();
    w.fail(id, 1).await?;
    w.fail(id, 3).await?;

    let artist_before = w.balance(w.artist.address()).await;
    round(&indexer).await;
    // Every frame final: one round pays, closes and refunds.
    assert_eq!(w.state(id).await, JobState::Failed);
    assert_eq!(w.failure(id).await.as_deref(), Some("2 frames failed, 0 unpaid at refund"));
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a), payout_of(id, 2, &w.b)]);

    // Closed with the rest, which is refunded to the artist, exactly.
    let rest = job.amount - price(2);
    let closed = w.events(id, ChainEventKind::JobRefunded).await;
    let artist = w.artist.address();
    assert!(
        matches!(&closed[..], [e] if e.event == ChainEvent::JobRefunded { job_id: id, artist, amount: rest.into() }),
        "{closed:?}"
    );
    assert_eq!(w.refunded(id).await, Some(rest));
    assert_eq!(w.balance(w.artist.address()).await, artist_before + rest, "the settler paid the gas");
    assert_eq!(w.onchain(id).await, (REFUNDED, U256::ZERO));

    // The escrow holds exactly the owners' credits and the fee.
    assert_eq!(w.credits(w.a.owner.address()).await, net(1));
    assert_eq!(w.credits(w.b.owner.address()).await, net(1));
    assert_eq!(w.fees().await, fee(price(2)));
    assert_eq!(w.balance(w.chain.deployment.escrow).await, net(2) + fee(price(2)));

    // A finished job is left alone.
    let nonce = w.settler_nonce().await;
    round(&indexer).await;
    assert_eq!(w.settler_nonce().await, nonce);
    assert_eq!(w.state(id).await, JobState::Failed);

    // The fee reaches the treasury and the credit the owner when withdrawn; the mirror records both.
    let treasury = w.chain.deployment.treasury;
    let before = (w.balance(treasury).await, w.balance(w.a.owner.address()).await);
    let stranger = w.chain.provider(&w.chain.account(6));
    send(RenderEscrow::new(w.chain.deployment.escrow, &stranger).withdrawFees(Address::ZERO)).await?;
    let owner = w.chain.provider(&w.a.owner);
    let withdrawal =
        send(RenderEscrow::new(w.chain.deployment.escrow, &owner).withdraw(Address::ZERO)).await?;
    assert_eq!(w.balance(treasury).await, before.0 + fee(price(2)));
    assert_eq!(w.balance(w.a.owner.address()).await, before.1 + net(1) - gas_cost(&withdrawal));
    assert_eq!(w.balance(w.chain.deployment.escrow).await, net(1), "b's credit is all that is left");
    indexer.sync().await?;
    let withdrawn: Vec<_> = w
        .store
        .chain_events(None)
        .await?
        .into_iter()
        .filter_map(|e| match e.event {
            ChainEvent::FeesWithdrawn { treasury, amount, .. } => Some((treasury, amount.get())),
            ChainEvent::CreditsWithdrawn { account, amount, .. } => Some((account, amount.get())),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn, [(treasury, fee(price(2))), (w.a.owner.address(), net(1))]);
    Ok(())
}

#[tokio::test]
async fn a_fully_verified_job_is_paid_closed_and_completed() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.batching(64);
    let job = w.confirmed_job(&indexer, 3).await?;
    let id = job.job_id;
    w.verify(id, 0, &w.a).await?;
    // Frame 1 was sampled: `a` checked `b`'s render and agreed.
    w.verify_twice(id, 1, &w.b, &w.a).await?;
    w.verify(id, 2, &w.b).await?;

    let artist_before = w.balance(w.artist.address()).await;
    let nonce = w.settler_nonce().await;
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Completed);
    assert_eq!(
        w.settler_nonce().await,
        nonce + 1,
        "one transaction pays the frames and the verification render, closes and refunds"
    );
    assert_eq!(w.failure(id).await, None);
    assert_eq!(
        summary(&w.payouts(id).await),
        [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b), payout_of(id, 2, &w.b)]
    );
    assert_eq!(
        summary(&w.verification_payouts(id).await),
        [payout_of(id, 1, &w.a)],
        "the verification render is paid from the budget, to the other node"
    );
    // `a`: frame 0 in one set and frame 1's verification render in another.
    assert_eq!(w.credits(w.a.owner.address()).await, net(1) + net(1));
    assert_eq!(w.credits(w.b.owner.address()).await, net(2));
    assert_eq!(w.fees().await, fee(price(1)) + fee(price(2)) + fee(price(1)));
    // The escrow locked the frames and a budget of one verification render
    // per frame; one was used, the other two come back.
    assert_eq!(job.amount, price(6));
    assert_eq!(w.refunded(id).await, Some(price(2)));
    assert_eq!(w.balance(w.artist.address()).await, artist_before + price(2));
    assert_eq!(w.onchain(id).await, (REFUNDED, U256::ZERO));
    // Frames and the verification render went out in one release.
    assert_eq!(w.events(id, ChainEventKind::FramesReleased).await.len(), 2);
    let checks = w.events(id, ChainEventKind::VerificationsReleased).await;
    let frames = w.events(id, ChainEventKind::FramesReleased).await;
    assert_eq!(checks.len(), 1);
    assert!(frames.iter().all(|f| f.tx_hash == checks[0].tx_hash), "one transaction");
    Ok(())
}

#[tokio::test]
async fn frames_are_paid_before_a_window_that_would_pass_the_deadline() -> eyre::Result<()> {
    let w = World::new().await?;
    // A batch of 64 frames or an hour: neither comes before this job's deadline, in 10 minutes.
    let batching = w.batching(64);
    let job = w.chain.open_job(&w.artist, SPEC, PRICE, 3, 600).await?;
    let id = job.job_id;
    w.register(&w.registration(id, 3)).await?;
    round(&batching).await;
    assert_eq!(w.state(id).await, JobState::Rendering);

    // Waiting one more window would let the artist refund these frames' pay: they go out now.
    w.verify(id, 0, &w.a).await?;
    w.verify(id, 1, &w.b).await?;
    round(&batching).await;
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    assert_eq!(w.state(id).await, JobState::Rendering, "paid, not closed: frame 2 is not final");
    assert!(w.is_paid(id, 0).await && w.is_paid(id, 1).await && !w.is_paid(id, 2).await);
    Ok(())
}

#[tokio::test]
async fn jobs_due_in_the_same_round_share_one_transaction() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.batching(64);
    let first = w.confirmed_job(&indexer, 2).await?;
    let second = w.confirmed_job(&indexer, 2).await?;
    for job in [first.job_id, second.job_id] {
        w.verify(job, 0, &w.a).await?;
        w.verify(job, 1, &w.b).await?;
    }
    let nonce = w.settler_nonce().await;
    round(&indexer).await;
    assert_eq!(w.settler_nonce().await, nonce + 1, "one settleMany pays, closes and refunds both jobs");
    for job in [first.job_id, second.job_id] {
        assert_eq!(w.state(job).await, JobState::Completed);
        assert_eq!(summary(&w.payouts(job).await), [payout_of(job, 0, &w.a), payout_of(job, 1, &w.b)]);
        assert_eq!(w.onchain(job).await, (REFUNDED, U256::ZERO));
    }
    let a = w.events(first.job_id, ChainEventKind::JobRefunded).await;
    let b = w.events(second.job_id, ChainEventKind::JobRefunded).await;
    assert_eq!(a[0].tx_hash, b[0].tx_hash);
    // The owners were credited once per transaction, with both jobs' frames.
    assert_eq!(w.credits(w.a.owner.address()).await, net(2));
    assert_eq!(w.credits(w.b.owner.address()).await, net(2));
    Ok(())
}
