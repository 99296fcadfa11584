//! A server-side TLS stream on rustls's unbuffered API
//! (`UnbufferedServerConnection`), so that the stream, not rustls, owns
//! the buffers, and an idle connection holds none.
//!
//! # Memory
//!
//! Three buffers, each made when bytes come and dropped (an empty
//! `BytesMut`, no capacity) as soon as it is empty again:
//!
//! - `incoming`: TLS bytes read from the socket, until rustls has
//!   discarded them (every complete record consumed, nothing partial
//!   left). A read that finds `incoming` empty goes to a stack buffer of
//!   [`READ_CHUNK`] bytes, so a read that finds nothing allocates
//!   nothing. At most [`MAX_INCOMING`] bytes.
//! - `outgoing`: TLS bytes for the socket (handshake messages, alerts,
//!   encrypted writes) until the socket took them. Writes wait once it
//!   holds [`MAX_OUTGOING`] bytes and the socket takes none.
//! - `plaintext`: decrypted bytes the caller has not read yet (the rest of
//!   a record larger than the caller's read). At most one record in the
//!   read path.
//!
//! An idle connection therefore holds 0 bytes of buffers. What stays is
//! this struct (1,272 bytes on x86-64, most of it rustls's connection
//! inline) and rustls's own heap: the state machine, the record keys, the
//! handshake deframer's table of 16 spans, the client's certificates. With
//! rustls 0.23.48 on ring, measured with a counting allocator as the bytes
//! freed when an idle `Box<dyn Io>` of it drops: 3,461 bytes in all for
//! TLS 1.3 (3,357 for TLS 1.2), about 500 more with a client
//! certificate. tokio-rustls's stream over the same connection: 7,485
//! bytes, 4,096 of them its deframer buffer.
//!
//! # Wakers
//!
//! `poll_read` and the write side (`poll_write`, `poll_flush`,
//! `poll_shutdown`) may be called from different tasks with different
//! wakers, and the socket keeps one waker per direction. So the read
//! side polls the socket's write side only while no writer waits on it
//! (`writer_parked`): else it would take the writer's registration away
//! and the writer would never wake. What the read side cannot send stays
//! queued in `outgoing` for the writer. The write side never reads the
//! socket; the TLS records it finds already read (those a `poll_read`
//! left when it returned data) it decrypts into `plaintext`, and a reader
//! never waits while any are there (`poll_read` returns `Pending` only
//! once rustls has used all it could of `incoming`).

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

#[cfg(test)]
mod tests;

/// The most one read takes from the socket into an empty `incoming` (a
/// stack buffer); reads that add to a partial record go straight into
/// `incoming`'s spare capacity.
const READ_CHUNK: usize = 4096;

/// The largest TLS record rustls accepts: a 5-byte header and
/// 2^14 + 2048 bytes of ciphertext (RFC 5246 6.2.3). rustls refuses a
/// header that announces more.
const MAX_RECORD: usize = 5 + 16_384 + 2_048;

/// The most TLS input held: a handshake message of the largest size
/// rustls allows (64 KiB), kept whole while it is joined from its
/// records, and the record after it. Past this a read is an error.
const MAX_INCOMING: usize = 0x1_0000 + MAX_RECORD;

/// Encrypted bytes held for the socket: past this a write waits for the
/// socket instead of encrypting more.
const MAX_OUTGOING: usize = 64 * 1024;

/// The most plaintext one write encrypts: one full record.
const MAX_TAKE: usize = 16 * 1024;

/// More than a record's header, explicit nonce, content type and tag.
const RECORD_OVERHEAD: usize = 64;

/// A server-side TLS stream over `S` on rustls's unbuffered API: it holds
/// no buffer while idle.
pub(crate) struct TlsStream<S> {
    io: S,
    conn: UnbufferedServerConnection,
    /// TLS bytes read from `io`; rustls discards them from the front.
    incoming: BytesMut,
    /// TLS bytes for `io`, in the order they go.
    outgoing: BytesMut,
    /// Decrypted bytes the caller has not read yet.
    plaintext: BytesMut,
    /// `io` reached the end of its input.
    eof: bool,
    /// The client's close_notify came: reads are at their end.
    peer_closed: bool,
    /// `poll_shutdown` was called: no more writes, close_notify goes out.
    closing: bool,
    /// close_notify is in `outgoing` (or gone).
    close_queued: bool,
    /// The last write-side call returned `Pending` from `io`'s write side,
    /// which holds the writer's waker: the read side leaves it alone.
    writer_parked: bool,
    /// The TLS error that ended the connection.
    failed: Option<rustls::Error>,
}

/// Runs the server handshake on `io` with `config`; the stream after it.
///
/// Returns once the handshake is complete and everything rustls had to
/// send (the last flight, TLS 1.3 session tickets) is written. A refused
/// handshake sends the alert rustls chose before the error returns.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    config: Arc<ServerConfig>,
) -> io::Result<TlsStream<S>> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut s = TlsStream {
        io,
        conn,
        incoming: BytesMut::new(),
        outgoing: BytesMut::new(),
        plaintext: BytesMut::new(),
        eof: false,
        peer_closed: false,
        closing: false,
        close_queued: false,
        writer_parked: false,
        failed: None,
    };
    std::future::poll_fn(|cx| s.poll_handshake(cx)).await?;
    Ok(s)
}

/// What a step of rustls's state machine is for.
enum Job<'a, 'b> {
    /// The handshake or a shutdown: no plaintext in or out.
    Drive,
    /// A read: plaintext goes to the caller's buffer first.
    Read(&'a mut ReadBuf<'b>),
    /// A write: this plaintext is to be encrypted.
    Write(&'a [u8]),
}

/// What a step came to.
enum Turn {
    /// Something was done (bytes queued, plaintext taken, a close noted):
    /// step again.
    Again,
    /// rustls has done all it can with the input there is: it needs more
    /// (during the handshake), or there is nothing to do but wait for it.
    NeedInput,
    /// The plaintext of the write, this many bytes, is in `outgoing`.
    Wrote(usize),
    /// Both sides sent close_notify.
    Closed,
}

/// Why a step failed.
enum Failure {
    /// A TLS error: the connection is over, with an alert if rustls asks.
    Tls(rustls::Error),
    /// The socket's error.
    Io(io::Error),
}

impl<S> TlsStream<S> {
    /// The certificate chain the client presented and the verifier
    /// accepted, the client's own certificate first.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The protocol chosen by ALPN, if the client offered one we take.
    #[cfg_attr(not(test), expect(dead_code, reason = "only `mqtt` is offered"))]
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The capacity of every buffer the stream owns.
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.outgoing.capacity() + self.plaintext.capacity()
    }

    /// Records the error that ends the connection, and moves the alert
    /// rustls queued for it into `outgoing`. Nothing is read after it.
    fn fail(&mut self, e: rustls::Error) -> io::Error {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
            // While rustls has bytes to send, a turn hands them out (as
            // `EncodeTlsData`, after any plaintext) before it looks at the
            // input again; looking at it again could fail once more and
            // queue a second fatal alert, which rustls asserts never
            // happens. So: only while it has bytes to send, and no
            // `TransmitTlsData`, which comes after a look at the input.
            let mut turns = 0;
            while self.conn.wants_write() && turns < 16 {
                turns += 1;
                let UnbufferedStatus { mut discard, state } =
                    self.conn.process_tls_records(&mut self.incoming);
                let more = match state {
                    Ok(ConnectionState::EncodeTlsData(mut data)) => {
                        append(&mut self.outgoing, 0, |out| data.encode(out), encode_needs).is_ok()
                    }
                    Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                        while let Some(Ok(record)) = traffic.next_record() {
                            discard += record.discard;
                            self.plaintext.extend_from_slice(record.payload);
                        }
                        true
                    }
                    _ => false,
                };
                self.incoming.advance(discard.min(self.incoming.len()));
                if !more {
                    break;
                }
            }
            self.incoming = BytesMut::new();
        }
        tls_error(e)
    }

    /// The error of a failed connection.
    fn failure(&self) -> Option<io::Error> {
        self.failed.clone().map(tls_error)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// One turn of rustls's state machine on `incoming`, its state handled
    /// and its discard applied.
    fn step(&mut self, cx: &mut Context<'_>, job: &mut Job<'_, '_>) -> Result<Turn, Failure> {
        let UnbufferedStatus { mut discard, state } =
            self.conn.process_tls_records(&mut self.incoming);
        let turn = match state {
            Err(e) => Err(Failure::Tls(e)),
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                let mut turn = Ok(Turn::Again);
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => {
                            // rustls: added to the status's discard before
                            // the discard is done.
                            discard += record.discard;
                            let mut payload = record.payload;
                            if let Job::Read(buf) = job
                                && self.plaintext.is_empty()
                            {
                                let n = payload.len().min(buf.remaining());
                                buf.put_slice(&payload[..n]);
                                payload = &payload[n..];
                            }
                            self.plaintext.extend_from_slice(payload);
                        }
                        Err(e) => {
                            turn = Err(Failure::Tls(e));
                            break;
                        }
                    }
                }
                turn
            }
            Ok(ConnectionState::EncodeTlsData(mut data)) => {
                append(&mut self.outgoing, 0, |out| data.encode(out), encode_needs)
                    .map(|()| Turn::Again)
                    .map_err(|e| Failure::Tls(rustls::Error::General(e.to_string())))
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                // What the socket does not take now stays in `outgoing`,
                // ahead of anything queued later, and goes out exactly
                // once: done() may be called. The read side does not
                // touch the socket's write side while a writer waits on
                // it (see the module docs).
                let may_send = !matches!(job, Job::Read(_)) || !self.writer_parked;
                let sent = match may_send {
                    true => send(&mut self.io, &mut self.outgoing, cx),
                    false => Poll::Pending,
                };
                transmit.done();
                match sent {
                    Poll::Ready(Err(e)) => Err(Failure::Io(e)),
                    Poll::Ready(Ok(())) | Poll::Pending => Ok(Turn::Again),
                }
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Turn::NeedInput),
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                if self.closing && !self.close_queued {
                    self.close_queued = true;
                    append(
                        &mut self.outgoing,
                        RECORD_OVERHEAD,
                        |out| traffic.queue_close_notify(out),
                        encrypt_needs,
                    )
                    .map(|()| Turn::Again)
                    .map_err(encrypt_failure)
                } else if let Job::Write(plain) = job {
                    let records = plain.len() / MAX_TAKE + 1;
                    append(
                        &mut self.outgoing,
                        plain.len() + records * RECORD_OVERHEAD,
                        |out| traffic.encrypt(plain, out),
                        encrypt_needs,
                    )
                    .map(|()| Turn::Wrote(plain.len()))
                    .map_err(encrypt_failure)
                } else {
                    Ok(Turn::NeedInput)
                }
            }
            Ok(ConnectionState::PeerClosed) => {
                self.peer_closed = true;
                Ok(Turn::Again)
            }
            Ok(ConnectionState::Closed) => {
                self.peer_closed = true;
                Ok(Turn::Closed)
            }
            // 0-RTT is off in our configuration; data the client could
            // not know was taken is refused, not dropped.
            Ok(ConnectionState::ReadEarlyData(_)) => Err(Failure::Tls(rustls::Error::General(
                "early (0-RTT) data, which this server does not take".into(),
            ))),
            Ok(other) => Err(Failure::Tls(rustls::Error::General(format!(
                "TLS state {other:?}, which this server does not handle"
            )))),
        };
        self.incoming.advance(discard.min(self.incoming.len()));
        if self.incoming.is_empty() || self.peer_closed {
            // rustls reads nothing after close_notify ([RFC 8446 6.1]:
            // data after it is ignored).
            self.incoming = BytesMut::new();
        }
        turn
    }

    /// Reads more TLS input: ready with how many bytes came (0 at the end
    /// of the input).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let held = self.incoming.len();
        if held >= MAX_INCOMING {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{held} bytes of TLS input and no complete message (at most {MAX_INCOMING})"
                ),
            )));
        }
        if held == 0 {
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            self.incoming.extend_from_slice(buf.filled());
            return Poll::Ready(Ok(buf.filled().len()));
        }
        let room = MAX_INCOMING - held;
        self.incoming.reserve(READ_CHUNK.min(room));
        // The `read_buf` future, polled once, reads into the spare
        // capacity without initialising it first.
        let mut spare = (&mut self.incoming).limit(room);
        pin!(self.io.read_buf(&mut spare)).poll(cx)
    }

    /// Drives the handshake until it is complete and our part of it sent.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(e) = self.failure() {
                // The alert first: the client learns why.
                let _ = ready!(send(&mut self.io, &mut self.outgoing, cx));
                return Poll::Ready(Err(e));
            }
            match self.step(cx, &mut Job::Drive) {
                Ok(Turn::Again) => {}
                Ok(Turn::NeedInput | Turn::Wrote(_)) => {
                    // Our flight goes out before we wait for theirs.
                    ready!(send(&mut self.io, &mut self.outgoing, cx))?;
                    if !self.conn.is_handshaking() {
                        return Poll::Ready(Ok(()));
                    }
                    if self.eof {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the client closed the connection within the TLS handshake",
                        )));
                    }
                    if ready!(self.poll_fill(cx))? == 0 {
                        self.eof = true;
                    }
                }
                Ok(Turn::Closed) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the TLS connection closed within the handshake",
                    )));
                }
                Err(Failure::Tls(e)) => {
                    self.fail(e);
                }
                Err(Failure::Io(e)) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends what `outgoing` holds from a write-side call: `Pending` (the
    /// writer parked on the socket) until it is all gone.
    fn poll_send_parked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = send(&mut self.io, &mut self.outgoing, cx);
        self.writer_parked = r.is_pending();
        r
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    /// Plaintext out. The end of input is the client's close_notify; an
    /// end of the socket's input without it is an `UnexpectedEof` error,
    /// as rustls has it.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.plaintext.is_empty() {
                let n = buf.remaining().min(this.plaintext.len());
                buf.put_slice(&this.plaintext[..n]);
                this.plaintext.advance(n);
                if this.plaintext.is_empty() {
                    this.plaintext = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.failure() {
                return Poll::Ready(Err(e));
            }
            let before = buf.filled().len();
            match this.step(cx, &mut Job::Read(&mut *buf)) {
                Ok(Turn::Again | Turn::Closed | Turn::Wrote(_)) => {
                    if buf.filled().len() > before {
                        return Poll::Ready(Ok(()));
                    }
                }
                Ok(Turn::NeedInput) => {
                    if !this.outgoing.is_empty() && !this.writer_parked {
                        // Bytes queued with no writer waiting to send them
                        // (an alert, a close): this task is woken when the
                        // socket takes more.
                        if let Poll::Ready(Err(e)) = send(&mut this.io, &mut this.outgoing, cx) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    if this.eof {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the client closed the connection without a TLS close_notify",
                        )));
                    }
                    if ready!(this.poll_fill(cx))? == 0 {
                        this.eof = true;
                    }
                }
                Err(Failure::Tls(e)) => {
                    let e = this.fail(e);
                    if !this.writer_parked {
                        let _ = send(&mut this.io, &mut this.outgoing, cx);
                    }
                    return Poll::Ready(Err(e));
                }
                Err(Failure::Io(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    /// Plaintext in: `Ok(n)` once `n` bytes are encrypted into `outgoing`,
    /// which is then sent as far as the socket takes it. `Pending` only
    /// while `outgoing` holds [`MAX_OUTGOING`] bytes the socket does not
    /// take.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writer_parked = false;
        if let Some(e) = this.failure() {
            let _ = send(&mut this.io, &mut this.outgoing, cx);
            return Poll::Ready(Err(e));
        }
        if this.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS stream was shut down",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.outgoing.len() >= MAX_OUTGOING {
            match send(&mut this.io, &mut this.outgoing, cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if this.outgoing.len() >= MAX_OUTGOING => {
                    this.writer_parked = true;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        let plain = &buf[..buf.len().min(MAX_TAKE)];
        let n = loop {
            match this.step(cx, &mut Job::Write(plain)) {
                Ok(Turn::Wrote(n)) => break n,
                Ok(Turn::Again) => {}
                Ok(Turn::NeedInput | Turn::Closed) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the TLS connection takes no more application data",
                    )));
                }
                Err(Failure::Tls(e)) => {
                    let e = this.fail(e);
                    let _ = send(&mut this.io, &mut this.outgoing, cx);
                    return Poll::Ready(Err(e));
                }
                Err(Failure::Io(e)) => return Poll::Ready(Err(e)),
            }
        };
        // On its way now: the caller may write more before it flushes.
        if let Poll::Ready(Err(e)) = send(&mut this.io, &mut this.outgoing, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    /// Sends everything encrypted so far.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.failure() {
            // The alert, if the socket takes it.
            let _ = send(&mut this.io, &mut this.outgoing, cx);
            this.writer_parked = false;
            return Poll::Ready(Err(e));
        }
        ready!(this.poll_send_parked(cx))?;
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.writer_parked = r.is_pending();
        r
    }

    /// Sends close_notify (unless the connection failed: its alert then),
    /// then shuts the socket's sending side. Reading may go on.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.closing = true;
        while this.failed.is_none() && !this.close_queued {
            match this.step(cx, &mut Job::Drive) {
                Ok(Turn::Again) => {}
                // rustls itself sent close_notify, or cannot send now.
                Ok(Turn::NeedInput | Turn::Wrote(_) | Turn::Closed) => break,
                Err(Failure::Tls(e)) => {
                    this.fail(e);
                }
                Err(Failure::Io(e)) => return Poll::Ready(Err(e)),
            }
        }
        match ready!(this.poll_send_parked(cx)) {
            Ok(()) => {}
            Err(e) if this.failed.is_none() => return Poll::Ready(Err(e)),
            // The alert could not go; the socket is still to be shut.
            Err(_) => {}
        }
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.writer_parked = r.is_pending();
        match ready!(r) {
            // Not connected: shut already.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            r => Poll::Ready(r),
        }
    }
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.outgoing.len())
            .field("plaintext", &self.plaintext.len())
            .field("peer_closed", &self.peer_closed)
            .field("closing", &self.closing)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Writes `out` to `io` until it is all gone (and then drops its
/// capacity) or `io` takes no more.
fn send<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        let n = ready!(Pin::new(&mut *io).poll_write(cx, out))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        out.advance(n.min(out.len()));
    }
    *out = BytesMut::new();
    Poll::Ready(Ok(()))
}

/// Lets `write` fill room at the end of `out`: `guess` bytes, or as many
/// as it says it needs (rustls leaves the buffer as it was when it is too
/// small, and says how large it must be).
fn append<E>(
    out: &mut BytesMut,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let at = out.len();
    let mut room = guess;
    loop {
        out.resize(at + room, 0);
        match write(&mut out[at..]) {
            Ok(n) => {
                out.truncate(at + n.min(room));
                return Ok(());
            }
            Err(e) => {
                out.truncate(at);
                match needs(&e) {
                    // Strictly more each time: the loop ends.
                    Some(more) if more > room => room = more,
                    _ => return Err(e),
                }
            }
        }
    }
}

fn encode_needs(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_needs(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_failure(e: EncryptError) -> Failure {
    Failure::Tls(match e {
        EncryptError::EncryptExhausted => rustls::Error::EncryptError,
        e => rustls::Error::General(e.to_string()),
    })
}

/// A TLS error as the stream's error: rustls's error is the message.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
