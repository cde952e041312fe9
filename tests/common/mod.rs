//! Test helpers: the real server on port 0 with a fresh database, and a real WebSocket client.
//! The database is a SQLite file in a temp folder, or with `PFA_SYNC_TEST_STORE=postgres` a
//! new database of the test binary's throwaway PostgreSQL cluster (`make test-rust` runs the
//! black-box tests both ways).
#![allow(dead_code)]

pub mod procs;

use futures::{SinkExt, StreamExt};
use pfa_sync::server::{
    accounts_cli,
    config::Config,
    realtime::hub::Hub,
    store::{throwaway::ThrowawayPostgres, Store},
    Application,
};
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use tokio_util::sync::CancellationToken;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `Set-Cookie` header of the cookie `name`, if the response sets it.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub shutdown: CancellationToken,
    pub store: Store,
    pub hub: Hub,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub client: reqwest::Client,
    /// Base URL of the PEMS the server writes to (the in-process simulator by default).
    pub pems: String,
    _dir: tempfile::TempDir,
}

/// How a test client authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Cookie(String),
    Bearer(String),
}

/// What the next read from a socket gave.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Close(u16, String),
    /// The connection ended without a close frame (or with an error).
    Ended,
}

impl Frame {
    pub fn json(self) -> Value {
        match self {
            Frame::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }
}

impl TestServer {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        pfa_sync::server::telemetry::init_for_tests();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_tests(database_url(&dir).await);
        adjust(&mut config);
        let app = Application::build(config).await.expect("server builds");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let store = app.state().store.clone();
        let hub = app.state().hub.clone();
        let pems = app.state().pems.0.to_string();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            base: format!("http://{addr}"),
            shutdown,
            store,
            hub,
            task,
            client: reqwest::Client::new(),
            pems,
            _dir: dir,
        }
    }

    /// Loads the first `count` demo records of `org`.
    pub async fn seed(&self, org: &str, count: usize) {
        let records = pfa_sync::domain::demo_data::demo_records(org, count);
        self.store.seed_records(&records).await.expect("seeded");
    }

    /// Calls the JSON API with a bearer token; returns status and body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Calls the PEMS simulator's API (faults, remote edits, stats).
    pub async fn pems_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.pems));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// Creates a user with `ORG:ROLE` memberships directly in the store.
    pub async fn user(&self, name: &str, members: &[&str]) {
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        accounts_cli::add_user(&self.store, name, "password-123", &members)
            .await
            .expect("user created");
    }

    /// A bearer token for `user` with `scopes`.
    pub async fn token(&self, user: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        accounts_cli::create_token(&self.store, user, &scopes, None)
            .await
            .expect("token created")
    }

    /// Signs in through the API and returns the session cookie (`pfa_session=…`).
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self.login_response(username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let cookie = set_cookie(&response, "pfa_session").expect("a session cookie");
        cookie.split(';').next().unwrap().to_owned()
    }

    pub async fn login_response(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/auth/login"))
            .header("origin", self.origin())
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Publishes through the API with a bearer token; returns status and body.
    pub async fn publish(&self, org: &str, token: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/orgs/{org}/events")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Opens the org's socket; `Err(status)` when the upgrade is refused over HTTP.
    pub async fn ws(
        &self,
        org: &str,
        auth: &Auth,
        since: Option<u64>,
        origin: Option<&str>,
    ) -> Result<Socket, u16> {
        let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
        let mut request = format!("ws://{}/api/ws/sync/{org}{query}", self.addr)
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        match auth {
            Auth::None => {}
            Auth::Cookie(c) => {
                headers.insert("cookie", c.parse().unwrap());
            }
            Auth::Bearer(t) => {
                headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
        }
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    /// Opens the socket and reads CONNECTED.
    pub async fn subscribe(&self, org: &str, auth: &Auth, since: Option<u64>) -> (Socket, Value) {
        let mut socket = self
            .ws(org, auth, since, None)
            .await
            .expect("upgrade accepted");
        let connected = next(&mut socket).await.json();
        assert_eq!(connected["type"], "CONNECTED", "{connected}");
        (socket, connected)
    }
}

/// Whether the black-box tests run on PostgreSQL (`PFA_SYNC_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("PFA_SYNC_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// A fresh database for one test: a SQLite file in `dir`, or a new database of the throwaway
/// PostgreSQL cluster.
pub async fn database_url(dir: &tempfile::TempDir) -> String {
    if on_postgres() {
        ThrowawayPostgres::shared()
            .expect("throwaway PostgreSQL")
            .fresh_database()
            .await
            .expect("a fresh database")
    } else {
        format!("sqlite://{}/test.db", dir.path().display())
    }
}

/// Next text frame (as JSON) or the close, skipping pings/pongs; 5 s at most.
pub async fn next(socket: &mut Socket) -> Frame {
    next_within(socket, Duration::from_secs(5))
        .await
        .expect("a frame within 5 s")
}

pub async fn next_within(socket: &mut Socket, wait: Duration) -> Option<Frame> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(Frame::Ended),
            Ok(Some(Err(_))) => return Some(Frame::Ended),
            Ok(Some(Ok(m))) => m,
        };
        match message {
            Message::Text(text) => {
                return Some(Frame::Json(
                    serde_json::from_str(&text).expect("JSON frame"),
                ))
            }
            Message::Close(Some(frame)) => {
                return Some(Frame::Close(frame.code.into(), frame.reason.to_string()))
            }
            Message::Close(None) => return Some(Frame::Close(1005, String::new())),
            _ => continue,
        }
    }
}

/// Next sync event (skips HEARTBEAT frames).
pub async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let value = next(socket).await.json();
        if value["type"] != "HEARTBEAT" {
            return value;
        }
    }
}

/// Reads until the socket closes; returns the close code (1006 when it just ended).
pub async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match next_within(socket, Duration::from_secs(15))
            .await
            .expect("closes within 15 s")
        {
            Frame::Close(code, _) => return code,
            Frame::Ended => return 1006,
            Frame::Json(_) => continue,
        }
    }
}

pub async fn send_text(socket: &mut Socket, text: String) {
    socket.send(Message::Text(text.into())).await.expect("send");
}

/// A card-shaped event for `job`.
pub fn event(kind: &str, job: &str) -> Value {
    let mut e = serde_json::json!({"type": kind, "jobId": job, "message": format!("{kind} {job}")});
    if kind == "SYNC_PROGRESS" {
        e["progress"] = 50.into();
    }
    e
}
