//! The composition of the services, against a real Anvil and a real store.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use futures::StreamExt;
use lumen_protocol::{Deployment, ws::ServerMessage};
use lumen_stack::{LumenConfig, Services, StackDeps, StackError};
use lumen_store::{Bus, Store};
use lumen_testkit::TestChain;
use tokio_tungstenite::tungstenite::Message;

async fn deps(chain: &TestChain, dir: &std::path::Path) -> StackDeps {
    StackDeps {
        deployment: Some(chain.deployment.clone().with_rpc_url(chain.rpc_url())),
        store: Store::open(dir).await.unwrap(),
        bus: Bus::new(),
        settler: Some(chain.settler()),
    }
}

#[tokio::test]
async fn the_whole_stack_serves_and_its_shutdown_closes_node_sessions() {
    let chain = TestChain::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = LumenConfig::test(dir.path().to_owned());
    let stack = lumen_stack::spawn(&config, Services::ALL, deps(&chain, dir.path()).await).await.unwrap();
    assert_eq!(stack.services(), ["gateway", "matchmaker", "verifier", "indexer"]);
    let url = stack.gateway_url().unwrap().to_owned();
    let info: Deployment = reqwest::get(format!("{url}/api/v1/info")).await.unwrap().json().await.unwrap();
    assert_eq!(info.escrow, chain.deployment.escrow);
    assert_eq!(info.rpc_url.as_deref(), Some(chain.rpc_url().as_str()));

    // A node session in progress (challenged, not yet answered) is closed
    // with 1001 by the shutdown, which waits for it.
    let (mut socket, _) = tokio_tungstenite::connect_async(stack.ws_url().unwrap()).await.unwrap();
    let Some(Ok(Message::Text(challenge))) = socket.next().await else { panic!("no challenge") };
    assert!(matches!(lumen_protocol::ws::decode(&challenge).unwrap(), ServerMessage::Challenge { .. }));
    let addr = stack.gateway_addr().unwrap();
    let stopping = tokio::spawn(stack.shutdown());
    let close = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), stopping).await.unwrap().unwrap().unwrap();
    // The port is free again: nothing of the gateway is left running.
    std::net::TcpListener::bind(addr).unwrap();
}

#[tokio::test]
async fn a_wrong_deployment_fails_the_start_and_stops_what_had_started() {
    let chain = TestChain::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut deps = deps(&chain, dir.path()).await;
    let deployment = deps.deployment.as_mut().unwrap();
    deployment.escrow = alloy::primitives::Address::repeat_byte(0x77);
    // Take a port and let the stack use it, so the test can see it freed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = LumenConfig::test(dir.path().to_owned());
    config.gateway.listen = addr;
    let err = lumen_stack::spawn(&config, Services::ALL, deps).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StackError::Indexer(lumen_indexer::IndexerError::NoContract { name: "RenderEscrow", .. })
        ),
        "{err}"
    );
    std::net::TcpListener::bind(addr).unwrap();
}

#[tokio::test]
async fn a_service_that_keeps_failing_stops_and_its_error_is_reported() {
    let chain = TestChain::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deps = deps(&chain, dir.path()).await;
    let mut config = LumenConfig::test(dir.path().to_owned());
    config.verifier.poll_ms = 10;
    let mut stack = lumen_stack::spawn(&config, Services::VERIFIER, deps).await.unwrap();

    // Break the database under the verifier: not an error retrying can fix.
    let db = format!("sqlite://{}", dir.path().join("lumen.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("DROP TABLE tasks").execute(&pool).await.unwrap();

    let name = tokio::time::timeout(Duration::from_secs(30), stack.stopped()).await.unwrap();
    assert_eq!(name, "verifier");
    let err = stack.shutdown().await.unwrap_err();
    let StackError::Failed(failures) = &err else { panic!("{err}") };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].service(), "verifier");
    assert!(err.to_string().contains("tasks"), "{err}");
}
