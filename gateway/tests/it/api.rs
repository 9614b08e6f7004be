//! Job registration is checked against the chain.

use alloy::{
    primitives::{Address, U256},
    providers::Provider as _,
};
use lumen_chain::{
    contracts::RenderEscrow,
    deploy::confirmed,
    sign::{JobSpec, sign_digest, spec_hash},
};
use lumen_protocol::{
    JobId,
    api::{ApiErrorBody, Market, RegisterJob, UploadedBlend},
    node::HealthPolicy,
};

use crate::{access::sign_in, ws::setup};

#[tokio::test]
async fn a_job_registers_only_with_its_onchain_spec_and_artist() {
    let setup = setup(HealthPolicy::default()).await;
    let d = setup.chain.deployment.clone();
    let http = reqwest::Client::new();
    // 0.001 ETH a frame, above the default market floor.
    const PRICE: u128 = 1_000_000_000_000_000;
    // A real .blend, uploaded and inspected: 64×36, frames 1..=6, Cycles.
    let dir = tempfile::tempdir().unwrap();
    let blend_path = dir.path().join("scene.blend");
    let blender = lumen_blender::Blender::locate().unwrap();
    lumen_blender::sample::make_scene(&blender, &lumen_blender::sample::SampleScene::tiny(), &blend_path)
        .await
        .unwrap();
    let (artist, squatter) = (setup.chain.account(3), setup.chain.account(5));
    let artist_session = sign_in(&setup, &artist).await;
    let squatter_session = sign_in(&setup, &squatter).await;
    let session = |signer: &alloy::signers::local::PrivateKeySigner| {
        if signer.address() == artist.address() { artist_session.clone() } else { squatter_session.clone() }
    };
    let uploaded: UploadedBlend = http
        .post(format!("{}/api/v1/blends", setup.gateway.url))
        .bearer_auth(&artist_session)
        .body(std::fs::read(&blend_path).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((uploaded.scene.engine.as_str(), uploaded.scene.samples), ("CYCLES", Some(4)));
    let spec = JobSpec {
        blendHash: uploaded.hash.to_b256(),
        frameStart: 1,
        frameEnd: 4,
        frameStep: 1,
        width: 64,
        height: 36,
        engine: "CYCLES".into(),
        token: Address::ZERO,
        pricePerFrame: PRICE,
        salt: U256::from(7),
    };
    let post = |signer: alloy::signers::local::PrivateKeySigner, spec: JobSpec| {
        let (http, url) = (http.clone(), format!("{}/api/v1/jobs", setup.gateway.url));
        let token = session(&signer);
        async move {
            let hash = spec_hash(&spec, d.chain_id, d.escrow);
            let signature = sign_digest(&signer, hash).await.unwrap();
            let body = RegisterJob { job_id: JobId(1), spec, signature };
            http.post(url).bearer_auth(token).json(&body).send().await.unwrap()
        }
    };

    // A spec that disagrees with the .blend (1 px wider, another engine, frames
    // outside the scene) is refused before anything else: every honest render
    // would be judged against it.
    for wrong in [
        JobSpec { width: 65, ..spec.clone() },
        JobSpec { engine: "BLENDER_EEVEE".into(), ..spec.clone() },
        JobSpec { frameEnd: 7, ..spec.clone() },
    ] {
        let response = post(artist.clone(), wrong).await;
        assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
        let body: ApiErrorBody = response.json().await.unwrap();
        assert_eq!(body.code, "spec_mismatch", "{}", body.error);
    }

    // The operator's market limits: 1 wei a frame, a token it does not take,
    // a million frames. The artist can read them first.
    let market: Market =
        http.get(format!("{}/api/v1/market", setup.gateway.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(market, Market::default());
    for (wrong, code) in [
        (JobSpec { pricePerFrame: 1, ..spec.clone() }, "price_too_low"),
        (JobSpec { token: Address::repeat_byte(0xee), ..spec.clone() }, "token_not_accepted"),
        (JobSpec { frameStart: 1, frameEnd: 1_048_576, ..spec.clone() }, "too_many_frames"),
    ] {
        let response = post(artist.clone(), wrong).await;
        assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
        let body: ApiErrorBody = response.json().await.unwrap();
        assert_eq!(body.code, code, "{}", body.error);
    }
    let register = |signer| post(signer, spec.clone());
    let hash = spec_hash(&spec, d.chain_id, d.escrow);

    // Not on-chain yet.
    let response = register(artist.clone()).await;
    assert_eq!(response.status(), reqwest::StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("chain_mismatch"));

    let provider = setup.chain.provider(&artist);
    let escrow = RenderEscrow::new(d.escrow, &provider);
    // Opens a 4-frame job for `spec_hash` whose deadline is `secs` after the latest block.
    let open = |spec_hash, secs: u64| {
        let (provider, escrow) = (&provider, &escrow);
        async move {
            let latest = provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap();
            let deadline = latest.unwrap().header.timestamp + secs;
            let call =
                escrow.openJob(spec_hash, Address::ZERO, PRICE, 4, 0, deadline).value(U256::from(4 * PRICE));
            confirmed(call.send().await.unwrap().get_receipt().await.unwrap()).unwrap();
        }
    };
    open(hash, 86_400).await;

    // Someone else cannot squat the artist's job id: not without the
    // .blend, and with it (uploaded themselves) not without the chain.
    assert_eq!(register(squatter.clone()).await.status(), reqwest::StatusCode::FORBIDDEN);
    let upload = http
        .post(format!("{}/api/v1/blends", setup.gateway.url))
        .bearer_auth(&squatter_session)
        .body(std::fs::read(&blend_path).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), reqwest::StatusCode::CREATED);
    assert_eq!(register(squatter.clone()).await.status(), reqwest::StatusCode::CONFLICT);
    // Nor register a spec someone else signed, under their own session.
    let signature = sign_digest(&artist, hash).await.unwrap();
    let response = http
        .post(format!("{}/api/v1/jobs", setup.gateway.url))
        .bearer_auth(&squatter_session)
        .json(&RegisterJob { job_id: JobId(1), spec: spec.clone(), signature })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    // The artist can, once.
    assert_eq!(register(artist.clone()).await.status(), reqwest::StatusCode::CREATED);
    assert_eq!(register(artist.clone()).await.status(), reqwest::StatusCode::CONFLICT);
    assert_eq!(setup.store.frames(JobId(1)).await.unwrap().len(), 4);

    // A job whose deadline leaves no time to render and settle (a minute
    // away) is refused: its artist could take frames and refund.
    let soon = JobSpec { salt: U256::from(8), ..spec.clone() };
    let soon_hash = spec_hash(&soon, d.chain_id, d.escrow);
    open(soon_hash, 60).await;
    let signature = sign_digest(&artist, soon_hash).await.unwrap();
    let response = http
        .post(format!("{}/api/v1/jobs", setup.gateway.url))
        .bearer_auth(&artist_session)
        .json(&RegisterJob { job_id: JobId(2), spec: soon, signature })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let body: ApiErrorBody = response.json().await.unwrap();
    assert_eq!(body.code, "deadline_too_close", "{}", body.error);
    assert!(setup.store.job(JobId(2)).await.unwrap().is_none());
}

/// The router in process, without a listener or a chain: what the HTTP API
/// answers is testable without sockets.
#[tokio::test]
async fn the_router_answers_in_process() {
    use std::sync::Arc;

    use axum::{body::Body, http::Request};
    use lumen_gateway::{GatewayConfig, GatewayDeps, NodeDirectory};
    use lumen_protocol::Deployment;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let store = lumen_store::Store::open(dir.path()).await.unwrap();
    let chain = Deployment {
        chain_id: 31337,
        escrow: Address::repeat_byte(1),
        registry: Address::repeat_byte(2),
        deploy_block: 1,
        settler: Address::repeat_byte(3),
        treasury: Address::repeat_byte(4),
        // Never dialled by these routes.
        rpc_url: Some("http://127.0.0.1:9".into()),
        explorer_url: None,
    };
    let deps = GatewayDeps {
        chain: chain.clone(),
        store,
        bus: lumen_store::Bus::new(),
        nodes: Arc::new(NodeDirectory::new(HealthPolicy::default())),
    };
    let router = lumen_gateway::router(GatewayConfig::test(), deps).unwrap();
    let get = |uri: &str| {
        let router = router.clone();
        let request = Request::get(uri).body(Body::empty()).unwrap();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            (status, axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap())
        }
    };

    let (status, body) = get("/api/v1/info").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Deployment>(&body).unwrap(), chain);
    let (status, body) = get("/api/v1/jobs/77").await;
    assert_eq!(status, 401);
    let error: ApiErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(error.code, "unauthorized");
    let (status, _) = get("/api/v1/stats").await;
    assert_eq!(status, 200);
}
