//! Calibration of [`compare_frames`] under [`Tolerance::default()`] with real
//! Blender renders: do honest pairs match, and do cheats not?
//!
//! Run with `cargo bench -p lumen-verifier --bench calibrate` (Blender from
//! `$LUMEN_BLENDER`, else `blender` on `PATH`; about 5 minutes on two cores).
//! It generates three scene layouts per engine (Cycles, Eevee, Workbench)
//! with `scripts/make-sample-scene.py --seed`, renders all their frames to
//! PNG (8-bit RGBA) and OpenEXR (32-bit float RGBA), and compares:
//!
//! - **honest pairs on one machine**: each frame rendered twice by separate
//!   Blender processes into separate folders, with 1 and 2 render threads
//!   (and `LP_NUM_THREADS` 1 and 2, so Mesa's llvmpipe, which draws Eevee
//!   and Workbench headless, varies too), plus one frame per scene rendered
//!   alone in its own process, as a node does;
//! - **honest pairs across implementations**, standing in for two machines:
//!   Cycles with its SSE2 CPU kernels instead of the CPU's best, Eevee and
//!   Workbench drawn by Mesa's softpipe instead of llvmpipe;
//! - **cheats** against an honest render of the same frame: `noise`,
//!   `smooth-gradient` (each row the mean colour of that row of an honest
//!   render), `smooth-blur` (an honest render under a Gaussian blur),
//!   `fewer-samples`, `neighbour` (frame N±1) and `other-scene` (the same
//!   frame number of another layout).
//!
//! It prints the tables and writes the same results, with every single
//! comparison, to `target/calibrate.json`.
//!
//! Blender runs as `lumen-blender` runs it (`-b --factory-startup
//! --disable-autoexec`, cleared environment, private `HOME`), except that one
//! process renders all frames of a scene to save start-up time (each frame is
//! still a render of its own, and the two renders of a pair always come from
//! different processes) and the output format is set per render. Eevee and
//! Workbench need OpenGL: a render that fails without a display is retried
//! under `xvfb-run -a`; an engine that renders neither way is reported
//! unavailable, with the reason.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    fmt::Write as _,
    fs,
    io::Cursor,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgba, Rgba32FImage};
use lumen_verifier::{Comparison, FrameExpectation, Tolerance, check_frame, compare_frames};
use serde::Serialize;

/// Frames of every scene, `1..=FRAMES`; all are rendered.
const FRAMES: i32 = 12;
/// Scene layouts (`make-sample-scene.py --seed`); seed 0 is the default scene.
const SEEDS: [u32; 3] = [0, 1, 2];
/// Samples of the honest renders (Cycles samples, Eevee TAA samples).
const SAMPLES: u32 = 16;
/// Wall-clock limit of one Blender process.
const RENDER_TIMEOUT: Duration = Duration::from_secs(600);
/// Standard deviation, in pixels, of the `smooth-blur` cheat's blur.
const BLUR_SIGMA: f32 = 2.0;

/// The frame of a scene that is also rendered alone, in a process of its own.
fn alone_frame(seed: u32) -> i32 {
    2 + 4 * seed as i32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
enum Engine {
    Cycles,
    Eevee,
    Workbench,
}

impl Engine {
    const ALL: [Self; 3] = [Self::Cycles, Self::Eevee, Self::Workbench];

    fn blender_name(self) -> &'static str {
        match self {
            Self::Cycles => "CYCLES",
            Self::Eevee => "BLENDER_EEVEE",
            Self::Workbench => "BLENDER_WORKBENCH",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Cycles => "cycles",
            Self::Eevee => "eevee",
            Self::Workbench => "workbench",
        }
    }

    /// Eevee on llvmpipe costs more per pixel; a smaller frame saves some.
    fn size(self) -> (u32, u32) {
        match self {
            Self::Eevee => (128, 72),
            Self::Cycles | Self::Workbench => (160, 90),
        }
    }

    /// Python (with `s` the scene) run before every render of the engine,
    /// and what it does. Eevee's world light probe is rendered at 64 px
    /// instead of 512: on llvmpipe the 512 px probe costs 2 s a frame, 7
    /// times the rest of the render (softpipe: 2 minutes instead of 10 s).
    /// The sample scene's world is one flat colour, so its frames come out
    /// bit-identical either way.
    fn bench_setting(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Eevee => Some(("s.eevee.gi_cubemap_resolution = '64'", "world probe 64 px")),
            Self::Cycles | Self::Workbench => None,
        }
    }

    /// Python (with `s` the scene) that lowers the render quality for the
    /// `fewer-samples` cheat, and what it does.
    fn fewer_samples(self) -> (&'static str, &'static str) {
        match self {
            Self::Cycles => ("s.cycles.samples = 1", "cycles.samples 1 instead of 16"),
            Self::Eevee => ("s.eevee.taa_render_samples = 1", "eevee.taa_render_samples 1 instead of 16"),
            // Workbench has no sample count; its render anti-aliasing is the
            // quality knob (the scene uses 8 samples).
            Self::Workbench => {
                ("s.display.render_aa = 'OFF'", "display.render_aa OFF instead of 8 (no sample count)")
            }
        }
    }

    /// Environment that makes Blender render with another implementation of
    /// the engine, as another machine would.
    fn cross_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Cycles' SSE2 ("default") CPU kernels instead of the best the
            // CPU has (AVX2 on most).
            Self::Cycles => &[
                ("CYCLES_CPU_NO_AVX2", "1"),
                ("CYCLES_CPU_NO_AVX", "1"),
                ("CYCLES_CPU_NO_SSE41", "1"),
                ("CYCLES_CPU_NO_SSE3", "1"),
            ],
            // Mesa's reference rasterizer instead of llvmpipe: another
            // OpenGL implementation, as another GPU or driver is.
            Self::Eevee | Self::Workbench => &[("GALLIUM_DRIVER", "softpipe")],
        }
    }

    /// Arguments and Python (with `s` the scene) that make Blender log which
    /// implementation renders: Cycles' CPU kernels, or the OpenGL renderer.
    fn report_implementation(self) -> (&'static [&'static str], Option<&'static str>) {
        match self {
            Self::Cycles => (&["--debug-cycles"], None),
            Self::Eevee | Self::Workbench => (
                &[],
                Some(
                    "import gpu; bpy.app.handlers.render_post.append(lambda *_: print('LUMEN_GL:', \
                     gpu.platform.renderer_get(), '/', gpu.platform.version_get(), flush=True))",
                ),
            ),
        }
    }
}

/// Which implementation rendered, from a Blender log written with
/// [`Engine::report_implementation`].
fn implementation(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        if let Some(gl) = line.strip_prefix("LUMEN_GL: ") {
            return Some(gl.trim().to_owned());
        }
        let (_, rest) = line.split_once("] Using ")?;
        let kernels = rest.trim().strip_suffix(" CPU kernels.")?;
        Some(if kernels == "default" {
            "SSE2 CPU kernels".to_owned()
        } else {
            format!("{kernels} CPU kernels")
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Png,
    Exr,
}

impl Format {
    const ALL: [Self; 2] = [Self::Png, Self::Exr];

    fn label(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Exr => "exr",
        }
    }

    fn magic(self) -> &'static [u8] {
        match self {
            Self::Png => b"\x89PNG",
            Self::Exr => &[0x76, 0x2f, 0x31, 0x01],
        }
    }

    /// `-F OPEN_EXR` alone leaves the bit depth to Blender (half float), so
    /// EXR is set up in Python: full float, lossless ZIP.
    fn python(self) -> Option<&'static str> {
        match self {
            Self::Png => None,
            Self::Exr => Some(
                "s.render.image_settings.file_format = 'OPEN_EXR'; \
                 s.render.image_settings.color_depth = '32'; \
                 s.render.image_settings.exr_codec = 'ZIP'",
            ),
        }
    }

    fn cli(self) -> &'static [&'static str] {
        match self {
            Self::Png => &["-F", "PNG"],
            Self::Exr => &[],
        }
    }
}

/// What a render process is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    /// All frames, 1 thread: the reference of every comparison.
    First,
    /// All frames, 2 threads: the other half of the honest pairs.
    Second,
    /// [`alone_frame`] only, 2 threads, as a node renders it.
    Alone,
    /// All frames, reduced quality, 2 threads: the `fewer-samples` cheat.
    FewerSamples,
    /// Another implementation of the engine, 2 threads, standing in for
    /// another machine (see [`Engine::cross_env`] and [`cross_jobs`]).
    Cross,
}

impl Role {
    fn threads(self) -> u32 {
        match self {
            Self::First => 1,
            Self::Second | Self::Alone | Self::FewerSamples | Self::Cross => 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Second => "second",
            Self::Alone => "alone",
            Self::FewerSamples => "fewer-samples",
            Self::Cross => "cross",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Cheat {
    Noise,
    SmoothGradient,
    SmoothBlur,
    FewerSamples,
    Neighbour,
    OtherScene,
}

impl Cheat {
    const ALL: [Self; 6] = [
        Self::Noise,
        Self::SmoothGradient,
        Self::SmoothBlur,
        Self::FewerSamples,
        Self::Neighbour,
        Self::OtherScene,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Noise => "noise",
            Self::SmoothGradient => "smooth-gradient",
            Self::SmoothBlur => "smooth-blur",
            Self::FewerSamples => "fewer-samples",
            Self::Neighbour => "neighbour",
            Self::OtherScene => "other-scene",
        }
    }
}

/// How Blender is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Launcher {
    /// `blender -b …`
    Direct,
    /// `xvfb-run -a blender -b …`, for engines that need a display.
    XvfbRun,
}

/// The [`Role::Cross`] renders of a scene. Cycles renders all frames in one
/// process. Eevee and Workbench render each frame in a process of its own,
/// as a node does, because softpipe carries state from one frame to the
/// next (the second frame of a batch comes out garbled; llvmpipe's do not):
/// Workbench every third frame, Eevee (10 s a frame on softpipe) one frame.
fn cross_jobs(engine: Engine, format: Format, seed: u32) -> Vec<Job> {
    let job = Job::new(engine, format, seed, Role::Cross);
    let single = |frame| Job { frames: vec![frame], ..job.clone() };
    match engine {
        Engine::Cycles => vec![job],
        Engine::Workbench => (1..=FRAMES).step_by(3).map(single).collect(),
        Engine::Eevee => vec![single(alone_frame(seed))],
    }
}

/// One Blender process.
#[derive(Debug, Clone)]
struct Job {
    engine: Engine,
    format: Format,
    seed: u32,
    role: Role,
    frames: Vec<i32>,
}

impl Job {
    fn new(engine: Engine, format: Format, seed: u32, role: Role) -> Self {
        let frames = if role == Role::Alone { vec![alone_frame(seed)] } else { (1..=FRAMES).collect() };
        Self { engine, format, seed, role, frames }
    }

    fn key(&self) -> Key {
        (self.engine, self.format, self.seed, self.role)
    }

    fn describe(&self) -> String {
        format!(
            "{} {} seed {} {} ({} frame{}, {} thread{})",
            self.engine.label(),
            self.format.label(),
            self.seed,
            self.role.label(),
            self.frames.len(),
            if self.frames.len() == 1 { "" } else { "s" },
            self.role.threads(),
            if self.role.threads() == 1 { "" } else { "s" },
        )
    }

    /// Rough cost, to start the longest jobs first.
    fn cost(&self) -> f64 {
        let per_frame = match (self.engine, self.role) {
            // softpipe
            (Engine::Eevee, Role::Cross) => 12.0,
            (Engine::Workbench, Role::Cross) => 2.0,
            (Engine::Eevee, _) => 0.5,
            _ => 0.3,
        };
        3.0 + per_frame * self.frames.len() as f64
    }
}

type Key = (Engine, Format, u32, Role);

/// What one Blender process rendered.
#[derive(Debug)]
struct Rendered {
    frames: BTreeMap<i32, Vec<u8>>,
    /// The implementation Blender logged, see [`implementation`].
    implementation: Option<String>,
}

struct Bench {
    blender: PathBuf,
    script: PathBuf,
    work: tempfile::TempDir,
}

impl Bench {
    fn scene(&self, engine: Engine, seed: u32) -> PathBuf {
        self.work.path().join(format!("scene-{}-{seed}.blend", engine.label()))
    }

    fn generate_scene(&self, engine: Engine, seed: u32) -> Result<(), String> {
        let (width, height) = engine.size();
        let out = self.scene(engine, seed);
        let mut args: Vec<OsString> =
            ["-b", "--factory-startup", "--python"].into_iter().map(OsString::from).collect();
        args.push(self.script.clone().into_os_string());
        for arg in ["--python-exit-code", "3", "--", "--out"] {
            args.push(arg.into());
        }
        args.push(out.clone().into_os_string());
        for (flag, value) in [
            ("--engine", engine.blender_name().to_owned()),
            ("--samples", SAMPLES.to_string()),
            ("--frames", FRAMES.to_string()),
            ("--width", width.to_string()),
            ("--height", height.to_string()),
            ("--seed", seed.to_string()),
        ] {
            args.push(flag.into());
            args.push(value.into());
        }
        let log = self.work.path().join(format!("scene-{}-{seed}.log", engine.label()));
        self.run_blender(&args, Launcher::Direct, 1, &[], &log)?;
        if fs::metadata(&out).is_ok_and(|m| m.len() > 0) {
            Ok(())
        } else {
            Err(format!("the scene script wrote no file: {}", log_reason(&log)))
        }
    }

    /// Renders a job's frames in one Blender process.
    fn render(&self, job: &Job, launcher: Launcher) -> Result<Rendered, String> {
        let dir = tempfile::Builder::new()
            .prefix("render-")
            .tempdir_in(self.work.path())
            .map_err(|e| format!("cannot create an output folder: {e}"))?;
        let (report_args, report_python) = job.engine.report_implementation();
        let mut args: Vec<OsString> =
            ["-b", "--factory-startup", "--disable-autoexec"].into_iter().map(OsString::from).collect();
        args.extend(report_args.iter().map(OsString::from));
        args.push(self.scene(job.engine, job.seed).into_os_string());
        let mut python: Vec<&str> = job
            .format
            .python()
            .into_iter()
            .chain(job.engine.bench_setting().map(|(python, _)| python))
            .chain(report_python)
            .collect();
        if job.role == Role::FewerSamples {
            python.push(job.engine.fewer_samples().0);
        }
        if !python.is_empty() {
            args.push("--python-exit-code".into());
            args.push("3".into());
            args.push("--python-expr".into());
            args.push(format!("import bpy; s = bpy.context.scene; {}", python.join("; ")).into());
        }
        args.push("-o".into());
        args.push(dir.path().join("frame_#####").into_os_string());
        args.extend(job.format.cli().iter().map(OsString::from));
        let frames: Vec<String> = job.frames.iter().map(i32::to_string).collect();
        for arg in ["-x".to_owned(), "1".to_owned(), "-t".to_owned(), job.role.threads().to_string()] {
            args.push(arg.into());
        }
        args.push("-f".into());
        args.push(frames.join(",").into());

        let log = dir.path().join("blender.log");
        let env = if job.role == Role::Cross { job.engine.cross_env() } else { &[] };
        self.run_blender(&args, launcher, job.role.threads(), env, &log)?;
        let mut out = BTreeMap::new();
        for &frame in &job.frames {
            let path = dir.path().join(format!("frame_{frame:05}.{}", job.format.label()));
            let bytes = fs::read(&path)
                .map_err(|e| format!("frame {frame} was not written ({e}): {}", log_reason(&log)))?;
            if !bytes.starts_with(job.format.magic()) {
                return Err(format!("frame {frame} is not {}", job.format.label()));
            }
            out.insert(frame, bytes);
        }
        let implementation = implementation(&fs::read_to_string(&log).unwrap_or_default());
        Ok(Rendered { frames: out, implementation })
    }

    /// Runs Blender the way `lumen-blender` does (cleared environment but
    /// `env`, private `HOME`, own process group), its output going to `log`.
    fn run_blender(
        &self,
        args: &[OsString],
        launcher: Launcher,
        threads: u32,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<(), String> {
        let home = tempfile::Builder::new()
            .prefix("home-")
            .tempdir_in(self.work.path())
            .map_err(|e| format!("cannot create a home folder: {e}"))?;
        let mut command = match launcher {
            Launcher::Direct => Command::new(&self.blender),
            Launcher::XvfbRun => {
                let mut c = Command::new("xvfb-run");
                c.arg("-a").arg(&self.blender);
                c
            }
        };
        let stdout = fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let stderr = stdout.try_clone().map_err(|e| format!("cannot share the log file: {e}"))?;
        command
            .args(args)
            .env_clear()
            .envs(lumen_blender::isolated_env(home.path()))
            // Mesa's software rasterizer (Eevee, Workbench): as many threads
            // as Blender's, so the two renders of a pair differ there too.
            .env("LP_NUM_THREADS", threads.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let mut child = command.spawn().map_err(|e| format!("cannot start {launcher:?} Blender: {e}"))?;
        match wait_or_kill(&mut child, RENDER_TIMEOUT) {
            Ok(Some(status)) if status.success() => Ok(()),
            Ok(Some(status)) => Err(format!("Blender failed ({status}): {}", log_reason(log))),
            Ok(None) => Err(format!("Blender timed out after {RENDER_TIMEOUT:?}: {}", log_reason(log))),
            Err(e) => Err(format!("waiting for Blender: {e}")),
        }
    }

    /// Renders frame 1 of the first scene to find out whether, and how, the
    /// engine renders here: directly, else under `xvfb-run`.
    fn probe(&self, engine: Engine) -> Result<(Launcher, Option<String>), String> {
        let job = Job { frames: vec![1], ..Job::new(engine, Format::Png, SEEDS[0], Role::First) };
        let (width, height) = engine.size();
        let expect = FrameExpectation { width, height, max_bytes: 64 << 20 };
        let attempt = |launcher| {
            let rendered = self.render(&job, launcher)?;
            let bytes = rendered.frames.get(&1).ok_or("frame 1 missing")?;
            check_frame(bytes, &expect).map_err(|r| format!("the probe frame is rejected: {r}"))?;
            Ok::<_, String>(())
        };
        let direct = match attempt(Launcher::Direct) {
            Ok(()) => return Ok((Launcher::Direct, None)),
            Err(e) => e,
        };
        if !on_path("xvfb-run") {
            return Err(format!("without a display: {direct}; xvfb-run is not installed"));
        }
        match attempt(Launcher::XvfbRun) {
            Ok(()) => Ok((Launcher::XvfbRun, Some(format!("without a display: {direct}")))),
            Err(xvfb) => Err(format!("without a display: {direct}; under xvfb-run: {xvfb}")),
        }
    }
}

/// Waits for `child`, killing its process group after `timeout`.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // The child leads its own group (process_group(0)); xvfb-run's
            // Xvfb is in it too.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last error-looking lines of a Blender log, else its last lines.
fn log_reason(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("Fra:")).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            ["Error", "error", "Unable", "failed", "Failed", "Segmentation", "Aborted", "Traceback"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    let pick = if errors.is_empty() { &lines } else { &errors };
    pick[pick.len().saturating_sub(3)..].join(" | ")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `$LUMEN_BLENDER`, else `blender` on `PATH`, as `lumen_blender::Blender::locate`.
fn locate_blender() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LUMEN_BLENDER") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("blender")).find(|p| p.is_file()))
}

fn blender_version(blender: &Path) -> String {
    Command::new(blender)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs `f` on every item on as many threads as there are cores, keeping
/// the order of the results.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = thread::available_parallelism().map_or(2, usize::from).clamp(1, items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    results.lock().expect("no worker panics holding the lock")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

// --- synthetic cheats -------------------------------------------------------

/// xorshift: deterministic noise without a `rand` dependency.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn noise_image(width: u32, height: u32, seed: u64) -> Rgba32FImage {
    let mut noise = Noise::new(seed);
    ImageBuffer::from_fn(width, height, |_, _| Rgba([noise.unit(), noise.unit(), noise.unit(), 1.0]))
}

/// Every row the mean colour of that row of `src`: smooth across, and as
/// close to the frame as a smooth image without its objects gets.
fn row_means(src: &Rgba32FImage) -> Rgba32FImage {
    let (width, height) = src.dimensions();
    let means: Vec<[f32; 4]> = (0..height)
        .map(|y| {
            let mut sum = [0f64; 4];
            for x in 0..width {
                for (s, v) in sum.iter_mut().zip(src.get_pixel(x, y).0) {
                    *s += f64::from(v);
                }
            }
            sum.map(|s| (s / f64::from(width)) as f32)
        })
        .collect();
    ImageBuffer::from_fn(width, height, |_, y| Rgba(means[y as usize]))
}

/// Separable Gaussian blur with clamped edges, in float (no clipping of
/// linear EXR values above 1).
fn blur(src: &Rgba32FImage, sigma: f32) -> Rgba32FImage {
    let radius = (3.0 * sigma).ceil() as i64;
    let kernel: Vec<f32> =
        (-radius..=radius).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let (width, height) = src.dimensions();
    let pass = |img: &Rgba32FImage, dx: i64, dy: i64| -> Rgba32FImage {
        ImageBuffer::from_fn(width, height, |x, y| {
            let mut acc = [0f32; 4];
            for (k, weight) in kernel.iter().enumerate() {
                let offset = k as i64 - radius;
                let sx = (i64::from(x) + offset * dx).clamp(0, i64::from(width) - 1) as u32;
                let sy = (i64::from(y) + offset * dy).clamp(0, i64::from(height) - 1) as u32;
                for (a, v) in acc.iter_mut().zip(img.get_pixel(sx, sy).0) {
                    *a += weight * v;
                }
            }
            Rgba(acc.map(|a| a / total))
        })
    };
    pass(&pass(src, 1, 0), 0, 1)
}

fn decode_rgba(bytes: &[u8]) -> Result<Rgba32FImage, String> {
    image::load_from_memory(bytes).map(DynamicImage::into_rgba32f).map_err(|e| e.to_string())
}

/// Encodes as the honest renders are: 8-bit RGBA PNG, or float RGBA EXR.
fn encode(image: Rgba32FImage, format: Format) -> Result<Vec<u8>, String> {
    let (image, format) = match format {
        Format::Png => {
            (DynamicImage::ImageRgba8(DynamicImage::ImageRgba32F(image).to_rgba8()), ImageFormat::Png)
        }
        Format::Exr => (DynamicImage::ImageRgba32F(image), ImageFormat::OpenExr),
    };
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

// --- results ----------------------------------------------------------------

/// Record kind of a thread-count pair: batch of 1 thread vs batch of 2.
const HONEST: &str = "honest";
/// Record kind of a batch of 1 thread vs a single-frame process of 2.
const HONEST_ALONE: &str = "honest-alone";
/// Record kind of a batch vs another implementation ([`Role::Cross`]).
const CROSS: &str = "cross-implementation";

/// One comparison.
#[derive(Debug, Clone, Serialize)]
struct Record {
    engine: Engine,
    format: Format,
    seed: u32,
    frame: i32,
    /// [`HONEST`], [`HONEST_ALONE`], [`CROSS`], or the cheat.
    kind: &'static str,
    /// `None`: identical pixels (infinite PSNR), or an error.
    psnr_db: Option<f64>,
    max_abs_diff: f64,
    differing_pixels: u64,
    differing_fraction: f64,
    matches: bool,
    /// The comparison failed (the verifier would reject the pair).
    error: Option<String>,
}

impl Record {
    fn new(
        (engine, format, seed, frame): (Engine, Format, u32, i32),
        kind: &'static str,
        result: Result<Comparison, String>,
    ) -> Self {
        let (width, height) = engine.size();
        let (psnr_db, max_abs_diff, differing_fraction, matches, error) = match result {
            Ok(c) => (
                Some(c.psnr_db).filter(|p| p.is_finite()),
                c.max_abs_diff,
                c.differing_pixels_fraction,
                c.matches,
                None,
            ),
            Err(e) => (None, f64::NAN, f64::NAN, false, Some(e)),
        };
        let differing_pixels =
            if error.is_some() { 0 } else { (differing_fraction * f64::from(width * height)).round() as u64 };
        Self {
            engine,
            format,
            seed,
            frame,
            kind,
            psnr_db,
            max_abs_diff,
            differing_pixels,
            differing_fraction,
            matches,
            error,
        }
    }

    fn psnr(&self) -> f64 {
        match (self.psnr_db, &self.error) {
            (Some(p), _) => p,
            (None, None) => f64::INFINITY,
            (None, Some(_)) => f64::NEG_INFINITY,
        }
    }

    fn is_cheat(&self) -> bool {
        ![HONEST, HONEST_ALONE, CROSS].contains(&self.kind)
    }
}

#[derive(Debug, Serialize)]
struct EngineInfo {
    engine: Engine,
    width: u32,
    height: u32,
    fewer_samples: &'static str,
    launcher: Option<Launcher>,
    /// Why a display-less render failed, when `xvfb-run` was needed.
    probe_note: Option<String>,
    unavailable: Option<String>,
    /// What rendered the reference frames (CPU kernels or OpenGL renderer).
    implementation: Option<String>,
    /// What rendered the [`Role::Cross`] frames.
    cross_implementation: Option<String>,
}

#[derive(Debug, Serialize)]
struct HonestRow {
    engine: Engine,
    format: Format,
    unavailable: Option<String>,
    pairs: usize,
    /// Pairs with identical decoded pixels.
    identical: usize,
    false_rejects: usize,
    /// Lowest PSNR; `None` when every pair is identical (infinite).
    worst_psnr_db: Option<f64>,
    /// `worst_psnr_db - psnr_min_db`; `None` when infinite.
    psnr_margin_db: Option<f64>,
    worst_differing_fraction: f64,
    worst_differing_pixels: u64,
    /// `max_differing_fraction - worst_differing_fraction`.
    differing_margin: f64,
    max_abs_diff: f64,
}

#[derive(Debug, Serialize)]
struct DetectionRow {
    cheat: Cheat,
    engine: Engine,
    format: Format,
    unavailable: Option<String>,
    comparisons: usize,
    detected: usize,
    rate: f64,
    /// Highest PSNR of a cheat (the closest to passing); `None` when a
    /// cheat was identical to the honest render.
    max_psnr_db: Option<f64>,
    /// `psnr_min_db - max_psnr_db`: how far below the threshold the best
    /// cheat stays.
    psnr_margin_db: Option<f64>,
    min_differing_fraction: f64,
    /// `min_differing_fraction - max_differing_fraction`.
    differing_margin: f64,
    /// Cheats the PSNR test alone rejects.
    caught_by_psnr: usize,
    /// Cheats the differing-pixel test alone rejects.
    caught_by_fraction: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    blender: String,
    cores: usize,
    tolerance: Tolerance,
    elapsed_secs: f64,
    /// On one machine: no false reject and no undetected cheat.
    holds: bool,
    /// No false reject among the cross-implementation pairs.
    holds_across_implementations: bool,
    /// Every engine rendered and every render succeeded.
    complete: bool,
    engines: Vec<EngineInfo>,
    honest: Vec<HonestRow>,
    cross_implementation: Vec<HonestRow>,
    detection: Vec<DetectionRow>,
    closest_cheat_by_psnr: Option<Record>,
    closest_cheat_by_fraction: Option<Record>,
    render_failures: Vec<String>,
    /// Honest renders that `check_frame` rejects (should be none).
    check_rejects: Vec<String>,
    comparisons: Vec<Record>,
}

fn honest_row(engine: Engine, format: Format, records: &[&Record], tol: &Tolerance) -> HonestRow {
    let worst_psnr = records.iter().map(|r| r.psnr()).fold(f64::INFINITY, f64::min);
    let worst = records.iter().map(|r| r.differing_fraction).fold(0.0, f64::max);
    HonestRow {
        engine,
        format,
        unavailable: None,
        pairs: records.len(),
        identical: records.iter().filter(|r| r.error.is_none() && r.psnr_db.is_none()).count(),
        false_rejects: records.iter().filter(|r| !r.matches).count(),
        worst_psnr_db: Some(worst_psnr).filter(|p| p.is_finite()),
        psnr_margin_db: Some(worst_psnr - tol.psnr_min_db).filter(|p| p.is_finite()),
        worst_differing_fraction: worst,
        worst_differing_pixels: records.iter().map(|r| r.differing_pixels).max().unwrap_or(0),
        differing_margin: tol.max_differing_fraction - worst,
        max_abs_diff: records.iter().map(|r| r.max_abs_diff).fold(0.0, f64::max),
    }
}

fn detection_row(
    cheat: Cheat,
    engine: Engine,
    format: Format,
    records: &[&Record],
    tol: &Tolerance,
) -> DetectionRow {
    let max_psnr = records.iter().map(|r| r.psnr()).fold(f64::NEG_INFINITY, f64::max);
    let min_fraction = records
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.differing_fraction)
        .fold(f64::INFINITY, f64::min);
    let detected = records.iter().filter(|r| !r.matches).count();
    DetectionRow {
        cheat,
        engine,
        format,
        unavailable: None,
        comparisons: records.len(),
        detected,
        rate: detected as f64 / records.len().max(1) as f64,
        max_psnr_db: Some(max_psnr).filter(|p| p.is_finite()),
        psnr_margin_db: Some(tol.psnr_min_db - max_psnr).filter(|p| p.is_finite()),
        min_differing_fraction: min_fraction,
        differing_margin: min_fraction - tol.max_differing_fraction,
        caught_by_psnr: records.iter().filter(|r| r.error.is_some() || r.psnr() < tol.psnr_min_db).count(),
        caught_by_fraction: records
            .iter()
            .filter(|r| r.error.is_some() || r.differing_fraction > tol.max_differing_fraction)
            .count(),
    }
}

// --- text output ------------------------------------------------------------

fn db(value: Option<f64>) -> String {
    value.map_or_else(|| "inf".to_owned(), |v| format!("{v:.1}"))
}

fn sci(value: f64) -> String {
    if value == 0.0 { "0".to_owned() } else { format!("{value:.1e}") }
}

fn honest_table(w: &mut String, rows: &[HonestRow]) {
    let _ = writeln!(
        w,
        "{:<9} {:<6} {:>5} {:>9} {:>9} {:>10} {:>11} {:>14} {:>11} {:>10}",
        "engine",
        "format",
        "pairs",
        "identical",
        "false-rej",
        "worst PSNR",
        "PSNR margin",
        "worst diff px",
        "frac margin",
        "max |diff|"
    );
    for r in rows {
        let (engine, format) = (r.engine.label(), r.format.label());
        if let Some(reason) = &r.unavailable {
            let _ = writeln!(w, "{engine:<9} {format:<6} unavailable: {reason}");
            continue;
        }
        let _ = writeln!(
            w,
            "{engine:<9} {format:<6} {:>5} {:>9} {:>9} {:>10} {:>11} {:>14} {:>11} {:>10}",
            r.pairs,
            r.identical,
            r.false_rejects,
            db(r.worst_psnr_db),
            db(r.psnr_margin_db),
            format!("{} ({})", r.worst_differing_pixels, sci(r.worst_differing_fraction)),
            sci(r.differing_margin),
            sci(r.max_abs_diff)
        );
    }
}

fn detection_table(w: &mut String, rows: &[DetectionRow]) {
    let _ = writeln!(
        w,
        "{:<15} {:<9} {:<6} {:>4} {:>8} {:>7} {:>9} {:>11} {:>13} {:>11} {:>8} {:>8}",
        "cheat",
        "engine",
        "format",
        "n",
        "detected",
        "rate",
        "max PSNR",
        "PSNR margin",
        "min diff frac",
        "frac margin",
        "by PSNR",
        "by frac"
    );
    for r in rows {
        let (cheat, engine, format) = (r.cheat.label(), r.engine.label(), r.format.label());
        if let Some(reason) = &r.unavailable {
            let _ = writeln!(w, "{cheat:<15} {engine:<9} {format:<6} unavailable: {reason}");
            continue;
        }
        let _ = writeln!(
            w,
            "{cheat:<15} {engine:<9} {format:<6} {:>4} {:>8} {:>6.1}% {:>9} {:>11} {:>13} {:>11} {:>8} {:>8}",
            r.comparisons,
            r.detected,
            100.0 * r.rate,
            db(r.max_psnr_db),
            db(r.psnr_margin_db),
            sci(r.min_differing_fraction),
            sci(r.differing_margin),
            r.caught_by_psnr,
            r.caught_by_fraction
        );
    }
}

fn describe_record(label: &str, record: Option<&Record>) -> String {
    let Some(r) = record else { return format!("{label}: none") };
    format!(
        "{label}: {} {} {} seed {} frame {}: PSNR {} dB, {} differing px ({}), max |diff| {}, {}",
        r.kind,
        r.engine.label(),
        r.format.label(),
        r.seed,
        r.frame,
        db(r.psnr_db),
        r.differing_pixels,
        sci(r.differing_fraction),
        sci(r.max_abs_diff),
        if r.matches { "PASSES" } else { "rejected" }
    )
}

fn render_text(report: &Report) -> String {
    let tol = &report.tolerance;
    let mut w = String::new();
    let _ = writeln!(
        w,
        "calibration of compare_frames with Tolerance::default(): pixel_tolerance {:.5} (2/255), \
         psnr_min_db {}, max_differing_fraction {}",
        tol.pixel_tolerance, tol.psnr_min_db, tol.max_differing_fraction
    );
    let _ = writeln!(w, "{}, {} cores, {:.0} s in all", report.blender, report.cores, report.elapsed_secs);
    for e in &report.engines {
        let how = match (&e.unavailable, e.launcher) {
            (Some(reason), _) => format!("UNAVAILABLE: {reason}"),
            (None, Some(Launcher::XvfbRun)) => {
                format!("under xvfb-run -a ({})", e.probe_note.as_deref().unwrap_or(""))
            }
            (None, _) => "blender -b, no display".to_owned(),
        };
        let setting = e.engine.bench_setting().map(|(_, what)| format!(" ({what})")).unwrap_or_default();
        let _ = writeln!(
            w,
            "  {:<9} {}x{}{setting}, {how}; fewer-samples: {}",
            e.engine.label(),
            e.width,
            e.height,
            e.fewer_samples
        );
    }

    let _ = writeln!(
        w,
        "\nhonest pairs on one machine: separate processes, 1 vs 2 threads; {FRAMES} frames x {} \
         layouts + 1 single-frame process per layout",
        SEEDS.len()
    );
    honest_table(&mut w, &report.honest);

    let _ = writeln!(
        w,
        "\nhonest pairs across implementations, standing in for two machines (reference batch vs \
         the other implementation; Cycles: all frames; Workbench: every third frame; Eevee: one frame \
         per layout; Workbench and Eevee each frame in its own process):"
    );
    for e in report.engines.iter().filter(|e| e.unavailable.is_none()) {
        if let (Some(reference), Some(other)) = (&e.implementation, &e.cross_implementation) {
            let _ = writeln!(w, "  {:<9} {reference} vs {other}", e.engine.label());
        }
    }
    honest_table(&mut w, &report.cross_implementation);

    let _ = writeln!(
        w,
        "\ncheats against an honest render (PSNR margin = psnr_min - best cheat PSNR; frac margin = \
         fewest differing - max fraction; by PSNR / by frac: caught by that test alone)"
    );
    detection_table(&mut w, &report.detection);

    let _ =
        writeln!(w, "\n{}", describe_record("closest cheat by PSNR", report.closest_cheat_by_psnr.as_ref()));
    let _ = writeln!(
        w,
        "{}",
        describe_record("closest cheat by differing pixels", report.closest_cheat_by_fraction.as_ref())
    );
    for failure in &report.render_failures {
        let _ = writeln!(w, "render failure: {failure}");
    }
    for reject in &report.check_rejects {
        let _ = writeln!(w, "check_frame rejects an honest render: {reject}");
    }

    let honest: usize = report.honest.iter().map(|r| r.pairs).sum();
    let false_rejects: usize = report.honest.iter().map(|r| r.false_rejects).sum();
    let cheats: usize = report.detection.iter().map(|r| r.comparisons).sum();
    let missed: usize = report.detection.iter().map(|r| r.comparisons - r.detected).sum();
    let unavailable: Vec<&str> =
        report.engines.iter().filter(|e| e.unavailable.is_some()).map(|e| e.engine.label()).collect();
    let verdict = match (report.holds, report.complete) {
        (false, _) => "does NOT hold".to_owned(),
        (true, true) => "holds".to_owned(),
        (true, false) => format!(
            "holds for what was measured, but the measurement is incomplete (unavailable: [{}], \
             render failures: {})",
            unavailable.join(", "),
            report.render_failures.len()
        ),
    };
    let _ = writeln!(
        w,
        "\none machine: {honest} honest pairs, {false_rejects} false rejects; {cheats} cheats, {missed} \
         undetected: Tolerance::default() {verdict}"
    );
    let cross: usize = report.cross_implementation.iter().map(|r| r.pairs).sum();
    let cross_rejects: Vec<String> = report
        .cross_implementation
        .iter()
        .filter(|r| r.false_rejects > 0)
        .map(|r| format!("{} {} {}/{}", r.engine.label(), r.format.label(), r.false_rejects, r.pairs))
        .collect();
    let _ = writeln!(
        w,
        "across implementations: {cross} honest pairs, {} false rejects{}: Tolerance::default() {}",
        report.cross_implementation.iter().map(|r| r.false_rejects).sum::<usize>(),
        if cross_rejects.is_empty() { String::new() } else { format!(" ({})", cross_rejects.join(", ")) },
        if report.holds_across_implementations { "holds" } else { "does NOT hold" }
    );
    w
}

// --- the run ----------------------------------------------------------------

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the verifier crate is inside the workspace")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Generates the scenes and finds out how each engine renders here.
#[allow(clippy::disallowed_macros)] // progress for the operator
fn prepare(bench: &Bench) -> Vec<EngineInfo> {
    let scenes: Vec<(Engine, u32)> =
        Engine::ALL.iter().flat_map(|&e| SEEDS.iter().map(move |&s| (e, s))).collect();
    let generated = parallel(&scenes, |&(engine, seed)| bench.generate_scene(engine, seed));
    let probes = parallel(&Engine::ALL, |&engine| {
        let failed = scenes.iter().zip(&generated).find_map(|(&(e, seed), result)| match result {
            Err(reason) if e == engine => Some(format!("scene seed {seed} not generated: {reason}")),
            _ => None,
        });
        match failed {
            Some(reason) => Err(reason),
            None => bench.probe(engine),
        }
    });
    Engine::ALL
        .iter()
        .zip(probes)
        .map(|(&engine, probe)| {
            let (width, height) = engine.size();
            let (launcher, probe_note, unavailable) = match probe {
                Ok((launcher, note)) => (Some(launcher), note, None),
                Err(reason) => (None, None, Some(reason)),
            };
            eprintln!("calibrate: {}: {}", engine.label(), unavailable.as_deref().unwrap_or("renders"));
            EngineInfo {
                engine,
                width,
                height,
                fewer_samples: engine.fewer_samples().1,
                launcher,
                probe_note,
                unavailable,
                implementation: None,
                cross_implementation: None,
            }
        })
        .collect()
}

/// Every render, by process and frame number.
#[derive(Debug, Default)]
struct Renders {
    frames: HashMap<Key, BTreeMap<i32, Vec<u8>>>,
    implementations: HashMap<Key, String>,
    failures: Vec<String>,
}

impl Renders {
    fn get(&self, engine: Engine, format: Format, seed: u32, role: Role, frame: i32) -> Option<&[u8]> {
        self.frames.get(&(engine, format, seed, role)).and_then(|f| f.get(&frame)).map(Vec::as_slice)
    }

    /// What rendered a role's frames, when every process of it said so and
    /// they agree.
    fn implementation(&self, engine: Engine, role: Role) -> Option<String> {
        let mut seen = self
            .implementations
            .iter()
            .filter(|((e, _, _, r), _)| *e == engine && *r == role)
            .map(|(_, i)| i.as_str());
        let first = seen.next()?;
        seen.all(|i| i == first).then(|| first.to_owned())
    }
}

#[allow(clippy::disallowed_macros)] // progress for the operator
fn render_all(bench: &Bench, engines: &[EngineInfo]) -> Renders {
    let mut jobs: Vec<(Job, Launcher)> = Vec::new();
    for info in engines {
        let Some(launcher) = info.launcher else { continue };
        for format in Format::ALL {
            for seed in SEEDS {
                for role in [Role::First, Role::Second, Role::Alone, Role::FewerSamples] {
                    jobs.push((Job::new(info.engine, format, seed, role), launcher));
                }
                jobs.extend(cross_jobs(info.engine, format, seed).into_iter().map(|j| (j, launcher)));
            }
        }
    }
    jobs.sort_by(|a, b| b.0.cost().total_cmp(&a.0.cost()));
    let done = AtomicUsize::new(0);
    let results = parallel(&jobs, |(job, launcher)| {
        let started = Instant::now();
        let result = bench.render(job, *launcher);
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!(
            "calibrate: [{n}/{}] {} in {:.1} s{}",
            jobs.len(),
            job.describe(),
            started.elapsed().as_secs_f64(),
            result.as_ref().err().map(|e| format!(": FAILED: {e}")).unwrap_or_default()
        );
        result
    });
    let mut renders = Renders::default();
    for ((job, _), result) in jobs.iter().zip(results) {
        match result {
            Ok(rendered) => {
                if let Some(implementation) = rendered.implementation {
                    renders.implementations.insert(job.key(), implementation);
                }
                // Several single-frame processes may share a key.
                renders.frames.entry(job.key()).or_default().extend(rendered.frames);
            }
            Err(e) => renders.failures.push(format!("{}: {e}", job.describe())),
        }
    }
    renders
}

/// The cheat of a kind for one frame, `None` when a render it needs failed.
fn make_cheat(
    renders: &Renders,
    cheat: Cheat,
    (engine, format, seed, f): (Engine, Format, u32, i32),
) -> Option<Result<Vec<u8>, String>> {
    let second = renders.get(engine, format, seed, Role::Second, f);
    let (width, height) = engine.size();
    match cheat {
        Cheat::Noise => {
            let salt = (u64::from(seed) << 32) | ((f as u64) << 8) | engine as u64;
            Some(encode(noise_image(width, height, salt), format))
        }
        Cheat::SmoothGradient => {
            second.map(|b| decode_rgba(b).and_then(|img| encode(row_means(&img), format)))
        }
        Cheat::SmoothBlur => {
            second.map(|b| decode_rgba(b).and_then(|img| encode(blur(&img, BLUR_SIGMA), format)))
        }
        Cheat::FewerSamples => {
            renders.get(engine, format, seed, Role::FewerSamples, f).map(|b| Ok(b.to_vec()))
        }
        Cheat::Neighbour => {
            let n = if f < FRAMES { f + 1 } else { f - 1 };
            renders.get(engine, format, seed, Role::Second, n).map(|b| Ok(b.to_vec()))
        }
        Cheat::OtherScene => {
            let other = SEEDS[(seed as usize + 1) % SEEDS.len()];
            renders.get(engine, format, other, Role::Second, f).map(|b| Ok(b.to_vec()))
        }
    }
}

/// Every comparison, plus `check_frame` rejections of honest renders and
/// cheats that could not be made.
fn compare_all(
    renders: &Renders,
    engines: &[EngineInfo],
    tol: &Tolerance,
) -> (Vec<Record>, Vec<String>, Vec<String>) {
    let compare = |a: &[u8], b: &[u8]| compare_frames(a, b, tol).map_err(|e| e.to_string());
    let (mut records, mut check_rejects, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for info in engines.iter().filter(|e| e.unavailable.is_none()) {
        let engine = info.engine;
        let (width, height) = engine.size();
        let expect = FrameExpectation { width, height, max_bytes: 64 << 20 };
        // Another machine only if another implementation actually rendered.
        let cross_differs =
            info.cross_implementation.is_some() && info.cross_implementation != info.implementation;
        for format in Format::ALL {
            for seed in SEEDS {
                for f in 1..=FRAMES {
                    let at = (engine, format, seed, f);
                    let name = format!("{} {} seed {seed} frame {f}", engine.label(), format.label());
                    let Some(reference) = renders.get(engine, format, seed, Role::First, f) else { continue };
                    for role in [Role::First, Role::Second] {
                        let verdict =
                            renders.get(engine, format, seed, role, f).map(|b| check_frame(b, &expect));
                        if let Some(Err(rejection)) = verdict {
                            check_rejects.push(format!("{name} ({}): {rejection}", role.label()));
                        }
                    }
                    for (role, kind) in
                        [(Role::Second, HONEST), (Role::Alone, HONEST_ALONE), (Role::Cross, CROSS)]
                    {
                        if role == Role::Cross && !cross_differs {
                            continue;
                        }
                        if let Some(other) = renders.get(engine, format, seed, role, f) {
                            records.push(Record::new(at, kind, compare(reference, other)));
                        }
                    }
                    for cheat in Cheat::ALL {
                        match make_cheat(renders, cheat, at) {
                            Some(Ok(bytes)) => {
                                records.push(Record::new(at, cheat.label(), compare(reference, &bytes)));
                            }
                            Some(Err(e)) => {
                                failures
                                    .push(format!("{name}: cannot make the {} cheat: {e}", cheat.label()));
                            }
                            // The render it needs failed: already a failure.
                            None => {}
                        }
                    }
                }
            }
        }
    }
    (records, check_rejects, failures)
}

#[allow(clippy::disallowed_macros)] // a bench binary reporting to its operator
fn main() {
    let started = Instant::now();
    let tol = Tolerance::default();
    let Some(blender) = locate_blender() else {
        eprintln!("calibrate: Blender not found ($LUMEN_BLENDER, or blender on PATH)");
        std::process::exit(1);
    };
    let bench = Bench {
        blender,
        script: workspace_root().join("scripts/make-sample-scene.py"),
        work: tempfile::Builder::new().prefix("lumen-calibrate-").tempdir().expect("a temp folder"),
    };
    let version = blender_version(&bench.blender);
    eprintln!("calibrate: {version} at {}", bench.blender.display());

    let mut engines = prepare(&bench);
    let mut renders = render_all(&bench, &engines);
    for info in &mut engines {
        info.implementation = renders.implementation(info.engine, Role::First);
        info.cross_implementation = renders.implementation(info.engine, Role::Cross);
    }
    let (records, check_rejects, cheat_failures) = compare_all(&renders, &engines, &tol);
    renders.failures.extend(cheat_failures);

    let mut honest = Vec::new();
    let mut cross_implementation = Vec::new();
    let mut detection = Vec::new();
    for info in &engines {
        let engine = info.engine;
        for format in Format::ALL {
            let of = |kinds: &[&str]| -> Vec<&Record> {
                records
                    .iter()
                    .filter(|r| r.engine == engine && r.format == format && kinds.contains(&r.kind))
                    .collect()
            };
            let unavailable = info.unavailable.clone();
            honest.push(HonestRow {
                unavailable: unavailable.clone(),
                ..honest_row(engine, format, &of(&[HONEST, HONEST_ALONE]), &tol)
            });
            let cross = of(&[CROSS]);
            let cross_unavailable = unavailable.clone().or_else(|| {
                if !cross.is_empty() {
                    None
                } else if info.cross_implementation.is_some()
                    && info.cross_implementation == info.implementation
                {
                    Some(format!(
                        "the other implementation was not used: both rendered with {}",
                        info.implementation.as_deref().unwrap_or("?")
                    ))
                } else {
                    Some("no cross-implementation render (see the render failures)".to_owned())
                }
            });
            cross_implementation.push(HonestRow {
                unavailable: cross_unavailable,
                ..honest_row(engine, format, &cross, &tol)
            });
            for cheat in Cheat::ALL {
                detection.push(DetectionRow {
                    unavailable: unavailable.clone(),
                    ..detection_row(cheat, engine, format, &of(&[cheat.label()]), &tol)
                });
            }
        }
    }
    detection.sort_by_key(|r| Cheat::ALL.iter().position(|&c| c == r.cheat));
    let cheats = || records.iter().filter(|r| r.is_cheat());
    let closest_cheat_by_psnr = cheats().max_by(|a, b| a.psnr().total_cmp(&b.psnr())).cloned();
    let closest_cheat_by_fraction = cheats()
        .filter(|r| r.error.is_none())
        .min_by(|a, b| a.differing_fraction.total_cmp(&b.differing_fraction))
        .cloned();
    let holds =
        honest.iter().all(|r| r.false_rejects == 0) && detection.iter().all(|r| r.detected == r.comparisons);
    let holds_across_implementations = cross_implementation.iter().all(|r| r.false_rejects == 0);
    let complete = engines.iter().all(|e| e.unavailable.is_none()) && renders.failures.is_empty();

    let report = Report {
        blender: version,
        cores: thread::available_parallelism().map_or(0, usize::from),
        tolerance: tol,
        elapsed_secs: started.elapsed().as_secs_f64(),
        holds,
        holds_across_implementations,
        complete,
        engines,
        honest,
        cross_implementation,
        detection,
        closest_cheat_by_psnr,
        closest_cheat_by_fraction,
        render_failures: renders.failures,
        check_rejects,
        comparisons: records,
    };
    print!("{}", render_text(&report));
    let dir = target_dir();
    let path = dir.join("calibrate.json");
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    match fs::create_dir_all(&dir).and_then(|()| fs::write(&path, json)) {
        Ok(()) => println!("results written to {}", path.display()),
        Err(e) => {
            eprintln!("calibrate: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
