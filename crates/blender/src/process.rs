//! Running Blender as a sandboxed subprocess.

use std::{
    ffi::OsStr,
    ffi::OsString,
    path::Path,
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{io::AsyncReadExt, process::Command};
use tracing::{debug, warn};

/// A finished run.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) wall: Duration,
    /// Resource use seen while it ran.
    pub(crate) usage: Usage,
}

/// Why a run did not finish.
#[derive(Debug)]
pub(crate) enum RunError {
    /// Killed after the timeout.
    Timeout(Duration),
    /// Could not start.
    Io(std::io::Error),
}

impl From<RunError> for crate::BlenderError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Timeout(d) => Self::Timeout(d),
            RunError::Io(e) => Self::Io(e),
        }
    }
}

impl From<RunError> for crate::RenderError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Timeout(d) => Self::Timeout(d),
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

/// Keeps at most this much of each output stream (the tail), so a scene
/// that makes Blender print without end cannot exhaust our memory.
const OUTPUT_CAP: usize = 4 << 20;

/// Kills a process group when dropped, so a cancelled render (its future
/// dropped) leaves nothing behind.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (the group is already gone) is the usual, harmless answer.
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `exe args` with a private `HOME`, Blender's user folders pointed
/// into it, no inherited environment but `PATH`, in a new process group
/// that is killed whole on timeout (or when the returned future is
/// dropped) and reaped.
/// The whole environment Blender runs with (after clearing the caller's):
/// `PATH`, a private `HOME` and `TMPDIR` under `home`, and Blender's user
/// folders inside it, so no user preference, add-on or startup file of the
/// machine changes a render.
pub fn isolated_env(home: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("HOME".into(), home.into()),
        ("TMPDIR".into(), home.into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("BLENDER_USER_CONFIG".into(), home.join("config").into()),
        ("BLENDER_USER_SCRIPTS".into(), home.join("scripts").into()),
        ("BLENDER_USER_DATAFILES".into(), home.join("datafiles").into()),
    ]
}

pub(crate) async fn run(
    exe: &Path,
    args: &[&OsStr],
    limits: Option<Limits>,
    timeout: Duration,
) -> Result<Finished, RunError> {
    let home = tempfile::Builder::new().prefix("lumen-blender-home-").tempdir().map_err(RunError::Io)?;
    let mut command = match limits {
        Some(limits) if Path::new(PRLIMIT).is_file() => {
            let mut c = Command::new(PRLIMIT);
            // prlimit sets the limits on itself and execs the command, so
            // the child's pid is Blender's.
            c.arg(format!("--as={}", limits.memory_bytes))
                .arg(format!("--cpu={}:{}", limits.cpu_seconds, limits.cpu_seconds + CPU_GRACE_SECS))
                .arg("--")
                .arg(exe);
            c
        }
        Some(_) => {
            warn!(target: "blender::sandbox", "{PRLIMIT} is missing: running Blender without memory and CPU limits");
            Command::new(exe)
        }
        None => Command::new(exe),
    };
    command
        .args(args)
        .env_clear()
        .envs(isolated_env(home.path()))
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
    debug!(target: "blender::sandbox", ?pid, exe = %exe.display(), "blender started");

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
    // Kill the whole group in both cases: after a timeout it takes Blender
    // and anything it started; after a normal exit it takes stragglers
    // that would otherwise hold our pipes open.
    guard.kill();
    let Some(status) = status else {
        // Reap Blender so no zombie is left behind.
        let _ = child.wait().await;
        warn!(target: "blender::sandbox", ?pid, ?timeout, "blender timed out: process group killed");
        return Err(RunError::Timeout(timeout));
    };
    let stdout = join_output(stdout).await;
    let stderr = join_output(stderr).await;
    Ok(Finished { status, stdout, stderr, wall: started.elapsed(), usage })
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
    fn sample(&mut self, pid: Pid) {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let max = |old: Option<u64>, new: Option<u64>| match (old, new) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            self.peak_rss = max(self.peak_rss, parse_kib(&status, "VmHWM:"));
            self.peak_vm = max(self.peak_vm, parse_kib(&status, "VmPeak:"));
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(cpu) = parse_cpu_time(&stat)
        {
            self.cpu_time = Some(cpu);
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

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        // A sleep length no other process on the machine uses.
        let marker = format!("29.{}", std::process::id());
        let script = format!("sleep {marker} & sleep {marker}");
        let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
        let err = run(Path::new("/bin/sh"), &args, None, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, RunError::Timeout(_)), "{err:?}");
        // The background `sleep 30` is in the group too: it must be gone.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let survivors = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&marker))
            .count();
        assert_eq!(survivors, 0);
    }
}
