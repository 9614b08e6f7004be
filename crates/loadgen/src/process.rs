//! The gateway as a separate process, and what it costs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use eyre::{WrapErr, bail};

/// A `lumen-gateway` process on a free loopback port; killed when dropped.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub url: String,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Starts `bin` over `data_dir` with the deployment file and RPC URL,
    /// `config` as its `lumen.toml`, and waits until `/healthz` answers.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        deployment: &Path,
        rpc_url: &str,
        config: &str,
    ) -> eyre::Result<Self> {
        if !bin.is_file() {
            bail!("{} is missing: build it first (cargo build --bins)", bin.display());
        }
        std::fs::create_dir_all(data_dir)?;
        let config_file = data_dir.join("lumen.toml");
        std::fs::write(&config_file, config)?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = data_dir.join("gateway.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config_file)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &addr.to_string(), "--rpc-url", rpc_url, "--deployment"])
            .arg(deployment)
            .env("RUST_LOG", std::env::var("GATEWAY_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .wrap_err_with(|| format!("starting {}", bin.display()))?;
        let mut gateway = Self { child, addr, url: format!("http://{addr}"), log };
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = crate::http::get(addr, "/healthz", Duration::from_secs(2)).await {
                return Ok(gateway);
            }
            if let Some(status) = gateway.child.try_wait()? {
                bail!("the gateway exited ({status}):\n{}", gateway.log_tail());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the gateway did not answer within 60 s:\n{}", gateway.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://<addr>/ws/node`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/node", self.addr)
    }

    /// Its CPU and memory now.
    pub fn sample(&self) -> eyre::Result<ProcSample> {
        sample(self.pid())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's CPU time and memory, from `/proc/<pid>/stat` and `/status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// Resident memory now (`VmRSS`).
    pub rss_bytes: u64,
    /// The most resident memory since the process started (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// User and system CPU time so far, seconds.
    pub cpu_secs: f64,
    /// Threads.
    pub threads: u64,
    /// When it was taken.
    pub at: Instant,
}

impl ProcSample {
    /// CPU used between `earlier` and this sample, as a share of one core (1.0 = 100 %).
    pub fn cpu_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 { 0.0 } else { (self.cpu_secs - earlier.cpu_secs) / wall }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, 100 on
/// every Linux architecture this runs on.
const USER_HZ: f64 = 100.0;

/// Reads `pid`'s CPU time and memory.
pub fn sample(pid: u32) -> eyre::Result<ProcSample> {
    let at = Instant::now();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest: Vec<&str> =
        stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(ProcSample {
        rss_bytes: field("VmRSS:") * 1024,
        peak_rss_bytes: field("VmHWM:") * 1024,
        cpu_secs: (ticks(11) + ticks(12)) as f64 / USER_HZ,
        threads: field("Threads:"),
        at,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_sampled() {
        let s = super::sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes && s.threads >= 1, "{s:?}");
    }
}
