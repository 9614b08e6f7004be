//! `GET /api/v1/jobs/{id}/frames.zip`: every frame of a job that is paid
//! on-chain, in one archive, to the job's artist. Frames not yet paid are
//! left out (their previews are on the job page), exactly as single-frame
//! downloads answer `402 not_paid`.
//!
//! The archive is written to a temporary file beside the blobs, then
//! streamed from disk and removed: memory stays bounded whatever the job's
//! size. Frames are stored, not compressed (PNG and OpenEXR are compressed
//! already). At most [`MAX_BUILDS`] archives are built at once.

use std::{io::Write as _, sync::Arc};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;
use lumen_protocol::{ContentHash, JobId};
use tokio::sync::Semaphore;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use crate::{
    AppState,
    api::{ApiResult, own_job},
    error::ApiError,
    session::Artist,
};

/// Archives built at once (each copies a job's frames to disk once).
pub(crate) const MAX_BUILDS: usize = 4;

/// The permits for building archives.
#[derive(Debug, Clone)]
pub(crate) struct Builds(Arc<Semaphore>);

impl Default for Builds {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_BUILDS)))
    }
}

/// The file extension of an image by its first bytes.
fn extension(head: &[u8]) -> &'static str {
    if head.starts_with(b"\x89PNG") {
        "png"
    } else if head.starts_with(&[0x76, 0x2f, 0x31, 0x01]) {
        "exr"
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        "jpg"
    } else {
        "bin"
    }
}

/// Writes `frames` (archive name stem, blob path) into `out` as a zip.
fn write_zip(out: &std::fs::File, frames: &[(String, std::path::PathBuf)]) -> std::io::Result<()> {
    let mut zip = ZipWriter::new(out);
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(true);
    for (stem, path) in frames {
        let mut file = std::fs::File::open(path)?;
        let mut head = [0u8; 4];
        let n = std::io::Read::read(&mut file, &mut head)?;
        std::io::Seek::rewind(&mut file)?;
        zip.start_file(format!("{stem}.{}", extension(&head[..n])), options)
            .map_err(std::io::Error::other)?;
        std::io::copy(&mut file, &mut zip)?;
    }
    zip.finish().map_err(std::io::Error::other)?.flush()
}

/// `GET /api/v1/jobs/{id}/frames.zip`.
pub(crate) async fn paid_frames(
    State(state): State<AppState>,
    artist: Artist,
    Path(id): Path<JobId>,
) -> ApiResult<Response> {
    own_job(&state, artist, id).await?;
    let paid: std::collections::HashSet<_> =
        state.store.payouts(id).await?.into_iter().map(|p| p.frame_index).collect();
    let frames: Vec<(String, ContentHash)> = state
        .store
        .frames(id)
        .await?
        .into_iter()
        .filter(|f| paid.contains(&f.frame_index))
        .filter_map(|f| f.output_hash.map(|h| (format!("{:05}", f.frame_number), h)))
        .collect();
    if frames.is_empty() {
        return Err(ApiError::client(
            StatusCode::PAYMENT_REQUIRED,
            "not_paid",
            format!("no frame of job {id} is paid on-chain yet"),
        ));
    }
    let Ok(_permit) = state.archives.0.clone().try_acquire_owned() else {
        return Err(ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{MAX_BUILDS} archives are being built; try again in a moment"),
        ));
    };
    let blobs = state.store.blobs().clone();
    let paths: Vec<(String, std::path::PathBuf)> =
        frames.iter().map(|(n, h)| (n.clone(), blobs.path(h))).collect();
    let scratch = blobs.scratch_file().await?;
    let file = scratch.reopen().map_err(ApiError::internal)?;
    let written = tokio::task::spawn_blocking(move || write_zip(&file, &paths).map(|()| scratch))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let reader = tokio::fs::File::from_std(written.reopen().map_err(ApiError::internal)?);
    let size = reader.metadata().await.map_err(ApiError::internal)?.len();
    // The temporary file lives as long as the response streams, then goes.
    let stream = tokio_util::io::ReaderStream::new(reader).map(move |chunk| {
        let _keep = &written;
        chunk
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"lumen-job-{id}-frames.zip\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
