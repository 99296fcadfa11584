//! The transport seam: a connection task runs over any [`Transport`], a
//! byte stream it waits on by readiness and reads and writes without
//! blocking. TCP implements it directly (readiness is the socket's); any
//! tokio `AsyncRead + AsyncWrite` stream (an in-memory duplex, a TLS or
//! WebSocket stream) fits through [`Stream`], which turns polled reads and
//! writes into readiness. Protocol code never sees which it is.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::util::lock;

/// A byte stream a connection task runs over. Methods that may not make
/// progress say so with `WouldBlock`; the `poll_*_ready` methods wake the
/// task when they can.
pub trait Transport: Send + 'static {
    /// Ready once a read may find input (or the end of it).
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads what is there into `buf`, which has `room` bytes to spare.
    /// `Ok(0)` is the end of input; `WouldBlock` when there was nothing
    /// after all.
    fn read_some(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<usize>;

    /// Ready once a write may take bytes again (and what was written
    /// earlier is on its way: see [`Transport::wants_write`]).
    fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Whether bytes a write took still wait in the transport to go out
    /// (a TLS record not flushed yet): the task then waits for
    /// [`Transport::poll_write_ready`] as it does for its own unsent
    /// output. TCP has no such bytes.
    fn wants_write(&self) -> bool {
        false
    }

    /// Writes what the transport takes of `buf` now; `WouldBlock` when
    /// it takes nothing.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Closes the sending side.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Who the transport says the client is.
    fn origin(&self) -> Origin;
}

/// What a transport learnt of its client before MQTT began: the address
/// (the socket's, or the one a PROXY header gave) and a verified client
/// certificate's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub peer: Option<SocketAddr>,
    /// The identity (CN, or first subjectAltName) of the certificate the
    /// client presented and the listener verified.
    pub certificate: Option<Arc<str>>,
    /// The listener makes `certificate` the username
    /// (`use_identity_as_username`).
    pub certificate_is_username: bool,
}

impl Origin {
    pub fn peer(peer: Option<SocketAddr>) -> Origin {
        Origin {
            peer,
            ..Origin::default()
        }
    }
}

/// Any byte stream a [`Stream`] may carry: an in-memory duplex, a TLS or
/// WebSocket stream. Connections over streams share one [`Transport`]
/// type, `Stream<Box<dyn Io>>`, and so one copy of the connection task's
/// code.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The transport of every connection that is not plain TCP.
pub type BoxedStream = Stream<Box<dyn Io>>;

impl Transport for TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    /// A read that did not fill `buf` drained the socket: its readiness is
    /// cleared with it, as a `WouldBlock` would clear it, which saves the
    /// read that would only say so (half the reads of a busy connection).
    /// tokio clears it only if no new readiness came in meanwhile, so
    /// nothing that arrives after the read goes unnoticed.
    fn read_some(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<usize> {
        let mut got = 0;
        let r = self.try_io(tokio::io::Interest::READABLE, || {
            got = self.try_read_buf(buf)?;
            if got == 0 || got == room {
                Ok(got)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            r => r,
        }
    }

    fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(self), cx)
    }

    fn origin(&self) -> Origin {
        Origin::peer(TcpStream::peer_addr(self).ok())
    }
}

/// A polled stream as a [`Transport`]: input is read ahead into a buffer
/// of its own (made when input comes, dropped when empty); the stream is
/// always polled with wakers of its own that wake the task that last
/// waited on it, so a poll outside the task's wait (a last look for a
/// DISCONNECT, a write) never takes the task's registration away, and a
/// write that would block, or bytes a write took but could not flush yet,
/// mark it as waiting to write.
#[derive(Debug)]
pub struct Stream<S> {
    io: S,
    /// The rest, on the heap: the connection task holds the stream for
    /// its whole life, and tokio rounds the task up to whole 128-byte
    /// lines.
    s: Box<StreamState>,
}

#[derive(Debug)]
struct StreamState {
    origin: Origin,
    input: BytesMut,
    eof: bool,
    readable: Arc<Wakeup>,
    /// A write returned `Pending`: writable again once `writable` rang.
    blocked: bool,
    /// A write took bytes that its flush could not send yet.
    unflushed: bool,
    writable: Arc<Wakeup>,
}

/// Rung by the stream when it may make progress; wakes the task that last
/// waited for it.
#[derive(Debug, Default)]
struct Wakeup {
    rung: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wakeup {
    /// Keeps `cx`'s waker for the next ring.
    fn wait(&self, cx: &Context<'_>) {
        let mut task = lock(&self.task);
        if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *task = Some(cx.waker().clone());
        }
    }
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Set before the task is looked up: a task that stores its waker
        // and then looks at the flag misses neither.
        self.rung.store(true, Ordering::Release);
        if let Some(w) = lock(&self.task).take() {
            w.wake();
        }
    }
}

/// Bytes read ahead at once.
const READ_AHEAD: usize = 4096;

impl<S: AsyncRead + Unpin> Stream<S> {
    pub fn new(io: S, peer: Option<SocketAddr>) -> Stream<S> {
        Stream::with_origin(io, Origin::peer(peer))
    }

    /// A stream whose client the listener identified.
    pub fn with_origin(io: S, origin: Origin) -> Stream<S> {
        Stream {
            io,
            s: Box::new(StreamState {
                origin,
                input: BytesMut::new(),
                eof: false,
                readable: Arc::default(),
                blocked: false,
                unflushed: false,
                writable: Arc::default(),
            }),
        }
    }

    /// Reads what the stream has now into `input`, with the stream's own
    /// waker: ready with whether anything (or the end) came.
    fn read_ahead(&mut self) -> Poll<io::Result<()>> {
        let waker = Waker::from(self.s.readable.clone());
        let mut cx = Context::from_waker(&waker);
        let mut chunk = [0u8; READ_AHEAD];
        let mut rb = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                if rb.filled().is_empty() {
                    self.s.eof = true;
                } else {
                    self.s.input.extend_from_slice(rb.filled());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Stream<S> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.s.input.is_empty() || self.s.eof {
            return Poll::Ready(Ok(()));
        }
        self.s.readable.wait(cx);
        self.read_ahead()
    }

    fn read_some(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<usize> {
        if self.s.input.is_empty() && !self.s.eof {
            // Called without a wait first (a last look for a DISCONNECT):
            // what the stream has now.
            match self.read_ahead() {
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        if self.s.input.is_empty() {
            return if self.s.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = room.min(self.s.input.len());
        buf.extend_from_slice(&self.s.input.split_to(n));
        if self.s.input.is_empty() {
            // An idle connection holds no buffer.
            self.s.input = BytesMut::new();
        }
        Ok(n)
    }

    fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.s.blocked && !self.s.unflushed {
            return Poll::Ready(Ok(()));
        }
        self.s.writable.wait(cx);
        if self.s.unflushed {
            let waker = Waker::from(self.s.writable.clone());
            match Pin::new(&mut self.io).poll_flush(&mut Context::from_waker(&waker)) {
                Poll::Ready(Ok(())) => self.s.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.s.blocked && !self.s.writable.rung.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        self.s.blocked = false;
        Poll::Ready(Ok(()))
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.s.writable.rung.store(false, Ordering::Release);
        let waker = Waker::from(self.s.writable.clone());
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut self.io).poll_write(&mut cx, buf) {
            Poll::Ready(Ok(n)) => {
                // A stream that buffers (TLS) sends on flush; what it
                // cannot send yet keeps the task waiting to write.
                match Pin::new(&mut self.io).poll_flush(&mut cx) {
                    Poll::Ready(Ok(())) => self.s.unflushed = false,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => self.s.unflushed = true,
                }
                Ok(n)
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                self.s.blocked = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }

    fn wants_write(&self) -> bool {
        self.s.unflushed
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn origin(&self) -> Origin {
        self.s.origin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::counting_waker;

    #[test]
    fn a_blocked_write_wakes_the_task_once_the_reader_reads() {
        let (a, mut b) = tokio::io::duplex(8);
        let mut s = Stream::new(a, None);
        assert_eq!(s.try_write(b"12345678").ok(), Some(8));
        assert_eq!(
            s.try_write(b"9").map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(s.poll_write_ready(&mut cx).is_pending());
        // The reader takes the bytes: the stream becomes writable.
        let mut got = [0u8; 8];
        let mut rb = ReadBuf::new(&mut got);
        assert!(Pin::new(&mut b).poll_read(&mut cx, &mut rb).is_ready());
        assert_eq!(count.count(), 1, "the waiting task was woken");
        assert!(matches!(s.poll_write_ready(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(s.try_write(b"9").ok(), Some(1));
    }

    #[test]
    fn input_is_read_ahead_and_handed_out_within_the_room_given() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = Stream::new(a, None);
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(s.poll_read_ready(&mut cx).is_pending());
        assert!(Pin::new(&mut b).poll_write(&mut cx, b"hello").is_ready());
        assert!(s.poll_read_ready(&mut cx).is_ready());
        let mut buf = BytesMut::new();
        assert_eq!(s.read_some(&mut buf, 3).ok(), Some(3));
        assert_eq!(s.read_some(&mut buf, 3).ok(), Some(2));
        assert_eq!(&buf[..], b"hello");
        assert_eq!(
            s.read_some(&mut buf, 3).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        drop(b);
        assert!(s.poll_read_ready(&mut cx).is_ready());
        assert_eq!(s.read_some(&mut buf, 3).ok(), Some(0), "the end of input");
    }

    /// Takes every write, and sends it only on the second flush.
    #[derive(Debug, Default)]
    struct SlowFlush {
        flushes: usize,
        sent: bool,
    }

    impl AsyncRead for SlowFlush {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for SlowFlush {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            if self.flushes < 2 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.sent = true;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn bytes_a_flush_could_not_send_keep_the_task_waiting_to_write() {
        let mut s = Stream::new(SlowFlush::default(), None);
        assert_eq!(s.try_write(b"CONNACK").ok(), Some(7));
        assert!(s.wants_write(), "taken but not flushed");
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(s.poll_write_ready(&mut cx), Poll::Ready(Ok(()))));
        assert!(s.io.sent && !s.wants_write());
        assert_eq!(count.count(), 0);
    }

    #[test]
    fn a_read_without_a_wait_first_finds_what_the_stream_has() {
        // A last look for a DISCONNECT reads the stream itself, not only
        // what was read ahead.
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = Stream::new(a, None);
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(s.poll_read_ready(&mut cx).is_pending());
        let mut other_cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            Pin::new(&mut b)
                .poll_write(&mut other_cx, &[0xE0, 0])
                .is_ready()
        );
        assert_eq!(count.count(), 1, "the waiting task was woken");
        let mut buf = BytesMut::new();
        assert_eq!(s.read_some(&mut buf, 64).ok(), Some(2));
        assert_eq!(&buf[..], &[0xE0, 0]);
        // The task is still the one woken for what comes next.
        assert!(s.poll_read_ready(&mut cx).is_pending());
        assert!(Pin::new(&mut b).poll_write(&mut other_cx, b"x").is_ready());
        assert_eq!(count.count(), 2);
    }
}
