// The pub/sub and QoS tests, included by pubsub.rs (over TCP) and
// pubsub_in_memory.rs (over the in-memory transport).

#[tokio::test]
async fn v311_publish_subscribe_all_qos() {
    let (broker, addr) = start_default().await;
    let mut sub = v4(v4_options(addr, "sub")).await;
    sub.subscribe("sensors/+/temp", QoS::ExactlyOnce).await;
    let publ = v4(v4_options(addr, "pub")).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publ.client
            .publish("sensors/k1/temp", qos, false, vec![i as u8; 3])
            .await
            .unwrap();
        let p = sub.next_publish().await;
        assert_eq!(p.topic, "sensors/k1/temp");
        assert_eq!(p.qos, qos);
        assert_eq!(&p.payload[..], &[i as u8; 3]);
        assert!(!p.retain); // [MQTT-3.3.1-9]
    }
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn qos_is_downgraded_to_the_subscription() {
    // 3.1.1 [MQTT-3.8.4-6] (5.0: [MQTT-3.8.4-8])
    let (broker, addr) = start_default().await;
    let mut sub = v4(v4_options(addr, "sub")).await;
    sub.subscribe("t", QoS::AtMostOnce).await;
    let publ = v4(v4_options(addr, "pub")).await;
    publ.client
        .publish("t", QoS::ExactlyOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(sub.next_publish().await.qos, QoS::AtMostOnce);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retained_message_reaches_a_later_subscriber() {
    // [MQTT-3.3.1-6] (3.1.1) / [MQTT-3.3.1-9], with RETAIN set [MQTT-3.3.1-8]
    let (broker, addr) = start_default().await;
    let publ = v4(v4_options(addr, "pub")).await;
    publ.client
        .publish("state/door", QoS::AtLeastOnce, true, "open")
        .await
        .unwrap();
    // Bounded wait for the retained store, through a subscriber that polls.
    let mut sub = v4(v4_options(addr, "sub")).await;
    sub.subscribe("state/#", QoS::AtLeastOnce).await;
    let p = sub.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.retain),
        ("state/door", &b"open"[..], true)
    );

    // An empty retained payload clears it [MQTT-3.3.1-10] (3.1.1).
    publ.client
        .publish("state/door", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    let p = sub.next_publish().await;
    assert!(p.payload.is_empty());
    let mut late = v4(v4_options(addr, "late")).await;
    late.subscribe("state/#", QoS::AtLeastOnce).await;
    // A live message after the subscribe proves the path; nothing retained
    // came before it.
    publ.client
        .publish("state/window", QoS::AtLeastOnce, false, "shut")
        .await
        .unwrap();
    let p = late.next_publish().await;
    assert_eq!(p.topic, "state/window");
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queues_messages() {
    // [MQTT-3.1.2-4] [MQTT-3.1.2-5] (3.1.1), [MQTT-3.2.2-2]
    let (broker, addr) = start_default().await;
    let o = park_subscriber(addr, "durable", "jobs/#").await;

    // The publisher's acks prove the broker took them before we reconnect.
    let mut publ = v4(v4_options(addr, "pub")).await;
    publ.publish_acked("jobs/a", (0..5u8).map(|i| vec![i]))
        .await;

    let (client, _el, present, got) = resume(o, 5).await;
    assert_eq!(present, Some(true));
    assert_eq!(got, vec![0, 1, 2, 3, 4], "in order [MQTT-4.6.0-6]");
    drop(client);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn clean_session_discards_the_old_session() {
    let (broker, addr) = start_default().await;
    let mut o = park_subscriber(addr, "c", "x").await;
    o.set_clean_session(true);
    let (_client, mut el) = rumqttc::AsyncClient::new(o, 10);
    let ack = tokio::time::timeout(WAIT, async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)) = el.poll().await.unwrap()
            {
                return a;
            }
        }
    })
    .await
    .unwrap();
    assert!(!ack.session_present); // [MQTT-3.2.2-1]
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn will_is_published_when_a_client_vanishes() {
    // [MQTT-3.1.2-8]
    let (broker, addr) = start_default().await;
    let mut watcher = v4(v4_options(addr, "watcher")).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let mut o = v4_options(addr, "doomed");
    o.set_last_will(rumqttc::LastWill::new(
        "wills/doomed",
        "offline",
        QoS::AtLeastOnce,
        false,
    ));
    let doomed = v4(o).await;
    // Kill the client without DISCONNECT: the socket just closes.
    doomed.task.abort();
    let p = watcher.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("wills/doomed", &b"offline"[..])
    );
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn takeover_disconnects_the_older_connection() {
    // 3.1.1 [MQTT-3.1.4-2]
    let (broker, addr) = start_default().await;
    let old = v4(v4_options(addr, "same")).await;
    let mut new = v4(v4_options(addr, "same")).await;
    // The old event loop ends once the broker closes its socket.
    tokio::time::timeout(WAIT, old.task).await.unwrap().unwrap();
    new.subscribe("t", QoS::AtMostOnce).await;
    assert_eq!(broker.connected_clients(), 1);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn v5_publish_subscribe_with_properties() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    let (broker, addr) = start_default().await;
    let mut sub = v5(v5_options(addr, "sub5")).await;
    let props = rumqttc::v5::mqttbytes::v5::SubscribeProperties {
        id: Some(42),
        user_properties: vec![],
    };
    sub.client
        .subscribe_with_properties("req/+", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, props)
        .await
        .unwrap();
    sub.next_matching(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)))
        .await;
    let publ = v5(v5_options(addr, "pub5")).await;
    let props = PublishProperties {
        response_topic: Some("resp/1".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr")),
        user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        content_type: Some("text/plain".into()),
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    publ.client
        .publish_with_properties(
            "req/a",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "hello",
            props,
        )
        .await
        .unwrap();
    let p = sub.next_publish().await;
    let got = p.properties.expect("properties");
    assert_eq!(got.subscription_identifiers, vec![42]); // [MQTT-3.3.4-3]
    assert_eq!(got.response_topic.as_deref(), Some("resp/1"));
    assert_eq!(got.correlation_data.as_deref(), Some(&b"corr"[..]));
    // [MQTT-3.3.2-17] [MQTT-3.3.2-18]: user properties in order, unchanged.
    assert_eq!(
        got.user_properties,
        vec![
            ("k".to_string(), "v".to_string()),
            ("k".to_string(), "w".to_string())
        ]
    );
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.payload_format_indicator, Some(1));
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_sends_server_shutting_down_to_v5_clients() {
    let (broker, addr) = start_default().await;
    let c = v5(v5_options(addr, "s")).await;
    broker.shutdown(Duration::from_secs(1)).await;
    // rumqttc ends its event loop with the DISCONNECT's reason code.
    let end = tokio::time::timeout(WAIT, c.task).await.unwrap().unwrap();
    assert!(end.contains("ServerShuttingDown"), "{end}");
}

#[tokio::test]
async fn sys_topics_are_published_and_not_matched_by_hash() {
    // [MQTT-4.7.2-1]
    let (broker, addr) = start_with(strata_broker::BrokerConfig {
        sys_interval: Some(Duration::from_millis(50)),
        ..strata_broker::BrokerConfig::default()
    })
    .await;
    let mut sys = v4(v4_options(addr, "sys")).await;
    sys.subscribe("$SYS/broker/clients/connected", QoS::AtMostOnce)
        .await;
    let p = sys.next_publish().await;
    let n: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
    assert!(n >= 1, "{n}");
    let mut all = v4(v4_options(addr, "all")).await;
    all.subscribe("#", QoS::AtMostOnce).await;
    all.client
        .publish("plain", QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    // Several $SYS rounds pass while we wait for our own message: none of
    // them may reach a '#' subscriber.
    sys.next_publish().await;
    sys.next_publish().await;
    let p = all.next_publish().await;
    assert_eq!(p.topic, "plain");
    while let Ok(p) = all.rx.try_recv() {
        if let rumqttc::Packet::Publish(p) = p {
            assert!(!p.topic.starts_with('$'), "{}", p.topic);
        }
    }
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn v5_session_expiry_ends_an_offline_session() {
    // [MQTT-3.1.2-23]: kept while the interval runs, gone after it.
    let (broker, addr) = start_default().await;
    let mut o = v5_options(addr, "exp");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(1));
    let c = v5(o.clone()).await;
    c.client.disconnect().await.unwrap();
    tokio::time::timeout(WAIT, c.task).await.unwrap().unwrap();
    assert_eq!(broker.session_count(), 1);
    tokio::time::timeout(WAIT, async {
        while broker.session_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("session expired");
    let (_client, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
    let ack = tokio::time::timeout(WAIT, async {
        loop {
            if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(a)) =
                el.poll().await.unwrap()
            {
                return a;
            }
        }
    })
    .await
    .unwrap();
    assert!(!ack.session_present);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_offline_queue_overflows_without_holding_the_publisher_back() {
    // Flow control waits only for subscribers that are connected and
    // keeping up; an offline session's full queue drops the newest
    // messages (the written overflow policy) and the publisher goes on.
    let mut config = strata_broker::BrokerConfig {
        sys_interval: None,
        ..Default::default()
    };
    config.session.max_queued_messages = 10;
    let (broker, addr) = start_with(config).await;
    let o = park_subscriber(addr, "sleeper", "q/#").await;

    let mut publ = v4(v4_options(addr, "flood")).await;
    publ.publish_acked("q/n", (0..50u8).map(|i| vec![i])).await;
    let mut sub = v4(o).await;
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(sub.next_publish().await.payload[0]);
    }
    assert_eq!(got, (0..10).collect::<Vec<u8>>(), "the oldest ten are kept");
    // Nothing else was queued: the next message is a new one.
    publ.client
        .publish("q/marker", QoS::AtLeastOnce, false, vec![200])
        .await
        .unwrap();
    let p = sub.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("q/marker", &[200u8][..])
    );
    broker.shutdown(Duration::from_secs(1)).await;
}
