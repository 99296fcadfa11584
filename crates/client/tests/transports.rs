//! strata-client over TLS, mutual TLS, WebSocket and WebSocket over TLS,
//! against the real broker's listeners on 127.0.0.1, with certificates
//! from `strata-ca`: messages both ways on each, what TLS refuses, the
//! server's reason for a refused WebSocket upgrade, and reconnection
//! through a proxy the test cuts.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{Proxy, within};
use strata_broker::config::{CertFiles, TlsFiles};
use strata_broker::{Broker, BrokerConfig, Listener, TransportKind};
use strata_ca::Ca;
use strata_client::{Client, Error, Options, Protocol, QoS, Reconnect, TlsOptions, Transport};

/// A CA, a server certificate for `localhost` and `127.0.0.1`, a client
/// certificate `alice`, and a second CA with its own server and client
/// certificates, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Strata test CA", 30).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        ca.issue_server(&["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap()
            .write(dir.path(), "server")
            .unwrap();
        ca.issue_client("alice", 30)
            .unwrap()
            .write(dir.path(), "alice")
            .unwrap();
        let other = Ca::new("Another CA", 30).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.cert_pem()).unwrap();
        other
            .issue_client("eve", 30)
            .unwrap()
            .write(dir.path(), "eve")
            .unwrap();
        other
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap()
            .write(dir.path(), "impostor")
            .unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A listener's files, serving `server` (`server` or `impostor`).
    fn served(&self, server: &str) -> TlsFiles {
        TlsFiles::new(CertFiles {
            certfile: self.path(&format!("{server}.pem")),
            keyfile: self.path(&format!("{server}.key")),
        })
    }

    /// Mutual TLS: a certificate from the CA is required.
    fn mutual(&self) -> TlsFiles {
        TlsFiles {
            cafile: Some(self.path("ca.pem")),
            require_certificate: true,
            ..self.served("server")
        }
    }

    /// Trusting the test CA, no client certificate.
    fn trusting(&self) -> TlsOptions {
        TlsOptions {
            cafile: Some(self.path("ca.pem")),
            ..TlsOptions::default()
        }
    }

    /// Trusting the test CA, presenting `who`'s certificate.
    fn as_client(&self, who: &str) -> TlsOptions {
        TlsOptions {
            cert: Some(self.path(&format!("{who}.pem"))),
            key: Some(self.path(&format!("{who}.key"))),
            ..self.trusting()
        }
    }
}

fn listener(transport: TransportKind, tls: Option<TlsFiles>, path: &str) -> Listener {
    Listener {
        transport,
        tls,
        path: path.into(),
        ..Listener::tcp("127.0.0.1:0".parse().unwrap())
    }
}

async fn start(listeners: Vec<Listener>) -> Broker {
    Broker::start(BrokerConfig {
        listeners,
        sys_interval: None,
        ..BrokerConfig::default()
    })
    .await
    .unwrap()
}

fn options(address: String, id: &str, transport: Transport) -> Options {
    let mut o = Options::new(address, id);
    o.transport = transport;
    o.connect_timeout = common::WAIT;
    o
}

fn tcp_options(addr: SocketAddr, id: &str) -> Options {
    options(addr.to_string(), id, Transport::Tcp)
}

#[tokio::test]
async fn every_transport_carries_messages_both_ways() {
    let pki = Pki::new();
    let broker = start(vec![
        listener(TransportKind::Tcp, None, "/mqtt"),
        listener(TransportKind::Tls, Some(pki.served("server")), "/mqtt"),
        listener(TransportKind::Ws, None, "/mqtt"),
        listener(TransportKind::Wss, Some(pki.served("server")), "/secure"),
    ])
    .await;
    let [tcp, tls, ws, wss] = [0, 1, 2, 3].map(|i| broker.local_addrs()[i]);
    let (plain, mut plain_inbox, _) = Client::connect(tcp_options(tcp, "plain")).await.unwrap();
    plain
        .subscribe(&[("out/#", QoS::ExactlyOnce)])
        .await
        .unwrap();
    // By name (SNI, a DNS name in the certificate) and by IP address.
    let cases = [
        (
            "tls",
            format!("localhost:{}", tls.port()),
            Transport::Tls(pki.trusting()),
        ),
        (
            "ws",
            ws.to_string(),
            Transport::Ws {
                path: "/mqtt".into(),
            },
        ),
        (
            "wss",
            wss.to_string(),
            Transport::Wss {
                path: "/secure".into(),
                tls: pki.trusting(),
            },
        ),
    ];
    // Larger than a TLS record (16 KiB) and than the read buffers: cut
    // into pieces on the way, joined again on arrival.
    let big = vec![b'x'; 300 * 1024];
    for (name, address, transport) in cases {
        for protocol in [Protocol::V3_1_1, Protocol::V5] {
            let what = format!("{name} {protocol:?}");
            let mut o = options(address.clone(), name, transport.clone());
            o.protocol = protocol;
            let (c, mut inbox, _) = Client::connect(o).await.unwrap();
            let filter = format!("in/{name}");
            c.subscribe(&[(filter.as_str(), QoS::ExactlyOnce)])
                .await
                .unwrap();
            // To the client: one large message, then many small ones
            // written back to back.
            plain
                .publish(&filter, QoS::AtLeastOnce, false, big.clone())
                .await
                .unwrap();
            let m = within(&what, inbox.recv()).await.unwrap();
            assert_eq!(m.payload.len(), big.len(), "{what}");
            let sent: Vec<_> = (0..100)
                .map(|i| {
                    plain
                        .start_publish(&filter, QoS::AtLeastOnce, false, i.to_string())
                        .unwrap()
                })
                .collect();
            for h in sent {
                h.done().await.unwrap();
            }
            for i in 0..100 {
                let m = within(&what, inbox.recv()).await.unwrap();
                assert_eq!(m.payload, i.to_string().as_bytes(), "{what}");
            }
            // From the client, at every QoS.
            let topic = format!("out/{name}");
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                c.publish(&topic, qos, false, format!("{what} {qos:?}"))
                    .await
                    .unwrap();
                let m = within(&what, plain_inbox.recv()).await.unwrap();
                assert_eq!(
                    (m.topic.as_str(), &m.payload[..]),
                    (topic.as_str(), format!("{what} {qos:?}").as_bytes())
                );
            }
            c.publish(&topic, QoS::AtLeastOnce, false, big.clone())
                .await
                .unwrap();
            let m = within(&what, plain_inbox.recv()).await.unwrap();
            assert_eq!(m.payload.len(), big.len(), "{what}");
            // A clean DISCONNECT and close: the inbox ends.
            c.disconnect().await.unwrap();
            assert!(within(&what, inbox.recv()).await.is_none());
        }
    }
}

#[tokio::test]
async fn mutual_tls_takes_a_certificate_from_the_ca_and_refuses_others() {
    let pki = Pki::new();
    let broker = start(vec![
        listener(TransportKind::Tls, Some(pki.mutual()), "/mqtt"),
        listener(TransportKind::Wss, Some(pki.mutual()), "/mqtt"),
    ])
    .await;
    let [tls, wss] = [0, 1].map(|i| broker.local_addrs()[i].to_string());
    let over_tls = |id: &str, t: TlsOptions| options(tls.clone(), id, Transport::Tls(t));
    let (alice, mut inbox, _) = Client::connect(over_tls("alice", pki.as_client("alice")))
        .await
        .unwrap();
    alice.subscribe(&[("m/#", QoS::AtLeastOnce)]).await.unwrap();
    let over_wss = Transport::Wss {
        path: "/mqtt".into(),
        tls: pki.as_client("alice"),
    };
    let (other, _, _) = Client::connect(options(wss, "alice-wss", over_wss))
        .await
        .unwrap();
    other
        .publish("m/1", QoS::AtLeastOnce, false, "with a certificate")
        .await
        .unwrap();
    let m = within("delivery", inbox.recv()).await.unwrap();
    assert_eq!(&m.payload[..], b"with a certificate");
    // No certificate, or one from another CA: the server's alert is the
    // error, whether it ends the handshake or (TLS 1.3) comes in place
    // of the CONNACK.
    for (who, t, alert) in [
        ("nobody", pki.trusting(), "CertificateRequired"),
        ("eve", pki.as_client("eve"), "UnknownCA"),
    ] {
        let e = Client::connect(over_tls(who, t)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("TLS handshake with {tls}: received fatal alert: {alert}"),
            "{who}"
        );
    }
    // A certificate without its key is refused before connecting.
    let half = TlsOptions {
        key: None,
        ..pki.as_client("alice")
    };
    let e = Client::connect(over_tls("half", half)).await.unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e}");
    // So is a key that is not the certificate's.
    let mismatched = TlsOptions {
        key: Some(pki.path("eve.key")),
        ..pki.as_client("alice")
    };
    let e = Client::connect(over_tls("mismatched", mismatched))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TlsFile { what: "key", .. }), "{e}");
}

#[tokio::test]
async fn a_server_certificate_the_cafile_does_not_vouch_for_is_refused() {
    let pki = Pki::new();
    let broker = start(vec![
        listener(TransportKind::Tls, Some(pki.served("impostor")), "/mqtt"),
        listener(TransportKind::Wss, Some(pki.served("impostor")), "/mqtt"),
    ])
    .await;
    let [tls, wss] = [0, 1].map(|i| broker.local_addrs()[i].to_string());
    for (address, transport) in [
        (tls.clone(), Transport::Tls(pki.trusting())),
        (
            wss,
            Transport::Wss {
                path: "/mqtt".into(),
                tls: pki.trusting(),
            },
        ),
        // insecure skips the name check only: the chain still counts.
        (
            tls,
            Transport::Tls(TlsOptions {
                insecure: true,
                ..pki.trusting()
            }),
        ),
    ] {
        let e = Client::connect(options(address, "c", transport))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Tls { .. }) && e.to_string().contains("UnknownIssuer"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn insecure_accepts_a_certificate_for_another_name() {
    let pki = Pki::new();
    let broker = start(vec![listener(
        TransportKind::Tls,
        Some(pki.served("server")),
        "/mqtt",
    )])
    .await;
    let address = broker.local_addrs()[0].to_string();
    let elsewhere = TlsOptions {
        server_name: Some("broker.example".into()),
        ..pki.trusting()
    };
    let e = Client::connect(options(
        address.clone(),
        "strict",
        Transport::Tls(elsewhere.clone()),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tls { .. }) && e.to_string().contains("not valid for name"),
        "{e}"
    );
    let insecure = TlsOptions {
        insecure: true,
        ..elsewhere
    };
    let (c, _, _) = Client::connect(options(address, "lax", Transport::Tls(insecure)))
        .await
        .unwrap();
    c.publish("t", QoS::AtLeastOnce, false, "x").await.unwrap();
}

#[tokio::test]
async fn unusable_tls_settings_fail_before_connecting() {
    // Nothing listens here: an attempt to connect would fail otherwise.
    let address = "127.0.0.1:9".to_owned();
    let e = Client::connect(options(
        address.clone(),
        "c",
        Transport::Wss {
            path: "/mqtt".into(),
            tls: TlsOptions::default(),
        },
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { .. }) && e.to_string().contains("--cafile FILE"),
        "{e}"
    );
    let missing = PathBuf::from("/nonexistent/ca.pem");
    let e = Client::connect(options(
        address,
        "c",
        Transport::Tls(TlsOptions {
            cafile: Some(missing.clone()),
            ..TlsOptions::default()
        }),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::TlsFile { what: "cafile", path, .. } if *path == missing),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_websocket_upgrade_carries_the_servers_reason() {
    let broker = start(vec![listener(TransportKind::Ws, None, "/mqtt")]).await;
    let address = broker.local_addrs()[0].to_string();
    let e = Client::connect(options(
        address.clone(),
        "c",
        Transport::Ws {
            path: "/elsewhere".into(),
        },
    ))
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "WebSocket upgrade at ws://{address}/elsewhere: the server answered HTTP 404 Not \
             Found: MQTT over WebSocket is served at /mqtt"
        )
    );
    let e = Client::connect(options(
        address,
        "c",
        Transport::Ws {
            path: "mqtt".into(),
        },
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().ends_with("the path must start with /"), "{e}");
}

#[tokio::test]
async fn reconnects_over_tls_and_wss_and_resumes_the_session() {
    let pki = Pki::new();
    let broker = start(vec![
        listener(TransportKind::Tcp, None, "/mqtt"),
        listener(TransportKind::Tls, Some(pki.served("server")), "/mqtt"),
        listener(TransportKind::Wss, Some(pki.served("server")), "/mqtt"),
    ])
    .await;
    let [tcp, tls, wss] = [0, 1, 2].map(|i| broker.local_addrs()[i]);
    // Through the proxy the address is the proxy's: the certificate is
    // checked against the name given instead.
    let named = TlsOptions {
        server_name: Some("localhost".into()),
        ..pki.trusting()
    };
    let cases = [
        ("tls", tls, Transport::Tls(named.clone())),
        (
            "wss",
            wss,
            Transport::Wss {
                path: "/mqtt".into(),
                tls: named,
            },
        ),
    ];
    let (publisher, _, _) = Client::connect(tcp_options(tcp, "publisher"))
        .await
        .unwrap();
    for (name, target, transport) in cases {
        let proxy = Proxy::start(target).await;
        let mut o = options(proxy.addr.to_string(), name, transport);
        o.session_expiry = 300;
        o.reconnect = Some(Reconnect {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        });
        let (sub, mut inbox, _) = Client::connect(o).await.unwrap();
        let topic = format!("r/{name}");
        sub.subscribe(&[(topic.as_str(), QoS::ExactlyOnce)])
            .await
            .unwrap();
        const N: u32 = 100;
        for i in 0..N {
            publisher
                .publish(&topic, QoS::ExactlyOnce, false, i.to_string())
                .await
                .unwrap();
            if i % 25 == 10 {
                proxy.cut();
            }
        }
        // QoS 2 survives the cuts exactly once, in order.
        for i in 0..N {
            let what = format!("{name}: message {i} after reconnects");
            let m = within(&what, inbox.recv()).await.unwrap();
            assert_eq!(m.payload, i.to_string().as_bytes(), "{what}");
        }
        // And the client's own requests go through the new connection.
        sub.publish(&topic, QoS::AtLeastOnce, false, "mine")
            .await
            .unwrap();
        let m = within("own message", inbox.recv()).await.unwrap();
        assert_eq!(&m.payload[..], b"mine");
        sub.disconnect().await.unwrap();
        assert!(proxy.accepted() > 1, "{name}: the client reconnected");
    }
}
