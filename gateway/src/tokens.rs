//! Payment tokens by name: `GET /api/v1/tokens` lists the native coin and
//! every token the gateway accepts with its symbol and decimals, read once
//! from the token contracts, so pages show amounts in their token.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use alloy::primitives::Address;
use axum::{Json, extract::State};
use futures::{StreamExt, stream};
use lumen_chain::contracts::Erc20;
use lumen_protocol::earnings::TokenInfo;

use crate::AppState;

/// Token contracts one request reads at once.
pub(crate) const READS_AT_ONCE: usize = 8;

/// Symbols and decimals of the tokens asked about, read once from their
/// contracts; a token that does not answer is asked again next time. Only
/// tokens the gateway accepts or mirrored payouts were made in are asked
/// about, so the map stays as small as that list.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenNames(Arc<Mutex<HashMap<Address, TokenInfo>>>);

impl TokenNames {
    /// `token`'s symbol and decimals (the native coin's are ETH and 18).
    pub(crate) async fn get(&self, state: &AppState, token: Address) -> TokenInfo {
        if token.is_zero() {
            return TokenInfo { token, symbol: Some("ETH".into()), decimals: Some(18) };
        }
        if let Some(info) = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&token) {
            return info.clone();
        }
        let erc20 = Erc20::new(token, state.escrow.provider().clone());
        let (symbol, decimals) =
            futures::join!(async { erc20.symbol().call().await }, async { erc20.decimals().call().await });
        let symbol = symbol.ok().map(|s| lumen_protocol::api::plain_symbol(&s));
        let info = TokenInfo { token, symbol, decimals: decimals.ok() };
        if info.symbol.is_some() && info.decimals.is_some() {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(token, info.clone());
        }
        info
    }

    /// Every token of `tokens`, in order.
    pub(crate) async fn all(
        &self,
        state: &AppState,
        tokens: impl IntoIterator<Item = Address>,
    ) -> Vec<TokenInfo> {
        stream::iter(tokens.into_iter().map(|token| self.get(state, token)))
            .buffered(READS_AT_ONCE)
            .collect()
            .await
    }
}

/// `GET /api/v1/tokens`: the native coin, then the accepted tokens in the
/// market's order.
pub(crate) async fn tokens(State(state): State<AppState>) -> Json<Vec<TokenInfo>> {
    let mut list = vec![Address::ZERO];
    list.extend(state.config.market.tokens.iter().map(|t| t.token).filter(|t| !t.is_zero()));
    Json(state.token_names.all(&state, list).await)
}
