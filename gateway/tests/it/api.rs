//! Job registration is checked against the chain.

use alloy::primitives::{Address, U256};
use lumen_chain::{
    contracts::RenderEscrow,
    deploy::confirmed,
    sign::{JobSpec, sign_digest, spec_hash},
};
use lumen_protocol::{JobId, api::RegisterJob, node::HealthPolicy};

use crate::ws::setup;

#[tokio::test]
async fn a_job_registers_only_with_its_onchain_spec_and_artist() {
    let setup = setup(HealthPolicy::default()).await;
    let d = setup.chain.deployment.clone();
    let blend = setup.store.put_blob(b"BLENDER-v304 stand-in bytes").await.unwrap();
    let spec = JobSpec {
        blendHash: blend.to_b256(),
        frameStart: 1,
        frameEnd: 4,
        frameStep: 1,
        width: 64,
        height: 36,
        engine: "CYCLES".into(),
        token: Address::ZERO,
        pricePerFrame: 1_000,
        salt: U256::from(7),
    };
    let hash = spec_hash(&spec, d.chain_id, d.escrow);
    let (artist, squatter) = (setup.chain.account(3), setup.chain.account(5));
    let http = reqwest::Client::new();
    let register = |signer: alloy::signers::local::PrivateKeySigner| {
        let (http, spec, url) = (http.clone(), spec.clone(), format!("{}/api/v1/jobs", setup.gateway.url));
        async move {
            let signature = sign_digest(&signer, hash).await.unwrap();
            http.post(url).json(&RegisterJob { job_id: JobId(1), spec, signature }).send().await.unwrap()
        }
    };

    // Not on-chain yet.
    let response = register(artist.clone()).await;
    assert_eq!(response.status(), reqwest::StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("chain_mismatch"));

    let provider = setup.chain.provider(&artist);
    let escrow = RenderEscrow::new(d.escrow, &provider);
    confirmed(
        escrow
            .openJob(hash, Address::ZERO, 1_000, 4, u64::MAX / 2)
            .value(U256::from(4_000))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap(),
    )
    .unwrap();

    // Someone else cannot squat the artist's job id.
    assert_eq!(register(squatter).await.status(), reqwest::StatusCode::CONFLICT);
    // The artist can, once.
    assert_eq!(register(artist.clone()).await.status(), reqwest::StatusCode::CREATED);
    assert_eq!(register(artist).await.status(), reqwest::StatusCode::CONFLICT);
    assert_eq!(setup.store.frames(JobId(1)).await.unwrap().len(), 4);
}
