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

/// Job `job` of `frames` frames at 1,000 wei each, opened at `opened_at`.
fn job_opened(job: u64, frames: u32, opened_at: u64, deadline: u64) -> ChainEvent {
    ChainEvent::JobOpened {
        job_id: JobId(job),
        artist: Address::repeat_byte(0xa),
        spec_hash: B256::repeat_byte(u8::try_from(job).unwrap()),
        token: Address::ZERO,
        price_per_frame: Wei::from(1_000u128),
        frame_count: frames,
        verifications: 0,
        deadline,
        opened_at,
        amount: Wei::from(1_000 * u128::from(frames)),
        fee_bps: 250,
    }
}

/// The first `frames` frames of job `job` paid to `node` of `owner`, less the 2.5 % fee.
fn frames_released(job: u64, node: Address, owner: Address, frames: u32) -> ChainEvent {
    let amount = 1_000 * u128::from(frames);
    ChainEvent::FramesReleased {
        job_id: JobId(job),
        node,
        owner,
        frames: FrameWord { index: 0, bits: (U256::from(1) << frames) - U256::from(1) },
        amount: Wei::from(amount),
        fee: Wei::from(amount / 40),
    }
}

#[tokio::test]
async fn earnings_statements_and_the_leaderboard_are_public_with_uptime_from_the_gateway() {
    let setup = setup(HealthPolicy::default()).await;
    let (owner, node, idle) = (Address::repeat_byte(4), Address::repeat_byte(7), Address::repeat_byte(8));
    let now = u64::try_from(lumen_store::now_ms() / 1_000).unwrap();
    let paid_at = now - 120;
    let opened = job_opened(1, 2, paid_at - 60, now + 3_600);
    let released = frames_released(1, node, owner, 2);
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
    let minute =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 60;
    let asked_in = minute();
    let board: Leaderboard = get(&setup, "/api/v1/leaderboard").await.json().await.unwrap();
    let rows: Vec<_> = board.entries.iter().map(|e| (e.rank, e.badge, e.node, e.jobs_completed)).collect();
    assert_eq!(rows, [(1, Some(Badge::Gold), node, 2), (2, Some(Badge::Silver), idle, 0)]);
    assert!((board.entries[1].uptime_percent - 50.0).abs() < 0.2, "{:?}", board.entries[1]);
    assert!(board.entries[0].uptime_percent.abs() < f64::EPSILON, "never seen by this gateway");
    // Served from its cache for the rest of the clock minute (unless the
    // minute turned meanwhile: then it is computed again, with the new
    // half hour).
    setup.store.record_uptime(&[idle], 1_800, now).await.unwrap();
    let again: Leaderboard = get(&setup, "/api/v1/leaderboard").await.json().await.unwrap();
    if minute() == asked_in {
        assert_eq!(again, board);
    }
    // A payout shows as soon as it is mirrored, within the minute too.
    let second = job_opened(2, 1, now - 30, now + 3_600);
    let paid_idle = frames_released(2, idle, owner, 1);
    let cursor =
        lumen_store::Cursor { name: "mirror:x".into(), block_number: 6, block_hash: B256::repeat_byte(6) };
    setup
        .store
        .apply_chain_batch(&[at(5, now - 30, second), at(6, now - 10, paid_idle)], &cursor)
        .await
        .unwrap();
    let after: Leaderboard = get(&setup, "/api/v1/leaderboard").await.json().await.unwrap();
    let idle_row = after.entries.iter().find(|e| e.node == idle).expect("the idle node is listed");
    assert!(idle_row.jobs_completed > 0, "{idle_row:?}");
    assert_eq!(amount_of(&idle_row.earned, Address::ZERO), Wei::from(975u128));
    let nodes: Vec<NodeEarnings> = get(&setup, "/api/v1/earnings").await.json().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.node).collect::<Vec<_>>(), [node, idle], "kept until the mirror moved");
}

#[tokio::test]
async fn the_explorer_shows_transactions_addresses_jobs_and_slash_evidence_and_nothing_private() {
    use alloy::{providers::Provider, rpc::types::Filter, signers::local::PrivateKeySigner};
    use lumen_protocol::{
        FrameIndex,
        explorer::{ExplorerAddress, ExplorerJob, ExplorerLinks, ExplorerTx},
    };

    let setup = setup(HealthPolicy::default()).await;
    let links: ExplorerLinks = get(&setup, "/api/v1/explorer").await.json().await.unwrap();
    assert_eq!(links.tx_url, format!("{}/#/explorer/tx/{{tx}}", setup.gateway.url), "a devnet links here");

    // A real registration on the chain, mirrored as the indexer would.
    let node = PrivateKeySigner::random();
    crate::ws::bind_node(&setup, &node).await;
    let provider = setup.chain.provider(&setup.chain.account(4));
    let logs = provider
        .get_logs(&Filter::new().address(setup.chain.deployment.registry).from_block(0))
        .await
        .unwrap();
    let log = logs.last().unwrap();
    let (tx, block) = (log.transaction_hash.unwrap(), log.block_number.unwrap());
    let owner = setup.chain.account(4).address();
    let registered = MirroredEvent {
        block_number: block,
        log_index: log.log_index.unwrap(),
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: log.block_hash.unwrap(),
        tx_hash: tx,
        event: ChainEvent::NodeRegistered { node: node.address(), owner, stake: Wei::ZERO },
    };
    let cursor = lumen_store::Cursor { name: "mirror:x".into(), block_number: block, block_hash: B256::ZERO };
    setup.store.apply_chain_batch(std::slice::from_ref(&registered), &cursor).await.unwrap();

    let view: ExplorerTx = get(&setup, &format!("/api/v1/explorer/tx/{tx:#x}")).await.json().await.unwrap();
    assert!(view.success);
    assert_eq!(
        (view.block_number, view.from, view.to),
        (Some(block), owner, Some(setup.chain.deployment.registry))
    );
    assert!(view.gas_used > 21_000 && view.effective_gas_price > 0, "{view:?}");
    assert_eq!(view.events, std::slice::from_ref(&registered));
    let missing = get(&setup, &format!("/api/v1/explorer/tx/{:#x}", B256::repeat_byte(9))).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&setup, "/api/v1/explorer/tx/0x12").await.status(), StatusCode::BAD_REQUEST);

    let page: ExplorerAddress =
        get(&setup, &format!("/api/v1/explorer/address/{owner:#x}")).await.json().await.unwrap();
    assert_eq!(page.events, [registered]);
    let page: ExplorerAddress =
        get(&setup, &format!("/api/v1/explorer/address/{:#x}", node.address())).await.json().await.unwrap();
    assert_eq!(page.events.len(), 1, "as the node too");

    // A ban's evidence is public and linked from its job; any other blob is not served here.
    let evidence = setup.store.put_blob(br#"{"renders":[]}"#).await.unwrap();
    let scene = setup.store.put_blob(b"BLENDER-v404 a private scene").await.unwrap();
    let ban = lumen_store::NewBan {
        node: node.address(),
        owner: Some(owner),
        reason: "outvoted".into(),
        job_id: JobId(5),
        frame_index: FrameIndex(2),
        evidence_hash: evidence,
    };
    assert!(setup.store.ban_node(&ban).await.unwrap());
    let job: ExplorerJob = get(&setup, "/api/v1/explorer/jobs/5").await.json().await.unwrap();
    assert_eq!(job.slashes.len(), 1);
    assert_eq!((job.slashes[0].evidence, job.slashes[0].frame_index), (evidence, 2));
    let response = get(&setup, &format!("/api/v1/evidence/{evidence}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), br#"{"renders":[]}"#);
    assert_eq!(get(&setup, &format!("/api/v1/evidence/{scene}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&setup, "/api/v1/explorer/jobs/77").await.status(), StatusCode::NOT_FOUND);
}
