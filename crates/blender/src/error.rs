//! Errors of Blender runs.

use std::time::Duration;

/// Failures to inspect a file or to run Blender at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlenderError {
    /// No Blender executable was found.
    #[error("blender not found: install the Debian package `blender` or set LUMEN_BLENDER")]
    NotFound,
    /// The file is not a `.blend` at all.
    #[error("not a .blend file: {reason}")]
    NotABlendFile {
        /// What was found instead.
        reason: String,
    },
    /// Blender could not read the file (truncated, corrupt, too new).
    #[error("Blender cannot read the file: {reason}")]
    Unreadable {
        /// Blender's own words.
        reason: String,
    },
    /// The file was saved by a newer Blender than the one installed here
    /// (Blender 3.4 cannot be trusted to read newer files correctly).
    #[error("the file was saved by Blender {saved}, newer than this node's Blender {installed}")]
    NewerFile {
        /// Version in the file header, e.g. `4.1`.
        saved: String,
        /// Installed version, e.g. `3.4.1`.
        installed: String,
    },
    /// Blender ran longer than allowed.
    #[error("Blender did not finish within {0:?}")]
    Timeout(Duration),
    /// The sandbox Blender must run in is unavailable.
    #[error("the render sandbox is unavailable: {0}")]
    Sandbox(#[from] crate::SandboxError),
    /// Blender did something we did not expect.
    #[error("unexpected Blender behaviour: {reason}")]
    Unexpected {
        /// Details.
        reason: String,
    },
    /// Starting Blender or handling its files failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a frame did not render.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The scene needs a feature this Blender build lacks (e.g. OpenImageDenoise).
    #[error("this Blender build lacks a feature the scene needs: {detail}")]
    MissingFeature {
        /// Blender's line.
        detail: String,
    },
    /// Blender cannot read the file.
    #[error("Blender cannot read the .blend: {detail}")]
    UnreadableFile {
        /// Blender's line.
        detail: String,
    },
    /// The frame is outside the scene's range.
    #[error("frame {frame} is outside the scene's range {start}..={end}")]
    FrameOutOfRange {
        /// Requested frame.
        frame: i32,
        /// Range start.
        start: i32,
        /// Range end.
        end: i32,
    },
    /// The scene has no camera to render from.
    #[error("the scene has no camera")]
    NoCamera,
    /// The render exceeded its wall-clock limit (the process group was killed).
    #[error("render exceeded its {0:?} time limit")]
    Timeout(Duration),
    /// The render exceeded its CPU-time limit.
    #[error("render exceeded its CPU-time limit")]
    CpuLimit,
    /// The render ran out of memory under its limit.
    #[error("render ran out of memory: {detail}")]
    OutOfMemory {
        /// What showed it.
        detail: String,
    },
    /// Blender crashed.
    #[error("Blender crashed ({detail})")]
    Crashed {
        /// Signal or exit status.
        detail: String,
    },
    /// A compositor File Output node would write files besides the frame
    /// (anywhere the scene says): the scene is refused before rendering.
    #[error(
        "the scene's compositor File Output node {node:?} writes files to {path:?}; Lumen delivers only \
         the composited frame and never lets a scene write elsewhere: remove or mute the node"
    )]
    ForbiddenOutput {
        /// The node's name.
        node: String,
        /// Its base path, as the scene sets it.
        path: String,
    },
    /// The scene wants Python to run (a driver expression beyond Blender's
    /// restricted set, or a text block registered to run on load), which
    /// Lumen never does: it would not render as its author sees it.
    #[error("the scene wants to run Python, which Lumen never runs (auto-run is disabled): {detail}")]
    ScriptBlocked {
        /// Blender's line.
        detail: String,
    },
    /// The sandbox could not be built on this node.
    #[error("the render sandbox failed: {detail}")]
    Sandbox {
        /// bubblewrap's message.
        detail: String,
    },
    /// Blender exited without writing the frame.
    #[error("Blender wrote no output: {detail}")]
    NoOutput {
        /// Blender's last error line, if any.
        detail: String,
    },
    /// Starting Blender or reading its output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl RenderError {
    /// A short, stable code for reports and failure policies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingFeature { .. } => "missing_feature",
            Self::UnreadableFile { .. } => "unreadable_file",
            Self::FrameOutOfRange { .. } => "frame_out_of_range",
            Self::NoCamera => "no_camera",
            Self::Timeout(_) => "timeout",
            Self::CpuLimit => "cpu_limit",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::Crashed { .. } => "crashed",
            Self::NoOutput { .. } => "no_output",
            Self::ForbiddenOutput { .. } => "forbidden_output",
            Self::ScriptBlocked { .. } => "script_blocked",
            Self::Sandbox { .. } => "sandbox",
            Self::Io(_) => "io",
        }
    }

    /// Whether every node with the same Blender build would fail the same
    /// way: the scene, not the machine, is at fault.
    pub fn is_deterministic(&self) -> bool {
        matches!(
            self,
            Self::MissingFeature { .. }
                | Self::UnreadableFile { .. }
                | Self::FrameOutOfRange { .. }
                | Self::NoCamera
                | Self::ForbiddenOutput { .. }
                | Self::ScriptBlocked { .. }
        )
    }
}
