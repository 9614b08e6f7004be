//! Starting a devnet process, generating scenes, running `lumen` commands.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
};
use lumen_cli::devnet_file::DevnetFile;

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The `lumen` binary under test.
pub(crate) fn lumen_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lumen")
}

/// Generates a scene with `scripts/make-sample-scene.py` in real Blender.
pub(crate) fn make_scene(out: &Path, frames: u32, width: u32, height: u32, extra: &[&str]) {
    let script = repo_root().join("scripts/make-sample-scene.py");
    let status = Command::new(std::env::var("LUMEN_BLENDER").unwrap_or_else(|_| "blender".into()))
        .args(["-b", "--factory-startup", "--python"])
        .arg(&script)
        .args(["--python-exit-code", "3", "--", "--out"])
        .arg(out)
        .args([
            "--frames",
            &frames.to_string(),
            "--width",
            &width.to_string(),
            "--height",
            &height.to_string(),
        ])
        .args(["--samples", "4"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scene generation failed: {status}");
    assert!(out.is_file());
}

/// A `lumen devnet` process; SIGTERMed (then killed) on drop.
pub(crate) struct Devnet {
    child: Child,
    /// Its data folder (kept for debugging when a test fails).
    pub(crate) dir: tempfile::TempDir,
    /// What it wrote to `devnet.json`.
    pub(crate) file: DevnetFile,
    log: PathBuf,
}

impl Devnet {
    /// Starts a devnet with `nodes` nodes and extra flags, and waits until it is ready.
    pub(crate) fn start(nodes: u32, extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("lumen-e2e-").tempdir().unwrap();
        let log = dir.path().join("devnet.log");
        let mut child = Command::new(lumen_bin())
            .args(["devnet", "--nodes", &nodes.to_string(), "--gateway-port", "0", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "info,lumen=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("devnet.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let path = DevnetFile::path(dir.path());
        let started = Instant::now();
        let file = loop {
            if let Ok(file) = DevnetFile::load(&path) {
                break file;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("devnet exited early ({status}):\n{}", tail(&log));
            }
            assert!(started.elapsed() < Duration::from_secs(120), "devnet not ready:\n{}", tail(&log));
            std::thread::sleep(Duration::from_millis(200));
        };
        let devnet = Self { child, dir, file, log };
        devnet.wait_for_healthy_nodes(nodes as usize);
        devnet
    }

    fn wait_for_healthy_nodes(&self, n: usize) {
        let started = Instant::now();
        loop {
            let healthy = reqwest::blocking_get_json(&format!("{}/api/v1/nodes", self.file.gateway_url))
                .map(|nodes| {
                    nodes.as_array().map_or(0, |a| a.iter().filter(|n| n["state"] == "HEALTHY").count())
                })
                .unwrap_or(0);
            if healthy >= n {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "nodes did not become healthy:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `lumen ARGS --devnet-dir DIR`.
    pub(crate) fn lumen(&self, args: &[&str]) -> Output {
        Command::new(lumen_bin())
            .args(args)
            .arg("--devnet-dir")
            .arg(self.dir.path())
            .env("RUST_LOG", "warn")
            .env("LUMEN_SESSION_DIR", self.dir.path().join("sessions"))
            .output()
            .unwrap()
    }

    /// Runs a `lumen` command that must succeed, with extra environment
    /// variables (keys); returns its stdout.
    pub(crate) fn lumen_ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new(lumen_bin())
            .args(args)
            .arg("--devnet-dir")
            .arg(self.dir.path())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lumen {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a `lumen` command that must succeed; returns its stdout.
    pub(crate) fn lumen_ok(&self, args: &[&str]) -> String {
        let out = self.lumen(args);
        assert!(
            out.status.success(),
            "lumen {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\ndevnet:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Submits a scene and returns the job id (the last line of the output).
    pub(crate) fn submit(&self, scene: &Path, extra: &[&str]) -> u64 {
        let mut args = vec!["job", "submit", scene.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.lumen_ok(&args);
        out.lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("last line is not a job id:\n{out}"))
    }

    /// `lumen job status JOB --json`.
    pub(crate) fn status(&self, job: u64) -> serde_json::Value {
        serde_json::from_str(&self.lumen_ok(&["job", "status", &job.to_string(), "--json"])).unwrap()
    }

    /// Signs `key` in to the gateway (Sign-In with Ethereum) and returns
    /// the bearer token.
    pub(crate) async fn sign_in(&self, key: &alloy::signers::local::PrivateKeySigner) -> String {
        use alloy::signers::Signer as _;
        use lumen_protocol::api::{SessionView, SignIn, SiweChallenge};
        let url = &self.file.gateway_url;
        let http = ::reqwest::Client::new();
        let challenge: SiweChallenge =
            http.get(format!("{url}/api/v1/auth/nonce")).send().await.unwrap().json().await.unwrap();
        let message = challenge.message(key.address());
        let signature = key.sign_message(message.as_bytes()).await.unwrap();
        let body = SignIn { message, signature: signature.as_bytes().to_vec().into() };
        let session: SessionView = http
            .post(format!("{url}/api/v1/auth/siwe"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        session.token.unwrap()
    }

    /// The devnet's artist key.
    pub(crate) fn artist_key(&self) -> alloy::signers::local::PrivateKeySigner {
        self.file.artist_private_key.trim().parse().unwrap()
    }

    /// GETs `path` from the gateway with `token`; the status and body.
    pub(crate) async fn get_as(&self, token: &str, path: &str) -> (::reqwest::StatusCode, Vec<u8>) {
        let response = ::reqwest::Client::new()
            .get(format!("{}{path}", self.file.gateway_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (response.status(), response.bytes().await.unwrap().to_vec())
    }

    /// A read-only provider on the devnet's chain.
    pub(crate) fn provider(&self) -> DynProvider {
        ProviderBuilder::new().connect_http(self.file.rpc_url().parse().unwrap()).erased()
    }

    /// The devnet's log and the nodes' logs (last lines), for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut out = format!("--- devnet\n{}", tail(&self.log));
        for node in &self.file.nodes {
            out += &format!("\n--- node {}\n{}", node.address, tail(&node.log));
        }
        out
    }

    /// The owner of a node.
    pub(crate) fn owner_of(&self, node: Address) -> Address {
        self.file.nodes.iter().find(|n| n.address == node).unwrap().owner
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 60 lines of a file.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A minimal blocking HTTP GET for the harness (std only, so it is safe to
/// call from inside the async tests).
mod reqwest {
    use std::io::{Read, Write};

    pub(crate) fn blocking_get_json(url: &str) -> Result<serde_json::Value, String> {
        let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let mut stream = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).map_err(|e| e.to_string())?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or_default().to_owned());
        }
        serde_json::from_str(body).map_err(|e| e.to_string())
    }
}

/// GETs JSON from the gateway.
pub(crate) fn get_json(url: &str) -> Result<serde_json::Value, String> {
    reqwest::blocking_get_json(url)
}

/// Waits until `check` returns `Some`, polling the job status.
pub(crate) fn wait_until<T>(
    devnet: &Devnet,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}:\n{}", devnet.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}
