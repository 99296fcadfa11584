//! strata-client against the real broker on 127.0.0.1: the QoS flows both
//! ways, publishing from inside the receive loop, and reconnection with
//! session resume through a proxy the test can cut.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Proxy, within};
use strata_client::{Client, Error, Options, Protocol, QoS, ReasonCode, Reconnect};
use strata_testkit::TestBroker;

fn options(addr: SocketAddr, id: &str, protocol: Protocol) -> Options {
    let mut o = Options::new(addr.to_string(), id);
    o.protocol = protocol;
    o
}

#[tokio::test]
async fn every_qos_both_ways_in_both_versions() {
    let b = TestBroker::start_default().await;
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let (sub, mut inbox, _) = Client::connect(options(b.addr, "sub", protocol))
            .await
            .unwrap();
        let codes = sub
            .subscribe(&[("q/0", QoS::AtMostOnce), ("q/+", QoS::ExactlyOnce)])
            .await
            .unwrap();
        assert_eq!(codes, vec![ReasonCode::Success, ReasonCode::GrantedQoS2]);
        let (publisher, _, _) = Client::connect(options(b.addr, "pub", protocol))
            .await
            .unwrap();
        for (topic, qos) in [
            ("q/1", QoS::AtLeastOnce),
            ("q/2", QoS::ExactlyOnce),
            ("q/x", QoS::AtMostOnce),
        ] {
            publisher
                .publish(topic, qos, false, topic.to_string())
                .await
                .unwrap();
            let m = within("delivery", inbox.recv()).await.unwrap();
            assert_eq!(
                (m.topic.as_str(), m.qos, &m.payload[..]),
                (topic, qos, topic.as_bytes())
            );
        }
        // UNSUBACK: one code per filter in 5.0, none in 3.1.1.
        assert_eq!(
            sub.unsubscribe(&["q/+"]).await.unwrap().len(),
            match protocol {
                Protocol::V5 => 1,
                _ => 0,
            }
        );
        publisher.disconnect().await.unwrap();
        sub.disconnect().await.unwrap();
        assert!(within("end of inbox", inbox.recv()).await.is_none());
        assert!(matches!(
            sub.publish("t", QoS::AtMostOnce, false, "x").await,
            Err(Error::Closed)
        ));
    }
}

#[tokio::test]
async fn refused_connect_is_an_error() {
    let b = TestBroker::start_default().await;
    // 3.1.1: an empty client id needs Clean Session 1 [MQTT-3.1.3-8].
    let mut o = options(b.addr, "", Protocol::V3_1_1);
    o.clean_start = false;
    let e = Client::connect(o).await.unwrap_err();
    assert!(
        matches!(e, Error::Refused(ReasonCode::ClientIdentifierNotValid)),
        "{e}"
    );
    // 5.0: an empty id gets one assigned.
    let (_, _, c) = Client::connect(options(b.addr, "", Protocol::V5))
        .await
        .unwrap();
    assert!(c.assigned_client_id.is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn publishing_from_inside_the_receive_loop_does_not_deadlock() {
    let b = TestBroker::start_default().await;
    let mut o = options(b.addr, "echo", Protocol::V5);
    o.incoming_capacity = 1;
    let (echo, mut inbox, _) = Client::connect(o).await.unwrap();
    echo.subscribe(&[("ping", QoS::AtLeastOnce)]).await.unwrap();
    let (asker, mut answers, _) = Client::connect(options(b.addr, "asker", Protocol::V5))
        .await
        .unwrap();
    asker
        .subscribe(&[("pong", QoS::AtLeastOnce)])
        .await
        .unwrap();
    const N: usize = 200;
    // Many pings queue up while the echo loop is busy awaiting its own
    // PUBACKs, with room for one received message only.
    let handles: Vec<_> = (0..N)
        .map(|i| {
            asker
                .start_publish("ping", QoS::AtLeastOnce, false, i.to_string())
                .unwrap()
        })
        .collect();
    let echo_loop = tokio::spawn(async move {
        for _ in 0..N {
            let m = inbox.recv().await.unwrap();
            echo.publish("pong", QoS::AtLeastOnce, false, m.payload)
                .await
                .unwrap();
        }
    });
    for h in handles {
        within("ping acknowledged", h.done()).await.unwrap();
    }
    for i in 0..N {
        let m = within("pong", answers.recv()).await.unwrap();
        assert_eq!(m.payload, i.to_string().as_bytes(), "in order");
    }
    within("echo loop", echo_loop).await.unwrap();
}

#[tokio::test]
async fn reconnects_and_resumes_the_session_without_losing_messages() {
    let b = TestBroker::start_default().await;
    let proxy = Proxy::start(b.addr).await;
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let id = format!("resume-{protocol:?}");
        let mut o = options(proxy.addr, &id, protocol);
        o.clean_start = true;
        o.session_expiry = 300;
        if protocol == Protocol::V3_1_1 {
            // A persistent 3.1.1 session is Clean Session 0 throughout.
            o.clean_start = false;
        }
        o.reconnect = Some(Reconnect {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        });
        let (sub, mut inbox, _) = Client::connect(o).await.unwrap();
        sub.subscribe(&[("r/#", QoS::ExactlyOnce)]).await.unwrap();
        let (publisher, _, _) = Client::connect(options(b.addr, &format!("{id}-pub"), protocol))
            .await
            .unwrap();
        const N: u32 = 300;
        let mut seen = Vec::new();
        for i in 0..N {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            publisher
                .publish("r/n", qos, false, i.to_string())
                .await
                .unwrap();
            if i % 50 == 25 {
                proxy.cut();
            }
        }
        // Every message arrives, first copies in publish order; QoS 2 ones
        // exactly once, a QoS 1 one maybe again after a cut.
        while seen.len() < N as usize {
            let what = format!(
                "{protocol:?}: delivery after reconnects, {} seen, last {:?}",
                seen.len(),
                seen.last()
            );
            let m = within(&what, inbox.recv()).await.unwrap();
            let n: u32 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
            if n.is_multiple_of(2) && seen.contains(&n) {
                continue; // a QoS 1 duplicate, resent after a cut
            }
            seen.push(n);
        }
        assert_eq!(seen, (0..N).collect::<Vec<_>>(), "{protocol:?}");
        // The subscription survived the reconnections with the session.
        publisher
            .publish("r/last", QoS::AtLeastOnce, false, "last")
            .await
            .unwrap();
        let m = within("after the cuts", inbox.recv()).await.unwrap();
        assert_eq!(&m.payload[..], b"last");
        sub.disconnect().await.unwrap();
        publisher.disconnect().await.unwrap();
    }
}
