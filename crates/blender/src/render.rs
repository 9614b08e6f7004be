//! Rendering one frame in the sandbox.

use std::{
    ffi::{OsStr, OsString},
    path::PathBuf,
    time::Duration,
};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::{
    Blender, RenderError,
    process::{self, Limits, Usage},
    sandbox::RunDir,
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
    /// Folder under which the render's private folder (its output and
    /// scratch folders, removed afterwards) is created.
    pub work_dir: PathBuf,
    /// Limits.
    pub limits: ResourceLimits,
    /// Render threads (`None`: Blender decides).
    pub threads: Option<u32>,
    /// The scene's frame range, when known: frames outside are refused
    /// (Blender would render them silently).
    pub expected_range: Option<(i32, i32)>,
    /// A probe, not a frame: the scene is rendered about 16 pixels tall
    /// with one sample, which costs little and still fails the way the
    /// full render fails on a missing feature, an unreadable file or no
    /// camera.
    /// The gateway's verifier probes to confirm a deterministic failure
    /// that nodes report before it fails anybody's job.
    pub probe: bool,
    /// Renders with this many samples instead of the scene's (Cycles
    /// samples, Eevee TAA samples). Only failure tests of cheating nodes
    /// set it.
    pub samples_override: Option<u32>,
}

/// What a probe changes once the file is loaded (see [`RenderRequest::probe`]).
const PROBE_EXPR: &str = "import bpy, math\nfor s in bpy.data.scenes:\n    r = s.render\n    \
    r.resolution_percentage = max(1, min(100, math.ceil(1600 / max(1, min(r.resolution_x, r.resolution_y)))))\n    \
    s.eevee.taa_render_samples = 1\n    c = getattr(s, 'cycles', None)\n    if c is not None:\n        c.samples = 1\n";

/// Runs once the file is loaded, before the frame renders: refuses a
/// scene whose compositor has an active File Output node, which writes
/// files wherever the scene says. Every scene's compositor is searched (a
/// Render Layers node can pull another scene in), into node groups (their
/// File Output nodes run too). Prints [`FORBIDDEN_MARKER`] and the node as
/// JSON, and exits with [`FORBIDDEN_EXIT`].
const PREFLIGHT_EXPR: &str = r#"
import bpy, json, sys
def file_outputs(tree, seen):
    if tree is None or tree.as_pointer() in seen:
        return
    seen.add(tree.as_pointer())
    for n in tree.nodes:
        if n.mute:
            continue
        if n.type == 'OUTPUT_FILE':
            yield n
        elif n.type == 'GROUP':
            yield from file_outputs(n.node_tree, seen)
for s in bpy.data.scenes:
    if s.use_nodes:
        for n in file_outputs(s.node_tree, set()):
            print('LUMEN-FORBIDDEN-OUTPUT\t' + json.dumps({'node': n.name, 'path': n.base_path}), flush=True)
            sys.exit(4)
"#;

/// The line [`PREFLIGHT_EXPR`] prints before the refused node.
const FORBIDDEN_MARKER: &str = "LUMEN-FORBIDDEN-OUTPUT\t";

/// Blender's exit code after [`PREFLIGHT_EXPR`] refused the scene.
const FORBIDDEN_EXIT: i32 = 4;

/// The File Output node [`PREFLIGHT_EXPR`] refused, if it did.
fn forbidden_output(stdout: &str) -> Option<RenderError> {
    #[derive(Deserialize)]
    struct Node {
        node: String,
        path: String,
    }
    let json = stdout.lines().find_map(|l| l.strip_prefix(FORBIDDEN_MARKER))?;
    let node: Node = serde_json::from_str(json).ok()?;
    Some(RenderError::ForbiddenOutput { node: node.node, path: node.path })
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
    /// Peak resident memory of Blender, sampled from `/proc` every 100 ms
    /// (so approximate), when it could be read.
    pub peak_rss: Option<u64>,
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Maps Blender's output lines to a typed failure, if one is recognisable.
///
/// Progress lines (`Fra:…`) are skipped: they carry scene and view-layer
/// names that the file's author chooses. When several failures show, the
/// most fundamental wins (out of memory explains everything after it).
pub(crate) fn classify(stdout: &str, stderr: &str) -> Option<RenderError> {
    let mut found: Option<(u8, RenderError)> = None;
    for line in stdout.lines().chain(stderr.lines()).map(str::trim) {
        if line.starts_with("Fra:") {
            continue;
        }
        let detail = || line.trim_start_matches("Error: ").to_owned();
        let hit = if line.contains("Memory allocation failed")
            || line.contains("std::bad_alloc")
            || line.contains("Out of memory")
            || line.contains("Malloc returns null")
            || line.contains("failed to map segment from shared object")
        {
            (0, RenderError::OutOfMemory { detail: detail() })
        } else if line.contains("Build without")
            || line.contains("built without")
            || line.contains("Unable to open a display")
        {
            (1, RenderError::MissingFeature { detail: detail() })
        } else if line.contains("Failed to read blend file")
            || line.contains("File format is not supported")
            || line.contains("Cannot read file")
        {
            (2, RenderError::UnreadableFile { detail: detail() })
        } else if line.contains("Cannot render, no camera")
            || line.contains("No camera found in scene")
            || line.contains("Unable to render without camera")
        {
            (3, RenderError::NoCamera)
        } else if line.contains("restricted access disallows name")
            || (line.starts_with("scripts disabled for") && line.contains(", skipping"))
        {
            (4, RenderError::ScriptBlocked { detail: line.to_owned() })
        } else {
            continue;
        };
        if found.as_ref().is_none_or(|(rank, _)| hit.0 < *rank) {
            found = Some(hit);
        }
    }
    found.map(|(_, err)| err)
}

/// Maps death by a signal to a failure, using what `/proc` showed of the
/// process before it died.
pub(crate) fn classify_signal(signal: i32, usage: &Usage, limits: &ResourceLimits) -> RenderError {
    let sig = Signal::try_from(signal).ok();
    let cpu_exhausted =
        usage.cpu_time.is_some_and(|t| t + Duration::from_secs(1) >= Duration::from_secs(limits.cpu_seconds));
    // Under RLIMIT_AS, Blender's failed allocations often end in a
    // segfault or an abort with no message: a crash with the address space
    // near its limit is taken as out of memory.
    let near_memory_limit = usage.peak_vm.is_some_and(|vm| vm >= limits.memory_bytes / 4 * 3);
    match sig {
        Some(Signal::SIGXCPU) => RenderError::CpuLimit,
        // The hard CPU limit; our own timeout kill never gets here.
        Some(Signal::SIGKILL) if cpu_exhausted => RenderError::CpuLimit,
        Some(Signal::SIGKILL) => RenderError::OutOfMemory {
            detail: "killed by SIGKILL, most likely by the kernel's out-of-memory killer".into(),
        },
        Some(sig @ (Signal::SIGSEGV | Signal::SIGABRT | Signal::SIGBUS)) if near_memory_limit => {
            RenderError::OutOfMemory {
                detail: format!(
                    "killed by {sig} with its address space near the {} MiB limit",
                    limits.memory_bytes >> 20
                ),
            }
        }
        Some(sig) => RenderError::Crashed { detail: format!("killed by {sig}") },
        None => RenderError::Crashed { detail: format!("killed by signal {signal}") },
    }
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
        let mut dir = RunDir::new(&self.sandbox, &req.work_dir, "render-")?;
        let blend = dir.input(&req.blend)?;
        let pattern = dir.output().join("frame_#####");
        let mut args: Vec<OsString> = vec![
            "-b".into(),
            "--factory-startup".into(),
            "--disable-autoexec".into(),
            blend.into_os_string(),
            "-o".into(),
            pattern.into_os_string(),
            "-F".into(),
            "PNG".into(),
            "-x".into(),
            "1".into(),
            "--python-expr".into(),
            PREFLIGHT_EXPR.into(),
        ];
        if let Some(threads) = req.threads {
            args.push("-t".into());
            args.push(threads.to_string().into());
        }
        if req.probe {
            args.push("--python-expr".into());
            args.push(PROBE_EXPR.into());
        }
        if let Some(samples) = req.samples_override {
            args.push("--python-expr".into());
            args.push(
                format!(
                    "import bpy\nfor s in bpy.data.scenes:\n    s.eevee.taa_render_samples = {samples}\n    \
                     c = getattr(s, 'cycles', None)\n    if c is not None:\n        c.samples = {samples}\n"
                )
                .into(),
            );
        }
        args.push("-f".into());
        args.push(req.frame.to_string().into());
        let arg_refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        let limits = Limits { memory_bytes: req.limits.memory_bytes, cpu_seconds: req.limits.cpu_seconds };
        let out = process::run(&self.exe, &arg_refs, Some(limits), req.limits.timeout, &dir).await?;
        debug!(target: "blender::render", frame = req.frame, exit = %out.exit, wall = ?out.wall, "blender finished");

        if out.exit == process::Exit::Code(FORBIDDEN_EXIT)
            && let Some(err) = forbidden_output(&out.stdout)
        {
            return Err(err);
        }
        if let Some(err) = classify(&out.stdout, &out.stderr) {
            return Err(err);
        }
        if let Some(signal) = out.exit.signal() {
            return Err(classify_signal(signal, &out.usage, &req.limits));
        }
        let mut produced = None;
        let mut entries = tokio::fs::read_dir(dir.host_output()).await?;
        while let Some(entry) = entries.next_entry().await? {
            // A regular file only: never follow a link out of the folder.
            if entry.file_name().to_string_lossy().starts_with("frame_") && entry.file_type().await?.is_file()
            {
                produced = Some(entry.path());
            }
        }
        let detail = crate::inspect::error_lines(&out.stdout, &out.stderr);
        let Some(path) = produced else {
            return Err(if out.exit.success() {
                RenderError::NoOutput { detail }
            } else {
                RenderError::Crashed { detail: format!("{}: {detail}", out.exit) }
            });
        };
        let bytes = tokio::fs::read(&path).await?;
        if bytes.is_empty() {
            return Err(RenderError::NoOutput { detail: "the output file is empty".into() });
        }
        if !bytes.starts_with(PNG_SIGNATURE) {
            return Err(RenderError::NoOutput { detail: "the output file is not a PNG".into() });
        }
        if !out.exit.success() {
            // A frame was written, yet Blender failed after it: do not trust it.
            return Err(RenderError::Crashed { detail: format!("{}: {detail}", out.exit) });
        }
        Ok(RenderOutput {
            bytes,
            wall_time: out.wall,
            render_time: parse_render_time(&out.stdout),
            peak_rss: out.usage.peak_rss,
        })
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
    fn classifies_blender_3_4_lines() {
        // Lines as Blender 3.4.1 prints them (measured).
        let kind = |out: &str| classify(out, "").map(|e| e.kind());
        assert_eq!(
            kind("Read blend: /x.blend\nError: Cannot render, no camera\n\nBlender quit"),
            Some("no_camera")
        );
        assert_eq!(
            kind("Error: Failed to read blend file '/x.blend': Missing DNA block"),
            Some("unreadable_file")
        );
        assert_eq!(
            kind("Error: Cannot read file '/x.blend': No such file or directory"),
            Some("unreadable_file")
        );
        assert_eq!(
            classify("", "blender: error while loading shared libraries: libopenvdb.so.10.0: failed to map segment from shared object")
                .map(|e| e.kind()),
            Some("out_of_memory")
        );
        let oom =
            "Error: Out of memory\nMalloc returns null: len=921600 in Cycles Aligned Alloc, total 9598000";
        assert_eq!(classify(oom, "Build without OpenImageDenoiser").map(|e| e.kind()), Some("out_of_memory"));
        assert_eq!(kind("Unable to open a display"), Some("missing_feature"));
        // Python the disabled auto-run skipped: a driver, a registered script.
        let driver = "\tBPY_driver_exec: restricted access disallows name 'exec', enable auto-execution to support\n\
                      Error in PyDriver: expression failed: exec(x) or 0";
        assert_eq!(kind(driver), Some("script_blocked"));
        assert_eq!(
            kind("scripts disabled for \"/lumen/in/a.blend\", skipping 'payload.py'"),
            Some("script_blocked")
        );
        let err = classify(driver, "").unwrap();
        assert!(err.is_deterministic());
        assert!(err.to_string().contains("disallows name 'exec'"), "{err}");
    }

    #[test]
    fn reads_the_refused_file_output_node() {
        let out = "Blender 3.4.1\nRead blend: /lumen/in/a.blend\n\
                   LUMEN-FORBIDDEN-OUTPUT\t{\"node\": \"Escape \\\"x\\\"\", \"path\": \"//../e/\"}\n";
        let err = forbidden_output(out).unwrap();
        assert!(
            matches!(&err, RenderError::ForbiddenOutput { node, path } if node == "Escape \"x\"" && path == "//../e/"),
            "{err:?}"
        );
        assert_eq!(err.kind(), "forbidden_output");
        assert!(err.is_deterministic());
        assert!(forbidden_output("Blender 3.4.1\nLUMEN-FORBIDDEN-OUTPUT\tnot json\n").is_none());
        // The script prints the marker and exits with the code looked for.
        assert!(PREFLIGHT_EXPR.contains(&format!("'{}\\t'", FORBIDDEN_MARKER.trim_end())));
        assert!(PREFLIGHT_EXPR.contains(&format!("sys.exit({FORBIDDEN_EXIT})")));
    }

    #[test]
    fn progress_lines_cannot_spoof_a_failure() {
        // Scene and view-layer names are the file author's to choose.
        let out = "Fra:1 Mem:9M | Time:00:00.02 | Build without X, Cannot render, no camera | Finished";
        assert!(classify(out, "").is_none());
    }

    #[test]
    fn classifies_signals() {
        let limits =
            ResourceLimits { cpu_seconds: 10, memory_bytes: 1000 << 20, ..ResourceLimits::default() };
        let usage = |cpu: u64, vm_mib: u64| Usage {
            cpu_time: Some(Duration::from_secs(cpu)),
            peak_vm: Some(vm_mib << 20),
            peak_rss: None,
        };
        let kind = |sig: Signal, u: Usage| classify_signal(sig as i32, &u, &limits).kind();
        assert_eq!(kind(Signal::SIGXCPU, Usage::default()), "cpu_limit");
        assert_eq!(kind(Signal::SIGKILL, usage(9, 100)), "cpu_limit");
        assert_eq!(kind(Signal::SIGKILL, usage(1, 100)), "out_of_memory");
        assert_eq!(kind(Signal::SIGSEGV, usage(1, 900)), "out_of_memory");
        assert_eq!(kind(Signal::SIGABRT, usage(1, 900)), "out_of_memory");
        let segv = classify_signal(Signal::SIGSEGV as i32, &usage(1, 300), &limits);
        assert_eq!(segv.kind(), "crashed");
        assert!(!segv.is_deterministic());
        assert!(segv.to_string().contains("SIGSEGV"), "{segv}");
    }
}
