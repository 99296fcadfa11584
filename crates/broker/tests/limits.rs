//! `[limits]` over real sockets: connections per listener and per address,
//! CONNECT rate, failed logins, subscriptions per session, topic length
//! and levels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PubAckReason, SubscribeReasonCode};
use strata_auth::{Hash, HashKind, PasswordFile};
use strata_broker::config::{AuthConfig, ClientLimits};
use strata_broker::{Broker, BrokerConfig, Listener};

const QUOTA_EXCEEDED: u8 = 0x97;
const RATE_EXCEEDED: u8 = 0x9F;
const BANNED: u8 = 0x8A;
const SERVER_UNAVAILABLE: u8 = 3;

async fn limited(limits: ClientLimits) -> (Broker, SocketAddr) {
    start_with(BrokerConfig {
        sys_interval: None,
        limits,
        ..BrokerConfig::default()
    })
    .await
}

/// Connects (and drops) clients until one is accepted, within [`WAIT`]:
/// the broker frees a slot once it has seen a connection go.
async fn until_accepted(addr: SocketAddr, level: u8, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let code = raw_connack(addr, level, id, None).await;
        if code == Some(0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused: {code:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn subscriptions_per_session() {
    let (_b, addr) = limited(ClientLimits {
        max_subscriptions: 2,
        ..ClientLimits::default()
    })
    .await;
    let mut c = v5(v5_options(addr, "subs")).await;
    let suback = async |c: &mut V5, filter: &str| {
        c.client
            .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtMostOnce)
            .await
            .unwrap();
        let P5::SubAck(a) = c.next_matching(|p| matches!(p, P5::SubAck(_))).await else {
            unreachable!()
        };
        a.return_codes[0]
    };
    assert!(matches!(
        suback(&mut c, "a").await,
        SubscribeReasonCode::Success(_)
    ));
    assert!(matches!(
        suback(&mut c, "b").await,
        SubscribeReasonCode::Success(_)
    ));
    assert_eq!(
        suback(&mut c, "c").await,
        SubscribeReasonCode::QuotaExceeded
    );
    // Replacing one it holds is not adding one.
    assert!(matches!(
        suback(&mut c, "a").await,
        SubscribeReasonCode::Success(_)
    ));
    c.client.unsubscribe("b").await.unwrap();
    c.next_matching(|p| matches!(p, P5::UnsubAck(_))).await;
    assert!(matches!(
        suback(&mut c, "c").await,
        SubscribeReasonCode::Success(_)
    ));
}

#[tokio::test]
async fn topic_length_and_levels() {
    let (_b, addr) = limited(ClientLimits {
        max_topic_length: 12,
        max_topic_levels: 3,
        ..ClientLimits::default()
    })
    .await;
    let mut c = v5(v5_options(addr, "topics")).await;
    for (topic, ok) in [
        ("a/b/c", true),
        ("a/b/c/d", false),
        ("abcdefghijklm", false),
        ("abcdefghijkl", true),
    ] {
        c.client
            .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "x")
            .await
            .unwrap();
        let P5::PubAck(a) = c.next_matching(|p| matches!(p, P5::PubAck(_))).await else {
            unreachable!()
        };
        assert_eq!(
            a.reason == PubAckReason::TopicNameInvalid,
            !ok,
            "{topic}: {:?}",
            a.reason
        );
    }
    for (filter, ok) in [
        ("a/+/c", true),
        ("a/+/c/#", false),
        ("$share/group/a/b/c", true),
    ] {
        c.client
            .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtMostOnce)
            .await
            .unwrap();
        let P5::SubAck(a) = c.next_matching(|p| matches!(p, P5::SubAck(_))).await else {
            unreachable!()
        };
        let refused = a.return_codes[0] == SubscribeReasonCode::TopicFilterInvalid;
        assert_eq!(refused, !ok, "{filter}: {:?}", a.return_codes);
    }
}

#[tokio::test]
async fn connections_per_address() {
    let (_b, addr) = limited(ClientLimits {
        max_connections_per_address: 2,
        ..ClientLimits::default()
    })
    .await;
    let one = v4(v4_options(addr, "one")).await;
    let _two = v4(v4_options(addr, "two")).await;
    assert_eq!(
        raw_connack(addr, 5, "three", None).await,
        Some(QUOTA_EXCEEDED)
    );
    assert_eq!(
        raw_connack(addr, 4, "three", None).await,
        Some(SERVER_UNAVAILABLE)
    );
    // A client that reconnects takes its old connection's place.
    let _again = v4(v4_options(addr, "two")).await;
    one.client.disconnect().await.unwrap();
    tokio::time::timeout(WAIT, one.task).await.unwrap().unwrap();
    // Its slot is free once the broker has seen it go.
    until_accepted(addr, 5, "three").await;
}

#[tokio::test]
async fn connect_rate_per_address() {
    let (_b, addr) = limited(ClientLimits {
        connect_rate_per_address: 5,
        ..ClientLimits::default()
    })
    .await;
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(raw_connack(addr, 5, &format!("r{i}"), None).await);
    }
    // A second's worth at once, then refusals (unless a token came back
    // meanwhile: at 5/s, one per 200 ms).
    assert_eq!(&codes[..5], [Some(0); 5]);
    assert!(codes[5..].contains(&Some(RATE_EXCEEDED)), "{codes:?}");
}

#[tokio::test]
async fn failed_logins_block_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut pw = PasswordFile::default();
    pw.set("alice", Hash::new(HashKind::Sha512Pbkdf2, b"right"));
    std::fs::write(dir.path().join("passwd"), pw.to_text()).unwrap();
    let (_b, addr) = start_with(BrokerConfig {
        sys_interval: None,
        limits: ClientLimits {
            max_failed_logins: 3,
            failed_login_block: Duration::from_secs(60),
            ..ClientLimits::default()
        },
        auth: AuthConfig {
            password_file: Some(dir.path().join("passwd")),
            ..AuthConfig::default()
        },
        ..BrokerConfig::default()
    })
    .await;
    assert_eq!(
        raw_connack(addr, 5, "a", Some(("alice", "right"))).await,
        Some(0)
    );
    for _ in 0..3 {
        assert_eq!(
            raw_connack(addr, 5, "a", Some(("alice", "wrong"))).await,
            Some(0x86)
        );
    }
    // Blocked now, the right password included.
    assert_eq!(
        raw_connack(addr, 5, "a", Some(("alice", "right"))).await,
        Some(BANNED)
    );
    assert_eq!(
        raw_connack(addr, 4, "a", Some(("alice", "right"))).await,
        Some(SERVER_UNAVAILABLE)
    );
}

#[tokio::test]
async fn a_listener_max_connections() {
    let mut l = Listener::tcp("127.0.0.1:0".parse().unwrap());
    l.max_connections = Some(1);
    let b = Broker::start(BrokerConfig {
        sys_interval: None,
        listeners: vec![l, Listener::tcp("127.0.0.1:0".parse().unwrap())],
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let (first, other) = (b.local_addrs()[0], b.local_addrs()[1]);
    let held = v4(v4_options(first, "held")).await;
    // The listener is full: closed without a CONNACK; the other listener
    // is not.
    assert_eq!(raw_connack(first, 4, "more", None).await, None);
    assert_eq!(raw_connack(other, 4, "more", None).await, Some(0));
    held.client.disconnect().await.unwrap();
    tokio::time::timeout(WAIT, held.task)
        .await
        .unwrap()
        .unwrap();
    until_accepted(first, 4, "more").await;
}

#[tokio::test]
async fn a_fast_publisher_is_slowed_down_not_dropped() {
    let (_b, addr) = limited(ClientLimits {
        publish_rate: 50,
        ..ClientLimits::default()
    })
    .await;
    let mut sub = v4(v4_options(addr, "rate-sub")).await;
    sub.subscribe("rate/#", rumqttc::QoS::AtLeastOnce).await;
    let mut publisher = v4(v4_options(addr, "rate-pub")).await;
    let started = std::time::Instant::now();
    // A second's worth at once, then 50 more at 50 a second.
    publisher
        .publish_acked("rate/x", (0..100u8).map(|i| vec![i]))
        .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "100 messages at 50/s took only {took:?}"
    );
    for i in 0..100u8 {
        assert_eq!(sub.next_publish().await.payload[..], [i]);
    }
}

#[tokio::test]
async fn limits_reload_under_open_connections() {
    let (b, addr) = limited(ClientLimits::default()).await;
    let mut c = v5(v5_options(addr, "reload")).await;
    let publish = async |c: &mut V5, topic: &str| {
        c.client
            .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "x")
            .await
            .unwrap();
        let P5::PubAck(a) = c.next_matching(|p| matches!(p, P5::PubAck(_))).await else {
            unreachable!()
        };
        a.reason
    };
    assert_ne!(
        publish(&mut c, "a/b/c/d").await,
        PubAckReason::TopicNameInvalid
    );
    b.reload_limits(&BrokerConfig {
        limits: ClientLimits {
            max_topic_levels: 3,
            connect_rate_per_address: 1,
            ..ClientLimits::default()
        },
        ..BrokerConfig::default()
    });
    // The open connection is held to the new limit; new connections meet
    // the new CONNECT rate.
    assert_eq!(
        publish(&mut c, "a/b/c/d").await,
        PubAckReason::TopicNameInvalid
    );
    assert_eq!(raw_connack(addr, 5, "n1", None).await, Some(0));
    assert_eq!(raw_connack(addr, 5, "n2", None).await, Some(RATE_EXCEEDED));
}
