//! Running Blender for Lumen: reading what an untrusted `.blend` describes,
//! and rendering one frame of it in a sandbox.
//!
//! Every Blender run is a subprocess started with `--factory-startup
//! --disable-autoexec` (no user preferences or add-ons, no scripts embedded
//! in the file) in a bubblewrap sandbox ([`sandbox`]): no network, the
//! system read-only, the input file read-only, write access only to the
//! run's own fresh output and scratch folders, and no view of anything
//! else (the node's key, data folder, home). On top of it: a minimal
//! environment, `prlimit` memory and CPU-time limits, and a wall-clock
//! timeout after which the sandbox is killed with everything in it. A
//! crafted file can crash that process, never the caller, and reads or
//! writes nothing of the node's. Without a working bubblewrap, Blender is
//! not run at all ([`Blender::locate`] fails) unless `LUMEN_SANDBOX=off`
//! says so (development only).
//!
//! Before a frame renders, a short script of ours refuses scenes with an
//! active compositor File Output node (they write files wherever the scene
//! says; [`RenderError::ForbiddenOutput`]), and a scene whose Python the
//! disabled auto-run skipped fails as [`RenderError::ScriptBlocked`]: both
//! deterministic, so the artist hears it once instead of receiving frames
//! that differ from the scene.
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
pub mod sandbox;
#[cfg(test)]
mod sandbox_escapes;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

pub use error::{BlenderError, RenderError};
pub use inspect::{ExternalFile, SceneInfo};
pub use process::isolated_env;
pub use render::{RenderOutput, RenderRequest, ResourceLimits};
use sandbox::RunDir;
pub use sandbox::{Sandbox, SandboxError};

/// Environment variable naming the Blender executable.
pub const BLENDER_ENV: &str = "LUMEN_BLENDER";

/// A Blender installation, and the sandbox it runs in.
#[derive(Debug, Clone)]
pub struct Blender {
    exe: PathBuf,
    sandbox: Sandbox,
    /// `--version`, asked once per handle.
    version: Arc<tokio::sync::OnceCell<String>>,
    /// The OpenGL implementation, asked once per handle.
    opengl: Arc<tokio::sync::OnceCell<Option<String>>>,
}

impl Blender {
    /// `$LUMEN_BLENDER`, else `blender` on `PATH`, in the sandbox
    /// `$LUMEN_SANDBOX` asks for ([`Sandbox::from_env`]: bubblewrap, checked
    /// to work here, unless it says `off`). Fails rather than run Blender
    /// unconfined by accident.
    pub fn locate() -> Result<Self, BlenderError> {
        let exe = if let Some(path) = std::env::var_os(BLENDER_ENV) {
            Some(PathBuf::from(path)).filter(|p| p.is_file())
        } else {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
                .map(|dir| dir.join("blender"))
                .find(|p| p.is_file())
        };
        let exe = exe.ok_or(BlenderError::NotFound)?;
        Ok(Self::at(exe, Sandbox::from_env()?))
    }

    /// A specific executable, run in `sandbox`.
    pub fn at(exe: impl Into<PathBuf>, sandbox: Sandbox) -> Self {
        Self { exe: exe.into(), sandbox, version: Arc::default(), opengl: Arc::default() }
    }

    /// The executable.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The sandbox every run of this Blender goes through.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// A fresh run folder (`prefix…`) in the system's temporary folder.
    fn run_dir(&self, prefix: &str) -> std::io::Result<RunDir> {
        RunDir::new(&self.sandbox, &std::env::temp_dir(), prefix)
    }

    /// The version, e.g. `3.4.1` (asked once, then remembered).
    pub async fn version(&self) -> Result<String, BlenderError> {
        self.version.get_or_try_init(|| self.ask_version()).await.cloned()
    }

    async fn ask_version(&self) -> Result<String, BlenderError> {
        let dir = self.run_dir("lumen-blender-version-")?;
        let args: [&std::ffi::OsStr; 1] = ["--version".as_ref()];
        let out = process::run(&self.exe, &args, None, std::time::Duration::from_secs(30), &dir).await?;
        parse_version(&out.stdout).ok_or_else(|| BlenderError::Unexpected {
            reason: format!(
                "`blender --version` printed no version: {}",
                out.stdout.lines().next().unwrap_or("")
            ),
        })
    }
}

/// Draws an 8×8 Workbench frame, which makes Blender create its OpenGL
/// context, then prints what `gpu.platform` says of it (it crashes Blender
/// when asked before any context exists).
const OPENGL_PROBE: &str = "import bpy, gpu\n\
s = bpy.context.scene\n\
s.render.engine = 'BLENDER_WORKBENCH'\n\
s.render.resolution_x = s.render.resolution_y = 8\n\
bpy.ops.render.render(write_still=False)\n\
print('LUMEN-OPENGL\\t' + gpu.platform.renderer_get() + '\\t' + gpu.platform.version_get())\n";

impl Blender {
    /// The OpenGL implementation Blender draws Eevee and Workbench frames
    /// with, as `renderer; version` (e.g. `llvmpipe (LLVM 15.0.6, 256 bits);
    /// 4.5 (Core Profile) Mesa 22.3.6`), asked once (a one-second render),
    /// then remembered. `None` when Blender cannot draw at all here.
    ///
    /// Two implementations rasterise differently enough that honest Eevee
    /// and Workbench frames disagree (docs/verification.md), so verification
    /// renders of those engines pair nodes that report the same value.
    /// It is asked inside the sandbox, which is where frames are drawn.
    pub async fn opengl(&self) -> Option<String> {
        self.opengl
            .get_or_init(|| async {
                let dir = match self.run_dir("lumen-blender-opengl-") {
                    Ok(dir) => dir,
                    Err(err) => {
                        tracing::warn!(target: "blender::opengl", %err, "cannot create a run folder");
                        return None;
                    }
                };
                let args: [&std::ffi::OsStr; 6] = [
                    "-b".as_ref(),
                    "--factory-startup".as_ref(),
                    "--disable-autoexec".as_ref(),
                    "--python-exit-code".as_ref(),
                    "3".as_ref(),
                    "--python-expr".as_ref(),
                ];
                let args: Vec<&std::ffi::OsStr> =
                    args.into_iter().chain([OPENGL_PROBE.as_ref()]).collect();
                match process::run(&self.exe, &args, None, std::time::Duration::from_secs(60), &dir).await {
                    Ok(out) => parse_opengl(&out.stdout),
                    Err(err) => {
                        tracing::warn!(target: "blender::opengl", ?err, "cannot ask Blender for its OpenGL implementation");
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

fn parse_opengl(stdout: &str) -> Option<String> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("LUMEN-OPENGL\t"))?;
    let (renderer, version) = line.split_once('\t')?;
    let (renderer, version) = (renderer.trim(), version.trim());
    (!renderer.is_empty()).then(|| format!("{renderer}; {version}"))
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
    fn opengl_line() {
        let out =
            "Blender 3.4.1\nLUMEN-OPENGL\tllvmpipe (LLVM 15.0.6, 256 bits)\t4.5 (Core Profile) Mesa 22.3.6\n";
        assert_eq!(
            super::parse_opengl(out).as_deref(),
            Some("llvmpipe (LLVM 15.0.6, 256 bits); 4.5 (Core Profile) Mesa 22.3.6")
        );
        assert_eq!(super::parse_opengl("Blender quit\n"), None);
        assert_eq!(super::parse_opengl("LUMEN-OPENGL\t\t4.5\n"), None, "no renderer");
    }

    #[test]
    fn version_line() {
        assert_eq!(super::parse_version("Blender 3.4.1\n\tbuild date: x\n").as_deref(), Some("3.4.1"));
        assert_eq!(super::parse_version("nothing"), None);
    }
}
