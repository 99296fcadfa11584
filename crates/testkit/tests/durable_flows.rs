//! QoS 2 flows of persistent sessions across a restart on the same data
//! directory, in raw packets so that every acknowledgement is the test's
//! choice: an outbound flow comes back under its packet id and in its
//! phase (PUBLISH with DUP before PUBREC, PUBREL after it), and an inbound
//! packet id stays a duplicate until its PUBREL. Every message arrives
//! exactly once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use strata_broker::BrokerConfig;
use strata_testkit::raw::{self, packet};
use strata_testkit::{RawClient, RawPacket, TestBroker};

const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBACK: u8 = 9;

/// A fresh data directory, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> DataDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "strata-flows-{}-{}",
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

async fn start_on(dir: &DataDir) -> TestBroker {
    let mut config = BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    };
    config.storage.data_dir = Some(dir.0.clone());
    TestBroker::start(config).await
}

async fn restart(b: TestBroker, dir: &DataDir) -> TestBroker {
    b.broker.shutdown(Duration::from_secs(1)).await;
    start_on(dir).await
}

/// A broker that keeps one message in flight per client.
async fn start_one_in_flight(dir: &DataDir) -> TestBroker {
    let mut config = BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    };
    config.session.max_inflight = 1;
    config.storage.data_dir = Some(dir.0.clone());
    TestBroker::start(config).await
}

/// Completes an outbound QoS 2 flow: PUBREC, PUBREL, PUBCOMP.
async fn complete_qos2(c: &mut RawClient, id: u16) {
    c.send(&ack(0x50, id)).await;
    assert_eq!(c.expect(PUBREL).await.ack_id(), id);
    c.send(&ack(0x70, id)).await;
}

fn ack(first: u8, id: u16) -> Vec<u8> {
    packet(first, &id.to_be_bytes())
}

/// Publishes at QoS 2 and completes the flow.
async fn publish_qos2(c: &mut RawClient, topic: &str, id: u16, payload: &[u8]) {
    publish_qos2_as(c, false, topic, id, payload).await;
}

/// [`publish_qos2`], retained or not.
async fn publish_qos2_as(c: &mut RawClient, retain: bool, topic: &str, id: u16, payload: &[u8]) {
    c.send(&raw::publish(4, 2, retain, topic, id, payload))
        .await;
    assert_eq!(c.expect(PUBREC).await.ack_id(), id);
    c.send(&ack(0x62, id)).await;
    assert_eq!(c.expect(PUBCOMP).await.ack_id(), id);
}

/// The very next packet is PUBREL for `id`.
async fn next_is_pubrel(c: &mut RawClient, id: u16, what: &str) {
    let rel = c.read().await;
    let expected = RawPacket {
        first: 0x62,
        body: id.to_be_bytes().to_vec(),
    };
    assert_eq!(rel, strata_testkit::Read::Packet(expected), "{what}");
}

async fn subscribe(c: &mut RawClient, filter: &str) {
    c.send(&raw::subscribe(4, 1, filter, 2)).await;
    assert_eq!(c.expect(SUBACK).await.body[2], 2, "granted QoS 2");
}

#[tokio::test]
async fn outbound_qos2_flows_resume_in_their_phase_after_a_restart() {
    let dir = DataDir::new();
    let b = start_on(&dir).await;
    let (mut sub, _) = b.persistent("flows-sub").await;
    subscribe(&mut sub, "q/#").await;
    let (mut publ, _) = b.persistent("flows-pub").await;
    publish_qos2(&mut publ, "q/a", 1, b"first").await;
    publish_qos2(&mut publ, "q/b", 2, b"second").await;
    let (first_id, first, _) = sub.expect(PUBLISH).await.publish_parts();
    let (second_id, second, _) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!((&first[..], &second[..]), (&b"first"[..], &b"second"[..]));
    // The second reaches PUBREL; the first stays unacknowledged.
    sub.send(&ack(0x50, second_id)).await;
    assert_eq!(sub.expect(PUBREL).await.ack_id(), second_id);
    drop((sub, publ));

    let b = restart(b, &dir).await;
    let (mut sub, present) = b.persistent("flows-sub").await;
    assert!(present, "the session survived the restart");
    // [MQTT-4.4.0-1]: the PUBLISH again with DUP under its id, then the
    // PUBREL (not the PUBLISH the client completed), in the order sent.
    let p = sub.expect(PUBLISH).await;
    assert_eq!(p.publish_parts(), (first_id, b"first".to_vec(), true));
    assert_eq!(p.first & 0x06, 0x04, "QoS 2");
    next_is_pubrel(&mut sub, second_id, "PUBREL for the released one").await;
    sub.send(&ack(0x70, second_id)).await;
    complete_qos2(&mut sub, first_id).await;

    // Nothing comes again: the next PUBLISH is a new message.
    let (mut publ, _) = b.persistent("flows-pub").await;
    publish_qos2(&mut publ, "q/c", 3, b"third").await;
    let (_, payload, dup) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!((&payload[..], dup), (&b"third"[..], false));

    // Completed flows stay completed across another restart.
    drop((sub, publ));
    let b = restart(b, &dir).await;
    let (mut sub, present) = b.persistent("flows-sub").await;
    assert!(present);
    let p = sub.expect(PUBLISH).await;
    let (third_id, payload, dup) = p.publish_parts();
    assert_eq!((&payload[..], dup), (&b"third"[..], true), "only the third");
    complete_qos2(&mut sub, third_id).await;
    b.broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_inbound_qos2_id_stays_a_duplicate_until_pubrel_across_a_restart() {
    let dir = DataDir::new();
    let b = start_on(&dir).await;
    let (mut sub, _) = b.persistent("in-sub").await;
    subscribe(&mut sub, "in/#").await;
    let (mut publ, _) = b.persistent("in-pub").await;
    // 7: stored for the persistent subscriber; 8: for nobody, so only
    // the packet id is stored. Both get PUBREC; neither gets PUBREL yet.
    publ.send(&raw::publish(4, 2, false, "in/x", 7, b"once"))
        .await;
    assert_eq!(publ.expect(PUBREC).await.ack_id(), 7);
    publ.send(&raw::publish(4, 2, false, "solo/x", 8, b"solo"))
        .await;
    assert_eq!(publ.expect(PUBREC).await.ack_id(), 8);
    let (id, payload, _) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!(payload, b"once");
    sub.send(&ack(0x50, id)).await;
    sub.expect(PUBREL).await;
    sub.send(&ack(0x70, id)).await;
    drop((sub, publ));

    let b = restart(b, &dir).await;
    let mut watcher = b.client().await;
    watcher.send(&raw::connect_clean(4, "in-watch")).await;
    watcher.expect(CONNACK).await;
    subscribe(&mut watcher, "solo/#").await;
    let (mut publ, present) = b.persistent("in-pub").await;
    assert!(present);
    // The client resends both (it never saw PUBREC survive, as far as the
    // test is concerned): PUBREC again, routed never [MQTT-4.3.3-10].
    let mut dup = raw::publish(4, 2, false, "in/x", 7, b"once");
    dup[0] |= 0x08;
    publ.send(&dup).await;
    assert_eq!(publ.expect(PUBREC).await.ack_id(), 7);
    let mut dup = raw::publish(4, 2, false, "solo/x", 8, b"solo");
    dup[0] |= 0x08;
    publ.send(&dup).await;
    assert_eq!(publ.expect(PUBREC).await.ack_id(), 8);
    for id in [7, 8] {
        publ.send(&ack(0x62, id)).await;
        assert_eq!(publ.expect(PUBCOMP).await.ack_id(), id);
    }
    // Released: the same ids now carry new messages.
    publish_qos2(&mut publ, "in/x", 7, b"again").await;
    publish_qos2(&mut publ, "solo/x", 8, b"solo again").await;
    let (_, payload, _) = watcher.expect(PUBLISH).await.publish_parts();
    assert_eq!(payload, b"solo again", "the resent one was not routed");
    let (mut sub, _) = b.persistent("in-sub").await;
    let (_, payload, _) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!(payload, b"again", "the resent one was not routed");

    // And the releases are durable: after another restart, id 7 is free.
    drop((sub, publ));
    let b = restart(b, &dir).await;
    let (mut sub, _) = b.persistent("in-sub").await;
    let (id, payload, _) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!(payload, b"again");
    sub.send(&ack(0x50, id)).await;
    sub.expect(PUBREL).await;
    sub.send(&ack(0x70, id)).await;
    let (mut publ, _) = b.persistent("in-pub").await;
    publish_qos2(&mut publ, "in/x", 7, b"third").await;
    let (_, payload, _) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!(payload, b"third");
    b.broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn two_copies_of_one_message_resume_apart_after_a_restart() {
    // A shared and a non-shared subscription of one session both match, so
    // the session gets two copies (section 4.8.2), each its own QoS 2 flow:
    // after a restart each resumes under its own packet id and in its own
    // phase, and a copy still offline comes back twice.
    let dir = DataDir::new();
    let b = start_on(&dir).await;
    let (mut sub, _) = b.persistent("copies-sub").await;
    subscribe(&mut sub, "$share/g/c/#").await;
    subscribe(&mut sub, "c/#").await;
    let (mut publ, _) = b.persistent("copies-pub").await;
    publish_qos2(&mut publ, "c/x", 1, b"both").await;
    let (a, first, _) = sub.expect(PUBLISH).await.publish_parts();
    let (b_id, second, _) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!((&first[..], &second[..]), (&b"both"[..], &b"both"[..]));
    assert_ne!(a, b_id);
    // The second copy reaches PUBREL; the first stays unacknowledged.
    sub.send(&ack(0x50, b_id)).await;
    assert_eq!(sub.expect(PUBREL).await.ack_id(), b_id);
    drop((sub, publ));

    let b = restart(b, &dir).await;
    let (mut sub, present) = b.persistent("copies-sub").await;
    assert!(present);
    // [MQTT-4.4.0-1], for each copy: the first again with DUP under its
    // id, the second as PUBREL [MQTT-4.8.2-4].
    let p = sub.expect(PUBLISH).await;
    assert_eq!(p.publish_parts(), (a, b"both".to_vec(), true));
    next_is_pubrel(&mut sub, b_id, "PUBREL for the second copy").await;
    sub.send(&ack(0x70, b_id)).await;
    complete_qos2(&mut sub, a).await;
    // Offline now; a message comes for both subscriptions.
    sub.send(&packet(0xE0, &[])).await;
    sub.until_closed().await;
    let (mut publ, _) = b.persistent("copies-pub").await;
    publish_qos2(&mut publ, "c/y", 2, b"offline").await;
    drop(publ);

    let b = restart(b, &dir).await;
    let (mut sub, present) = b.persistent("copies-sub").await;
    assert!(present);
    // Both copies, once each, and nothing of c/x again.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (id, payload, _) = sub.expect(PUBLISH).await.publish_parts();
        assert_eq!(&payload[..], b"offline");
        ids.push(id);
    }
    for id in ids {
        complete_qos2(&mut sub, id).await;
    }
    let (mut publ, _) = b.persistent("copies-pub").await;
    publish_qos2(&mut publ, "c/z", 3, b"next").await;
    let (_, payload, dup) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!((&payload[..], dup), (&b"next"[..], false));
    b.broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_retained_message_queued_on_subscribing_is_sent_after_a_restart() {
    // A new subscription gets the matching retained messages
    // [MQTT-3.3.1-9]. With one message in flight at a time, the second
    // waits in the persistent session's queue: after a restart the first
    // comes again with DUP [MQTT-4.4.0-1] and then the second, each once.
    let dir = DataDir::new();
    let b = start_one_in_flight(&dir).await;
    let (mut publ, _) = b.persistent("queued-pub").await;
    for (id, topic, payload) in [(1, "h/a", &b"first"[..]), (2, "h/b", b"second")] {
        publish_qos2_as(&mut publ, true, topic, id, payload).await;
    }
    let (mut sub, _) = b.persistent("queued-sub").await;
    subscribe(&mut sub, "h/#").await;
    let p = sub.expect(PUBLISH).await;
    assert_eq!(
        p.first & 0x01,
        1,
        "RETAIN on a subscription's retained message"
    );
    let (in_flight, sent, _) = p.publish_parts();
    let waiting: &[u8] = if sent == b"first" {
        b"second"
    } else {
        b"first"
    };
    drop((sub, publ));

    b.broker.shutdown(Duration::from_secs(1)).await;
    let b = start_one_in_flight(&dir).await;
    let (mut sub, present) = b.persistent("queued-sub").await;
    assert!(present, "the session survived the restart");
    let p = sub.expect(PUBLISH).await;
    assert_eq!(p.publish_parts(), (in_flight, sent.clone(), true));
    complete_qos2(&mut sub, in_flight).await;
    let p = sub.expect(PUBLISH).await;
    assert_eq!(p.first & 0x01, 1, "still a retained message");
    let (id, payload, dup) = p.publish_parts();
    assert_eq!(
        (&payload[..], dup),
        (waiting, false),
        "the queued one, once"
    );
    complete_qos2(&mut sub, id).await;

    // Both done: across another restart nothing comes again, and the
    // next PUBLISH is a new message.
    // DISCONNECT: the broker has handled the PUBCOMP before it closes.
    sub.send(&packet(0xE0, &[])).await;
    sub.until_closed().await;
    b.broker.shutdown(Duration::from_secs(1)).await;
    let b = start_one_in_flight(&dir).await;
    let (mut sub, present) = b.persistent("queued-sub").await;
    assert!(present);
    let (mut publ, _) = b.persistent("queued-pub").await;
    publish_qos2(&mut publ, "h/c", 3, b"third").await;
    let (id, payload, dup) = sub.expect(PUBLISH).await.publish_parts();
    assert_eq!((&payload[..], dup), (&b"third"[..], false));
    complete_qos2(&mut sub, id).await;
    b.broker.shutdown(Duration::from_secs(1)).await;
}
