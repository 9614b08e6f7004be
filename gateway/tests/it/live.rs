//! The live job view: server-sent events to the job's artist only.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use lumen_protocol::{FrameIndex, FrameState, JobId, JobState, TaskRole, api::JobView, node::HealthPolicy};
use reqwest::{StatusCode, header};

use crate::{
    access::sign_in,
    ws::{Setup, setup},
};

async fn open(setup: &Setup, job: JobId, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/v1/jobs/{job}/events", setup.gateway.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The next `event: job` of a stream, parsed; `buffer` keeps what was read past it.
async fn next_view(stream: &mut reqwest::Response, buffer: &mut String) -> JobView {
    next_event(stream, buffer, "job").await
}

/// The next server-sent event named `name` of a stream, its data parsed;
/// `buffer` keeps what was read past it.
pub(crate) async fn next_event<T: serde::de::DeserializeOwned>(
    stream: &mut reqwest::Response,
    buffer: &mut String,
    name: &str,
) -> T {
    let line = format!("event: {name}");
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.lines().any(|l| l == line) {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                    .collect();
                return serde_json::from_str(&data).unwrap();
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn a_job_page_gets_its_view_then_every_change_and_no_one_else_gets_it() {
    let setup = setup(HealthPolicy::default()).await;
    let (artist, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (mine, theirs) = (sign_in(&setup, &artist).await, sign_in(&setup, &other).await);
    let job_id = JobId(1);
    let blend = setup.store.put_blob(b"scene").await.unwrap();
    let job = lumen_store::NewJob { artist: artist.address(), ..lumen_testkit::new_job(job_id, blend, 2) };
    setup.store.insert_job(&job).await.unwrap();
    setup.store.transition_job(job_id, JobState::AwaitingChain, JobState::Rendering, None).await.unwrap();

    assert_eq!(open(&setup, job_id, &theirs).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(open(&setup, JobId(9), &mine).await.status(), StatusCode::NOT_FOUND);
    let unauthenticated =
        reqwest::get(format!("{}/api/v1/jobs/{job_id}/events", setup.gateway.url)).await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let mut stream = open(&setup, job_id, &mine).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut buffer = String::new();
    let first = next_view(&mut stream, &mut buffer).await;
    assert_eq!(first.state, JobState::Rendering);
    assert!(first.frames.iter().all(|f| f.state == FrameState::Pending));

    // A frame starts rendering (changed in the database, no bus event: as
    // when the matchmaker runs in another process): the page hears of it.
    setup
        .store
        .claim_render(
            job_id,
            FrameIndex(1),
            &lumen_testkit::renderer(alloy::primitives::Address::repeat_byte(7)),
            TaskRole::Primary,
            lumen_store::now_ms() + 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    let second = next_view(&mut stream, &mut buffer).await;
    assert_eq!(second.frames[1].state, FrameState::Rendering, "{second:?}");
    assert_eq!(second.frames[0].state, FrameState::Pending);

    // A few tabs at most per artist: the ninth stream is refused.
    let mut more = Vec::new();
    for _ in 1..8 {
        let s = open(&setup, job_id, &mine).await;
        assert_eq!(s.status(), StatusCode::OK);
        more.push(s);
    }
    assert_eq!(open(&setup, job_id, &mine).await.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(more);
    // Closed streams give their slots back (once the server notices).
    let started = std::time::Instant::now();
    loop {
        let s = open(&setup, job_id, &mine).await;
        if s.status() == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "slots never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_job_spec_typed_data_a_wallet_signs_hashes_to_the_spec_hash_the_gateway_checks() {
    use alloy::primitives::{Address, B256, U256};
    use lumen_protocol::eip712::{JobSpec, spec_hash};

    let setup = setup(HealthPolicy::default()).await;
    let typed: serde_json::Value = reqwest::get(format!("{}/api/v1/typed-data/job-spec", setup.gateway.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spec = JobSpec {
        blendHash: B256::repeat_byte(3),
        frameStart: -2,
        frameEnd: 40,
        frameStep: 2,
        width: 1920,
        height: 1080,
        engine: "CYCLES".into(),
        token: Address::repeat_byte(9),
        pricePerFrame: 1_000_000_000_000_000,
        salt: U256::from(77),
    };
    // What a page sends to eth_signTypedData_v4: the gateway's domain and
    // types, and the spec as the message (numbers as decimal strings).
    let mut request = typed.clone();
    request["message"] = serde_json::json!({
        "blendHash": spec.blendHash,
        "frameStart": spec.frameStart,
        "frameEnd": spec.frameEnd,
        "frameStep": spec.frameStep,
        "width": spec.width,
        "height": spec.height,
        "engine": spec.engine,
        "token": spec.token,
        "pricePerFrame": spec.pricePerFrame.to_string(),
        "salt": spec.salt.to_string(),
    });
    let data: alloy_dyn_abi::TypedData = serde_json::from_value(request).unwrap();
    let d = &setup.chain.deployment;
    assert_eq!(data.eip712_signing_hash().unwrap(), spec_hash(&spec, d.chain_id, d.escrow));
    assert_eq!(typed["domain"]["chainId"], d.chain_id);
}
