//! PUBLISH (section 3.3).

use bytes::{Bytes, BytesMut};

use super::{Sizes, check_packet_id, read_packet_id};
use crate::error::{EncodeError, ErrorKind};
use crate::property::{self, PublishProperties, PublishProps};
use crate::string::MqttStr;
use crate::topic::TopicError;
use crate::wire::{self, Reader, Writer};
use crate::{Protocol, QoS};

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in 5.0, when a Topic Alias stands for it.
    pub topic: MqttStr,
    /// Zero for QoS 0, which carries none [MQTT-2.2.1-2].
    pub packet_id: u16,
    /// 5.0 only.
    pub properties: PublishProps,
    pub payload: Bytes,
}

impl Publish {
    /// A PUBLISH with no flags, packet identifier or properties.
    pub fn new(topic: MqttStr, qos: QoS, payload: Bytes) -> Publish {
        Publish {
            topic,
            qos,
            payload,
            ..Publish::default()
        }
    }

    pub(super) fn flags(&self) -> u8 {
        u8::from(self.dup) << 3 | (self.qos as u8) << 1 | u8::from(self.retain)
    }

    #[inline]
    pub(super) fn decode(flags: u8, r: &mut Reader, p: Protocol) -> Result<Publish, ErrorKind> {
        let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(ErrorKind::InvalidQoS {
            field: "PUBLISH fixed header",
        })?;
        let dup = flags & 0x08 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(ErrorKind::DupOnQoS0);
        }
        let (topic, wildcard) = r.string_scan("topic name")?;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            read_packet_id(r)?
        };
        let properties = if !p.is_v5() {
            PublishProps::new()
        } else if r.peek() == Some(0) {
            // Property Length 0, the common case: nothing to build.
            r.u8("property length")?;
            PublishProps::new()
        } else {
            property::decode::<PublishProperties>(r)?.into()
        };
        if topic.is_empty() {
            // 5.0 lets a Topic Alias stand in for the name (section 3.3.2.3.4).
            if !p.is_v5() {
                return Err(ErrorKind::TopicName {
                    topic: String::new(),
                    reason: TopicError::Empty,
                });
            }
            if properties.topic_alias.is_none() {
                return Err(ErrorKind::EmptyTopicWithoutAlias);
            }
        } else if wildcard {
            // [MQTT-3.3.2-2] / [MQTT-4.7.0-1]
            return Err(ErrorKind::TopicName {
                topic: topic.to_string(),
                reason: TopicError::WildcardInName,
            });
        }
        Ok(Publish {
            dup,
            qos,
            retain: flags & 0x01 != 0,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    /// Encodes without the generic path: see [`encode_publish`].
    #[inline]
    pub(super) fn encode_fast(
        &self,
        p: Protocol,
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        encode_publish(
            p,
            out,
            PublishHeader {
                dup: self.dup,
                qos: self.qos,
                retain: self.retain,
                packet_id: self.packet_id,
            },
            self.topic.as_bytes(),
            &self.properties,
            &self.payload,
        )
    }

    #[inline]
    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        let mut s = Sizes::default();
        let mut n = wire::field_len(self.topic.as_bytes(), "topic name")?;
        if self.qos != QoS::AtMostOnce {
            check_packet_id(self.packet_id)?;
            n += 2;
        }
        if p.is_v5() {
            let (len, total) = if self.properties.is_empty() {
                (0, 1)
            } else {
                property::block_len(&*self.properties)?
            };
            s.props = len;
            n += total;
        }
        s.remaining = n + self.payload.len();
        Ok(s)
    }
}

/// The fixed header flags and packet identifier of a PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHeader {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Not written at QoS 0 [MQTT-2.2.1-2].
    pub packet_id: u16,
}

/// Appends a PUBLISH made of borrowed parts and returns its length: the
/// bytes [`Publish`] encodes to, without a `Publish` to build or reference
/// counts to touch (the hot path of every delivery). Sizes are worked out
/// inline, and the fixed header, topic length and packet identifier go out
/// in one copy. On error nothing is written.
#[inline]
pub fn encode_publish(
    p: Protocol,
    out: &mut BytesMut,
    h: PublishHeader,
    topic: &[u8],
    properties: &PublishProperties,
    payload: &[u8],
) -> Result<usize, EncodeError> {
    if topic.len() > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            field: "topic name",
            len: topic.len(),
        });
    }
    let has_id = h.qos != QoS::AtMostOnce;
    if has_id {
        check_packet_id(h.packet_id)?;
    }
    let (props_len, props_total) = if !p.is_v5() {
        (0, 0)
    } else if properties.is_empty() {
        (0, 1)
    } else {
        property::block_len(properties)?
    };
    let remaining = 2 + topic.len() + 2 * usize::from(has_id) + props_total + payload.len();
    let vbi = wire::check_var_int(remaining, "remaining length")?;
    let total = 1 + vbi + remaining;
    let start = out.len();
    out.resize(start + total, 0);
    let w = &mut Writer::new(&mut out[start..]);
    w.put_u8(0x30 | u8::from(h.dup) << 3 | (h.qos as u8) << 1 | u8::from(h.retain));
    wire::put_var_int(w, remaining);
    wire::put_field(w, topic);
    if has_id {
        w.put_u16(h.packet_id);
    }
    if p.is_v5() {
        property::put(w, properties, props_len);
    }
    w.put_slice(payload);
    debug_assert_eq!(w.written(), total);
    Ok(total)
}
