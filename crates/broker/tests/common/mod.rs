//! An in-process broker on 127.0.0.1 port 0 and rumqttc clients whose
//! event loops run in the background, with bounded waits.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use strata_broker::{Broker, BrokerConfig};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(5);

pub async fn start(mut config: BrokerConfig) -> Broker {
    config.listeners = vec![strata_broker::Listener::tcp("127.0.0.1:0".parse().unwrap())];
    Broker::start(config).await.unwrap()
}

/// A broker and the address of its (first) listener.
pub async fn start_with(config: BrokerConfig) -> (Broker, SocketAddr) {
    let b = start(config).await;
    let addr = b.local_addrs()[0];
    (b, addr)
}

/// The same helpers with every client served over the in-memory transport:
/// the broker has no listener, and a TCP proxy on 127.0.0.1 port 0 copies
/// each connection into a duplex the broker serves
/// (`Handle::connect_in_memory`), so TCP clients exercise it unchanged.
pub mod in_memory {
    use super::*;

    pub async fn start_with(mut config: BrokerConfig) -> (Broker, SocketAddr) {
        config.listeners = Vec::new();
        let broker = Broker::start(config).await.unwrap();
        let handle = broker.handle();
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = proxy.accept().await {
                let Ok(mut mem) = handle.connect_in_memory() else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut mem).await;
                });
            }
        });
        (broker, addr)
    }

    pub async fn start_default() -> (Broker, SocketAddr) {
        start_with(BrokerConfig {
            sys_interval: None,
            ..BrokerConfig::default()
        })
        .await
    }
}

pub async fn start_default() -> (Broker, SocketAddr) {
    let b = start(BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    })
    .await;
    let addr = b.local_addrs()[0];
    (b, addr)
}

/// Connects a persistent 3.1.1 session (Clean Session 0) as `id`,
/// subscribes it to `filter` at QoS 1, and disconnects it: from now on it
/// collects messages offline. Returns its options, to reconnect with.
pub async fn park_subscriber(addr: SocketAddr, id: &str, filter: &str) -> rumqttc::MqttOptions {
    let mut o = v4_options(addr, id);
    o.set_clean_session(false);
    let mut sub = v4(o.clone()).await;
    sub.subscribe(filter, rumqttc::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    tokio::time::timeout(WAIT, sub.task).await.unwrap().unwrap();
    o
}

/// A 3.1.1 client (rumqttc v4) whose incoming packets arrive on a channel.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::Packet>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn v4_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Reconnects with `options` (a session to resume) and reads, within
/// [`WAIT`], until `n` messages came: the client and its event loop, the
/// CONNACK's Session Present, and the first payload byte of each message
/// in the order they came.
pub async fn resume(
    options: rumqttc::MqttOptions,
    n: usize,
) -> (
    rumqttc::AsyncClient,
    rumqttc::EventLoop,
    Option<bool>,
    Vec<u8>,
) {
    let (client, mut el) = rumqttc::AsyncClient::new(options, 100);
    let mut got = Vec::new();
    let mut present = None;
    tokio::time::timeout(WAIT, async {
        while got.len() < n {
            match el.poll().await.unwrap() {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)) => {
                    present = Some(a.session_present)
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => got.push(p.payload[0]),
                _ => {}
            }
        }
    })
    .await
    .expect("the resumed session's messages");
    (client, el, present, got)
}

pub async fn v4(options: rumqttc::MqttOptions) -> V4 {
    let (client, mut el) = rumqttc::AsyncClient::new(options, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let mut c = V4 { client, rx, task };
    let ack = c
        .next_matching(|p| matches!(p, rumqttc::Packet::ConnAck(_)))
        .await;
    assert!(matches!(ack, rumqttc::Packet::ConnAck(_)));
    c
}

impl V4 {
    /// The next incoming packet for which `f` holds, within [`WAIT`].
    pub async fn next_matching(&mut self, f: impl Fn(&rumqttc::Packet) -> bool) -> rumqttc::Packet {
        tokio::time::timeout(WAIT, async {
            loop {
                let p = self.rx.recv().await.expect("event loop ended");
                if f(&p) {
                    return p;
                }
            }
        })
        .await
        .expect("timed out waiting for a packet")
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        match self
            .next_matching(|p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// Publishes each payload to `topic` at QoS 1, then waits for as many
    /// PUBACKs: the broker has taken (and, with a data directory, stored)
    /// every one.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        payloads: impl IntoIterator<Item = Vec<u8>>,
    ) {
        let mut n = 0;
        for p in payloads {
            self.client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, p)
                .await
                .unwrap();
            n += 1;
        }
        for _ in 0..n {
            self.next_matching(|p| matches!(p, rumqttc::Packet::PubAck(_)))
                .await;
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next_matching(|p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await;
    }

    /// Reads until the server closes the connection (within [`WAIT`]),
    /// failing on any packet for which `forbidden` holds.
    pub async fn until_closed_without(
        &mut self,
        forbidden: impl Fn(&rumqttc::Packet) -> bool,
        why: &str,
    ) {
        tokio::time::timeout(WAIT, async {
            while let Some(packet) = self.rx.recv().await {
                assert!(!forbidden(&packet), "{why}: {packet:?}");
            }
        })
        .await
        .expect("the connection is closed");
    }

    /// Asserts nothing arrives for `d` (used only after a positive wait
    /// proved the path works, to check that nothing else follows).
    pub async fn assert_silent(&mut self, d: Duration) {
        if let Ok(Some(p)) = tokio::time::timeout(d, self.rx.recv()).await {
            assert!(
                !matches!(p, rumqttc::Packet::Publish(_)),
                "unexpected {p:?}"
            );
        }
    }
}

/// A 5.0 client (rumqttc v5).
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    /// The event loop's result: the error that ended it (its Debug text).
    pub task: tokio::task::JoinHandle<String>,
}

pub fn v5_options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

pub async fn v5(options: rumqttc::v5::MqttOptions) -> V5 {
    let (client, mut el) = rumqttc::v5::AsyncClient::new(options, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return String::new();
                    }
                }
                Ok(_) => {}
                Err(e) => return format!("{e:?}"),
            }
        }
    });
    let mut c = V5 { client, rx, task };
    c.next_matching(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_)))
        .await;
    c
}

impl V5 {
    pub async fn next_matching(
        &mut self,
        f: impl Fn(&rumqttc::v5::mqttbytes::v5::Packet) -> bool,
    ) -> rumqttc::v5::mqttbytes::v5::Packet {
        tokio::time::timeout(WAIT, async {
            loop {
                let p = self.rx.recv().await.expect("event loop ended");
                if f(&p) {
                    return p;
                }
            }
        })
        .await
        .expect("timed out waiting for a packet")
    }

    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        use rumqttc::v5::mqttbytes::v5::Packet;
        match self
            .next_matching(|p| matches!(p, Packet::Publish(_)))
            .await
        {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }
}

/// A CONNECT written by hand (clean, keep-alive 30 s, at protocol level
/// `level`: 4 for 3.1.1, 5 for 5.0) and the CONNACK's code it gets (its
/// return code or reason code); `None` when the server closes without one.
/// For refusals rumqttc does not report as such.
pub async fn raw_connack(
    addr: SocketAddr,
    level: u8,
    id: &str,
    login: Option<(&str, &str)>,
) -> Option<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let field = |s: &str| {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    };
    let mut body = field("MQTT");
    body.push(level);
    body.push(if login.is_some() { 0xC2 } else { 0x02 });
    body.extend([0, 30]);
    if level == 5 {
        body.push(0);
    }
    body.extend(field(id));
    if let Some((user, password)) = login {
        body.extend(field(user));
        body.extend(field(password));
    }
    assert!(body.len() < 128, "a short CONNECT");
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&packet).await.unwrap();
    let mut head = [0u8; 4];
    match tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("an answer or a close")
    {
        Ok(_) => {
            assert_eq!(head[0], 0x20, "a CONNACK: {head:?}");
            Some(head[3])
        }
        Err(_) => None,
    }
}
