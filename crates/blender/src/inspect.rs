//! Reading what a `.blend` describes, in a sandboxed Blender subprocess.

use std::{ffi::OsStr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{Blender, BlenderError, process};

/// A file the `.blend` references but does not contain (the API's type:
/// the gateway reports these to the artist as they are).
pub use lumen_protocol::api::ExternalFile;

/// What a `.blend` describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneInfo {
    /// Version of Blender that saved the file, `major.minor.subversion`
    /// (`bpy.data.version`, e.g. `3.4.6`: the last number is the file
    /// format's subversion, not Blender's patch release).
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
    /// Render samples per pixel: Cycles' `samples`, EEVEE's
    /// `taa_render_samples`; `None` for engines without (Workbench).
    #[serde(default)]
    pub samples: Option<u32>,
    /// Whether the scene has an active camera.
    pub has_camera: bool,
    /// Whether Cycles denoising is on (needs OpenImageDenoise).
    pub cycles_denoising: bool,
    /// The output file format set in the scene.
    pub output_format: String,
    /// Referenced files that are not packed into the `.blend`.
    pub unpacked_external_files: Vec<ExternalFile>,
}

/// Limits of an inspection: reading a scene needs far less than rendering it.
const INSPECT_LIMITS: process::Limits = process::Limits { memory_bytes: 2 << 30, cpu_seconds: 60 };

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
samples = None
if r.engine == "CYCLES":
    denoise = bool(getattr(scene.cycles, "use_denoising", False))
    samples = scene.cycles.samples
elif r.engine.startswith("BLENDER_EEVEE"):
    samples = scene.eevee.taa_render_samples
info = {
    "blender_version_saved": ".".join(str(v) for v in bpy.data.version),
    "frame_start": scene.frame_start,
    "frame_end": scene.frame_end,
    "frame_step": scene.frame_step,
    "width": int(r.resolution_x * pct),
    "height": int(r.resolution_y * pct),
    "fps": scene.render.fps / scene.render.fps_base,
    "engine": r.engine,
    "samples": samples,
    "has_camera": scene.camera is not None,
    "cycles_denoising": denoise,
    "output_format": r.image_settings.file_format,
    "unpacked_external_files": files,
}
print("LUMEN_SCENE_JSON:" + json.dumps(info))
sys.stdout.flush()
"#;

/// What the first bytes of a `.blend` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// `(major, minor)` of the Blender that saved the file; `None` for
    /// zstd-compressed files, whose header we do not inflate.
    pub(crate) version: Option<(u32, u32)>,
}

/// How many leading bytes [`read_header`] wants (enough to inflate a gzip header).
pub(crate) const HEAD_LEN: usize = 4096;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Checks the first bytes: uncompressed (`BLENDER`), gzip-compressed
/// (Blender before 3.0) or zstd-compressed (3.0 on) `.blend` files are
/// accepted, anything else is refused with a message saying what it is.
pub(crate) fn read_header(head: &[u8]) -> Result<Header, BlenderError> {
    if head.len() < 12 {
        return Err(BlenderError::NotABlendFile { reason: format!("the file is only {} bytes", head.len()) });
    }
    if head.starts_with(ZSTD_MAGIC) {
        return Ok(Header { version: None });
    }
    if head.starts_with(GZIP_MAGIC) {
        let mut inner = Vec::with_capacity(32);
        let mut decoder = flate2::read::GzDecoder::new(head);
        let mut buf = [0u8; 32];
        while inner.len() < 17 {
            match std::io::Read::read(&mut decoder, &mut buf) {
                Ok(0) => break,
                Ok(n) => inner.extend_from_slice(&buf[..n]),
                // A truncated stream is expected: we only read the file's head.
                Err(_) => break,
            }
        }
        return if inner.starts_with(b"BLENDER") {
            parse_plain(&inner).map_err(|reason| BlenderError::NotABlendFile {
                reason: format!("gzip-compressed, with a damaged Blender header inside: {reason}"),
            })
        } else {
            Err(BlenderError::NotABlendFile {
                reason: format!("gzip-compressed, but what is inside is not a .blend ({:?})", shown(&inner)),
            })
        };
    }
    if head.starts_with(b"BLENDER") {
        return parse_plain(head).map_err(|reason| BlenderError::NotABlendFile { reason });
    }
    Err(BlenderError::NotABlendFile {
        reason: format!(
            "expected a Blender file header (\"BLENDER\", or gzip/zstd compressed), found {:?}",
            shown(head)
        ),
    })
}

/// Parses an uncompressed header. Blender up to 4.x writes
/// `BLENDER` + pointer size (`_`/`-`) + endianness (`v`/`V`) + `vvv`
/// (`304` is 3.4); Blender 5 writes `BLENDER17-01v0500`.
fn parse_plain(head: &[u8]) -> Result<Header, String> {
    let rest = head.get(7..).unwrap_or_default();
    let digits = |b: &[u8]| -> Option<u32> {
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    };
    let version = match rest {
        [b'_' | b'-', b'v' | b'V', v @ ..] => v.get(..3).and_then(digits),
        [a, b, b'-', c, d, b'v' | b'V', v @ ..] if [a, b, c, d].iter().all(|x| x.is_ascii_digit()) => {
            v.get(..4).and_then(digits)
        }
        _ => None,
    };
    match version {
        Some(v) => Ok(Header { version: Some((v / 100, v % 100)) }),
        None => Err(format!("unknown Blender header {:?}", shown(head.get(..17).unwrap_or(head)))),
    }
}

/// The first bytes, printable ASCII kept, the rest shown as `.`.
fn shown(bytes: &[u8]) -> String {
    bytes.iter().take(12).map(|b| if b.is_ascii_graphic() || *b == b' ' { *b as char } else { '.' }).collect()
}

/// `(major, minor)` of a version string like `3.4.1`.
pub(crate) fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Reads up to [`HEAD_LEN`] leading bytes of a file.
pub(crate) async fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    file.take(HEAD_LEN as u64).read_to_end(&mut head).await?;
    Ok(head)
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
        let header = read_header(&read_head(blend).await?)?;
        if let Some(saved) = header.version {
            let installed = self.version().await?;
            if major_minor(&installed).is_some_and(|ours| saved > ours) {
                return Err(BlenderError::NewerFile { saved: format!("{}.{}", saved.0, saved.1), installed });
            }
        }
        let mut dir = self.run_dir("lumen-inspect-")?;
        let blend = dir.input(blend)?;
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
        let out = process::run(&self.exe, &args, Some(INSPECT_LIMITS), timeout, &dir).await?;
        if let Some(json) = out.stdout.lines().find_map(|l| l.strip_prefix(MARKER)) {
            return serde_json::from_str(json)
                .map_err(|e| BlenderError::Unexpected { reason: format!("inspection output: {e}") });
        }
        let detail = error_lines(&out.stdout, &out.stderr);
        Err(match out.exit.signal() {
            None => BlenderError::Unreadable { reason: detail },
            Some(_) => BlenderError::Unreadable {
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
        assert_eq!(read_header(b"BLENDER-v304RENDH").unwrap().version, Some((3, 4)));
        assert_eq!(read_header(b"BLENDER_V279REND").unwrap().version, Some((2, 79)));
        assert_eq!(read_header(b"BLENDER17-01v0500....").unwrap().version, Some((5, 0)));
        assert_eq!(read_header(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap().version, None);
        let err = read_header(b"%PDF-1.7 hello world").unwrap_err().to_string();
        assert!(err.contains("%PDF-1.7"), "{err}");
        assert!(read_header(b"BLEND").unwrap_err().to_string().contains("only 5 bytes"));
        let err = read_header(b"BLENDER-vxyzREND....").unwrap_err().to_string();
        assert!(err.contains("unknown Blender header"), "{err}");
    }

    #[test]
    fn gzip_compressed_headers_are_read_inside() {
        use std::io::Write;
        let gzip = |content: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(content).unwrap();
            enc.finish().unwrap()
        };
        let blend = gzip(&[b"BLENDER-v279REND".as_slice(), &[0u8; 5000]].concat());
        // Only the head of the file is given, as in real use.
        assert_eq!(read_header(&blend[..blend.len().min(HEAD_LEN)]).unwrap().version, Some((2, 79)));
        let err = read_header(&gzip(b"just some text, gzipped")).unwrap_err().to_string();
        assert!(err.contains("not a .blend"), "{err}");
    }

    #[test]
    fn versions() {
        assert_eq!(major_minor("3.4.1"), Some((3, 4)));
        assert_eq!(major_minor("4.10"), Some((4, 10)));
        assert_eq!(major_minor("x"), None);
    }

    #[test]
    fn error_lines_pick_blenders_complaints() {
        let out = "Blender 3.4.1\nRead blend: /x\nError: Failed to read blend file '/x': Missing DNA block\nBlender quit";
        assert_eq!(error_lines(out, ""), "Error: Failed to read blend file '/x': Missing DNA block");
        assert_eq!(error_lines("fine", ""), "no error message");
    }
}
