//! Real `pfa-sync` processes for the tests that kill one (`kill -9`) or run several on one
//! database: the server, the PEMS simulator on its own, the CLI, and plain HTTP and WebSocket
//! calls to them.
#![allow(dead_code)]

use super::Socket;
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const BIN: &str = env!("CARGO_BIN_EXE_pfa-sync");

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    /// `kill -9`, and waits for it.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM (a rolling restart), and waits up to `within` for it to exit.
    pub fn terminate(&mut self, within: Duration) -> bool {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The PEMS simulator in a process of its own (it outlives the servers); its base URL.
pub fn start_simulator() -> (Killed, String) {
    let mut child = Command::new(BIN)
        .args(["pems-sim", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Killed(child), url)
}

/// `pfa-sync serve` in dev mode on `port`, with `extra` arguments.
pub fn start_server(port: u16, db: &str, pems: &str, extra: &[&str]) -> Killed {
    let child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
            "--pems-url",
            pems,
            "--mode",
            "dev",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server at {base} did not become healthy");
}

/// A bearer token for `user`, made with the CLI on `db`.
pub fn cli_token(db: &str, user: &str, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", "--user", user, "--database-url", db];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let output = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Opens `org`'s socket at `base` (http://host:port) with a bearer token; reads CONNECTED.
pub async fn subscribe(base: &str, org: &str, token: &str, since: Option<u64>) -> (Socket, Value) {
    let bearer = format!("Bearer {token}");
    subscribe_with(base, org, &[("authorization", &bearer)], since).await
}

/// Opens `org`'s socket at `base` with these request headers (a cookie and an origin, say);
/// reads CONNECTED.
pub async fn subscribe_with(
    base: &str,
    org: &str,
    headers: &[(&'static str, &str)],
    since: Option<u64>,
) -> (Socket, Value) {
    let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
    let url = format!(
        "{}/api/ws/sync/{org}{query}",
        base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let connected = super::next(&mut socket).await.json();
    assert_eq!(connected["type"], "CONNECTED", "{connected}");
    (socket, connected)
}

/// Saves a draft of each of the first `n` records of `org` (notes `"{note} {k}"`) and commits
/// them at `base`; answers the job's id.
pub async fn commit_notes(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    org: &str,
    n: usize,
    note: &str,
) -> String {
    let drafts: Vec<Value> = (1..=n)
        .map(|k| serde_json::json!({"pfaId": format!("PFA-{k:05}"), "changes": {"notes": format!("{note} {k}")}}))
        .collect();
    let url = |path: &str| format!("{base}/api/orgs/{org}/{path}");
    let body = serde_json::json!({ "drafts": drafts });
    let (status, saved) = call(
        client,
        reqwest::Method::PUT,
        url("drafts"),
        token,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let (status, committed) = call(
        client,
        reqwest::Method::POST,
        url("drafts/commit"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 202, "{committed}");
    committed["job"]["id"].as_str().unwrap().to_owned()
}

/// Polls `org`'s job at `base` until `done` accepts its detail (`{job, items}`), at most
/// `within`; answers that detail.
pub async fn wait_job(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    org: &str,
    job: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let url = format!("{base}/api/orgs/{org}/jobs/{job}");
        let (_, detail) = call(client, reqwest::Method::GET, url, token, None).await;
        if done(&detail) {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "the job never got there: {}",
            detail["job"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sets the PEMS simulator's answer latency.
pub async fn pems_latency(client: &reqwest::Client, pems: &str, ms: u64) {
    let url = format!("{pems}/api/pems/_faults");
    let body = serde_json::json!({ "latencyMs": ms });
    let (status, answer) = call(client, reqwest::Method::PUT, url, "", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
}

/// The PEMS simulator's counts: `{writes, byRecord: {"ORG/PFA": n}, requests}`.
pub async fn pems_stats(client: &reqwest::Client, pems: &str) -> Value {
    let url = format!("{pems}/api/pems/_stats");
    call(client, reqwest::Method::GET, url, "", None).await.1
}

/// `serve` flags of a fast job: 16 PEMS requests in flight, no rate limit to speak of, and a
/// 3 s lease (a killed runner's job is taken over within seconds).
pub const FAST_SYNC: [&str; 6] = [
    "--sync-concurrency",
    "16",
    "--pems-rate",
    "20000",
    "--job-lease-secs",
    "3",
];
