//! The HTTP server's accept loop: at most `max_connections` connections at once (a WebSocket
//! keeps its connection's place until it closes), each served by hyper (HTTP/1.1 with
//! upgrades, HTTP/2) with a timer, so that a client must send a request's headers within
//! `header_timeout` of connecting or of its previous response: a client that trickles a header
//! or idles on a kept-alive connection is closed and cannot hold a file descriptor for long.

use axum::{extract::ConnectInfo, Extension, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use std::{sync::Arc, time::Duration};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::CancellationToken;

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// A connection's place among `max_connections`, in every request's extensions: the
/// WebSocket handler keeps a clone for as long as the socket is open.
#[derive(Debug, Clone)]
pub struct ConnectionPlace(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Serves `router` on `listener` until `shutdown`; then stops accepting and waits for the
/// requests in progress (upgraded sockets are closed by their own tasks).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    loop {
        let place = tokio::select! {
            _ = shutdown.cancelled() => break,
            place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Events are small writes that must leave at once rather than wait for the previous
        // one's ACK (Nagle); see docs/benchmarks.md.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set: {e}");
        }
        let place = ConnectionPlace(Arc::new(place));
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(Extension(ConnectInfo(peer)))
                .layer(Extension(place)),
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
