//! The payout explorer, served from the chain mirror and the chain's RPC:
//! public, as the chain is.
//!
//! - `GET /api/v1/explorer`: where transaction and address links point
//!   (this gateway's pages on a devnet, or the configured `explorer_url`).
//! - `GET /api/v1/explorer/tx/{hash}`: block, status, gas, decoded events.
//! - `GET /api/v1/explorer/address/{address}`: payouts, jobs, withdrawals,
//!   slashes, stake; an owner's earnings.
//! - `GET /api/v1/explorer/jobs/{id}`: every on-chain event of a job, and
//!   the slashes of nodes that cheated on it with their evidence.
//! - `GET /api/v1/evidence/{hash}`: a slash's evidence bundle (JSON: the
//!   renders, their signatures and comparisons), whose hash is on-chain.

use alloy::{network::ReceiptResponse, primitives::B256, providers::Provider};
use axum::{
    Json,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use lumen_protocol::{
    JobId,
    explorer::{ExplorerAddress, ExplorerJob, ExplorerLinks, ExplorerSlash, ExplorerTx},
};

use crate::{AppState, api::ApiResult, error::ApiError};

/// Most events an address page lists (the newest).
const ADDRESS_EVENTS: i64 = 1_000;

/// Where links point for this gateway's chain.
pub(crate) fn links(state: &AppState) -> ExplorerLinks {
    match &state.chain.explorer_url {
        Some(tx_url) => {
            let address_url = if tx_url.contains("/tx/{tx}") {
                tx_url.replace("/tx/{tx}", "/address/{address}")
            } else {
                format!("{}/#/explorer/address/{{address}}", state.public_url)
            };
            ExplorerLinks { tx_url: tx_url.clone(), address_url }
        }
        None => ExplorerLinks {
            tx_url: format!("{}/#/explorer/tx/{{tx}}", state.public_url),
            address_url: format!("{}/#/explorer/address/{{address}}", state.public_url),
        },
    }
}

/// `GET /api/v1/explorer`.
pub(crate) async fn explorer_links(State(state): State<AppState>) -> Json<ExplorerLinks> {
    Json(links(&state))
}

/// `GET /api/v1/explorer/tx/{hash}`.
pub(crate) async fn tx(
    State(state): State<AppState>,
    Path(hash): Path<String>,
) -> ApiResult<Json<ExplorerTx>> {
    let hash: B256 = hash
        .parse()
        .map_err(|_| ApiError::bad_request("bad_tx", format!("{hash:?} is not a transaction hash")))?;
    state.limits.chain_view(transaction(&state, hash)).await.map(Json)
}

/// A transaction's receipt and block from the RPC, its events from the mirror.
async fn transaction(state: &AppState, hash: B256) -> ApiResult<ExplorerTx> {
    let provider = state.escrow.provider();
    let receipt = provider.get_transaction_receipt(hash).await.map_err(ApiError::internal)?;
    let Some(receipt) = receipt else {
        return Err(ApiError::not_found(format!("transaction {hash:#x}")));
    };
    let block_number = receipt.block_number();
    let block_time = match block_number {
        Some(n) => provider
            .get_block_by_number(n.into())
            .await
            .map_err(ApiError::internal)?
            .map(|b| b.header.timestamp),
        None => None,
    };
    Ok(ExplorerTx {
        hash,
        block_number,
        block_time,
        success: receipt.status(),
        from: receipt.from(),
        to: receipt.to(),
        gas_used: receipt.gas_used(),
        effective_gas_price: receipt.effective_gas_price(),
        events: state.store.chain_events_of_tx(hash).await?,
        job_tokens: state.store.job_tokens_of_tx(hash).await?,
    })
}

/// `GET /api/v1/explorer/address/{address}`.
pub(crate) async fn address(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<Json<ExplorerAddress>> {
    let address = crate::earnings::parse_address(&address)?;
    Ok(Json(ExplorerAddress {
        address,
        events: state.store.chain_events_of_address(address, ADDRESS_EVENTS).await?,
        earnings: state.store.owner_earnings(address).await?,
        job_tokens: state.store.job_tokens_of_address(address, ADDRESS_EVENTS).await?,
    }))
}

/// `GET /api/v1/explorer/jobs/{id}`.
pub(crate) async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ExplorerJob>> {
    let job_id: JobId =
        id.parse().map_err(|_| ApiError::bad_request("bad_job_id", format!("{id:?} is not a job id")))?;
    let events = state.store.chain_events(Some(job_id)).await?;
    let slashes: Vec<ExplorerSlash> = state
        .store
        .bans()
        .await?
        .into_iter()
        .filter(|b| b.job_id == job_id)
        .map(|b| ExplorerSlash {
            node: b.node,
            frame_index: b.frame_index.get(),
            reason: b.reason,
            evidence: b.evidence_hash,
            tx: b.slash_tx,
        })
        .collect();
    if events.is_empty() && slashes.is_empty() {
        return Err(ApiError::not_found(format!("job {job_id} on-chain")));
    }
    Ok(Json(ExplorerJob { job_id, events, slashes }))
}

/// `GET /api/v1/evidence/{hash}`: only the evidence bundles of bans, never
/// another blob (scenes and frames stay private).
pub(crate) async fn evidence(State(state): State<AppState>, Path(hash): Path<String>) -> ApiResult<Response> {
    let hash = crate::api::parse_hash(&hash)?;
    if !state.store.bans().await?.iter().any(|b| b.evidence_hash == hash) {
        return Err(ApiError::not_found(format!("evidence {hash}")));
    }
    let Some(bytes) = state.store.blobs().get(&hash).await? else {
        return Err(ApiError::not_found(format!("evidence {hash}")));
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
