//! The bubblewrap sandbox every Blender run goes through.
//!
//! A `.blend` is untrusted: Blender is large C and C++ code reading a file
//! format built for trust, a compositor File Output node writes wherever
//! the file says, and a script that slips past `--disable-autoexec` would
//! run as the node. So each run gets its own [`RunDir`] on the host and
//! sees, through [bubblewrap](https://github.com/containers/bubblewrap)
//! (`bwrap`, the Debian package `bubblewrap`):
//!
//! | inside | what | access |
//! |---|---|---|
//! | `/usr` (and `/bin`, `/lib*` as the host links or binds them) | the system | read-only |
//! | `/etc/ld.so.cache`, `/etc/alternatives` | what the dynamic loader needs | read-only |
//! | Blender's own folder, when it is outside `/usr` | the installation | read-only |
//! | `/lumen/in/<name>` | the `.blend` (or the generator script) | read-only |
//! | `/lumen/out` | the run's fresh output folder | **writable** |
//! | `/tmp` | the run's private scratch folder: `HOME`, `TMPDIR` | **writable** |
//! | `/dev` | a minimal new `/dev`: `null`, `zero`, `full`, `random`, `urandom`, `tty`; no disks, no GPUs | read-only (the devices work) |
//! | `/proc` | a procfs of the sandbox's own processes | |
//! | everything else (`/home`, `/root`, `/etc`, `/var`, `/run`, `/sys`, the node's data folder and key) | — | invisible |
//!
//! Blender runs as `nobody` in new user, PID, network (loopback only),
//! IPC, UTS and cgroup namespaces, with no capabilities (even when the
//! node runs as root) and no nested user namespaces; the sandbox dies with
//! the node. The node's `prlimit` memory and CPU limits apply on top, and
//! killing the sandbox's first process tears its PID namespace down with
//! everything Blender started (`process.rs`).
//!
//! Where bubblewrap is missing or cannot build namespaces, Blender is not
//! run at all ([`Sandbox::from_env`] fails, and with it
//! [`crate::Blender::locate`]); `LUMEN_SANDBOX=off` is the explicit,
//! logged opt-out for development machines.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

use tracing::{info, warn};

/// The environment variable that chooses the sandbox: unset or `on`
/// requires bubblewrap; `off` runs Blender without it (development only,
/// with a warning at every start).
pub const SANDBOX_ENV: &str = "LUMEN_SANDBOX";

/// Where bubblewrap is looked for when `bwrap` is not on `PATH`.
const BWRAP_FALLBACK: &str = "/usr/bin/bwrap";

/// `nobody`: the user and group Blender runs as inside the sandbox.
const NOBODY: &str = "65534";

/// Where a run's read-only inputs are, inside the sandbox.
pub(crate) const INPUT_DIR: &str = "/lumen/in";
/// The run's writable output folder, inside the sandbox.
pub(crate) const OUTPUT_DIR: &str = "/lumen/out";
/// The run's writable scratch folder (`HOME`, `TMPDIR`), inside the sandbox.
pub(crate) const SCRATCH_DIR: &str = "/tmp";
/// `PATH` inside the sandbox: the system's, never the node's.
pub(crate) const SANDBOX_PATH: &str = "/usr/bin:/bin";

/// How Blender runs are confined.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sandbox {
    /// In a bubblewrap sandbox (the module documentation says what it sees).
    Bubblewrap {
        /// The `bwrap` executable.
        bwrap: PathBuf,
    },
    /// Unconfined, beyond the limits and private home every run has
    /// (`LUMEN_SANDBOX=off`: development only).
    Off,
}

/// Why Blender cannot be sandboxed here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// No `bwrap` on `PATH` nor at `/usr/bin/bwrap`.
    #[error(
        "bubblewrap (`bwrap`) is not installed, and Blender never runs untrusted scenes without it: \
         install the Debian package `bubblewrap` (scripts/setup.sh does), or set {SANDBOX_ENV}=off \
         to run Blender unconfined (development only)"
    )]
    NotInstalled,
    /// `bwrap` is there but cannot build the sandbox (no user namespaces).
    #[error(
        "bubblewrap cannot build the render sandbox here ({detail}): user namespaces may be \
         disabled (sysctl kernel.unprivileged_userns_clone=0 or user.max_user_namespaces=0, an \
         AppArmor restriction, or a container without them); Blender never runs untrusted scenes \
         unconfined unless {SANDBOX_ENV}=off (development only)"
    )]
    Unusable {
        /// What bubblewrap said.
        detail: String,
    },
    /// `LUMEN_SANDBOX` holds something else than `on` or `off`.
    #[error("{SANDBOX_ENV}={value:?}: expected `on` or `off`")]
    BadSetting {
        /// The value found.
        value: String,
    },
}

impl Sandbox {
    /// The sandbox `LUMEN_SANDBOX` asks for: bubblewrap (checked by
    /// building one sandbox) unless the variable says `off`.
    pub fn from_env() -> Result<Self, SandboxError> {
        match std::env::var_os(SANDBOX_ENV) {
            None => Self::bubblewrap(),
            Some(value) if value == "on" => Self::bubblewrap(),
            Some(value) if value == "off" => {
                warn!(
                    target: "blender::sandbox",
                    "{SANDBOX_ENV}=off: Blender runs WITHOUT the sandbox; untrusted scenes can read \
                     and write whatever this user can (development only)"
                );
                Ok(Self::Off)
            }
            Some(value) => Err(SandboxError::BadSetting { value: value.to_string_lossy().into_owned() }),
        }
    }

    /// Bubblewrap from `PATH` (else `/usr/bin/bwrap`), after checking that
    /// it can build the sandbox on this machine.
    pub fn bubblewrap() -> Result<Self, SandboxError> {
        let bwrap = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("bwrap"))
            .chain([PathBuf::from(BWRAP_FALLBACK)])
            .find(|p| p.is_file())
            .ok_or(SandboxError::NotInstalled)?;
        let sandbox = Self::Bubblewrap { bwrap };
        sandbox.check()?;
        info!(target: "blender::sandbox", ?sandbox, "Blender runs in a bubblewrap sandbox");
        Ok(sandbox)
    }

    /// Whether runs are confined.
    pub fn is_on(&self) -> bool {
        matches!(self, Self::Bubblewrap { .. })
    }

    /// Builds one sandbox exactly as a run would (with an input and both
    /// writable folders) and runs `true` in it.
    fn check(&self) -> Result<(), SandboxError> {
        let Self::Bubblewrap { bwrap } = self else { return Ok(()) };
        let unusable = |detail: String| SandboxError::Unusable { detail };
        let mut dir = RunDir::new(self, &std::env::temp_dir(), "lumen-sandbox-check-")
            .map_err(|e| unusable(format!("cannot create a run folder: {e}")))?;
        let input = dir.dir.path().join("input");
        std::fs::write(&input, b"").map_err(|e| unusable(format!("cannot create a test input: {e}")))?;
        dir.input(&input).map_err(|e| unusable(e.to_string()))?;
        let out = std::process::Command::new(bwrap)
            .args(bwrap_args(Path::new("true"), &dir))
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| unusable(format!("cannot start {}: {e}", bwrap.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(unusable(format!("{}: {}", out.status, stderr.trim())))
        }
    }
}

/// The host folder of one Blender run (removed when dropped): `out/`, the
/// only output folder the run may write, and `tmp/`, its private scratch
/// folder; plus the read-only inputs it may see. Gives the paths Blender
/// is to be told, which are the sandbox's own when it is on.
#[derive(Debug)]
pub(crate) struct RunDir {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    /// `(host path, name)` of each read-only input.
    inputs: Vec<(PathBuf, OsString)>,
}

impl RunDir {
    /// A fresh run folder under `parent`, named `prefix…`.
    pub(crate) fn new(sandbox: &Sandbox, parent: &Path, prefix: &str) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        std::fs::create_dir(dir.path().join("out"))?;
        std::fs::create_dir(dir.path().join("tmp"))?;
        Ok(Self { sandbox: sandbox.clone(), dir, inputs: Vec::new() })
    }

    /// The sandbox the run goes through.
    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Lets the run read the file at `host`; the path to give Blender.
    pub(crate) fn input(&mut self, host: &Path) -> std::io::Result<PathBuf> {
        if !self.sandbox.is_on() {
            return std::path::absolute(host);
        }
        let name = host.file_name().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} names no file", host.display()))
        })?;
        if self.inputs.iter().any(|(_, n)| n == name) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("two inputs named {}", name.to_string_lossy()),
            ));
        }
        self.inputs.push((std::path::absolute(host)?, name.to_owned()));
        Ok(Path::new(INPUT_DIR).join(name))
    }

    /// The output folder, as Blender is to be told.
    pub(crate) fn output(&self) -> PathBuf {
        if self.sandbox.is_on() { PathBuf::from(OUTPUT_DIR) } else { self.host_output() }
    }

    /// The output folder on the host.
    pub(crate) fn host_output(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The scratch folder (`HOME`, `TMPDIR`), as Blender is to be told.
    pub(crate) fn scratch(&self) -> PathBuf {
        if self.sandbox.is_on() { PathBuf::from(SCRATCH_DIR) } else { self.host_scratch() }
    }

    /// The scratch folder on the host.
    pub(crate) fn host_scratch(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }
}

/// Top-level folders that merged-`/usr` systems make links into `/usr`
/// (recreated as the same links) and older ones keep as folders (bound
/// read-only).
const SYSTEM_ROOTS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// bubblewrap's arguments for running `exe` in `dir` (everything before
/// Blender's own arguments).
pub(crate) fn bwrap_args(exe: &Path, dir: &RunDir) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&OsStr]| args.extend(parts.iter().map(|p| p.to_os_string()));
    // Namespaces: user (mandatory, so no capabilities even for root, and no
    // fallback where user namespaces are missing), PID, network (loopback
    // only), IPC, UTS, cgroup. Blender runs as nobody; nested user
    // namespaces and every capability are refused.
    push(&["--unshare-all".as_ref(), "--unshare-user".as_ref()]);
    push(&["--uid".as_ref(), NOBODY.as_ref(), "--gid".as_ref(), NOBODY.as_ref()]);
    push(&["--disable-userns".as_ref(), "--cap-drop".as_ref(), "ALL".as_ref()]);
    push(&["--hostname".as_ref(), "lumen-sandbox".as_ref()]);
    // Killed with the node; no controlling terminal to push input into.
    push(&["--die-with-parent".as_ref(), "--new-session".as_ref()]);
    // The system, read-only: /usr, the top-level links or folders into it,
    // the loader's cache and Debian's alternatives (BLAS and LAPACK).
    push(&["--ro-bind".as_ref(), "/usr".as_ref(), "/usr".as_ref()]);
    for name in SYSTEM_ROOTS {
        let path = Path::new("/").join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_symlink() => {
                if let Ok(target) = std::fs::read_link(&path) {
                    push(&["--symlink".as_ref(), target.as_os_str(), path.as_os_str()]);
                }
            }
            Ok(meta) if meta.is_dir() => push(&["--ro-bind".as_ref(), path.as_os_str(), path.as_os_str()]),
            _ => {}
        }
    }
    push(&["--ro-bind".as_ref(), "/etc/ld.so.cache".as_ref(), "/etc/ld.so.cache".as_ref()]);
    push(&["--ro-bind-try".as_ref(), "/etc/alternatives".as_ref(), "/etc/alternatives".as_ref()]);
    // Blender reads the mount table at start (and complains without one).
    push(&["--symlink".as_ref(), "/proc/self/mounts".as_ref(), "/etc/mtab".as_ref()]);
    // A Blender installed outside /usr (an official tarball): its folder.
    if let Some(home) = installation_dir(exe) {
        push(&["--ro-bind".as_ref(), home.as_os_str(), home.as_os_str()]);
    }
    // A fresh minimal /dev (no disks, no GPUs) and the sandbox's own /proc.
    push(&["--dev".as_ref(), "/dev".as_ref(), "--proc".as_ref(), "/proc".as_ref()]);
    // The run's own folders: scratch and output writable, inputs read-only.
    let scratch = dir.host_scratch();
    push(&["--bind".as_ref(), scratch.as_os_str(), SCRATCH_DIR.as_ref()]);
    for (host, name) in &dir.inputs {
        let inside = Path::new(INPUT_DIR).join(name);
        push(&["--ro-bind".as_ref(), host.as_os_str(), inside.as_os_str()]);
    }
    let output = dir.host_output();
    push(&["--bind".as_ref(), output.as_os_str(), OUTPUT_DIR.as_ref()]);
    push(&["--chdir".as_ref(), SCRATCH_DIR.as_ref()]);
    // The root bwrap builds and its /dev (tmpfs both) read-only: nothing
    // but the run's two folders is writable (devices still work).
    push(&["--remount-ro".as_ref(), "/".as_ref(), "--remount-ro".as_ref(), "/dev".as_ref()]);
    push(&["--".as_ref(), exe.as_os_str()]);
    args
}

/// The folder to bind for an executable outside `/usr` (its own folder,
/// where an official Blender keeps its libraries and Python).
fn installation_dir(exe: &Path) -> Option<PathBuf> {
    if !exe.is_absolute() {
        return None;
    }
    let real = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_owned());
    if real.starts_with("/usr") {
        return None;
    }
    real.parent().filter(|p| *p != Path::new("/")).map(Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bwrap() -> Sandbox {
        Sandbox::Bubblewrap { bwrap: PathBuf::from(BWRAP_FALLBACK) }
    }

    #[test]
    fn paths_blender_is_told_are_the_sandboxs_own() {
        let parent = tempfile::tempdir().unwrap();
        let mut dir = RunDir::new(&bwrap(), parent.path(), "run-").unwrap();
        let blend = parent.path().join("abc.blend");
        assert_eq!(dir.input(&blend).unwrap(), Path::new("/lumen/in/abc.blend"));
        assert!(dir.input(&parent.path().join("x/abc.blend")).is_err(), "two inputs of one name");
        assert_eq!(dir.output(), Path::new("/lumen/out"));
        assert_eq!(dir.scratch(), Path::new("/tmp"));
        assert!(dir.host_output().is_dir() && dir.host_scratch().is_dir());

        let mut off = RunDir::new(&Sandbox::Off, parent.path(), "run-").unwrap();
        assert_eq!(off.input(&blend).unwrap(), blend);
        assert_eq!(off.output(), off.host_output());
        assert_eq!(off.scratch(), off.host_scratch());
        let (on_host, gone) = (off.host_output(), dir.host_output());
        drop((off, dir));
        assert!(!on_host.exists() && !gone.exists(), "run folders are removed with their RunDir");
    }

    #[test]
    fn bwrap_arguments_bind_only_the_system_and_the_run() {
        let parent = tempfile::tempdir().unwrap();
        let mut dir = RunDir::new(&bwrap(), parent.path(), "run-").unwrap();
        let blend = parent.path().join("scene.blend");
        dir.input(&blend).unwrap();
        let args: Vec<String> = bwrap_args(Path::new("/usr/bin/blender"), &dir)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for expected in [
            "--unshare-all --unshare-user --uid 65534 --gid 65534 --disable-userns --cap-drop ALL",
            "--die-with-parent --new-session",
            "--ro-bind /usr /usr",
            "--dev /dev --proc /proc",
            &format!("--bind {} /tmp", dir.host_scratch().display()),
            &format!("--ro-bind {} /lumen/in/scene.blend", blend.display()),
            &format!("--bind {} /lumen/out", dir.host_output().display()),
            "--remount-ro / --remount-ro /dev -- /usr/bin/blender",
        ] {
            assert!(line.contains(expected), "{expected:?} missing from {line}");
        }
        // Writable binds are the run's two folders, nothing else.
        let writable: Vec<&str> =
            args.windows(2).filter(|w| w[0] == "--bind").map(|w| w[1].as_str()).collect();
        assert_eq!(writable.len(), 2, "{line}");
        assert!(writable.iter().all(|p| Path::new(p).starts_with(parent.path())), "{line}");
        assert!(!line.contains("--share-net") && !line.contains("/home") && !line.contains("/root"));
    }

    #[test]
    fn blender_outside_usr_gets_its_folder_bound() {
        assert_eq!(installation_dir(Path::new("/usr/bin/blender")), None);
        assert_eq!(installation_dir(Path::new("blender")), None);
        assert_eq!(
            installation_dir(Path::new("/opt/blender-4.2/blender")),
            Some(PathBuf::from("/opt/blender-4.2"))
        );
    }
}
