//! `/health` and the plain GET on the WebSocket route, against the real server.

mod common;

use common::TestServer;
use serde_json::Value;

#[tokio::test]
async fn health_reports_ok_with_version_uptime_and_database() {
    let server = TestServer::spawn().await;
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptimeSeconds"].is_u64());
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn health_is_503_when_the_database_fails() {
    let server = TestServer::spawn().await;
    server.store.close().await;
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"], "unavailable");
}

#[tokio::test]
async fn plain_get_on_the_websocket_route_is_426_with_an_explanation() {
    let server = TestServer::spawn().await;
    let response = server
        .client
        .get(server.url("/api/ws/sync/org-rio"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    let text = response.text().await.unwrap();
    assert!(text.contains("WebSocket endpoint"), "{text}");
    assert_eq!(text.trim_end().lines().count(), 1);
}

#[tokio::test]
async fn oversized_request_bodies_are_refused_with_413() {
    let server = TestServer::spawn_with(|c| c.body_limit = 1024).await;
    let response = server
        .client
        .post(server.url("/health"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let server = TestServer::spawn().await;
    let raw = reqwest::Client::builder().build().unwrap();
    for encoding in ["gzip", "br"] {
        let response = raw
            .get(server.url("/"))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], encoding);
    }
}

#[tokio::test]
async fn the_start_page_is_server_rendered() {
    let server = TestServer::spawn().await;
    let html = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("PFA Sync"));
    assert!(html.contains("data-testid=\"check-health\""));
    assert!(
        html.contains("/pkg/pfa-sync.js"),
        "hydration script is linked"
    );
}

#[tokio::test]
async fn unknown_pages_are_404() {
    let server = TestServer::spawn().await;
    let response = server
        .client
        .get(server.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn shutdown_token_stops_the_server() {
    let server = TestServer::spawn().await;
    server.shutdown.cancel();
    let result = tokio::time::timeout(std::time::Duration::from_secs(15), server.task)
        .await
        .expect("stops within the grace period")
        .unwrap();
    assert!(result.is_ok());
}
