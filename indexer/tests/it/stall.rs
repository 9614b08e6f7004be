//! Settlement that cannot stall: a settle not mined in time is replaced
//! with higher fees at the same nonce; a revert that can never pass is
//! parked with its decoded reason and not sent again; a node the escrow
//! cannot pay is left out so the rest is paid; a settle whose RPC went
//! away mid-flight is not sent twice.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    consensus::Transaction as _, primitives::U256, providers::Provider, signers::local::PrivateKeySigner,
};
use lumen_chain::{Settler, contracts::NodeRegistry, deploy::send, job::no_job_terms, sender::Attempt};
use lumen_indexer::Indexer;
use lumen_protocol::{ChainEventKind, FrameIndex, JobId, JobState, SlashState};
use lumen_store::NewBan;

use crate::support::{Node, Relay, World, net, payout_of, price, round, summary};

/// Waits until the indexer's sender has sent `n` transactions for the
/// nonce under way.
async fn sent(indexer: &Indexer, n: usize) -> Vec<Attempt> {
    let limit = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = indexer.sender().attempts();
        if sent.len() >= n {
            return sent;
        }
        assert!(Instant::now() < limit, "{} transactions sent: {sent:?}", sent.len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_release_not_mined_in_time_is_replaced_with_higher_fees_and_pays_once() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = Arc::new(w.indexer(|c| {
        c.max_batch_delay_ms = 0;
        c.sender.receipt_timeout_ms = 300;
        c.sender.poll_ms = 20;
    }));
    let id = w.confirmed_job(&indexer, 2).await?.job_id;
    w.verify(id, 0, &w.a).await?;
    w.verify(id, 1, &w.b).await?;
    let nonce = w.settler_nonce().await;

    // Nothing is mined until the test says so: the release waits in the pool.
    w.automine(false).await?;
    let settling = tokio::spawn({
        let indexer = indexer.clone();
        async move { indexer.round().await }
    });
    let attempts = sent(&indexer, 2).await;
    w.chain.mine(1).await?;
    settling.await??;
    w.automine(true).await?;

    let first = attempts[0];
    assert!(attempts.iter().all(|a| a.nonce == nonce), "one nonce: {attempts:?}");
    assert!(attempts[1].max_fee_per_gas * 8 >= first.max_fee_per_gas * 9, "{attempts:?}");
    assert!(attempts[1].max_priority_fee_per_gas * 8 >= first.max_priority_fee_per_gas * 9, "{attempts:?}");
    let payouts = w.payouts(id).await;
    assert_eq!(summary(&payouts), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    let mined = w.escrow().provider().get_transaction_by_hash(payouts[0].tx_hash).await?.unwrap();
    assert_eq!(mined.inner.nonce(), nonce);
    assert!(mined.inner.max_fee_per_gas() > first.max_fee_per_gas, "the replacement was mined");
    assert_eq!(w.settler_nonce().await, nonce + 1, "one release mined");
    assert_eq!(w.credits(w.a.owner.address()).await, net(1));

    round(&indexer).await;
    assert_eq!(w.settler_nonce().await, nonce + 1, "nothing sent again");
    assert_eq!(w.events(id, ChainEventKind::FramesReleased).await.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_settle_the_escrow_refuses_for_good_is_parked_with_its_reason_and_not_sent_again()
-> eyre::Result<()> {
    let w = World::new().await?;
    // The operator configured a key that is not the escrow's settler.
    let stranger = w.chain.account(6);
    let settler = Settler { provider: w.chain.provider(&stranger), key: stranger.clone() };
    let wrong = w.indexer_with(settler, |c| c.max_batch_delay_ms = 0);
    let id = w.confirmed_job(&wrong, 2).await?.job_id;
    w.verify(id, 0, &w.a).await?;
    let sends = || async { w.escrow().provider().get_transaction_count(stranger.address()).await.unwrap() };

    round(&wrong).await;
    let park = w.store.settlement_park(id).await?.expect("parked");
    assert!(
        park.reason.starts_with("Escrow_NotSettler") && park.reason.contains(&stranger.address().to_string()),
        "{}",
        park.reason
    );
    assert_eq!(sends().await, 0, "caught in simulation: no gas spent");
    round(&wrong).await;
    assert_eq!(w.store.settlement_park(id).await?, Some(park.clone()), "not tried again");

    // New chain events for the job (the artist cancels): tried once more, parked again.
    send(w.artist_escrow().cancel(id.to_u256(), w.terms(id).await)).await?;
    round(&wrong).await;
    let again = w.store.settlement_park(id).await?.expect("parked again");
    assert_eq!(again.reason, park.reason);
    assert!(again.events > park.events, "{again:?} after {park:?}");
    assert_eq!(sends().await, 0);

    // The operator fixes the key and restarts: the park is lifted and the frame paid.
    let fixed = w.eager();
    fixed.unpark_all().await?;
    round(&fixed).await;
    assert_eq!(w.store.settlement_park(id).await?, None);
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a)]);
    Ok(())
}

#[tokio::test]
async fn a_node_bound_after_the_job_opened_is_left_out_and_every_other_frame_is_paid() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.batching(64);
    let job = w.confirmed_job(&indexer, 3).await?;
    let id = job.job_id;
    let late = Node { key: PrivateKeySigner::random(), owner: w.chain.account(7) };
    w.chain.bind_node(&late.owner, &late.key).await?;
    w.verify(id, 0, &w.a).await?;
    w.verify(id, 1, &late).await?;
    w.verify(id, 2, &w.b).await?;
    let nonce = w.settler_nonce().await;

    // The release named `late`'s frame: its simulation reverted, `late` was
    // left out, and the rest was paid in the same round, the job closed:
    // late's share went back to the artist.
    round(&indexer).await;
    let unpayable = w.store.unpayable_nodes(id).await?;
    assert!(
        matches!(&unpayable[..], [(node, why)] if *node == late.address() && why.contains("not before the job opened")),
        "{unpayable:?}"
    );
    assert_eq!(w.store.settlement_park(id).await?, None, "the job is not parked");
    assert_eq!(w.settler_nonce().await, nonce + 1, "one transaction, the one that passed simulation");
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a), payout_of(id, 2, &w.b)]);
    assert_eq!(w.credits(late.owner.address()).await, U256::ZERO);
    assert_eq!(w.refunded(id).await, Some(job.amount - price(2)));
    round(&indexer).await;
    assert_eq!(w.state(id).await, JobState::Failed);
    let failure = w.failure(id).await.unwrap_or_default();
    assert!(failure.contains("cannot be paid") && failure.contains(&late.address().to_string()), "{failure}");
    Ok(())
}

#[tokio::test]
async fn a_slash_that_can_never_pass_is_parked_with_its_reason() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.eager();
    let stake = U256::from(1_000_000_000_000_000_000u128);
    let registry = NodeRegistry::new(w.chain.deployment.registry, w.chain.provider(&w.a.owner));
    send(registry.addStake(w.a.address()).value(stake)).await?;
    let job = w.confirmed_job(&indexer, 1).await?;
    // The evidence was used on-chain already (say, by an indexer whose
    // database was lost since): the registry takes each evidence once.
    let evidence_hash = w.store.put_blob(b"evidence").await?;
    let settler = NodeRegistry::new(w.chain.deployment.registry, w.chain.provider(&w.chain.admin()));
    send(settler.slash(w.a.address(), U256::from(1u8), U256::ZERO, no_job_terms(), evidence_hash.to_b256()))
        .await?;
    let ban = NewBan {
        node: w.a.address(),
        owner: Some(w.a.owner.address()),
        reason: "outvoted".into(),
        job_id: job.job_id,
        frame_index: FrameIndex(0),
        evidence_hash,
    };
    assert!(w.store.ban_node(&ban).await?);
    let nonce = w.settler_nonce().await;
    round(&indexer).await;
    let bans = w.store.bans().await?;
    assert_eq!(bans[0].slash_state, SlashState::Parked);
    assert!(
        bans[0].slash_failure.as_deref().is_some_and(|f| f.contains("Registry_EvidenceUsed")),
        "{bans:?}"
    );
    assert!(w.store.settlement_parks().await?.is_empty(), "the job's settlement is not parked");
    round(&indexer).await;
    assert_eq!(w.settler_nonce().await, nonce, "never sent");
    assert_eq!(registry.nodeInfo(w.a.address()).call().await?.stake, stake - U256::from(1u8));
    Ok(())
}

#[tokio::test]
async fn a_ban_for_a_job_never_opened_on_chain_slashes_to_the_treasury() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.eager();
    let stake = U256::from(1_000_000_000_000_000_000u128);
    let registry = NodeRegistry::new(w.chain.deployment.registry, w.chain.provider(&w.a.owner));
    send(registry.addStake(w.a.address()).value(stake)).await?;
    // Registered with the gateway, never opened on-chain: nobody paid for
    // it, so there is no harmed artist to pay.
    w.register(&w.registration(JobId(999), 1)).await?;
    let ban = NewBan {
        node: w.a.address(),
        owner: Some(w.a.owner.address()),
        reason: "outvoted".into(),
        job_id: JobId(999),
        frame_index: FrameIndex(0),
        evidence_hash: w.store.put_blob(b"evidence").await?,
    };
    assert!(w.store.ban_node(&ban).await?);
    round(&indexer).await;
    let bans = w.store.bans().await?;
    assert_eq!(bans[0].slash_state, SlashState::Slashed, "{bans:?}");
    let treasury = w.escrow().treasury().call().await?;
    assert_eq!(registry.claimable(treasury).call().await?, stake);
    assert_eq!(registry.nodeInfo(w.a.address()).call().await?.stake, U256::ZERO);
    Ok(())
}

#[tokio::test]
async fn a_release_whose_rpc_went_away_before_its_receipt_is_not_sent_twice() -> eyre::Result<()> {
    let w = World::new().await?;
    let relay = Relay::to(&w.chain.rpc_url()).await?;
    let settler = Settler::connect(w.chain.admin(), &relay.url)?;
    let indexer = Arc::new(w.indexer_with(settler, |c| {
        c.max_batch_delay_ms = 0;
        c.poll_ms = 50;
        c.sender.poll_ms = 20;
    }));
    let id = w.confirmed_job(&indexer, 2).await?.job_id;
    w.verify(id, 0, &w.a).await?;
    w.verify(id, 1, &w.b).await?;
    let nonce = w.settler_nonce().await;

    // The release reaches the pool, then the RPC goes away while the receipt is awaited.
    w.automine(false).await?;
    let settling = tokio::spawn({
        let indexer = indexer.clone();
        async move { indexer.round().await }
    });
    sent(&indexer, 1).await;
    relay.down();
    settling.await?.expect("a failed settlement step does not fail the round");
    let err = indexer.round().await.expect_err("the RPC is unreachable");
    assert!(lumen_runtime::Retryable::is_retryable(&err), "{err}");

    // The release is mined meanwhile; once the RPC is back, the frames are
    // seen paid on-chain and nothing is sent again.
    w.chain.mine(1).await?;
    w.automine(true).await?;
    relay.up();
    tokio::time::sleep(Duration::from_millis(200)).await; // past the step's backoff
    round(&indexer).await;
    assert_eq!(summary(&w.payouts(id).await), [payout_of(id, 0, &w.a), payout_of(id, 1, &w.b)]);
    assert_eq!(w.settler_nonce().await, nonce + 1, "one release");
    round(&indexer).await;
    assert_eq!(w.settler_nonce().await, nonce + 1);
    Ok(())
}
