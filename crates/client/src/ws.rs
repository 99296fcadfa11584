//! MQTT over WebSocket (RFC 6455), the client side, on tokio-tungstenite:
//! [`upgrade`] asks for the `mqtt` subprotocol, and `strata_wsio::WsIo` is
//! the MQTT byte stream inside the connection.
//!
//! MQTT travels in binary messages only, and packet and message boundaries
//! need not meet [MQTT-6.0.0-1] [MQTT-6.0.0-2]: received messages are
//! handed out as one stream of bytes however the server cut them, and
//! each write of the connection task (a batch of packets) goes out as one
//! message.

use strata_wsio::WsIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::Error;

/// The subprotocol offered [MQTT-6.0.0-3].
const SUBPROTOCOL: &str = "mqtt";

/// Characters of the server's HTTP answer shown in an error, at most.
const SHOWN: usize = 200;

/// Upgrades `io`, already connected (and through TLS for `wss`) to
/// `address`, to a WebSocket at `path`. `scheme` is `ws` or `wss`.
pub(crate) async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    scheme: &str,
    address: &str,
    path: &str,
) -> Result<WsIo<S>, Error> {
    let url = format!("{scheme}://{address}{path}");
    let fail = |why: String| Error::WebSocket {
        url: url.clone(),
        why,
    };
    if !path.starts_with('/') {
        return Err(fail("the path must start with /".to_owned()));
    }
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| fail(e.to_string()))?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    // A message may be as large as the largest packet the client decodes;
    // the server's batches of packets stay far below that.
    let config = WebSocketConfig::default()
        .max_message_size(Some(strata_codec::MAX_PACKET_SIZE))
        .max_frame_size(Some(strata_codec::MAX_PACKET_SIZE));
    match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
        // tungstenite has checked that the server chose a subprotocol the
        // client offered [MQTT-6.0.0-4].
        Ok((ws, _)) => Ok(WsIo::new(ws)),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| shown(String::from_utf8_lossy(b).trim()))
                .filter(|b| !b.is_empty());
            Err(fail(match body {
                Some(body) => format!("the server answered HTTP {status}: {body}"),
                None => format!("the server answered HTTP {status}"),
            }))
        }
        Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(e))) => {
            Err(fail(match e {
                SubProtocolError::NoSubProtocol => {
                    "the server accepted no subprotocol; MQTT needs mqtt".to_owned()
                }
                e => e.to_string(),
            }))
        }
        Err(tungstenite::Error::Io(e)) => Err(fail(e.to_string())),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The server's text as shown in an error: escaped, and cut short.
fn shown(s: &str) -> String {
    let mut chars = s.chars().flat_map(char::escape_debug);
    let mut out: String = chars.by_ref().take(SHOWN).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io;
    use std::pin::Pin;

    use bytes::Bytes;
    use futures_core::Stream as _;
    use futures_sink::Sink as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// A client [`WsIo`] and the raw server end, over an in-memory pipe.
    async fn pair() -> (
        WsIo<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (c, s) = tokio::io::duplex(64 * 1024);
        let client = WebSocketStream::from_raw_socket(c, Role::Client, None).await;
        let server = WebSocketStream::from_raw_socket(s, Role::Server, None).await;
        (WsIo::new(client), server)
    }

    async fn send(ws: &mut WebSocketStream<tokio::io::DuplexStream>, m: Message) {
        poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx))
            .await
            .unwrap();
        Pin::new(&mut *ws).start_send(m).unwrap();
        poll_fn(|cx| Pin::new(&mut *ws).poll_flush(cx))
            .await
            .unwrap();
    }

    async fn next(ws: &mut WebSocketStream<tokio::io::DuplexStream>) -> Option<Message> {
        poll_fn(|cx| Pin::new(&mut *ws).poll_next(cx))
            .await
            .map(|r| r.unwrap())
    }

    #[tokio::test]
    async fn messages_become_one_byte_stream_whatever_their_cuts() {
        let (mut client, mut server) = pair().await;
        // A CONNACK cut in two messages, then a PINGRESP and a PUBACK in
        // one, with a ping between [MQTT-6.0.0-2].
        send(&mut server, Message::binary(vec![0x20])).await;
        send(&mut server, Message::binary(vec![2, 0, 0])).await;
        send(&mut server, Message::Ping(Bytes::from_static(b"hi"))).await;
        send(&mut server, Message::binary(vec![0xd0, 0, 0x40, 2, 0, 1])).await;
        let mut got = vec![0u8; 10];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0x20, 2, 0, 0, 0xd0, 0, 0x40, 2, 0, 1]);
        // The ping was answered while reading.
        client.flush().await.unwrap();
        assert_eq!(
            next(&mut server).await,
            Some(Message::Pong(Bytes::from_static(b"hi")))
        );
    }

    #[tokio::test]
    async fn a_write_is_one_binary_message_and_shutdown_closes() {
        let (mut client, mut server) = pair().await;
        client.write_all(&[0xc0, 0, 0xc0, 0]).await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(
            next(&mut server).await,
            Some(Message::binary(vec![0xc0, 0, 0xc0, 0]))
        );
        client.shutdown().await.unwrap();
        assert!(matches!(next(&mut server).await, Some(Message::Close(_))));
    }

    #[tokio::test]
    async fn a_text_message_is_an_error_and_a_close_the_end() {
        let (mut client, mut server) = pair().await;
        send(&mut server, Message::text("\u{20}")).await;
        let mut buf = [0u8; 8];
        let e = client.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // The server's close handshake: Close, the client's answer, and
        // the end of the connection.
        let (mut client, mut server) = pair().await;
        let closing = tokio::spawn(async move {
            send(&mut server, Message::binary(vec![0x20, 2])).await;
            send(&mut server, Message::Close(None)).await;
            let answer = next(&mut server).await;
            assert!(matches!(answer, Some(Message::Close(_))), "{answer:?}");
        });
        assert_eq!(client.read(&mut buf).await.unwrap(), 2);
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        closing.await.unwrap();
    }
}
