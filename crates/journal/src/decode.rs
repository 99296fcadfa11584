//! The journal's records back to entries: [`decode`] and its reader. The
//! layout is in the parent module's docs; nothing here writes.

use super::*;

/// Decodes one record. `now`/`now_ms` rebuild `Message::received` (= now -
/// (now_ms - record.timestamp), saturating) so message expiry keeps
/// counting.
pub fn decode(record: &Record, now: Instant, now_ms: i64) -> Result<Entry, JournalError> {
    decode_entry(record, now, now_ms).map_err(|what| JournalError::Malformed {
        offset: record.offset,
        what,
    })
}

fn decode_entry(record: &Record, now: Instant, now_ms: i64) -> Result<Entry, String> {
    let Some(&kind) = record.properties.first() else {
        return Err("the properties are empty, so there is no entry kind".into());
    };
    if kind == kind::MESSAGE || kind == kind::WILL {
        return decode_message(record, now, now_ms);
    }
    let name = match kind {
        kind::UP => "Up",
        kind::RESUME => "Resume",
        kind::DOWN => "Down",
        kind::END => "End",
        kind::SUBSCRIBE => "Subscribe",
        kind::UNSUBSCRIBE => "Unsubscribe",
        kind::ID_MARK => "IdMark",
        kind::PENDING => "Pending",
        kind::SENT => "Sent",
        kind::RELEASED => "Released",
        kind::COMPLETED => "Completed",
        kind::DROPPED => "Dropped",
        kind::INBOUND => "Inbound",
        kind::INBOUND_DONE => "InboundDone",
        kind::WILL_GONE => "WillGone",
        other => return Err(format!("unknown entry kind 0x{other:02x}")),
    };
    if !record.topic.is_empty() {
        return Err(format!("a {name} entry has a record topic"));
    }
    if record.properties.len() != 1 {
        return Err(format!(
            "a {name} entry has {} bytes of properties after its kind",
            record.properties.len() - 1
        ));
    }
    let mut r = Reader::new(&record.payload);
    let entry = match kind {
        kind::UP => Entry::Up {
            expiry: r.u32("expiry")?,
            client: r.string("client id")?,
        },
        kind::RESUME => Entry::Resume {
            expiry: r.u32("expiry")?,
            client: r.string("client id")?,
        },
        kind::DOWN => Entry::Down {
            expiry: r.u32("expiry")?,
            at_ms: r.i64("down time")?,
            client: r.string("client id")?,
        },
        kind::END => Entry::End {
            client: r.string("client id")?,
        },
        kind::SUBSCRIBE => {
            let client = r.string("client id")?;
            let filter = r.filter()?;
            let bits = r.u8("subscription options")?;
            if bits & 0b1000_0000 != 0 {
                return Err(format!(
                    "subscription options 0x{bits:02x} set unknown bit 7"
                ));
            }
            let retain_handling = match (bits >> 4) & 0b11 {
                0 => RetainHandling::SendAlways,
                1 => RetainHandling::SendIfNew,
                2 => RetainHandling::DoNotSend,
                _ => return Err("subscription options give Retain Handling 3".into()),
            };
            let subscription_id = match bits & HAS_SUBSCRIPTION_ID {
                0 => None,
                _ => Some(r.u32("subscription identifier")?),
            };
            let options = SubOptions {
                qos: qos(bits, "subscription")?,
                no_local: bits & 0b100 != 0,
                retain_as_published: bits & 0b1000 != 0,
                retain_handling,
                subscription_id,
            };
            Entry::Subscribe {
                client,
                filter,
                options,
            }
        }
        kind::UNSUBSCRIBE => Entry::Unsubscribe {
            client: r.string("client id")?,
            filter: r.filter()?,
        },
        kind::ID_MARK => {
            let client = r.string("client id")?;
            if !client.is_empty() {
                return Err(format!(
                    "an IdMark entry names client {client:?} (an id mark's client id is empty)"
                ));
            }
            Entry::IdMark {
                ids: r.u64s("message id")?,
            }
        }
        kind::RELEASED => Entry::Released {
            client: r.string("client id")?,
            flows: r.flows()?,
        },
        kind::COMPLETED => Entry::Completed {
            client: r.string("client id")?,
            flows: r.flows()?,
        },
        kind::DROPPED => {
            let client = r.string("client id")?;
            let count = r.u32("copy count")? as usize;
            // Bounded by the bytes there are: no allocation on a lying count.
            let mut copies = Vec::with_capacity(count.min(r.left() / 13));
            for _ in 0..count {
                let id = r.u64("message id")?;
                let flags = r.u8("delivery flags")?;
                let (qos, retain) = delivery_flags(flags & !ON_SUBSCRIBE_FLAG)?;
                copies.push(Unsent {
                    id,
                    qos,
                    retain,
                    subscription_ids: r.u32s("subscription identifier")?,
                    on_subscribe: flags & ON_SUBSCRIBE_FLAG != 0,
                });
            }
            Entry::Dropped { client, copies }
        }
        kind::INBOUND => Entry::Inbound {
            client: r.string("client id")?,
            packet_ids: r.packet_ids()?,
        },
        kind::INBOUND_DONE => Entry::InboundDone {
            client: r.string("client id")?,
            packet_ids: r.packet_ids()?,
        },
        kind::WILL_GONE => Entry::WillGone {
            client: r.string("client id")?,
        },
        kind::SENT => {
            let client = r.string("client id")?;
            let count = r.u32("send count")? as usize;
            // Bounded by the bytes there are: no allocation on a lying count.
            let mut sends = Vec::with_capacity(count.min(r.left() / 15));
            for _ in 0..count {
                let id = r.u64("message id")?;
                let packet_id = r.u16("packet id")?;
                let flags = r.u8("send flags")?;
                let (qos, retain) = delivery_flags(flags & !ON_SUBSCRIBE_FLAG)?;
                if packet_id == 0 || qos == QoS::AtMostOnce {
                    return Err(format!(
                        "a send of message {id} has packet id {packet_id} and QoS {}",
                        qos as u8
                    ));
                }
                sends.push(Sent {
                    id,
                    packet_id,
                    qos,
                    retain,
                    subscription_ids: r.u32s("subscription identifier")?,
                    on_subscribe: flags & ON_SUBSCRIBE_FLAG != 0,
                });
            }
            Entry::Sent { client, sends }
        }
        _ => {
            let client = r.string("client id")?;
            let id = r.u64("message id")?;
            let flags = r.u8("delivery flags")?;
            let (qos, retain) = delivery_flags(flags & !ON_SUBSCRIBE_FLAG)?;
            Entry::Pending {
                client,
                id,
                qos,
                retain,
                subscription_ids: r.u32s("subscription identifier")?,
                on_subscribe: flags & ON_SUBSCRIBE_FLAG != 0,
            }
        }
    };
    r.finish(name)?;
    Ok(entry)
}

/// A delivery's flags byte: bits 0-1 QoS, bit 2 RETAIN.
fn delivery_flags(flags: u8) -> Result<(QoS, bool), String> {
    if flags & !0b111 != 0 {
        return Err(format!("delivery flags 0x{flags:02x} set unknown bits"));
    }
    Ok((qos(flags, "delivery")?, flags & RETAIN_FLAG != 0))
}

fn qos(bits: u8, what: &str) -> Result<QoS, String> {
    QoS::from_u8(bits & 0b11).ok_or_else(|| format!("{what} QoS 3"))
}

fn decode_message(record: &Record, now: Instant, now_ms: i64) -> Result<Entry, String> {
    let mut r = Reader::new(&record.properties);
    let will = r.u8("entry kind")? == kind::WILL;
    let flags = r.u8("message flags")?;
    if flags & !0b1111 != 0 {
        return Err(format!("message flags 0x{flags:02x} set unknown bits"));
    }
    let qos = qos(flags, "message")?;
    let id = r.u64("message id")?;
    if will && (id != 0 || flags & PUBLISHER_FLAG == 0) {
        return Err(format!("a will has id {id} or no client"));
    }
    if id == 0 && !will {
        return Err("message id 0 (stored messages are numbered from 1)".into());
    }
    let len = r.u32("message properties length")? as usize;
    let props = r.take(len, "message properties")?;
    let from = match flags & PUBLISHER_FLAG {
        0 => None,
        _ => Some((
            r.string("publisher client id")?,
            r.u16("inbound packet id")?,
        )),
    };
    r.finish("Message")?;
    let mut properties = decode_properties(&props)?;
    let topic =
        MqttStr::from_bytes(record.topic.clone()).map_err(|e| format!("the message topic {e}"))?;
    validate_topic_name(&topic).map_err(|e| format!("message topic {topic:?}: {e}"))?;
    // A will's timestamp is when it is due; its expiry counts from when it
    // is published.
    let received = match will {
        true => now,
        false => received_at(now, now_ms, record.timestamp, &mut properties),
    };
    let message = Message {
        topic,
        payload: record.payload.clone(),
        qos,
        retain: flags & RETAIN_FLAG != 0,
        properties,
        received,
        id,
    };
    Ok(match from {
        None => Entry::Message(message),
        Some((client, 0)) if will => Entry::Will {
            client,
            due_ms: record.timestamp,
            message,
        },
        Some((_, id)) if will => return Err(format!("a will has packet id {id}")),
        Some((client, packet_id)) => Entry::Published {
            message,
            client,
            packet_id,
        },
    })
}

fn decode_properties(bytes: &Bytes) -> Result<PublishProps, String> {
    fn once<T>(slot: &mut Option<T>, v: T, name: &str) -> Result<(), String> {
        match slot.replace(v) {
            Some(_) => Err(format!("the {name} property appears twice")),
            None => Ok(()),
        }
    }
    let mut p = PublishProperties::default();
    let mut r = Reader::new(bytes);
    while r.left() > 0 {
        match r.u8("property tag")? {
            prop::PAYLOAD_FORMAT => {
                let v = r.u8("payload format indicator")?;
                once(&mut p.payload_format_indicator, v, "payload format")?;
            }
            prop::MESSAGE_EXPIRY => {
                let v = r.u32("message expiry interval")?;
                once(&mut p.message_expiry_interval, v, "message expiry")?;
            }
            prop::CONTENT_TYPE => {
                let v = r.string("content type")?;
                once(&mut p.content_type, v, "content type")?;
            }
            prop::RESPONSE_TOPIC => {
                let v = r.string("response topic")?;
                once(&mut p.response_topic, v, "response topic")?;
            }
            prop::CORRELATION_DATA => {
                let v = r.bytes("correlation data")?;
                once(&mut p.correlation_data, v, "correlation data")?;
            }
            prop::USER_PROPERTY => {
                let k = r.string("user property name")?;
                let v = r.string("user property value")?;
                p.user_properties.push((k, v));
            }
            other => return Err(format!("unknown message property 0x{other:02x}")),
        }
    }
    Ok(p.into())
}

/// When a message received at `timestamp_ms` was received, on the clock of
/// `now`. A monotonic clock may not reach back that far (on some platforms
/// it starts at boot); the wait is then taken off the message expiry
/// interval instead, which is what a subscriber would see anyway
/// [MQTT-3.3.2-6].
fn received_at(now: Instant, now_ms: i64, timestamp_ms: i64, props: &mut PublishProps) -> Instant {
    // A timestamp after now_ms (the wall clock stepped back) counts as now.
    let age_ms = u64::try_from(i128::from(now_ms) - i128::from(timestamp_ms)).unwrap_or(0);
    match now.checked_sub(Duration::from_millis(age_ms)) {
        Some(t) => t,
        None => {
            rebase_expiry(age_ms, props);
            now
        }
    }
}

/// Takes `age_ms` off the message expiry interval, rounding up so that a
/// message that has not expired does not become expired; 0 if it has.
pub(super) fn rebase_expiry(age_ms: u64, props: &mut PublishProps) {
    if let Some(e) = props.message_expiry_interval {
        let left = (u64::from(e) * 1000).saturating_sub(age_ms);
        props.message_expiry_interval = Some(u32::try_from(left.div_ceil(1000)).unwrap_or(e));
    }
}

/// Reads the fields of one record part; every error says which field.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<Bytes, String> {
        if n > self.left() {
            return Err(format!(
                "the {what} is cut short: {n} bytes needed at byte {}, {} there",
                self.pos,
                self.left()
            ));
        }
        self.pos += n;
        Ok(self.buf.slice(self.pos - n..self.pos))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let b = self.take(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(&b);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// A u32 count and that many values. Capacity is bounded by the bytes
    /// there are, so a damaged count cannot ask for a huge allocation.
    fn u64s(&mut self, what: &str) -> Result<Vec<u64>, String> {
        let count = self.u32("id count")? as usize;
        let mut v = Vec::with_capacity(count.min(self.left() / 8));
        for _ in 0..count {
            v.push(self.u64(what)?);
        }
        Ok(v)
    }

    fn u32s(&mut self, what: &str) -> Result<Vec<u32>, String> {
        let count = self.u32("subscription id count")? as usize;
        let mut v = Vec::with_capacity(count.min(self.left() / 4));
        for _ in 0..count {
            v.push(self.u32(what)?);
        }
        Ok(v)
    }

    /// Flows: a message id and a non-zero packet id each.
    fn flows(&mut self) -> Result<Vec<Flow>, String> {
        let count = self.u32("flow count")? as usize;
        let mut v = Vec::with_capacity(count.min(self.left() / 10));
        for _ in 0..count {
            let id = self.u64("message id")?;
            match self.u16("packet id")? {
                0 => return Err(format!("a flow of message {id} has packet id 0")),
                packet_id => v.push(Flow { id, packet_id }),
            }
        }
        Ok(v)
    }

    /// Non-zero packet ids [MQTT-2.2.1-3].
    fn packet_ids(&mut self) -> Result<Vec<u16>, String> {
        let count = self.u32("packet id count")? as usize;
        let mut v = Vec::with_capacity(count.min(self.left() / 2));
        for _ in 0..count {
            match self.u16("packet id")? {
                0 => return Err("packet id 0".into()),
                id => v.push(id),
            }
        }
        Ok(v)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.array(what).map(i64::from_le_bytes)
    }

    fn bytes(&mut self, what: &str) -> Result<Bytes, String> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    fn string(&mut self, what: &str) -> Result<MqttStr, String> {
        MqttStr::from_bytes(self.bytes(what)?).map_err(|e| format!("the {what} {e}"))
    }

    /// A topic filter, checked as the codec checks it: the router takes
    /// filters as valid.
    fn filter(&mut self) -> Result<MqttStr, String> {
        let f = self.string("topic filter")?;
        parse_filter(&f).map_err(|e| format!("topic filter {f:?}: {e}"))?;
        Ok(f)
    }

    fn finish(&self, entry: &str) -> Result<(), String> {
        match self.left() {
            0 => Ok(()),
            n => Err(format!("{n} bytes left over after a {entry} entry")),
        }
    }
}
