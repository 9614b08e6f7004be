//! `GET /api/v1/operators/{owner}`: an owner's nodes and what it can
//! withdraw now, for the dashboard's operator page. Public, as the chain
//! is: the stake and the withdrawable credit are read from the chain at one
//! block (so the page shows what `withdraw` would pay), earned and
//! withdrawn come from the mirror, health and reputation from this
//! gateway. The work is bounded: at most [`MAX_OPERATOR_NODES`] nodes and
//! the tokens the gateway accepts or the owner earned in, each one chain
//! read, [`READS_AT_ONCE`] at a time.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use alloy::{eips::BlockId, primitives::Address, providers::Provider};
use axum::{
    Json,
    extract::{Path, State},
};
use futures::{StreamExt, TryStreamExt, stream};
use lumen_chain::contracts::Erc20;
use lumen_protocol::{
    Wei,
    earnings::amount_of,
    node::NodeState,
    operator::{MAX_OPERATOR_NODES, OperatorNode, OperatorToken, OperatorView},
};

use crate::{AppState, api::ApiResult, error::ApiError};

/// Chain reads one request has in flight at once.
const READS_AT_ONCE: usize = 8;

/// A token's symbol and decimals, as its contract says (`None`: it does not).
type TokenName = (Option<String>, Option<u8>);

/// Symbols and decimals of the tokens asked about, read once from their
/// contracts (a token that does not answer is asked again next time).
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenNames(Arc<Mutex<HashMap<Address, TokenName>>>);

impl TokenNames {
    async fn get(&self, state: &AppState, token: Address) -> TokenName {
        if token.is_zero() {
            return (Some("ETH".into()), Some(18));
        }
        if let Some(name) = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&token) {
            return name.clone();
        }
        let erc20 = Erc20::new(token, state.escrow.provider().clone());
        let (symbol, decimals) =
            futures::join!(async { erc20.symbol().call().await }, async { erc20.decimals().call().await });
        let name = (symbol.ok(), decimals.ok());
        if name.0.is_some() && name.1.is_some() {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(token, name.clone());
        }
        name
    }
}

/// `GET /api/v1/operators/{owner}`.
pub(crate) async fn operator(
    State(state): State<AppState>,
    Path(owner): Path<String>,
) -> ApiResult<Json<OperatorView>> {
    let owner = crate::earnings::parse_address(&owner)?;
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
    let names: Vec<TokenName> =
        stream::iter(tokens.iter().copied().map(|token| state.token_names.get(&state, token)))
            .buffered(READS_AT_ONCE)
            .collect()
            .await;

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
        .map(|((token, credit), (symbol, decimals))| OperatorToken {
            token,
            symbol,
            decimals,
            withdrawable: Wei(credit),
            earned: amount_of(&earnings.earned, token),
            withdrawn: amount_of(&earnings.withdrawn, token),
        })
        .collect();
    Ok(Json(OperatorView {
        owner,
        block_number: block,
        nodes,
        more_nodes,
        jobs_completed: earnings.jobs_completed,
        credits: earnings.credits,
        tokens,
    }))
}
