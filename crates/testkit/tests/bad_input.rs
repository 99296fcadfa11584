//! Bad input over a real socket, built byte by byte: each gets the spec's
//! reaction (v5 DISCONNECT with the reason code, or a close), and other
//! clients notice nothing.

use std::time::Duration;

use strata_broker::BrokerConfig;
use strata_testkit::raw::{self, packet};
use strata_testkit::{RawClient, Read, TestBroker};

const CONNACK: u8 = 2;
const DISCONNECT: u8 = 14;

/// Connects and checks CONNACK success.
async fn connected(b: &TestBroker, level: u8, id: &str) -> RawClient {
    let mut c = b.client().await;
    c.send(&raw::connect_clean(level, id)).await;
    let ack = c.expect(CONNACK).await;
    assert_eq!(ack.body[1], 0, "CONNACK return code");
    c
}

/// The reason code of the DISCONNECT the server sent before closing.
async fn disconnect_reason(c: &mut RawClient) -> Option<u8> {
    let seen = c.until_closed().await;
    seen.iter()
        .find(|p| p.packet_type() == DISCONNECT)
        .map(|p| p.body[0])
}

#[tokio::test]
async fn first_packet_not_connect_closes_silently() {
    // [MQTT-3.1.0-1]
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    c.send(&raw::PINGREQ).await;
    assert_eq!(c.until_closed().await, vec![]);
}

#[tokio::test]
async fn second_connect() {
    // [MQTT-3.1.0-2]: 3.1.1 closes; 5.0 sends 0x82 first.
    let b = TestBroker::start_default().await;
    let mut c = connected(&b, 4, "a").await;
    c.send(&raw::connect_clean(4, "a")).await;
    assert_eq!(c.until_closed().await, vec![]);
    let mut c = connected(&b, 5, "b").await;
    c.send(&raw::connect_clean(5, "b")).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x82));
}

#[tokio::test]
async fn unsupported_protocol_level_gets_return_code_1() {
    // [MQTT-3.1.2-2]
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    c.send(&raw::connect(6, 0x02, 60, "x", &[])).await;
    let seen = c.until_closed().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].first, 0x20);
    assert_eq!(seen[0].body, vec![0x00, 0x01]);
}

#[tokio::test]
async fn reserved_connect_flag() {
    // [MQTT-3.1.2-3]: 3.1.1 closes; 5.0 CONNACK 0x81 then close.
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    c.send(&raw::connect(4, 0x03, 60, "x", &[])).await;
    assert_eq!(c.until_closed().await, vec![]);
    let mut c = b.client().await;
    c.send(&raw::connect(5, 0x03, 60, "x", &[])).await;
    let seen = c.until_closed().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].packet_type(), CONNACK);
    assert_eq!(seen[0].body[..2], [0x00, 0x81]);
}

#[tokio::test]
async fn reserved_fixed_header_flags() {
    // [MQTT-2.2.2-1] [MQTT-2.2.2-2]: SUBSCRIBE with flags 0000.
    let b = TestBroker::start_default().await;
    let body = [0, 1, 0, 1, b'a', 0];
    let mut c = connected(&b, 4, "a").await;
    c.send(&packet(0x80, &body)).await;
    assert_eq!(c.until_closed().await, vec![]);
    let mut c = connected(&b, 5, "b").await;
    c.send(&packet(0x80, &[0, 1, 0, 0, 1, b'a', 0])).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x81));
}

#[tokio::test]
async fn wildcard_in_publish_topic() {
    // [MQTT-3.3.2-2]: 5.0 DISCONNECT 0x90 Topic Name invalid.
    let b = TestBroker::start_default().await;
    let mut c = connected(&b, 5, "a").await;
    c.send(&raw::publish_qos0(5, "a/+", b"x")).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x90));
    let mut c = connected(&b, 4, "b").await;
    c.send(&raw::publish_qos0(4, "a/#", b"x")).await;
    assert_eq!(c.until_closed().await, vec![]);
}

#[tokio::test]
async fn packet_id_zero() {
    // [MQTT-2.2.1-3]: Protocol Error.
    let b = TestBroker::start_default().await;
    let mut c = connected(&b, 5, "a").await;
    c.send(&raw::publish(5, 1, false, "t", 0, b"x")).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x82));
}

#[tokio::test]
async fn qos_3_publish() {
    // [MQTT-3.3.1-4]: Malformed.
    let b = TestBroker::start_default().await;
    let mut c = connected(&b, 5, "a").await;
    c.send(&raw::publish(5, 3, false, "t", 1, b"x")).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x81));
}

#[tokio::test]
async fn invalid_utf8_topic() {
    // [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]): close.
    let b = TestBroker::start_default().await;
    let mut c = connected(&b, 4, "a").await;
    let mut body = vec![0, 3, b'a', 0xED, 0xA0];
    body.push(b'x');
    c.send(&packet(0x30, &body)).await;
    assert_eq!(c.until_closed().await, vec![]);
}

#[tokio::test]
async fn reserved_packet_type_zero() {
    let b = TestBroker::start_default().await;
    let mut c = connected(&b, 5, "a").await;
    c.send(&[0x00, 0x00]).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x81));
}

#[tokio::test]
async fn packet_over_the_maximum_size() {
    // 5.0: DISCONNECT 0x95 Packet too large, decided from the header alone.
    let b = TestBroker::start(BrokerConfig {
        sys_interval: None,
        session: strata_broker::config::session_config_with_max_packet(128),
        ..BrokerConfig::default()
    })
    .await;
    let mut c = connected(&b, 5, "a").await;
    // Only the fixed header of a 1000-byte PUBLISH.
    c.send(&[0x30, 0xE8, 0x07]).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x95));
}

#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_after_the_connect_timeout() {
    let mut session = strata_broker::config::session_config_with_max_packet(1024);
    session.connect_timeout = Duration::from_millis(200);
    let b = TestBroker::start(BrokerConfig {
        sys_interval: None,
        session,
        ..BrokerConfig::default()
    })
    .await;
    let mut c = b.client().await;
    assert_eq!(c.read().await, Read::Closed);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_expiry_closes_with_0x8d() {
    // [MQTT-3.1.2-22]
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    c.send(&raw::connect(5, 0x02, 1, "k", &[])).await;
    c.expect(CONNACK).await;
    assert_eq!(disconnect_reason(&mut c).await, Some(0x8D));
}

#[tokio::test]
async fn other_clients_do_not_notice() {
    let b = TestBroker::start_default().await;
    let mut sub = connected(&b, 4, "sub").await;
    sub.send(&raw::subscribe(4, 1, "t", 0)).await;
    sub.expect(9).await; // SUBACK
    for i in 0..20u8 {
        let mut bad = connected(&b, 5, &format!("bad{i}")).await;
        bad.send(&[0x30, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).await;
        bad.until_closed().await;
    }
    let mut publ = connected(&b, 4, "pub").await;
    publ.send(&raw::publish_qos0(4, "t", b"still here")).await;
    let p = sub.expect(3).await;
    assert!(p.body.ends_with(b"still here"));
}

/// A subscriber to `flood` whose receive buffer is small, then a publisher
/// that sends it `n` messages of 1 KB at QoS 0: far more than the socket
/// buffers between them hold, so the server soon cannot write to it.
async fn flood_a_client_that_does_not_read(b: &TestBroker, stuck: &mut RawClient, n: usize) {
    stuck.send(&raw::subscribe(4, 1, "flood", 0)).await;
    stuck.expect(9).await; // SUBACK
    let mut publ = connected(b, 4, "flooder").await;
    let one = raw::publish_qos0(4, "flood", &[b'x'; 1024]);
    publ.send(&one.repeat(n)).await;
}

/// A client `id` with a will (`gone` on `will/<id>`, which a watcher, also
/// returned, subscribes to) and a keep alive of 1 s, flooded as above.
async fn flooded_with_a_will(b: &TestBroker, id: &str) -> (RawClient, RawClient) {
    let topic = format!("will/{id}");
    let mut watcher = connected(b, 4, "watcher").await;
    watcher.send(&raw::subscribe(4, 1, &topic, 0)).await;
    watcher.expect(9).await;
    let mut client = RawClient::connect_with_receive_buffer(b.addr, 4096).await;
    let will = [raw::field(topic.as_bytes()), raw::field(b"gone")].concat();
    // Clean session, will flag, keep alive 1 s.
    client.send(&raw::connect(4, 0x06, 1, id, &will)).await;
    client.expect(CONNACK).await;
    flood_a_client_that_does_not_read(b, &mut client, 10_000).await;
    (watcher, client)
}

/// Reads PUBLISH packets until one whose payload ends with `payload`.
async fn until_publish_ending(c: &mut RawClient, payload: &[u8]) {
    while !c.expect(3).await.body.ends_with(payload) {}
}

/// The watcher of `will/<id>` gets a marker published there next, not the
/// will.
async fn no_will_went_out(b: &TestBroker, watcher: &mut RawClient, id: &str) {
    let mut publ = connected(b, 4, "marker").await;
    let topic = format!("will/{id}");
    publ.send(&raw::publish_qos0(4, &topic, b"marker")).await;
    let p = watcher.expect(3).await;
    assert!(p.body.ends_with(b"marker"), "the will went out: {p:?}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_still_held_to_its_keep_alive() {
    // [MQTT-3.1.2-24]: a client silent for one and a half times its keep
    // alive is disconnected, though the server is still trying to write
    // to it; the connection is lost, so its will goes out [MQTT-3.1.2-8].
    let b = TestBroker::start_default().await;
    let (mut watcher, _stuck) = flooded_with_a_will(&b, "stuck").await;
    // Nothing more is read from `stuck` until the will came.
    let p = watcher.expect(3).await;
    assert!(p.body.ends_with(b"gone"), "{p:?}");
}

#[tokio::test]
async fn a_takeover_does_not_wait_for_a_client_that_stops_reading() {
    // 3.1.1 [MQTT-3.1.4-2]: the new connection takes the session over at
    // once, with its state (Session Present 1 [MQTT-3.2.2-2]) and
    // subscription,
    // while the old one still has output the client never reads.
    let b = TestBroker::start_default().await;
    let mut stuck = RawClient::connect_with_receive_buffer(b.addr, 4096).await;
    stuck.send(&raw::connect(4, 0x00, 0, "slow", &[])).await;
    stuck.expect(CONNACK).await;
    flood_a_client_that_does_not_read(&b, &mut stuck, 10_000).await;
    let mut again = b.client().await;
    again.send(&raw::connect(4, 0x00, 0, "slow", &[])).await;
    let ack = again.expect(CONNACK).await;
    assert_eq!(ack.body, vec![0x01, 0x00], "Session Present 1, accepted");
    let mut publ = connected(&b, 4, "after").await;
    publ.send(&raw::publish_qos0(4, "flood", b"after")).await;
    // Flood messages still queued for the session come first.
    until_publish_ending(&mut again, b"after").await;
}

#[tokio::test]
async fn a_client_that_reads_slowly_but_pings_stays_connected() {
    // Not silent [MQTT-3.1.2-24]: its PINGREQs arrive while megabytes of
    // output wait for it to read, and keep it connected; once it reads,
    // it gets everything after them, and its will never goes out.
    let b = TestBroker::start_default().await;
    let (mut watcher, mut slow) = flooded_with_a_will(&b, "slow").await;
    // Twice the keep-alive's grace of 1.5 s, pinging but not reading.
    let mut every = tokio::time::interval(Duration::from_millis(300));
    for _ in 0..10 {
        every.tick().await;
        slow.send(&raw::PINGREQ).await;
    }
    let mut publ = connected(&b, 4, "last").await;
    publ.send(&raw::publish_qos0(4, "flood", b"end")).await;
    until_publish_ending(&mut slow, b"end").await;
    no_will_went_out(&b, &mut watcher, "slow").await;
}

#[tokio::test]
async fn packets_held_while_output_waits_are_answered_in_order_once_it_is_read() {
    // While much output waits for the client, what it sends is held back
    // (but acknowledgements and PINGREQ); once it reads, the held packets
    // are handled, in order, with no further input to prompt them.
    let b = TestBroker::start_default().await;
    let mut slow = RawClient::connect_with_receive_buffer(b.addr, 4096).await;
    slow.send(&raw::connect(4, 0x02, 0, "held", &[])).await;
    slow.expect(CONNACK).await;
    flood_a_client_that_does_not_read(&b, &mut slow, 10_000).await;
    slow.send(&raw::subscribe(4, 2, "other", 1)).await;
    slow.send(&raw::publish(4, 1, false, "elsewhere", 7, b"m"))
        .await;
    let answers: Vec<(u8, u16)> = {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let p = match slow.read().await {
                Read::Packet(p) => p,
                Read::Closed => panic!("closed"),
            };
            if matches!(p.packet_type(), 4 | 9) {
                seen.push((p.packet_type(), p.ack_id()));
            }
        }
        seen
    };
    assert_eq!(answers, vec![(9, 2), (4, 7)], "SUBACK 2, then PUBACK 7");
}

#[tokio::test]
async fn a_disconnect_held_past_the_keep_alive_still_ends_the_connection_normally() {
    // A DISCONNECT held back while output waits for the client counts when
    // the keep-alive runs out: the client ended its connection normally,
    // so its will is not published [MQTT-3.14.4-3].
    let b = TestBroker::start_default().await;
    let (mut watcher, mut slow) = flooded_with_a_will(&b, "leaving").await;
    slow.send(&raw::DISCONNECT).await;
    // It is gone (the watcher is left; the flooder left), still unread.
    let gone = tokio::time::timeout(strata_testkit::WAIT, async {
        while b.broker.connected_clients() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "still connected");
    no_will_went_out(&b, &mut watcher, "leaving").await;
}

#[tokio::test(start_paused = true)]
async fn the_keep_alive_closes_a_silent_client_at_one_and_a_half_times_it() {
    // [MQTT-3.1.2-22] on the broker's clock, paused: 90 s pass in no time.
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    c.send(&raw::connect(5, 0x02, 60, "k", &[])).await;
    c.expect(CONNACK).await;
    let connected = tokio::time::Instant::now();
    let first = c.read_within(Duration::from_secs(600)).await;
    let after = connected.elapsed();
    let Read::Packet(d) = first else {
        panic!("closed without DISCONNECT")
    };
    assert_eq!((d.packet_type(), d.body[0]), (DISCONNECT, 0x8D));
    assert!(
        after >= Duration::from_secs(90) && after < Duration::from_secs(91),
        "closed after {after:?}"
    );
}

/// A 5.0 CONNECT with Clean Start, Session Expiry `expiry` and a will
/// (`gone` on `will/<id>`) delayed by `delay` seconds.
fn connect_with_delayed_will(id: &str, expiry: u32, delay: u32) -> Vec<u8> {
    let mut body = raw::field(b"MQTT");
    body.extend_from_slice(&[5, 0x06, 0, 0]);
    let mut props = vec![0x11];
    props.extend_from_slice(&expiry.to_be_bytes());
    body.extend(raw::var_int(props.len()));
    body.extend(props);
    body.extend(raw::field(id.as_bytes()));
    let mut will_props = vec![0x18];
    will_props.extend_from_slice(&delay.to_be_bytes());
    body.extend(raw::var_int(will_props.len()));
    body.extend(will_props);
    body.extend(raw::field(format!("will/{id}").as_bytes()));
    body.extend(raw::field(b"gone"));
    raw::packet(0x10, &body)
}

#[tokio::test(start_paused = true)]
async fn a_delayed_will_goes_out_when_its_delay_is_over() {
    // [MQTT-3.1.3-9]: the session outlives the connection (expiry 1 h), so
    // the will waits its 30 s; paused, they pass in no time.
    let b = TestBroker::start_default().await;
    let mut watcher = connected(&b, 5, "watcher").await;
    watcher.send(&raw::subscribe(5, 1, "will/#", 0)).await;
    watcher.expect(9).await;
    let mut c = b.client().await;
    c.send(&connect_with_delayed_will("mortal", 3600, 30)).await;
    c.expect(CONNACK).await;
    drop(c);
    let lost = tokio::time::Instant::now();
    let Read::Packet(p) = watcher.read_within(Duration::from_secs(600)).await else {
        panic!("the watcher was closed");
    };
    let after = lost.elapsed();
    assert!(p.body.ends_with(b"gone"), "{p:?}");
    assert!(
        after >= Duration::from_secs(30) && after < Duration::from_secs(31),
        "the will came after {after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_offline_session_is_kept_until_its_expiry_and_no_longer() {
    // [MQTT-3.1.2-23]: an hour on paused time.
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    c.send(&connect_with_delayed_will("kept", 3600, 0)).await;
    c.expect(CONNACK).await;
    c.send(&raw::DISCONNECT).await;
    assert_eq!(c.until_closed().await, Vec::new());
    let gone = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3599)).await;
    assert_eq!(b.broker.session_count(), 1, "expired early");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.broker.session_count(), 0, "kept past its expiry");
    assert!(gone.elapsed() < Duration::from_secs(3602));
}
