//! MQTT over WebSocket (RFC 6455) for the `ws` and `wss` listeners, on
//! tokio-tungstenite: [`accept`] answers the HTTP upgrade, and
//! `strata_wsio::WsIo` is the MQTT byte stream inside the connection, which a
//! [`crate::transport::Stream`] carries like any other stream.
//!
//! MQTT packets travel in binary messages only, and packet and message
//! boundaries need not meet [MQTT-6.0.0-1] [MQTT-6.0.0-2]: input is handed
//! out as bytes whatever messages brought it, and each write of the
//! connection task (a batch of packets) goes out as one message.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use strata_wsio::WsIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response, write_response,
};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Limits of one WebSocket connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WsLimits {
    /// The largest message: the broker's maximum MQTT packet size plus
    /// slack. A message over it closes the connection.
    pub max_message: usize,
    /// The largest frame; never more than `max_message` in effect.
    pub max_frame: usize,
    /// The whole HTTP upgrade request, request line and headers
    /// (tungstenite refuses more than 64 KiB whatever this says).
    pub max_header_bytes: usize,
}

/// Why an upgrade was refused or failed: the reason for the broker's log
/// line.
#[derive(Debug)]
pub(crate) enum WsError {
    /// The request asked for a path this listener does not serve (HTTP 404).
    WrongPath { path: String, serving: String },
    /// The client offered no subprotocol that carries MQTT (HTTP 400)
    /// [MQTT-6.0.0-3]; `offered` is what it offered instead, if anything.
    NoSubprotocol { offered: Option<String> },
    /// The request was longer than `limit` bytes (HTTP 431).
    HeaderTooLarge { limit: usize },
    /// The client asked for a WebSocket version other than 13 (HTTP 426).
    WrongVersion,
    /// The request was no WebSocket upgrade, or no HTTP (HTTP 400).
    NotUpgrade { reason: String },
    /// The connection failed or closed during the handshake.
    Io(io::Error),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::WrongPath { path, serving } => {
                write!(f, "path {path} not served (serving {serving})")
            }
            WsError::NoSubprotocol { offered: None } => f.write_str("no mqtt subprotocol offered"),
            WsError::NoSubprotocol {
                offered: Some(offered),
            } => write!(f, "no mqtt subprotocol offered (offered: {offered})"),
            WsError::HeaderTooLarge { limit } => write!(f, "request header over {limit} bytes"),
            WsError::WrongVersion => {
                f.write_str("not a WebSocket upgrade (Sec-WebSocket-Version is not 13)")
            }
            WsError::NotUpgrade { reason } => write!(f, "not a WebSocket upgrade ({reason})"),
            WsError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The WebSocket subprotocols that carry MQTT, the preferred first:
/// `mqtt` [MQTT-6.0.0-3], and `mqttv3.1`, which MQTT 3.1 clients offer.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Bytes read from the socket at once, and the read buffer tungstenite
/// allocates for every connection up front (128 KiB by default: too much
/// for a broker with many idle clients). A larger message grows it.
const READ_BUFFER: usize = 4096;

/// Characters of the client's own input shown in a reason, at most.
const SHOWN: usize = 64;

/// Answers the HTTP upgrade on `io` for `path` and returns the MQTT byte
/// stream inside it. A refused request is answered with an HTTP error
/// status before the error is returned. The caller bounds the time it
/// takes.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    path: &str,
    limits: &WsLimits,
) -> Result<WsIo<S>, WsError> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Each message goes to the socket as it is sent; one the socket
        // does not take holds the next send back (`poll_ready`), so
        // unsent output cannot pile up here.
        .write_buffer_size(0)
        .max_message_size(Some(limits.max_message))
        // A frame's length is checked before its payload is read, a
        // message's only after: a frame over the message limit would be
        // buffered whole before it is refused.
        .max_frame_size(Some(limits.max_frame.min(limits.max_message)))
        // RFC 6455 section 5.1: the server closes the connection on an
        // unmasked frame from a client.
        .accept_unmasked_frames(false);

    let mut refusal = None;
    let callback = |req: &Request, resp: Response| match check_request(req, resp, path) {
        Ok(resp) => Ok(resp),
        Err(e) => {
            // Every refusal of the check has an answer.
            let resp = answer_for(&e).unwrap_or_else(|| answer(StatusCode::BAD_REQUEST, "refused"));
            refusal = Some(e);
            Err(resp)
        }
    };
    // The handshake runs over a borrow of `io`, so that `io` is still
    // here to answer a request tungstenite refused without an answer.
    let bounded = Bounded {
        io: &mut io,
        left: limits.max_header_bytes,
    };
    let e = match tokio_tungstenite::accept_hdr_async_with_config(bounded, callback, Some(config))
        .await
    {
        Ok(_) => {
            // The handshake is done and nothing is left in its buffers
            // (tungstenite refuses bytes after the request): the data
            // path starts afresh on `io` itself, without the bound.
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            return Ok(WsIo::new(ws));
        }
        Err(e) => e,
    };
    let answered = matches!(e, tungstenite::Error::Http(_));
    let e = match (e, refusal) {
        (tungstenite::Error::Http(_), Some(refusal)) => refusal,
        (e, _) => handshake_error(e, limits),
    };
    if !answered && let Some(resp) = answer_for(&e) {
        let mut out = Vec::new();
        if write_response(&mut out, &resp).is_ok() {
            out.extend_from_slice(resp.body().as_deref().unwrap_or_default().as_bytes());
            // The connection is refused whatever becomes of the answer.
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
        }
    }
    Err(e)
}

/// Checks the upgrade request for the path and the subprotocol and adds
/// the subprotocol chosen to `resp`, the answer tungstenite made.
fn check_request(req: &Request, mut resp: Response, path: &str) -> Result<Response, WsError> {
    // The query is not part of what is served.
    let asked = req.uri().path();
    if asked != path {
        return Err(WsError::WrongPath {
            path: shown(asked),
            serving: path.to_owned(),
        });
    }
    let offered: Vec<&[u8]> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let Some(chosen) = SUBPROTOCOLS
        .into_iter()
        .find(|p| offered.contains(&p.as_bytes()))
    else {
        let offered = (!offered.is_empty()).then(|| {
            let all: Vec<_> = offered.iter().map(|o| String::from_utf8_lossy(o)).collect();
            shown(&all.join(", "))
        });
        return Err(WsError::NoSubprotocol { offered });
    };
    // The server names the subprotocol it chose, the one the client
    // offered [MQTT-6.0.0-4].
    resp.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(chosen),
    );
    Ok(resp)
}

/// Turns an error of tungstenite's handshake into the reason.
fn handshake_error(e: tungstenite::Error, limits: &WsLimits) -> WsError {
    match e {
        tungstenite::Error::Io(e)
            if e.get_ref()
                .is_some_and(|inner| inner.is::<HeaderOverLimit>()) =>
        {
            WsError::HeaderTooLarge {
                limit: limits.max_header_bytes,
            }
        }
        tungstenite::Error::Io(e) => WsError::Io(e),
        tungstenite::Error::Protocol(ProtocolError::HandshakeIncomplete) => {
            WsError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed within the upgrade request",
            ))
        }
        tungstenite::Error::Protocol(ProtocolError::MissingSecWebSocketVersionHeader) => {
            WsError::WrongVersion
        }
        tungstenite::Error::Protocol(ProtocolError::JunkAfterRequest) => WsError::NotUpgrade {
            reason: "bytes after the request, before the answer".to_owned(),
        },
        tungstenite::Error::Protocol(p) => WsError::NotUpgrade {
            reason: p.to_string(),
        },
        tungstenite::Error::Capacity(c) => WsError::NotUpgrade {
            reason: c.to_string(),
        },
        // tungstenite's own bound on the request: over 64 KiB, over 512
        // reads, or over 64 reads of under 128 bytes on average.
        tungstenite::Error::AttackAttempt => WsError::NotUpgrade {
            reason: "request sent in too many small pieces".to_owned(),
        },
        e => WsError::NotUpgrade {
            reason: e.to_string(),
        },
    }
}

/// The HTTP answer to a refused request, where there is one.
fn answer_for(e: &WsError) -> Option<ErrorResponse> {
    let mut resp = match e {
        WsError::WrongPath { serving, .. } => answer(
            StatusCode::NOT_FOUND,
            &format!("MQTT over WebSocket is served at {serving}"),
        ),
        WsError::NoSubprotocol { .. } => answer(
            StatusCode::BAD_REQUEST,
            "offer the WebSocket subprotocol mqtt",
        ),
        WsError::HeaderTooLarge { .. } => answer(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header too large",
        ),
        WsError::WrongVersion => answer(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13"),
        WsError::NotUpgrade { .. } => answer(
            StatusCode::BAD_REQUEST,
            "this endpoint serves MQTT over WebSocket",
        ),
        WsError::Io(_) => return None,
    };
    if matches!(e, WsError::WrongVersion) {
        // RFC 6455 section 4.4: the versions the server speaks.
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    Some(resp)
}

fn answer(status: StatusCode, body: &str) -> ErrorResponse {
    let body = format!("{body}\n");
    let mut resp = ErrorResponse::new(None);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    *resp.body_mut() = Some(body);
    resp
}

/// The client's input as shown in a reason: escaped, and cut short.
fn shown(s: &str) -> String {
    let mut chars = s.chars().flat_map(char::escape_debug);
    let mut out: String = chars.by_ref().take(SHOWN).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// The stream during the handshake: reads stop with an error once the
/// client sent `left` more bytes without the handshake being done, so a
/// client cannot make the request grow memory. Writes pass through.
struct Bounded<'a, S> {
    io: &'a mut S,
    left: usize,
}

/// The error a read of [`Bounded`] fails with once the bound is reached.
#[derive(Debug)]
struct HeaderOverLimit;

impl fmt::Display for HeaderOverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upgrade request over the size limit")
    }
}

impl std::error::Error for HeaderOverLimit {}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                HeaderOverLimit,
            )));
        }
        // Never more than is left: what the request needs is all read, and
        // no more.
        let room = buf.remaining().min(this.left);
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(room));
        ready!(Pin::new(&mut *this.io).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        buf.advance(n);
        this.left -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
