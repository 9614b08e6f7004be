//! The proof a node key gives when it is bound to an owner wallet.
//!
//! `NodeRegistry.register(node, deadline, signature)` is sent by the owner
//! (sending it is the owner's consent) and carries an EIP-712 signature by
//! the node key over `Bind(node, owner, nonce, deadline)`, so nobody can bind
//! a key they do not hold, and a signature cannot be replayed (the nonce
//! moves on every registration).

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    signers::{Signer, local::PrivateKeySigner},
    sol,
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use crate::ChainResult;

sol! {
    /// The EIP-712 message a node key signs to be bound to `owner`.
    #[derive(Debug, PartialEq, Eq)]
    struct Bind {
        address node;
        address owner;
        uint256 nonce;
        uint256 deadline;
    }
}

/// The registry's EIP-712 domain on `chain_id` at `registry`.
pub fn domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Lumen NodeRegistry",
        version: "1",
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

/// The digest the node key signs.
pub fn digest(bind: &Bind, chain_id: u64, registry: Address) -> B256 {
    bind.eip712_signing_hash(&domain(chain_id, registry))
}

/// Signs a binding of `node_key` to `owner` with the node key.
pub async fn sign(
    node_key: &PrivateKeySigner,
    owner: Address,
    nonce: U256,
    deadline: U256,
    chain_id: u64,
    registry: Address,
) -> ChainResult<Bytes> {
    let bind = Bind { node: node_key.address(), owner, nonce, deadline };
    let signature = node_key.sign_hash(&digest(&bind, chain_id, registry)).await?;
    Ok(signature.as_bytes().to_vec().into())
}
