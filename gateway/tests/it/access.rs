//! Sign-In with Ethereum, and who may read what: every private resource
//! answers 401 to strangers and 403 to other wallets.

use alloy::{
    primitives::{Address, B256, U256},
    signers::{Signer, local::PrivateKeySigner},
};
use lumen_protocol::{
    ChainEvent, ContentHash, FrameIndex, JobId, JobState, MirroredEvent, TaskRole, Verdict, Wei,
    api::{ApiErrorBody, JobView, NetworkStats, SessionView, SignIn, SiweChallenge},
    event::FrameWord,
    node::HealthPolicy,
};
use lumen_store::now_ms;
use reqwest::{StatusCode, header};

use crate::ws::{Setup, bind_node, connect, server_message, setup};

async fn challenge(setup: &Setup) -> SiweChallenge {
    challenge_at(&setup.gateway.url).await
}

async fn challenge_at(url: &str) -> SiweChallenge {
    reqwest::get(format!("{url}/api/v1/auth/nonce")).await.unwrap().json().await.unwrap()
}

async fn post_sign_in(setup: &Setup, message: String, signer: &PrivateKeySigner) -> reqwest::Response {
    post_sign_in_at(&setup.gateway.url, message, signer).await
}

async fn post_sign_in_at(url: &str, message: String, signer: &PrivateKeySigner) -> reqwest::Response {
    let signature = signer.sign_message(message.as_bytes()).await.unwrap();
    reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/siwe"))
        .json(&SignIn { message, signature: signature.as_bytes().to_vec().into() })
        .send()
        .await
        .unwrap()
}

/// Signs `signer` in and returns its bearer token.
pub(crate) async fn sign_in(setup: &Setup, signer: &PrivateKeySigner) -> String {
    sign_in_at(&setup.gateway.url, signer).await
}

/// Signs `signer` in to the gateway at `url` and returns its bearer token.
pub(crate) async fn sign_in_at(url: &str, signer: &PrivateKeySigner) -> String {
    let message = challenge_at(url).await.message(signer.address());
    let response = post_sign_in_at(url, message, signer).await;
    assert_eq!(response.status(), StatusCode::OK);
    let session: SessionView = response.json().await.unwrap();
    assert_eq!(session.address, signer.address());
    session.token.unwrap()
}

async fn refusal(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: ApiErrorBody = response.json().await.unwrap();
    (status, body.code)
}

#[tokio::test]
async fn sign_in_with_ethereum_checks_domain_uri_chain_nonce_time_and_signer() {
    let setup = setup(HealthPolicy::default()).await;
    let http = reqwest::Client::new();
    let (artist, mallory) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let session_of = |token: Option<&str>, cookie: Option<&str>| {
        let mut request = http.get(format!("{}/api/v1/auth/session", setup.gateway.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, format!("lumen_session={cookie}"));
        }
        request.send()
    };

    // The challenge names this gateway and its chain.
    let good = challenge(&setup).await;
    assert_eq!(good.uri, setup.gateway.url);
    assert_eq!(good.domain, setup.gateway.url.trim_start_matches("http://"));
    assert_eq!(good.chain_id, setup.chain.deployment.chain_id);

    // Signed by another key than the address the message names.
    let response = post_sign_in(&setup, good.message(artist.address()), &mallory).await;
    assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, "bad_signature".into()));

    // Another domain, URI or chain: a message phished for another site.
    for (wrong, code) in [
        (SiweChallenge { domain: "evil.example".into(), ..good.clone() }, "wrong_domain"),
        (SiweChallenge { uri: "https://evil.example".into(), ..good.clone() }, "wrong_uri"),
        (SiweChallenge { chain_id: 1, ..good.clone() }, "wrong_chain"),
    ] {
        let response = post_sign_in(&setup, wrong.message(artist.address()), &artist).await;
        assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, code.into()), "{wrong:?}");
    }
    // A nonce the gateway did not issue (one digit changed), or none of ours.
    let mut forged = good.nonce.clone().into_bytes();
    forged[20] = if forged[20] == b'0' { b'1' } else { b'0' };
    for nonce in [String::from_utf8(forged).unwrap(), "abcdefgh12345678".into()] {
        let wrong = SiweChallenge { nonce, ..good.clone() };
        let response = post_sign_in(&setup, wrong.message(artist.address()), &artist).await;
        assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, "bad_nonce".into()));
    }
    // Issued an hour ago, or already expired.
    let old = SiweChallenge { issued_at: "2026-01-01T00:00:00Z".into(), ..good.clone() };
    let response = post_sign_in(&setup, old.message(artist.address()), &artist).await;
    assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, "bad_time".into()));
    let expired = SiweChallenge { expiration_time: "2026-01-01T00:00:00Z".into(), ..good.clone() };
    let response = post_sign_in(&setup, expired.message(artist.address()), &artist).await;
    assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, "bad_time".into()));
    // Not a message at all.
    let response = post_sign_in(&setup, "sign me in please".into(), &artist).await;
    assert_eq!(refusal(response).await, (StatusCode::BAD_REQUEST, "bad_message".into()));

    // The real thing: a session, as a bearer token and an HttpOnly, SameSite cookie.
    let response = post_sign_in(&setup, good.message(artist.address()), &artist).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("lumen_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session: SessionView = response.json().await.unwrap();
    let token = session.token.clone().unwrap();
    assert_eq!(session.address, artist.address());
    assert!(session.expires_at_ms > now_ms() + 3_600_000);
    // The database keeps only the token's hash.
    assert!(
        setup.store.session(B256::from(*blake3::hash(token.as_bytes()).as_bytes())).await.unwrap().is_some()
    );

    // A nonce signs in once.
    let response = post_sign_in(&setup, good.message(artist.address()), &artist).await;
    assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, "nonce_used".into()));

    for (token, cookie) in [(Some(token.as_str()), None), (None, Some(token.as_str()))] {
        let view: SessionView = session_of(token, cookie).await.unwrap().json().await.unwrap();
        assert_eq!(view.address, artist.address());
    }
    assert_eq!(session_of(None, None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_of(Some("not-a-session"), None).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // A page of another site cannot act with the cookie.
    let logout = format!("{}/api/v1/auth/logout", setup.gateway.url);
    let response = http
        .post(&logout)
        .header(header::COOKIE, format!("lumen_session={token}"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(response).await, (StatusCode::FORBIDDEN, "cross_origin".into()));
    assert_eq!(session_of(Some(&token), None).await.unwrap().status(), StatusCode::OK);

    // Signing out ends the session.
    let response = http.post(&logout).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(session_of(Some(&token), None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// Uploads a real `.blend` (64×36, frames 1..=6) as the holder of `token`.
async fn upload_blend(setup: &Setup, token: Option<&str>, bytes: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(format!("{}/api/v1/blends", setup.gateway.url)).body(bytes);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn get(setup: &Setup, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}{path}", setup.gateway.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// A PNG of the job's 64×36 size.
fn frame_png(shade: u8) -> Vec<u8> {
    let image =
        image::RgbaImage::from_fn(64, 36, |x, y| image::Rgba([shade, (x * 4) as u8, (y * 7) as u8, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn private_resources_answer_401_to_strangers_and_403_to_other_wallets() {
    let setup = setup(HealthPolicy::default()).await;
    let (artist, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (mine, theirs) = (sign_in(&setup, &artist).await, sign_in(&setup, &other).await);

    // Uploading needs a session; the uploader may read the file back, no one else.
    let dir = tempfile::tempdir().unwrap();
    let blend_path = dir.path().join("scene.blend");
    let blender = lumen_blender::Blender::locate().unwrap();
    lumen_blender::sample::make_scene(&blender, &lumen_blender::sample::SampleScene::tiny(), &blend_path)
        .await
        .unwrap();
    let bytes = std::fs::read(&blend_path).unwrap();
    let response = upload_blend(&setup, None, bytes.clone()).await;
    assert_eq!(refusal(response).await, (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    let response = upload_blend(&setup, Some(&mine), bytes.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let blend = ContentHash::of(&bytes);
    let blob = format!("/api/v1/blobs/{blend}");
    assert_eq!(get(&setup, &blob, None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&setup, &blob, Some(&theirs)).await.status(), StatusCode::FORBIDDEN);
    let response = get(&setup, &blob, Some(&mine)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), bytes);
    // The uploader may ask whether it uploaded a file before (a page then
    // skips the upload); for anyone else the file does not exist.
    let summary = format!("/api/v1/blends/{blend}");
    let again: lumen_protocol::api::UploadedBlend =
        get(&setup, &summary, Some(&mine)).await.json().await.unwrap();
    assert_eq!((again.hash, again.size), (blend, bytes.len() as u64));
    // What inspection read, as recorded in the store: the tiny scene's 4 samples.
    assert_eq!((again.scene.width, again.scene.height, again.scene.samples), (64, 36, Some(4)));
    assert_eq!(get(&setup, &summary, Some(&theirs)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&setup, &summary, None).await.status(), StatusCode::UNAUTHORIZED);
    let unknown = format!("/api/v1/blends/{}", ContentHash::of(b"never uploaded"));
    assert_eq!(get(&setup, &unknown, Some(&mine)).await.status(), StatusCode::NOT_FOUND);

    // The artist's job, rendering; one frame verified by node A, not paid yet.
    let job_id = JobId(1);
    let job = lumen_store::NewJob { artist: artist.address(), ..lumen_testkit::new_job(job_id, blend, 2) };
    setup.store.insert_job(&job).await.unwrap();
    setup.store.transition_job(job_id, JobState::AwaitingChain, JobState::Rendering, None).await.unwrap();
    let (node_a, node_b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    bind_node(&setup, &node_a).await;
    bind_node(&setup, &node_b).await;
    let session_of = |socket_welcome| match socket_welcome {
        lumen_protocol::ws::ServerMessage::Welcome { session, .. } => session,
        other => panic!("expected a welcome, got {other:?}"),
    };
    let mut ws_a = connect(&setup, &node_a, node_a.address()).await;
    let node_a_session = session_of(server_message(&mut ws_a).await);
    let mut ws_b = connect(&setup, &node_b, node_b.address()).await;
    let node_b_session = session_of(server_message(&mut ws_b).await);

    // Nodes read the .blend only while they run a task of a job of it.
    assert_eq!(get(&setup, &blob, Some(&node_a_session)).await.status(), StatusCode::FORBIDDEN);
    let task = setup
        .store
        .claim_render(
            job_id,
            FrameIndex(0),
            &lumen_testkit::renderer(node_a.address()),
            TaskRole::Primary,
            now_ms() + 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get(&setup, &blob, Some(&node_a_session)).await.status(), StatusCode::OK);
    assert_eq!(get(&setup, &blob, Some(&node_b_session)).await.status(), StatusCode::FORBIDDEN);

    // Node A uploads image bytes only, for its own running task.
    let upload = |token: String, body: Vec<u8>| {
        let url = format!("{}/api/v1/tasks/{}/output", setup.gateway.url, task.task_id);
        async move { reqwest::Client::new().put(url).bearer_auth(token).body(body).send().await.unwrap() }
    };
    let response = upload(node_a_session.clone(), b"#!/bin/sh\nrm -rf /\n".to_vec()).await;
    assert_eq!(refusal(response).await, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image".into()));
    let response = upload(node_b_session.clone(), frame_png(1)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let frame = frame_png(90);
    assert_eq!(upload(node_a_session.clone(), frame.clone()).await.status(), StatusCode::OK);
    let output = ContentHash::of(&frame);
    assert!(setup.store.record_result(task.task_id, output, &Default::default(), 1.0).await.unwrap());
    // The public's aggregates before the verdict (the gateway keeps them until the network moves).
    let stats: NetworkStats = get(&setup, "/api/v1/stats", None).await.json().await.unwrap();
    assert_eq!(stats.frames_verified, 0);
    assert!(setup.store.record_verdict(task.task_id, &Verdict::Accepted).await.unwrap());
    // Once the task is over, node A reads the .blend no more.
    assert_eq!(get(&setup, &blob, Some(&node_a_session)).await.status(), StatusCode::FORBIDDEN);

    // The job, its list, its frames: the artist's alone.
    let job_path = format!("/api/v1/jobs/{job_id}");
    let frame_path = format!("{job_path}/frames/1");
    let preview_path = format!("{frame_path}/preview");
    for path in [job_path.as_str(), "/api/v1/jobs", &frame_path, &preview_path] {
        assert_eq!(get(&setup, path, None).await.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            get(&setup, path, Some(&node_a_session)).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    for path in [job_path.as_str(), &frame_path, &preview_path] {
        assert_eq!(get(&setup, path, Some(&theirs)).await.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let listed: Vec<JobView> = get(&setup, "/api/v1/jobs", Some(&theirs)).await.json().await.unwrap();
    assert!(listed.is_empty());
    let listed: Vec<JobView> = get(&setup, "/api/v1/jobs", Some(&mine)).await.json().await.unwrap();
    assert_eq!(listed.iter().map(|j| j.job_id).collect::<Vec<_>>(), [job_id]);
    // The public sees aggregates only, counted again as soon as the verdict moved the network.
    let stats: NetworkStats = get(&setup, "/api/v1/stats", None).await.json().await.unwrap();
    assert_eq!((stats.artists, stats.frames_verified, stats.frames_paid), (1, 1, 0));
    assert_eq!(stats.jobs.get("rendering"), Some(&1));

    // Verified but not paid: no full frame, even to the artist; the preview
    // is made by the verifier (here: by its function, on the same bytes).
    let response = get(&setup, &frame_path, Some(&mine)).await;
    assert_eq!(refusal(response).await, (StatusCode::PAYMENT_REQUIRED, "not_paid".into()));
    let response = get(&setup, &format!("{job_path}/frames.zip"), Some(&mine)).await;
    assert_eq!(refusal(response).await, (StatusCode::PAYMENT_REQUIRED, "not_paid".into()));
    let preview = lumen_verifier::preview::make_preview(&frame, 64, 36).unwrap();
    let preview_hash = setup.store.put_blob(&preview).await.unwrap();
    setup.store.record_preview(output, preview_hash).await.unwrap();
    let view: JobView = get(&setup, &job_path, Some(&mine)).await.json().await.unwrap();
    assert!(view.frames[0].preview && !view.frames[1].preview);
    let response = get(&setup, &preview_path, Some(&mine)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "private, no-store");
    let shown = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((shown.width(), shown.height()), (16, 9));

    // Paid on-chain (the mirror has the release): the full frame.
    let released = MirroredEvent {
        block_number: 5,
        log_index: 0,
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: B256::repeat_byte(5),
        tx_hash: B256::repeat_byte(6),
        event: ChainEvent::FramesReleased {
            job_id,
            node: node_a.address(),
            owner: Address::repeat_byte(4),
            frames: FrameWord { index: 0, bits: U256::from(1) },
            amount: Wei::from(1u128),
            fee: Wei::ZERO,
        },
    };
    let cursor =
        lumen_store::Cursor { name: "escrow".into(), block_number: 5, block_hash: B256::repeat_byte(5) };
    setup.store.apply_chain_batch(&[released], &cursor).await.unwrap();
    assert_eq!(get(&setup, &frame_path, Some(&theirs)).await.status(), StatusCode::FORBIDDEN);
    let response = get(&setup, &frame_path, Some(&mine)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), frame);

    // Every paid frame as one archive: the artist's only.
    let archive = format!("{job_path}/frames.zip");
    assert_eq!(get(&setup, &archive, None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&setup, &archive, Some(&theirs)).await.status(), StatusCode::FORBIDDEN);
    let response = get(&setup, &archive, Some(&mine)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/zip");
    let bytes = response.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(zip.len(), 1, "the one paid frame");
    let mut entry = zip.by_index(0).unwrap();
    assert_eq!(entry.name().unwrap(), "00001.png");
    let mut inside = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut inside).unwrap();
    assert_eq!(inside, frame);
}
