//! A node the verifier banned for cheating is slashed on-chain to the artist
//! it cheated, with the evidence bundle's hash.

use alloy::{primitives::U256, providers::Provider};
use lumen_chain::{contracts::NodeRegistry, deploy::send};
use lumen_protocol::{FrameIndex, SlashState};
use lumen_store::NewBan;

use crate::support::{World, round};

#[tokio::test]
async fn a_banned_node_is_slashed_to_the_artist_with_the_evidence_hash() -> eyre::Result<()> {
    let w = World::new().await?;
    let indexer = w.eager();
    let job = w.confirmed_job(&indexer, 2).await?;
    // a's owner staked 2 ETH, then asked to unstake 0.5: unbonding stake is slashable too.
    let stake = U256::from(2_000_000_000_000_000_000u128);
    let owner_registry = NodeRegistry::new(w.chain.deployment.registry, w.chain.provider(&w.a.owner));
    send(owner_registry.addStake(w.a.address()).value(stake)).await?;
    send(owner_registry.requestUnstake(w.a.address(), stake / U256::from(4))).await?;

    let evidence = w.store.put_blob(b"{\"the\":\"evidence\"}").await?;
    for node in [&w.a, &w.b] {
        let ban = NewBan {
            node: node.address(),
            owner: Some(node.owner.address()),
            reason: "outvoted".into(),
            job_id: job.job_id,
            frame_index: FrameIndex(0),
            evidence_hash: evidence,
        };
        assert!(w.store.ban_node(&ban).await?);
        assert!(!w.store.ban_node(&ban).await?, "the first evidence stands");
    }
    let artist_claim_before = owner_registry.claimable(w.artist.address()).call().await?;
    round(&indexer).await;

    let bans = w.store.bans().await?;
    let a = bans.iter().find(|b| b.node == w.a.address()).unwrap();
    assert_eq!(a.slash_state, SlashState::Slashed);
    assert_eq!(a.slashed_amount.map(|w| w.get()), Some(stake));
    let receipt = w.chain.provider(&w.artist).get_transaction_receipt(a.slash_tx.unwrap()).await?.unwrap();
    let slashed =
        receipt.decoded_log::<NodeRegistry::NodeSlashed>().expect("the slash transaction emits NodeSlashed");
    assert_eq!(
        (slashed.node, slashed.recipient, slashed.amount, slashed.evidenceHash),
        (w.a.address(), w.artist.address(), stake, evidence.to_b256())
    );
    let info = owner_registry.nodeInfo(w.a.address()).call().await?;
    assert_eq!((info.stake, info.unbonding), (U256::ZERO, U256::ZERO));
    assert_eq!(owner_registry.claimable(w.artist.address()).call().await? - artist_claim_before, stake);

    // b had nothing at stake: recorded, nothing sent.
    let b = bans.iter().find(|b| b.node == w.b.address()).unwrap();
    assert_eq!((b.slash_state, b.slash_tx), (SlashState::NoStake, None));
    let nonce = w.settler_nonce().await;
    round(&indexer).await;
    assert_eq!(w.settler_nonce().await, nonce, "a slash is sent once");
    Ok(())
}
