//! EIP-712 messages signed off-chain: the artist's job spec and a node's
//! frame result.
//!
//! Both use the domain `Lumen` / `1` on the settlement chain with the escrow
//! as verifying contract, so a signature cannot be replayed on another chain
//! or deployment.

use alloy_primitives::{Address, B256, Signature};
use alloy_sol_types::{Eip712Domain, SolStruct, eip712_domain, sol};

sol! {
    /// What an artist commits to when opening a job; its EIP-712 hash is
    /// the `specHash` locked in the escrow.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct JobSpec {
        /// blake3 of the `.blend`.
        bytes32 blendHash;
        /// First Blender frame number to render.
        int32 frameStart;
        /// Last Blender frame number to render (inclusive).
        int32 frameEnd;
        /// Frame step (1 renders every frame).
        uint32 frameStep;
        /// Output width in pixels.
        uint32 width;
        /// Output height in pixels.
        uint32 height;
        /// Render engine, e.g. `CYCLES`.
        string engine;
        /// Payment token, zero for the native coin.
        address token;
        /// Price of one verified frame.
        uint128 pricePerFrame;
        /// Free salt so the same scene can be rendered twice.
        uint256 salt;
    }

    /// What a node signs for each rendered frame.
    #[derive(Debug, PartialEq, Eq)]
    struct FrameResult {
        /// On-chain job id.
        uint256 jobId;
        /// 0-based frame index within the job.
        uint32 frameIndex;
        /// blake3 of the uploaded output.
        bytes32 outputHash;
    }
}

impl JobSpec {
    /// Number of frames the spec covers, or `None` if the range is empty or
    /// the step is zero.
    pub fn frame_count(&self) -> Option<u32> {
        if self.frameStep == 0 || self.frameEnd < self.frameStart {
            return None;
        }
        let span = i64::from(self.frameEnd) - i64::from(self.frameStart);
        u32::try_from(span / i64::from(self.frameStep) + 1).ok()
    }

    /// The Blender frame number of frame index `index`.
    pub fn frame_number(&self, index: u32) -> i32 {
        let n = i64::from(self.frameStart) + i64::from(index) * i64::from(self.frameStep);
        i32::try_from(n).expect("index below frame_count keeps the frame number in the spec's i32 range")
    }
}

/// The EIP-712 domain of Lumen's off-chain messages.
pub fn domain(chain_id: u64, escrow: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Lumen",
        version: "1",
        chain_id: chain_id,
        verifying_contract: escrow,
    }
}

/// The spec hash an artist locks in the escrow.
pub fn spec_hash(spec: &JobSpec, chain_id: u64, escrow: Address) -> B256 {
    spec.eip712_signing_hash(&domain(chain_id, escrow))
}

/// The digest a node signs for a frame.
pub fn result_digest(result: &FrameResult, chain_id: u64, escrow: Address) -> B256 {
    result.eip712_signing_hash(&domain(chain_id, escrow))
}

/// Why a signature does not check out.
#[derive(Debug, thiserror::Error)]
#[error("bad signature: {0}")]
pub struct BadSignature(String);

/// Recovers the signer of a 65-byte signature over `digest`.
pub fn recover(digest: B256, signature: &[u8]) -> Result<Address, BadSignature> {
    let signature =
        Signature::try_from(signature).map_err(|e| BadSignature(format!("not a 65-byte signature: {e}")))?;
    signature.recover_address_from_prehash(&digest).map_err(|e| BadSignature(e.to_string()))
}

#[cfg(test)]
mod tests {
    use alloy_primitives::U256;

    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            blendHash: B256::repeat_byte(1),
            frameStart: 1,
            frameEnd: 6,
            frameStep: 1,
            width: 320,
            height: 180,
            engine: "CYCLES".into(),
            token: Address::ZERO,
            pricePerFrame: 1_000,
            salt: U256::from(9),
        }
    }

    #[test]
    fn frame_count_and_numbers() {
        let mut s = spec();
        assert_eq!(s.frame_count(), Some(6));
        assert_eq!(s.frame_number(5), 6);
        s.frameStep = 2;
        assert_eq!(s.frame_count(), Some(3));
        assert_eq!(s.frame_number(2), 5);
        s.frameEnd = 0;
        assert_eq!(s.frame_count(), None);
        s.frameEnd = 6;
        s.frameStep = 0;
        assert_eq!(s.frame_count(), None);
    }

    #[test]
    fn spec_hash_depends_on_salt_and_chain() {
        let escrow = Address::repeat_byte(7);
        let a = spec_hash(&spec(), 31337, escrow);
        assert_ne!(a, spec_hash(&JobSpec { salt: U256::from(10), ..spec() }, 31337, escrow));
        assert_ne!(a, spec_hash(&spec(), 1, escrow));
    }
}
