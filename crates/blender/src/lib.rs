//! Running Blender for Lumen: reading what an untrusted `.blend` describes,
//! and rendering one frame of it in a sandbox.
//!
//! Every Blender run is a subprocess started with `--factory-startup
//! --disable-autoexec` (no user preferences or add-ons, no scripts embedded
//! in the file), a minimal environment with a private `HOME`, in its own
//! process group, under `prlimit` memory and CPU-time limits and a wall-clock
//! timeout after which the whole group is killed. A crafted file can crash
//! that process, never the caller.
//!
//! Blender often exits 0 after an error (a frame outside the range renders
//! anyway, a missing texture renders magenta), so results are never trusted
//! from the exit code alone: the output file must exist, and Blender's
//! output is scanned for known error lines, which map to typed
//! [`RenderError`]s that say whether another node would fail the same way.

mod error;
mod inspect;
mod process;
mod render;
pub mod sample;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

pub use error::{BlenderError, RenderError};
pub use inspect::{ExternalFile, SceneInfo};
pub use process::isolated_env;
pub use render::{RenderOutput, RenderRequest, ResourceLimits};

/// Environment variable naming the Blender executable.
pub const BLENDER_ENV: &str = "LUMEN_BLENDER";

/// A Blender installation.
#[derive(Debug, Clone)]
pub struct Blender {
    exe: PathBuf,
    /// `--version`, asked once per handle.
    version: Arc<tokio::sync::OnceCell<String>>,
}

impl Blender {
    /// `$LUMEN_BLENDER`, else `blender` on `PATH`.
    pub fn locate() -> Result<Self, BlenderError> {
        if let Some(path) = std::env::var_os(BLENDER_ENV) {
            let path = PathBuf::from(path);
            return if path.is_file() { Ok(Self::at(path)) } else { Err(BlenderError::NotFound) };
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("blender"))
            .find(|p| p.is_file())
            .map(Self::at)
            .ok_or(BlenderError::NotFound)
    }

    /// A specific executable.
    pub fn at(exe: impl Into<PathBuf>) -> Self {
        Self { exe: exe.into(), version: Arc::default() }
    }

    /// The executable.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The version, e.g. `3.4.1` (asked once, then remembered).
    pub async fn version(&self) -> Result<String, BlenderError> {
        self.version.get_or_try_init(|| self.ask_version()).await.cloned()
    }

    async fn ask_version(&self) -> Result<String, BlenderError> {
        let out = process::run(&self.exe, &["--version".as_ref()], None, std::time::Duration::from_secs(30))
            .await?;
        parse_version(&out.stdout).ok_or_else(|| BlenderError::Unexpected {
            reason: format!(
                "`blender --version` printed no version: {}",
                out.stdout.lines().next().unwrap_or("")
            ),
        })
    }
}

fn parse_version(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Blender "))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_line() {
        assert_eq!(super::parse_version("Blender 3.4.1\n\tbuild date: x\n").as_deref(), Some("3.4.1"));
        assert_eq!(super::parse_version("nothing"), None);
    }
}
