//! Rendering one frame in the sandbox.

use std::{
    ffi::{OsStr, OsString},
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::{
    Blender, RenderError,
    process::{self, Limits},
};

/// Resource limits of one render. Defaults follow the operator guide:
/// 5 minutes, 2 GB, 600 CPU-seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Wall-clock limit; the process group is killed after it.
    pub timeout: Duration,
    /// Address-space limit, bytes.
    pub memory_bytes: u64,
    /// CPU-time limit, seconds (over all threads).
    pub cpu_seconds: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(300), memory_bytes: 2 << 30, cpu_seconds: 600 }
    }
}

/// One frame to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderRequest {
    /// The `.blend` (already checked against its hash).
    pub blend: PathBuf,
    /// Blender frame number.
    pub frame: i32,
    /// Folder under which a private output folder is created.
    pub work_dir: PathBuf,
    /// Limits.
    pub limits: ResourceLimits,
    /// Render threads (`None`: Blender decides).
    pub threads: Option<u32>,
    /// The scene's frame range, when known: frames outside are refused
    /// (Blender would render them silently).
    pub expected_range: Option<(i32, i32)>,
}

/// A rendered frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOutput {
    /// The PNG.
    pub bytes: Vec<u8>,
    /// Wall time of the Blender process (start-up, load, render, save).
    pub wall_time: Duration,
    /// Render time Blender reported (`Time: mm:ss.ff`), if it did.
    pub render_time: Option<Duration>,
}

/// Maps Blender's output lines to a typed failure, if one is recognisable.
pub(crate) fn classify(stdout: &str, stderr: &str) -> Option<RenderError> {
    for line in stdout.lines().chain(stderr.lines()).map(str::trim) {
        if line.contains("Build without") || line.contains("built without") {
            let detail =
                line.rsplit('|').next().unwrap_or(line).trim().trim_start_matches("Error: ").to_owned();
            return Some(RenderError::MissingFeature { detail });
        }
        if line.contains("Failed to read blend file") || line.contains("File format is not supported") {
            return Some(RenderError::UnreadableFile {
                detail: line.trim_start_matches("Error: ").to_owned(),
            });
        }
        if line.contains("No camera found in scene") || line.contains("Unable to render without camera") {
            return Some(RenderError::NoCamera);
        }
        if line.contains("Memory allocation failed")
            || line.contains("std::bad_alloc")
            || line.contains("Out of memory")
        {
            return Some(RenderError::OutOfMemory { detail: line.to_owned() });
        }
    }
    None
}

/// Parses Blender's `Time: 00:01.52 (Saving: …)` line.
pub(crate) fn parse_render_time(stdout: &str) -> Option<Duration> {
    let line = stdout.lines().map(str::trim).rfind(|l| l.starts_with("Time: "))?;
    let value = line.strip_prefix("Time: ")?.split_whitespace().next()?;
    let mut secs = 0.0;
    for part in value.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    Duration::try_from_secs_f64(secs).ok()
}

impl Blender {
    /// Renders one frame to PNG under the request's limits.
    pub async fn render_frame(&self, req: &RenderRequest) -> Result<RenderOutput, RenderError> {
        if let Some((start, end)) = req.expected_range
            && (req.frame < start || req.frame > end)
        {
            return Err(RenderError::FrameOutOfRange { frame: req.frame, start, end });
        }
        tokio::fs::create_dir_all(&req.work_dir).await?;
        let out_dir = tempfile::Builder::new().prefix("render-").tempdir_in(&req.work_dir)?;
        let pattern = out_dir.path().join("frame_#####");
        let mut args: Vec<OsString> = vec![
            "-b".into(),
            "--factory-startup".into(),
            "--disable-autoexec".into(),
            req.blend.clone().into_os_string(),
            "-o".into(),
            pattern.into_os_string(),
            "-F".into(),
            "PNG".into(),
            "-x".into(),
            "1".into(),
        ];
        if let Some(threads) = req.threads {
            args.push("-t".into());
            args.push(threads.to_string().into());
        }
        args.push("-f".into());
        args.push(req.frame.to_string().into());
        let arg_refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        let limits = Limits { memory_bytes: req.limits.memory_bytes, cpu_seconds: req.limits.cpu_seconds };
        let out = process::run(&self.exe, &arg_refs, Some(limits), req.limits.timeout).await?;
        debug!(target: "blender::render", frame = req.frame, status = %out.status, wall = ?out.wall, "blender finished");

        if let Some(err) = classify(&out.stdout, &out.stderr) {
            return Err(err);
        }
        if let Some(signal) = out.status.signal() {
            return Err(match signal {
                24 => RenderError::CpuLimit, // SIGXCPU
                _ => RenderError::Crashed { detail: format!("signal {signal}") },
            });
        }
        let mut produced = None;
        let mut entries = tokio::fs::read_dir(out_dir.path()).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name().to_string_lossy().starts_with("frame_") {
                produced = Some(entry.path());
            }
        }
        let detail = crate::inspect::error_lines(&out.stdout, &out.stderr);
        let Some(path) = produced else {
            return Err(if out.status.success() {
                RenderError::NoOutput { detail }
            } else {
                RenderError::Crashed { detail: format!("exit status {}: {detail}", out.status) }
            });
        };
        let bytes = tokio::fs::read(&path).await?;
        if bytes.is_empty() {
            return Err(RenderError::NoOutput { detail: "the output file is empty".into() });
        }
        Ok(RenderOutput { bytes, wall_time: out.wall, render_time: parse_render_time(&out.stdout) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_failures() {
        let oidn = "Fra:1 Mem:9.96M | LumenSample, ViewLayer | Build without OpenImageDenoiser\nError: Build without OpenImageDenoiser";
        let err = classify(oidn, "").unwrap();
        assert_eq!(err.kind(), "missing_feature");
        assert!(err.is_deterministic());
        assert!(err.to_string().contains("OpenImageDenoiser"));
        assert_eq!(
            classify("Error: File format is not supported in file '/x'", "").unwrap().kind(),
            "unreadable_file"
        );
        assert_eq!(
            classify("", "terminate called after throwing an instance of 'std::bad_alloc'").unwrap().kind(),
            "out_of_memory"
        );
        assert!(!classify("", "std::bad_alloc").unwrap().is_deterministic());
        assert!(classify("Saved: 'frame_00001.png'\n Time: 00:00.15 (Saving: 00:00.10)", "").is_none());
    }

    #[test]
    fn parses_render_time() {
        assert_eq!(parse_render_time(" Time: 00:00.15 (Saving: 00:00.10)"), Some(Duration::from_millis(150)));
        assert_eq!(parse_render_time("Time: 01:02.50"), Some(Duration::from_secs_f64(62.5)));
        assert_eq!(parse_render_time("nothing"), None);
    }
}
