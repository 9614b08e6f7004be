//! The node process side that needs no gateway.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use lumen_node::{NodeConfig, health::Health};

#[tokio::test]
async fn health_reports_degraded_while_the_gateway_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback: every connect attempt fails.
    let mut config = NodeConfig::new("ws://127.0.0.1:9/ws/node", dir.path().to_owned());
    config.health_addr = "127.0.0.1:0".parse().unwrap();
    let node = lumen_node::spawn(config, PrivateKeySigner::random()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health: Health =
        reqwest::get(format!("http://{}/health", node.health_addr)).await.unwrap().json().await.unwrap();
    assert_eq!(health.status, "degraded");
    assert!(!health.relay_connected);
    assert_eq!(health.node, node.address);
    assert_eq!(health.running, 0);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn gateway_urls_must_be_websockets() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::new("http://127.0.0.1:9", dir.path().to_owned());
    let err = lumen_node::spawn(config, PrivateKeySigner::random()).await.unwrap_err();
    assert!(err.to_string().contains("ws://"), "{err}");
}
