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
/// come. With `reads_on`, "fast" subscribes too, and holds a QoS 1 message
/// it has not acknowledged: the server waits for its acknowledgements, so
/// it reads on while paused (without, it is not read while paused).
/// Returns the publisher after writing `N` QoS 1 PUBLISH packets and then
/// `tail`, and the subscriber (kept connected). `connect` is the
/// publisher's CONNECT.
const N: u16 = 3000;

async fn paused_publisher(
    b: &TestBroker,
    connect: &[u8],
    reads_on: bool,
    tail: &[u8],
) -> (RawClient, RawClient) {
    let mut slow = b.client().await;
    slow.send(&raw::connect_clean(4, "slow")).await;
    slow.expect(CONNACK).await;
    slow.send(&raw::subscribe(4, 1, "p/t", 1)).await;
    slow.expect(SUBACK).await;
    let mut publ = b.client().await;
    publ.send(connect).await;
    publ.expect(CONNACK).await;
    if reads_on {
        publ.send(&raw::subscribe(4, 1, "p/back", 1)).await;
        publ.expect(SUBACK).await;
        slow.send(&raw::publish(4, 1, false, "p/back", 1, b"y"))
            .await;
        slow.expect(PUBACK).await;
        let (_, back, _) = publ.expect(PUBLISH).await.publish_parts();
        assert_eq!(back, b"y");
    }
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
    let fast = raw::connect_clean(4, "fast");
    let (mut publ, _slow) = paused_publisher(&b, &fast, true, &[0xC0, 0x00]).await;
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
    let fast = raw::connect_clean(4, "fast");
    let bad = raw::publish(4, 1, false, "p/t", 0, b"x");
    let (mut publ, _slow) = paused_publisher(&b, &fast, true, &bad).await;
    let seen = publ.until_closed().await;
    assert!(
        seen.len() < usize::from(N),
        "closed only after every PUBACK ({} packets)",
        seen.len()
    );
    b.broker.shutdown(std::time::Duration::from_secs(1)).await;
}

/// A client whose publishes a pause holds back ends its connection
/// normally, so its will must not be published [MQTT-3.1.2-10]
/// [MQTT-3.14.4-3], and connects again at once, before the broker handled
/// that DISCONNECT (held behind the PUBLISH packets, or, for a client that
/// only publishes, not read yet). The takeover ends the old connection
/// first; the DISCONNECT still counts.
async fn takeover_after_disconnect(reads_on: bool) {
    let b = TestBroker::start_default().await;
    let mut watch = b.client().await;
    watch.send(&raw::connect_clean(4, "watch")).await;
    watch.expect(CONNACK).await;
    watch.send(&raw::subscribe(4, 1, "will/fast", 1)).await;
    watch.expect(SUBACK).await;
    // Clean session, a QoS 1 will on will/fast.
    let will = [raw::field(b"will/fast"), raw::field(b"gone")].concat();
    let fast = raw::connect(4, 0x02 | 0x04 | 0x08, 60, "fast", &will);
    let (mut old, _slow) = paused_publisher(&b, &fast, reads_on, &[0xE0, 0x00]).await;
    let mut again = b.client().await;
    again.send(&raw::connect_clean(4, "fast")).await;
    again.expect(CONNACK).await;
    // The old connection ended before its last PUBLISH was handled, so
    // before the DISCONNECT behind it: the case under test.
    let seen = old.until_closed().await;
    let last = seen
        .iter()
        .any(|p| p.packet_type() == PUBACK && p.ack_id() == N);
    assert!(!last, "the DISCONNECT was handled before the takeover");
    // The next message on will/fast is this one, not the will.
    again
        .send(&raw::publish(4, 1, false, "will/fast", 1, b"marker"))
        .await;
    let (_, got, _) = watch.expect(PUBLISH).await.publish_parts();
    assert_eq!(got, b"marker", "the will was published");
    b.broker.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_disconnect_held_by_a_pause_still_discards_the_will_on_a_takeover() {
    takeover_after_disconnect(true).await;
}

#[tokio::test]
async fn a_disconnect_not_read_during_a_pause_still_discards_the_will_on_a_takeover() {
    takeover_after_disconnect(false).await;
}

/// A publisher's PUBACK leaves after the subscriber's copy of the message:
/// the connection task that routed a few messages lets the subscriber's
/// task write first. The kernel stamps each socket's bytes as they arrive,
/// which tells the order apart on one machine.
#[tokio::test]
async fn the_subscribers_copy_leaves_before_the_publishers_puback() {
    let b = TestBroker::start_default().await;
    let addr = b.addr;
    // Blocking clients on their own thread: the broker's runtime runs
    // while they wait (each read bounded by the socket's timeout).
    let stamps = tokio::task::spawn_blocking(move || {
        let sub = stamped::connect(addr, "order-sub");
        stamped::send(&sub, &raw::subscribe(4, 1, "o/t", 1));
        assert_eq!(stamped::recv(&sub, 5).0[4], 1, "granted QoS 1");
        let publ = stamped::connect(addr, "order-pub");
        let mut stamps = Vec::new();
        for id in 1..=20u16 {
            let message = raw::publish(4, 1, false, "o/t", id, b"ordered");
            stamped::send(&publ, &message);
            let (ack, acked_at) = stamped::recv(&publ, 4);
            assert_eq!(ack, packet(0x40, &id.to_be_bytes()), "PUBACK {id}");
            // The same size as the publisher's: same topic, payload, QoS.
            let (copy, delivered_at) = stamped::recv(&sub, message.len());
            assert_eq!(copy[0] & 0xF0, 0x30, "PUBLISH");
            let sub_id = &copy[copy.len() - b"ordered".len() - 2..][..2];
            stamped::send(&sub, &packet(0x40, sub_id));
            stamps.push((delivered_at, acked_at));
        }
        stamps
    })
    .await
    .expect("the clients' thread");
    for (i, (delivered_at, acked_at)) in stamps.iter().enumerate() {
        assert!(
            delivered_at <= acked_at,
            "message {i}: the subscriber's copy arrived {} ns after the PUBACK",
            delivered_at - acked_at
        );
    }
}

/// Blocking 3.1.1 clients whose reads carry the kernel's receive timestamp.
mod stamped {
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};
    use std::os::fd::AsRawFd;

    use strata_testkit::WAIT;
    use strata_testkit::raw;

    pub fn connect(addr: SocketAddr, id: &str) -> TcpStream {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("read timeout");
        s.set_nodelay(true).expect("nodelay");
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                std::mem::size_of_val(&on) as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "SO_TIMESTAMPNS: {}", std::io::Error::last_os_error());
        send(&s, &raw::connect_clean(4, id));
        assert_eq!(recv(&s, 4).0, [0x20, 2, 0, 0], "CONNACK accepted");
        s
    }

    pub fn send(mut s: &TcpStream, bytes: &[u8]) {
        s.write_all(bytes).expect("write");
    }

    /// Reads exactly `len` bytes; returns them and when the last of them
    /// arrived (ns since the epoch).
    pub fn recv(s: &TcpStream, len: usize) -> (Vec<u8>, i128) {
        let mut got = vec![0u8; len];
        let mut filled = 0;
        let mut stamp = None;
        while filled < len {
            let mut iov = libc::iovec {
                iov_base: got[filled..].as_mut_ptr().cast(),
                iov_len: len - filled,
            };
            // u64s: aligned for a cmsghdr.
            let mut control = [0u64; 16];
            // SAFETY: msghdr is plain data; all-zero is a valid value.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: the buffers msg points to live across the call.
            let n = unsafe { libc::recvmsg(s.as_raw_fd(), &raw mut msg, 0) };
            assert!(
                n > 0,
                "read {filled} of {len} bytes: {}",
                std::io::Error::last_os_error()
            );
            filled += n as usize;
            // SAFETY: msg was filled in by recvmsg; the control messages
            // are walked with the kernel's own macros.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET
                        && (*c).cmsg_type == libc::SCM_TIMESTAMPNS
                    {
                        let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        stamp = Some(i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec));
                    }
                    c = libc::CMSG_NXTHDR(&raw const msg, c);
                }
            }
        }
        (got, stamp.expect("a kernel receive timestamp"))
    }
}
