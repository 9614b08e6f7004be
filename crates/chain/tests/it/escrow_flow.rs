//! Deploy to a real Anvil, bind a node, open a job, release two frames,
//! withdraw and refund, checking every balance along the way.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use lumen_chain::{
    ChainError, DeployConfig, bind,
    contracts::{NodeRegistry, RenderEscrow, escrow::RenderEscrow::RenderEscrowErrors},
    deploy::confirmed,
    frames,
};

/// The spec hash every job of these tests is opened for.
const SPEC: alloy::primitives::B256 = alloy::primitives::B256::repeat_byte(7);

fn provider_for(key: &PrivateKeySigner, url: &str) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url.parse().unwrap())
        .erased()
}

fn gas_cost(receipt: &TransactionReceipt) -> U256 {
    U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
}

#[tokio::test]
async fn open_release_withdraw_refund_moves_exact_amounts() -> eyre::Result<()> {
    let anvil = lumen_chain::anvil::spawn()?;
    let url = anvil.endpoint();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let (admin, settler, treasury, artist, owner, stranger) =
        (key(0), key(1), key(2), key(3), key(4), key(5));
    let node = PrivateKeySigner::random();

    let admin_p = provider_for(&admin, &url);
    let config = DeployConfig {
        admin: admin.address(),
        settler: settler.address(),
        treasury: treasury.address(),
        fee_bps: 250,
        cancel_grace: 600,
        unstake_delay: 3_600,
    };
    let deployment = lumen_chain::deploy(&admin_p, &config).await?;
    lumen_chain::verify_code(&deployment, &admin_p).await?;
    assert_eq!(deployment.chain_id, anvil.chain_id());

    // Bind the node key to its owner; the digest we sign matches the contract's.
    let owner_p = provider_for(&owner, &url);
    let registry = NodeRegistry::new(deployment.registry, &owner_p);
    let nonce = registry.nonces(node.address()).call().await?;
    let deadline = U256::from(u64::MAX);
    let ours = bind::digest(
        &bind::Bind { node: node.address(), owner: owner.address(), nonce, deadline },
        deployment.chain_id,
        deployment.registry,
    );
    let theirs = registry.bindDigest(node.address(), owner.address(), nonce, deadline).call().await?;
    assert_eq!(ours, theirs);
    let signature =
        bind::sign(&node, owner.address(), nonce, deadline, deployment.chain_id, deployment.registry).await?;
    confirmed(registry.register(node.address(), deadline, signature).send().await?.get_receipt().await?)?;
    assert_eq!(registry.ownerOf(node.address()).call().await?, owner.address());
    assert!(registry.isActive(node.address()).call().await?);
    let binding = registry.bindingOf(node.address()).call().await?;
    assert_eq!(binding.owner_, owner.address());
    // The escrow pays only nodes bound before a job opened: open it a second later.
    let _: serde_json::Value = admin_p.raw_request("evm_increaseTime".into(), [U256::from(1)]).await?;

    // Open a 4-frame job paid in the native coin.
    let price = parse_ether("0.001")?;
    let price128 = u128::try_from(price)?;
    let artist_p = provider_for(&artist, &url);
    let escrow = RenderEscrow::new(deployment.escrow, &artist_p);
    let amount = escrow.quote(4, 0, price128).call().await?;
    assert_eq!(amount, price * U256::from(4));

    let artist_before = artist_p.get_balance(artist.address()).await?;
    let latest = artist_p.get_block_number().await?;
    let now = artist_p.get_block_by_number(latest.into()).await?.unwrap().header.timestamp;
    let receipt = confirmed(
        escrow
            .openJob(SPEC, Address::ZERO, price128, 4, 0, now + 86_400)
            .value(amount)
            .send()
            .await?
            .get_receipt()
            .await?,
    )?;
    let opened = receipt.decoded_log::<RenderEscrow::JobOpened>().expect("JobOpened in receipt");
    let job_id = opened.jobId;
    // The escrow keeps a hash of the terms; they are the event's fields, and the chain finds them.
    let (terms, state) = lumen_chain::job::find_terms(
        &artist_p,
        deployment.escrow,
        deployment.deploy_block,
        lumen_protocol::JobId::from_u256(job_id).expect("a small id"),
    )
    .await?
    .expect("the job exists");
    assert_eq!(terms.specHash, SPEC);
    assert_eq!(terms.artist, artist.address());
    assert_eq!(terms.openedAt, opened.openedAt);
    assert_eq!(state.remaining, price128 * 4);
    assert_eq!(state.status, 1, "Open");
    assert_eq!(opened.amount, amount);
    assert_eq!(opened.artist, artist.address());
    assert_eq!(artist_p.get_balance(artist.address()).await?, artist_before - amount - gas_cost(&receipt));
    assert_eq!(artist_p.get_balance(deployment.escrow).await?, amount);

    // The settler releases frames 0 and 2 to the node.
    let settler_p = provider_for(&settler, &url);
    let escrow_s = RenderEscrow::new(deployment.escrow, &settler_p);
    let sets = frames::pack([(node.address(), 0), (node.address(), 2)], 4)?;
    let receipt = confirmed(
        escrow_s
            .settle(job_id, terms.clone(), sets.clone(), vec![], false)
            .send()
            .await?
            .get_receipt()
            .await?,
    )?;
    let released: Vec<_> = receipt
        .logs()
        .iter()
        .filter_map(|log| RenderEscrow::FramesReleased::decode_log(&log.inner).ok())
        .collect();
    assert_eq!(released.len(), 1, "one event per job and call");
    let [set] = &released[0].frames[..] else { panic!("one frame set: {:?}", released[0].frames) };
    assert!(released[0].verifications.is_empty());
    assert_eq!(set.node, node.address());
    assert_eq!(frames::unpack(set.wordIndex, set.bits).collect::<Vec<_>>(), vec![0, 2]);
    let gross = price * U256::from(2);
    let fee = gross * U256::from(250) / U256::from(10_000);
    assert_eq!(escrow_s.credits(owner.address(), Address::ZERO).call().await?, gross - fee);
    assert_eq!(escrow_s.fees(Address::ZERO).call().await?, fee);
    assert!(escrow_s.isFramePaid(job_id, U256::from(2)).call().await?);
    assert!(!escrow_s.isFramePaid(job_id, U256::from(1)).call().await?);

    // Paying frame 0 again reverts with the typed custom error.
    let err = escrow_s
        .settle(job_id, terms.clone(), sets, vec![], false)
        .call()
        .await
        .map_err(ChainError::from_contract)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::EscrowReverted(RenderEscrowErrors::Escrow_FrameAlreadyPaid(_))),
        "{err:?}"
    );

    // Only the settler releases.
    let err = escrow
        .settle(job_id, terms.clone(), frames::pack([(node.address(), 1)], 4)?, vec![], false)
        .call()
        .await
        .map_err(ChainError::from_contract)
        .unwrap_err();
    assert!(matches!(err, ChainError::EscrowReverted(RenderEscrowErrors::Escrow_NotSettler(_))), "{err:?}");

    // The owner withdraws its credit.
    let owner_before = owner_p.get_balance(owner.address()).await?;
    let escrow_o = RenderEscrow::new(deployment.escrow, &owner_p);
    let receipt = confirmed(escrow_o.withdraw(Address::ZERO).send().await?.get_receipt().await?)?;
    assert_eq!(owner_p.get_balance(owner.address()).await?, owner_before + gross - fee - gas_cost(&receipt));
    assert_eq!(escrow_o.credits(owner.address(), Address::ZERO).call().await?, U256::ZERO);

    // A settle naming another spec than the job's moves nothing.
    let mut other = terms.clone();
    other.specHash = [8u8; 32].into();
    let err = escrow_s
        .settle(job_id, other, vec![], vec![], true)
        .call()
        .await
        .map_err(ChainError::from_contract)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::EscrowReverted(RenderEscrowErrors::Escrow_TermsMismatch(_))),
        "{err:?}"
    );

    // The settler closes the job, which refunds the artist in the same transaction.
    let artist_before = artist_p.get_balance(artist.address()).await?;
    let receipt = confirmed(
        escrow_s.settle(job_id, terms.clone(), vec![], vec![], true).send().await?.get_receipt().await?,
    )?;
    let refunded = receipt.decoded_log::<RenderEscrow::JobRefunded>().expect("JobRefunded");
    let stranger_p = provider_for(&stranger, &url);
    let escrow_x = RenderEscrow::new(deployment.escrow, &stranger_p);
    assert_eq!(refunded.amount, amount - gross);
    assert_eq!(artist_p.get_balance(artist.address()).await?, artist_before + amount - gross);

    // What is left in the escrow is exactly the fee; withdrawing it pays the treasury.
    assert_eq!(artist_p.get_balance(deployment.escrow).await?, fee);
    let treasury_before = artist_p.get_balance(treasury.address()).await?;
    confirmed(escrow_x.withdrawFees(Address::ZERO).send().await?.get_receipt().await?)?;
    assert_eq!(artist_p.get_balance(treasury.address()).await?, treasury_before + fee);
    assert_eq!(artist_p.get_balance(deployment.escrow).await?, U256::ZERO);

    // Nothing can be released after the refund.
    let err = escrow_s
        .settle(job_id, terms.clone(), frames::pack([(node.address(), 1)], 4)?, vec![], false)
        .call()
        .await
        .map_err(ChainError::from_contract)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::EscrowReverted(RenderEscrowErrors::Escrow_JobNotReleasable(_))),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn deployment_file_roundtrips_and_detects_missing_code() -> eyre::Result<()> {
    let anvil = lumen_chain::anvil::spawn()?;
    let admin = PrivateKeySigner::from(anvil.keys()[0].clone());
    let provider = provider_for(&admin, &anvil.endpoint());
    let deployment = lumen_chain::deploy(&provider, &DeployConfig::devnet(admin.address())).await?;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/deployment.json");
    deployment.save(&path)?;
    assert_eq!(lumen_chain::Deployment::load(&path)?, deployment);

    let mut wrong = deployment;
    wrong.escrow = Address::repeat_byte(0x42);
    let err = lumen_chain::verify_code(&wrong, &provider).await.unwrap_err();
    assert!(matches!(err, ChainError::NoCode { .. }), "{err:?}");
    Ok(())
}
