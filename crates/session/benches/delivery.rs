//! One session's work per delivered message, without I/O: a batch of 100
//! deliveries of one shared 64-byte message is handled and encoded, and at
//! QoS 1 the client's 100 PUBACKs are decoded and handled. This is what
//! every subscriber's connection task does per message in the fan-out
//! benchmark, less the syscalls.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_codec::{Connect, MAX_PACKET_SIZE, MqttStr, Packet, Protocol, QoS, decode};
use strata_session::{Config, Delivery, Event, Message, Session, SessionState};

const BATCH: u64 = 100;

fn connected(p: Protocol, now: Instant) -> Session {
    // Room in flight for a whole batch.
    let config = Config {
        max_inflight: 128,
        ..Config::default()
    };
    let mut s = Session::new(Arc::new(config), now);
    let connect = Packet::Connect(Box::new(Connect::new(p, MqttStr::from_static("b"))));
    s.handle_packet(now, connect);
    let Some(Event::Connect(c)) = s.poll_event() else {
        panic!("no Connect event")
    };
    s.accept(now, SessionState::new(c.client_id.clone(), 0), false, None);
    s.poll_transmit(now, &mut BytesMut::new());
    s
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let message = Arc::new(Message {
        topic: MqttStr::from_static("bench/fan-out/topic"),
        payload: Bytes::from(vec![7u8; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        received: now,
        id: 0,
    });
    let mut g = c.benchmark_group("session delivery");
    g.throughput(Throughput::Elements(BATCH));
    for p in [Protocol::V3_1_1, Protocol::V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let mut s = connected(p, now);
            // The ids the session hands out: 1, 2, ... skipping 0.
            let mut next_id: u16 = 0;
            let mut out = BytesMut::new();
            let mut acks = BytesMut::new();
            g.bench_function(format!("{p:?} qos{}", qos as u8), |b| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        s.handle_delivery(
                            now,
                            Delivery {
                                message: message.clone(),
                                qos,
                                retain: false,
                                subscription_ids: Vec::new(),
                                on_subscribe: false,
                            },
                        );
                    }
                    out.clear();
                    s.poll_transmit(now, &mut out);
                    black_box(out.len());
                    if qos == QoS::AtLeastOnce {
                        for _ in 0..BATCH {
                            next_id = next_id.checked_add(1).unwrap_or(1);
                            acks.extend_from_slice(&[0x40, 0x02]);
                            acks.extend_from_slice(&next_id.to_be_bytes());
                        }
                        while let Some(packet) = decode(&mut acks, p, MAX_PACKET_SIZE).unwrap() {
                            s.handle_packet(now, packet);
                        }
                        while s.poll_event().is_some() {}
                    }
                    // Every delivery went out; none waits for the window.
                    assert_eq!(s.queued_len(), 0);
                })
            });
            assert!(s.is_connected(), "the session stayed connected");
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
