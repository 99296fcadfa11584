//! Listeners: the accept loop of each bound socket, and what comes
//! between the accept and MQTT on listeners that are not plain TCP: the
//! PROXY header, the TLS handshake, the WebSocket upgrade.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Listener, TransportKind};
use crate::connection;
use crate::proxy;
use crate::shared::Shared;
use crate::tls::{self, Tls};
use crate::tls_stream;
use crate::transport::{BoxedStream, Io, Origin, Stream};
use crate::ws;

/// A bound listener's settings, and its TLS configuration (kept here so
/// that a reload reaches it).
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub config: Listener,
    pub tls: Option<Tls>,
    /// Its place in the configuration's listeners (what the authenticator
    /// is told).
    pub index: u16,
}

impl Endpoint {
    /// Reads the listener's certificate files.
    pub fn new(config: Listener, index: usize) -> std::io::Result<Endpoint> {
        let tls = config.tls.as_ref().map(Tls::load).transpose()?;
        let index = u16::try_from(index)
            .ok()
            .filter(|&i| i != connection::IN_PROCESS)
            .ok_or_else(|| std::io::Error::other("more than 65534 listeners"))?;
        Ok(Endpoint { config, tls, index })
    }

    /// Plain TCP: the connection task runs on the socket itself.
    fn is_plain(&self) -> bool {
        self.config.transport == TransportKind::Tcp && !self.config.proxy_protocol
    }
}

pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    endpoint: Arc<Endpoint>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                if !shared.listener_admit(endpoint.index) {
                    tracing::info!(%peer, listener = %endpoint.config.describe(endpoint.config.bind), "refused: the listener's max_connections are open");
                    continue;
                }
                let accepted = crate::clock::now();
                shared.life().task_started();
                tracing::debug!(%peer, "connection");
                // The task counts itself out of `active` when it ends.
                // Small packets must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                if endpoint.is_plain() {
                    tokio::spawn(connection::run(
                        shared.clone(),
                        stream,
                        permit,
                        accepted,
                        endpoint.index,
                    ));
                } else {
                    tokio::spawn(wrapped(
                        shared.clone(),
                        stream,
                        peer,
                        permit,
                        endpoint.clone(),
                        accepted,
                    ));
                }
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

/// A connection on a listener that is not plain TCP: its handshakes, within
/// the CONNECT timeout from the accept, in a task of their own that then
/// spawns the connection task (so the handshakes' state, and this task's,
/// is gone before the connection's loop starts and adds nothing to it).
async fn wrapped(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    endpoint: Arc<Endpoint>,
    accepted: Instant,
) {
    let deadline = accepted + shared.session_config().connect_timeout;
    let max_packet = shared.session_config().max_packet_size as usize;
    let mut shutdown = shared.life().watch();
    let r = tokio::select! {
        r = tokio::time::timeout_at(deadline.into(), setup(tcp, peer, &endpoint, max_packet)) => {
            r.unwrap_or_else(|_| Err("handshake not finished within the CONNECT timeout".to_owned()))
        }
        _ = shutdown.wait_for(|s| *s) => Err("the broker is shutting down".to_owned()),
    };
    match r {
        Ok(stream) => {
            tokio::spawn(connection::run(
                shared,
                stream,
                permit,
                accepted,
                endpoint.index,
            ));
        }
        Err(reason) => {
            tracing::info!(%peer, transport = %endpoint.config.transport, %reason, "connection closed before MQTT");
            shared.listener_left(endpoint.index);
            drop(permit);
            shared.life().task_ended();
        }
    }
}

/// Frame and message limits of a WebSocket listener: an MQTT packet may
/// take the broker's maximum packet size, and a message may hold it with
/// a few more packets besides; the maximum packet size itself applies to
/// the reassembled MQTT packet, as on TCP.
fn ws_limits(max_packet: usize) -> ws::WsLimits {
    let max = max_packet.saturating_add(64 * 1024);
    ws::WsLimits {
        max_message: max,
        max_frame: max,
        max_header_bytes: 8 * 1024,
    }
}

async fn setup(
    mut tcp: TcpStream,
    peer: SocketAddr,
    endpoint: &Endpoint,
    max_packet: usize,
) -> Result<BoxedStream, String> {
    let config = &endpoint.config;
    let mut origin = Origin::peer(Some(peer));
    let mut io: Box<dyn Io> = if config.proxy_protocol {
        let (source, rest) = read_proxy_header(&mut tcp).await?;
        if source.is_some() {
            origin.peer = source;
        }
        Box::new(Prefixed {
            prefix: rest,
            io: tcp,
        })
    } else {
        Box::new(tcp)
    };
    if let Some(t) = &endpoint.tls {
        let s = tls_stream::accept(io, t.config())
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        origin.certificate = tls::peer_identity(s.peer_certificates());
        if t.identity_is_username() {
            if origin.certificate.is_none() {
                return Err(
                    "the client certificate names no one (no CN, no subjectAltName)".into(),
                );
            }
            origin.certificate_is_username = true;
        }
        io = Box::new(s);
    }
    if config.transport.is_websocket() {
        let s = ws::accept(io, &config.path, &ws_limits(max_packet))
            .await
            .map_err(|e| format!("WebSocket upgrade refused: {e}"))?;
        io = Box::new(s);
    }
    Ok(Stream::with_origin(io, origin))
}

/// Reads a PROXY protocol header (v1 or v2); returns the client's address
/// it gives (none for LOCAL and UNKNOWN) and the bytes read past it.
async fn read_proxy_header(tcp: &mut TcpStream) -> Result<(Option<SocketAddr>, BytesMut), String> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        match proxy::parse(&buf) {
            Ok(Some((header, used))) => {
                buf.advance(used);
                return Ok((header.source, buf));
            }
            // parse decides within MAX_HEADER_LEN bytes.
            Ok(None) if buf.len() < proxy::MAX_HEADER_LEN => {}
            Ok(None) => return Err("PROXY header too long".into()),
            Err(e) => return Err(format!("bad PROXY header: {e}")),
        }
        buf.reserve(256);
        match tcp.read_buf(&mut buf).await {
            Ok(0) => return Err("closed within the PROXY header".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the PROXY header: {e}")),
        }
    }
}

/// A stream with bytes already read from it in front.
#[derive(Debug)]
struct Prefixed<S> {
    prefix: BytesMut,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            if self.prefix.is_empty() {
                self.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Reads every TLS listener's certificate, key, CA and CRL files again
/// (see `Broker::reload_certificates`).
pub(crate) fn reload_certificates(
    bound: &[(Arc<Endpoint>, SocketAddr)],
) -> Vec<(String, std::io::Result<()>)> {
    let mut out = Vec::new();
    for (e, a) in bound {
        if let Some(tls) = &e.tls {
            let name = e.config.describe(*a);
            let r = tls.reload();
            match &r {
                Ok(()) => tracing::info!(listener = %name, "certificates reloaded"),
                Err(err) => {
                    tracing::warn!(listener = %name, error = %err, "certificates not reloaded; the old ones stay")
                }
            }
            out.push((name, r));
        }
    }
    out
}

/// The one reload path (SIGHUP and the admin API): certificates and the
/// files of `[auth]` (see `Broker::reload`).
pub(crate) fn reload(
    shared: &Shared,
    bound: &[(Arc<Endpoint>, SocketAddr)],
) -> Vec<(String, std::io::Result<()>)> {
    let mut out = reload_certificates(bound);
    if let Some(s) = shared.security().filter(|s| s.has_files()) {
        let r = s.reload();
        match &r {
            Ok(()) => tracing::info!("[auth] files reloaded"),
            Err(e) => tracing::warn!(error = %e, "[auth] files not reloaded; the old rules stay"),
        }
        out.push(("auth".to_owned(), r.map_err(std::io::Error::other)));
    }
    out
}
