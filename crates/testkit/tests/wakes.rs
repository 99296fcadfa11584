//! What reaches a connection task at the same time is handled together,
//! and nothing of it is lost: here a message for a persistent session that
//! arrives in the same wake as the client's DISCONNECT stays with the
//! session for its next connection [MQTT-3.1.2-5] [MQTT-4.4.0-1].

use strata_testkit::raw::{self, packet};
use strata_testkit::{RawClient, TestBroker};

const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const SUBACK: u8 = 9;

#[tokio::test]
async fn a_message_that_comes_with_the_disconnect_waits_for_the_next_connection() {
    let b = TestBroker::start_default().await;
    let (mut sub, _) = b.persistent("wake-sub").await;
    sub.send(&raw::subscribe(4, 1, "w/t", 1)).await;
    assert_eq!(sub.expect(SUBACK).await.body[2], 1, "granted QoS 1");
    let mut publ = b.client().await;
    publ.send(&raw::connect_clean(4, "wake-pub")).await;
    publ.expect(CONNACK).await;
    for round in 1..=20u16 {
        let payload = format!("m{round}").into_bytes();
        // Both written before the broker runs again (one thread): the
        // publisher's task routes the message into the subscriber's
        // mailbox while the subscriber's DISCONNECT waits in its socket,
        // so one wake of the subscriber's task finds both.
        publ.send(&raw::publish(4, 1, false, "w/t", round, &payload))
            .await;
        sub.send(&[0xE0, 0x00]).await;
        sub.until_closed().await;
        publ.expect(PUBACK).await;
        let (mut next, present) = b.persistent("wake-sub").await;
        assert!(present, "round {round}: the session is kept");
        // Sent before the close and never acknowledged (then resent), or
        // still queued: either way it is the next PUBLISH.
        let (id, got, _) = next.expect(PUBLISH).await.publish_parts();
        assert_eq!(got, payload, "round {round}");
        next.send(&packet(0x40, &id.to_be_bytes())).await;
        sub = next;
    }
    b.broker.shutdown(std::time::Duration::from_secs(1)).await;
}

const PINGRESP: u8 = 13;

/// A publisher ("fast") whose stream pauses it: a subscriber ("slow") that
/// reads nothing fills its in-flight window (64), then the queue limit of a
/// session's task (256), then its mailbox's congestion mark (256), and
/// the publisher is paused (mailbox.rs) with PUBLISH packets still to
/// come. "fast" subscribes too, and holds a QoS 1 message it has not
/// acknowledged: the server waits for its acknowledgements, so it reads on
/// while paused. Returns the publisher after writing `N` QoS 1 PUBLISH
/// packets and then `tail`, and the subscriber (kept connected).
const N: u16 = 3000;

async fn paused_publisher(b: &TestBroker, tail: &[u8]) -> (RawClient, RawClient) {
    let mut slow = b.client().await;
    slow.send(&raw::connect_clean(4, "slow")).await;
    slow.expect(CONNACK).await;
    slow.send(&raw::subscribe(4, 1, "p/t", 1)).await;
    slow.expect(SUBACK).await;
    let mut publ = b.client().await;
    publ.send(&raw::connect_clean(4, "fast")).await;
    publ.expect(CONNACK).await;
    publ.send(&raw::subscribe(4, 1, "p/back", 1)).await;
    publ.expect(SUBACK).await;
    slow.send(&raw::publish(4, 1, false, "p/back", 1, b"y"))
        .await;
    slow.expect(PUBACK).await;
    let (_, back, _) = publ.expect(PUBLISH).await.publish_parts();
    assert_eq!(back, b"y");
    let mut bytes = Vec::new();
    for id in 1..=N {
        bytes.extend(raw::publish(4, 1, false, "p/t", id, b"x"));
    }
    bytes.extend(tail);
    publ.send(&bytes).await;
    (publ, slow)
}

#[tokio::test]
async fn a_paused_publisher_answers_pingreq_ahead_of_the_messages_it_holds() {
    let b = TestBroker::start_default().await;
    let (mut publ, _slow) = paused_publisher(&b, &[0xC0, 0x00]).await;
    // The pause holds the PUBLISH packets behind it back, but the PINGREQ
    // is answered at once [MQTT-3.12.4-1]: before the PUBACK of the last
    // PUBLISH, which was sent before it.
    let mut acked = Vec::new();
    loop {
        let p = match publ.read().await {
            strata_testkit::Read::Packet(p) => p,
            strata_testkit::Read::Closed => panic!("closed after {} PUBACKs", acked.len()),
        };
        match p.packet_type() {
            PUBACK => acked.push(p.ack_id()),
            PINGRESP => break,
            t => panic!("unexpected packet type {t}"),
        }
    }
    assert!(
        acked.len() < usize::from(N),
        "PINGRESP came only after every PUBACK: the paused publisher read nothing"
    );
    // Everything held is handled once the pause ends, and every PUBACK
    // comes in the order of its PUBLISH [MQTT-4.6.0-2].
    while acked.len() < usize::from(N) {
        let p = publ.expect(PUBACK).await;
        acked.push(p.ack_id());
    }
    assert!(acked.iter().copied().eq(1..=N), "PUBACKs in order");
    b.broker.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_malformed_packet_closes_a_paused_publisher_at_once() {
    // A QoS 1 PUBLISH with packet identifier 0 [MQTT-2.2.1-3], sent while
    // the publisher is paused: the connection closes [MQTT-4.8.0-1]; it
    // does not wait for the pause to end, nor is the packet passed over.
    let b = TestBroker::start_default().await;
    let (mut publ, _slow) = paused_publisher(&b, &raw::publish(4, 1, false, "p/t", 0, b"x")).await;
    let seen = publ.until_closed().await;
    assert!(
        seen.len() < usize::from(N),
        "closed only after every PUBACK ({} packets)",
        seen.len()
    );
    b.broker.shutdown(std::time::Duration::from_secs(1)).await;
}
