//! Opening a connection over the [`Transport`] of the options: a
//! [`Connector`] holds what every attempt needs (the TLS configuration is
//! built once, from the files as they were at the first connection), and
//! [`Stream`] is the byte stream the connection task reads and writes,
//! whatever carries it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::client::Error;
use crate::options::{Options, Transport};
use crate::tls;
use crate::ws;
use strata_wsio::WsIo;

/// TLS settings of one client: the configuration and the name to verify.
#[derive(Debug, Clone)]
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Tls {
    fn new(o: &crate::options::TlsOptions, address: &str, alpn: &[&[u8]]) -> Result<Tls, Error> {
        Ok(Tls {
            config: tls::client_config(o, alpn)?,
            name: tls::server_name(o, address)?,
        })
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        address: &str,
    ) -> Result<TlsStream<TcpStream>, Error> {
        TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|source| Error::Tls {
                address: address.to_owned(),
                source,
            })
    }
}

/// How each connection attempt gets from TCP to an MQTT byte stream.
#[derive(Debug)]
enum Layers {
    Tcp,
    Tls(Tls),
    Ws { path: String },
    Wss { path: String, tls: Tls },
}

/// Opens connections to the server of one [`Options`]: what the client
/// does for each connection attempt, also for code that speaks MQTT
/// itself over the [`Stream`] (a load generator, say).
#[derive(Debug)]
pub struct Connector {
    address: String,
    layers: Layers,
}

impl Connector {
    /// Checks the transport and reads its files.
    pub fn new(o: &Options) -> Result<Connector, Error> {
        let address = o.address.clone();
        let layers = match &o.transport {
            Transport::Tcp => Layers::Tcp,
            Transport::Tls(t) => Layers::Tls(Tls::new(t, &address, &[tls::ALPN_MQTT])?),
            Transport::Ws { path } => Layers::Ws { path: path.clone() },
            // HTTP comes first inside this TLS: an ALPN of `mqtt` would
            // be wrong, and `http/1.1` is refused by a server that names
            // only `mqtt`; a client that names none is served by both.
            Transport::Wss { path, tls } => Layers::Wss {
                path: path.clone(),
                tls: Tls::new(tls, &address, &[])?,
            },
        };
        Ok(Connector { address, layers })
    }

    /// One connection attempt, up to where MQTT bytes can flow.
    pub async fn connect(&self) -> Result<Stream, Error> {
        let tcp = TcpStream::connect(&self.address)
            .await
            .map_err(|source| Error::Connect {
                address: self.address.clone(),
                source,
            })?;
        // Packets go out as soon as they are written; the connection task
        // already batches what is ready.
        tcp.set_nodelay(true)?;
        Ok(match &self.layers {
            Layers::Tcp => Stream(Layer::Tcp(tcp)),
            Layers::Tls(tls) => Stream(Layer::Tls(Box::new(
                tls.handshake(tcp, &self.address).await?,
            ))),
            Layers::Ws { path } => Stream(Layer::Ws(Box::new(
                ws::upgrade(tcp, "ws", &self.address, path).await?,
            ))),
            Layers::Wss { path, tls } => {
                let secure = tls.handshake(tcp, &self.address).await?;
                Stream(Layer::Wss(Box::new(
                    ws::upgrade(secure, "wss", &self.address, path).await?,
                )))
            }
        })
    }
}

impl Connector {
    /// An error before the CONNACK, as the caller should see it: with TLS
    /// 1.3 the server judges the client's certificate after the client's
    /// handshake is done, so a refusal arrives as an alert in place of the
    /// CONNACK. That is a TLS error, not an I/O one.
    pub(crate) fn refusal(&self, e: Error) -> Error {
        match e {
            Error::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
                Error::Tls {
                    address: self.address.clone(),
                    source: e,
                }
            }
            e => e,
        }
    }
}

/// The connection's byte stream. An enum rather than a boxed trait
/// object: the TCP path stays a direct call to `TcpStream`, and the
/// larger layers are boxed so that the enum stays small.
#[derive(Debug)]
pub struct Stream(Layer);

#[derive(Debug)]
enum Layer {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WsIo<TcpStream>>),
    Wss(Box<WsIo<TlsStream<TcpStream>>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Layer::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Layer::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Layer::Ws(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Layer::Wss(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Layer::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Layer::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Layer::Ws(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Layer::Wss(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Layer::Tcp(s) => Pin::new(s).poll_flush(cx),
            Layer::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
            Layer::Ws(s) => Pin::new(&mut **s).poll_flush(cx),
            Layer::Wss(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Layer::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Layer::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Layer::Ws(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Layer::Wss(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
