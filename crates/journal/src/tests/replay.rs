//! Replay against what live routing does: sessions, subscriptions,
//! queues, flows in flight, wills, retained messages.

use super::*;

#[test]
fn a_pending_entry_applies_only_to_its_message() {
    let log = new_log();
    let pending = Entry::Pending {
        client: s("a"),
        id: 1,
        qos: Q1,
        retain: false,
        subscription_ids: vec![],
        on_subscribe: false,
    };
    // Not after message 1: it waits for a message 1 to come, which never
    // does (a share group's pick is written before its message, and a torn
    // append may have lost the message).
    write(
        &log,
        &at(vec![up("a", 60), msg(1, "t", Q1), msg(2, "t", Q1), pending]),
    );
    let r = replay(&log, ShareStrategy::RoundRobin, Instant::now(), T0).unwrap();
    assert!(session(&r, "a").pending.is_empty());
}

#[test]
fn pending_follows_subscriptions() {
    let log = new_log();
    let sid5 = SubOptions {
        qos: Q1,
        retain_as_published: true,
        subscription_id: Some(5),
        ..SubOptions::default()
    };
    write(
        &log,
        &at(vec![
            up("a", 100),
            up("b", 100),
            sub("a", "t/+", sid5),
            sub("a", "x", opts(Q2)),
            sub("b", "x", opts(Q0)),
            retained(1, "t/1", "r", Q2),
            msg(2, "x", Q1),
            msg(3, "t/2", Q0),
            msg(4, "other", Q2),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(r.records, 9);
    let a = session(&r, "a");
    assert_eq!(ids(a), [1, 2]);
    let d = &a.pending[0];
    assert_eq!((d.qos, d.effective_qos(), d.retain), (Q1, Q1, true));
    assert_eq!(d.subscription_ids, [5]);
    let d = &a.pending[1];
    assert_eq!((d.qos, d.effective_qos(), d.retain), (Q2, Q1, false));
    assert!(d.subscription_ids.is_empty());
    assert_eq!(&*d.message.payload, b"payload 2");
    // QoS 0 to b: an offline mailbox would not keep it.
    assert!(session(&r, "b").pending.is_empty());
    assert_eq!(r.next_id, 5);
}

#[test]
fn overlapping_subscriptions_give_one_delivery_at_the_highest_qos() {
    let log = new_log();
    let with_id = |qos, id| SubOptions {
        qos,
        subscription_id: Some(id),
        ..SubOptions::default()
    };
    write(
        &log,
        &at(vec![
            up("a", 100),
            sub("a", "a/#", with_id(Q1, 1)),
            sub("a", "a/b", with_id(Q2, 2)),
            sub("a", "+/b", opts(Q0)),
            msg(1, "a/b", Q2),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    let a = session(&r, "a");
    assert_eq!(a.pending.len(), 1);
    assert_eq!(a.pending[0].qos, Q2);
    assert_eq!(a.pending[0].subscription_ids, [1, 2]);
}

#[test]
fn unsubscribe_stops_later_messages_and_keeps_earlier_ones() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("a", 100),
            sub("a", "t", opts(Q1)),
            sub("a", "u", opts(Q1)),
            msg(1, "t", Q1),
            unsub("a", "t"),
            msg(2, "t", Q1),
            // The same filter again replaces, keeping its place.
            sub("a", "v", opts(Q1)),
            sub("a", "u", opts(Q2)),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    let a = session(&r, "a");
    assert_eq!(ids(a), [1]);
    assert_eq!(a.subscriptions, [(s("u"), opts(Q2)), (s("v"), opts(Q1))]);
}

#[test]
fn dropped_removes_from_that_client_only() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("a", 100),
            up("b", 100),
            sub("a", "t", opts(Q1)),
            sub("b", "t", opts(Q1)),
            msg(1, "t", Q1),
            msg(2, "t", Q1),
            msg(3, "t", Q1),
            dropped("a", 2, Q1, false, &[]),
            dropped("b", 1, Q1, false, &[]),
            Entry::IdMark { ids: vec![99] },
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(ids(session(&r, "a")), [1, 3]);
    assert_eq!(ids(session(&r, "b")), [2, 3]);
    // An id mark counts: no id is handed out twice.
    assert_eq!(r.next_id, 100);
}

#[test]
fn up_resets_a_client_and_end_removes_it() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("a", 100),
            up("b", 100),
            up("c", 100),
            sub("a", "t", opts(Q1)),
            sub("b", "t", opts(Q1)),
            msg(1, "t", Q1),
            up("a", 50),
            msg(2, "t", Q1),
            Entry::End { client: s("b") },
            // An ended session is not brought back by later entries.
            sub("b", "t", opts(Q1)),
            down("b", 100, T0),
            msg(3, "t", Q1),
            up("c", 0),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(clients(&r), ["a"]);
    let a = session(&r, "a");
    assert_eq!(
        (a.expiry, a.subscriptions.len(), a.pending.len()),
        (50, 0, 0)
    );
}

#[test]
fn retained_messages_are_set_replaced_and_cleared() {
    let log = new_log();
    let mut old = message(6, "d", "expired", Q1, true);
    old.properties.message_expiry_interval = Some(1);
    write(
        &log,
        &[
            (T0, up("a", 100)),
            (T0, sub("a", "#", opts(Q1))),
            (T0, retained(1, "a", "x", Q1)),
            (T0, retained(2, "b", "y", Q1)),
            (T0, retained(3, "a", "z", Q0)),
            (T0, retained(4, "b", "", Q1)),
            (T0, retained(5, "c", "w", Q0)),
            (T0, msg(7, "c", Q1)),
            (T0 - 2000, Entry::Message(old)),
        ],
    );
    let r = replay_at(&log, Instant::now(), T0);
    let got: Vec<(u64, &str, &[u8])> = r
        .retained
        .iter()
        .map(|m| (m.id, m.topic.as_str(), &m.payload[..]))
        .collect();
    assert_eq!(got, [(3, "a", &b"z"[..]), (5, "c", b"w")]);
    // Retained QoS 0 is not pending; the expired one is dropped.
    assert_eq!(ids(session(&r, "a")), [1, 2, 4, 7]);
}

#[test]
fn sessions_expire_by_the_wall_clock() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("gone", 10),
            down("gone", 10, T0),
            up("left", 60),
            down("left", 60, T0),
            up("connected", 30),
            up("never", u32::MAX),
            down("never", u32::MAX, T0 - 1_000_000_000_000),
            up("future", 5),
            down("future", 5, T0 + 1_000_000),
            up("shortened", 1000),
            down("shortened", 3, T0),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0 + 10_000);
    assert_eq!(clients(&r), ["connected", "future", "left", "never"]);
    let left = |c| session(&r, c).expires_in;
    assert_eq!(left("left"), Some(Duration::from_secs(50)));
    assert_eq!(left("connected"), Some(Duration::from_secs(30)));
    assert_eq!(left("never"), None);
    // A down time after now (the clock stepped back) counts as now.
    assert_eq!(left("future"), Some(Duration::from_secs(5)));
    // Expiry is due exactly at at_ms + expiry: gone at T0 + 10 s.
    let r = replay_at(&log, Instant::now(), T0 + 9_999);
    assert_eq!(
        session(&r, "gone").expires_in,
        Some(Duration::from_millis(1))
    );
}

#[test]
fn resume_counts_as_connected() {
    let log = new_log();
    write(
        &log,
        &[
            (T0, up("a", 60)),
            (T0, up("b", 60)),
            (T0, up("c", 60)),
            (T0, down("a", 60, T0)),
            (T0, down("b", 60, T0)),
            (T0, down("c", 60, T0)),
            (
                T0 + 30_000,
                Entry::Resume {
                    client: s("a"),
                    expiry: 90,
                },
            ),
            (
                T0 + 30_000,
                Entry::Resume {
                    client: s("c"),
                    expiry: 0,
                },
            ),
            (
                T0 + 30_000,
                Entry::Resume {
                    client: s("nobody"),
                    expiry: 9,
                },
            ),
        ],
    );
    let r = replay_at(&log, Instant::now(), T0 + 100_000);
    assert_eq!(clients(&r), ["a"]);
    assert_eq!(session(&r, "a").expiry, 90);
    assert_eq!(session(&r, "a").expires_in, Some(Duration::from_secs(90)));
}

#[test]
fn a_share_group_member_is_the_one_the_live_broker_picked() {
    // Replay does not pick again (its router would choose differently, and
    // one member would get a message another already had): the pick
    // follows each message as a Pending entry: the chosen member completes
    // the delivery [MQTT-4.8.2-4], no other member gets it [MQTT-4.8.2-5].
    let log = new_log();
    let mut entries = vec![
        up("a", 100),
        up("b", 100),
        up("c", 100),
        sub("a", "$share/g/s/#", opts(Q1)),
        sub("b", "$share/g/s/#", opts(Q1)),
        sub("c", "s/#", opts(Q1)),
    ];
    for i in 1..=6 {
        let pick = pending(if i == 2 { "a" } else { "b" }, i);
        if i % 2 == 0 {
            // As the live broker writes it: before the message, in its
            // append, so that no torn append keeps the message alone.
            entries.push(pick);
            entries.push(msg(i, &format!("s/{i}"), Q1));
        } else {
            // As compaction writes it.
            entries.push(msg(i, &format!("s/{i}"), Q1));
            entries.push(pick);
        }
    }
    // A pick whose message a torn append lost: nothing.
    entries.push(pending("a", 7));
    write(&log, &at(entries));
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(ids(session(&r, "a")), [2]);
    assert_eq!(ids(session(&r, "b")), [1, 3, 4, 5, 6]);
    assert_eq!(ids(session(&r, "c")), [1, 2, 3, 4, 5, 6], "not shared");
}

#[test]
fn message_expiry_keeps_counting_across_a_restart() {
    let log = new_log();
    write(
        &log,
        &[
            (T0, up("a", 1000)),
            (T0, sub("a", "#", opts(Q1))),
            (T0, expiring(1, "t", 100)),
            (T0, expiring(2, "t", 20)),
            (T0 + 25_000, msg(3, "t", Q1)),
        ],
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0 + 30_000);
    let a = session(&r, "a");
    assert_eq!(ids(a), [1, 3]);
    assert_eq!(a.pending[0].message.received, now - Duration::from_secs(30));
    assert_eq!(a.pending[0].message.remaining_expiry(now), Some(70));
    let later = now + Duration::from_secs(69);
    assert_eq!(a.pending[0].message.remaining_expiry(later), Some(1));
    assert!(
        a.pending[0]
            .message
            .is_expired(now + Duration::from_secs(70))
    );
    assert_eq!(a.pending[1].message.remaining_expiry(now), None);
    assert_eq!(a.pending[1].message.received, now - Duration::from_secs(5));
}

#[test]
fn an_unreachable_receive_time_shortens_the_expiry_instead() {
    let mut p = PublishProps::new();
    p.message_expiry_interval = Some(100);
    rebase_expiry(30_500, &mut p);
    assert_eq!(p.message_expiry_interval, Some(70));
    rebase_expiry(70_000, &mut p);
    assert_eq!(p.message_expiry_interval, Some(0));
    let mut none = PublishProps::new();
    rebase_expiry(5_000, &mut none);
    assert!(none.is_empty());
}

#[test]
fn in_flight_flows_and_inbound_ids_are_replayed() {
    // What a restart resends: PUBLISH under its packet id until PUBREC,
    // then PUBREL until PUBCOMP [MQTT-4.4.0-1]; inbound QoS 2 ids stay
    // duplicates until their PUBREL [MQTT-4.3.3-10].
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("x", 600),
            sub("x", "t/#", opts(Q2)),
            retained(1, "r", "kept", Q1),
            msg(2, "t/a", Q2),
            msg(3, "t/b", Q1),
            msg(4, "t/c", Q2),
            msg(5, "t/d", Q2),
            // 1 is retained, sent to a new subscription: queued on
            // subscribing (in the Subscribe's append), never routed to x.
            // 9 is unknown: ignored.
            on_subscribe_copy(1, Q1).pending(&s("x")),
            sub("x", "r", opts(Q1)),
            sent("x", &[(2, 10, Q2), (3, 11, Q1), (4, 12, Q2)]),
            retained_send("x", 1, 13, &[], true),
            sent("x", &[(9, 14, Q1)]),
            released("x", &[(2, 10), (3, 11)]),
            completed("x", &[(3, 11)]),
            inbound("x", &[5, 6, 7]),
            Entry::InboundDone {
                client: s("x"),
                packet_ids: vec![6],
            },
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    let x = session(&r, "x");
    // 3 is QoS 1: Released does not apply to it, and it is done.
    assert_eq!(
        flows(x),
        [(10, 2, true), (12, 4, false), (13, 1, false)],
        "{x:#?}"
    );
    assert_eq!(ids(x), [5], "the unsent message is still pending");
    assert_eq!(x.inbound, [5, 7]);
    assert_eq!(x.inflight[1].qos, Q2);

    // Done with 2 (PUBCOMP); the client reused packet id 12 for new flows
    // after 4's completed; a new session forgets everything.
    write(
        &log,
        &at(vec![
            completed("x", &[(2, 10)]),
            completed("x", &[(4, 12)]),
            sent("x", &[(5, 12, Q2)]),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(flows(session(&r, "x")), [(13, 1, false), (12, 5, false)]);
    // A retained message sent to a new subscription, replaced (and
    // cleared, and replaced again) while the copy waited in the session's
    // queue, before its Sent entry was appended: still found.
    write(
        &log,
        &at(vec![
            retained(20, "r", "v1", Q2),
            on_subscribe_copy(20, Q2).pending(&s("x")),
            sub("x", "r", opts(Q2)),
            retained(21, "r", "v2", Q2),
            retained(22, "r", "", Q0),
            retained(23, "r", "v3", Q2),
            Entry::Sent {
                client: s("x"),
                sends: vec![Sent {
                    id: 20,
                    packet_id: 30,
                    qos: Q2,
                    retain: true,
                    subscription_ids: vec![],
                    on_subscribe: true,
                }],
            },
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(
        flows(session(&r, "x")),
        [(13, 1, false), (12, 5, false), (30, 20, false)]
    );
    write(&log, &at(vec![up("x", 600)]));
    let r = replay_at(&log, Instant::now(), T0);
    let x = session(&r, "x");
    assert!(x.inflight.is_empty() && x.inbound.is_empty() && x.pending.is_empty());
}

#[test]
fn replay_applies_no_local_and_keeps_the_inbound_id_of_a_stored_message() {
    // [MQTT-3.8.3-3]: a No Local subscription does not get its own
    // session's messages, after a restart as live. The QoS 2 id of the
    // PUBLISH that brought a stored message is held until InboundDone
    // [MQTT-4.3.3-10].
    let log = new_log();
    let no_local = SubOptions {
        no_local: true,
        ..opts(Q1)
    };
    let published = |id: u64, client: &str, packet_id: u16| Entry::Published {
        message: message(id, "chat/room", "hi", Q2, false),
        client: s(client),
        packet_id,
    };
    write(
        &log,
        &at(vec![
            up("me", 600),
            up("you", 600),
            sub("me", "chat/#", no_local),
            sub("you", "chat/#", opts(Q1)),
            published(1, "me", 5),
            published(2, "you", 0),
            // From a session that is not persistent: no session to hold
            // an id, and No Local has nobody to spare.
            published(3, "passer-by", 9),
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0);
    assert_eq!(ids(session(&r, "me")), [2, 3], "not its own message");
    assert_eq!(ids(session(&r, "you")), [1, 2, 3], "no No Local there");
    assert_eq!(session(&r, "me").inbound, [5]);
    assert!(session(&r, "you").inbound.is_empty());
    assert_compaction_keeps(&r, now, T0);
}

#[test]
fn a_delayed_will_waits_across_a_restart_until_resumed_or_published() {
    // [MQTT-3.1.3-9]: due at its time unless the session resumes first.
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("late", 600),
            down("late", 600, T0),
            will("late", T0 + 5_000),
            up("past", 600),
            down("past", 600, T0),
            will("past", T0 - 1),
            up("back", 600),
            down("back", 600, T0),
            will("back", T0 + 5_000),
            Entry::Resume {
                client: s("back"),
                expiry: 600,
            },
            up("sent", 600),
            down("sent", 600, T0),
            will("sent", T0 + 5_000),
            Entry::WillGone { client: s("sent") },
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0 + 2_000);
    let due = |c: &str| {
        session(&r, c)
            .will
            .as_ref()
            .map(|(d, m)| (*d, m.topic.to_string()))
    };
    assert_eq!(
        due("late"),
        Some((Duration::from_secs(3), "wills/late".to_string()))
    );
    assert_eq!(
        due("past"),
        Some((Duration::ZERO, "wills/past".to_string()))
    );
    assert_eq!(due("back"), None, "resumed");
    assert_eq!(due("sent"), None, "published");
    assert_compaction_keeps(&r, now, T0 + 2_000);
}

#[test]
fn a_session_that_expired_while_the_broker_was_down_still_has_its_will() {
    // [MQTT-3.1.2-8]: the will goes out when the session ends. The broker
    // was down for an hour; the session (expiry 60 s) comes back expired,
    // with its will due, and the sweeper ends it and publishes the will.
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("gone", 60),
            down("gone", 60, T0),
            will("gone", T0 + 30_000),
            up("plain", 60),
            down("plain", 60, T0),
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0 + 3_600_000);
    assert_eq!(clients(&r), ["gone"], "the one without a will is gone");
    let gone = session(&r, "gone");
    assert_eq!(gone.expires_in, Some(Duration::ZERO));
    assert_eq!(gone.will.as_ref().map(|(d, _)| *d), Some(Duration::ZERO));
    assert_compaction_keeps(&r, now, T0 + 3_600_000);
}

#[test]
fn replay_reads_the_log_in_chunks() {
    let log = busy_log();
    let now = Instant::now();
    let whole = replay_at(&log, now, T0 + 30_000);
    for limits in [
        ReadLimits::records(1),
        ReadLimits {
            max_records: 3,
            max_bytes: 10,
        },
    ] {
        let r =
            replay_in_chunks(&log, ShareStrategy::RoundRobin, now, T0 + 30_000, limits).unwrap();
        assert_eq!(r, whole);
    }
    let empty = replay_at(&new_log(), now, T0);
    assert_eq!(
        (empty.sessions.len(), empty.next_id, empty.records),
        (0, 1, 0)
    );
}

#[test]
fn two_copies_of_one_message_in_one_session_are_replayed_apart() {
    // A shared and a non-shared subscription of one session both match:
    // the session gets a copy from each (section 4.8.2), and a restart
    // keeps both, each in its own phase, named by its packet id: the
    // shared copy's delivery completes after a reconnect [MQTT-4.8.2-4].
    let with_id = |qos, id| SubOptions {
        qos,
        subscription_id: Some(id),
        ..SubOptions::default()
    };
    let pick = Entry::Pending {
        client: s("x"),
        id: 1,
        qos: Q2,
        retain: false,
        subscription_ids: vec![1],
        on_subscribe: false,
    };
    let send = |packet_id, subscription_id| Sent {
        id: 1,
        packet_id,
        qos: Q2,
        retain: false,
        subscription_ids: vec![subscription_id],
        on_subscribe: false,
    };
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("x", 600),
            sub("x", "$share/g/t", with_id(Q2, 1)),
            sub("x", "t", with_id(Q2, 2)),
            pick,
            msg(1, "t", Q2),
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(ids(x), [1, 1], "both copies wait: {x:#?}");
    let mut terms: Vec<Vec<u32>> = x
        .pending
        .iter()
        .map(|d| d.subscription_ids.clone())
        .collect();
    terms.sort();
    assert_eq!(terms, [[1], [2]]);
    assert_compaction_keeps(&r, now, T0);

    // The non-shared copy goes out first, under 6: the shared one stays.
    write(
        &log,
        &at(vec![Entry::Sent {
            client: s("x"),
            sends: vec![send(6, 2)],
        }]),
    );
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(6, 1, false)]);
    assert_eq!(x.inflight[0].delivery.subscription_ids, [2]);
    assert_eq!(x.pending.len(), 1);
    assert_eq!(x.pending[0].subscription_ids, [1]);
    assert_compaction_keeps(&r, now, T0);

    // Then the shared one under 5; PUBREC for 6 only.
    write(
        &log,
        &at(vec![
            Entry::Sent {
                client: s("x"),
                sends: vec![send(5, 1)],
            },
            released("x", &[(1, 6)]),
        ]),
    );
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(6, 1, true), (5, 1, false)], "{x:#?}");
    assert!(x.pending.is_empty());
    assert_compaction_keeps(&r, now, T0);

    // PUBCOMP for 6: the flow under 5 is still owed its PUBREC.
    write(&log, &at(vec![completed("x", &[(1, 6)])]));
    let r = replay_at(&log, now, T0);
    assert_eq!(flows(session(&r, "x")), [(5, 1, false)]);
    assert_compaction_keeps(&r, now, T0);

    // A second message: one copy in flight, the other dropped unsent,
    // named by its terms. A drop on terms no pending copy has takes none.
    let pick = Entry::Pending {
        client: s("x"),
        id: 2,
        qos: Q2,
        retain: false,
        subscription_ids: vec![1],
        on_subscribe: false,
    };
    write(
        &log,
        &at(vec![
            pick,
            msg(2, "t", Q2),
            Entry::Sent {
                client: s("x"),
                sends: vec![Sent {
                    id: 2,
                    ..send(7, 2)
                }],
            },
            dropped("x", 2, Q2, true, &[1]),
        ]),
    );
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(5, 1, false), (7, 2, false)]);
    assert_eq!(ids(x), [2], "the drop was of another copy");
    write(&log, &at(vec![dropped("x", 2, Q2, false, &[1])]));
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(5, 1, false), (7, 2, false)]);
    assert!(x.pending.is_empty(), "{x:#?}");
}

#[test]
fn flows_by_message_id_alone_and_client_id_marks_are_refused() {
    // Released by message id alone ('L'), and an id mark ('A') naming a
    // client as if it said the client was done with the message: no
    // journal has them, so replay stops at them, naming the record.
    let records = |kind: &'static [u8], client: &str| {
        let log = new_log();
        write(
            &log,
            &at(vec![
                up("x", 600),
                sub("x", "t", opts(Q2)),
                msg(1, "t", Q2),
                sent("x", &[(1, 10, Q2)]),
            ]),
        );
        let mut b = bytes::BytesMut::new();
        super::super::put_ids(&mut b, &s(client), &[1, 50]);
        log.append(vec![NewRecord {
            timestamp: T0,
            properties: Bytes::from_static(kind),
            payload: b.freeze(),
            ..NewRecord::default()
        }])
        .unwrap();
        replay(&log, ShareStrategy::RoundRobin, Instant::now(), T0)
    };
    let e = records(b"L", "x").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("journal record at offset 4 is malformed: unknown entry kind 0x4c;"),
        "{e}"
    );
    let e = records(b"A", "x").unwrap_err();
    assert!(
        e.to_string().starts_with(
            "journal record at offset 4 is malformed: an IdMark entry names client \"x\""
        ),
        "{e}"
    );
    // The mark itself, under the empty client id, only counts its ids.
    let r = records(b"A", "").unwrap();
    assert_eq!(flows(session(&r, "x")), [(10, 1, false)]);
    assert_eq!(r.next_id, 51);
}

#[test]
fn a_retained_message_sent_on_subscribing_takes_no_routed_copy() {
    // A routed copy of a retained message and the retained message sent
    // again on subscribing [MQTT-3.3.1-8] can have the same terms (Retain
    // As Published, the same subscription identifier): the send's flag
    // tells them apart, and a restart keeps the routed copy.
    let log_with = |flag, queued: bool| {
        let log = new_log();
        let mut entries = vec![
            up("x", 600),
            sub("x", "r/#", rap(1)),
            retained(1, "r/a", "v", Q1),
        ];
        if queued {
            // x subscribes again: message 1 queued on subscribing.
            let copy = Unsent {
                subscription_ids: vec![1],
                ..on_subscribe_copy(1, Q1)
            };
            entries.extend([copy.pending(&s("x")), sub("x", "r/#", rap(1))]);
        }
        entries.push(retained_send("x", 1, 5, &[1], flag));
        write(&log, &at(entries));
        log
    };
    let now = Instant::now();
    let r = replay_at(&log_with(true, true), now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(5, 1, false)]);
    assert_eq!(ids(x), [1], "the routed copy still waits");
    assert!(x.inflight[0].delivery.on_subscribe);
    assert_compaction_keeps(&r, now, T0);
    // Without the flag, the send is of the routed copy on its terms.
    let r = replay_at(&log_with(false, false), now, T0);
    assert_eq!(flows(session(&r, "x")), [(5, 1, false)]);
    assert!(session(&r, "x").pending.is_empty());
    // A flagged send with no copy queued on subscribing takes nothing,
    // like any send without its copy: the routed copy still waits.
    let r = replay_at(&log_with(true, false), now, T0);
    assert!(session(&r, "x").inflight.is_empty());
    assert_eq!(ids(session(&r, "x")), [1]);
}

#[test]
fn a_retained_message_queued_on_subscribing_is_kept_apart_and_survives() {
    // A retained message sent to a new subscription [MQTT-3.3.1-9] that
    // still waits in the session's queue is owed after a restart like a
    // routed copy, even when the topic's retained message was replaced and
    // cleared since; its send and its drop take only that copy, not a
    // routed copy on the same terms (Retain As Published, the same
    // subscription identifier).
    let queued = Unsent {
        id: 1,
        qos: Q1,
        retain: true,
        subscription_ids: vec![1],
        on_subscribe: true,
    };
    let now = Instant::now();
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("x", 600),
            sub("x", "r/#", rap(1)),
            // Routed to x: a pending copy of message 1.
            retained(1, "r/a", "v", Q1),
            // x subscribes again: message 1 queued on subscribing.
            queued.pending(&s("x")),
            // Replaced, then cleared: each routed (the clear at QoS 0 is
            // not kept for an offline session).
            retained(2, "r/a", "w", Q1),
            retained(3, "r/a", "", Q0),
        ]),
    );
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(ids(x), [1, 1, 2], "{x:#?}");
    let kinds: Vec<bool> = x.pending.iter().map(|d| d.on_subscribe).collect();
    assert_eq!(kinds, [false, true, false]);
    assert_eq!(&x.pending[1].message.payload[..], b"v");
    assert!(r.retained.is_empty(), "the topic was cleared");
    assert_compaction_keeps(&r, now, T0);
    let compacted = new_log();
    compact_at(&r, &compacted, now, T0).unwrap();
    assert!(replay_at(&compacted, now, T0).retained.is_empty());

    // Its send takes the copy queued on subscribing; the routed copy on
    // the same terms still waits.
    write(&log, &at(vec![retained_send("x", 1, 5, &[1], true)]));
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(5, 1, false)]);
    assert!(x.inflight[0].delivery.on_subscribe);
    assert_eq!(ids(x), [1, 2]);
    assert!(x.pending.iter().all(|d| !d.on_subscribe));
    assert_compaction_keeps(&r, now, T0);

    // A drop of a copy queued on subscribing takes only such a copy: none
    // is left, so the routed one stays; then the routed one's drop.
    let drop_copy = |on_subscribe| Entry::Dropped {
        client: s("x"),
        copies: vec![Unsent {
            on_subscribe,
            ..queued.clone()
        }],
    };
    write(&log, &at(vec![drop_copy(true)]));
    assert_eq!(ids(session(&replay_at(&log, now, T0), "x")), [1, 2]);
    write(&log, &at(vec![drop_copy(false)]));
    assert_eq!(ids(session(&replay_at(&log, now, T0), "x")), [2]);

    // Queued again and dropped before it went out.
    write(&log, &at(vec![queued.pending(&s("x")), drop_copy(true)]));
    assert_eq!(ids(session(&replay_at(&log, now, T0), "x")), [2]);

    // A copy queued on subscribing names a retained message: an id that
    // is not one states nothing.
    write(
        &log,
        &at(vec![
            Unsent {
                id: 2,
                ..queued.clone()
            }
            .pending(&s("x")),
            Unsent {
                id: 99,
                ..queued.clone()
            }
            .pending(&s("x")),
        ]),
    );
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(ids(x), [2, 2], "message 2 was retained once: {x:#?}");
    assert!(x.pending[1].on_subscribe);
    write(&log, &at(vec![msg(4, "q", Q1)]));
    write(
        &log,
        &at(vec![
            Unsent {
                id: 4,
                ..queued.clone()
            }
            .pending(&s("x")),
        ]),
    );
    assert_eq!(ids(session(&replay_at(&log, now, T0), "x")), [2, 2]);
}

#[test]
fn compaction_keeps_which_of_two_equal_looking_copies_is_in_flight() {
    // Two subscriptions at QoS 1 and QoS 2 both get a QoS 1 retained
    // message on subscribing: equal terms once sent (QoS 1), different
    // while queued. The QoS 1 copy went out; after compaction the QoS 2
    // copy must still be the one waiting (its drop names QoS 2).
    let copy = |qos| Unsent {
        id: 1,
        qos,
        retain: true,
        subscription_ids: vec![],
        on_subscribe: true,
    };
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("x", 600),
            retained(1, "r/a", "v", Q1),
            copy(Q1).pending(&s("x")),
            copy(Q2).pending(&s("x")),
            retained_send("x", 1, 5, &[], true),
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0);
    let x = session(&r, "x");
    assert_eq!(flows(x), [(5, 1, false)]);
    assert_eq!(x.pending.len(), 1);
    assert_eq!(x.pending[0].qos, Q2);
    assert_compaction_keeps(&r, now, T0);
}
