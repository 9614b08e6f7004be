//! Generated sample scenes for tests and demos.
//!
//! The scenes come from `scripts/make-sample-scene.py`, compiled into this
//! crate so callers need no path to the repository: [`make_scene`] writes it
//! to the run's scratch folder and runs it in Blender, in the sandbox.

use std::{ffi::OsStr, path::Path, time::Duration};

use crate::{Blender, BlenderError, process, sandbox::RunDir};

/// The generator script (`scripts/make-sample-scene.py`).
pub const SCRIPT: &str = include_str!("../../../scripts/make-sample-scene.py");

/// The script that makes a sample scene hostile (`scripts/make-hostile-scene.py`).
pub const HOSTILE_SCRIPT: &str = include_str!("../../../scripts/make-hostile-scene.py");

/// Render engine of a sample scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Cycles on the CPU.
    #[default]
    Cycles,
    /// Eevee (software GL when headless).
    Eevee,
    /// Workbench.
    Workbench,
}

impl Engine {
    /// Blender's name for it, e.g. `CYCLES`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cycles => "CYCLES",
            Self::Eevee => "BLENDER_EEVEE",
            Self::Workbench => "BLENDER_WORKBENCH",
        }
    }
}

/// What is special about a sample scene.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Variant {
    /// A plain scene that renders everywhere.
    #[default]
    Ok,
    /// A material uses an image texture at this path, not packed into the
    /// `.blend` (the file need not exist; `//` is relative to the `.blend`).
    ExternalTexture(String),
    /// Cycles denoising on: fails with `missing_feature` on a Blender built
    /// without OpenImageDenoise (Debian's).
    Denoise,
    /// No camera: Blender cannot render it.
    NoCamera,
}

/// Settings of a generated scene. The default is the script's: 6 frames
/// (1..=6) at 320×180, Cycles with 16 samples, uncompressed, layout 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleScene {
    /// Frames `1..=frames`.
    pub frames: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Render engine.
    pub engine: Engine,
    /// Samples (Cycles and Eevee).
    pub samples: u32,
    /// Variant.
    pub variant: Variant,
    /// Save zstd-compressed.
    pub compress: bool,
    /// Object layout: 0 is the original scene, any other seed perturbs the
    /// objects' positions, sizes, colours and motion reproducibly (another
    /// scene of the same kind).
    pub seed: u32,
}

impl Default for SampleScene {
    fn default() -> Self {
        Self {
            frames: 6,
            width: 320,
            height: 180,
            engine: Engine::Cycles,
            samples: 16,
            variant: Variant::Ok,
            compress: false,
            seed: 0,
        }
    }
}

impl SampleScene {
    /// A scene small enough for tests: 64×36, 4 samples, 6 frames.
    pub fn tiny() -> Self {
        Self { width: 64, height: 36, samples: 4, ..Self::default() }
    }

    /// The script's arguments (after `--`).
    fn args(&self, out: &Path) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--out".into(), out.into()];
        let mut flag = |name: &str, value: String| {
            args.push(name.into());
            args.push(value.into());
        };
        flag("--frames", self.frames.to_string());
        flag("--width", self.width.to_string());
        flag("--height", self.height.to_string());
        flag("--engine", self.engine.as_str().to_owned());
        flag("--samples", self.samples.to_string());
        match &self.variant {
            Variant::Ok => flag("--variant", "ok".into()),
            Variant::ExternalTexture(path) => {
                flag("--variant", "external-texture".into());
                flag("--texture", path.clone());
            }
            Variant::Denoise => flag("--variant", "denoise".into()),
            Variant::NoCamera => flag("--variant", "no-camera".into()),
        }
        flag("--seed", self.seed.to_string());
        if self.compress {
            args.push("--compress".into());
        }
        args
    }
}

/// Generates `scene` and saves it to `out` (≈1 s), in the sandbox like
/// every Blender run: the scene is saved in the run's output folder, then
/// moved to `out` (whose folder must exist).
pub async fn make_scene(blender: &Blender, scene: &SampleScene, out: &Path) -> Result<(), BlenderError> {
    let mut run = Generator::new(blender, out, ".lumen-sample-")?;
    let script = run.script("make-sample-scene.py", SCRIPT).await?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "-b".into(),
        "--factory-startup".into(),
        "--python".into(),
        script.into_os_string(),
        "--python-exit-code".into(),
        "3".into(),
        "--".into(),
    ];
    args.extend(scene.args(&run.saved()));
    run.finish(blender, &args, "sample-scene").await
}

/// A generator script's run: where it saves inside the sandbox, and how
/// the result reaches `out`.
struct Generator {
    dir: RunDir,
    name: std::ffi::OsString,
    out: std::path::PathBuf,
}

impl Generator {
    /// A run folder beside `out` (so the result is renamed into place).
    fn new(blender: &Blender, out: &Path, prefix: &str) -> Result<Self, BlenderError> {
        let out = std::path::absolute(out)?;
        let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
            return Err(BlenderError::Unexpected { reason: format!("{} names no file", out.display()) });
        };
        let dir = RunDir::new(blender.sandbox(), parent, prefix)?;
        Ok(Self { dir, name: name.to_owned(), out })
    }

    /// Writes a script for the run to read; the path to give Blender.
    async fn script(&mut self, name: &str, text: &str) -> Result<std::path::PathBuf, BlenderError> {
        let path = self.dir.host_scratch().join(name);
        tokio::fs::write(&path, text).await?;
        Ok(self.dir.input(&path)?)
    }

    /// Where the script is to save the `.blend`, as Blender is told.
    fn saved(&self) -> std::path::PathBuf {
        self.dir.output().join(&self.name)
    }

    /// Runs Blender with `args` and moves what it saved to `out`.
    async fn finish(
        self,
        blender: &Blender,
        args: &[std::ffi::OsString],
        what: &str,
    ) -> Result<(), BlenderError> {
        let arg_refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let run = process::run(blender.exe(), &arg_refs, None, Duration::from_secs(120), &self.dir).await?;
        let produced = self.dir.host_output().join(&self.name);
        let written = tokio::fs::symlink_metadata(&produced).await.is_ok_and(|m| m.is_file() && m.len() > 0);
        if run.exit.success() && written {
            tokio::fs::rename(&produced, &self.out).await?;
            Ok(())
        } else {
            Err(BlenderError::Unexpected {
                reason: format!(
                    "the {what} script failed ({}): {}",
                    run.exit,
                    crate::inspect::error_lines(&run.stdout, &run.stderr)
                ),
            })
        }
    }
}

/// What a hostile scene tries, for the sandbox's tests (`scripts/make-hostile-scene.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostile {
    /// A compositor File Output node writes the rendered image to `path`
    /// (absolute, or `//…` relative to the `.blend`), from inside a node
    /// group when `in_group`.
    FileOutput {
        /// Its base path.
        path: String,
        /// Whether the node sits in a node group.
        in_group: bool,
    },
    /// A driver runs Python that writes `escaped` to `path`, then connects
    /// to `127.0.0.1:port` and sends `escaped`; it prints `LUMEN-PAYLOAD …`
    /// lines saying what it managed.
    PythonDriver {
        /// Where it writes.
        path: String,
        /// Where it connects.
        port: u16,
    },
    /// The same Python in a text block registered to run when the file loads.
    AutorunScript {
        /// Where it writes.
        path: String,
        /// Where it connects.
        port: u16,
    },
    /// The scene's own output path is `path`.
    AbsoluteOutput {
        /// The path.
        path: String,
    },
}

impl Hostile {
    /// The script's arguments (after `--`, before `--out`).
    fn args(&self) -> Vec<String> {
        let (attack, path, port) = match self {
            Self::FileOutput { path, in_group: false } => ("file-output", path, None),
            Self::FileOutput { path, in_group: true } => ("file-output-in-group", path, None),
            Self::PythonDriver { path, port } => ("python-driver", path, Some(port)),
            Self::AutorunScript { path, port } => ("autorun-script", path, Some(port)),
            Self::AbsoluteOutput { path } => ("absolute-output", path, None),
        };
        let mut args = vec!["--attack".to_owned(), attack.to_owned(), "--path".to_owned(), path.clone()];
        if let Some(port) = port {
            args.extend(["--port".to_owned(), port.to_string()]);
        }
        args
    }
}

/// Generates `base`, makes it `hostile` and saves it to `out` (≈2 s). Both
/// steps run in the sandbox with auto-run disabled, so nothing hostile
/// runs while the file is built.
pub async fn make_hostile_scene(
    blender: &Blender,
    base: &SampleScene,
    hostile: &Hostile,
    out: &Path,
) -> Result<(), BlenderError> {
    let mut run = Generator::new(blender, out, ".lumen-hostile-")?;
    let plain = run.dir.host_scratch().join("base.blend");
    make_scene(blender, base, &plain).await?;
    let plain = run.dir.input(&plain)?;
    let script = run.script("make-hostile-scene.py", HOSTILE_SCRIPT).await?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "-b".into(),
        "--factory-startup".into(),
        "--disable-autoexec".into(),
        plain.into(),
        "--python".into(),
        script.into(),
        "--python-exit-code".into(),
        "3".into(),
        "--".into(),
        "--out".into(),
        run.saved().into(),
    ];
    args.extend(hostile.args().into_iter().map(Into::into));
    run.finish(blender, &args, "hostile-scene").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_arguments() {
        let scene = SampleScene {
            variant: Variant::ExternalTexture("//t.png".into()),
            compress: true,
            seed: 3,
            ..SampleScene::tiny()
        };
        let args: Vec<String> =
            scene.args(Path::new("/o.blend")).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args.join(" "),
            "--out /o.blend --frames 6 --width 64 --height 36 --engine CYCLES --samples 4 \
             --variant external-texture --texture //t.png --seed 3 --compress"
        );
        assert!(SCRIPT.contains("def build(args)"));
        let hostile = Hostile::PythonDriver { path: "/x".into(), port: 7 };
        assert_eq!(hostile.args().join(" "), "--attack python-driver --path /x --port 7");
        let group = Hostile::FileOutput { path: "//../y".into(), in_group: true };
        assert_eq!(group.args().join(" "), "--attack file-output-in-group --path //../y");
        assert!(HOSTILE_SCRIPT.contains("file-output-in-group"));
    }
}
