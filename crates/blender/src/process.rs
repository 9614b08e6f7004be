//! Running Blender as a sandboxed subprocess.

use std::{
    ffi::OsStr,
    path::Path,
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::Command;
use tracing::{debug, warn};

/// A finished run.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) wall: Duration,
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

const PRLIMIT: &str = "/usr/bin/prlimit";

/// Runs `exe args` with a private `HOME`, Blender's user folders pointed
/// into it, no inherited environment but `PATH`, in a new process group
/// that is killed whole on timeout.
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
            c.arg(format!("--as={}", limits.memory_bytes))
                .arg(format!("--cpu={}", limits.cpu_seconds))
                .arg("--")
                .arg(exe);
            c
        }
        Some(_) => {
            warn!(target: "blender::sandbox", "{PRLIMIT} is missing: rendering without memory and CPU limits");
            Command::new(exe)
        }
        None => Command::new(exe),
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .env("LANG", "C.UTF-8")
        .env("BLENDER_USER_CONFIG", home.path().join("config"))
        .env("BLENDER_USER_SCRIPTS", home.path().join("scripts"))
        .env("BLENDER_USER_DATAFILES", home.path().join("datafiles"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command.spawn().map_err(RunError::Io)?;
    let pid = child.id();
    debug!(target: "blender::sandbox", ?pid, exe = %exe.display(), "blender started");
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(Finished {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            wall: started.elapsed(),
        }),
        Ok(Err(e)) => Err(RunError::Io(e)),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The child leads its own group: this takes Blender and anything it started.
                let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            warn!(target: "blender::sandbox", ?pid, ?timeout, "blender timed out: process group killed");
            Err(RunError::Timeout(timeout))
        }
    }
}
