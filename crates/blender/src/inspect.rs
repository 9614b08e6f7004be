//! Reading what a `.blend` describes, in a Blender subprocess.

use std::{ffi::OsStr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{Blender, BlenderError, process};

/// A file the `.blend` references but does not contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalFile {
    /// `image`, `library`, `sound`, `font`, `movieclip`, `volume`, `cache_file`.
    pub kind: String,
    /// Datablock name.
    pub name: String,
    /// The path it points at (`//` means relative to the `.blend`).
    pub path: String,
}

/// What a `.blend` describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneInfo {
    /// Version of Blender that saved the file, e.g. `3.4.1`.
    pub blender_version_saved: Option<String>,
    /// First frame.
    pub frame_start: i32,
    /// Last frame (inclusive).
    pub frame_end: i32,
    /// Frame step.
    pub frame_step: i32,
    /// Output width in pixels, after the resolution percentage.
    pub width: u32,
    /// Output height in pixels, after the resolution percentage.
    pub height: u32,
    /// Frames per second (`fps / fps_base`).
    pub fps: f64,
    /// Render engine: `CYCLES`, `BLENDER_EEVEE`, `BLENDER_WORKBENCH`, …
    pub engine: String,
    /// Whether the scene has an active camera.
    pub has_camera: bool,
    /// Whether Cycles denoising is on (needs OpenImageDenoise).
    pub cycles_denoising: bool,
    /// The output file format set in the scene.
    pub output_format: String,
    /// Referenced files that are not packed into the `.blend`.
    pub unpacked_external_files: Vec<ExternalFile>,
}

const MARKER: &str = "LUMEN_SCENE_JSON:";

/// Runs inside Blender; prints one marker line with the scene as JSON.
const SCRIPT: &str = r#"
import bpy, json, sys
scene = bpy.context.scene
r = scene.render
pct = r.resolution_percentage / 100.0
files = []
def add(kind, block, path):
    files.append({"kind": kind, "name": block.name, "path": path})
for img in bpy.data.images:
    if img.source in {"FILE", "SEQUENCE", "MOVIE", "TILED"} and img.packed_file is None and img.filepath:
        add("image", img, img.filepath)
for lib in bpy.data.libraries:
    if lib.packed_file is None:
        add("library", lib, lib.filepath)
for snd in bpy.data.sounds:
    if snd.packed_file is None and snd.filepath:
        add("sound", snd, snd.filepath)
for font in bpy.data.fonts:
    if font.filepath and font.filepath != "<builtin>" and font.packed_file is None:
        add("font", font, font.filepath)
for clip in bpy.data.movieclips:
    add("movieclip", clip, clip.filepath)
for vol in getattr(bpy.data, "volumes", []):
    if vol.packed_file is None and vol.filepath:
        add("volume", vol, vol.filepath)
for cache in bpy.data.cache_files:
    add("cache_file", cache, cache.filepath)
denoise = False
if r.engine == "CYCLES":
    denoise = bool(getattr(scene.cycles, "use_denoising", False))
info = {
    "blender_version_saved": ".".join(str(v) for v in bpy.data.version),
    "frame_start": scene.frame_start,
    "frame_end": scene.frame_end,
    "frame_step": scene.frame_step,
    "width": int(r.resolution_x * pct),
    "height": int(r.resolution_y * pct),
    "fps": scene.render.fps / scene.render.fps_base,
    "engine": r.engine,
    "has_camera": scene.camera is not None,
    "cycles_denoising": denoise,
    "output_format": r.image_settings.file_format,
    "unpacked_external_files": files,
}
print("LUMEN_SCENE_JSON:" + json.dumps(info))
sys.stdout.flush()
"#;

/// Checks the first bytes: uncompressed (`BLENDER`), gzip- or
/// zstd-compressed `.blend` files are accepted.
pub(crate) fn check_magic(head: &[u8]) -> Result<(), BlenderError> {
    if head.len() < 12 {
        return Err(BlenderError::NotABlendFile { reason: format!("the file is only {} bytes", head.len()) });
    }
    let known = head.starts_with(b"BLENDER")
        || head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if known {
        Ok(())
    } else {
        let shown: String =
            head.iter().take(8).map(|b| if b.is_ascii_graphic() { *b as char } else { '.' }).collect();
        Err(BlenderError::NotABlendFile {
            reason: format!(
                "expected a Blender file header (\"BLENDER\", or gzip/zstd compressed), found {shown:?}"
            ),
        })
    }
}

/// The lines of Blender's output that explain a failure.
pub(crate) fn error_lines(stdout: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim)
        .filter(|l| {
            l.starts_with("Error")
                || l.contains("Failed to read")
                || l.contains("not supported")
                || l.contains("Unable to")
        })
        .collect();
    if lines.is_empty() { "no error message".into() } else { lines.join("; ") }
}

impl Blender {
    /// Reads the scene of an untrusted `.blend` (60 s limit).
    pub async fn inspect(&self, blend: &Path) -> Result<SceneInfo, BlenderError> {
        self.inspect_with_timeout(blend, Duration::from_secs(60)).await
    }

    /// Like [`Blender::inspect`] with a custom timeout.
    pub async fn inspect_with_timeout(
        &self,
        blend: &Path,
        timeout: Duration,
    ) -> Result<SceneInfo, BlenderError> {
        let mut head = [0u8; 16];
        let n = {
            use tokio::io::AsyncReadExt;
            let mut f = tokio::fs::File::open(blend).await?;
            let mut read = 0;
            while read < head.len() {
                let k = f.read(&mut head[read..]).await?;
                if k == 0 {
                    break;
                }
                read += k;
            }
            read
        };
        check_magic(&head[..n])?;
        let args: [&OsStr; 8] = [
            "-b".as_ref(),
            "--factory-startup".as_ref(),
            "--disable-autoexec".as_ref(),
            blend.as_os_str(),
            "--python-expr".as_ref(),
            SCRIPT.as_ref(),
            "--python-exit-code".as_ref(),
            "3".as_ref(),
        ];
        let out = process::run(&self.exe, &args, None, timeout).await?;
        if let Some(json) = out.stdout.lines().find_map(|l| l.strip_prefix(MARKER)) {
            return serde_json::from_str(json)
                .map_err(|e| BlenderError::Unexpected { reason: format!("inspection output: {e}") });
        }
        let detail = error_lines(&out.stdout, &out.stderr);
        Err(match out.status.code() {
            Some(_) => BlenderError::Unreadable { reason: detail },
            None => BlenderError::Unreadable {
                reason: format!("Blender crashed reading the file (truncated or scrambled?): {detail}"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert!(check_magic(b"BLENDER-v304RENDH").is_ok());
        assert!(check_magic(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok());
        assert!(check_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok());
        let err = check_magic(b"%PDF-1.7 hello world").unwrap_err().to_string();
        assert!(err.contains("%PDF-1.7"), "{err}");
        assert!(check_magic(b"BLEND").unwrap_err().to_string().contains("only 5 bytes"));
    }

    #[test]
    fn error_lines_pick_blenders_complaints() {
        let out = "Blender 3.4.1\nRead blend: /x\nError: Failed to read blend file '/x': Missing DNA block\nBlender quit";
        assert_eq!(error_lines(out, ""), "Error: Failed to read blend file '/x': Missing DNA block");
        assert_eq!(error_lines("fine", ""), "no error message");
    }
}
