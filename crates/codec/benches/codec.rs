//! Our codec against rumqttc's on the same packets. Each criterion group is
//! one row, `strata` and `rumqttc` side by side in the same run:
//!
//! - `decode/*`: both start every iteration from a fresh `BytesMut` copy of
//!   the same bytes (our encoding; `main` first checks that rumqttc reads it
//!   as its own packet and that we read rumqttc's encoding as ours).
//! - `encode/*`: both append to one reused `BytesMut`, cleared per iteration.
//!   For rumqttc the packet's own `write` is timed (as the codec of its event
//!   loop calls it), not `Packet::write`, which adds a size check.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rumqttc::mqttbytes::{self as m4, v4 as r4};
use rumqttc::v5::mqttbytes::{self as m5, v5 as r5};
use strata_codec::*;

const TOPIC: &str = "sensors/building-7/floor-3/temperature";
const PAYLOAD: &[u8; 64] = br#"{"sensor":"t-0042","celsius":21.375,"ts":1718000000,"ok":true}  "#;
const PACKET_ID: u16 = 42;

fn mstr(s: &str) -> MqttStr {
    MqttStr::try_from(s).unwrap()
}

fn encode(p: Protocol, packet: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    packet.encode(p, &mut out).unwrap();
    out
}

fn ours_decode(p: Protocol, bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, p, MAX_PACKET_SIZE).unwrap().unwrap();
    assert!(buf.is_empty());
    packet
}

fn v4_read(bytes: &[u8]) -> r4::Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = r4::Packet::read(&mut buf, usize::MAX).unwrap();
    assert!(buf.is_empty());
    packet
}

fn v5_read(bytes: &[u8]) -> r5::Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = r5::Packet::read(&mut buf, None).unwrap();
    assert!(buf.is_empty());
    packet
}

// ---------------------------------------------------------------------------
// The packets, each built once per library
// ---------------------------------------------------------------------------

fn publish_ours() -> Packet {
    let mut p = Publish::new(mstr(TOPIC), QoS::AtLeastOnce, Bytes::from_static(PAYLOAD));
    p.packet_id = PACKET_ID;
    Packet::Publish(p)
}

fn publish_v4() -> r4::Publish {
    let mut p = r4::Publish::from_bytes(TOPIC, m4::QoS::AtLeastOnce, Bytes::from_static(PAYLOAD));
    p.pkid = PACKET_ID;
    p
}

fn publish_v5() -> r5::Publish {
    let payload = Bytes::from_static(PAYLOAD);
    let mut p = r5::Publish::new(TOPIC, m5::QoS::AtLeastOnce, payload, None);
    p.pkid = PACKET_ID;
    p
}

/// Ten filters of the shapes a fleet client subscribes to.
fn filters() -> Vec<(String, u8)> {
    let mut f: Vec<(String, u8)> = (0..7)
        .map(|i| (format!("sensors/building-{i}/+/temperature"), (i % 3) as u8))
        .collect();
    f.push(("alerts/#".to_owned(), 1));
    f.push(("$share/workers/jobs/+/pending".to_owned(), 2));
    f.push(("config/strata-bench-client-0001".to_owned(), 1));
    f
}

fn subscribe_ours() -> Packet {
    let filters = filters()
        .into_iter()
        .map(|(f, q)| Subscription {
            filter: MqttStr::try_from(f).unwrap(),
            options: SubscribeOptions {
                qos: QoS::from_u8(q).unwrap(),
                ..SubscribeOptions::default()
            },
        })
        .collect();
    Packet::Subscribe(Subscribe {
        packet_id: PACKET_ID,
        properties: SubscribeProperties::default(),
        filters,
    })
}

fn subscribe_v4() -> r4::Subscribe {
    let filters = filters()
        .into_iter()
        .map(|(f, q)| r4::SubscribeFilter::new(f, m4::qos(q).unwrap()));
    let mut s = r4::Subscribe::new_many(filters);
    s.pkid = PACKET_ID;
    s
}

const CLIENT_ID: &str = "strata-bench-client-0001";
const WILL_TOPIC: &str = "clients/strata-bench-client-0001/status";
const USER_PROPS: [(&str, &str); 2] = [("region", "eu-west-1"), ("app", "bench")];

fn connect_ours() -> Packet {
    let mut c = Connect::new(Protocol::V5, mstr(CLIENT_ID));
    c.keep_alive = 30;
    c.properties = ConnectProperties {
        session_expiry_interval: Some(3600),
        receive_maximum: Some(100),
        maximum_packet_size: Some(1 << 20),
        topic_alias_maximum: Some(16),
        user_properties: USER_PROPS.map(|(k, v)| (mstr(k), mstr(v))).to_vec(),
        ..ConnectProperties::default()
    };
    c.will = Some(LastWill {
        topic: mstr(WILL_TOPIC),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: Some(5),
            message_expiry_interval: Some(60),
            content_type: Some(mstr("text/plain")),
            user_properties: vec![(mstr("reason"), mstr("unexpected"))],
            ..WillProperties::default()
        },
    });
    c.username = Some(mstr("bench-user"));
    c.password = Some(Bytes::from_static(b"bench-password"));
    Packet::Connect(Box::new(c))
}

fn connect_v5() -> (r5::Connect, Option<r5::LastWill>, Option<r5::Login>) {
    let user_properties = USER_PROPS
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
    let mut properties = r5::ConnectProperties::new();
    properties.session_expiry_interval = Some(3600);
    properties.receive_maximum = Some(100);
    properties.max_packet_size = Some(1 << 20);
    properties.topic_alias_max = Some(16);
    properties.user_properties = user_properties;
    let connect = r5::Connect {
        keep_alive: 30,
        client_id: CLIENT_ID.to_owned(),
        clean_start: true,
        properties: Some(properties),
    };
    let will_properties = r5::LastWillProperties {
        delay_interval: Some(5),
        payload_format_indicator: None,
        message_expiry_interval: Some(60),
        content_type: Some("text/plain".to_owned()),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![("reason".to_owned(), "unexpected".to_owned())],
    };
    let will = r5::LastWill::new(
        WILL_TOPIC,
        &b"offline"[..],
        m5::QoS::AtLeastOnce,
        true,
        Some(will_properties),
    );
    let login = r5::Login::new("bench-user", "bench-password");
    (connect, Some(will), Some(login))
}

/// Before timing anything: each library reads the other's bytes as the
/// packet it built, so both sides of every row do the same work.
fn check_packets_agree() {
    let ours = publish_ours();
    let mut theirs = BytesMut::new();
    publish_v4().write(&mut theirs).unwrap();
    assert_eq!(
        encode(Protocol::V3_1_1, &ours),
        theirs,
        "3.1.1 PUBLISH bytes"
    );
    assert_eq!(v4_read(&theirs), r4::Packet::Publish(publish_v4()));
    assert_eq!(ours_decode(Protocol::V3_1_1, &theirs), ours);

    let mut theirs = BytesMut::new();
    publish_v5().write(&mut theirs).unwrap();
    let ours_bytes = encode(Protocol::V5, &ours);
    assert_eq!(v5_read(&ours_bytes), r5::Packet::Publish(publish_v5()));
    assert_eq!(ours_decode(Protocol::V5, &theirs), ours);

    let ours = subscribe_ours();
    let mut theirs = BytesMut::new();
    subscribe_v4().write(&mut theirs).unwrap();
    assert_eq!(
        encode(Protocol::V3_1_1, &ours),
        theirs,
        "3.1.1 SUBSCRIBE bytes"
    );
    assert_eq!(v4_read(&theirs), r4::Packet::Subscribe(subscribe_v4()));
    assert_eq!(ours_decode(Protocol::V3_1_1, &theirs), ours);

    // The property orders differ, so the bytes do, but not the packets.
    let ours = connect_ours();
    let (connect, will, login) = connect_v5();
    let mut theirs = BytesMut::new();
    connect.write(&will, &login, &mut theirs).unwrap();
    let ours_bytes = encode(Protocol::V5, &ours);
    assert_eq!(ours_bytes.len(), theirs.len());
    assert_eq!(
        v5_read(&ours_bytes),
        r5::Packet::Connect(connect, will, login)
    );
    assert_eq!(ours_decode(Protocol::V5, &theirs), ours);
}

// ---------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------

/// Both decoders on `bytes`, each iteration from a fresh `BytesMut` copy.
fn decode_row<T>(
    c: &mut Criterion,
    row: &str,
    p: Protocol,
    bytes: &[u8],
    theirs: impl Fn(&mut BytesMut) -> T,
) {
    let mut g = c.benchmark_group(format!("decode/{row}"));
    g.bench_function("strata", |b| {
        b.iter_batched(
            || BytesMut::from(bytes),
            |mut buf| black_box(decode(&mut buf, p, MAX_PACKET_SIZE).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("rumqttc", |b| {
        b.iter_batched(
            || BytesMut::from(bytes),
            |mut buf| black_box(theirs(&mut buf)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Both encoders into one reused `BytesMut`, cleared per iteration.
fn encode_row(
    c: &mut Criterion,
    row: &str,
    mut ours: impl FnMut(&mut BytesMut) -> usize,
    mut theirs: impl FnMut(&mut BytesMut) -> usize,
) {
    let mut g = c.benchmark_group(format!("encode/{row}"));
    let mut buf = BytesMut::with_capacity(4096);
    g.bench_function("strata", |b| {
        b.iter(|| {
            buf.clear();
            black_box(ours(&mut buf));
            black_box(&buf);
        })
    });
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            buf.clear();
            black_box(theirs(&mut buf));
            black_box(&buf);
        })
    });
    g.finish();
}

fn publish_rows(c: &mut Criterion) {
    let ours = publish_ours();
    for p in [Protocol::V3_1_1, Protocol::V5] {
        let row = format!("publish_qos1_64b_{}", if p.is_v5() { "v5" } else { "v311" });
        let bytes = encode(p, &ours);
        if p.is_v5() {
            let theirs = publish_v5();
            decode_row(c, &row, p, &bytes, |b| r5::Packet::read(b, None).unwrap());
            encode_row(
                c,
                &row,
                |buf| black_box(&ours).encode(p, buf).unwrap(),
                |buf| black_box(&theirs).write(buf).unwrap(),
            );
        } else {
            let theirs = publish_v4();
            decode_row(c, &row, p, &bytes, |b| {
                r4::Packet::read(b, usize::MAX).unwrap()
            });
            encode_row(
                c,
                &row,
                |buf| black_box(&ours).encode(p, buf).unwrap(),
                |buf| black_box(&theirs).write(buf).unwrap(),
            );
        }
    }
}

fn subscribe_rows(c: &mut Criterion) {
    let p = Protocol::V3_1_1;
    let row = "subscribe_10_filters_v311";
    let ours = subscribe_ours();
    let theirs = subscribe_v4();
    let bytes = encode(p, &ours);
    decode_row(c, row, p, &bytes, |b| {
        r4::Packet::read(b, usize::MAX).unwrap()
    });
    encode_row(
        c,
        row,
        |buf| black_box(&ours).encode(p, buf).unwrap(),
        |buf| black_box(&theirs).write(buf).unwrap(),
    );
}

fn connect_rows(c: &mut Criterion) {
    let p = Protocol::V5;
    let row = "connect_props_will_login_v5";
    let ours = connect_ours();
    let (connect, will, login) = connect_v5();
    let bytes = encode(p, &ours);
    decode_row(c, row, p, &bytes, |b| r5::Packet::read(b, None).unwrap());
    encode_row(
        c,
        row,
        |buf| black_box(&ours).encode(p, buf).unwrap(),
        |buf| {
            let (c, w, l) = black_box((&connect, &will, &login));
            c.write(w, l, buf).unwrap()
        },
    );
}

fn benches(c: &mut Criterion) {
    check_packets_agree();
    publish_rows(c);
    subscribe_rows(c);
    connect_rows(c);
}

criterion_group!(codec, benches);
criterion_main!(codec);
