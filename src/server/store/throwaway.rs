//! A throwaway PostgreSQL cluster (initdb + postgres from Debian's `postgresql` package) in a
//! temp folder on a free loopback port: tests, benchmarks and `make run-cluster` use it, so they
//! never need a configured database server.
//!
//! The cluster trades durability for speed (`fsync=off` and friends) and trusts every local
//! connection. Its server dies with the process that started it, even on a panic or `kill -9`:
//! each server process gets a parent-death signal, and all are spawned from one thread that
//! lives as long as the process, because the kernel sends that signal when the *thread* that
//! forked the child ends.

use anyhow::{anyhow, bail, Context};
use sqlx::{Connection, PgConnection};
use std::{
    ffi::CString,
    fs::File,
    io,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Mutex, Once, OnceLock, PoisonError,
    },
    time::{Duration, Instant},
};

/// Where Debian installs each major version's server binaries (off PATH).
const DEBIAN_SERVERS: &str = "/usr/lib/postgresql";
/// Cluster folders are `<temp dir>/pfa-sync-pg-<pid>-<random hex>`.
const FOLDER_PREFIX: &str = "pfa-sync-pg-";
/// How long a starting server may take to answer a query.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Servers started on a port that another process took in between (see `free_port`).
const START_ATTEMPTS: usize = 5;
/// Lines of the server's log quoted in errors.
const LOG_TAIL_LINES: usize = 20;

/// A PostgreSQL cluster of its own, reachable as user `postgres` without a password on
/// 127.0.0.1. An owned instance ([`ThrowawayPostgres::start`]) is stopped and its folder
/// removed on drop; the shared one ([`ThrowawayPostgres::shared`]) lives until the process
/// exits.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    folder: PathBuf,
    port: u16,
    server: Child,
}

impl ThrowawayPostgres {
    /// Starts a new cluster; blocks until it accepts connections. Stopped (and its folder
    /// removed) on drop, which blocks until the server has shut down.
    pub fn start() -> anyhow::Result<Self> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(remove_stale_folders);
        let bin = server_binaries()?;
        // PostgreSQL refuses to run as root.
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(system_user("postgres")?)
        } else {
            None
        };
        let folder = std::path::absolute(std::env::temp_dir().join(format!(
            "{FOLDER_PREFIX}{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        )))
        .context("cannot resolve the temp folder")?;
        std::fs::create_dir(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let started = start_in(&bin, owner, &folder);
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&folder);
        }
        started
    }

    /// One cluster per process, started on first use and stopped when the process exits (for
    /// tests: one cluster per test binary, a database per test). Its folder stays behind and is
    /// removed by a later run once this process is gone.
    pub fn shared() -> anyhow::Result<&'static ThrowawayPostgres> {
        // The error is kept as text: every caller gets it, and a failed start is not retried.
        static SHARED: OnceLock<Result<ThrowawayPostgres, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Self::start().map_err(|e| format!("{e:#}"))) {
            Ok(cluster) => Ok(cluster),
            Err(message) => Err(anyhow!("{message}")),
        }
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// postgres://postgres@127.0.0.1:{port}/{database}
    pub fn url(&self, database: &str) -> String {
        url(self.port, database)
    }

    /// Creates a new, empty database with a unique name and returns its URL.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t_{}_{:08x}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        self.create_database(&name).await
    }

    /// Creates the empty database `name` (letters, digits and `_`) and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name {name:?}: letters, digits and '_' only");
        }
        let mut connection = PgConnection::connect(&self.url("postgres"))
            .await
            .with_context(|| {
                format!(
                    "cannot connect to the throwaway PostgreSQL on port {}",
                    self.port
                )
            })?;
        // A name cannot be a bind parameter, and a statement run once is not worth preparing.
        sqlx::raw_sql(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut connection)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let _ = connection.close().await;
        Ok(self.url(name))
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        stop(&mut self.server);
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

/// initdb, then the server on a free port (another one if the port was taken meanwhile).
fn start_in(
    bin: &Path,
    owner: Option<(libc::uid_t, libc::gid_t)>,
    folder: &Path,
) -> anyhow::Result<ThrowawayPostgres> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(folder, Some(uid), Some(gid))
            .with_context(|| format!("cannot hand {} to user postgres", folder.display()))?;
    }
    let data = folder.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
        .arg(if locale_exists("C.UTF-8") {
            "--locale=C.UTF-8"
        } else {
            "--no-locale"
        })
        // Nothing needs to survive a crash: skipping the final flush to disk saves seconds.
        .arg("--no-sync")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    as_server_process(&mut initdb, owner, folder);
    let output = spawn_from_lasting_thread(initdb)
        .context("cannot run initdb")?
        .wait_with_output()
        .context("cannot wait for initdb")?;
    if !output.status.success() {
        bail!(
            "initdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let log_path = folder.join("postgres.log");
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(folder)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
            .args(["-c", "shared_buffers=64MB"])
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log);
        as_server_process(&mut postgres, owner, folder);
        let mut server = spawn_from_lasting_thread(postgres).context("cannot run postgres")?;
        let readiness = wait_until_ready(&mut server, port, &data);
        let failure = match readiness {
            Ok(Readiness::Ready) => {
                return Ok(ThrowawayPostgres {
                    folder: folder.to_owned(),
                    port,
                    server,
                })
            }
            Ok(Readiness::Exited(status)) => format!("postgres on port {port} exited ({status})"),
            Ok(Readiness::OtherServer(other)) => {
                format!("port {port} was taken by the PostgreSQL of {other}")
            }
            Ok(Readiness::TimedOut) => {
                stop(&mut server);
                bail!(
                    "postgres did not accept connections within {} s; its log ends with:\n{}",
                    READY_TIMEOUT.as_secs(),
                    log_tail(&log_path)
                );
            }
            Err(e) => {
                stop(&mut server);
                return Err(e);
            }
        };
        stop(&mut server);
        failures.push(failure);
    }
    bail!(
        "postgres failed to start {START_ATTEMPTS} times ({}); the last one's log ends with:\n{}",
        failures.join("; "),
        log_tail(&log_path)
    )
}

/// The highest installed major version's `bin` folder.
fn server_binaries() -> anyhow::Result<PathBuf> {
    let installed = std::fs::read_dir(DEBIAN_SERVERS)
        .into_iter()
        .flatten()
        .flatten();
    installed
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(|| {
            anyhow!(
                "PostgreSQL server binaries not found ({DEBIAN_SERVERS}/*/bin/initdb): install \
                 Debian's postgresql package (`sudo apt-get install postgresql`; `make test` \
                 does it when run as root)"
            )
        })
}

/// The uid and gid of a system user.
fn system_user(name: &str) -> anyhow::Result<(libc::uid_t, libc::gid_t)> {
    let c_name = CString::new(name).context("user name with a NUL byte")?;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // The reentrant lookup: tests start clusters from several threads at once.
    let status = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status))
            .with_context(|| format!("cannot look up system user {name}"));
    }
    if found.is_null() {
        bail!(
            "PostgreSQL refuses to run as root, and there is no system user {name} to run it as \
             (Debian's postgresql package creates it: `apt-get install postgresql`)"
        );
    }
    Ok((entry.pw_uid, entry.pw_gid))
}

fn locale_exists(name: &str) -> bool {
    let Ok(c_name) = CString::new(name) else {
        return false;
    };
    let locale =
        unsafe { libc::newlocale(libc::LC_ALL_MASK, c_name.as_ptr(), std::ptr::null_mut()) };
    if locale.is_null() {
        return false;
    }
    unsafe { libc::freelocale(locale) };
    true
}

/// Runs the command in the cluster's folder, as `owner` if given, in a process group of its
/// own, and makes it die with this process.
fn as_server_process(
    command: &mut Command,
    owner: Option<(libc::uid_t, libc::gid_t)>,
    folder: &Path,
) {
    let parent = std::process::id() as libc::pid_t;
    command
        .stdin(Stdio::null())
        .current_dir(folder)
        // Out of the terminal's process group: Ctrl-C reaches only this process, which may still
        // need the database while it shuts down; the server stops after it (drop or the
        // parent-death signal).
        .process_group(0);
    // Between fork and exec only async-signal-safe calls: no allocation, hence raw OS errors.
    unsafe {
        command.pre_exec(move || {
            if let Some((uid, gid)) = owner {
                if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            // After setuid, which clears the parent-death signal. SIGQUIT is the server's
            // immediate shutdown, which also stops its backends.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGQUIT as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl, and then no signal ever comes.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns the command from a thread that lives as long as the process: the parent-death signal
/// is sent when the thread that forked the child ends, and callers' threads (a test's) end
/// early.
fn spawn_from_lasting_thread(command: Command) -> anyhow::Result<Child> {
    static SPAWNER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);
    let requests = {
        let mut spawner = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
        match &*spawner {
            Some(requests) => requests.clone(),
            None => {
                let (requests, incoming) = mpsc::channel::<SpawnRequest>();
                std::thread::Builder::new()
                    .name("throwaway-postgres".into())
                    .spawn(move || {
                        for mut request in incoming {
                            let _ = request.reply.send(request.command.spawn());
                        }
                    })
                    .context("cannot start the thread that spawns PostgreSQL")?;
                *spawner = Some(requests.clone());
                requests
            }
        }
    };
    let (reply, child) = mpsc::channel();
    requests
        .send(SpawnRequest { command, reply })
        .map_err(|_| anyhow!("the thread that spawns PostgreSQL is gone"))?;
    child
        .recv()
        .map_err(|_| anyhow!("the thread that spawns PostgreSQL is gone"))?
        .map_err(Into::into)
}

/// A port that was free a moment ago. Another process may take it before the server binds it;
/// `start_in` then tries another.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("no free loopback port")?;
    Ok(listener
        .local_addr()
        .context("no free loopback port")?
        .port())
}

enum Readiness {
    Ready,
    Exited(ExitStatus),
    /// Another cluster answered on the port (with its data folder).
    OtherServer(String),
    TimedOut,
}

/// Polls until the server answers a query, exits, or the deadline passes.
fn wait_until_ready(server: &mut Child, port: u16, data: &Path) -> anyhow::Result<Readiness> {
    // The caller may be inside a Tokio runtime (an async test), where blocking on a runtime of
    // our own would panic: the check runs on a thread of its own.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start a runtime to reach PostgreSQL")?
                    .block_on(poll_readiness(server, port, data))
            })
            .join()
            .map_err(|_| anyhow!("the readiness check of PostgreSQL panicked"))?
    })
}

async fn poll_readiness(server: &mut Child, port: u16, data: &Path) -> anyhow::Result<Readiness> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Some(status) = server.try_wait().context("cannot check on postgres")? {
            return Ok(Readiness::Exited(status));
        }
        if Instant::now() >= deadline {
            return Ok(Readiness::TimedOut);
        }
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            // Asking for the data folder, not just `SELECT 1`, tells our server from one that
            // took the port first.
            let answer = tokio::time::timeout(Duration::from_secs(5), data_directory(port)).await;
            if let Ok(Ok(served)) = answer {
                return Ok(if same_path(Path::new(&served), data) {
                    Readiness::Ready
                } else {
                    Readiness::OtherServer(served)
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn data_directory(port: u16) -> Result<String, sqlx::Error> {
    let mut connection = PgConnection::connect(&url(port, "postgres")).await?;
    let served = sqlx::query_scalar("SELECT current_setting('data_directory')")
        .fetch_one(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(served)
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Fast shutdown (SIGINT), then SIGKILL if it takes too long.
fn stop(server: &mut Child) {
    if !matches!(server.try_wait(), Ok(None)) {
        return;
    }
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match server.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            _ => return,
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Removes the folders of clusters whose process is gone (a shared cluster's, or an owned one's
/// after a crash), so that repeated runs do not fill the temp folder.
fn remove_stale_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let own = std::process::id() as libc::pid_t;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(FOLDER_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok());
        if let Some(pid) = pid {
            if pid > 0 && pid != own && !process_alive(pid) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn process_alive(pid: libc::pid_t) -> bool {
    // EPERM: alive, another user's.
    let signalled = unsafe { libc::kill(pid, 0) } == 0;
    signalled || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn table_exists(connection: &mut PgConnection, table: &str) -> bool {
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(connection)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn two_fresh_databases_of_the_shared_cluster_are_separate() {
        let cluster = ThrowawayPostgres::shared().unwrap();
        let first = cluster.fresh_database().await.unwrap();
        let second = cluster.fresh_database().await.unwrap();
        assert_ne!(first, second);

        let mut in_first = PgConnection::connect(&first).await.unwrap();
        sqlx::query("CREATE TABLE only_in_first (id integer)")
            .execute(&mut in_first)
            .await
            .unwrap();
        let mut in_second = PgConnection::connect(&second).await.unwrap();

        assert!(table_exists(&mut in_first, "only_in_first").await);
        assert!(!table_exists(&mut in_second, "only_in_first").await);
    }

    #[tokio::test]
    async fn an_owned_cluster_accepts_connections_and_leaves_nothing_after_drop() {
        let cluster = ThrowawayPostgres::start().unwrap();
        let (port, folder) = (cluster.port(), cluster.folder.clone());
        assert!(folder.is_dir());
        // Left open across the drop: a fast shutdown does not wait for clients.
        let mut connection = PgConnection::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(one, 1);

        drop(cluster);

        let refused = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        assert!(!folder.exists());
    }

    #[test]
    fn a_cluster_outlives_the_thread_that_started_it() {
        let mut cluster = std::thread::spawn(ThrowawayPostgres::start)
            .join()
            .unwrap()
            .unwrap();
        // Time for a parent-death signal to arrive, were it tied to the ended thread.
        std::thread::sleep(Duration::from_millis(500));

        assert!(cluster.server.try_wait().unwrap().is_none());
        std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, cluster.port())).unwrap();
    }
}
