//! Checking an uploaded `.blend` before anything is paid for it.
//!
//! The upload is read where it was streamed to (a temporary file of the
//! blob store) by Blender in a sandboxed subprocess ([`lumen_blender::Blender::inspect`]: no network,
//! nothing of the gateway's visible, nothing writable but its own scratch
//! folder): a crafted file can crash that process, never the gateway. Files that reference external
//! data they do not pack are refused — Blender would silently render the
//! missing textures magenta.

use std::path::Path;

use axum::http::StatusCode;
use lumen_protocol::api::SceneSummary;
use serde_json::json;

use crate::{AppState, error::ApiError};

/// Inspects an upload; a 422 names whatever is wrong with it.
pub(crate) async fn check_blend(state: &AppState, path: &Path) -> Result<SceneSummary, ApiError> {
    let Some(blender) = state.blender.clone() else {
        return Err(ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_blender",
            "this gateway has no Blender to inspect uploads with",
        ));
    };
    let scene = blender.inspect(path).await.map_err(|err| {
        let unprocessable =
            |code, message: String| ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, code, message);
        match err {
            lumen_blender::BlenderError::NotABlendFile { .. } => {
                unprocessable("not_a_blend", err.to_string())
            }
            lumen_blender::BlenderError::Unreadable { .. } => {
                unprocessable("unreadable_blend", format!("{err} (is it truncated or corrupt?)"))
            }
            lumen_blender::BlenderError::NewerFile { .. } => unprocessable("newer_blender", err.to_string()),
            lumen_blender::BlenderError::Timeout(_) => {
                unprocessable("inspect_timeout", format!("Blender took too long to read the file: {err}"))
            }
            other => ApiError::internal(other),
        }
    })?;
    if !scene.unpacked_external_files.is_empty() {
        let files = &scene.unpacked_external_files;
        let list = files
            .iter()
            .map(|f| format!("{} {:?} ({})", f.kind, f.name, f.path))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unpacked_files",
            format!(
                "the .blend references files it does not contain: {list}; pack them (File > External Data > Pack Resources) and upload again"
            ),
        )
        .with_details(json!({ "files": files })));
    }
    if scene.frame_end < scene.frame_start || scene.frame_step < 1 {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_range",
            format!(
                "the scene's frame range {}..{} (step {}) is empty",
                scene.frame_start, scene.frame_end, scene.frame_step
            ),
        ));
    }
    if !scene.has_camera {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_camera",
            "the scene has no active camera",
        ));
    }
    Ok(SceneSummary {
        frame_start: scene.frame_start,
        frame_end: scene.frame_end,
        frame_step: scene.frame_step,
        width: scene.width,
        height: scene.height,
        engine: scene.engine.clone(),
        fps: scene.fps,
        saved_with: scene.blender_version_saved,
        samples: scene.samples,
    })
}
