//! The processes under test: the PEMS simulator and the server, started from the release
//! binary on free loopback ports, and what `/proc` says about them (CPU time, RSS).

use anyhow::{bail, Context};
use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A child process that is killed when dropped.
pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A free loopback port (the child binds it right after; nothing else races for it here).
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    Ok(std::fs::File::create(dir.join(name))?.into())
}

/// Waits until `url` answers 200 (the child has bound and serves).
async fn wait_healthy(url: &str, child: &mut Child) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("{url}: the process exited with {status} (see its log in the bench folder)");
        }
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not answer within 60 s")
}

/// Starts `pfa-sync pems-sim` on a free port; its output goes to `<name>.log`/`.err` in `dir`.
pub async fn start_simulator(bin: &Path, dir: &Path, name: &str) -> anyhow::Result<Proc> {
    let addr = free_addr()?;
    let mut child = Command::new(bin)
        .args(["pems-sim", "--addr", &addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(log_file(dir, &format!("{name}.log"))?)
        .stderr(log_file(dir, &format!("{name}.err"))?)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    wait_healthy(&format!("http://{addr}/api/pems/health"), &mut child).await?;
    Ok(Proc { child, addr })
}

/// Starts `pfa-sync serve` against `database_url` and the simulator; `extra` are more flags.
/// Its output goes to `<name>.log`/`.err` in `dir`.
pub async fn start_server(
    bin: &Path,
    dir: &Path,
    name: &str,
    database_url: &str,
    pems_url: &str,
    site_root: &Path,
    extra: &[String],
) -> anyhow::Result<Proc> {
    let addr = free_addr()?;
    let mut child = Command::new(bin)
        .arg("serve")
        .args(["--addr", &addr.to_string()])
        .args(["--database-url", database_url])
        .args(["--pems-url", pems_url])
        .args(["--mode", "prod"])
        .arg("--site-root")
        .arg(site_root)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(log_file(dir, &format!("{name}.log"))?)
        .stderr(log_file(dir, &format!("{name}.err"))?)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    wait_healthy(&format!("http://{addr}/health"), &mut child).await?;
    Ok(Proc { child, addr })
}

/// Runs a short `pfa-sync` subcommand (e.g. `user add`) to its end; returns its standard
/// output, trimmed.
pub async fn run_command(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} exited with {}: {}",
            bin.display(),
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The `pfa-sync` binary next to this one (both are built into the same target folder).
pub fn sibling_server_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.with_file_name("pfa-sync"))
}

/// Clock ticks per second of `/proc/*/stat` CPU times.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User + system CPU time of a process so far.
pub fn cpu_time(pid: u32, ticks: u64) -> Duration {
    stat_cpu_time(&format!("/proc/{pid}/stat"), ticks)
}

/// User + system CPU time of the calling thread so far.
pub fn thread_cpu_time(ticks: u64) -> Duration {
    stat_cpu_time("/proc/thread-self/stat", ticks)
}

/// User + system CPU time from a `stat` file of /proc.
fn stat_cpu_time(path: &str, ticks: u64) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = field(11) + field(12);
    Duration::from_micros(total * 1_000_000 / ticks)
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Cores and memory of this machine, for the report header.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {:.1} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// Samples a process's CPU use every `every` until stopped; the peak share of one core.
pub struct CpuSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl CpuSampler {
    pub fn start(pid: u32, ticks: u64, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            let mut last = (Instant::now(), cpu_time(pid, ticks));
            loop {
                tokio::select! {
                    _ = &mut stopped => return peak,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = (Instant::now(), cpu_time(pid, ticks));
                let share = (now.1 - last.1).as_secs_f64() / (now.0 - last.0).as_secs_f64();
                peak = peak.max(share);
                last = now;
            }
        });
        Self { stop, task }
    }

    /// Peak CPU as a share of one core (1.0 = 100 %).
    pub async fn peak(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0.0)
    }
}
