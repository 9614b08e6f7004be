//! The challenge a node signs to prove it holds its key.
//!
//! The gateway sends a fresh random nonce on every connection; the node signs
//! [`challenge_message`] with EIP-191 `personal_sign`. Binding the gateway's
//! URL and the chain id into the text stops a signature given to one gateway
//! or chain from being replayed to another, and the nonce stops replays to
//! the same one.

use alloy_primitives::B256;

/// The exact text a node signs for a challenge.
pub fn challenge_message(gateway: &str, chain_id: u64, nonce: &B256) -> String {
    format!("Lumen node authentication\ngateway: {gateway}\nchain: {chain_id}\nnonce: {nonce}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_binds_gateway_chain_and_nonce() {
        let nonce = B256::repeat_byte(0xab);
        let text = challenge_message("ws://127.0.0.1:1/ws", 31337, &nonce);
        assert!(text.contains("ws://127.0.0.1:1/ws"));
        assert!(text.contains("chain: 31337"));
        assert!(text.ends_with(&format!("{nonce}")));
        assert_ne!(text, challenge_message("ws://127.0.0.1:1/ws", 1, &nonce));
    }
}
