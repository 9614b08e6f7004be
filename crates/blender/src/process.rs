//! Running Blender as a sandboxed subprocess.

use std::{
    ffi::OsStr,
    ffi::OsString,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{io::AsyncReadExt, process::Command};
use tracing::{debug, warn};

use crate::sandbox::{self, RunDir, Sandbox};

/// A finished run.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) exit: Exit,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) wall: Duration,
    /// Resource use seen while it ran.
    pub(crate) usage: Usage,
}

/// How Blender ended. Under bubblewrap the exit status is bwrap's, which
/// reports a command killed by signal `n` as exit code `128 + n`; that is
/// mapped back (Blender itself exits 0, 1, or a `--python-exit-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    fn of(status: std::process::ExitStatus, sandboxed: bool) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) if sandboxed && (129..=128 + 64).contains(&code) => Self::Signal(code - 128),
            (Some(code), _) => Self::Code(code),
            (None, Some(signal)) => Self::Signal(signal),
            (None, None) => Self::Code(-1),
        }
    }

    pub(crate) fn success(self) -> bool {
        self == Self::Code(0)
    }

    pub(crate) fn signal(self) -> Option<i32> {
        match self {
            Self::Signal(s) => Some(s),
            Self::Code(_) => None,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit status: {code}"),
            Self::Signal(signal) => match Signal::try_from(*signal) {
                Ok(sig) => write!(f, "killed by {sig}"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

/// Why a run did not finish.
#[derive(Debug)]
pub(crate) enum RunError {
    /// Killed after the timeout.
    Timeout(Duration),
    /// The sandbox could not be built (bubblewrap's message).
    Sandbox(String),
    /// Could not start.
    Io(std::io::Error),
}

impl From<RunError> for crate::BlenderError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Timeout(d) => Self::Timeout(d),
            RunError::Sandbox(detail) => Self::Sandbox(crate::SandboxError::Unusable { detail }),
            RunError::Io(e) => Self::Io(e),
        }
    }
}

impl From<RunError> for crate::RenderError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Timeout(d) => Self::Timeout(d),
            RunError::Sandbox(detail) => Self::Sandbox { detail },
            RunError::Io(e) => Self::Io(e),
        }
    }
}

/// Memory (address space) and CPU-time limits, applied with util-linux
/// `prlimit` so no unsafe `pre_exec` code is needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) memory_bytes: u64,
    pub(crate) cpu_seconds: u64,
}

/// Seconds between the soft CPU limit (SIGXCPU, which tells us why) and
/// the hard one (SIGKILL, in case the process survives SIGXCPU).
pub(crate) const CPU_GRACE_SECS: u64 = 5;

const PRLIMIT: &str = "/usr/bin/prlimit";

/// How often `/proc/<pid>` is sampled for memory and CPU use.
const POLL: Duration = Duration::from_millis(100);

/// How long the sandbox may take to go once its first process is killed.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// Keeps at most this much of each output stream (the tail), so a scene
/// that makes Blender print without end cannot exhaust our memory.
const OUTPUT_CAP: usize = 4 << 20;

/// Kills a run when dropped, so a cancelled render (its future dropped)
/// leaves nothing behind: the processes the child started (under
/// bubblewrap, the sandbox's first process, whose death takes its whole
/// PID namespace), then the child's process group.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    /// Kills what the child started; the child itself then ends (bwrap
    /// when its sandbox is gone) and can be reaped.
    fn kill_descendants(&self) {
        if let Some(pid) = self.0 {
            for child in descendants(pid) {
                // ESRCH (already gone) is the usual, harmless answer.
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            }
        }
    }

    fn kill(&mut self) {
        self.kill_descendants();
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole environment Blender runs with (after clearing the caller's):
/// `PATH`, a private `HOME` and `TMPDIR` under `home`, and Blender's user
/// folders inside it, so no user preference, add-on or startup file of the
/// machine changes a render.
pub fn isolated_env(home: &Path) -> Vec<(OsString, OsString)> {
    blender_env(home, std::env::var_os("PATH").unwrap_or_default())
}

fn blender_env(home: &Path, path: OsString) -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), path),
        ("HOME".into(), home.into()),
        ("TMPDIR".into(), home.into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("BLENDER_USER_CONFIG".into(), home.join("config").into()),
        ("BLENDER_USER_SCRIPTS".into(), home.join("scripts").into()),
        ("BLENDER_USER_DATAFILES".into(), home.join("datafiles").into()),
    ]
}

/// Runs `exe args` in `dir`'s sandbox ([`crate::sandbox`]), with the
/// environment of [`isolated_env`] (its home the run's scratch folder, its
/// `PATH` the system's when sandboxed), under `limits`, in a new process
/// group. On timeout, or when the returned future is dropped, everything
/// the run started is killed and reaped.
pub(crate) async fn run(
    exe: &Path,
    args: &[&OsStr],
    limits: Option<Limits>,
    timeout: Duration,
    dir: &RunDir,
) -> Result<Finished, RunError> {
    // [prlimit --as --cpu --] [bwrap <sandbox> --] blender <args>: prlimit
    // sets the limits on itself and execs bwrap, which passes them on.
    let mut line: Vec<OsString> = Vec::new();
    match limits {
        Some(limits) if Path::new(PRLIMIT).is_file() => line.extend([
            PRLIMIT.into(),
            format!("--as={}", limits.memory_bytes).into(),
            format!("--cpu={}:{}", limits.cpu_seconds, limits.cpu_seconds + CPU_GRACE_SECS).into(),
            "--".into(),
        ]),
        Some(_) => {
            warn!(target: "blender::sandbox", "{PRLIMIT} is missing: running Blender without memory and CPU limits");
        }
        None => {}
    }
    let sandboxed = match dir.sandbox() {
        Sandbox::Bubblewrap { bwrap } => {
            line.push(bwrap.into());
            line.extend(sandbox::bwrap_args(exe, dir));
            true
        }
        Sandbox::Off => {
            line.push(exe.into());
            false
        }
    };
    let path = if sandboxed {
        OsString::from(sandbox::SANDBOX_PATH)
    } else {
        std::env::var_os("PATH").unwrap_or_default()
    };
    let mut command = Command::new(&line[0]);
    command.args(&line[1..]).current_dir(dir.host_scratch());
    command
        .args(args)
        .env_clear()
        .envs(blender_env(&dir.scratch(), path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().map_err(RunError::Io)?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
    // The child leads its own group (process_group(0)): its pgid is its pid.
    let mut guard = GroupGuard(pid);
    debug!(target: "blender::sandbox", ?pid, exe = %exe.display(), sandboxed, "blender started");

    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(POLL);
    let mut usage = Usage::default();
    let status = loop {
        tokio::select! {
            status = child.wait() => break Some(status.map_err(RunError::Io)?),
            () = &mut deadline => break None,
            _ = ticker.tick() => if let Some(pid) = pid { usage.sample(pid) },
        }
    };
    let Some(status) = status else {
        if sandboxed {
            // Kill the sandbox first, so bwrap ends by itself and reaps it
            // (no zombie left to the system); then the whole group.
            guard.kill_descendants();
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
        }
        guard.kill();
        // Reap the child so no zombie is left behind.
        let _ = child.wait().await;
        warn!(target: "blender::sandbox", ?pid, ?timeout, "blender timed out: killed with everything it started");
        return Err(RunError::Timeout(timeout));
    };
    // After a normal exit, kill stragglers that would otherwise hold our
    // pipes open (under bubblewrap, the sandbox is already gone).
    guard.kill();
    let stdout = join_output(stdout).await;
    let stderr = join_output(stderr).await;
    let exit = Exit::of(status, sandboxed);
    if sandboxed && let Some(detail) = sandbox_failure(exit, &stdout, &stderr) {
        warn!(target: "blender::sandbox", %detail, "bubblewrap could not build the sandbox");
        return Err(RunError::Sandbox(detail));
    }
    Ok(Finished { exit, stdout, stderr, wall: started.elapsed(), usage })
}

/// bubblewrap's own complaint, when it failed before starting Blender
/// (exit code 1, nothing on stdout, a `bwrap: …` line on stderr).
fn sandbox_failure(exit: Exit, stdout: &str, stderr: &str) -> Option<String> {
    if exit != Exit::Code(1) || !stdout.trim().is_empty() {
        return None;
    }
    stderr.lines().map(str::trim).find(|l| l.starts_with("bwrap: ")).map(str::to_owned)
}

/// The processes `pid` started, and theirs, from
/// `/proc/<pid>/task/<tid>/children` (parents before children).
fn descendants(pid: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else { continue };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()).map(Pid::from_raw) {
                if !found.contains(&child) && found.len() < 4096 {
                    found.push(child);
                    queue.push(child);
                }
            }
        }
    }
    found
}

async fn join_output(task: Option<tokio::task::JoinHandle<String>>) -> String {
    match task {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    }
}

/// Reads a stream to its end, keeping the last [`OUTPUT_CAP`] bytes.
async fn read_capped(mut stream: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > OUTPUT_CAP {
                    let excess = kept.len() - OUTPUT_CAP;
                    kept.drain(..excess);
                }
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Resource use read from `/proc/<pid>` every [`POLL`] while the process
/// runs: approximate, as whatever happens after the last sample is missed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Usage {
    /// Peak resident set size (`VmHWM`), bytes.
    pub(crate) peak_rss: Option<u64>,
    /// Peak address-space size (`VmPeak`, what `RLIMIT_AS` limits), bytes.
    pub(crate) peak_vm: Option<u64>,
    /// CPU time (user + system).
    pub(crate) cpu_time: Option<Duration>,
}

impl Usage {
    /// Samples `pid` and everything it started (under bubblewrap, Blender
    /// is a grandchild): the largest memory figures of any one process,
    /// the CPU time of all of them.
    fn sample(&mut self, pid: Pid) {
        let max = |old: Option<u64>, new: Option<u64>| match (old, new) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut cpu = None;
        for pid in std::iter::once(pid).chain(descendants(pid)) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                self.peak_rss = max(self.peak_rss, parse_kib(&status, "VmHWM:"));
                self.peak_vm = max(self.peak_vm, parse_kib(&status, "VmPeak:"));
            }
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some(time) = parse_cpu_time(&stat)
            {
                cpu = Some(cpu.unwrap_or(Duration::ZERO) + time);
            }
        }
        // A process that ended takes its CPU time with it: keep the most seen.
        if cpu > self.cpu_time {
            self.cpu_time = cpu;
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn parse_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User + system time from `/proc/<pid>/stat`. Linux reports it in
/// `USER_HZ` ticks, which is 100 on every architecture's user ABI.
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // The command name (field 2) may contain spaces: count from its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14, 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let status = "Name:\tblender\nVmPeak:\t  924864 kB\nVmHWM:\t  245296 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(245_296 * 1024));
        assert_eq!(parse_kib(status, "VmPeak:"), Some(924_864 * 1024));
        assert_eq!(parse_kib("Name: x", "VmHWM:"), None);
        let stat = "4242 (blen der) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_secs(3)));
    }

    /// Live processes whose command line mentions `marker`.
    fn survivor_pids(marker: &str) -> Vec<Pid> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let entry = e.ok()?;
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                String::from_utf8_lossy(&cmdline).contains(marker).then(|| Pid::from_raw(pid))
            })
            .collect()
    }

    fn survivors(marker: &str) -> usize {
        survivor_pids(marker).len()
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        // A sleep length no other process on the machine uses.
        let marker = format!("29.{}", std::process::id());
        let script = format!("sleep {marker} & sleep {marker}");
        let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
        let dir = RunDir::new(&Sandbox::Off, &std::env::temp_dir(), "lumen-test-").unwrap();
        let err = run(Path::new("/bin/sh"), &args, None, Duration::from_millis(200), &dir).await.unwrap_err();
        assert!(matches!(err, RunError::Timeout(_)), "{err:?}");
        // The background `sleep 30` is in the group too: it must be gone.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(survivors(&marker), 0);
    }

    /// Runs a shell whose `sleep {marker}` leaves both its process group
    /// (`setsid`) and the process tree (its parent exits), until `timeout`.
    async fn run_escaping_sleeper(sandbox: &Sandbox, marker: &str) -> RunError {
        let script = format!("(setsid sleep {marker} &); sleep {marker}");
        let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
        let dir = RunDir::new(sandbox, &std::env::temp_dir(), "lumen-test-").unwrap();
        run(Path::new("/bin/sh"), &args, None, Duration::from_millis(500), &dir).await.unwrap_err()
    }

    #[tokio::test]
    async fn a_timeout_kills_everything_in_the_sandbox_even_what_left_the_group() {
        // Control: without the sandbox, the orphan in its own session survives.
        let marker = format!("28.{}", std::process::id());
        assert!(matches!(run_escaping_sleeper(&Sandbox::Off, &marker).await, RunError::Timeout(_)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(survivors(&marker), 1, "the orphan escaped the unsandboxed run");
        for pid in survivor_pids(&marker) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }

        // In the sandbox, the PID namespace takes it.
        let marker = format!("26.{}", std::process::id());
        let started = Instant::now();
        let err = run_escaping_sleeper(&Sandbox::bubblewrap().unwrap(), &marker).await;
        assert!(matches!(err, RunError::Timeout(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "bwrap ended soon after its sandbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(survivors(&marker), 0);
    }

    #[tokio::test]
    async fn a_dropped_run_kills_the_sandbox() {
        let sandbox = Sandbox::bubblewrap().unwrap();
        let marker = format!("27.{}", std::process::id());
        let script = format!("setsid sleep {marker} & sleep {marker}");
        let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
        let dir = RunDir::new(&sandbox, &std::env::temp_dir(), "lumen-test-").unwrap();
        let running = run(Path::new("/bin/sh"), &args, None, Duration::from_secs(60), &dir);
        assert!(tokio::time::timeout(Duration::from_millis(500), running).await.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(survivors(&marker), 0);
    }

    #[tokio::test]
    async fn signals_and_sandbox_failures_are_told_apart_under_bwrap() {
        let sandbox = Sandbox::bubblewrap().unwrap();
        let dir = RunDir::new(&sandbox, &std::env::temp_dir(), "lumen-test-").unwrap();
        let sh = |script: &'static str| {
            let dir = &dir;
            async move {
                let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
                run(Path::new("/bin/sh"), &args, None, Duration::from_secs(10), dir).await
            }
        };
        assert_eq!(sh("kill -SEGV $$").await.unwrap().exit, Exit::Signal(11));
        assert_eq!(sh("exit 3").await.unwrap().exit, Exit::Code(3));
        assert!(sh("echo hi").await.unwrap().exit.success());
        // A missing program: bwrap itself fails, before anything runs.
        let args: [&OsStr; 0] = [];
        let err =
            run(Path::new("/no/such/blender"), &args, None, Duration::from_secs(10), &dir).await.unwrap_err();
        assert!(matches!(&err, RunError::Sandbox(detail) if detail.starts_with("bwrap: ")), "{err:?}");
    }
}
