//! What a data directory keeps across a restart of the broker: persistent
//! sessions with their subscriptions and offline messages, and retained
//! messages. Independent clients (rumqttc), real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use rumqttc::QoS;
use strata_broker::{Broker, BrokerConfig};

/// A fresh data directory, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "strata-durable-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        DataDir(p)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_on(dir: &DataDir) -> (Broker, std::net::SocketAddr) {
    let mut config = BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    };
    config.storage.data_dir = Some(dir.0.clone());
    let b = start(config).await;
    let addr = b.local_addrs()[0];
    (b, addr)
}

#[tokio::test]
async fn offline_messages_subscriptions_and_retained_survive_a_restart() {
    let dir = DataDir::new();
    let (broker, addr) = start_on(&dir).await;
    park_subscriber(addr, "keeper", "jobs/#").await;

    // Every PUBACK came after the message was stored.
    let mut publ = v4(v4_options(addr, "pub")).await;
    publ.publish_acked("jobs/a", (0..20u8).map(|i| vec![i]))
        .await;
    publ.client
        .publish("cfg/mode", QoS::AtLeastOnce, true, "eco")
        .await
        .unwrap();
    publ.next_matching(|p| matches!(p, rumqttc::Packet::PubAck(_)))
        .await;
    drop(publ);
    broker.shutdown(Duration::from_secs(1)).await;

    let (broker, addr) = start_on(&dir).await;
    assert_eq!(broker.session_count(), 1, "the persistent session is back");
    let mut o = v4_options(addr, "keeper");
    o.set_clean_session(false);
    // The offline messages after the restart.
    let (client, mut el, present, got) = resume(o, 20).await;
    assert_eq!(present, Some(true));
    assert_eq!(got, (0..20).collect::<Vec<u8>>(), "all of them, in order");
    // The subscription itself survived: a new message reaches the session.
    let publ = v4(v4_options(addr, "pub2")).await;
    publ.client
        .publish("jobs/b", QoS::AtLeastOnce, false, vec![99])
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = el.poll().await.unwrap()
            {
                assert_eq!((p.topic.as_str(), &p.payload[..]), ("jobs/b", &[99u8][..]));
                return;
            }
        }
    })
    .await
    .expect("a live message on the recovered subscription");
    drop(client);
    // And the retained message is there for a newcomer.
    let mut late = v4(v4_options(addr, "late")).await;
    late.subscribe("cfg/#", QoS::AtLeastOnce).await;
    let p = late.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.retain),
        ("cfg/mode", &b"eco"[..], true)
    );
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn acknowledged_messages_are_not_delivered_again_after_a_restart() {
    let dir = DataDir::new();
    let (broker, addr) = start_on(&dir).await;
    let mut o = v5_options(addr, "v5keeper");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(600));
    let mut sub = v5(o.clone()).await;
    sub.client
        .subscribe("t/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.next_matching(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)))
        .await;
    let publ = v5(v5_options(addr, "p5")).await;
    for i in 0..5u8 {
        publ.client
            .publish(
                "t/x",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                vec![i],
            )
            .await
            .unwrap();
    }
    // Received online and acknowledged by rumqttc (automatic PUBACK).
    for i in 0..5u8 {
        assert_eq!(sub.next_publish().await.payload[..], [i]);
    }
    // A round trip on the subscriber's connection after those PUBACKs: a
    // SUBACK, so the broker has handled them.
    sub.client
        .subscribe("sync/#", rumqttc::v5::mqttbytes::QoS::AtMostOnce)
        .await
        .unwrap();
    sub.next_matching(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)))
        .await;
    sub.client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(WAIT, sub.task).await;
    // Three more while it is offline: these must come back.
    for i in 10..13u8 {
        publ.client
            .publish(
                "t/x",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                vec![i],
            )
            .await
            .unwrap();
    }
    let mut publ = publ;
    for _ in 0..8 {
        publ.next_matching(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)))
            .await;
    }
    drop(publ);
    broker.shutdown(Duration::from_secs(1)).await;

    let (broker, addr) = start_on(&dir).await;
    let mut o = v5_options(addr, "v5keeper");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(600));
    let mut sub = v5(o).await;
    // Nothing old comes back; a new message proves the subscription is live.
    let publ = v5(v5_options(addr, "p5b")).await;
    publ.client
        .publish(
            "t/x",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            vec![42],
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(sub.next_publish().await.payload[0]);
    }
    assert_eq!(
        got,
        [10, 11, 12, 42],
        "the offline ones, then the new one; none of 0-4"
    );
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn one_broker_per_data_directory() {
    let dir = DataDir::new();
    let (broker, _) = start_on(&dir).await;
    let config = BrokerConfig {
        listeners: vec![strata_broker::Listener::tcp("127.0.0.1:0".parse().unwrap())],
        storage: strata_broker::StorageConfig {
            data_dir: Some(dir.0.clone()),
            ..Default::default()
        },
        ..BrokerConfig::default()
    };
    let e = Broker::start(config)
        .await
        .expect_err("a second broker on the same directory");
    assert!(e.to_string().contains("in use"), "{e}");
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A broker whose data directory is on `SimStorage`, to inject faults.
async fn start_on_sim() -> (Broker, std::net::SocketAddr, strata_store::SimStorage) {
    let sim = strata_store::SimStorage::new();
    let mut config = BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    };
    config.storage.data_dir = Some("/sim".into());
    config.storage_backend = Some(std::sync::Arc::new(sim.clone()));
    let broker = start(config).await;
    let addr = broker.local_addrs()[0];
    (broker, addr, sim)
}

#[tokio::test]
async fn a_failed_store_write_acknowledges_nothing_and_closes() {
    // [MQTT-4.8.0-2]: a transient error while handling a packet closes the
    // connection; and what could not be stored is never acknowledged.
    let (broker, addr, sim) = start_on_sim().await;

    // A persistent subscriber makes QoS 1 messages to t/# durable.
    park_subscriber(addr, "keeper", "t/#").await;

    // The disk fails from the next sync on.
    sim.set_faults(strata_store::storage::FaultPlan {
        fail_sync: Some(1),
        ..Default::default()
    });

    // 3.1.1: no PUBACK, and the connection is closed.
    let mut p = v4(v4_options(addr, "p311")).await;
    p.client
        .publish("t/x", QoS::AtLeastOnce, false, "not stored")
        .await
        .unwrap();
    p.until_closed_without(
        |p| matches!(p, rumqttc::Packet::PubAck(_)),
        "acknowledged a message that is not on disk",
    )
    .await;

    // 5.0: DISCONNECT 0x80 instead of the PUBACK.
    let mut p5 = v5(v5_options(addr, "p5")).await;
    p5.client
        .publish(
            "t/y",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "neither",
        )
        .await
        .unwrap();
    use rumqttc::v5::mqttbytes::v5::Packet;
    tokio::time::timeout(WAIT, async {
        while let Some(packet) = p5.rx.recv().await {
            assert!(!matches!(packet, Packet::PubAck(_)), "acknowledged");
        }
    })
    .await
    .expect("the connection is closed");
    // rumqttc reports the server's DISCONNECT as the end of its loop.
    let why = tokio::time::timeout(WAIT, p5.task).await.unwrap().unwrap();
    assert!(
        why.contains("ServerDisconnect") && why.contains("UnspecifiedError"),
        "{why}"
    );

    // Traffic that needs no storage goes on.
    let mut live = v4(v4_options(addr, "live")).await;
    live.subscribe("q/#", QoS::AtMostOnce).await;
    let publ = v4(v4_options(addr, "p0")).await;
    publ.client
        .publish("q/1", QoS::AtMostOnce, false, "fine")
        .await
        .unwrap();
    assert_eq!(&live.next_publish().await.payload[..], b"fine");
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_persistent_session_that_cannot_be_stored_is_not_acknowledged() {
    // A CONNACK tells a persistent client the broker keeps its session
    // (Session Present on its return) [MQTT-3.2.2-3]: when the session's
    // record cannot be made durable, no CONNACK goes out and the
    // connection closes [MQTT-4.8.0-2]. A clean session needs no record.
    let (broker, addr, sim) = start_on_sim().await;
    sim.set_faults(strata_store::storage::FaultPlan {
        fail_sync: Some(1),
        ..Default::default()
    });
    let mut o = v4_options(addr, "kept");
    o.set_clean_session(false);
    assert_eq!(
        connack(o).await,
        None,
        "acknowledged a session that is not on disk"
    );
    let clean = v4(v4_options(addr, "clean")).await;
    drop(clean);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_discarded_session_that_cannot_be_forgotten_is_not_acknowledged() {
    // A clean CONNECT discards the stored session [MQTT-3.1.2-4] and its
    // CONNACK says so (Session Present 0: 3.1.1 [MQTT-3.2.2-1], 5.0
    // [MQTT-3.2.2-2]): when the record
    // of its end cannot be made durable, a crash would bring the session
    // back, so no CONNACK goes out and the connection closes
    // [MQTT-4.8.0-2]. So with a 5.0 session resumed with Session Expiry
    // 0, which ends with this connection. A clean session with nothing
    // stored still connects.
    let (broker, addr, sim) = start_on_sim().await;
    park_subscriber(addr, "stored", "t/#").await;
    let mut o5 = v5_options(addr, "stored5");
    o5.set_clean_start(false);
    o5.set_session_expiry_interval(Some(600));
    let parked = v5(o5.clone()).await;
    parked.client.disconnect().await.unwrap();
    tokio::time::timeout(WAIT, parked.task)
        .await
        .unwrap()
        .unwrap();
    sim.set_faults(strata_store::storage::FaultPlan {
        fail_sync: Some(1),
        ..Default::default()
    });
    assert_eq!(
        connack(v4_options(addr, "stored")).await,
        None,
        "told the client its session is gone before that was on disk"
    );
    o5.set_session_expiry_interval(None);
    let (_client, mut el) = rumqttc::v5::AsyncClient::new(o5, 10);
    let acked = tokio::time::timeout(WAIT, async {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(
                    _,
                ))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("the connection is closed");
    assert!(!acked, "resumed a session to end before that was on disk");
    let clean = v4(v4_options(addr, "clean")).await;
    drop(clean);
    broker.shutdown(Duration::from_secs(1)).await;
}

/// The CONNACK a client connecting with `options` gets, or `None` if the
/// connection is closed without one.
async fn connack(options: rumqttc::MqttOptions) -> Option<rumqttc::ConnAck> {
    let (_client, mut el) = rumqttc::AsyncClient::new(options, 10);
    tokio::time::timeout(WAIT, async {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => return Some(a),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("the connection is closed")
}

#[tokio::test]
async fn a_subscription_that_cannot_be_stored_is_not_acknowledged() {
    // A persistent session's SUBACK says the subscription survives a
    // crash; when its record cannot be made durable, neither the SUBACK
    // nor the retained messages the subscription is owed [MQTT-3.3.1-9]
    // go out, and the connection closes [MQTT-4.8.0-2].
    let (broker, addr, sim) = start_on_sim().await;
    let publ = v4(v4_options(addr, "retainer")).await;
    publ.client
        .publish("r/x", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    // Stored: a plain subscriber gets it as the retained message.
    let mut probe = v4(v4_options(addr, "probe")).await;
    probe.subscribe("r/#", QoS::AtLeastOnce).await;
    assert_eq!(&probe.next_publish().await.payload[..], b"kept");

    let mut o = v4_options(addr, "subber");
    o.set_clean_session(false);
    let mut sub = v4(o).await;
    // Its session's record is durable once a stored message it publishes
    // is acknowledged (appends become durable in order).
    sub.client
        .publish("r/y", QoS::AtLeastOnce, true, "also kept")
        .await
        .unwrap();
    sub.next_matching(|p| matches!(p, rumqttc::Packet::PubAck(_)))
        .await;
    // The disk fails from the next sync on.
    sim.set_faults(strata_store::storage::FaultPlan {
        fail_sync: Some(1),
        ..Default::default()
    });
    sub.client.subscribe("r/#", QoS::AtLeastOnce).await.unwrap();
    sub.until_closed_without(
        |p| matches!(p, rumqttc::Packet::SubAck(_) | rumqttc::Packet::Publish(_)),
        "acknowledged a subscription that is not on disk",
    )
    .await;
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_qos2_send_that_cannot_be_stored_is_not_written() {
    // A QoS 2 PUBLISH to a persistent session goes out only once its packet
    // id is durable: a restart must resend it under that id, or the client
    // would take the resend for a new message [MQTT-4.3.3-10]. When the
    // store fails, nothing is written and the connection closes
    // [MQTT-4.8.0-2].
    let (broker, addr, sim) = start_on_sim().await;
    let mut o = v4_options(addr, "online");
    o.set_clean_session(false);
    let mut sub = v4(o).await;
    sub.subscribe("g/#", QoS::ExactlyOnce).await;
    // Works while the disk does.
    let publ = v4(v4_options(addr, "pub")).await;
    publ.client
        .publish("g/1", QoS::ExactlyOnce, false, "stored")
        .await
        .unwrap();
    assert_eq!(&sub.next_publish().await.payload[..], b"stored");

    sim.set_faults(strata_store::storage::FaultPlan {
        fail_sync: Some(1),
        ..Default::default()
    });
    publ.client
        .publish("g/2", QoS::ExactlyOnce, false, "not stored")
        .await
        .unwrap();
    sub.until_closed_without(
        |p| matches!(p, rumqttc::Packet::Publish(_)),
        "a QoS 2 PUBLISH went out before its packet id was stored",
    )
    .await;
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_delayed_will_survives_a_restart() {
    // The connection of a persistent session breaks with a will delayed by
    // 1 s; the broker restarts before it is due. The will still goes out
    // [MQTT-3.1.3-9]: the journal kept it.
    use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties};
    let dir = DataDir::new();
    let (broker, addr) = start_on(&dir).await;
    let mut o = v5_options(addr, "mortal");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(3600));
    o.set_last_will(LastWill::new(
        "wills/mortal",
        "gone",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: Some(1),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    ));
    let c = v5(o).await;
    // The connection breaks: no DISCONNECT, so the will is due.
    c.task.abort();
    drop(c);
    tokio::time::timeout(WAIT, async {
        while broker.connected_clients() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the broker sees the connection end");
    broker.shutdown(Duration::from_secs(1)).await;

    let (broker, addr) = start_on(&dir).await;
    let mut watcher = v5(v5_options(addr, "watcher")).await;
    watcher
        .client
        .subscribe("wills/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let p = watcher.next_publish().await;
    assert_eq!(
        (&p.topic[..], &p.payload[..]),
        (&b"wills/mortal"[..], &b"gone"[..])
    );

    // Published once: a restart now does not bring it back.
    drop(watcher);
    broker.shutdown(Duration::from_secs(1)).await;
    let (broker, addr) = start_on(&dir).await;
    let mut watcher = v5(v5_options(addr, "watcher2")).await;
    watcher
        .client
        .subscribe("wills/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    watcher
        .client
        .publish(
            "wills/marker",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "m",
        )
        .await
        .unwrap();
    let p = watcher.next_publish().await;
    assert_eq!(&p.topic[..], b"wills/marker", "the will came again");
    broker.shutdown(Duration::from_secs(1)).await;
}

/// The generation `CURRENT` names: 1 after the first start's compaction.
fn generation(dir: &DataDir) -> u64 {
    let name = std::fs::read_to_string(dir.0.join("CURRENT")).unwrap_or_default();
    name.trim()
        .strip_prefix("log-")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_compacted_while_the_broker_runs() {
    // A small threshold: the journal is compacted again and again while
    // messages are published, acknowledged and taken; nothing is lost or
    // comes back, and one log directory is left.
    let dir = DataDir::new();
    let start_small = |dir: &DataDir| {
        let mut config = BrokerConfig {
            sys_interval: None,
            ..BrokerConfig::default()
        };
        config.storage.data_dir = Some(dir.0.clone());
        config.storage.compact_after_records = 100;
        start(config)
    };
    let broker = start_small(&dir).await;
    let addr = broker.local_addrs()[0];
    let first = generation(&dir);
    park_subscriber(addr, "keeper", "jobs/#").await;
    let mut online = {
        let mut o = v4_options(addr, "online");
        o.set_clean_session(false);
        let mut c = v4(o).await;
        c.subscribe("jobs/#", QoS::AtLeastOnce).await;
        c
    };
    let mut publ = v4(v4_options(addr, "pub")).await;
    let mut taken = 0;
    for round in 0..10u8 {
        publ.publish_acked("jobs/a", (0..50u8).map(|i| vec![round, i]))
            .await;
        for _ in 0..50 {
            let p = online.next_publish().await;
            assert_eq!(&p.payload[..], &[round, taken % 50][..]);
            taken = (taken + 1) % 50;
        }
    }
    tokio::time::timeout(WAIT, async {
        while generation(&dir) < first + 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("compacted while running");
    let logs: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    // A SUBACK after the last PUBACK: the broker has read them all.
    online.subscribe("sync/x", QoS::AtMostOnce).await;
    drop((publ, online));
    broker.shutdown(Duration::from_secs(1)).await;

    // After a restart: the offline session has all 500, in order; the
    // online one had everything acknowledged, so nothing comes again.
    let broker = start_small(&dir).await;
    let addr = broker.local_addrs()[0];
    let mut o = v4_options(addr, "keeper");
    o.set_clean_session(false);
    let mut keeper = v4(o).await;
    for round in 0..10u8 {
        for i in 0..50u8 {
            assert_eq!(&keeper.next_publish().await.payload[..], &[round, i][..]);
        }
    }
    let mut o = v4_options(addr, "online");
    o.set_clean_session(false);
    let mut online = v4(o).await;
    let publ = v4(v4_options(addr, "pub")).await;
    publ.client
        .publish("jobs/end", QoS::AtLeastOnce, false, "end")
        .await
        .unwrap();
    assert_eq!(&online.next_publish().await.payload[..], b"end");
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn messages_the_queue_dropped_stay_dropped_after_a_restart() {
    // The overflow policy dropped them (newest first): the journal says so,
    // so a restart does not bring them back.
    let dir = DataDir::new();
    let start_with = |dir: &DataDir, queue: usize| {
        let mut config = BrokerConfig {
            sys_interval: None,
            ..BrokerConfig::default()
        };
        config.session.max_queued_messages = queue;
        config.storage.data_dir = Some(dir.0.clone());
        start(config)
    };
    let broker = start_with(&dir, 3).await;
    let addr = broker.local_addrs()[0];
    park_subscriber(addr, "small", "s/#").await;
    let mut publ = v4(v4_options(addr, "pub")).await;
    publ.publish_acked("s/n", (0..5u8).map(|i| vec![i])).await;
    drop(publ);
    broker.shutdown(Duration::from_secs(1)).await;

    // Restarted with room for all five: still only the three kept.
    let broker = start_with(&dir, 100).await;
    let addr = broker.local_addrs()[0];
    let mut o = v4_options(addr, "small");
    o.set_clean_session(false);
    let mut sub = v4(o).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.next_publish().await.payload[0]);
    }
    assert_eq!(got, [0, 1, 2]);
    // Then nothing old: the next message is a new one.
    let publ = v4(v4_options(addr, "pub2")).await;
    publ.client
        .publish("s/marker", QoS::AtLeastOnce, false, vec![9])
        .await
        .unwrap();
    let p = sub.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("s/marker", &[9u8][..]));
    broker.shutdown(Duration::from_secs(1)).await;
}
