//! The change feed: what moved on the network, pushed to anyone, so the
//! dashboard's pages reload on changes instead of polling.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use lumen_protocol::{
    JobId, JobState,
    api::Changes,
    node::HealthPolicy,
    ws::{NodeMessage, ServerMessage},
};
use reqwest::{StatusCode, header};

use crate::ws::{Setup, bind_node, connect, send, server_message, setup};

async fn open(setup: &Setup) -> reqwest::Response {
    reqwest::get(format!("{}/api/v1/changes", setup.gateway.url)).await.unwrap()
}

/// The next `event: changes` of a stream; `buffer` keeps what was read past it.
async fn next_changes(stream: &mut reqwest::Response, buffer: &mut String) -> Changes {
    crate::live::next_event(stream, buffer, "changes").await
}

/// Events until one whose `part` differs from `from`'s.
async fn until_moved(
    stream: &mut reqwest::Response,
    buffer: &mut String,
    from: &Changes,
    part: &str,
) -> Changes {
    loop {
        let next = next_changes(stream, buffer).await;
        if next.differing(from).contains(&part) {
            return next;
        }
    }
}

#[tokio::test]
async fn the_feed_tells_anyone_which_part_moved_and_nothing_when_nothing_did() {
    let setup = setup(HealthPolicy::default()).await;
    // The feed's loop stamps the network at start: wait for its first look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut stream = open(&setup).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut buffer = String::new();
    let first = next_changes(&mut stream, &mut buffer).await;
    assert!(!first.jobs.is_empty() && !first.chain.is_empty(), "{first:?}");
    assert_eq!(first.heartbeats, "", "no node has sent a heartbeat");

    // Nothing happens: nothing is sent but keep-alives (the minute may turn).
    let quiet = tokio::time::timeout(Duration::from_secs(5), next_changes(&mut stream, &mut buffer)).await;
    if let Ok(moved) = quiet {
        assert_eq!(moved.differing(&first), ["minute"], "{first:?} → {moved:?}");
    }

    // A job is written straight to the database (no bus event: as when the
    // matchmaker runs in another process): the jobs stamp moves, alone.
    let blend = setup.store.put_blob(b"scene").await.unwrap();
    setup.store.insert_job(&lumen_testkit::new_job(JobId(1), blend, 2)).await.unwrap();
    let after_job = until_moved(&mut stream, &mut buffer, &first, "jobs").await;
    assert_eq!(after_job.nodes, first.nodes);
    assert_eq!(after_job.chain, first.chain);
    setup.store.transition_job(JobId(1), JobState::AwaitingChain, JobState::Rendering, None).await.unwrap();
    let rendering = until_moved(&mut stream, &mut buffer, &after_job, "jobs").await;

    // A node connects and heartbeats: the nodes and heartbeats stamps move.
    let node = PrivateKeySigner::random();
    bind_node(&setup, &node).await;
    let mut socket = connect(&setup, &node, node.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
    let connected = until_moved(&mut stream, &mut buffer, &rendering, "nodes").await;
    send(&mut socket, &NodeMessage::Heartbeat { running: 0 }).await;
    server_message(&mut socket).await;
    let heard = until_moved(&mut stream, &mut buffer, &rendering, "heartbeats").await;
    assert_ne!(heard.heartbeats, "");
    // The registration was a transaction the indexer is not running to
    // mirror here: the chain stamp is the mirror's, and did not move.
    assert_eq!(connected.chain, first.chain);

    // A second reader gets the current stamps at once, not the first ones.
    let mut late = open(&setup).await;
    let mut late_buffer = String::new();
    let now = next_changes(&mut late, &mut late_buffer).await;
    assert_eq!(now.nodes, heard.nodes);
    assert_ne!(now.jobs, first.jobs);
}

#[tokio::test]
async fn feeds_are_capped_per_client_address() {
    let setup = setup(HealthPolicy::default()).await;
    let mut open_feeds = Vec::new();
    for _ in 0..64 {
        let feed = open(&setup).await;
        assert_eq!(feed.status(), StatusCode::OK);
        open_feeds.push(feed);
    }
    let refused = open(&setup).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams", "{body}");
    open_feeds.truncate(10);
    // Closed feeds give their slots back (once the server notices).
    let started = std::time::Instant::now();
    loop {
        if open(&setup).await.status() == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "slots never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
