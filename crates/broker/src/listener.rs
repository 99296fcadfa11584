//! Listeners: the accept loop of each bound socket.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::connection;
use crate::shared::Shared;

pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    permits: Arc<Semaphore>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                shared.life().task_started();
                tracing::debug!(%peer, "connection");
                // The task counts itself out of `active` when it ends.
                // Small packets must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::run(shared.clone(), stream, permit));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
