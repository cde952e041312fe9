//! Test helpers: the real server on port 0 with a fresh SQLite file in a temp folder.
#![allow(dead_code)]

use pfa_sync::server::{config::Config, Application};
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub shutdown: CancellationToken,
    pub store: pfa_sync::server::store::Store,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        pfa_sync::server::telemetry::init_for_tests();
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("test.db");
        let mut config = Config::for_tests(format!("sqlite://{}", db.display()));
        adjust(&mut config);
        let app = Application::build(config).await.expect("server builds");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let store = app.state().store.clone();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            base: format!("http://{addr}"),
            shutdown,
            store,
            task,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}
