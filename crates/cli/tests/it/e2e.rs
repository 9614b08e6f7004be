//! The whole system, end to end: devnet, gateway, nodes, Blender, the
//! verifier and payment on Anvil.

use std::{collections::BTreeMap, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use lumen_chain::contracts::{NodeRegistry, RenderEscrow};
use lumen_protocol::JobState;

use crate::harness::{Devnet, make_scene, wait_until};

const PRICE: u128 = 1_000_000_000_000_000; // 0.001 ETH

/// Every frame a job's `FramesReleased` events paid: frame index → node
/// (whose registry owner was credited), asserting that no frame appears
/// twice.
async fn released_frames(devnet: &Devnet, job: u64) -> BTreeMap<u32, Address> {
    released(devnet, job, false).await
}

/// Every verification render they paid, as [`released_frames`].
async fn released_verifications(devnet: &Devnet, job: u64) -> BTreeMap<u32, Address> {
    released(devnet, job, true).await
}

async fn released(devnet: &Devnet, job: u64, verifications: bool) -> BTreeMap<u32, Address> {
    let provider = devnet.provider();
    let filter = Filter::new()
        .address(devnet.file.deployment.escrow)
        .event_signature(RenderEscrow::FramesReleased::SIGNATURE_HASH)
        .topic1(U256::from(job))
        .from_block(0);
    let mut frames = BTreeMap::new();
    for log in provider.get_logs(&filter).await.unwrap() {
        let e = RenderEscrow::FramesReleased::decode_log(&log.inner).unwrap();
        let sets = if verifications { e.data.verifications } else { e.data.frames };
        for set in sets {
            for index in lumen_chain::frames::unpack(set.wordIndex, set.bits) {
                let previous = frames.insert(index, set.node);
                assert!(previous.is_none(), "frame {index} of job {job} was paid twice");
            }
        }
    }
    frames
}

async fn refunded(devnet: &Devnet, job: u64) -> U256 {
    let provider = devnet.provider();
    let filter = Filter::new()
        .address(devnet.file.deployment.escrow)
        .event_signature(RenderEscrow::JobRefunded::SIGNATURE_HASH)
        .topic1(U256::from(job))
        .from_block(0);
    let logs = provider.get_logs(&filter).await.unwrap();
    assert_eq!(logs.len(), 1, "exactly one refund");
    RenderEscrow::JobRefunded::decode_log(&logs[0].inner).unwrap().amount
}

/// The nodes of a frame's accepted renders (from `lumen job status --json`).
fn accepted_nodes(frame: &serde_json::Value) -> Vec<Address> {
    frame["renders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "accepted")
        .map(|r| r["node"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn frames_of(status: &serde_json::Value) -> &Vec<serde_json::Value> {
    status["frames"].as_array().unwrap()
}

#[tokio::test]
async fn renders_verifies_and_pays_every_frame_once() {
    let devnet = Devnet::start(3, &[]);
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, 6, 64, 36, &[]);
    let provider = devnet.provider();
    let escrow = RenderEscrow::new(devnet.file.deployment.escrow, &provider);
    let owners: Vec<Address> = devnet.file.nodes.iter().map(|n| n.owner).collect();
    let mut credits_before = Vec::new();
    for owner in &owners {
        credits_before.push(escrow.credits(*owner, Address::ZERO).call().await.unwrap());
    }

    let job = devnet.submit(&scene, &["--price-per-frame", &PRICE.to_string()]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);

    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    let out = devnet.dir.path().join("frames");
    devnet.lumen_ok(&["job", "download", &job.to_string(), "--out", out.to_str().unwrap()]);
    for frame in 1..=6 {
        let path = out.join(format!("{frame:05}.png"));
        let image = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((image.width(), image.height()), (64, 36), "frame {frame} has the scene's resolution");
    }

    // Each frame paid exactly once on-chain, to the owner of the node that rendered it.
    let released = released_frames(&devnet, job).await;
    assert_eq!(released.keys().copied().collect::<Vec<_>>(), (0..6).collect::<Vec<_>>());
    for f in frames_of(&status) {
        let index = u32::try_from(f["index"].as_i64().unwrap()).unwrap();
        let node: Address = f["node"].as_str().unwrap().parse().unwrap();
        assert_eq!(released[&index], node);
        assert!(
            f["payout_tx"].as_str().is_some_and(|t| t.starts_with("0x")),
            "payout tx from the mirror: {f}"
        );
    }
    // A job this short is paid once, at its end, by the call that closes it
    // (which writes no paid-frame bitmap: the events are the record).
    let txs: std::collections::BTreeSet<&str> =
        frames_of(&status).iter().filter_map(|f| f["payout_tx"].as_str()).collect();
    assert_eq!(txs.len(), 1, "one settlement pays every frame: {txs:?}");
    assert!(!escrow.isFramePaid(U256::from(job), U256::ZERO).call().await.unwrap());

    // Fresh nodes are sampled on every frame: each frame's verification
    // render, by another node of another owner that agreed, is paid from the
    // artist's budget (one per frame by default).
    let checks = released_verifications(&devnet, job).await;
    for f in frames_of(&status) {
        let index = u32::try_from(f["index"].as_i64().unwrap()).unwrap();
        let accepted = accepted_nodes(f);
        assert_eq!(accepted.len(), 2, "frame {index} verified by a second render:\n{f:#}");
        let checker = checks[&index];
        assert!(accepted.contains(&checker), "frame {index}: {checker} did not render it:\n{f:#}");
        assert_ne!(checker, released[&index], "frame {index}: the verification render is another node's");
        assert_ne!(
            devnet.owner_of(checker),
            devnet.owner_of(released[&index]),
            "frame {index}: and another owner's"
        );
        // The job view shows it, from the mirror.
        assert_eq!(
            f["verification_payout"]["node"].as_str().and_then(|n| n.parse::<Address>().ok()),
            Some(checker),
            "{f:#}"
        );
    }

    // Owners' credits sum to (frames + verification renders) × price minus
    // the fee; the artist got the rest of the lock (frames and budget) back.
    let paid = U256::from(PRICE) * U256::from(released.len() + checks.len());
    let mut credited = U256::ZERO;
    for (owner, before) in owners.iter().zip(&credits_before) {
        credited += escrow.credits(*owner, Address::ZERO).call().await.unwrap() - before;
    }
    let fees = escrow.fees(Address::ZERO).call().await.unwrap();
    assert_eq!(credited + fees, paid, "every wei released went to an owner or the protocol");
    assert!(fees <= paid * U256::from(devnet.file.fee_bps) / U256::from(10_000), "fees at most the fee rate");
    let locked = U256::from(PRICE) * U256::from(12);
    assert_eq!(refunded(&devnet, job).await, locked - paid);
    let (_, onchain) = lumen_chain::job::find_terms(
        escrow.provider(),
        *escrow.address(),
        devnet.file.deployment.deploy_block,
        lumen_protocol::JobId(job),
    )
    .await
    .unwrap()
    .expect("the job exists");
    assert_eq!((onchain.remaining, onchain.verificationsLeft), (0, 0));

    // Every node reports itself healthy and connected, as the operator guide describes.
    for node in &devnet.file.nodes {
        let health = crate::harness::get_json(&node.health_url).unwrap();
        assert_eq!(health["status"], "healthy", "{health}");
        assert_eq!(health["relay_connected"], true, "{health}");
        assert!(health["uptime_seconds"].as_u64().is_some(), "{health}");
    }

    earnings_from_the_mirror_match_the_chain_and_its_rebuild(&devnet, released.len() + checks.len()).await;
}

/// The Anvil dev accounts' well-known private keys, by the devnet's owner
/// index (the devnet binds node `i` to dev account `2 + i`).
const DEV_KEYS: [&str; 3] = [
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
];

/// `lumen payouts`, `lumen leaderboard`, `lumen node withdraw` and `lumen
/// indexer rebuild` on a devnet whose job paid `renders` renders.
async fn earnings_from_the_mirror_match_the_chain_and_its_rebuild(devnet: &Devnet, renders: usize) {
    use lumen_protocol::earnings::{Leaderboard, Month, NodeEarnings, amount_of};

    let escrow = lumen_chain::contracts::RenderEscrow::new(devnet.file.deployment.escrow, devnet.provider());
    let nodes: Vec<NodeEarnings> = serde_json::from_str(&devnet.lumen_ok(&["payouts", "--json"])).unwrap();
    assert_eq!(nodes.iter().map(|n| n.jobs_completed).sum::<u64>(), u64::try_from(renders).unwrap());
    for n in &nodes {
        assert_eq!(n.credits, 10 * n.jobs_completed, "10 credits a render job");
        assert_eq!(n.owner, devnet.owner_of(n.node));
        // One node per owner on a devnet: the owner's on-chain credit is its node's earnings.
        let credit = escrow.credits(n.owner, Address::ZERO).call().await.unwrap();
        assert_eq!(lumen_protocol::Wei(credit), amount_of(&n.earned, Address::ZERO), "{n:?}");
    }
    let board: Leaderboard = serde_json::from_str(&devnet.lumen_ok(&["leaderboard", "--json"])).unwrap();
    let best = nodes.iter().map(|n| n.jobs_completed).max().unwrap();
    assert_eq!(board.entries[0].jobs_completed, best);
    assert_eq!(board.entries[0].badge, Some(lumen_protocol::earnings::Badge::Gold));
    assert!(
        nodes.iter().all(|n| board.entries.iter().any(|e| e.node == n.node)),
        "every paid node is ranked"
    );

    // The owner of the busiest node: its statement, then its withdrawal.
    let top = nodes.iter().max_by_key(|n| n.jobs_completed).unwrap();
    let index = devnet.file.nodes.iter().position(|n| n.address == top.node).unwrap();
    let key = DEV_KEYS[index];
    let signer: alloy::signers::local::PrivateKeySigner = key.parse().unwrap();
    assert_eq!(signer.address(), top.owner, "the devnet's owner {index} is dev account {}", index + 2);
    let owner = format!("{:#x}", top.owner);
    let month = Month::containing(u64::try_from(lumen_store::now_ms() / 1_000).unwrap()).to_string();
    let csv = devnet.lumen_ok(&["payouts", "--owner", &owner, "--month", &month, "--csv"]);
    assert!(csv.starts_with("time,kind,job_id,node,token"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",earning,")), "{csv}");
    let before = devnet.provider().get_balance(top.owner).await.unwrap();
    let out =
        devnet.lumen_ok_with(&["node", "withdraw", "--owner-key-env", "OWNER_KEY"], &[("OWNER_KEY", key)]);
    assert!(out.contains("withdrew"), "{out}");
    assert_eq!(escrow.credits(top.owner, Address::ZERO).call().await.unwrap(), U256::ZERO);
    assert!(devnet.provider().get_balance(top.owner).await.unwrap() > before, "the owner's balance grew");
    // The withdrawal reaches the mirror (the indexer follows the chain).
    crate::harness::wait_until(devnet, "the withdrawal in the mirror", Duration::from_secs(30), || {
        let json = devnet.lumen_ok(&["payouts", "--owner", &owner, "--json"]);
        let e: lumen_protocol::earnings::OwnerEarnings = serde_json::from_str(&json).unwrap();
        (!e.withdrawn.is_empty()).then_some(())
    });

    // The output links the transaction to the gateway's explorer, whose page decodes it.
    let tx = out.split("in tx ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap().to_owned();
    assert!(out.contains(&format!("{}/#/explorer/tx/{tx}", devnet.file.gateway_url)), "{out}");
    let page =
        crate::harness::get_json(&format!("{}/api/v1/explorer/tx/{tx}", devnet.file.gateway_url)).unwrap();
    assert_eq!(page["success"], true, "{page}");
    assert!(
        page["events"].as_array().unwrap().iter().any(|e| e["event"]["event"] == "CreditsWithdrawn"),
        "{page}"
    );

    // Rebuilt from the chain into an empty database: the same earnings.
    let rebuilt = devnet.dir.path().join("rebuilt");
    let out = devnet.lumen_ok(&["indexer", "rebuild", "--data-dir", rebuilt.to_str().unwrap()]);
    assert!(out.contains("mirror rebuilt"), "{out}");
    let store = lumen_store::Store::open(&rebuilt).await.unwrap();
    assert_eq!(store.node_earnings().await.unwrap(), nodes);
    let mirrored: Vec<NodeEarnings> = serde_json::from_str(&devnet.lumen_ok(&["payouts", "--json"])).unwrap();
    assert_eq!(mirrored, nodes);
}

#[tokio::test]
async fn a_job_paid_in_an_erc20_credits_owners_and_refunds_the_artist_in_the_token() {
    let devnet = Devnet::start(2, &[]);
    let token = devnet.file.test_token.expect("the devnet deploys a test token");
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, 3, 64, 36, &[]);
    let provider = devnet.provider();
    let escrow = RenderEscrow::new(devnet.file.deployment.escrow, &provider);
    let erc20 = lumen_chain::contracts::Erc20::new(token, &provider);
    let balance_before = erc20.balanceOf(devnet.file.artist).call().await.unwrap();

    // A token the gateway does not accept is refused before anything is locked.
    let out = devnet.lumen(&[
        "job",
        "submit",
        scene.to_str().unwrap(),
        "--token",
        &format!("{:#x}", Address::repeat_byte(0xee)),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_not_accepted"), "{out:?}");
    assert_eq!(erc20.balanceOf(devnet.file.artist).call().await.unwrap(), balance_before);

    let job =
        devnet.submit(&scene, &["--token", &format!("{token:#x}"), "--price-per-frame", &PRICE.to_string()]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);
    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    assert_eq!(status["token"].as_str().unwrap().parse::<Address>().unwrap(), token);

    // Owners are credited in the token, not in the native coin; the artist
    // paid exactly the frames and verification renders released, in the token.
    let released = released_frames(&devnet, job).await;
    let checks = released_verifications(&devnet, job).await;
    assert_eq!(released.len(), 3);
    let paid = U256::from(PRICE) * U256::from(released.len() + checks.len());
    let mut credited = U256::ZERO;
    for owner in devnet.file.nodes.iter().map(|n| n.owner) {
        credited += escrow.credits(owner, token).call().await.unwrap();
        assert_eq!(escrow.credits(owner, Address::ZERO).call().await.unwrap(), U256::ZERO);
    }
    let fees = escrow.fees(token).call().await.unwrap();
    assert_eq!(credited + fees, paid);
    assert_eq!(refunded(&devnet, job).await, U256::from(PRICE) * U256::from(6) - paid);
    assert_eq!(erc20.balanceOf(devnet.file.artist).call().await.unwrap(), balance_before - paid);
    assert_eq!(
        erc20.balanceOf(devnet.file.deployment.escrow).call().await.unwrap(),
        paid,
        "the escrow holds what it owes"
    );
}

#[tokio::test]
async fn a_killed_node_loses_its_frames_and_the_job_still_completes() {
    // Three owners: after the kill, two independent ones remain to render and verify.
    let devnet = Devnet::start(3, &[]);
    let scene = devnet.dir.path().join("scene.blend");
    // Bigger frames so a node is caught mid-render.
    make_scene(&scene, 6, 320, 180, &["--samples", "32"]);
    let job = devnet.submit(&scene, &[]);

    let victim: Address =
        wait_until(&devnet, "a node to be rendering", Duration::from_secs(120), || rendering_node(&devnet));
    let pid = devnet.file.nodes.iter().find(|n| n.address == victim).unwrap().pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);
    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    let retried = frames_of(&status).iter().filter(|f| f["attempts"].as_i64().unwrap() > 1).count();
    assert!(retried >= 1, "the killed node's frame was rendered again elsewhere: {status:#}");
    let released = released_frames(&devnet, job).await;
    assert_eq!(released.len(), 6, "every frame paid exactly once");
    // Frames and verification renders paid, the rest of the lock refunded.
    let paid = released.len() + released_verifications(&devnet, job).await.len();
    assert_eq!(refunded(&devnet, job).await, U256::from(PRICE) * U256::from(12 - paid));
}

/// A node currently running a task, from the gateway's node list.
fn rendering_node(devnet: &Devnet) -> Option<Address> {
    let nodes = crate::harness::get_json(&format!("{}/api/v1/nodes", devnet.file.gateway_url)).ok()?;
    nodes.as_array()?.iter().find(|n| n["running"].as_u64().unwrap_or(0) > 0)?["address"]
        .as_str()?
        .parse()
        .ok()
}

#[tokio::test]
async fn black_frames_and_wrong_signatures_are_rejected_and_never_paid() {
    // Two honest owners, so every sampled frame can be verified independently.
    let devnet = Devnet::start(4, &["--node-fault", "0=black-frames", "--node-fault", "1=wrong-key"]);
    let honest: Vec<Address> = devnet.file.nodes[2..].iter().map(|n| n.address).collect();
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, 6, 64, 36, &[]);
    let job = devnet.submit(&scene, &[]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);

    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    let released = released_frames(&devnet, job).await;
    assert_eq!(released.len(), 6);
    for (index, node) in &released {
        assert!(honest.contains(node), "frame {index} was paid to a misbehaving node");
    }
    let log = std::fs::read_to_string(devnet.dir.path().join("devnet.log")).unwrap();
    assert!(log.contains("all_black"), "the verifier rejected black frames:\n{}", devnet.logs());
    assert!(log.contains("result signed by"), "the gateway rejected forged signatures:\n{}", devnet.logs());
}

/// The gateway's view of every node, by address.
fn nodes_by_address(devnet: &Devnet) -> std::collections::HashMap<Address, serde_json::Value> {
    let nodes = crate::harness::get_json(&format!("{}/api/v1/nodes", devnet.file.gateway_url)).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["address"].as_str().unwrap().parse().unwrap(), n.clone()))
        .collect()
}

#[tokio::test]
async fn cheaters_are_outvoted_banned_slashed_and_never_paid() {
    // Three honest owners beside four that cheat, each its own way. (Cheats
    // whose outputs can agree with each other, such as a copied frame and a
    // neighbouring frame, are collusion: see
    // `cheats_rendered_with_real_blender_are_caught`. Five
    // cheaters among eight nodes can also leave a frame without any two
    // agreeing renders at the cap: docs/trust.md.)
    cheaters_among_honest_nodes(&["noise", "smooth", "copy-frame", "honest-then-noise", "fewer-samples"])
        .await;
}

#[tokio::test]
async fn cheats_rendered_with_real_blender_are_caught() {
    // Cheats that run Blender at the job's size: a frame off by one and the
    // right frame at one sample instead of the scene's sixteen (both of the
    // right scene), and the right frame number of another scene.
    cheaters_among_honest_nodes(&["neighbour", "fewer-samples", "other-scene"]).await;
}

#[tokio::test]
async fn a_node_announcing_many_slots_gets_one_frame_at_a_time() {
    // Two honest owners beside a node that announces 64 slots and renders
    // honestly. Slots are earned: a fresh key renders one frame at a time
    // and gains one slot per `renders_per_slot` accepted renders. A node
    // holds at most one render of a frame, so with fewer frames than that
    // the hoarder never earns a second slot.
    const FRAMES: u32 = 4;
    let policy = lumen_matchmaker::policy::TrustPolicy::default();
    assert!(FRAMES < policy.renders_per_slot, "the job is too small to earn a second slot");
    let devnet = Devnet::start(3, &["--node-fault", "2=slot-hoarder"]);
    let hoarder = devnet.file.nodes[2].address;
    let announced = &nodes_by_address(&devnet)[&hoarder]["capabilities"]["slots"];
    assert_eq!(announced.as_u64(), Some(u64::from(lumen_node::HOARDER_SLOTS)), "it announced {announced}");
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, FRAMES, 64, 36, &[]);
    let job = devnet.submit(&scene, &[]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);

    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    assert_eq!(
        released_frames(&devnet, job).await.len(),
        usize::try_from(FRAMES).unwrap(),
        "every frame paid once"
    );
    // When each of the hoarder's renders held one of its slots: from
    // dispatch until its result came (or it failed, was lost or cancelled).
    let held: Vec<(i64, i64)> = frames_of(&status)
        .iter()
        .flat_map(|f| f["renders"].as_array().unwrap().iter())
        .filter(|r| r["node"].as_str().unwrap().parse::<Address>().unwrap() == hoarder)
        .map(|r| {
            let end = r["finished_at_ms"].as_i64().unwrap_or_else(|| panic!("a render still runs: {r}"));
            (r["dispatched_at_ms"].as_i64().unwrap(), end)
        })
        .collect();
    let accepted = frames_of(&status).iter().flat_map(accepted_nodes).filter(|node| *node == hoarder).count();
    assert!(accepted >= 1, "the hoarder rendered honestly and was accepted: {status:#}");
    // The most slots it could have earned by the end of the job: one, plus
    // one per `renders_per_slot` accepted renders (failures only take away).
    let earned = 1 + u32::try_from(accepted).unwrap() / policy.renders_per_slot;
    assert_eq!(earned, 1);
    assert_eq!(
        most_at_once(&held),
        usize::try_from(earned).unwrap(),
        "the hoarder held {held:?} (dispatch, end in ms) with {earned} earned slot(s)"
    );
    let trust = &nodes_by_address(&devnet)[&hoarder]["trust"];
    assert_eq!(trust["banned"].as_bool(), Some(false), "{trust}");
}

/// The most of the half-open intervals `[start, end)` that overlap at any
/// instant (the peak is reached at some interval's start).
fn most_at_once(intervals: &[(i64, i64)]) -> usize {
    intervals
        .iter()
        .map(|&(at, _)| intervals.iter().filter(|&&(start, end)| start <= at && at < end).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn overlapping_intervals_are_counted_at_their_peak() {
    assert_eq!(most_at_once(&[]), 0);
    assert_eq!(most_at_once(&[(0, 10), (10, 20), (20, 25)]), 1, "back to back is one at a time");
    assert_eq!(most_at_once(&[(0, 10), (9, 20), (30, 40)]), 2);
    assert_eq!(most_at_once(&[(0, 100), (10, 20), (15, 30), (19, 21)]), 4);
}

/// Three honest nodes beside one node per fault in `cheats`: the job
/// completes with every frame verified, no bad frame is paid, every
/// cheater that rendered is banned and slashed, no honest node is.
async fn cheaters_among_honest_nodes(cheats: &[&str]) {
    let faults: Vec<String> = cheats.iter().enumerate().map(|(i, f)| format!("{}={f}", i + 3)).collect();
    let mut args = Vec::new();
    for fault in &faults {
        args.extend(["--node-fault", fault.as_str()]);
    }
    let devnet = Devnet::start(3 + u32::try_from(cheats.len()).unwrap(), &args);
    let honest: Vec<Address> = devnet.file.nodes[..3].iter().map(|n| n.address).collect();
    let cheaters: Vec<Address> = devnet.file.nodes[3..].iter().map(|n| n.address).collect();
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, 6, 64, 36, &[]);
    let job = devnet.submit(&scene, &["--price-per-frame", &PRICE.to_string()]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "400"]);

    // Every frame verified and paid once, and no bad frame paid: each paid
    // render agrees with an honest node's render of the frame. (The
    // honest-then-noise node may be paid for the frames it really rendered.)
    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}\n{}", devnet.logs());
    let released = released_frames(&devnet, job).await;
    assert_eq!(released.len(), 6, "every frame paid once");
    for f in frames_of(&status) {
        let index = u32::try_from(f["index"].as_i64().unwrap()).unwrap();
        let paid = released[&index];
        let accepted = accepted_nodes(f);
        assert!(accepted.contains(&paid), "frame {index} paid for a render that was not accepted:\n{f:#}");
        // Accepted renders of a frame agree with one another: one of them is honest.
        assert!(
            accepted.iter().any(|n| honest.contains(n)),
            "frame {index} was paid with no honest render agreeing:\n{f:#}"
        );
    }
    // Every cheater that got a frame of this job was caught; honest nodes never were.
    let nodes = nodes_by_address(&devnet);
    // A cheater "delivered bad work" when any of its renders was not
    // accepted (`honest-then-noise` may render only honest frames of a
    // small job, and then nothing proves it cheated).
    let renders: Vec<&serde_json::Value> =
        frames_of(&status).iter().flat_map(|f| f["renders"].as_array().unwrap().iter()).collect();
    let node_of = |r: &serde_json::Value| -> Address { r["node"].as_str().unwrap().parse().unwrap() };
    let rendered: std::collections::HashSet<Address> = renders
        .iter()
        .filter(|r| r["state"] != "accepted" && r["state"] != "cancelled" && r["state"] != "lost")
        .map(|r| node_of(r))
        .collect();
    for node in &honest {
        let trust = &nodes[node]["trust"];
        assert_eq!(
            (trust["banned"].as_bool(), trust["outvoted"].as_u64()),
            (Some(false), Some(0)),
            "{node}: {trust}"
        );
    }
    let provider = devnet.provider();
    let registry = NodeRegistry::new(devnet.file.deployment.registry, &provider);
    for node in cheaters.iter().filter(|n| rendered.contains(*n)) {
        let trust = &nodes[node]["trust"];
        assert_eq!(
            trust["banned"].as_bool(),
            Some(true),
            "cheater {node} was not banned: {trust}\n{}",
            devnet.logs()
        );
        // Slashed to the artist: the devnet staked 1 ETH with every node.
        let started = std::time::Instant::now();
        loop {
            let info = registry.nodeInfo(*node).call().await.unwrap();
            if info.stake + info.unbonding == U256::ZERO {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{node} not slashed:\n{}", devnet.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        registry.claimable(devnet.file.artist).call().await.unwrap() > U256::ZERO,
        "the artist got the slashed stake"
    );
    // The CLI shows the record too.
    let table = devnet.lumen_ok(&["node", "list"]);
    for node in cheaters.iter().filter(|n| rendered.contains(*n)) {
        let line = table.lines().find(|l| l.starts_with(&format!("{node:#x}"))).unwrap_or_default();
        assert!(line.contains("BANNED"), "{node} in `lumen node list`:\n{table}");
    }
}

#[tokio::test]
async fn fake_failures_of_fresh_keys_do_not_fail_the_job() {
    let devnet = Devnet::start(4, &["--node-fault", "0=fake-failure", "--node-fault", "1=fake-failure"]);
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, 4, 64, 36, &[]);
    let job = devnet.submit(&scene, &[]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);
    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    let log = std::fs::read_to_string(devnet.dir.path().join("devnet.log")).unwrap();
    assert!(log.contains("refuted"), "the verifier's probe refuted the fake failure:\n{}", devnet.logs());
}

#[tokio::test]
async fn bad_uploads_are_refused_before_anything_is_locked() {
    let devnet = Devnet::start(1, &[]);
    let provider = devnet.provider();
    let escrow = RenderEscrow::new(devnet.file.deployment.escrow, &provider);
    let next_before = escrow.nextJobId().call().await.unwrap();

    let not_blend = devnet.dir.path().join("notes.blend");
    std::fs::write(&not_blend, "these are not the frames you are looking for").unwrap();
    let out = devnet.lumen(&["job", "submit", not_blend.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not a .blend"), "{err}");

    let good = devnet.dir.path().join("good.blend");
    make_scene(&good, 6, 64, 36, &[]);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = devnet.dir.path().join("truncated.blend");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let out = devnet.lumen(&["job", "submit", truncated.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot read") || err.contains("truncated"), "{err}");

    let external = devnet.dir.path().join("external.blend");
    make_scene(&external, 6, 64, 36, &["--variant", "external-texture", "--texture", "//textures/wood.png"]);
    let out = devnet.lumen(&["job", "submit", external.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not contain") && err.contains("wood.png"), "names the unpacked file: {err}");

    // A job the gateway's market would refuse (1 wei a frame) is refused
    // before the artist locks anything.
    let out = devnet.lumen(&["job", "submit", good.to_str().unwrap(), "--price-per-frame", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("price_too_low"), "{err}");

    assert_eq!(escrow.nextJobId().call().await.unwrap(), next_before, "no job was opened");
    assert_eq!(
        provider.get_balance(devnet.file.deployment.escrow).await.unwrap(),
        U256::ZERO,
        "nothing was locked"
    );
}

#[tokio::test]
async fn a_deterministic_failure_fails_the_job_fast_and_refunds_everything() {
    let devnet = Devnet::start(2, &[]);
    let scene = devnet.dir.path().join("denoise.blend");
    make_scene(&scene, 6, 64, 36, &["--variant", "denoise"]);
    let job = devnet.submit(&scene, &["--price-per-frame", &PRICE.to_string()]);

    let out = devnet.lumen(&["job", "wait", &job.to_string(), "--timeout", "300"]);
    assert!(!out.status.success(), "wait exits non-zero when frames failed for good");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("missing_feature"), "the reason reaches the artist: {text}");

    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Failed, "{status:#}");
    assert!(
        status["failure"].as_str().unwrap().contains("OpenImageDenoise")
            || status["failure"].as_str().unwrap().contains("missing_feature")
    );
    let attempts: i64 = frames_of(&status).iter().map(|f| f["attempts"].as_i64().unwrap()).sum();
    assert!(attempts <= 6, "failed fast instead of cycling through nodes: {attempts} attempts");
    assert!(released_frames(&devnet, job).await.is_empty());
    assert_eq!(
        refunded(&devnet, job).await,
        U256::from(PRICE) * U256::from(12),
        "everything refunded: the frames and the verification budget"
    );
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Proc(std::process::Child);

impl Proc {
    fn start(bin: &std::path::Path, args: &[&str], env: &[(&str, &str)], log: &std::path::Path) -> Self {
        assert!(
            bin.is_file(),
            "{} is missing: build the workspace (cargo nextest run --workspace)",
            bin.display()
        );
        let file = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn split_processes_render_a_job_without_a_devnet_file() {
    use alloy::signers::local::PrivateKeySigner;

    let anvil = lumen_chain::anvil::spawn().unwrap();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let (admin, artist, owner, second_owner) = (key(0), key(1), key(2), key(3));
    let rpc = anvil.endpoint();
    let provider = lumen_testkit::connect(&admin, &rpc).unwrap();
    let deployment =
        lumen_chain::deploy(&provider, &lumen_chain::DeployConfig::devnet(admin.address())).await.unwrap();
    let dir = tempfile::Builder::new().prefix("lumen-split-").tempdir().unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    // Two nodes of two owners: every sampled frame is verified by the other.
    let mut node_keys = Vec::new();
    for (name, owner) in [("node", &owner), ("node2", &second_owner)] {
        let key_file = dir.path().join(name).join("private_key");
        let node_key = lumen_node::key::load_or_create(&key_file).unwrap();
        lumen_cli::cmd::node::bind_node(
            &rpc,
            deployment.registry,
            deployment.chain_id,
            &node_key,
            owner,
            U256::ZERO,
        )
        .await
        .unwrap();
        node_keys.push((name, key_file, node_key.address()));
    }

    let bin = |name: &str| std::path::Path::new(crate::harness::lumen_bin()).with_file_name(name);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gateway = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("data");
    let (data_s, deployment_s) = (data.to_str().unwrap(), deployment_file.to_str().unwrap());
    let listen = format!("127.0.0.1:{port}");
    // The gateway first: it creates and migrates the shared database.
    let _gateway = Proc::start(
        &bin("lumen-gateway"),
        &["--data-dir", data_s, "--listen", &listen, "--rpc-url", &rpc, "--deployment", deployment_s],
        &[],
        &dir.path().join("gateway.log"),
    );
    let logs = || {
        ["gateway", "verifier", "indexer", "node", "node2"]
            .iter()
            .map(|n| format!("--- {n}\n{}", crate::harness::tail(&dir.path().join(format!("{n}.log")))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let started = std::time::Instant::now();
    while crate::harness::get_json(&format!("{gateway}/api/v1/info")).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "gateway did not start:\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let _verifier =
        Proc::start(&bin("lumen-verifier"), &["--data-dir", data_s], &[], &dir.path().join("verifier.log"));
    let settler_key = alloy::hex::encode_prefixed(admin.to_bytes());
    let _indexer = Proc::start(
        &bin("lumen-indexer"),
        &["--data-dir", data_s, "--rpc-url", &rpc, "--deployment", deployment_s],
        &[("LUMEN_SETTLER_KEY", &settler_key)],
        &dir.path().join("indexer.log"),
    );
    let ws = format!("ws://127.0.0.1:{port}/ws/node");
    let _nodes: Vec<Proc> = node_keys
        .iter()
        .map(|(name, key_file, _)| {
            Proc::start(
                &bin("lumen-node"),
                &[
                    "--gateway",
                    &ws,
                    "--key-file",
                    key_file.to_str().unwrap(),
                    "--data-dir",
                    dir.path().join(name).to_str().unwrap(),
                    "--health-port",
                    "0",
                ],
                &[],
                &dir.path().join(format!("{name}.log")),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    loop {
        let healthy = crate::harness::get_json(&format!("{gateway}/api/v1/nodes"))
            .ok()
            .and_then(|n| n.as_array().map(|a| a.iter().filter(|n| n["state"] == "HEALTHY").count() == 2))
            .unwrap_or(false);
        if healthy {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "node not healthy:\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }

    let scene = dir.path().join("scene.blend");
    make_scene(&scene, 4, 64, 36, &[]);
    let artist_key = alloy::hex::encode_prefixed(artist.to_bytes());
    // No devnet file: everything comes from --gateway, --rpc-url and the key variable.
    let lumen = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::lumen_bin())
            .args(args)
            .args(["--gateway", &gateway, "--rpc-url", &rpc, "--devnet-dir"])
            .arg(dir.path().join("no-devnet-here"))
            .env("ARTIST_KEY", &artist_key)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "lumen {args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), logs());
        String::from_utf8(out.stdout).unwrap()
    };
    let out = lumen(&["job", "submit", scene.to_str().unwrap(), "--private-key-env", "ARTIST_KEY"]);
    let job = out.lines().last().unwrap().trim().to_owned();
    assert!(out.contains("64x36, CYCLES, 4 samples, 24 fps"), "the scene line: {out}");
    // Jobs are private: following one signs in with the artist's wallet.
    lumen(&["job", "wait", &job, "--timeout", "300", "--private-key-env", "ARTIST_KEY"]);
    let status: serde_json::Value =
        serde_json::from_str(&lumen(&["job", "status", &job, "--json", "--private-key-env", "ARTIST_KEY"]))
            .unwrap();
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    let nodes: Vec<String> = node_keys.iter().map(|(_, _, address)| format!("{address:#x}")).collect();
    for f in frames_of(&status) {
        assert!(nodes.iter().any(|n| n == f["node"].as_str().unwrap()), "{f}");
        assert!(f["payout_tx"].as_str().is_some(), "{f}");
    }
}

/// The job state in a `lumen job status --json` document, read as its type.
fn job_state(status: &serde_json::Value) -> JobState {
    serde_json::from_value(status["state"].clone()).expect("the state is a job state")
}

#[tokio::test]
async fn a_silent_node_loses_its_frames_to_others() {
    // A node that accepts frames and never answers, while it keeps heartbeating.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[matchmaker]\nstall_secs = 5\n").unwrap();
    let devnet = Devnet::start(4, &["--node-fault", "3=silent", "--config", config.path().to_str().unwrap()]);
    let silent = devnet.file.nodes[3].address;
    let scene = devnet.dir.path().join("scene.blend");
    make_scene(&scene, 4, 64, 36, &[]);
    let started = std::time::Instant::now();
    let job = devnet.submit(&scene, &[]);
    devnet.lumen_ok(&["job", "wait", &job.to_string(), "--timeout", "300"]);
    let status = devnet.status(job);
    assert_eq!(job_state(&status), JobState::Completed, "{status:#}");
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "stalled frames moved on in seconds, not after the 360 s lease"
    );
    let released = released_frames(&devnet, job).await;
    assert!(released.values().all(|node| *node != silent), "the silent node was paid");
    let trust = &nodes_by_address(&devnet)[&silent]["trust"];
    let stalled = frames_of(&status)
        .iter()
        .flat_map(|f| f["renders"].as_array().unwrap().iter())
        .filter(|r| r["node"].as_str().unwrap().parse::<Address>().unwrap() == silent)
        .count();
    assert!(stalled >= 1, "the silent node took frames (every node is free in the first round)");
    assert_eq!(trust["lost"].as_u64(), Some(stalled as u64), "every frame it took was lost: {trust}");
}

#[tokio::test]
async fn a_cancelled_job_renders_nothing_more_and_refunds_the_rest() {
    let devnet = Devnet::start(2, &[]);
    let scene = devnet.dir.path().join("scene.blend");
    // Frames slow enough that the job is mid-way when the artist cancels.
    make_scene(&scene, 12, 320, 180, &["--samples", "32"]);
    let job = devnet.submit(&scene, &["--price-per-frame", &PRICE.to_string()]);
    wait_until(&devnet, "a first verified frame", Duration::from_secs(180), || {
        let status = devnet.status(job);
        frames_of(&status).iter().any(|f| f["state"] == "verified").then_some(())
    });
    devnet.lumen_ok(&["job", "cancel", &job.to_string()]);
    let cancelled_at_ms = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
    )
    .unwrap();
    // The job ends (failed: not every frame was rendered) without waiting
    // for the remaining frames.
    let status = wait_until(&devnet, "the job to end", Duration::from_secs(120), || {
        let status = devnet.status(job);
        job_state(&status).is_final().then_some(status)
    });
    assert_eq!(job_state(&status), JobState::Failed, "{status:#}");
    assert_eq!(status["failure"], "cancelled by the artist", "{status:#}");
    // Nothing was dispatched once the matchmaker saw the cancel (the mirror
    // and a matchmaker round take a few seconds).
    let late: Vec<&serde_json::Value> = frames_of(&status)
        .iter()
        .flat_map(|f| f["renders"].as_array().unwrap().iter())
        .filter(|r| r["dispatched_at_ms"].as_i64().unwrap() > cancelled_at_ms + 5_000)
        .collect();
    assert!(late.is_empty(), "renders dispatched after the cancel: {late:#?}");
    // Verified frames are paid; everything else (the unrendered frames and
    // the unused verification budget) went back to the artist.
    let released = released_frames(&devnet, job).await;
    let checks = released_verifications(&devnet, job).await;
    let failed = frames_of(&status).iter().filter(|f| f["state"] == "failed").count();
    assert!(failed > 0, "the cancel came before the end: {status:#}");
    assert_eq!(released.len() + failed, 12, "every frame either paid or failed: {status:#}");
    let paid = U256::from(PRICE) * U256::from(released.len() + checks.len());
    assert_eq!(refunded(&devnet, job).await, U256::from(PRICE) * U256::from(24) - paid);

    // The refund race: the artist got back every unpaid wei, and gets no
    // full frame that was not paid — only previews of verified ones.
    let artist = devnet.sign_in(&devnet.artist_key()).await;
    for f in frames_of(&status) {
        let path = format!("/api/v1/jobs/{job}/frames/{}", f["frame"]);
        let (code, bytes) = devnet.get_as(&artist, &path).await;
        let paid = !f["payout_tx"].is_null();
        match (f["state"].as_str().unwrap(), paid) {
            ("verified", true) => {
                assert_eq!(code, reqwest::StatusCode::OK, "{path}");
                let hash = lumen_protocol::content_hash(&bytes);
                assert_eq!(f["output_hash"], serde_json::json!(hash), "{path}");
            }
            ("verified", false) => assert_eq!(code, reqwest::StatusCode::PAYMENT_REQUIRED, "{path}"),
            (state, _) => assert_eq!(code, reqwest::StatusCode::CONFLICT, "{path} is {state}"),
        }
        if f["state"] == "verified" {
            let (code, preview) = devnet.get_as(&artist, &format!("{path}/preview")).await;
            assert_eq!(code, reqwest::StatusCode::OK, "{path}/preview");
            let preview = image::load_from_memory(&preview).unwrap();
            assert_eq!((preview.width(), preview.height()), (80, 45), "a quarter of 320x180");
        }
    }
    let out = devnet.dir.path().join("frames");
    let downloaded = devnet.lumen_ok(&["job", "download", &job.to_string(), "--out", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), released.len(), "{downloaded}");

    // Another wallet sees none of it: not the job, its frames, nor its .blend.
    let stranger = devnet.sign_in(&alloy::signers::local::PrivateKeySigner::random()).await;
    let blend = status["blend_hash"].as_str().unwrap();
    for path in [
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/jobs/{job}/frames/1"),
        format!("/api/v1/jobs/{job}/frames/1/preview"),
        format!("/api/v1/blobs/{blend}"),
    ] {
        assert_eq!(devnet.get_as(&stranger, &path).await.0, reqwest::StatusCode::FORBIDDEN, "{path}");
        let anonymous = reqwest::get(format!("{}{path}", devnet.file.gateway_url)).await.unwrap();
        assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED, "{path}");
    }
    let (code, body) = devnet.get_as(&stranger, "/api/v1/jobs").await;
    assert_eq!((code, body.as_slice()), (reqwest::StatusCode::OK, b"[]".as_slice()));
}
