//! The in-process API: `Broker::publish`, `Broker::subscribe` and
//! `Broker::stats`, against real MQTT clients, and the example that shows
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[allow(dead_code)]
#[path = "../examples/embedded.rs"]
mod example;

use std::time::Duration;

use common::*;
use strata_broker::{BrokerConfig, EmbedError, Publication, QoS};

/// A configuration keeping state in a fresh directory named `name`.
fn on_data_dir(name: &str) -> (std::path::PathBuf, BrokerConfig) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    };
    config.storage.data_dir = Some(dir.clone());
    (dir, config)
}

#[tokio::test]
async fn the_example_runs_both_ways() {
    let seen = example::run().await.unwrap();
    assert_eq!(
        seen.in_process,
        vec![("commands/lamp".to_owned(), b"on".to_vec())]
    );
    assert_eq!(
        seen.over_tcp,
        vec![("telemetry/request".to_owned(), b"send".to_vec())]
    );
    assert_eq!(seen.stats.clients_connected, 1);
    assert_eq!(seen.stats.messages_received, 1, "the device's command");
}

#[tokio::test]
async fn an_in_process_subscription_gets_retained_then_live_messages_in_order() {
    let (b, addr) = start_default().await;
    b.publish(Publication::new("a/r", "kept").retain(true))
        .await
        .unwrap();
    let mut sub = b.subscribe("a/+", QoS::AtLeastOnce).unwrap();
    let c = v4(v4_options(addr, "pub")).await;
    for i in 0..10u8 {
        c.client
            .publish("a/x", rumqttc::QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let first = tokio::time::timeout(WAIT, sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.topic(), &first.payload()[..], first.retain()),
        ("a/r", &b"kept"[..], true)
    );
    for i in 0..10u8 {
        let m = tokio::time::timeout(WAIT, sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.topic(), &m.payload()[..], m.qos()),
            ("a/x", &[i][..], QoS::AtLeastOnce)
        );
    }
    let stats = b.stats();
    assert_eq!(stats.subscriptions, 1);
    assert_eq!(stats.retained, 1);
    // Dropping it unsubscribes: nothing is delivered any more.
    drop(sub);
    assert_eq!(b.stats().subscriptions, 0);
    assert_eq!(b.publish(Publication::new("a/x", "late")).await.unwrap(), 0);
}

#[tokio::test]
async fn an_in_process_publish_reaches_clients_and_bad_names_are_refused() {
    let (b, addr) = start_default().await;
    let mut c = v4(v4_options(addr, "sub")).await;
    c.subscribe("x/#", rumqttc::QoS::AtLeastOnce).await;
    let delivered = b
        .publish(Publication::new("x/1", "hello").qos(QoS::AtLeastOnce))
        .await
        .unwrap();
    assert_eq!(delivered, 1);
    let p = c.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("x/1", &b"hello"[..]));
    assert!(matches!(
        b.publish(Publication::new("x/#", "")).await,
        Err(EmbedError::Topic(..))
    ));
    assert!(matches!(
        b.subscribe("x/#/y", QoS::AtMostOnce),
        Err(EmbedError::Filter(..))
    ));
}

#[tokio::test]
async fn an_in_process_retained_publish_is_durable_when_it_returns() {
    let (dir, config) = on_data_dir("strata-embed");
    let b = start(config.clone()).await;
    b.publish(
        Publication::new("cfg/mode", "eco")
            .retain(true)
            .qos(QoS::AtLeastOnce),
    )
    .await
    .unwrap();
    // No grace: what was acknowledged is in the log already.
    b.shutdown(Duration::ZERO).await;
    let b = start(config).await;
    let mut sub = b.subscribe("cfg/#", QoS::AtMostOnce).unwrap();
    let m = tokio::time::timeout(WAIT, sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.topic(), &m.payload()[..]), ("cfg/mode", &b"eco"[..]));
    b.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_subscription_ends_when_the_broker_shuts_down() {
    let (b, _) = start_default().await;
    let mut sub = b.subscribe("#", QoS::AtMostOnce).unwrap();
    let waiter = tokio::spawn(async move { sub.recv().await.is_none() });
    b.shutdown(Duration::from_secs(1)).await;
    assert!(tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap());
}

#[tokio::test]
async fn a_live_subscription_does_not_keep_a_shut_down_broker_alive() {
    // Its data directory is free again: a new broker starts on it.
    let (dir, config) = on_data_dir("strata-embed-live");
    let b = start(config.clone()).await;
    let mut sub = b.subscribe("#", QoS::AtMostOnce).unwrap();
    b.shutdown(Duration::from_secs(5)).await;
    assert!(sub.recv().await.is_none());
    let b = start(config).await;
    b.shutdown(Duration::from_secs(1)).await;
    drop(sub);
    let _ = std::fs::remove_dir_all(&dir);
}
