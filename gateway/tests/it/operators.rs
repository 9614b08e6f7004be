//! The operator view: an owner's nodes and what it can withdraw, the chain's
//! figures read live, the mirror's and the gateway's beside them.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use lumen_chain::{
    contracts::{Erc20, NodeRegistry, RenderEscrow},
    deploy::send,
};
use lumen_gateway::GatewayConfig;
use lumen_protocol::{
    ChainEvent, JobId, MirroredEvent, Wei,
    api::{ApiErrorBody, TokenPrice},
    event::FrameWord,
    node::{HealthPolicy, NodeState},
    operator::OperatorView,
    ws::ServerMessage,
};
use reqwest::StatusCode;

use crate::ws::{connect, server_message, setup_with};

fn at(block: u64, event: ChainEvent) -> MirroredEvent {
    MirroredEvent {
        block_number: block,
        log_index: 0,
        entry: 0,
        block_time: 1_700_000_000,
        block_hash: B256::repeat_byte(u8::try_from(block).unwrap()),
        tx_hash: B256::repeat_byte(0x70 + u8::try_from(block).unwrap()),
        event,
    }
}

fn opened(job: u64, token: Address) -> ChainEvent {
    ChainEvent::JobOpened {
        job_id: JobId(job),
        artist: Address::repeat_byte(0xa),
        spec_hash: B256::repeat_byte(1),
        token,
        price_per_frame: Wei::from(1_000u128),
        frame_count: 2,
        verifications: 0,
        deadline: 1_700_003_600,
        opened_at: 1_699_999_000,
        amount: Wei::from(2_000u128),
        fee_bps: 250,
    }
}

fn released(job: u64, node: Address, owner: Address) -> ChainEvent {
    ChainEvent::FramesReleased {
        job_id: JobId(job),
        node,
        owner,
        frames: FrameWord { index: 0, bits: U256::from(0b11) },
        amount: Wei::from(2_000u128),
        fee: Wei::from(50u128),
    }
}

#[tokio::test]
async fn an_operator_sees_its_nodes_stake_and_the_credit_it_can_withdraw_now() {
    // The gateway accepts the native coin and a "token" that is no contract.
    let odd = Address::repeat_byte(0x33);
    let mut config = GatewayConfig { health: HealthPolicy::default(), ..GatewayConfig::test() };
    config.market.tokens.push(TokenPrice { token: odd, min_price_per_frame: Wei::from(1u128) });
    let setup = setup_with(config).await;
    let chain = &setup.chain;
    let (owner, artist) = (chain.account(4), chain.account(1));
    let owner_provider = chain.provider(&owner);
    let view = async |who: Address| -> OperatorView {
        let url = format!("{}/api/v1/operators/{who:#x}", setup.gateway.url);
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    };

    // A node bound to the owner with 1 ETH of stake, paid on-chain for a frame.
    let node = PrivateKeySigner::random();
    chain.bind_node(&owner, &node).await.unwrap();
    let registry = NodeRegistry::new(chain.deployment.registry, &owner_provider);
    send(registry.addStake(node.address()).value(U256::from(10u128.pow(18)))).await.unwrap();
    let job = chain.open_job(&artist, B256::repeat_byte(5), 1_000_000, 2, 3_600).await.unwrap();
    let settler = chain.provider(&chain.settler().key);
    let (terms, _) = lumen_chain::job::find_terms(&settler, chain.deployment.escrow, 0, job.job_id)
        .await
        .unwrap()
        .unwrap();
    let escrow = RenderEscrow::new(chain.deployment.escrow, &settler);
    let frames = lumen_chain::frames::pack([(node.address(), 0)], 2).unwrap();
    send(escrow.settle(job.job_id.to_u256(), terms, frames, vec![], false)).await.unwrap();
    let credit = escrow.credits(owner.address(), Address::ZERO).call().await.unwrap();
    assert!(credit > U256::ZERO);

    // The mirror knows the binding and two paid jobs, one in a real token.
    let admin = chain.provider(&chain.admin());
    let token = Erc20::deploy(&admin, "Lumen Test Dollar".into(), "LTD".into()).await.unwrap();
    let token = *token.address();
    let registered =
        ChainEvent::NodeRegistered { node: node.address(), owner: owner.address(), stake: Wei::ZERO };
    let batch = [
        at(1, registered),
        at(2, opened(100, Address::ZERO)),
        at(3, released(100, node.address(), owner.address())),
        at(4, opened(101, token)),
        at(5, released(101, node.address(), owner.address())),
    ];
    let cursor = lumen_store::Cursor { name: "mirror:x".into(), block_number: 5, block_hash: B256::ZERO };
    setup.store.apply_chain_batch(&batch, &cursor).await.unwrap();

    let mine = view(owner.address()).await;
    assert_eq!(mine.owner, owner.address());
    assert!(mine.block_number > 0 && !mine.more_nodes);
    assert_eq!((mine.jobs_completed, mine.credits), (4, 40));
    let [listed] = &mine.nodes[..] else { panic!("one node: {:?}", mine.nodes) };
    assert_eq!(listed.node, node.address());
    assert_eq!(
        (listed.state, listed.connected, listed.last_heartbeat_secs),
        (NodeState::Offline, false, None),
        "never connected to this gateway"
    );
    assert!(listed.registered);
    assert_eq!((listed.stake, listed.unbonding), (Wei::from(10u128.pow(18)), Wei::ZERO), "from the chain");
    assert_eq!((listed.jobs_completed, listed.credits), (4, 40), "from the mirror");
    // The native coin first, then the accepted and the earned tokens by address.
    let tokens: Vec<_> = mine.tokens.iter().map(|t| t.token).collect();
    let mut expected = vec![Address::ZERO, odd, token];
    expected[1..].sort();
    assert_eq!(tokens, expected);
    let native = &mine.tokens[0];
    assert_eq!((native.symbol.as_deref(), native.decimals), (Some("ETH"), Some(18)));
    assert_eq!(native.withdrawable, Wei(credit), "what withdraw(0x0) pays now, from the chain");
    assert_eq!((native.earned, native.withdrawn), (Wei::from(1_950u128), Wei::ZERO), "from the mirror");
    let ltd = mine.tokens.iter().find(|t| t.token == token).unwrap();
    assert_eq!(
        (ltd.symbol.as_deref(), ltd.decimals),
        (Some("LTD"), Some(18)),
        "read from the token contract"
    );
    assert_eq!((ltd.withdrawable, ltd.earned), (Wei::ZERO, Wei::from(1_950u128)));
    let odd = mine.tokens.iter().find(|t| t.token == odd).unwrap();
    assert_eq!((odd.symbol.as_deref(), odd.decimals, odd.withdrawable), (None, None, Wei::ZERO));

    // The accepted tokens by name, and the explorer's tokens of the owner's jobs.
    let names: Vec<lumen_protocol::earnings::TokenInfo> =
        reqwest::get(format!("{}/api/v1/tokens", setup.gateway.url)).await.unwrap().json().await.unwrap();
    let names: Vec<_> = names.iter().map(|t| (t.token, t.symbol.as_deref(), t.decimals)).collect();
    assert_eq!(names, [(Address::ZERO, Some("ETH"), Some(18)), (odd.token, None, None)]);
    let page: lumen_protocol::explorer::ExplorerAddress =
        reqwest::get(format!("{}/api/v1/explorer/address/{:#x}", setup.gateway.url, owner.address()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let job_tokens: Vec<_> = page.job_tokens.iter().map(|j| (j.job_id, j.token)).collect();
    assert_eq!(job_tokens, [(JobId(100), Address::ZERO), (JobId(101), token)]);

    // Connected and heartbeating, the node is HEALTHY on the page.
    let mut socket = connect(&setup, &node, node.address()).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::Welcome { .. }));
    crate::ws::send(&mut socket, &lumen_protocol::ws::NodeMessage::Heartbeat { running: 0 }).await;
    assert!(matches!(server_message(&mut socket).await, ServerMessage::HeartbeatAck { .. }));
    let live = view(owner.address()).await;
    assert_eq!((live.nodes[0].state, live.nodes[0].connected), (NodeState::Healthy, true));
    assert!(live.nodes[0].last_heartbeat_secs.is_some());

    // After a withdrawal the credit is 0 at once (read from the chain, not
    // the mirror), and the chain's later block says so.
    let escrow_owner = RenderEscrow::new(chain.deployment.escrow, &owner_provider);
    send(escrow_owner.withdraw(Address::ZERO)).await.unwrap();
    let after = view(owner.address()).await;
    assert_eq!(after.tokens[0].withdrawable, Wei::ZERO);
    assert!(after.block_number > mine.block_number);
    assert_eq!(after.block_number, owner_provider.get_block_number().await.unwrap());

    // Another address has nothing; a bad one is refused.
    let nobody = view(chain.account(5).address()).await;
    assert!(nobody.nodes.is_empty());
    assert!(nobody.tokens.iter().all(|t| t.withdrawable == Wei::ZERO && t.earned == Wei::ZERO));
    let response = reqwest::get(format!("{}/api/v1/operators/0x12", setup.gateway.url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<ApiErrorBody>().await.unwrap().code, "bad_address");
}
