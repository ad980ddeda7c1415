//! The accept loop: the router behind hyper with the bounds `axum::serve` leaves open. A
//! client gets `header_timeout_secs` to send its headers (without a timer hyper waits forever,
//! so a thousand half-open sockets held the server's file descriptors), at most
//! `max_connections` are served at once (further ones wait in the listen backlog), and a
//! shutdown lets running requests finish for the grace period.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    Router,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt as _;

use crate::config::ServerConfig;

/// Serves `router` on `listener` until `shutdown` resolves, then gives open connections
/// `server.shutdown_grace_secs` to finish.
pub async fn serve(listener: TcpListener, router: Router, server: &ServerConfig, shutdown: impl Future<Output = ()>) {
    let connections = Arc::new(Semaphore::new(server.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(server.header_timeout_secs.max(1)));
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before accept: wait a
                    // little instead of spinning.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(router.oneshot(req.map(Body::new)).await.unwrap_or_else(|never| match never {}))
            }
        });
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, "connection ended: {err}");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = Duration::from_secs(server.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {} s: stopped", grace.as_secs());
    }
}
