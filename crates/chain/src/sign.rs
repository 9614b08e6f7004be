//! Signing Lumen's EIP-712 messages with a local key. The message types and
//! digests live in [`lumen_protocol::eip712`], shared with the node.

use alloy::{
    primitives::{B256, Bytes},
    signers::{Signer, local::PrivateKeySigner},
};
pub use lumen_protocol::eip712::*;

use crate::ChainResult;

/// Signs a digest, returning the 65-byte signature.
pub async fn sign_digest(key: &PrivateKeySigner, digest: B256) -> ChainResult<Bytes> {
    Ok(key.sign_hash(&digest).await?.as_bytes().to_vec().into())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};

    use super::*;

    #[tokio::test]
    async fn result_signature_recovers_the_node_and_binds_every_field() {
        let key = PrivateKeySigner::random();
        let escrow = Address::repeat_byte(7);
        let result = FrameResult { jobId: U256::from(1), frameIndex: 2, outputHash: B256::repeat_byte(3) };
        let digest = result_digest(&result, 31337, escrow);
        let sig = sign_digest(&key, digest).await.unwrap();
        assert_eq!(recover(digest, &sig).unwrap(), key.address());

        let other = FrameResult { frameIndex: 3, ..result };
        assert_ne!(recover(result_digest(&other, 31337, escrow), &sig).unwrap(), key.address());
        assert_ne!(result_digest(&FrameResult { frameIndex: 2, ..other }, 1, escrow), digest);
        assert!(recover(digest, &sig[..64]).is_err());
    }
}
