//! Connection limits against the real server: the header timeout (half-sent headers, idle
//! kept-alive connections) and the cap on connections served at once.

mod common;

use common::TestServer;
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Whether the server has closed `stream` (end of stream or a reset), reading and dropping
/// whatever it sent first; false if it is still open after `wait`.
async fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A client that keeps no idle connection (which would hold one of the server's places).
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn health_within(server: &TestServer, limit: Duration) -> Duration {
    let started = Instant::now();
    let response = unpooled()
        .get(server.url("/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let took = started.elapsed();
    assert!(took < limit, "/health took {took:?}");
    took
}

#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout_while_the_server_serves_others() {
    let server = TestServer::spawn_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut slow = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    health_within(&server, Duration::from_millis(500)).await;
    let started = Instant::now();
    for stream in &mut slow {
        assert!(
            closed_by_server(stream, Duration::from_secs(5)).await,
            "a half-sent header is still open after {:?}",
            started.elapsed()
        );
    }
    health_within(&server, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::spawn_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        !closed_by_server(&mut stream, Duration::from_millis(300)).await,
        "kept alive at first"
    );
    assert!(closed_by_server(&mut stream, Duration::from_secs(3)).await);
}

/// A request that gets no answer within 700 ms: the server is at its connection limit.
async fn not_served(server: &TestServer) {
    let waiting = unpooled()
        .get(server.url("/health"))
        .timeout(Duration::from_millis(700))
        .send()
        .await;
    assert!(waiting.is_err(), "served beyond the limit: {waiting:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = TestServer::spawn_with(|c| c.max_connections = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    not_served(&server).await;
    drop(held);
    health_within(&server, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // An open WebSocket keeps its connection's place.
    let viewer = common::Auth::Bearer(server.token("viewer", &[]).await);
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(server.subscribe("org-rio", &viewer, None).await.0);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    not_served(&server).await;
    drop(sockets);
    health_within(&server, Duration::from_secs(3)).await;
}
