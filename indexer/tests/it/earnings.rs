//! Credits, statements and the leaderboard come from the chain mirror:
//! rebuilt from the chain into an empty database, they are the same.

use alloy::primitives::{Address, U256};
use lumen_chain::{contracts::RenderEscrow, deploy::send};
use lumen_indexer::Mirror;
use lumen_protocol::{
    Wei,
    earnings::{Badge, Month, amount_of},
};
use lumen_store::Store;

use crate::support::{World, net, round};

#[tokio::test]
async fn credits_statements_and_the_leaderboard_rebuilt_from_the_chain_into_an_empty_database_are_the_same()
-> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.eager();
    // Job 1: a renders frames 0 and 2, b frame 1, and b renders frame 0's verification.
    let first = w.confirmed_job(&indexer, 3).await?.job_id;
    w.verify_twice(first, 0, &w.a, &w.b).await?;
    w.verify(first, 1, &w.b).await?;
    w.verify(first, 2, &w.a).await?;
    round(&indexer).await;
    // Job 2: a renders both frames.
    let second = w.confirmed_job(&indexer, 2).await?.job_id;
    w.verify(second, 0, &w.a).await?;
    w.verify(second, 1, &w.a).await?;
    round(&indexer).await;
    // a's owner withdraws what it has; the indexer mirrors it.
    let owner_escrow = RenderEscrow::new(w.chain.deployment.escrow, w.chain.provider(&w.a.owner));
    send(owner_escrow.withdraw(Address::ZERO)).await?;
    round(&indexer).await;

    // What the mirror says, checked against the chain's own numbers.
    let a = w.store.owner_earnings(w.a.owner.address()).await?;
    assert_eq!(a.jobs_completed, 4, "frames 0 and 2 of job 1, both frames of job 2");
    assert_eq!(a.credits, 40, "10 credits a render job");
    assert_eq!(amount_of(&a.earned, Address::ZERO), Wei(net(4)));
    assert_eq!(amount_of(&a.withdrawn, Address::ZERO), Wei(net(4)));
    assert_eq!(w.credits(w.a.owner.address()).await, U256::ZERO);
    let b = w.store.owner_earnings(w.b.owner.address()).await?;
    assert_eq!((b.jobs_completed, b.credits), (2, 20), "frame 1 and frame 0's verification render");
    assert_eq!(Wei(w.credits(w.b.owner.address()).await), amount_of(&b.earned, Address::ZERO));

    let paid_at = w.payouts(first).await[0].block_time;
    let month = Month::containing(paid_at);
    let statement = w.store.statement(w.a.owner.address(), month).await?;
    assert_eq!(statement.lines.len(), 2, "one line per job, node and settlement: {:?}", statement.lines);
    assert_eq!(statement.lines[0].job_id, first);
    assert_eq!((statement.lines[0].frames, statement.lines[0].verification_renders), (2, 0));
    assert_eq!(statement.withdrawals.len(), 1);
    assert_eq!(statement.credits, 40);
    let csv = statement.to_csv();
    assert_eq!(csv.lines().count(), 1 + 2 + 1, "header, two earnings, one withdrawal:\n{csv}");
    let next: Month = {
        let (_, end) = month.range();
        Month::containing(end)
    };
    assert!(w.store.statement(w.a.owner.address(), next).await?.lines.is_empty(), "nothing next month");

    let now = paid_at + 60;
    let board = w.store.leaderboard(now, 30).await?;
    assert_eq!(board.entries[0].node, w.a.address(), "most jobs first");
    assert_eq!(board.entries[0].badge, Some(Badge::Gold));
    assert_eq!(board.entries[1].badge, Some(Badge::Silver));

    // Rebuilt from the chain into an empty database: the same figures.
    let dir = tempfile::tempdir()?;
    let rebuilt = Store::open(dir.path()).await?;
    let d = &w.chain.deployment;
    let escrow = w.escrow();
    Mirror::new(d.escrow, d.registry, d.deploy_block, 0).sync(escrow.provider(), &rebuilt).await?;
    assert_eq!(rebuilt.chain_events(None).await?, w.store.chain_events(None).await?);
    assert_eq!(rebuilt.node_earnings().await?, w.store.node_earnings().await?);
    for owner in [w.a.owner.address(), w.b.owner.address()] {
        assert_eq!(rebuilt.owner_earnings(owner).await?, w.store.owner_earnings(owner).await?);
        assert_eq!(rebuilt.statement(owner, month).await?, w.store.statement(owner, month).await?);
    }
    assert_eq!(rebuilt.leaderboard(now, 30).await?, board);
    Ok(())
}
