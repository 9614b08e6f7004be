//! `GET /api/v1/operators/{owner}`: an owner's nodes and what it can
//! withdraw now, for the dashboard's operator page. Public, as the chain
//! is: the stake and the withdrawable credit are read from the chain at one
//! block (so the page shows what `withdraw` would pay), earned and
//! withdrawn come from the mirror, health and reputation from this
//! gateway. The work is bounded: at most [`MAX_OPERATOR_NODES`] nodes and
//! the tokens the gateway accepts or the owner earned in, each one chain
//! read, [`READS_AT_ONCE`] at a time, and at most
//! `max_concurrent_chain_views` such requests at once ([`crate::limits`]).

use std::collections::{BTreeSet, HashMap};

use alloy::{eips::BlockId, primitives::Address, providers::Provider};
use axum::{
    Json,
    extract::{Path, State},
};
use futures::{StreamExt, TryStreamExt, stream};
use lumen_protocol::{
    Wei,
    earnings::amount_of,
    node::NodeState,
    operator::{MAX_OPERATOR_NODES, OperatorNode, OperatorToken, OperatorView},
};

use crate::{AppState, api::ApiResult, error::ApiError, tokens::READS_AT_ONCE};

/// `GET /api/v1/operators/{owner}`.
pub(crate) async fn operator(
    State(state): State<AppState>,
    Path(owner): Path<String>,
) -> ApiResult<Json<OperatorView>> {
    let owner = crate::earnings::parse_address(&owner)?;
    state.limits.chain_view(view(&state, owner)).await.map(Json)
}

/// The view of `owner`, with its chain figures read at one block.
async fn view(state: &AppState, owner: Address) -> ApiResult<OperatorView> {
    let earnings = state.store.owner_earnings(owner).await?;
    let live: HashMap<Address, _> =
        state.nodes.views(false).into_iter().filter(|n| n.owner == owner).map(|n| (n.address, n)).collect();
    // One more than listed, to know whether there are more.
    let limit = i64::try_from(MAX_OPERATOR_NODES + 1).unwrap_or(i64::MAX);
    let mut nodes: BTreeSet<Address> = state.store.nodes_of_owner(owner, limit).await?.into_iter().collect();
    nodes.extend(live.keys().copied());
    nodes.extend(earnings.nodes.iter().map(|n| n.node));
    let more_nodes = nodes.len() > MAX_OPERATOR_NODES;
    let nodes: Vec<Address> = nodes.into_iter().take(MAX_OPERATOR_NODES).collect();

    let mut tokens: BTreeSet<Address> = state.config.market.tokens.iter().map(|t| t.token).collect();
    tokens.insert(Address::ZERO);
    tokens.extend(earnings.earned.iter().chain(&earnings.withdrawn).map(|t| t.token));

    // Every chain figure at one block: the page shows one state of the chain.
    let block = state.escrow.provider().get_block_number().await.map_err(ApiError::internal)?;
    let at = BlockId::number(block);
    let (registry, escrow) = (&state.registry, &state.escrow);
    let infos: Vec<_> = stream::iter(
        nodes.iter().copied().map(|node| async move { registry.nodeInfo(node).block(at).call().await }),
    )
    .buffered(READS_AT_ONCE)
    .try_collect()
    .await
    .map_err(ApiError::internal)?;
    let credits: Vec<_> = stream::iter(
        tokens
            .iter()
            .copied()
            .map(|token| async move { escrow.credits(owner, token).block(at).call().await }),
    )
    .buffered(READS_AT_ONCE)
    .try_collect()
    .await
    .map_err(ApiError::internal)?;
    let names = state.token_names.all(state, tokens.iter().copied()).await;

    let records: HashMap<_, _> = state.store.node_records().await?.into_iter().map(|r| (r.node, r)).collect();
    let banned = state.store.banned_nodes().await?;
    let nodes = nodes
        .into_iter()
        .zip(infos)
        .map(|(node, info)| {
            let view = live.get(&node);
            let paid = earnings.nodes.iter().find(|n| n.node == node);
            // A node bound to another owner since: its stake is not this owner's.
            let ours = info.owner == owner;
            OperatorNode {
                node,
                state: view.map_or(NodeState::Offline, |v| v.state),
                connected: view.is_some_and(|v| v.connected),
                last_heartbeat_secs: view.and_then(|v| v.last_heartbeat_secs),
                trust: crate::api::trust_view(
                    &records.get(&node).cloned().unwrap_or_default(),
                    banned.contains(&node),
                ),
                registered: ours && info.active,
                stake: if ours { Wei(info.stake) } else { Wei::ZERO },
                unbonding: if ours { Wei(info.unbonding) } else { Wei::ZERO },
                jobs_completed: paid.map_or(0, |p| p.jobs_completed),
                credits: paid.map_or(0, |p| p.credits),
                earned: paid.map(|p| p.earned.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let tokens = tokens
        .into_iter()
        .zip(credits)
        .zip(names)
        .map(|((token, credit), name)| OperatorToken {
            token,
            symbol: name.symbol,
            decimals: name.decimals,
            withdrawable: Wei(credit),
            earned: amount_of(&earnings.earned, token),
            withdrawn: amount_of(&earnings.withdrawn, token),
        })
        .collect();
    Ok(OperatorView {
        owner,
        block_number: block,
        nodes,
        more_nodes,
        jobs_completed: earnings.jobs_completed,
        credits: earnings.credits,
        tokens,
    })
}
