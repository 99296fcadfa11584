//! How the raw bench clients reach the broker: plain TCP (the socket
//! itself, with the kernel's receive timestamps), or TLS, WebSocket and
//! WebSocket over TLS through strata-client's connector.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// One connection's byte stream.
pub(super) enum Wire {
    Tcp(TcpStream),
    /// TLS, WebSocket or WebSocket over TLS, as strata-client opens them.
    Stream(Box<strata_client::Stream>),
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wire::Tcp(_) => "Wire::Tcp",
            Wire::Stream(_) => "Wire::Stream",
        })
    }
}

/// How to open a connection.
#[derive(Debug, Clone)]
pub(super) enum Dial {
    Tcp,
    /// Through strata-client's connector (its transport's handshakes).
    Client(Arc<strata_client::Connector>),
}

impl Dial {
    /// Connects to `addr` and does the transport's handshake.
    pub async fn open(&self, addr: &str) -> io::Result<Wire> {
        Ok(match self {
            Dial::Tcp => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Wire::Tcp(tcp)
            }
            Dial::Client(c) => Wire::Stream(Box::new(c.connect().await.map_err(io::Error::other)?)),
        })
    }
}

impl Wire {
    /// The socket, where the wire is one (for its receive timestamps).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Wire::Tcp(s) => Some(s),
            Wire::Stream(_) => None,
        }
    }

    /// Reads what is there now into `buf`'s spare room, without waiting;
    /// `WouldBlock` when nothing is.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Wire::Tcp(s) => s.try_read_buf(buf),
            Wire::Stream(s) => {
                let mut cx = Context::from_waker(Waker::noop());
                let spare = buf.spare_capacity_mut();
                let mut rb = ReadBuf::uninit(spare);
                match Pin::new(s).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        // SAFETY: poll_read initialised and filled n bytes
                        // of the spare capacity.
                        unsafe { buf.set_len(buf.len() + n) };
                        Ok(n)
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Waits until a read may find something (TCP); a stream says so by
    /// its read itself.
    pub async fn readable(&mut self) -> io::Result<()> {
        match self {
            Wire::Tcp(s) => s.readable().await,
            Wire::Stream(_) => Ok(()),
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Stream(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Stream(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_flush(cx),
            Wire::Stream(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Stream(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
