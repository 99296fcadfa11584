//! `strata-journal`: everything the broker must remember across a restart, as a
//! sequence of facts ([`Entry`]) in a strata-store [`Log`](strata_store::Log),
//! and the replay that rebuilds persistent sessions, their subscriptions and
//! offline queues, and the retained messages from it.
//!
//! The live broker appends an entry per change and never rewrites one.
//! Replay ([`replay`]) routes every stored message through a real
//! [`Router`](strata_router::Router), so overlapping subscriptions,
//! subscription identifiers, QoS, Retain As Published and No Local give the
//! deliveries `Shared::publish` gave. A share group's pick is not made again:
//! the live broker states it as a [`Entry::Pending`] in the message's own
//! append, just before the message (a torn append keeps a prefix, so the
//! message never survives without it). At start-up the rebuilt state is written to a
//! fresh log ([`compact_into`]), which states each pending delivery
//! ([`Entry::Pending`]) instead of routing again, because the subscriptions
//! that chose it may have changed since.
//!
//! Here: the entries and how they are written ([`encode`]). `decode`
//! (private): reading them back ([`decode`]). `replay` (private):
//! [`replay`] and [`compact_into`]. `tests` (private): all of it, on a real
//! log over `SimStorage`.
//!
//! # Format, version 1
//!
//! A journal is a strata-store log directory with a file `FORMAT` beside
//! its segments: the text `strata-journal 1` and a newline. A build reads
//! the versions in [`READS`] and refuses any other, or a journal without
//! the file ([`check_format`]).
//!
//! All integers are little-endian. A string is a `u32` byte length and that
//! many bytes of UTF-8 without U+0000; binary data is the same without the
//! UTF-8 rule. The record timestamp is when the entry was written, in
//! milliseconds since the Unix epoch; for a message, when it was received.
//!
//! The first byte of a record's properties is the entry kind.
//!
//! A message (`M`) keeps the log readable as messages by topic: the record
//! topic is the message topic, the record payload its payload, and the
//! properties are
//!
//! ```text
//! 'M' | flags u8 (bits 0-1 QoS, bit 2 RETAIN, bit 3 PUBLISHER) | id u64 | length u32
//!     | properties | [publisher string | packet id u16]
//! ```
//!
//! where `properties` (exactly `length` bytes) is a sequence of MQTT 5
//! PUBLISH properties, each a tag byte (the MQTT property identifier)
//! followed by its value: `0x01` payload format indicator (u8), `0x02`
//! message expiry interval (u32), `0x03` content type (string), `0x08`
//! response topic (string), `0x09` correlation data (binary), `0x26` user
//! property (two strings, repeated in order). Topic aliases and
//! subscription identifiers belong to one connection and are not stored.
//! With bit 3 (a [`Entry::Published`]), the publisher's client id and the
//! packet id of its QoS 2 PUBLISH (0: none) follow the properties.
//!
//! A delayed will (`W`, [`Entry::Will`]) is laid out as a message with bit
//! 3 set, kind byte `W`, id 0 and packet id 0; its client is the session's,
//! and the record timestamp is when the will is due (ms since the epoch).
//!
//! Every other entry has an empty record topic, the kind byte alone as its
//! properties, and its fields in the payload, in this order:
//!
//! ```text
//! 'U' Up           expiry u32, client string
//! 'R' Resume       expiry u32, client string
//! 'D' Down         expiry u32, at_ms i64, client string
//! 'E' End          client string
//! 'S' Subscribe    client string, filter string, options u8, [subscription id u32]
//!                  options: bits 0-1 QoS, bit 2 No Local, bit 3 Retain As Published,
//!                  bits 4-5 Retain Handling, bit 6 a subscription id follows
//! 'X' Unsubscribe  client string, filter string
//! 'A' IdMark       client string (always empty), count u32, count ids u64
//! 'P' Pending      client string, id u64, flags u8 (bits 0-1 QoS, bit 2 RETAIN,
//!                  bit 3 a retained message queued on subscribing),
//!                  count u32, count subscription ids u32
//! 'T' Sent         client string, count u32, count times:
//!                  id u64, packet id u16, flags u8 (bits 0-1 QoS sent with, bit 2 RETAIN,
//!                  bit 3 a retained message sent on subscribing),
//!                  count u32, count subscription ids u32
//! 'K' Released     client string, count u32, count times: id u64, packet id u16
//! 'C' Completed    client string, count u32, count times: id u64, packet id u16
//! 'O' Dropped      client string, count u32, count times:
//!                  id u64, flags u8 (bits 0-1 QoS, bit 2 RETAIN,
//!                  bit 3 a retained message queued on subscribing),
//!                  count u32, count subscription ids u32
//! 'I' Inbound      client string, count u32, count packet ids u16
//! 'J' InboundDone  client string, count u32, count packet ids u16
//! 'G' WillGone     client string
//! ```
//!
//! A session can hold two copies of one message (a shared and a non-shared
//! subscription both match it, section 4.8.2), and each is owed its own
//! delivery [MQTT-4.8.2-4], so an entry about a flow in flight names it by
//! message id and packet id (`C`, `K`), and an entry about a copy dropped
//! before it went out names it by message id and its terms (`O`, the
//! fields of a `Pending`). A flow's packet id is never 0 [MQTT-2.2.1-3].
//! A `T` takes the pending copy of its message on its terms, or if none
//! is, another copy of it (bit 3 narrows this: see below); a `T` that
//! finds no copy changes nothing.
//!
//! `A` ([`Entry::IdMark`]) marks message ids as used, so that the next
//! id handed out is past them though no session holds them any more.
//! Compaction writes it; its client id is always empty (no session has
//! that id: a server assigns one [MQTT-3.1.3-6]), and any other is
//! refused.
//!
//! A retained message sent to a new subscription of a persistent session
//! [MQTT-3.3.1-9] is owed like a routed copy once the SUBACK is out, so
//! each QoS 1/2 copy is stated as a `P` with bit 3 set, in the append of
//! the subscription's `S` (just before it; the SUBACK waits for that
//! append): its message is the retained message with that id wherever it
//! is in the log (replay keeps every retained message by id), not the
//! latest message. Its `T` and `O` carry bit 3 too and take only such a
//! copy on their terms, never a routed one; a `T` or `O` without bit 3
//! never takes such a copy.
//!
//! Unknown bits, unknown kinds or properties, fields cut short and bytes
//! left over are all refused ([`JournalError::Malformed`], naming the
//! record's offset); decoding never panics.

mod decode;
mod replay;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use strata_codec::topic::{parse_filter, validate_topic_name};
use strata_codec::{MqttStr, PublishProperties, PublishProps, QoS, RetainHandling};
use strata_router::SubOptions;
use strata_session::{Delivery, Message, Outbound};
use strata_store::{NewRecord, Record};

pub use decode::decode;
pub use replay::{compact_into, replay, replay_prefix};

/// The delivery of `message` for one router match: live routing and
/// replay build it the same way.
pub fn delivery(message: &Arc<Message>, m: strata_router::Delivery<u64>) -> Delivery {
    Delivery {
        message: message.clone(),
        qos: m.qos,
        // [MQTT-3.3.1-12] [MQTT-3.3.1-13] (3.1.1: [MQTT-3.3.1-9])
        retain: m.retain_as_published && message.retain,
        subscription_ids: m.subscription_ids,
        on_subscribe: false,
    }
}

/// One durable fact. Everything the broker must remember goes into the log
/// as one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A stored message (retained, or QoS >= 1 bound for a persistent
    /// session). `message.id` != 0. `message.received` is not stored: the
    /// record timestamp (ms since the Unix epoch) is.
    Message(Message),
    /// A stored message from the persistent session `client`: replay
    /// applies No Local to that session's subscriptions, and a non-zero
    /// `packet_id` is the inbound QoS 2 id the message came under, held
    /// until an `InboundDone` (one record, so the message and its id are
    /// durable together: a restart never takes the client's resend for a
    /// new message, nor drops a message it never stored).
    Published {
        message: Message,
        client: MqttStr,
        packet_id: u16,
    },
    /// A persistent session starts fresh (new, or Clean Start discarded the
    /// old one): forget any earlier state of `client`. Expiry 0 ends it.
    Up {
        client: MqttStr,
        expiry: u32,
    },
    /// A persistent session was resumed by a new connection: it is connected
    /// again, keeps its state, and now has `expiry` (0: it is no longer
    /// persistent, so it ends here). Without this, a session that
    /// reconnected would count as offline since its last `Down`, and a
    /// crash could expire it while it was connected.
    Resume {
        client: MqttStr,
        expiry: u32,
    },
    /// The connection ended; the session waits offline, expiring `expiry`
    /// seconds after `at_ms` (u32::MAX: never).
    Down {
        client: MqttStr,
        expiry: u32,
        at_ms: i64,
    },
    /// The session ended (expired, or replaced by a non-persistent one).
    End {
        client: MqttStr,
    },
    Subscribe {
        client: MqttStr,
        filter: MqttStr,
        options: SubOptions,
    },
    Unsubscribe {
        client: MqttStr,
        filter: MqttStr,
    },
    /// Message ids in use: they count toward `Recovered::next_id` even
    /// when no session holds them any more. Written by [`compact_into`];
    /// stored under the empty client id, which no session has.
    IdMark {
        ids: Vec<u64>,
    },
    /// `client` dropped these copies of stored messages before they went
    /// out under a packet id (expired, over a queue limit, or too large for
    /// the client; one entry per batch of the connection's work).
    Dropped {
        client: MqttStr,
        copies: Vec<Unsent>,
    },
    /// These in-flight flows of `client` ended (acknowledged, or failed
    /// with an error reason code).
    Completed {
        client: MqttStr,
        flows: Vec<Flow>,
    },
    /// `client` sent these stored messages for the first time, in this
    /// order, each under a packet id (QoS 1 or 2): they are in flight until
    /// a [`Entry::Completed`]. A QoS 2 send is durable before its PUBLISH is written.
    Sent {
        client: MqttStr,
        sends: Vec<Sent>,
    },
    /// PUBREC came for these in-flight QoS 2 flows of `client`: PUBREL is
    /// what a restart resends. Durable before the PUBREL is written.
    Released {
        client: MqttStr,
        flows: Vec<Flow>,
    },
    /// Inbound QoS 2 packet ids of `client` whose message was taken
    /// (PUBREC goes out only once this is durable): a resent PUBLISH under
    /// one of them is a duplicate until its PUBREL.
    Inbound {
        client: MqttStr,
        packet_ids: Vec<u16>,
    },
    /// PUBREL came for these inbound packet ids of `client`: they are free
    /// again. Durable before the PUBCOMP is written.
    InboundDone {
        client: MqttStr,
        packet_ids: Vec<u16>,
    },
    /// The offline session `client` has a will due at `due_ms` (ms since
    /// the Unix epoch) unless it resumes first [MQTT-3.1.3-9]; the session
    /// ending publishes it at once [MQTT-3.1.2-8].
    Will {
        client: MqttStr,
        due_ms: i64,
        message: Message,
    },
    /// The pending will of `client` was published.
    WillGone {
        client: MqttStr,
    },
    /// `client` still has to get message `id`, on these terms (the fields
    /// of a [`Delivery`]): the latest message before this entry if it has
    /// that id, else the next message with that id (none: the entry is
    /// void). Written by [`compact_into`] after each message, and by the
    /// live broker before a message for the member a share group picked
    /// (replay routes everything else). With `on_subscribe`, a retained
    /// message queued for a new subscription ([`Delivery::on_subscribe`]),
    /// written by the live broker just before the subscription's
    /// `Subscribe`, in its append: the message is the retained message
    /// with that id, wherever it is in the log.
    Pending {
        client: MqttStr,
        id: u64,
        qos: QoS,
        retain: bool,
        subscription_ids: Vec<u32>,
        on_subscribe: bool,
    },
}

/// A stored message in flight to one session: its id and the packet id it
/// went out under (see [`Entry::Completed`] and [`Entry::Released`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub id: u64,
    pub packet_id: u16,
}

/// A copy of a stored message that a session holds or dropped before
/// sending it (see [`Entry::Dropped`], and a retained message queued on
/// subscribing, [`Entry::Pending`]): the message and the terms it is held
/// on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub id: u64,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// A retained message sent on subscribing
    /// ([`Delivery::on_subscribe`]).
    pub on_subscribe: bool,
}

impl Unsent {
    pub fn of(d: Delivery) -> Unsent {
        Unsent {
            id: d.message.id,
            qos: d.qos,
            retain: d.retain,
            subscription_ids: d.subscription_ids,
            on_subscribe: d.on_subscribe,
        }
    }

    /// Whether `d` is a copy of this message on these terms.
    pub fn is(&self, d: &Delivery) -> bool {
        d.message.id == self.id
            && d.qos == self.qos
            && d.retain == self.retain
            && d.subscription_ids == self.subscription_ids
            && d.on_subscribe == self.on_subscribe
    }

    /// The `Pending` entry that states this copy for `client`.
    pub fn pending(&self, client: &MqttStr) -> Entry {
        Entry::Pending {
            client: client.clone(),
            id: self.id,
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids.clone(),
            on_subscribe: self.on_subscribe,
        }
    }
}

/// One first send of a stored message (see [`Entry::Sent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub id: u64,
    pub packet_id: u16,
    /// The QoS it went out with (1 or 2).
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// A retained message sent on subscribing
    /// ([`Delivery::on_subscribe`]): only a copy stated as such is taken.
    pub on_subscribe: bool,
}

impl Sent {
    /// The send of `delivery` under `packet_id`.
    pub fn of(packet_id: u16, d: &Delivery) -> Sent {
        Sent {
            id: d.message.id,
            packet_id,
            qos: d.effective_qos(),
            retain: d.retain,
            subscription_ids: d.subscription_ids.clone(),
            on_subscribe: d.on_subscribe,
        }
    }
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The log itself failed (I/O, corruption, closed).
    #[error("journal: {0}")]
    Store(#[from] strata_store::Error),
    /// A record is not an entry this build understands.
    #[error(
        "journal record at offset {offset} is malformed: {what}; it was written by another \
         Strata version or is damaged: start the matching version, or move the data \
         directory aside to start without the stored sessions and retained messages"
    )]
    Malformed { offset: u64, what: String },
    /// The journal's `FORMAT` file names a version this build does not
    /// read, or is missing or unreadable.
    #[error(
        "the journal is {found}, and this build reads journal format version {reads}: start \
         the Strata version that wrote it, or move the data directory aside to start without \
         the stored sessions and retained messages",
        reads = READS.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Format { found: String },
}

/// The journal format this build writes.
pub const FORMAT_VERSION: u32 = 1;

/// The journal formats this build reads.
pub const READS: &[u32] = &[FORMAT_VERSION];

/// The file beside a journal's segments that names its format.
pub const FORMAT_FILE: &str = "FORMAT";

/// The contents of [`FORMAT_FILE`] for a journal this build writes.
pub fn format_file() -> Vec<u8> {
    format!("strata-journal {FORMAT_VERSION}\n").into_bytes()
}

/// Checks the contents of a journal's [`FORMAT_FILE`] (`None`: there is
/// none) and returns its version if this build reads it.
pub fn check_format(contents: Option<&[u8]>) -> Result<u32, JournalError> {
    let Some(contents) = contents else {
        return Err(JournalError::Format {
            found: format!("without a {FORMAT_FILE} file (so of no known format)"),
        });
    };
    let text = String::from_utf8_lossy(contents);
    let version = text
        .strip_prefix("strata-journal ")
        .and_then(|v| v.trim_end().parse::<u32>().ok());
    match version {
        Some(v) if READS.contains(&v) => Ok(v),
        Some(v) => Err(JournalError::Format {
            found: format!("format version {v}"),
        }),
        None => Err(JournalError::Format {
            found: format!(
                "of no known format ({FORMAT_FILE} says {:?})",
                text.trim_end()
            ),
        }),
    }
}

/// The state rebuilt by [`replay`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Sorted by client id.
    pub sessions: Vec<RecoveredSession>,
    /// The live retained messages (non-empty payload, not expired), sorted
    /// by topic.
    pub retained: Vec<Arc<Message>>,
    /// 1 + the highest message id seen (at least 1).
    pub next_id: u64,
    /// Records replayed.
    pub records: u64,
}

/// One persistent session, offline, as replay left it.
#[derive(Debug, PartialEq, Eq)]
pub struct RecoveredSession {
    /// Still connected where a prefix replay ended (only from
    /// `replay_prefix`; a restart counts every session as disconnected).
    pub connected: bool,
    pub client_id: MqttStr,
    pub expiry: u32,
    /// Time left before it expires, counted from now; None = never
    /// (u32::MAX).
    pub expires_in: Option<Duration>,
    /// In the order first subscribed.
    pub subscriptions: Vec<(MqttStr, SubOptions)>,
    /// Messages it still has to get, in message-id order, as the live
    /// router would have delivered them. Expired messages are left out.
    pub pending: Vec<Delivery>,
    /// Messages in flight, in the order first sent, with their packet ids
    /// and phases.
    pub inflight: Vec<Outbound>,
    /// Inbound QoS 2 packet ids awaiting PUBREL, ascending.
    pub inbound: Vec<u16>,
    /// A delayed will and the time left until it is due (zero: due now).
    pub will: Option<(Duration, Message)>,
}

mod kind {
    pub const MESSAGE: u8 = b'M';
    pub const UP: u8 = b'U';
    pub const RESUME: u8 = b'R';
    pub const DOWN: u8 = b'D';
    pub const END: u8 = b'E';
    pub const SUBSCRIBE: u8 = b'S';
    pub const UNSUBSCRIBE: u8 = b'X';
    pub const ID_MARK: u8 = b'A';
    pub const PENDING: u8 = b'P';
    pub const SENT: u8 = b'T';
    pub const RELEASED: u8 = b'K';
    pub const COMPLETED: u8 = b'C';
    pub const DROPPED: u8 = b'O';
    pub const INBOUND: u8 = b'I';
    pub const INBOUND_DONE: u8 = b'J';
    pub const WILL: u8 = b'W';
    pub const WILL_GONE: u8 = b'G';
}

/// Message property tags: the MQTT 5 property identifiers.
mod prop {
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const USER_PROPERTY: u8 = 0x26;
}

const RETAIN_FLAG: u8 = 0b100;
const PUBLISHER_FLAG: u8 = 0b1000;
/// In a delivery's flags (`P`, `T`, `O`): a retained message sent on
/// subscribing.
const ON_SUBSCRIBE_FLAG: u8 = 0b1000;
const HAS_SUBSCRIPTION_ID: u8 = 0b100_0000;

/// Encodes `entry` as a record stamped `now_ms` (for a message: when it was
/// received).
pub fn encode(entry: &Entry, now_ms: i64) -> NewRecord {
    let mut b = BytesMut::new();
    let kind = match entry {
        Entry::Message(m) => return encode_message(m, now_ms, None),
        Entry::Published {
            message,
            client,
            packet_id,
        } => return encode_message(message, now_ms, Some((client, *packet_id))),
        Entry::Will {
            client,
            due_ms,
            message,
        } => {
            let mut r = encode_message(message, *due_ms, Some((client, 0)));
            let mut p = BytesMut::from(&r.properties[..]);
            p[0] = kind::WILL;
            r.properties = p.freeze();
            return r;
        }
        Entry::WillGone { client } => {
            put_bytes(&mut b, client.as_bytes());
            kind::WILL_GONE
        }
        Entry::Up { client, expiry } => {
            b.put_u32_le(*expiry);
            put_bytes(&mut b, client.as_bytes());
            kind::UP
        }
        Entry::Resume { client, expiry } => {
            b.put_u32_le(*expiry);
            put_bytes(&mut b, client.as_bytes());
            kind::RESUME
        }
        Entry::Down {
            client,
            expiry,
            at_ms,
        } => {
            b.put_u32_le(*expiry);
            b.put_i64_le(*at_ms);
            put_bytes(&mut b, client.as_bytes());
            kind::DOWN
        }
        Entry::End { client } => {
            put_bytes(&mut b, client.as_bytes());
            kind::END
        }
        Entry::Subscribe {
            client,
            filter,
            options: o,
        } => {
            put_bytes(&mut b, client.as_bytes());
            put_bytes(&mut b, filter.as_bytes());
            let bits = o.qos as u8
                | u8::from(o.no_local) << 2
                | u8::from(o.retain_as_published) << 3
                | (o.retain_handling as u8) << 4;
            match o.subscription_id {
                Some(id) => {
                    b.put_u8(bits | HAS_SUBSCRIPTION_ID);
                    b.put_u32_le(id);
                }
                None => b.put_u8(bits),
            }
            kind::SUBSCRIBE
        }
        Entry::Unsubscribe { client, filter } => {
            put_bytes(&mut b, client.as_bytes());
            put_bytes(&mut b, filter.as_bytes());
            kind::UNSUBSCRIBE
        }
        Entry::IdMark { ids } => {
            put_ids(&mut b, &MqttStr::new(), ids);
            kind::ID_MARK
        }
        Entry::Pending {
            client,
            id,
            qos,
            retain,
            subscription_ids,
            on_subscribe,
        } => {
            put_bytes(&mut b, client.as_bytes());
            b.put_u64_le(*id);
            b.put_u8(flags_byte(*qos, *retain) | on_subscribe_bit(*on_subscribe));
            put_u32s(&mut b, subscription_ids);
            kind::PENDING
        }
        Entry::Sent { client, sends } => {
            put_sends(&mut b, client, sends);
            kind::SENT
        }
        Entry::Released { client, flows } => {
            put_flows(&mut b, client, flows);
            kind::RELEASED
        }
        Entry::Completed { client, flows } => {
            put_flows(&mut b, client, flows);
            kind::COMPLETED
        }
        Entry::Dropped { client, copies } => {
            put_unsent(&mut b, client, copies);
            kind::DROPPED
        }
        Entry::Inbound { client, packet_ids } | Entry::InboundDone { client, packet_ids } => {
            put_packet_ids(&mut b, client, packet_ids);
            match entry {
                Entry::Inbound { .. } => kind::INBOUND,
                _ => kind::INBOUND_DONE,
            }
        }
    };
    record(kind, b, now_ms)
}

/// Every kind byte, for record properties that need no allocation.
static KIND_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// A non-message record: the kind byte as its properties, `payload` its
/// fields.
fn record(kind: u8, payload: BytesMut, now_ms: i64) -> NewRecord {
    let k = usize::from(kind);
    NewRecord {
        timestamp: now_ms,
        topic: Bytes::new(),
        properties: Bytes::from_static(&KIND_BYTES[k..k + 1]),
        payload: payload.freeze(),
    }
}

/// A client id and a list: its count, then each item as `put` writes it
/// (`size`: the bytes an item usually takes, reserved up front).
fn put_list<T>(
    b: &mut BytesMut,
    client: &MqttStr,
    items: &[T],
    size: usize,
    put: impl Fn(&mut BytesMut, &T),
) {
    b.reserve(8 + client.len() + items.len() * size);
    put_bytes(b, client.as_bytes());
    b.put_u32_le(len_u32(items.len()));
    for item in items {
        put(b, item);
    }
}

/// A delivery's flags byte: bits 0-1 QoS, bit 2 RETAIN (see
/// [`delivery_flags`]).
fn flags_byte(qos: QoS, retain: bool) -> u8 {
    qos as u8 | if retain { RETAIN_FLAG } else { 0 }
}

/// Bit 3 of a delivery's flags byte in `P`, `T` and `O`.
fn on_subscribe_bit(on_subscribe: bool) -> u8 {
    if on_subscribe { ON_SUBSCRIBE_FLAG } else { 0 }
}

fn put_sends(b: &mut BytesMut, client: &MqttStr, sends: &[Sent]) {
    put_list(b, client, sends, 15, |b, s| {
        b.put_u64_le(s.id);
        b.put_u16_le(s.packet_id);
        b.put_u8(flags_byte(s.qos, s.retain) | on_subscribe_bit(s.on_subscribe));
        put_u32s(b, &s.subscription_ids);
    });
}

fn put_ids(b: &mut BytesMut, client: &MqttStr, ids: &[u64]) {
    put_list(b, client, ids, 8, |b, id| b.put_u64_le(*id));
}

fn put_unsent(b: &mut BytesMut, client: &MqttStr, copies: &[Unsent]) {
    put_list(b, client, copies, 13, |b, c| {
        b.put_u64_le(c.id);
        b.put_u8(flags_byte(c.qos, c.retain) | on_subscribe_bit(c.on_subscribe));
        put_u32s(b, &c.subscription_ids);
    });
}

fn put_flows(b: &mut BytesMut, client: &MqttStr, flows: &[Flow]) {
    put_list(b, client, flows, 10, |b, f| {
        b.put_u64_le(f.id);
        b.put_u16_le(f.packet_id);
    });
}

fn put_packet_ids(b: &mut BytesMut, client: &MqttStr, ids: &[u16]) {
    put_list(b, client, ids, 2, |b, id| b.put_u16_le(*id));
}

/// One round of a journaled connection's work, borrowed: see
/// [`encode_round`].
#[derive(Debug)]
pub struct Round<'a> {
    pub sent: &'a [Sent],
    pub released: &'a [Flow],
    pub completed: &'a [Flow],
    pub dropped: &'a [Unsent],
    pub inbound_done: &'a [u16],
}

/// The records of one round of a journaled connection's work (the same
/// bytes as `Sent`, `Released`, `Completed`, `Dropped` and `InboundDone`
/// entries, in that order; empty parts give no record). A flow that
/// completed and a new one under its packet id in the same round would be
/// read back in the wrong order; ids are handed out in turn, so that takes
/// 65,535 sends in one round.
pub fn encode_round(client: &MqttStr, round: Round<'_>, now_ms: i64, out: &mut Vec<NewRecord>) {
    let Round {
        sent,
        released,
        completed,
        dropped,
        inbound_done,
    } = round;
    if !sent.is_empty() {
        let mut b = BytesMut::new();
        put_sends(&mut b, client, sent);
        out.push(record(kind::SENT, b, now_ms));
    }
    for (kind, flows) in [(kind::RELEASED, released), (kind::COMPLETED, completed)] {
        if !flows.is_empty() {
            let mut b = BytesMut::new();
            put_flows(&mut b, client, flows);
            out.push(record(kind, b, now_ms));
        }
    }
    if !dropped.is_empty() {
        let mut b = BytesMut::new();
        put_unsent(&mut b, client, dropped);
        out.push(record(kind::DROPPED, b, now_ms));
    }
    if !inbound_done.is_empty() {
        let mut b = BytesMut::new();
        put_packet_ids(&mut b, client, inbound_done);
        out.push(record(kind::INBOUND_DONE, b, now_ms));
    }
}

/// A message record; `from` is the publisher's client id and inbound QoS 2
/// packet id (see [`Entry::Published`]).
pub fn encode_message(m: &Message, received_ms: i64, from: Option<(&MqttStr, u16)>) -> NewRecord {
    let from_len = from.map_or(0, |(c, _)| 6 + c.len());
    // One buffer: the header with a length patched in once the
    // properties are written. Messages without properties (the common
    // case) need 14 bytes and the publisher.
    let mut out = BytesMut::with_capacity(14 + from_len);
    out.put_u8(kind::MESSAGE);
    let publisher = if from.is_some() { PUBLISHER_FLAG } else { 0 };
    out.put_u8(flags_byte(m.qos, m.retain) | publisher);
    out.put_u64_le(m.id);
    out.put_u32_le(0);
    let p: &PublishProperties = &m.properties;
    if let Some(v) = p.payload_format_indicator {
        out.put_u8(prop::PAYLOAD_FORMAT);
        out.put_u8(v);
    }
    if let Some(v) = p.message_expiry_interval {
        out.put_u8(prop::MESSAGE_EXPIRY);
        out.put_u32_le(v);
    }
    if let Some(v) = &p.content_type {
        out.put_u8(prop::CONTENT_TYPE);
        put_bytes(&mut out, v.as_bytes());
    }
    if let Some(v) = &p.response_topic {
        out.put_u8(prop::RESPONSE_TOPIC);
        put_bytes(&mut out, v.as_bytes());
    }
    if let Some(v) = &p.correlation_data {
        out.put_u8(prop::CORRELATION_DATA);
        put_bytes(&mut out, v);
    }
    for (k, v) in &p.user_properties {
        out.put_u8(prop::USER_PROPERTY);
        put_bytes(&mut out, k.as_bytes());
        put_bytes(&mut out, v.as_bytes());
    }
    let props_len = len_u32(out.len() - 14);
    out[10..14].copy_from_slice(&props_len.to_le_bytes());
    if let Some((client, packet_id)) = from {
        put_bytes(&mut out, client.as_bytes());
        out.put_u16_le(packet_id);
    }
    NewRecord {
        timestamp: received_ms,
        topic: m.topic.as_bytes().clone(),
        properties: out.freeze(),
        payload: m.payload.clone(),
    }
}

/// A length that fits: the log refuses records over `u32::MAX` bytes, so a
/// longer field could never be appended anyway.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_u32s(b: &mut BytesMut, v: &[u32]) {
    b.put_u32_le(len_u32(v.len()));
    for &x in v {
        b.put_u32_le(x);
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_u32_le(len_u32(v.len()));
    b.put_slice(v);
}
