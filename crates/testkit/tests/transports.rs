//! Listeners that are not plain TCP, over real sockets: TLS and mutual TLS
//! (rustls as the client, certificates from `strata-ca`), WebSocket and
//! WebSocket over TLS (tokio-tungstenite as the client) [MQTT-6.0.0-1 ..
//! 4], the PROXY protocol, and what each does with bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_broker::auth::{AuthDecision, AuthFuture, Authenticator, ConnectInfo, Identity};
use strata_broker::config::{CertFiles, TlsFiles, TlsVersion};
use strata_broker::{Broker, BrokerConfig, Listener, TransportKind};
use strata_ca::{Ca, Issued, Validity};
use strata_testkit::raw;
use strata_testkit::{RawClient, Read, WAIT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// What the authenticator saw of each CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    username: Option<String>,
    certificate: Option<String>,
    peer: Option<SocketAddr>,
}

/// Lets everyone in, and keeps what it was told.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

impl Authenticator for Recorder {
    fn connect<'a>(&'a self, c: ConnectInfo<'a>) -> AuthFuture<'a> {
        self.0.lock().unwrap().push(Seen {
            username: c.username.map(str::to_owned),
            certificate: c.certificate.map(str::to_owned),
            peer: c.peer,
        });
        let username = c.username.map(Arc::from);
        Box::pin(async move {
            AuthDecision::Allow {
                identity: Identity::user(username, None),
                data: None,
            }
        })
    }
}

/// A CA and the files a TLS listener names, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Strata test CA", 30).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap();
        server.write(dir.path(), "server").unwrap();
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self) -> TlsFiles {
        TlsFiles::new(CertFiles {
            certfile: self.path("server.pem"),
            keyfile: self.path("server.key"),
        })
    }

    /// Mutual TLS: client certificates required, checked against the CA.
    fn mutual(&self, as_username: bool) -> TlsFiles {
        TlsFiles {
            cafile: Some(self.path("ca.pem")),
            require_certificate: true,
            use_identity_as_username: as_username,
            ..self.tls()
        }
    }
}

fn listener(transport: TransportKind, tls: Option<TlsFiles>) -> Listener {
    Listener {
        transport,
        tls,
        ..Listener::tcp("127.0.0.1:0".parse().unwrap())
    }
}

/// A broker with these listeners and the recording authenticator; the
/// CONNECT timeout is short, for the tests of stalled handshakes.
async fn start(listeners: Vec<Listener>) -> (Broker, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let session = strata_session::Config {
        connect_timeout: Duration::from_millis(500),
        ..strata_session::Config::default()
    };
    let broker = Broker::start(BrokerConfig {
        listeners,
        session,
        sys_interval: None,
        authenticator: Some(recorder.clone()),
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    (broker, recorder)
}

// ring is the workspace's one provider; rustls marks it deprecated only
// for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A rustls client trusting `ca_pem`, presenting `cert` if given.
fn client_config(
    ca_pem: &str,
    cert: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(c) => b
            .with_client_auth_cert(
                pem_certs(&c.cert_pem),
                rustls::pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("the handshake ended in time")
}

/// A 3.1.1 CONNECT answered with CONNACK 0 over `c`.
async fn connect_ok<S: AsyncRead + AsyncWrite + Unpin>(c: &mut RawClient<S>, id: &str) {
    c.send(&raw::connect_clean(4, id)).await;
    let ack = c.expect(2).await;
    assert_eq!(ack.body, [0, 0], "CONNACK");
}

/// A message published over `from` reaches `to`, subscribed to `topic`.
async fn exchange<A, B>(from: &mut RawClient<A>, to: &mut RawClient<B>, topic: &str)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    to.send(&raw::subscribe(4, 1, topic, 1)).await;
    to.expect(9).await;
    from.send(&raw::publish(4, 1, false, topic, 7, b"over the wire"))
        .await;
    assert_eq!(from.expect(4).await.ack_id(), 7, "PUBACK");
    let (_, payload, _) = to.expect(3).await.publish_parts();
    assert_eq!(payload, b"over the wire");
}

/// Whether the server closes `s` (or refuses to go on) within [`WAIT`].
async fn closes<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn tls_clients_exchange_messages_with_tcp_clients() {
    let pki = Pki::new();
    let (broker, _) = start(vec![
        listener(TransportKind::Tls, Some(pki.tls())),
        listener(TransportKind::Tcp, None),
    ])
    .await;
    let names = broker.listening();
    assert!(names[0].starts_with("tls://127.0.0.1:"), "{names:?}");
    assert!(!names[1].contains("://"), "{names:?}");
    let config = client_config(
        &pki.ca.cert_pem(),
        None,
        rustls::DEFAULT_VERSIONS,
        &[b"mqtt"],
    );
    let tls = tls_connect(broker.local_addrs()[0], config, "localhost")
        .await
        .unwrap();
    // ALPN `mqtt` is offered, and chosen by a client that asks for it.
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"mqtt"[..]));
    let mut secure = RawClient::over(tls);
    connect_ok(&mut secure, "secure").await;
    let mut plain = RawClient::connect(broker.local_addrs()[1]).await;
    connect_ok(&mut plain, "plain").await;
    exchange(&mut secure, &mut plain, "t/a").await;
    exchange(&mut plain, &mut secure, "t/b").await;
    // A client that names no ALPN protocol is served too.
    let config = client_config(&pki.ca.cert_pem(), None, rustls::DEFAULT_VERSIONS, &[]);
    let tls = tls_connect(broker.local_addrs()[0], config, "127.0.0.1")
        .await
        .unwrap();
    connect_ok(&mut RawClient::over(tls), "no-alpn").await;
}

#[tokio::test]
async fn mutual_tls_names_the_client_by_its_certificate() {
    let pki = Pki::new();
    let (broker, recorder) = start(vec![
        listener(TransportKind::Tls, Some(pki.mutual(true))),
        listener(TransportKind::Tls, Some(pki.mutual(false))),
    ])
    .await;
    let alice = pki.ca.issue_client("alice", 30).unwrap();
    let config = client_config(
        &pki.ca.cert_pem(),
        Some(&alice),
        rustls::DEFAULT_VERSIONS,
        &[],
    );
    // use_identity_as_username: the certificate's CN is the username,
    // whatever the CONNECT says.
    let tls = tls_connect(broker.local_addrs()[0], config.clone(), "localhost")
        .await
        .unwrap();
    let mut c = RawClient::over(tls);
    c.send(&raw::connect(
        4,
        0x02 | 0x80,
        0,
        "with-cert",
        &[&raw::field(b"mallory")[..]].concat(),
    ))
    .await;
    assert_eq!(c.expect(2).await.body, [0, 0]);
    let tls = tls_connect(broker.local_addrs()[1], config, "localhost")
        .await
        .unwrap();
    connect_ok(&mut RawClient::over(tls), "cert-only").await;
    let seen = recorder.seen();
    assert_eq!(seen[0].username.as_deref(), Some("alice"));
    assert_eq!(seen[0].certificate.as_deref(), Some("alice"));
    assert_eq!(seen[1].username, None);
    assert_eq!(seen[1].certificate.as_deref(), Some("alice"));
    assert!(seen[0].peer.is_some_and(|p| p.ip().is_loopback()));
}

/// A TLS client whose handshake the broker must refuse: it fails, or the
/// connection closes before any MQTT is answered.
async fn refused(addr: SocketAddr, config: Arc<rustls::ClientConfig>) {
    match tls_connect(addr, config, "localhost").await {
        Err(_) => {}
        Ok(tls) => {
            // TLS 1.3: the client finishes before the server has checked
            // its certificate; the server's alert ends the connection.
            let mut c = RawClient::over(tls);
            c.send(&raw::connect_clean(4, "refused")).await;
            assert_eq!(c.read().await, Read::Closed);
        }
    }
}

#[tokio::test]
async fn mutual_tls_refuses_missing_unknown_expired_and_revoked_certificates() {
    let pki = Pki::new();
    let revoked = pki.ca.issue_client("revoked", 30).unwrap();
    std::fs::write(
        pki.path("crl.pem"),
        pki.ca.crl([&revoked.serial], 30).unwrap(),
    )
    .unwrap();
    let files = TlsFiles {
        crlfile: Some(pki.path("crl.pem")),
        ..pki.mutual(false)
    };
    let (broker, recorder) = start(vec![listener(TransportKind::Tls, Some(files))]).await;
    let addr = broker.local_addrs()[0];
    let ca = pki.ca.cert_pem();
    let v = rustls::DEFAULT_VERSIONS;
    refused(addr, client_config(&ca, None, v, &[])).await;
    let stranger = Ca::new("Another CA", 30)
        .unwrap()
        .issue_client("eve", 30)
        .unwrap();
    refused(addr, client_config(&ca, Some(&stranger), v, &[])).await;
    let expired = pki
        .ca
        .issue_client_with("old", Validity::expired().unwrap())
        .unwrap();
    refused(addr, client_config(&ca, Some(&expired), v, &[])).await;
    refused(addr, client_config(&ca, Some(&revoked), v, &[])).await;
    assert!(
        recorder.seen().is_empty(),
        "no refused client got to CONNECT"
    );
    // And a good one still gets in.
    let good = pki.ca.issue_client("good", 30).unwrap();
    let tls = tls_connect(addr, client_config(&ca, Some(&good), v, &[]), "localhost")
        .await
        .unwrap();
    connect_ok(&mut RawClient::over(tls), "good").await;
}

#[tokio::test]
async fn tls_version_and_sni_are_the_listeners() {
    let pki = Pki::new();
    let other = pki.ca.issue_server(&["other.example".into()], 30).unwrap();
    other.write(pki.dir.path(), "other").unwrap();
    let files = TlsFiles {
        min_version: TlsVersion::V1_3,
        sni: vec![(
            "other.example".into(),
            CertFiles {
                certfile: pki.path("other.pem"),
                keyfile: pki.path("other.key"),
            },
        )],
        ..pki.tls()
    };
    let (broker, _) = start(vec![listener(TransportKind::Tls, Some(files))]).await;
    let addr = broker.local_addrs()[0];
    let ca = pki.ca.cert_pem();
    let tls12 = client_config(&ca, None, &[&rustls::version::TLS12], &[]);
    assert!(
        tls_connect(addr, tls12, "localhost").await.is_err(),
        "TLS 1.2 refused"
    );
    let tls13 = client_config(&ca, None, &[&rustls::version::TLS13], &[]);
    // The name the client asks for picks the certificate: each verifies
    // only under its own name.
    let s = tls_connect(addr, tls13.clone(), "other.example")
        .await
        .unwrap();
    let served = s.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(served.as_ref(), pem_certs(&other.cert_pem)[0].as_ref());
    tls_connect(addr, tls13, "localhost").await.unwrap();
}

#[tokio::test]
async fn certificates_reload_for_new_handshakes_and_a_bad_file_keeps_the_old() {
    let pki = Pki::new();
    let (broker, _) = start(vec![listener(TransportKind::Tls, Some(pki.tls()))]).await;
    let addr = broker.local_addrs()[0];
    let config = client_config(&pki.ca.cert_pem(), None, rustls::DEFAULT_VERSIONS, &[]);
    let open = tls_connect(addr, config.clone(), "localhost")
        .await
        .unwrap();
    let mut open = RawClient::over(open);
    connect_ok(&mut open, "stays").await;
    // A new certificate for another name, in the same files.
    let renewed = pki
        .ca
        .issue_server(&["renewed.example".into()], 30)
        .unwrap();
    std::fs::write(pki.path("server.pem"), &renewed.cert_pem).unwrap();
    std::fs::write(pki.path("server.key"), &renewed.key_pem).unwrap();
    let results = broker.reload_certificates();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert!(
        tls_connect(addr, config.clone(), "localhost")
            .await
            .is_err()
    );
    tls_connect(addr, config.clone(), "renewed.example")
        .await
        .unwrap();
    // A key that does not match: the reload fails, naming the file, and
    // the renewed certificate stays.
    let stray = pki.ca.issue_server(&["x".into()], 30).unwrap();
    std::fs::write(pki.path("server.key"), &stray.key_pem).unwrap();
    let results = broker.reload_certificates();
    let err = results[0].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("server.key"), "{err}");
    tls_connect(addr, config, "renewed.example").await.unwrap();
    // The connection made before the reloads went on throughout.
    open.send(&[0xC0, 0]).await;
    open.expect(13).await;
}

#[tokio::test]
async fn garbage_and_stalled_handshakes_are_closed() {
    let pki = Pki::new();
    let (broker, recorder) = start(vec![listener(TransportKind::Tls, Some(pki.tls()))]).await;
    let addr = broker.local_addrs()[0];
    // An MQTT CONNECT where a ClientHello belongs.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&raw::connect_clean(4, "plain")).await.unwrap();
    assert!(closes(&mut c).await);
    // Nothing at all: closed at the CONNECT timeout (500 ms here).
    let mut c = TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(closes(&mut c).await);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Half a ClientHello, then silence: the same.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    assert!(closes(&mut c).await);
    assert!(recorder.seen().is_empty());
    // The listener still serves.
    let config = client_config(&pki.ca.cert_pem(), None, rustls::DEFAULT_VERSIONS, &[]);
    let tls = tls_connect(addr, config, "localhost").await.unwrap();
    connect_ok(&mut RawClient::over(tls), "after").await;
}

/// Why a broker with one TLS listener on `files` does not start.
async fn refused_start(files: TlsFiles) -> String {
    Broker::start(BrokerConfig {
        listeners: vec![listener(TransportKind::Tls, Some(files))],
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err()
    .to_string()
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_start_naming_the_file() {
    let pki = Pki::new();
    std::fs::write(pki.path("broken.pem"), "not a certificate").unwrap();
    let files = TlsFiles {
        cert: CertFiles {
            certfile: pki.path("broken.pem"),
            keyfile: pki.path("server.key"),
        },
        ..pki.tls()
    };
    let err = refused_start(files).await;
    assert!(err.starts_with("listener.certfile = "), "{err}");
    assert!(err.contains("broken.pem"), "{err}");
    let missing = Path::new("/nonexistent/strata.pem");
    let files = TlsFiles {
        cert: CertFiles {
            certfile: missing.into(),
            keyfile: pki.path("server.key"),
        },
        ..pki.tls()
    };
    let err = refused_start(files).await;
    assert!(err.contains("/nonexistent/strata.pem"), "{err}");
}

/// A PROXY v2 header for a TCP over IPv4 connection from `src` to `dst`.
fn proxy_v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(s.ip().octets());
    h.extend(d.ip().octets());
    h.extend(s.port().to_be_bytes());
    h.extend(d.port().to_be_bytes());
    h
}

fn proxied(transport: TransportKind, tls: Option<TlsFiles>) -> Listener {
    Listener {
        proxy_protocol: true,
        ..listener(transport, tls)
    }
}

#[tokio::test]
async fn the_proxy_header_gives_the_clients_address() {
    let pki = Pki::new();
    let (broker, recorder) = start(vec![
        proxied(TransportKind::Tcp, None),
        proxied(TransportKind::Tls, Some(pki.tls())),
    ])
    .await;
    let [tcp, tls] = [broker.local_addrs()[0], broker.local_addrs()[1]];
    // v1, with the CONNECT in the same write.
    let mut c = RawClient::connect(tcp).await;
    let mut first = format!("PROXY TCP4 192.0.2.7 {} 4567 1883\r\n", tcp.ip()).into_bytes();
    first.extend(raw::connect_clean(4, "v1"));
    c.send(&first).await;
    assert_eq!(c.expect(2).await.body, [0, 0]);
    // v2, alone, then the CONNECT.
    let mut c = RawClient::connect(tcp).await;
    c.send(&proxy_v2("198.51.100.9:40000".parse().unwrap(), tcp))
        .await;
    connect_ok(&mut c, "v2").await;
    // v2 in front of a TLS handshake.
    let mut s = TcpStream::connect(tls).await.unwrap();
    s.write_all(&proxy_v2("203.0.113.5:1234".parse().unwrap(), tls))
        .await
        .unwrap();
    let config = client_config(&pki.ca.cert_pem(), None, rustls::DEFAULT_VERSIONS, &[]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let s = tokio_rustls::TlsConnector::from(config)
        .connect(name, s)
        .await
        .unwrap();
    connect_ok(&mut RawClient::over(s), "v2-tls").await;
    let peers: Vec<_> = recorder.seen().iter().map(|s| s.peer).collect();
    assert_eq!(
        peers,
        [
            Some("192.0.2.7:4567".parse().unwrap()),
            Some("198.51.100.9:40000".parse().unwrap()),
            Some("203.0.113.5:1234".parse().unwrap()),
        ]
    );
}

#[tokio::test]
async fn a_missing_or_lying_proxy_header_closes_and_one_not_asked_for_is_malformed() {
    let (broker, recorder) = start(vec![
        proxied(TransportKind::Tcp, None),
        listener(TransportKind::Tcp, None),
    ])
    .await;
    let [proxy, plain] = [broker.local_addrs()[0], broker.local_addrs()[1]];
    // No header: the CONNECT is refused at its first byte.
    let mut c = RawClient::connect(proxy).await;
    c.send(&raw::connect_clean(4, "bare")).await;
    assert_eq!(c.read().await, Read::Closed);
    // A v2 header claiming 40000 bytes of addresses.
    let mut c = RawClient::connect(proxy).await;
    let mut h = proxy_v2("192.0.2.1:1".parse().unwrap(), proxy);
    h[14..16].copy_from_slice(&40000u16.to_be_bytes());
    c.send(&h).await;
    assert_eq!(c.read().await, Read::Closed);
    // A v1 header with no CRLF within its 107 bytes.
    let mut c = RawClient::connect(proxy).await;
    c.send(format!("PROXY TCP4 {}", "1".repeat(120)).as_bytes())
        .await;
    assert_eq!(c.read().await, Read::Closed);
    // A header sent to a listener that takes none is a malformed first
    // packet: closed, never read as an address [MQTT-3.1.0-1].
    let mut c = RawClient::connect(plain).await;
    let mut first = b"PROXY TCP4 192.0.2.7 127.0.0.1 4567 1883\r\n".to_vec();
    first.extend(raw::connect_clean(4, "sneaky"));
    c.send(&first).await;
    assert_eq!(c.read().await, Read::Closed);
    assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());
}

mod ws {
    //! A WebSocket client on tokio-tungstenite, sending MQTT bytes as
    //! binary messages cut where the test says.

    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_core::Stream;
    use futures_sink::Sink;
    use strata_testkit::split_frame;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{self, Message};
    use tokio_tungstenite::{WebSocketStream, client_async};

    use super::*;

    pub struct WsClient<S> {
        ws: WebSocketStream<S>,
        buf: Vec<u8>,
    }

    /// Upgrades `io` at `path` offering `protocols`; the HTTP status of
    /// a refusal is the error.
    pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
        io: S,
        addr: SocketAddr,
        path: &str,
        protocols: Option<&str>,
    ) -> Result<(WsClient<S>, Option<String>), Option<u16>> {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        if let Some(p) = protocols {
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        match tokio::time::timeout(WAIT, client_async(req, io))
            .await
            .unwrap()
        {
            Ok((ws, response)) => {
                let chosen = response
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|v| v.to_str().unwrap().to_owned());
                Ok((
                    WsClient {
                        ws,
                        buf: Vec::new(),
                    },
                    chosen,
                ))
            }
            Err(tungstenite::Error::Http(r)) => Err(Some(r.status().as_u16())),
            Err(_) => Err(None),
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
        pub async fn send(&mut self, m: Message) {
            let ws = &mut self.ws;
            poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx))
                .await
                .unwrap();
            Pin::new(&mut *ws).start_send(m).unwrap();
            poll_fn(|cx| Pin::new(&mut *ws).poll_flush(cx))
                .await
                .unwrap();
        }

        /// Each slice in its own binary message.
        pub async fn send_binary(&mut self, parts: &[&[u8]]) {
            for p in parts {
                self.send(Message::binary(p.to_vec())).await;
            }
        }

        /// The next MQTT packet (first byte, body), or None once closed.
        pub async fn packet(&mut self) -> Option<(u8, Vec<u8>)> {
            loop {
                if let Some((first, body, used)) = split_frame(&self.buf) {
                    self.buf.drain(..used);
                    return Some((first, body));
                }
                let ws = &mut self.ws;
                let next =
                    tokio::time::timeout(WAIT, poll_fn(|cx| Pin::new(&mut *ws).poll_next(cx)))
                        .await
                        .expect("the server answered or closed in time");
                match next {
                    Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(other)) if !other.is_close() => panic!("not binary: {other:?}"),
                    _ => return None,
                }
            }
        }

        pub async fn expect(&mut self, packet_type: u8) -> Vec<u8> {
            loop {
                match self.packet().await {
                    Some((first, body)) if first >> 4 == packet_type => return body,
                    Some(_) => continue,
                    None => panic!("closed while waiting for packet type {packet_type}"),
                }
            }
        }
    }
}

fn ws_listener(transport: TransportKind, tls: Option<TlsFiles>, path: &str) -> Listener {
    Listener {
        path: path.into(),
        ..listener(transport, tls)
    }
}

#[tokio::test]
async fn websocket_packets_need_not_align_with_messages() {
    use tokio_tungstenite::tungstenite::Message;
    let pki = Pki::new();
    let (broker, _) = start(vec![
        ws_listener(TransportKind::Ws, None, "/mqtt"),
        ws_listener(TransportKind::Wss, Some(pki.tls()), "/secure"),
        listener(TransportKind::Tcp, None),
    ])
    .await;
    let names = broker.listening();
    assert!(
        names[0].starts_with("ws://127.0.0.1:") && names[0].ends_with("/mqtt"),
        "{names:?}"
    );
    assert!(
        names[1].starts_with("wss://127.0.0.1:") && names[1].ends_with("/secure"),
        "{names:?}"
    );
    let [ws_addr, wss_addr, tcp_addr] = [0, 1, 2].map(|i| broker.local_addrs()[i]);
    let mut plain = RawClient::connect(tcp_addr).await;
    connect_ok(&mut plain, "tcp").await;

    // ws: the server picks `mqtt` [MQTT-6.0.0-4].
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let (mut c, chosen) = ws::open(tcp, ws_addr, "/mqtt", Some("mqtt")).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    // A CONNECT cut in three messages, then SUBSCRIBE and PUBLISH in one
    // [MQTT-6.0.0-2].
    let connect = raw::connect_clean(4, "ws");
    c.send_binary(&[&connect[..1], &connect[1..5], &connect[5..]])
        .await;
    assert_eq!(c.expect(2).await, [0, 0]);
    let mut both = raw::subscribe(4, 1, "ws/t", 1);
    both.extend(raw::publish(4, 1, false, "ws/t", 9, b"to myself"));
    c.send_binary(&[&both]).await;
    assert_eq!(c.expect(9).await, [0, 1, 1]);
    let mut got = Vec::new();
    while got.len() < 2 {
        let (first, body) = c.packet().await.unwrap();
        got.push(first >> 4);
        if first >> 4 == 3 {
            assert!(body.ends_with(b"to myself"));
        }
    }
    got.sort();
    assert_eq!(got, [3, 4], "the PUBACK and the delivery");
    // To and from a TCP client.
    plain.send(&raw::subscribe(4, 1, "to/tcp", 0)).await;
    plain.expect(9).await;
    c.send_binary(&[&raw::publish_qos0(4, "to/tcp", b"from ws")])
        .await;
    let p = plain.expect(3).await;
    // Topic length, "to/tcp", then the payload.
    assert_eq!(&p.body[2 + 6..], b"from ws");

    // wss, with an old client's subprotocol name.
    let config = client_config(&pki.ca.cert_pem(), None, rustls::DEFAULT_VERSIONS, &[]);
    let tls = tls_connect(wss_addr, config, "localhost").await.unwrap();
    let (mut s, chosen) = ws::open(tls, wss_addr, "/secure", Some("mqttv3.1"))
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("mqttv3.1"));
    s.send_binary(&[&raw::connect_clean(4, "wss")]).await;
    assert_eq!(s.expect(2).await, [0, 0]);
    s.send(Message::Close(None)).await;
    assert_eq!(s.packet().await, None);
}

#[tokio::test]
async fn websocket_refuses_wrong_paths_protocols_text_and_oversize() {
    use tokio_tungstenite::tungstenite::Message;
    let (broker, recorder) = start(vec![ws_listener(TransportKind::Ws, None, "/mqtt")]).await;
    let addr = broker.local_addrs()[0];
    let open = |path: &'static str, protocols: Option<&'static str>| async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        ws::open(tcp, addr, path, protocols).await.map(|(c, _)| c)
    };
    // No `mqtt` subprotocol offered [MQTT-6.0.0-3]: 400.
    assert_eq!(open("/mqtt", None).await.err(), Some(Some(400)));
    assert_eq!(open("/mqtt", Some("chat")).await.err(), Some(Some(400)));
    assert_eq!(open("/other", Some("mqtt")).await.err(), Some(Some(404)));
    // A text message closes the connection [MQTT-6.0.0-1].
    let mut c = open("/mqtt", Some("mqtt")).await.unwrap();
    c.send(Message::text("\u{10}")).await;
    assert_eq!(c.packet().await, None);
    // So does a message over the limit (max packet size + 64 KiB).
    let mut c = open("/mqtt", Some("mqtt")).await.unwrap();
    c.send_binary(&[&raw::connect_clean(4, "big")]).await;
    assert_eq!(c.expect(2).await, [0, 0]);
    c.send_binary(&[&vec![0u8; 2 << 20]]).await;
    assert_eq!(c.packet().await, None);
    // An upgrade request whose header never ends: closed, not buffered.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = b"GET /mqtt HTTP/1.1\r\nHost: x\r\n".to_vec();
    req.extend(b"X-Filler: ".iter().chain([b'a'; 16 * 1024].iter()));
    let _ = tcp.write_all(&req).await;
    assert!(closes(&mut tcp).await);
    // Only the client with the oversize message got to CONNECT.
    assert_eq!(recorder.seen().len(), 1);
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_the_websocket() {
    let (broker, recorder) = start(vec![ws_listener(TransportKind::Ws, None, "/mqtt")]).await;
    let addr = broker.local_addrs()[0];
    // The upgrade by hand: a client library always masks its frames.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "the server closed during the upgrade");
        response.push(b[0]);
    }
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    // A binary frame holding a CONNECT, without the mask bit.
    let connect = raw::connect_clean(4, "unmasked");
    let mut frame = vec![0x82, connect.len() as u8];
    frame.extend(&connect);
    tcp.write_all(&frame).await.unwrap();
    assert!(closes(&mut tcp).await);
    assert!(recorder.seen().is_empty());
}

#[tokio::test]
async fn ciphers_limit_the_suites_and_an_unknown_name_is_refused() {
    let pki = Pki::new();
    let files = TlsFiles {
        ciphers: vec!["TLS13_CHACHA20_POLY1305_SHA256".into()],
        ..pki.tls()
    };
    let (broker, _) = start(vec![listener(TransportKind::Tls, Some(files))]).await;
    let tls = tls_connect(
        broker.local_addrs()[0],
        client_config(&pki.ca.cert_pem(), None, rustls::DEFAULT_VERSIONS, &[]),
        "localhost",
    )
    .await
    .unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap();
    assert_eq!(
        suite.suite().as_str(),
        Some("TLS13_CHACHA20_POLY1305_SHA256")
    );
    let files = TlsFiles {
        ciphers: vec!["TLS_RSA_WITH_RC4_128_MD5".into()],
        ..pki.tls()
    };
    let err = refused_start(files).await;
    assert!(
        err.starts_with("listener.ciphers: \"TLS_RSA_WITH_RC4_128_MD5\""),
        "{err}"
    );
}

/// With `use_identity_as_username`, the certificate's identity is the user
/// the broker's own ACL file decides for (not the CONNECT's username), and
/// a client certificate lets a client in where anonymous ones are refused.
#[tokio::test]
async fn the_certificate_identity_feeds_the_acl() {
    let pki = Pki::new();
    std::fs::write(
        pki.path("acl"),
        "user alice\ntopic readwrite alice/#\nuser mallory\ntopic readwrite #\n",
    )
    .unwrap();
    let mut tls = listener(TransportKind::Tls, Some(pki.mutual(true)));
    // Not loopback-only by default: the certificate is what lets clients in.
    tls.allow_anonymous = Some(false);
    let broker = Broker::start(BrokerConfig {
        listeners: vec![tls, listener(TransportKind::Tcp, None)],
        sys_interval: None,
        auth: strata_broker::config::AuthConfig {
            acl_file: Some(pki.path("acl")),
            ..Default::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let alice = pki.ca.issue_client("alice", 30).unwrap();
    let config = client_config(
        &pki.ca.cert_pem(),
        Some(&alice),
        rustls::DEFAULT_VERSIONS,
        &[],
    );
    let stream = tls_connect(broker.local_addrs()[0], config, "localhost")
        .await
        .unwrap();
    let mut c = RawClient::over(stream);
    // It claims to be mallory, who may do anything: the certificate says
    // alice.
    c.send(&raw::connect(
        4,
        0x02 | 0x80,
        0,
        "cert-acl",
        &raw::field(b"mallory"),
    ))
    .await;
    assert_eq!(c.expect(2).await.body, [0, 0]);
    // alice/# only: a SUBSCRIBE to mallory's reach is refused (0x80), one
    // to alice's granted, and her own message comes back.
    c.send(&raw::subscribe(4, 1, "other/#", 1)).await;
    assert_eq!(c.expect(9).await.body, [0, 1, 0x80]);
    c.send(&raw::subscribe(4, 2, "alice/#", 1)).await;
    assert_eq!(c.expect(9).await.body, [0, 2, 1]);
    c.send(&raw::publish(4, 1, false, "alice/x", 6, b"yes"))
        .await;
    let (mut acked, mut got) = (false, None);
    while !acked || got.is_none() {
        match c.read().await {
            Read::Packet(p) if p.packet_type() == 4 => acked = true,
            Read::Packet(p) if p.packet_type() == 3 => got = Some(p.publish_parts().1),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got.unwrap(), b"yes");
}
