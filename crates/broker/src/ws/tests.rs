//! The WebSocket transport's tests.
use super::*;
use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream as _;
use futures_sink::Sink;
use tokio::io::{AsyncReadExt, DuplexStream, duplex};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response as ClientResponse;

type Client = WebSocketStream<DuplexStream>;

fn limits() -> WsLimits {
    WsLimits {
        max_message: 1024,
        max_frame: 1024,
        max_header_bytes: 8192,
    }
}

/// A tokio-tungstenite client offering `protocols` asks for `path`
/// of a server serving `/mqtt`, over a duplex of `cap` bytes each way.
async fn handshake(
    protocols: Option<&str>,
    path: &str,
    cap: usize,
) -> (
    Result<WsIo<DuplexStream>, WsError>,
    Result<(Client, ClientResponse), tungstenite::Error>,
) {
    let (c, s) = duplex(cap);
    let mut req = format!("ws://localhost{path}")
        .into_client_request()
        .expect("url");
    if let Some(p) = protocols {
        let v = HeaderValue::from_str(p).expect("header value");
        req.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    let l = limits();
    let client = tokio_tungstenite::client_async_with_config(req, c, None);
    tokio::join!(accept(s, "/mqtt", &l), client)
}

async fn pair() -> (WsIo<DuplexStream>, Client) {
    let (server, client) = handshake(Some("mqtt"), "/mqtt", 64 * 1024).await;
    (server.expect("server"), client.expect("client").0)
}

/// The status of the answer to a refused client.
fn status(client: Result<(Client, ClientResponse), tungstenite::Error>) -> Option<u16> {
    match client {
        Err(tungstenite::Error::Http(r)) => Some(r.status().as_u16()),
        _ => None,
    }
}

async fn send(c: &mut Client, m: Message) {
    let mut c = Pin::new(c);
    poll_fn(|cx| c.as_mut().poll_ready(cx))
        .await
        .expect("ready");
    c.as_mut().start_send(m).expect("send");
    poll_fn(|cx| c.as_mut().poll_flush(cx))
        .await
        .expect("flush");
}

/// The next message the client reads; `None` at the end or an error.
async fn next(c: &mut Client) -> Option<Message> {
    poll_fn(|cx| Pin::new(&mut *c).poll_next(cx))
        .await
        .and_then(Result::ok)
}

fn binary(b: &[u8]) -> Message {
    Message::Binary(Bytes::copy_from_slice(b))
}

/// An upgrade request for `/mqtt` offering `mqtt`, with `extra`
/// header lines.
fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n{extra}\r\n"
    )
}

/// Sends `request` and the end of input to a server serving `/mqtt`:
/// its refusal, and all it answered.
async fn refused(request: &[u8], limits: &WsLimits) -> (WsError, String) {
    let (mut c, s) = duplex(64 * 1024);
    c.write_all(request).await.expect("write");
    c.shutdown().await.expect("shutdown");
    let e = within(accept(s, "/mqtt", limits)).await.expect("no hang");
    let e = e.expect_err("refused");
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).await.expect("read");
    (e, String::from_utf8_lossy(&answer).into_owned())
}

/// A server after a good upgrade, and the client's raw end.
async fn raw_pair() -> (WsIo<DuplexStream>, DuplexStream) {
    let (mut c, s) = duplex(64 * 1024);
    let request = upgrade_request("");
    c.write_all(request.as_bytes()).await.expect("write");
    let server = accept(s, "/mqtt", &limits()).await.expect("accept");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(c.read_u8().await.expect("answer"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    (server, c)
}

/// A frame as a client sends it: masked.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    match u8::try_from(payload.len()) {
        Ok(n) if n < 126 => f.push(0x80 | n),
        _ => {
            f.push(0x80 | 126);
            let n = u16::try_from(payload.len()).expect("test frames under 64 KiB");
            f.extend_from_slice(&n.to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

fn within<F: Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(10), f)
}

#[tokio::test]
async fn packets_are_read_whatever_messages_carry_them_mqtt_6_0_0_2() {
    // A CONNECT split over two messages, then a PINGREQ and a
    // DISCONNECT in one [MQTT-6.0.0-2].
    let (mut server, mut client) = pair().await;
    let connect = [
        0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 4, b'a', b'b', b'c', b'd',
    ];
    send(&mut client, binary(&connect[..7])).await;
    send(&mut client, binary(&connect[7..])).await;
    send(&mut client, binary(&[0xC0, 0, 0xE0, 0])).await;
    let want = [&connect[..], &[0xC0, 0, 0xE0, 0]].concat();
    // Small reads: no read hands out more than its room.
    let mut got = Vec::new();
    while got.len() < want.len() {
        let mut b = [0u8; 5];
        let n = server.read(&mut b).await.expect("read");
        assert!(n > 0, "input ended early after {got:?}");
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn each_write_is_one_binary_message_mqtt_6_0_0_1() {
    let (mut server, mut client) = pair().await;
    let connack = [0x20, 2, 0, 0];
    let two_pingresps = [0xD0, 0, 0xD0, 0];
    assert_eq!(server.write(&connack).await.expect("write"), 4);
    assert_eq!(server.write(&two_pingresps).await.expect("write"), 4);
    server.flush().await.expect("flush");
    assert_eq!(next(&mut client).await, Some(binary(&connack)));
    assert_eq!(next(&mut client).await, Some(binary(&two_pingresps)));
}

#[tokio::test]
async fn a_client_offering_no_mqtt_subprotocol_is_refused_with_400_mqtt_6_0_0_3() {
    let (server, client) = handshake(None, "/mqtt", 64 * 1024).await;
    let e = server.expect_err("refused");
    assert!(matches!(e, WsError::NoSubprotocol { offered: None }));
    assert_eq!(e.to_string(), "no mqtt subprotocol offered");
    assert_eq!(status(client), Some(400));

    let (server, client) = handshake(Some("chat, superchat"), "/mqtt", 64 * 1024).await;
    let e = server.expect_err("refused").to_string();
    assert_eq!(e, "no mqtt subprotocol offered (offered: chat, superchat)");
    assert_eq!(status(client), Some(400));
}

#[tokio::test]
async fn the_answer_names_the_subprotocol_offered_mqtt_6_0_0_4() {
    for (offered, chosen) in [
        ("mqtt", "mqtt"),
        // MQTT 3.1 clients.
        ("mqttv3.1", "mqttv3.1"),
        ("mqttv3.1, mqtt", "mqtt"),
        ("chat,mqtt", "mqtt"),
    ] {
        let (server, client) = handshake(Some(offered), "/mqtt", 64 * 1024).await;
        assert!(server.is_ok(), "{offered}");
        let (_, resp) = client.expect("client");
        let answered = resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL);
        assert_eq!(answered.map(HeaderValue::as_bytes), Some(chosen.as_bytes()));
    }
}

#[tokio::test]
async fn another_path_is_refused_with_404_and_the_query_is_ignored() {
    let (server, client) = handshake(Some("mqtt"), "/x", 64 * 1024).await;
    let e = server.expect_err("refused");
    assert_eq!(e.to_string(), "path /x not served (serving /mqtt)");
    assert_eq!(status(client), Some(404));

    let (server, client) = handshake(Some("mqtt"), "/mqtt?token=1", 64 * 1024).await;
    assert!(server.is_ok() && client.is_ok());
}

#[tokio::test]
async fn a_text_message_ends_the_connection_mqtt_6_0_0_1() {
    let (mut server, mut client) = pair().await;
    send(&mut client, Message::text("hello")).await;
    let e = server.read(&mut [0u8; 16]).await.expect_err("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let reason = "a text WebSocket message: MQTT is carried in binary messages only";
    assert_eq!(e.to_string(), reason);
}

#[tokio::test]
async fn an_unmasked_frame_from_the_client_ends_the_connection() {
    let (mut server, mut c) = raw_pair().await;
    c.write_all(&masked(0x82, &[0xC0, 0])).await.expect("write");
    let mut b = [0u8; 16];
    assert_eq!(server.read(&mut b).await.expect("read"), 2);
    assert_eq!(b[..2], [0xC0, 0]);
    // RFC 6455 section 5.1.
    c.write_all(&[0x82, 2, 0xC0, 0]).await.expect("write");
    let e = server.read(&mut b).await.expect_err("refused");
    assert!(e.to_string().contains("unmasked"), "{e}");
}

#[tokio::test]
async fn a_message_over_the_limit_ends_the_connection() {
    let (mut server, mut client) = pair().await;
    send(&mut client, binary(&[0; 1025])).await;
    let e = server.read(&mut [0u8; 16]).await.expect_err("refused");
    let reason = "a WebSocket message of 1025 bytes, over the limit of 1024";
    assert_eq!(e.to_string(), reason);

    // A frame's header is enough to refuse it, with a frame limit
    // above the message limit too: its payload is never waited for.
    let (mut c, s) = duplex(64 * 1024);
    c.write_all(upgrade_request("").as_bytes())
        .await
        .expect("write");
    let big_frames = WsLimits {
        max_frame: 1 << 20,
        ..limits()
    };
    let mut server = accept(s, "/mqtt", &big_frames).await.expect("accept");
    c.write_all(&[0x82, 0x80 | 126, 0x07, 0xD0, 1, 2, 3, 4])
        .await
        .expect("write");
    let read = within(server.read(&mut [0u8; 16])).await.expect("no hang");
    let reason = "a WebSocket message of 2000 bytes, over the limit of 1024";
    assert_eq!(read.err().map(|e| e.to_string()).as_deref(), Some(reason));

    // Two frames each under the limit, together over it.
    let (mut server, mut c) = raw_pair().await;
    c.write_all(&masked(0x02, &[0; 600])).await.expect("write");
    c.write_all(&masked(0x80, &[0; 600])).await.expect("write");
    let e = server.read(&mut [0u8; 16]).await.expect_err("refused");
    let reason = "a WebSocket message of 1200 bytes, over the limit of 1024";
    assert_eq!(e.to_string(), reason);
}

#[tokio::test]
async fn an_upgrade_request_over_the_header_limit_is_refused_unread() {
    let limits = WsLimits {
        max_header_bytes: 1024,
        ..limits()
    };
    let (mut c, mut s) = duplex(64 * 1024);
    let request = upgrade_request(&format!("X-Pad: {}\r\n", "a".repeat(60_000)));
    c.write_all(request.as_bytes()).await.expect("write");
    c.shutdown().await.expect("shutdown");
    let e = accept(&mut s, "/mqtt", &limits).await.expect_err("refused");
    assert_eq!(e.to_string(), "request header over 1024 bytes");
    let mut unread = Vec::new();
    s.read_to_end(&mut unread).await.expect("read");
    assert_eq!(request.len() - unread.len(), 1024, "bytes the server read");
    let mut answer = String::new();
    c.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn an_upgrade_request_of_the_header_limit_exactly_is_taken() {
    let limits = WsLimits {
        max_header_bytes: upgrade_request("X-Pad: \r\n").len() + 100,
        ..limits()
    };
    let exact = upgrade_request(&format!("X-Pad: {}\r\n", "a".repeat(100)));
    let (mut c, s) = duplex(64 * 1024);
    c.write_all(exact.as_bytes()).await.expect("write");
    assert!(accept(s, "/mqtt", &limits).await.is_ok());
    let over = upgrade_request(&format!("X-Pad: {}\r\n", "a".repeat(101)));
    let (e, _) = refused(over.as_bytes(), &limits).await;
    assert!(matches!(e, WsError::HeaderTooLarge { .. }), "{e}");
}

#[tokio::test]
async fn pings_are_answered_while_the_broker_only_reads() {
    let (mut server, mut client) = pair().await;
    let mut b = [0u8; 16];
    let reader = server.read(&mut b);
    let pinger = async {
        send(&mut client, Message::Ping(Bytes::from_static(b"hi"))).await;
        let answer = next(&mut client).await;
        send(&mut client, Message::Close(None)).await;
        answer
    };
    let both = within(async { tokio::join!(reader, pinger) });
    let (read, answer) = both.await.expect("no hang");
    assert_eq!(answer, Some(Message::Pong(Bytes::from_static(b"hi"))));
    assert_eq!(read.expect("read"), 0);
}

#[tokio::test]
async fn a_close_from_the_client_is_the_end_of_input_and_is_answered() {
    let (mut server, mut client) = pair().await;
    send(&mut client, binary(&[0xE0, 0])).await;
    send(&mut client, Message::Close(None)).await;
    let mut got = Vec::new();
    let read = within(server.read_to_end(&mut got)).await.expect("no hang");
    assert_eq!(read.expect("read"), 2);
    assert_eq!(got, [0xE0, 0]);
    assert_eq!(server.read(&mut [0u8; 4]).await.expect("read"), 0);
    let answer = within(next(&mut client)).await.expect("no hang");
    assert!(matches!(answer, Some(Message::Close(_))));
}

#[tokio::test]
async fn a_shutdown_sends_a_close_frame_and_ends_the_sending_side() {
    let (mut server, mut client) = pair().await;
    server.shutdown().await.expect("shutdown");
    assert!(matches!(next(&mut client).await, Some(Message::Close(_))));
    // The client answers the Close and sees the end of the stream.
    assert_eq!(next(&mut client).await, None);
    let read = within(server.read(&mut [0u8; 4])).await.expect("no hang");
    assert_eq!(read.expect("read"), 0);

    // A client already gone is no error.
    let (mut server, client) = pair().await;
    drop(client);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_write_the_socket_cannot_take_holds_the_next_one_back() {
    let (server, client) = handshake(Some("mqtt"), "/mqtt", 256).await;
    let (mut server, mut client) = (server.expect("server"), client.expect("client").0);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let packet = [7u8; 1000];
    let mut w = Pin::new(&mut server);
    assert!(matches!(
        w.as_mut().poll_write(&mut cx, &packet),
        Poll::Ready(Ok(1000))
    ));
    assert!(w.as_mut().poll_write(&mut cx, &packet).is_pending());
    let (got, wrote) = tokio::join!(next(&mut client), server.write(&packet));
    assert_eq!(got, Some(binary(&packet)));
    assert_eq!(wrote.expect("write"), 1000);
}

#[tokio::test]
async fn garbage_instead_of_an_upgrade_request_is_answered_with_400() {
    // An MQTT CONNECT, as a client that forgot the WebSocket sends.
    let connect = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
    let (e, answer) = refused(&connect, &limits()).await;
    assert!(matches!(e, WsError::NotUpgrade { .. }), "{e}");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let plain = b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n";
    let (e, answer) = refused(plain, &limits()).await;
    assert!(
        e.to_string().starts_with("not a WebSocket upgrade ("),
        "{e}"
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // RFC 6455 section 4.4: the answer names the version spoken.
    let v8 = upgrade_request("").replace("Version: 13", "Version: 8");
    let (e, answer) = refused(v8.as_bytes(), &limits()).await;
    assert!(matches!(e, WsError::WrongVersion), "{e}");
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(answer.contains("sec-websocket-version: 13"), "{answer}");

    let (e, _) = refused(b"GET /mqtt HTTP/1.1\r\nHo", &limits()).await;
    assert_eq!(e.to_string(), "closed within the upgrade request");
}

/// A small deterministic generator, for input no client library
/// would send.
struct Lcg(u64);

impl Lcg {
    fn byte(&mut self) -> u8 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.0.to_be_bytes()[0]
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.byte()) * max / 256;
        (0..n).map(|_| self.byte()).collect()
    }
}

#[tokio::test]
async fn random_input_never_panics_nor_hangs() {
    let mut rng = Lcg(0x5eed);
    let prefixes: [&[u8]; 3] = [
        b"",
        b"GET /mqtt HTTP/1.1\r\n",
        b"GET /mqtt HTTP/1.1\r\nA: b",
    ];
    for round in 0..200 {
        // As the upgrade request.
        let request = [prefixes[round % 3], &rng.bytes(300)].concat();
        refused(&request, &limits()).await;

        // As frames after a good upgrade, masked or not.
        let (mut server, mut c) = raw_pair().await;
        for _ in 0..4 {
            let first = [0x82, 0x02, 0x80, 0x01, 0x88, 0x89, 0x8A, rng.byte()];
            let payload = rng.bytes(200);
            let frame = match rng.byte() {
                0..128 => masked(first[usize::from(rng.byte() % 8)], &payload),
                _ => payload,
            };
            c.write_all(&frame).await.expect("write");
        }
        c.shutdown().await.expect("shutdown");
        // Whatever the reads return, they end.
        let read = within(server.read_to_end(&mut Vec::new())).await;
        assert!(read.is_ok(), "round {round}");
    }
}

/// What the broker's listener boxes streams as.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

#[test]
fn the_handshake_and_the_stream_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_unpin<T: Send + Unpin>() {}
    let io: Box<dyn Io> = Box::new(duplex(64).0);
    let l = limits();
    send(&accept(io, "/mqtt", &l));
    send_unpin::<WsIo<Box<dyn Io>>>();
}

#[test]
fn reasons_show_a_bounded_escaped_piece_of_the_input() {
    assert_eq!(shown("/x"), "/x");
    assert_eq!(shown("a\nb"), "a\\nb");
    let long = shown(&"a".repeat(1000));
    assert_eq!(long.chars().count(), SHOWN + 1);
    assert!(long.ends_with('…'));
}
