//! `strata-wsio`: MQTT bytes over WebSocket binary messages. [`WsIo`]
//! turns a tungstenite connection (past its upgrade, server or client
//! side) into one byte stream: what the peer sends in binary messages
//! comes out in order however it cut them [MQTT-6.0.0-2], a text message
//! is an error [MQTT-6.0.0-1], and each write goes out as one binary
//! message. The broker's `ws` listeners and strata-client's `ws`
//! transport both run on it; each does its own upgrade.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_core::Stream as _;
use futures_sink::Sink as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::{self, Message};

/// MQTT bytes over WebSocket binary messages.
///
/// A read hands out the binary messages' bytes in order; a Close from the
/// peer is the end of input, once the close handshake is answered;
/// pings are answered while reading. A write sends its bytes as one
/// binary message; a shutdown sends a Close frame, then closes the
/// stream's sending side.
#[derive(Debug)]
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// What is left of the binary message being read.
    input: Bytes,
    /// No more input: the peer closed, or reading failed.
    eof: bool,
    /// The Close frame of a shutdown went out.
    closed: bool,
}

impl<S> WsIo<S> {
    /// The byte stream inside `ws`, a connection past its upgrade (either
    /// role).
    pub fn new(ws: WebSocketStream<S>) -> WsIo<S> {
        WsIo {
            ws,
            input: Bytes::new(),
            eof: false,
            closed: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.input.is_empty() {
                let n = this.input.len().min(buf.remaining());
                buf.put_slice(&this.input[..n]);
                this.input.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Each poll first sends what tungstenite owes the peer (a
            // pong, the answer to a Close), so it goes out while the
            // other side only reads.
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.input = b,
                Some(Ok(Message::Text(_))) => {
                    // Only binary messages carry MQTT [MQTT-6.0.0-1].
                    this.eof = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message: MQTT is carried in binary messages only",
                    )));
                }
                // After a Close, polled on until the answer is out and
                // the stream ends. (A raw frame is never read.)
                Some(Ok(
                    Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_),
                )) => {}
                Some(Err(e)) => {
                    this.eof = true;
                    return Poll::Ready(Err(io_error(e)));
                }
                None => this.eof = true,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    /// Sends `buf` as one binary message: a connection's writes are whole
    /// batches of packets, and each becomes one message.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(io_error)?;
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(io_error)
    }

    /// The close handshake from this side: a Close frame, then the end of
    /// the stream's sending side. A peer already gone is no error.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closed {
            match ready!(Pin::new(&mut this.ws).poll_close(cx)) {
                Ok(()) => {}
                Err(e) if peer_gone(&e) => {}
                Err(e) => return Poll::Ready(Err(io_error(e))),
            }
            this.closed = true;
        }
        match ready!(Pin::new(this.ws.get_mut()).poll_shutdown(cx)) {
            Err(e) if gone(e.kind()) => Poll::Ready(Ok(())),
            r => Poll::Ready(r),
        }
    }
}

/// Whether `e` says only that the peer is gone or closed already.
fn peer_gone(e: &tungstenite::Error) -> bool {
    match e {
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(ProtocolError::SendAfterClosing) => true,
        tungstenite::Error::Io(e) => gone(e.kind()),
        _ => false,
    }
}

fn gone(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

/// An error of the WebSocket layer as the stream's error, its message
/// the reason.
pub fn io_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closed")
        }
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a WebSocket message of {size} bytes, over the limit of {max_size}"),
            )
        }
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}
