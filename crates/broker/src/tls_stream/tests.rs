//! The stream against real tokio-rustls clients over in-memory duplexes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{
    ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, SupportedProtocolVersion,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream as ClientStream;

use super::*;
use crate::testing::counting_waker;
use crate::transport::{BoxedStream, Io, Origin, Stream, Transport};

/// A CA, a server certificate for `localhost` and a client certificate
/// for `client-1`, both issued by the CA; made once.
struct Pki {
    ca: CertificateDer<'static>,
    server: (CertificateDer<'static>, Vec<u8>),
    client: (CertificateDer<'static>, Vec<u8>),
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "Strata test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |names: Vec<String>, cn: &str, purpose| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.der().clone(), key.serialize_der())
        };
        Pki {
            ca: ca_cert.der().clone(),
            server: leaf(
                vec!["localhost".into()],
                "localhost",
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            client: leaf(Vec::new(), "client-1", ExtendedKeyUsagePurpose::ClientAuth),
        }
    })
}

fn key(der: &[u8]) -> PrivateKeyDer<'static> {
    PrivatePkcs8KeyDer::from(der.to_vec()).into()
}

// ring, as in tls.rs.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots() -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(pki().ca.clone()).unwrap();
    Arc::new(roots)
}

/// TLS 1.3 and 1.2, ALPN `mqtt`, and client certificates verified
/// against the CA if `client_auth`.
fn server_config(client_auth: bool) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .unwrap();
    let builder = if client_auth {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(), provider())
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let (cert, k) = &pki().server;
    let mut config = builder
        .with_single_cert(vec![cert.clone()], key(k))
        .unwrap();
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Arc::new(config)
}

/// A client of only `version`, offering ALPN `mqtt`, with the client
/// certificate if `with_cert`.
fn connector(version: &'static SupportedProtocolVersion, with_cert: bool) -> TlsConnector {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots());
    let mut config = if with_cert {
        let (cert, k) = &pki().client;
        builder
            .with_client_auth_cert(vec![cert.clone()], key(k))
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    TlsConnector::from(Arc::new(config))
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Both handshakes, run together.
async fn connect<A, B>(
    server_io: A,
    client_io: B,
    config: Arc<ServerConfig>,
    client: &TlsConnector,
) -> (TlsStream<A>, ClientStream<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (s, c) = tokio::join!(
        accept(server_io, config),
        client.connect(localhost(), client_io)
    );
    (s.unwrap(), c.unwrap())
}

async fn pair(
    size: usize,
    version: &'static SupportedProtocolVersion,
) -> (TlsStream<DuplexStream>, ClientStream<DuplexStream>) {
    let (a, b) = duplex(size);
    connect(a, b, server_config(false), &connector(version, false)).await
}

/// `f`, or a failure after a while: a lost wakeup hangs, and must fail.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out: a lost wakeup?")
}

/// One poll of a read with a waker that does nothing.
fn poll_read_once<T: AsyncRead + Unpin>(s: &mut T) -> Poll<io::Result<usize>> {
    let mut bytes = [0u8; 64];
    let mut buf = ReadBuf::new(&mut bytes);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Pin::new(s)
        .poll_read(&mut cx, &mut buf)
        .map_ok(|()| buf.filled().len())
}

/// xorshift64*: random enough sizes and bytes, and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `1..=n`.
    fn size(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize + 1
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

#[tokio::test]
async fn handshake_and_data_both_ways() {
    within(async {
        for (version, expected) in [
            (&TLS13, ProtocolVersion::TLSv1_3),
            (&TLS12, ProtocolVersion::TLSv1_2),
        ] {
            let (mut server, mut client) = pair(64 * 1024, version).await;
            assert_eq!(client.get_ref().1.protocol_version(), Some(expected));
            assert_eq!(server.peer_certificates(), None);
            client.write_all(b"CONNECT").await.unwrap();
            client.flush().await.unwrap();
            let mut got = [0u8; 7];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"CONNECT");
            server.write_all(b"CONNACK").await.unwrap();
            server.flush().await.unwrap();
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"CONNACK");
        }
    })
    .await;
}

#[tokio::test]
async fn data_right_behind_the_clients_finished_is_kept() {
    within(async {
        for version in [&TLS13, &TLS12] {
            let (a, b) = duplex(64 * 1024);
            let client = connector(version, false);
            let (s, c) = tokio::join!(accept(a, server_config(false)), async {
                let mut c = client.connect(localhost(), b).await?;
                c.write_all(b"CONNECT").await?;
                c.flush().await?;
                io::Result::Ok(c)
            });
            let (mut server, _client) = (s.unwrap(), c.unwrap());
            if version == &TLS13 {
                // The client's Finished and the data came in one read:
                // the handshake decrypted the data too.
                assert_eq!(&server.plaintext[..], b"CONNECT");
            }
            let mut got = [0u8; 7];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"CONNECT");
            assert!(poll_read_once(&mut server).is_pending());
            assert_eq!(server.buffered_capacity(), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_certificate_is_verified_and_alpn_mqtt_chosen() {
    within(async {
        for version in [&TLS13, &TLS12] {
            let (a, b) = duplex(64 * 1024);
            let (mut server, mut client) =
                connect(a, b, server_config(true), &connector(version, true)).await;
            let certs = server.peer_certificates().expect("a verified certificate");
            assert_eq!(certs.first(), Some(&pki().client.0));
            assert_eq!(
                crate::tls_identity::certificate_identity(&certs[0]).as_deref(),
                Some("client-1")
            );
            assert_eq!(server.alpn_protocol(), Some(&b"mqtt"[..]));
            assert_eq!(client.get_ref().1.alpn_protocol(), Some(&b"mqtt"[..]));
            client.write_all(b"ping").await.unwrap();
            client.flush().await.unwrap();
            let mut got = [0u8; 4];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_without_the_certificate_required_is_refused() {
    within(async {
        let (a, b) = duplex(64 * 1024);
        let (s, c) = tokio::join!(
            accept(a, server_config(true)),
            connector(&TLS13, false).connect(localhost(), b)
        );
        let e = s.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "peer sent no certificates");
        // TLS 1.3: the client finished first; the alert then ends it.
        let mut client = c.unwrap();
        let e = client.read(&mut [0u8; 8]).await.unwrap_err();
        assert!(e.to_string().contains("CertificateRequired"), "{e}");
    })
    .await;
}

/// Writes `data` in random-sized writes, flushing now and then, and at
/// the end.
async fn write_randomly<W: AsyncWrite + Unpin>(mut w: W, data: Vec<u8>, seed: u64) -> W {
    let mut rng = Rng(seed);
    let mut at = 0;
    while at < data.len() {
        let n = rng.size(40_000).min(data.len() - at);
        w.write_all(&data[at..at + n]).await.unwrap();
        if rng.next().is_multiple_of(4) {
            w.flush().await.unwrap();
        }
        at += n;
    }
    w.flush().await.unwrap();
    w
}

/// Reads `len` bytes in random-sized reads.
async fn read_randomly<R: AsyncRead + Unpin>(mut r: R, len: usize, seed: u64) -> (R, Vec<u8>) {
    let mut rng = Rng(seed);
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 40_000];
    while got.len() < len {
        let n = rng.size(buf.len()).min(len - got.len());
        let n = r.read(&mut buf[..n]).await.unwrap();
        assert_ne!(n, 0, "end of input after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    (r, got)
}

fn assert_same(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len());
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("bytes differ first at offset {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_each_way_in_random_writes_through_a_small_pipe() {
    within(async {
        for version in [&TLS13, &TLS12] {
            // 1 KiB in flight at most: both sides wait on the pipe often.
            let (server, client) = pair(1024, version).await;
            let up = pattern(1 << 20, 1);
            let down = pattern(1 << 20, 2);
            // Halves: reads and writes from different tasks, with
            // different wakers.
            let (sr, sw) = tokio::io::split(server);
            let (cr, cw) = tokio::io::split(client);
            let server_writes = tokio::spawn(write_randomly(sw, down.clone(), 3));
            let server_reads = tokio::spawn(read_randomly(sr, up.len(), 4));
            let client_writes = tokio::spawn(write_randomly(cw, up.clone(), 5));
            let client_reads = tokio::spawn(read_randomly(cr, down.len(), 6));
            let sw = server_writes.await.unwrap();
            let (sr, got_up) = server_reads.await.unwrap();
            // The client stays open: its end would be the server's.
            let _cw = client_writes.await.unwrap();
            let (_cr, got_down) = client_reads.await.unwrap();
            assert_same(&got_up, &up);
            assert_same(&got_down, &down);
            let mut server = sr.unsplit(sw);
            assert!(poll_read_once(&mut server).is_pending());
            assert_eq!(server.buffered_capacity(), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn one_byte_at_a_time_still_gets_through() {
    within(async {
        for version in [&TLS13, &TLS12] {
            let (a, b) = duplex(64 * 1024);
            let (a, config) = (Wire::trickle(a), server_config(true));
            let (server, client) = connect(a, b, config, &connector(version, true)).await;
            assert!(server.peer_certificates().is_some());
            // More than a record each way.
            let up = pattern(20_000, 7);
            let down = pattern(20_000, 8);
            let (sr, sw) = tokio::io::split(server);
            let (cr, cw) = tokio::io::split(client);
            let (_, (_, got_up), _, (_, got_down)) = tokio::join!(
                write_randomly(sw, down.clone(), 9),
                read_randomly(sr, up.len(), 10),
                write_randomly(cw, up.clone(), 11),
                read_randomly(cr, down.len(), 12),
            );
            assert_same(&got_up, &up);
            assert_same(&got_down, &down);
        }
    })
    .await;
}

#[tokio::test]
async fn an_idle_stream_holds_no_buffer() {
    within(async {
        let (mut server, mut client) = pair(64 * 1024, &TLS13).await;
        assert_eq!(server.buffered_capacity(), 0, "after the handshake");
        let up = pattern(40_000, 13);
        client.write_all(&up).await.unwrap();
        client.flush().await.unwrap();
        let mut got = vec![0u8; up.len()];
        server.read_exact(&mut got[..100]).await.unwrap();
        assert!(server.buffered_capacity() > 0, "the rest waits");
        server.read_exact(&mut got[100..]).await.unwrap();
        assert_same(&got, &up);
        assert!(poll_read_once(&mut server).is_pending());
        assert_eq!(server.buffered_capacity(), 0, "after reading");

        // More than the pipe holds: the server's writes wait on it.
        let down = pattern(200_000, 14);
        let mut back = vec![0u8; down.len()];
        let (w, r) = tokio::join!(
            async {
                server.write_all(&down).await?;
                server.flush().await
            },
            client.read_exact(&mut back)
        );
        w.unwrap();
        r.unwrap();
        assert_same(&back, &down);
        assert!(poll_read_once(&mut server).is_pending());
        assert_eq!(server.buffered_capacity(), 0, "after writing");
    })
    .await;
}

#[tokio::test]
async fn key_updates_either_way_are_followed() {
    within(async {
        let (mut server, mut client) = pair(64 * 1024, &TLS13).await;
        let mut got = [0u8; 3];
        for round in 0..3u8 {
            // The client updates its keys and asks the server to update
            // its own.
            client.get_mut().1.refresh_traffic_keys().unwrap();
            client.write_all(&[round; 3]).await.unwrap();
            client.flush().await.unwrap();
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [round; 3]);
            server.write_all(&[round + 10; 3]).await.unwrap();
            server.flush().await.unwrap();
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [round + 10; 3]);
        }
    })
    .await;
}

#[tokio::test]
async fn the_session_tickets_and_ids_sent_let_a_client_resume() {
    within(async {
        for version in [&TLS13, &TLS12] {
            let config = server_config(false);
            let client = connector(version, false);
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let (a, b) = duplex(64 * 1024);
                let (mut s, mut c) = connect(a, b, config.clone(), &client).await;
                // The client takes in the tickets on its way to the data.
                s.write_all(b"x").await.unwrap();
                s.flush().await.unwrap();
                c.read_exact(&mut [0u8; 1]).await.unwrap();
                kinds.push(c.get_ref().1.handshake_kind());
            }
            assert_eq!(
                kinds,
                [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)]
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_close_notify_either_way_is_a_clean_end() {
    within(async {
        for version in [&TLS13, &TLS12] {
            // The client closes: the server reads to the end, and may
            // still write.
            let (mut server, mut client) = pair(64 * 1024, version).await;
            client.write_all(b"bye").await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"bye");
            assert_eq!(server.buffered_capacity(), 0);
            server.write_all(b"last").await.unwrap();
            server.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"last");

            // The server closes: the client reads to the end, and may
            // still write.
            let (mut server, mut client) = pair(64 * 1024, version).await;
            server.write_all(b"bye").await.unwrap();
            server.shutdown().await.unwrap();
            let e = server.write_all(b"more").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"bye");
            client.write_all(b"late").await.unwrap();
            client.flush().await.unwrap();
            let mut got = [0u8; 4];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"late");
        }
    })
    .await;
}

#[tokio::test]
async fn an_end_without_close_notify_is_an_unexpected_eof() {
    within(async {
        let (mut server, mut client) = pair(64 * 1024, &TLS13).await;
        client.write_all(b"data").await.unwrap();
        client.flush().await.unwrap();
        client.get_mut().0.shutdown().await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        let e = server.read(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    })
    .await;
}

/// The ClientHello a TLS 1.3 client sends, as it sends it.
async fn client_hello() -> Vec<u8> {
    let (a, mut b) = duplex(64 * 1024);
    let connecting =
        tokio::spawn(async move { connector(&TLS13, false).connect(localhost(), a).await });
    let mut hello = vec![0u8; 5];
    b.read_exact(&mut hello).await.unwrap();
    let len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
    hello.resize(5 + len, 0);
    b.read_exact(&mut hello[5..]).await.unwrap();
    connecting.abort();
    hello
}

/// Accepts on a pipe that carries `input` and then ends; the result, and
/// what the server sent back.
async fn accept_input(input: &[u8]) -> (io::Result<TlsStream<DuplexStream>>, Vec<u8>) {
    let (a, mut b) = duplex(64 * 1024);
    let (r, ()) = tokio::join!(accept(a, server_config(false)), async {
        // The server may stop reading: its end closes.
        if b.write_all(input).await.is_ok() {
            let _ = b.shutdown().await;
        }
    });
    let mut answer = Vec::new();
    if r.is_err() {
        b.read_to_end(&mut answer).await.unwrap();
    }
    (r, answer)
}

#[tokio::test]
async fn garbage_or_a_cut_handshake_is_an_error() {
    within(async {
        let (r, answer) = accept_input(b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n").await;
        let Err(e) = r else {
            panic!("garbage was taken")
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(answer.first(), Some(&0x15), "an alert record goes back");

        let hello = client_hello().await;
        let (r, _) = accept_input(&hello[..hello.len() / 2]).await;
        assert_eq!(
            r.err().map(|e| e.kind()),
            Some(io::ErrorKind::UnexpectedEof)
        );
        // A whole ClientHello, then nothing.
        let (r, answer) = accept_input(&hello).await;
        assert_eq!(
            r.err().map(|e| e.kind()),
            Some(io::ErrorKind::UnexpectedEof)
        );
        assert_eq!(answer.first(), Some(&0x16), "the ServerHello went out");

        // Mangled ClientHellos and random bytes: an error each, no panic.
        let mut rng = Rng(15);
        for i in 0..200 {
            let mut input = if i % 4 == 0 {
                pattern(rng.size(600), rng.next())
            } else {
                hello.clone()
            };
            for _ in 0..rng.size(4) {
                let at = rng.size(input.len()) - 1;
                input[at] ^= rng.next() as u8 | 1;
            }
            input.truncate(rng.size(input.len()));
            let (r, _) = accept_input(&input).await;
            assert!(r.is_err(), "input {i} was taken");
        }
    })
    .await;
}

#[tokio::test]
async fn input_past_rustlss_limits_is_an_error() {
    within(async {
        // A record longer than any TLS allows.
        let (r, _) = accept_input(&[0x16, 0x03, 0x01, 0xFF, 0xFF]).await;
        let e = r.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("received corrupt message of type MessageTooLarge")
        );
        // A handshake message over 64 KiB.
        let (r, _) = accept_input(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]).await;
        let e = r.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("received corrupt message of type HandshakePayloadTooLarge")
        );
        // A message under the limit, one byte a record: the records are
        // kept until it is whole, and there are too many.
        let mut input = Vec::new();
        for byte in [0x01, 0x00, 0xFF, 0x00]
            .into_iter()
            .chain(std::iter::repeat_n(0, 20_000))
        {
            input.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, byte]);
        }
        let (r, _) = accept_input(&input).await;
        let e = r.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("83973 bytes of TLS input and no complete message (at most 83973)")
        );
    })
    .await;
}

/// The pipe as a test wants it: at most one byte per read and per write
/// (`trickle`), or a bit of the tag flipped in the next application data
/// record written while `tamper` is set.
#[derive(Debug)]
struct Wire<T> {
    io: T,
    trickle: bool,
    tamper: Arc<AtomicBool>,
}

impl<T> Wire<T> {
    fn trickle(io: T) -> Wire<T> {
        Wire {
            io,
            trickle: true,
            tamper: Arc::default(),
        }
    }

    fn tamper(io: T, tamper: &Arc<AtomicBool>) -> Wire<T> {
        Wire {
            io,
            trickle: false,
            tamper: tamper.clone(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Wire<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.trickle {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let mut one = [0u8; 1];
        let mut inner = ReadBuf::new(&mut one);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut inner))?;
        buf.put_slice(inner.filled());
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Wire<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.trickle {
            return Pin::new(&mut self.io).poll_write(cx, &buf[..buf.len().min(1)]);
        }
        if !self.tamper.load(Ordering::SeqCst) || buf.first() != Some(&0x17) {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        let mut bad = buf.to_vec();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        let r = Pin::new(&mut self.io).poll_write(cx, &bad);
        if let Poll::Ready(Ok(n)) = r {
            assert_eq!(n, bad.len(), "the whole record in one write");
            self.tamper.store(false, Ordering::SeqCst);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_record_with_a_bad_mac_is_a_read_error() {
    within(async {
        for version in [&TLS13, &TLS12] {
            let (a, b) = duplex(64 * 1024);
            let armed = Arc::new(AtomicBool::new(false));
            let tamper = Wire::tamper(b, &armed);
            let (mut server, mut client) =
                connect(a, tamper, server_config(false), &connector(version, false)).await;
            client.write_all(b"good").await.unwrap();
            client.flush().await.unwrap();
            armed.store(true, Ordering::SeqCst);
            client.write_all(b"evil").await.unwrap();
            client.flush().await.unwrap();
            let mut got = [0u8; 4];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"good", "what came before it is read");
            let e = server.read(&mut got).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert_eq!(e.to_string(), "cannot decrypt peer's message");
            // It stays failed, for writes too, and the client got the alert.
            assert!(server.read(&mut got).await.is_err());
            assert!(server.write_all(b"x").await.is_err());
            let e = client.read(&mut got).await.unwrap_err();
            assert!(e.to_string().contains("BadRecordMac"), "{e}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_reader_does_not_take_a_parked_writers_wakeup() {
    within(async {
        let (a, b) = duplex(1024);
        let armed = Arc::new(AtomicBool::new(false));
        let tamper = Wire::tamper(b, &armed);
        let (mut server, mut client) =
            connect(a, tamper, server_config(false), &connector(&TLS13, false)).await;
        // The writer fills the pipe and waits on it.
        let (woken, waker) = counting_waker();
        let mut wcx = Context::from_waker(&waker);
        let block = vec![0u8; 16 * 1024];
        while let Poll::Ready(r) = Pin::new(&mut server).poll_write(&mut wcx, &block) {
            r.unwrap();
        }
        // A bad record fails the read, and rustls queues an alert: the
        // read must not send it, which would register the reader's waker
        // in place of the writer's.
        armed.store(true, Ordering::SeqCst);
        client.write_all(b"evil").await.unwrap();
        client.flush().await.unwrap();
        let (_, reader) = counting_waker();
        let mut rcx = Context::from_waker(&reader);
        let mut bytes = [0u8; 8];
        let mut buf = ReadBuf::new(&mut bytes);
        let r = Pin::new(&mut server).poll_read(&mut rcx, &mut buf);
        assert!(matches!(r, Poll::Ready(Err(_))), "{r:?}");
        // The client reads: the pipe has room, and the writer is woken.
        let mut sink = [0u8; 512];
        let _ = client.get_mut().0.io.read(&mut sink).await.unwrap();
        assert!(woken.count() >= 1, "the parked writer was woken");
    })
    .await;
}

#[tokio::test]
async fn it_serves_as_a_connections_transport() {
    within(async {
        let (server, mut client) = pair(64 * 1024, &TLS13).await;
        let mut t: BoxedStream =
            Stream::with_origin(Box::new(server) as Box<dyn Io>, Origin::default());
        client.write_all(&[0xC0, 0x00]).await.unwrap();
        client.flush().await.unwrap();
        std::future::poll_fn(|cx| t.poll_read_ready(cx))
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(t.read_some(&mut buf, 1024).unwrap(), 2);
        assert_eq!(&buf[..], &[0xC0, 0x00]);
        assert_eq!(t.try_write(&[0xD0, 0x00]).unwrap(), 2);
        std::future::poll_fn(|cx| t.poll_write_ready(cx))
            .await
            .unwrap();
        let mut got = [0u8; 2];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0xD0, 0x00]);
    })
    .await;
}
