//! The gateway's checks on results: assignment, uploaded bytes, signature.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use lumen_chain::sign::{FrameResult, result_digest, sign_digest};
use lumen_protocol::{
    Address, ContentHash, FrameIndex, FrameState, JobId, JobState, TaskId, TaskRole, TaskState, content_hash,
    node::HealthPolicy,
    ws::{NodeMessage, ServerMessage},
};
use lumen_store::{TaskRow, now_ms};

use crate::ws::{Setup, Socket, bind_node, connect, send, server_message, setup};

async fn welcome(setup: &Setup, key: &PrivateKeySigner) -> (Socket, String) {
    bind_node(setup, key).await;
    let mut socket = connect(setup, key, key.address()).await;
    let ServerMessage::Welcome { session, .. } = server_message(&mut socket).await else { panic!("welcome") };
    (socket, session)
}

async fn result(setup: &Setup, key: &PrivateKeySigner, task_id: TaskId, hash: ContentHash) -> NodeMessage {
    let d = &setup.chain.deployment;
    let digest = result_digest(
        &FrameResult { jobId: U256::from(1), frameIndex: 0, outputHash: hash.to_b256() },
        d.chain_id,
        d.escrow,
    );
    NodeMessage::TaskResult {
        task_id,
        job_id: JobId(1),
        frame_index: FrameIndex(0),
        output_hash: hash,
        signature: sign_digest(key, digest).await.unwrap(),
        render_secs: 1.0,
    }
}

async fn ack(socket: &mut Socket) -> (bool, String) {
    match server_message(socket).await {
        ServerMessage::ResultAck { accepted, reason, .. } => (accepted, reason.unwrap_or_default()),
        other => panic!("expected a result ack, got {other:?}"),
    }
}

/// The start of a PNG: what the gateway takes as image bytes (the verifier
/// decodes the rest).
const FRAME: &[u8] = b"\x89PNG\r\n\x1a\nnot really a frame";

async fn upload(setup: &Setup, task_id: TaskId, token: &str, bytes: &'static [u8]) -> reqwest::StatusCode {
    reqwest::Client::new()
        .put(format!("{}/api/v1/tasks/{task_id}/output", setup.gateway.url))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn results_must_be_assigned_match_the_upload_and_be_signed_by_the_node() {
    let setup = setup(HealthPolicy::default()).await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (mut alice_ws, alice_session) = welcome(&setup, &alice).await;
    let (mut bob_ws, bob_session) = welcome(&setup, &bob).await;

    let blend = setup.store.put_blob(b"BLENDER-v304 not really a scene").await.unwrap();
    setup.store.insert_job(&lumen_testkit::new_job(JobId(1), blend, 1)).await.unwrap();
    setup.store.transition_job(JobId(1), JobState::AwaitingChain, JobState::Rendering, None).await.unwrap();
    let task = claim(&setup, alice.address()).await;
    let task_id = task.task_id;

    // Uploads need the assigned node's session.
    assert_eq!(upload(&setup, task.task_id, "bogus", FRAME).await, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(upload(&setup, task.task_id, &bob_session, FRAME).await, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(upload(&setup, task.task_id, &alice_session, FRAME).await, reqwest::StatusCode::OK);

    // Bob cannot report Alice's task; the task is untouched.
    send(&mut bob_ws, &result(&setup, &bob, task_id, content_hash(FRAME)).await).await;
    let (accepted, reason) = ack(&mut bob_ws).await;
    assert!(!accepted && reason.contains("not assigned"), "{reason}");
    assert_eq!(setup.store.task(task.task_id).await.unwrap().unwrap().state, TaskState::Running);

    // A hash that is not the uploaded bytes' is refused and ends the attempt.
    send(&mut alice_ws, &result(&setup, &alice, task_id, content_hash(b"other bytes")).await).await;
    let (accepted, reason) = ack(&mut alice_ws).await;
    assert!(!accepted && reason.contains("does not match the uploaded bytes"), "{reason}");
    let ended = setup.store.task(task.task_id).await.unwrap().unwrap();
    assert_eq!((ended.state, ended.failure_code.as_deref()), (TaskState::Failed, Some("hash_mismatch")));
    assert_eq!(setup.store.frame(JobId(1), FrameIndex(0)).await.unwrap().unwrap().state, FrameState::Pending);

    // A correct upload signed by the node is taken.
    let task = claim(&setup, alice.address()).await;
    let task_id = task.task_id;
    assert_eq!(upload(&setup, task.task_id, &alice_session, FRAME).await, reqwest::StatusCode::OK);
    send(&mut alice_ws, &result(&setup, &alice, task_id, content_hash(FRAME)).await).await;
    assert_eq!(ack(&mut alice_ws).await, (true, String::new()));
    assert_eq!(setup.store.task(task.task_id).await.unwrap().unwrap().state, TaskState::Uploaded);
    let frame = setup.store.frame(JobId(1), FrameIndex(0)).await.unwrap().unwrap();
    assert_eq!(frame.state, FrameState::Verifying);
    assert_eq!(frame.output_hash, Some(content_hash(FRAME)));
}

async fn claim(setup: &Setup, node: Address) -> TaskRow {
    setup
        .store
        .claim_render(
            JobId(1),
            FrameIndex(0),
            &lumen_testkit::renderer(node),
            TaskRole::Primary,
            now_ms() + 60_000,
        )
        .await
        .unwrap()
        .unwrap()
}
