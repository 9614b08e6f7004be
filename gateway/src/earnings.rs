//! What operators earn, from the chain mirror: per-node earnings, an
//! owner's earnings and monthly statements (JSON or CSV), and the
//! leaderboard. Public: every figure is on the chain already (uptime, the
//! one figure that is not, is the gateway's own record of heartbeats).
//!
//! - `GET /api/v1/earnings`: every paid node.
//! - `GET /api/v1/earnings/{owner}`: an owner's nodes, earned and withdrawn.
//! - `GET /api/v1/earnings/{owner}/statements/{month}[?format=csv]`.
//! - `GET /api/v1/leaderboard`: computed again when the mirror moved or
//!   the clock minute turned (the operator guide: refreshed every 60 s),
//!   once however many ask at once.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use lumen_protocol::{
    Address,
    earnings::{Month, OwnerEarnings},
};
use serde::Deserialize;

use crate::{AppState, api::ApiResult, error::ApiError};

/// The window uptime is measured over.
pub(crate) const UPTIME_WINDOW_DAYS: u32 = 30;

/// The clock minute (Unix seconds / 60). The change feed's `minute` stamp
/// turns with it, and a dashboard showing the board reloads then.
pub(crate) fn clock_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or_default()
}

pub(crate) fn parse_address(text: &str) -> ApiResult<Address> {
    text.parse().map_err(|_| ApiError::bad_request("bad_address", format!("{text:?} is not an address")))
}

/// `GET /api/v1/earnings`: what every node that was ever paid earned;
/// computed again when the chain mirror moved, once however many ask.
pub(crate) async fn nodes(State(state): State<AppState>) -> ApiResult<Response> {
    let (_, chain) = state.store.network_stamps().await?;
    state.node_earnings.json(chain, async { Ok(state.store.node_earnings().await?) }).await
}

/// `GET /api/v1/earnings/{owner}`.
pub(crate) async fn owner(
    State(state): State<AppState>,
    Path(owner): Path<String>,
) -> ApiResult<Json<OwnerEarnings>> {
    Ok(Json(state.store.owner_earnings(parse_address(&owner)?).await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatementQuery {
    format: Option<String>,
}

/// `GET /api/v1/earnings/{owner}/statements/{month}`: JSON, or CSV with
/// `?format=csv`.
pub(crate) async fn statement(
    State(state): State<AppState>,
    Path((owner, month)): Path<(String, String)>,
    Query(q): Query<StatementQuery>,
) -> ApiResult<Response> {
    let owner = parse_address(&owner)?;
    let month: Month = month.parse().map_err(|e| ApiError::bad_request("bad_month", format!("{e}")))?;
    let statement = state.store.statement(owner, month).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(statement).into_response()),
        Some("csv") => {
            let name = format!("attachment; filename=\"lumen-{owner:#x}-{month}.csv\"");
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                statement.to_csv(),
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_request("bad_format", format!("format {other:?}: use json or csv"))),
    }
}

/// `GET /api/v1/leaderboard`: computed again when the chain mirror moved
/// (jobs completed, earnings) or the clock minute turned (uptime), so
/// never older than 60 s and showing a payout as soon as it is mirrored;
/// kept as its JSON and shared by every reader meanwhile, however many ask
/// at once (the change feed tells every open page at the same moment).
pub(crate) async fn leaderboard(State(state): State<AppState>) -> ApiResult<Response> {
    let (_, chain) = state.store.network_stamps().await?;
    state
        .leaderboard
        .json((clock_minute(), chain), async {
            let now = u64::try_from(lumen_store::now_ms() / 1_000).unwrap_or(0);
            Ok(state.store.leaderboard(now, UPTIME_WINDOW_DAYS).await?)
        })
        .await
}
