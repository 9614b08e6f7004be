//! Earnings, statements and the leaderboard: public, computed from the
//! chain mirror, with uptime from the gateway's own records.

use alloy::primitives::{Address, B256, U256};
use lumen_protocol::{
    ChainEvent, JobId, MirroredEvent, Wei,
    api::ApiErrorBody,
    earnings::{Badge, Leaderboard, Month, NodeEarnings, OwnerEarnings, Statement, amount_of},
    event::FrameWord,
    node::HealthPolicy,
};
use reqwest::{StatusCode, header};

use crate::ws::{Setup, setup};

async fn get(setup: &Setup, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", setup.gateway.url)).await.unwrap()
}

fn at(block: u64, time: u64, event: ChainEvent) -> MirroredEvent {
    MirroredEvent {
        block_number: block,
        log_index: 0,
        entry: 0,
        block_time: time,
        block_hash: B256::repeat_byte(u8::try_from(block).unwrap()),
        tx_hash: B256::repeat_byte(0x70 + u8::try_from(block).unwrap()),
        event,
    }
}

#[tokio::test]
async fn earnings_statements_and_the_leaderboard_are_public_with_uptime_from_the_gateway() {
    let setup = setup(HealthPolicy::default()).await;
    let (owner, node, idle) = (Address::repeat_byte(4), Address::repeat_byte(7), Address::repeat_byte(8));
    let now = u64::try_from(lumen_store::now_ms() / 1_000).unwrap();
    let paid_at = now - 120;
    let opened = ChainEvent::JobOpened {
        job_id: JobId(1),
        artist: Address::repeat_byte(0xa),
        spec_hash: B256::repeat_byte(1),
        token: Address::ZERO,
        price_per_frame: Wei::from(1_000u128),
        frame_count: 2,
        verifications: 0,
        deadline: now + 3_600,
        opened_at: paid_at - 60,
        amount: Wei::from(2_000u128),
        fee_bps: 250,
    };
    let released = ChainEvent::FramesReleased {
        job_id: JobId(1),
        node,
        owner,
        frames: FrameWord { index: 0, bits: U256::from(0b11) },
        amount: Wei::from(2_000u128),
        fee: Wei::from(50u128),
    };
    let cursor =
        lumen_store::Cursor { name: "mirror:x".into(), block_number: 4, block_hash: B256::repeat_byte(4) };
    setup
        .store
        .apply_chain_batch(&[at(3, paid_at - 60, opened), at(4, paid_at, released)], &cursor)
        .await
        .unwrap();

    // Anyone may read them: no session.
    let nodes: Vec<NodeEarnings> = get(&setup, "/api/v1/earnings").await.json().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].node, nodes[0].owner, nodes[0].jobs_completed, nodes[0].credits),
        (node, owner, 2, 20)
    );
    assert_eq!(amount_of(&nodes[0].earned, Address::ZERO), Wei::from(1_950u128));
    let mine: OwnerEarnings =
        get(&setup, &format!("/api/v1/earnings/{owner:#x}")).await.json().await.unwrap();
    assert_eq!(mine.nodes, nodes);

    let month = Month::containing(paid_at);
    let path = format!("/api/v1/earnings/{owner:#x}/statements/{month}");
    let statement: Statement = get(&setup, &path).await.json().await.unwrap();
    assert_eq!(statement.lines.len(), 1);
    assert_eq!((statement.lines[0].frames, statement.lines[0].net), (2, Wei::from(1_950u128)));
    let csv = get(&setup, &format!("{path}?format=csv")).await;
    assert_eq!(csv.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("time,kind,job_id,node,token,frames"), "{csv}");
    assert_eq!(csv.lines().count(), 2, "{csv}");
    for (bad, code) in [
        (format!("/api/v1/earnings/{owner:#x}/statements/2026-13"), "bad_month"),
        ("/api/v1/earnings/0x12/statements/2026-01".to_owned(), "bad_address"),
        (format!("{path}?format=xml"), "bad_format"),
    ] {
        let response = get(&setup, &bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.json::<ApiErrorBody>().await.unwrap().code, code, "{bad}");
    }

    // Uptime is the gateway's record: `idle` was first seen an hour ago and
    // up for half of it; it rendered nothing.
    setup.store.note_first_seen(idle, i64::try_from((now - 3_600) * 1_000).unwrap()).await.unwrap();
    setup.store.record_uptime(&[idle], 1_800, now).await.unwrap();
    let board: Leaderboard = get(&setup, "/api/v1/leaderboard").await.json().await.unwrap();
    let rows: Vec<_> = board.entries.iter().map(|e| (e.rank, e.badge, e.node, e.jobs_completed)).collect();
    assert_eq!(rows, [(1, Some(Badge::Gold), node, 2), (2, Some(Badge::Silver), idle, 0)]);
    assert!((board.entries[1].uptime_percent - 50.0).abs() < 0.2, "{:?}", board.entries[1]);
    assert!(board.entries[0].uptime_percent.abs() < f64::EPSILON, "never seen by this gateway");
    // Served from its cache for a minute.
    setup.store.record_uptime(&[idle], 1_800, now).await.unwrap();
    let again: Leaderboard = get(&setup, "/api/v1/leaderboard").await.json().await.unwrap();
    assert_eq!(again, board);
}
