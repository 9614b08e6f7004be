//! An owner's nodes and what it can withdraw now, as the gateway serves
//! them for the dashboard's operator page (`GET /api/v1/operators/{owner}`).
//! Public, like everything in it: the chain's figures (stake, withdrawable
//! credit) read at one block, the mirror's (earned, withdrawn, renders
//! paid), and the gateway's own view of its nodes (health, heartbeat,
//! reputation).

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::{Wei, api::TrustView, earnings::TokenAmount, node::NodeState};

/// Most nodes one operator view lists (by address; [`OperatorView::more_nodes`]
/// says when there are more). Each listed node costs one chain read.
pub const MAX_OPERATOR_NODES: usize = 100;

/// `GET /api/v1/operators/{owner}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorView {
    /// The owner wallet.
    pub owner: Address,
    /// The block the on-chain figures (stake, withdrawable credit) were read at.
    pub block_number: u64,
    /// Its nodes, by address: those bound to it in the mirrored registry,
    /// those connected to this gateway under it, and those that earned for
    /// it (at most [`MAX_OPERATOR_NODES`]).
    pub nodes: Vec<OperatorNode>,
    /// Whether it has more nodes than listed.
    pub more_nodes: bool,
    /// Renders its nodes were paid for on-chain (frames and verification renders).
    pub jobs_completed: u64,
    /// Credits of its nodes (renders × the credits of a render job).
    pub credits: u64,
    /// The native coin, every token the gateway accepts and every token it
    /// earned in: what it earned, withdrew and can withdraw now.
    pub tokens: Vec<OperatorToken>,
}

/// One node of an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorNode {
    /// Node key address.
    pub node: Address,
    /// Health as this gateway sees it; `OFFLINE` for a node that has not
    /// connected to it since it started.
    pub state: NodeState,
    /// Whether it is connected to this gateway now.
    pub connected: bool,
    /// Seconds since its last heartbeat to this gateway, if any.
    pub last_heartbeat_secs: Option<f64>,
    /// Its track record from the renders this gateway stored, with its reputation.
    pub trust: TrustView,
    /// Whether it is registered (active) in the `NodeRegistry` and bound to
    /// this owner, at [`OperatorView::block_number`].
    pub registered: bool,
    /// Its active stake in the `NodeRegistry`, wei of the native coin.
    pub stake: Wei,
    /// Its stake in the unbonding period, wei.
    pub unbonding: Wei,
    /// Renders it was paid for on-chain for this owner.
    pub jobs_completed: u64,
    /// Credits of those renders.
    pub credits: u64,
    /// Earned for this owner (fees deducted), per token.
    pub earned: Vec<TokenAmount>,
}

/// What an owner earned, withdrew and can withdraw in one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorToken {
    /// The token (`address(0)`: the native coin).
    pub token: Address,
    /// Its symbol (`ETH` for the native coin; read from the token
    /// contract, `None` when it does not say).
    pub symbol: Option<String>,
    /// Its decimals (18 for the native coin; from the token contract,
    /// `None` when it does not say).
    pub decimals: Option<u8>,
    /// `RenderEscrow.credits(owner, token)` at [`OperatorView::block_number`]:
    /// what `withdraw(token)` pays now.
    pub withdrawable: Wei,
    /// Earned (credited, fees deducted), from the mirror.
    pub earned: Wei,
    /// Withdrawn, from the mirror.
    pub withdrawn: Wei,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_view_keeps_amounts_as_strings_and_states_by_name() {
        let view = OperatorView {
            owner: Address::repeat_byte(4),
            block_number: 7,
            nodes: vec![OperatorNode {
                node: Address::repeat_byte(7),
                state: NodeState::Healthy,
                connected: true,
                last_heartbeat_secs: Some(1.5),
                trust: TrustView::default(),
                registered: true,
                stake: Wei::from(10u128.pow(18)),
                unbonding: Wei::ZERO,
                jobs_completed: 2,
                credits: 20,
                earned: vec![TokenAmount { token: Address::ZERO, amount: Wei::from(1_950u128) }],
            }],
            more_nodes: false,
            jobs_completed: 2,
            credits: 20,
            tokens: vec![OperatorToken {
                token: Address::ZERO,
                symbol: Some("ETH".into()),
                decimals: Some(18),
                withdrawable: Wei::from(1_950u128),
                earned: Wei::from(1_950u128),
                withdrawn: Wei::ZERO,
            }],
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["nodes"][0]["state"], "HEALTHY");
        assert_eq!(json["nodes"][0]["stake"], "1000000000000000000");
        assert_eq!(json["tokens"][0]["withdrawable"], "1950");
        assert_eq!(serde_json::from_value::<OperatorView>(json).unwrap(), view);
    }
}
