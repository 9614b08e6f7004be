//! Challenge-signature auth, heartbeats and close codes.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::U256,
    signers::{Signer, local::PrivateKeySigner},
};
use futures::{SinkExt, StreamExt};
use lumen_chain::{bind, contracts::NodeRegistry, deploy::confirmed};
use lumen_gateway::{GatewayConfig, GatewayDeps, GatewayHandle, NodeDirectory};
use lumen_protocol::{
    auth::challenge_message,
    node::{HealthPolicy, NodeState},
    ws::{self, Capabilities, NodeMessage, ServerMessage},
};
use lumen_store::{Bus, Store};
use lumen_testkit::TestChain;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Setup {
    pub(crate) chain: TestChain,
    pub(crate) gateway: GatewayHandle,
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    _dir: tempfile::TempDir,
}

pub(crate) async fn setup(health: HealthPolicy) -> Setup {
    setup_with(GatewayConfig { health, ..GatewayConfig::test() }).await
}

pub(crate) async fn setup_with(config: GatewayConfig) -> Setup {
    let health = config.health;
    let chain = TestChain::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let bus = Bus::new();
    let deps = GatewayDeps {
        chain: chain.deployment.clone().with_rpc_url(chain.rpc_url()),
        store: store.clone(),
        bus: bus.clone(),
        nodes: Arc::new(NodeDirectory::new(health)),
    };
    let gateway = lumen_gateway::spawn(config, deps).await.unwrap();
    Setup { chain, gateway, store, bus, _dir: dir }
}

pub(crate) async fn bind_node(setup: &Setup, node: &PrivateKeySigner) {
    let owner = setup.chain.account(4);
    let provider = setup.chain.provider(&owner);
    let registry = NodeRegistry::new(setup.chain.deployment.registry, &provider);
    let nonce = registry.nonces(node.address()).call().await.unwrap();
    let deadline = U256::from(u64::MAX);
    let d = &setup.chain.deployment;
    let sig = bind::sign(node, owner.address(), nonce, deadline, d.chain_id, d.registry).await.unwrap();
    confirmed(
        registry.register(node.address(), deadline, sig).send().await.unwrap().get_receipt().await.unwrap(),
    )
    .unwrap();
}

async fn next(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap().unwrap().unwrap()
}

pub(crate) async fn server_message(socket: &mut Socket) -> ServerMessage {
    match next(socket).await {
        Message::Text(text) => ws::decode(&text).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

pub(crate) async fn send(socket: &mut Socket, msg: &NodeMessage) {
    socket.send(Message::Text(ws::encode(msg).into())).await.unwrap();
}

pub(crate) async fn close_code(socket: &mut Socket) -> (u16, String) {
    loop {
        match next(socket).await {
            Message::Close(Some(frame)) => return (u16::from(frame.code), frame.reason.to_string()),
            Message::Close(None) => panic!("closed without a code"),
            _ => {}
        }
    }
}

/// Connects and answers the challenge, signing with `signer` but claiming `claimed`.
pub(crate) async fn connect(
    setup: &Setup,
    signer: &PrivateKeySigner,
    claimed: alloy::primitives::Address,
) -> Socket {
    connect_with(setup, signer, claimed, capabilities()).await
}

fn capabilities() -> Capabilities {
    Capabilities {
        job_types: vec!["render".into()],
        blender_version: "3.4.1".into(),
        gpu: false,
        memory_mb: 2048,
        slots: 1,
        opengl: Some("llvmpipe (LLVM 15.0.6, 256 bits); 4.5 (Core Profile) Mesa 22.3.6".into()),
    }
}

async fn connect_with(
    setup: &Setup,
    signer: &PrivateKeySigner,
    claimed: alloy::primitives::Address,
    capabilities: Capabilities,
) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(setup.gateway.ws_url()).await.unwrap();
    let ServerMessage::Challenge { nonce, chain_id, gateway } = server_message(&mut socket).await else {
        panic!("expected a challenge");
    };
    assert_eq!(gateway, setup.gateway.url);
    let text = challenge_message(&gateway, chain_id, &nonce);
    let signature = signer.sign_message(text.as_bytes()).await.unwrap();
    let auth = NodeMessage::Auth {
        node: claimed,
        signature: signature.as_bytes().to_vec().into(),
        capabilities,
        client_version: "test".into(),
    };
    send(&mut socket, &auth).await;
    socket
}

#[tokio::test]
async fn an_unbound_key_is_refused_with_4001() {
    let setup = setup(HealthPolicy::default()).await;
    let stranger = PrivateKeySigner::random();
    let mut socket = connect(&setup, &stranger, stranger.address()).await;
    let (code, reason) = close_code(&mut socket).await;
    assert_eq!(code, ws::CLOSE_AUTH_FAILED);
    assert!(reason.contains("not registered"), "{reason}");
}

#[tokio::test]
async fn oversized_capabilities_are_refused_with_4001() {
    let setup = setup(HealthPolicy::default()).await;
    let node = PrivateKeySigner::random();
    bind_node(&setup, &node).await;
    let hostile = [
        Capabilities { opengl: Some("x".repeat(ws::MAX_OPENGL_CHARS + 1)), ..capabilities() },
        Capabilities { blender_version: "3".repeat(ws::MAX_VERSION_CHARS + 1), ..capabilities() },
        Capabilities { job_types: vec!["render".into(); ws::MAX_JOB_TYPES + 1], ..capabilities() },
    ];
    for caps in hostile {
        let mut socket = connect_with(&setup, &node, node.address(), caps).await;
        let (code, reason) = close_code(&mut socket).await;
        assert_eq!(code, ws::CLOSE_AUTH_FAILED);
        assert!(reason.contains("capabilities refused"), "{reason}");
    }
    // The same node with sane capabilities is welcome.
    let mut socket = connect(&setup, &node, node.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused_with_4001() {
    let setup = setup(HealthPolicy::default()).await;
    let node = PrivateKeySigner::random();
    bind_node(&setup, &node).await;
    let impostor = PrivateKeySigner::random();
    let mut socket = connect(&setup, &impostor, node.address()).await;
    let (code, reason) = close_code(&mut socket).await;
    assert_eq!(code, ws::CLOSE_AUTH_FAILED);
    assert!(reason.contains("signature is from"), "{reason}");
}

#[tokio::test]
async fn a_bound_node_is_welcomed_becomes_healthy_and_bad_messages_close_with_4003() {
    let setup = setup(HealthPolicy::default()).await;
    let node = PrivateKeySigner::random();
    bind_node(&setup, &node).await;
    let mut socket = connect(&setup, &node, node.address()).await;
    let ServerMessage::Welcome { node: welcomed, owner, session, .. } = server_message(&mut socket).await
    else {
        panic!("expected welcome");
    };
    assert_eq!(welcomed, node.address());
    assert_eq!(owner, setup.chain.account(4).address());
    assert_eq!(session.len(), 64);

    send(&mut socket, &NodeMessage::Heartbeat { running: 0 }).await;
    assert_eq!(server_message(&mut socket).await, ServerMessage::HeartbeatAck { state: NodeState::Healthy });

    socket.send(Message::Text(r#"{"v":1,"type":"give_me_money"}"#.into())).await.unwrap();
    let (code, _) = close_code(&mut socket).await;
    assert_eq!(code, ws::CLOSE_PROTOCOL_ERROR);
}

#[tokio::test]
async fn steady_heartbeats_wake_nobody() {
    let setup = setup(HealthPolicy::default()).await;
    let node = PrivateKeySigner::random();
    bind_node(&setup, &node).await;
    let mut socket = connect(&setup, &node, node.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
    send(&mut socket, &NodeMessage::Heartbeat { running: 0 }).await;
    assert_eq!(server_message(&mut socket).await, ServerMessage::HeartbeatAck { state: NodeState::Healthy });
    // From here the node stays healthy: its heartbeats publish no event
    // that would wake the matchmaker, the verifier and the indexer.
    let mut events = setup.bus.subscribe();
    for _ in 0..20 {
        send(&mut socket, &NodeMessage::Heartbeat { running: 0 }).await;
        assert_eq!(
            server_message(&mut socket).await,
            ServerMessage::HeartbeatAck { state: NodeState::Healthy }
        );
    }
    assert!(
        matches!(events.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Empty)),
        "a steady heartbeat published an event"
    );
}

#[tokio::test]
async fn a_silent_node_is_closed_with_4002() {
    let policy = HealthPolicy { heartbeat_timeout: Duration::from_secs(1), ..HealthPolicy::default() };
    let setup = setup(policy).await;
    let node = PrivateKeySigner::random();
    bind_node(&setup, &node).await;
    let mut socket = connect(&setup, &node, node.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
    let (code, reason) = close_code(&mut socket).await;
    assert_eq!(code, ws::CLOSE_HEARTBEAT_TIMEOUT);
    assert!(reason.contains("heartbeat"), "{reason}");
}
