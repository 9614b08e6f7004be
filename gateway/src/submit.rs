//! What a browser needs to submit a job without re-implementing the
//! gateway's rules:
//!
//! - `GET /api/v1/blends/{hash}`: the artist's own earlier upload of a file
//!   (its summary), so a page that hashed the file locally skips uploading
//!   it again. Only the artist's own uploads: knowing a hash proves nothing,
//!   so another artist's file answers 404 as a missing one does.
//! - `GET /api/v1/typed-data/job-spec`: the EIP-712 domain and types of a
//!   job spec on this gateway's chain and escrow, in the JSON form
//!   `eth_signTypedData_v4` takes, derived from the same `sol!` struct the
//!   gateway verifies with.

use alloy::sol_types::SolStruct;
use axum::{
    Json,
    extract::{Path, State},
};
use lumen_protocol::{api::UploadedBlend, eip712::JobSpec};
use serde_json::{Value, json};

use crate::{AppState, api::ApiResult, error::ApiError, session::Artist};

/// `GET /api/v1/blends/{hash}`.
pub(crate) async fn own_blend(
    State(state): State<AppState>,
    artist: Artist,
    Path(hash): Path<String>,
) -> ApiResult<Json<UploadedBlend>> {
    let hash = crate::api::parse_hash(&hash)?;
    let missing = || ApiError::not_found(format!("no upload of {hash} by this wallet"));
    if !state.store.owns_blend(hash, artist.address).await? {
        return Err(missing());
    }
    let (Some(scene), Some(size)) = (state.store.scene(hash).await?, state.store.blobs().size(&hash).await)
    else {
        return Err(missing());
    };
    Ok(Json(UploadedBlend { hash, size, scene }))
}

/// The fields of an EIP-712 type string `Name(type field,…)`.
fn fields(encode_type: &str) -> Vec<Value> {
    let inner = encode_type.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')).unwrap_or_default();
    inner
        .split(',')
        .filter_map(|f| f.split_once(' '))
        .map(|(ty, name)| json!({ "name": name, "type": ty }))
        .collect()
}

/// `GET /api/v1/typed-data/job-spec`: `{domain, types, primaryType}`; the
/// page adds the `message` (a `JobSpec`, numbers as decimal strings).
pub(crate) async fn job_spec_types(State(state): State<AppState>) -> Json<Value> {
    let encode_type = JobSpec::eip712_encode_type();
    Json(json!({
        "domain": {
            "name": "Lumen",
            "version": "1",
            "chainId": state.chain.chain_id,
            "verifyingContract": state.chain.escrow,
        },
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" },
                { "name": "verifyingContract", "type": "address" },
            ],
            "JobSpec": fields(&encode_type),
        },
        "primaryType": "JobSpec",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_spec_type_lists_every_field_in_order() {
        let f = fields(&JobSpec::eip712_encode_type());
        let names: Vec<&str> = f.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "blendHash",
                "frameStart",
                "frameEnd",
                "frameStep",
                "width",
                "height",
                "engine",
                "token",
                "pricePerFrame",
                "salt"
            ]
        );
        assert_eq!(f[0]["type"], "bytes32");
        assert_eq!(f[8]["type"], "uint128");
    }
}
