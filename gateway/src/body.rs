//! Bodies that are never in memory whole: uploads stream into the blob
//! store's temporary files under a size cap, an idle timeout and a floor on
//! their pace; blobs stream out of their files.
//!
//! A refused or abandoned upload leaves nothing behind: its temporary file
//! is removed when the [`PendingBlob`] or its writer is dropped, which also
//! happens when the client disconnects (the handler's future is dropped).

use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{StreamExt, TryStreamExt};
use lumen_store::{BlobReader, BlobStore, PendingBlob};
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use crate::{error::ApiError, limits::LimitsConfig};

/// Bytes read from disk per piece of a streamed response.
const READ_CHUNK: usize = 64 * 1024;

fn too_large(max: u64) -> ApiError {
    ApiError::client(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the upload is larger than {max} bytes"),
    )
}

/// Streams a request body into a temporary file of `blobs`, hashing it on
/// the way. Refused with 413 `too_large` as soon as it announces or sends
/// more than `max` bytes, 408 `upload_timeout` when it pauses longer than
/// `upload_idle_secs`, 408 `upload_too_slow` when its average pace after
/// that long falls under `upload_min_bytes_per_sec`, 400 `empty` when it is
/// empty.
pub(crate) async fn spool(
    blobs: &BlobStore,
    headers: &HeaderMap,
    body: Body,
    max: u64,
    limits: &LimitsConfig,
) -> Result<PendingBlob, ApiError> {
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let idle = limits.upload_idle();
    let started = Instant::now();
    let mut stream = body.into_data_stream();
    let mut writer = blobs.writer().await.map_err(ApiError::internal)?;
    loop {
        let piece = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                tracing::warn!(target: "gateway::api", received = writer.size(), "upload stalled: cut off");
                return Err(ApiError::client(
                    StatusCode::REQUEST_TIMEOUT,
                    "upload_timeout",
                    format!("nothing received for {}s", idle.as_secs()),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                return Err(ApiError::bad_request(
                    "upload_interrupted",
                    format!("the upload broke off: {err}"),
                ));
            }
            Ok(Some(Ok(piece))) => piece,
        };
        if writer.size() + piece.len() as u64 > max {
            return Err(too_large(max));
        }
        writer.write(&piece).await.map_err(ApiError::internal)?;
        let paced = started.elapsed().saturating_sub(idle).as_secs_f64();
        if (writer.size() as f64) < paced * limits.upload_min_bytes_per_sec as f64 {
            tracing::warn!(target: "gateway::api", received = writer.size(), secs = started.elapsed().as_secs(), "upload too slow: cut off");
            return Err(ApiError::client(
                StatusCode::REQUEST_TIMEOUT,
                "upload_too_slow",
                format!(
                    "the upload is slower than {} bytes a second on average",
                    limits.upload_min_bytes_per_sec
                ),
            ));
        }
    }
    if writer.size() == 0 {
        return Err(ApiError::bad_request("empty", "the upload is empty"));
    }
    writer.finish().await.map_err(ApiError::internal)
}

/// A blob streamed from its file with its length announced; a blob found
/// corrupt on the way breaks the response off rather than completing it.
pub(crate) fn stream_blob(reader: BlobReader, content_type: &'static str) -> Response {
    let size = reader.size();
    let stream = ReaderStream::with_capacity(reader, READ_CHUNK).inspect_err(
        |err| tracing::error!(target: "gateway::api", %err, "blob read failed: response broken off"),
    );
    let body = Body::from_stream(stream);
    ([(header::CONTENT_TYPE, content_type), (header::CONTENT_LENGTH, &size.to_string())], body)
        .into_response()
}

/// Whether a spooled upload starts like a PNG, OpenEXR or JPEG file (its
/// magic bytes; the verifier decodes the rest).
pub(crate) async fn starts_like_an_image(path: &std::path::Path) -> bool {
    use tokio::io::AsyncReadExt as _;
    let Ok(mut file) = tokio::fs::File::open(path).await else { return false };
    let mut head = [0u8; 16];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    lumen_verifier::FrameFormat::sniff(&head[..filled]).is_some()
}
