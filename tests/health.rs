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
    assert_eq!(
        body["store"],
        if common::on_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    assert!(
        body["instance"].as_str().unwrap().starts_with("instance-"),
        "{body}"
    );
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

/// A site folder as `make site-release` leaves it: `app.wasm` with its brotli and gzip copies
/// beside it (cargo-leptos `--precompress`, zopfli), and `app.css` without any.
fn precompressed_site() -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::write(
        pkg.join("app.wasm"),
        b"\0asm plain bytes of the module".repeat(64),
    )
    .unwrap();
    // The server sends these files as they are; what is in them is not its concern.
    std::fs::write(pkg.join("app.wasm.br"), b"brotli copy").unwrap();
    std::fs::write(pkg.join("app.wasm.gz"), b"gzip copy").unwrap();
    std::fs::write(pkg.join("app.css"), b"body { margin: 0 }\n".repeat(64)).unwrap();
    site
}

#[tokio::test]
async fn precompressed_assets_are_sent_as_they_are_in_the_encoding_the_client_prefers() {
    let site = precompressed_site();
    let root = site.path().to_owned();
    let server = TestServer::spawn_with(move |c| c.site_root = root).await;
    let get = |path: &'static str, accept: Option<&'static str>| {
        let mut request = server.client.get(server.url(path));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path} with {accept:?}");
            let headers = response.headers().clone();
            (headers, response.bytes().await.unwrap())
        }
    };
    // What Chromium sends: the brotli copy, byte for byte (not compressed a second time).
    for accept in ["gzip, deflate, br, zstd", "br"] {
        let (headers, body) = get("/pkg/app.wasm", Some(accept)).await;
        assert_eq!(headers["content-encoding"], "br", "{accept}");
        assert_eq!(headers["content-type"], "application/wasm");
        assert_eq!(&body[..], b"brotli copy");
    }
    let (headers, body) = get("/pkg/app.wasm", Some("gzip")).await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(&body[..], b"gzip copy");
    // No encoding accepted: the file itself.
    let (headers, body) = get("/pkg/app.wasm", None).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(
        body,
        std::fs::read(site.path().join("pkg/app.wasm")).unwrap()
    );
    // A file without copies (a debug build's site) is compressed as it is sent.
    let (headers, body) = get("/pkg/app.css", Some("br")).await;
    assert_eq!(headers["content-encoding"], "br");
    assert!(body.len() < 64 * 19, "{} bytes", body.len());
}

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused_with_a_pointer_to_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/one.db", dir.path().display());
    let config = || pfa_sync::server::config::Config::for_tests(url.clone());
    let first = pfa_sync::server::Application::build(config())
        .await
        .expect("the first server starts");
    let refused = pfa_sync::server::Application::build(config())
        .await
        .err()
        .expect("the second is refused")
        .to_string();
    assert!(
        refused.contains("already serving the SQLite database"),
        "{refused}"
    );
    assert!(refused.contains("postgres://"), "{refused}");
    // The CLI's short commands still work beside the server.
    let store = pfa_sync::server::store::Store::connect(&url).await.unwrap();
    assert_eq!(store.user_count().await.unwrap(), 4, "the demo users");
    drop(first);
    pfa_sync::server::Application::build(config())
        .await
        .expect("once the first has stopped, another may start");
}
