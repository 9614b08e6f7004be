//! A job's terms: what the escrow hashed when the job was opened and takes
//! back as arguments of `settle`, `cancel`, `refund` and the registry's
//! `slash`.
//!
//! The escrow stores one word per job (the hash of its terms and its status),
//! so whoever calls it must know the terms: they are exactly the fields of the
//! job's `JobOpened` event. The indexer has them in its mirror
//! ([`terms_of`]); the CLI and the gateway read the event from the chain
//! ([`find_terms`]). Either way the escrow checks them against its hash, so
//! a wrong or forged event can only make a call revert, never pay.

use alloy::{primitives::B256, providers::Provider, rpc::types::Filter, sol_types::SolEvent};
use lumen_protocol::{Address, ChainEvent, JobId};

use crate::{
    ChainError, ChainResult,
    contracts::{
        RenderEscrow,
        escrow::IRenderEscrow::{JobState, JobTerms},
    },
};

/// The terms of the job a `JobOpened` event opened (`None` for other events).
pub fn terms_of(opened: &ChainEvent) -> Option<JobTerms> {
    let ChainEvent::JobOpened {
        artist,
        spec_hash,
        token,
        price_per_frame,
        frame_count,
        verifications,
        deadline,
        opened_at,
        fee_bps,
        ..
    } = opened
    else {
        return None;
    };
    Some(JobTerms {
        specHash: *spec_hash,
        artist: *artist,
        token: *token,
        pricePerFrame: price_per_frame.0.to(),
        frameCount: *frame_count,
        verifications: *verifications,
        deadline: *deadline,
        openedAt: *opened_at,
        feeBps: *fee_bps,
    })
}

/// The terms of job `job_id` from the chain: its `JobOpened` event (looked up
/// from `from_block`, the deployment block), checked against the hash the
/// escrow stores. Returns the terms and the job's state, or `None` when the
/// escrow has no such job.
pub async fn find_terms<P: Provider>(
    provider: &P,
    escrow: Address,
    from_block: u64,
    job_id: JobId,
) -> ChainResult<Option<(JobTerms, JobState)>> {
    let filter = Filter::new()
        .address(escrow)
        .event_signature(RenderEscrow::JobOpened::SIGNATURE_HASH)
        .topic1(B256::from(job_id.to_u256()))
        .from_block(from_block);
    let logs = provider.get_logs(&filter).await?;
    // After a reorg the same id may have been opened twice on different
    // branches: the escrow's hash tells which event is canonical.
    let instance = RenderEscrow::new(escrow, provider);
    for log in logs.iter().rev() {
        let Ok(opened) = RenderEscrow::JobOpened::decode_log(&log.inner) else { continue };
        let e = opened.data;
        let terms = JobTerms {
            specHash: e.specHash,
            artist: e.artist,
            token: e.token,
            pricePerFrame: e.pricePerFrame,
            frameCount: e.frameCount,
            verifications: e.verifications,
            deadline: e.deadline,
            openedAt: e.openedAt,
            feeBps: e.feeBps,
        };
        match instance.getJob(job_id.to_u256(), terms.clone()).call().await {
            Ok(state) => return Ok(Some((terms, state))),
            Err(err) => match ChainError::from_contract(err) {
                ChainError::EscrowReverted(_) => continue,
                other => return Err(other),
            },
        }
    }
    Ok(None)
}

/// The same terms as the registry's bindings type them (`slash` takes them).
pub fn for_registry(terms: &JobTerms) -> crate::contracts::registry::IRenderEscrow::JobTerms {
    crate::contracts::registry::IRenderEscrow::JobTerms {
        specHash: terms.specHash,
        artist: terms.artist,
        token: terms.token,
        pricePerFrame: terms.pricePerFrame,
        frameCount: terms.frameCount,
        verifications: terms.verifications,
        deadline: terms.deadline,
        openedAt: terms.openedAt,
        feeBps: terms.feeBps,
    }
}

/// The terms to pass to `NodeRegistry.slash` with job id 0, which pays the
/// treasury and reads no job: all zero.
pub fn no_job_terms() -> crate::contracts::registry::IRenderEscrow::JobTerms {
    crate::contracts::registry::IRenderEscrow::JobTerms {
        specHash: alloy::primitives::B256::ZERO,
        artist: alloy::primitives::Address::ZERO,
        token: alloy::primitives::Address::ZERO,
        pricePerFrame: 0,
        frameCount: 0,
        verifications: 0,
        deadline: 0,
        openedAt: 0,
        feeBps: 0,
    }
}
