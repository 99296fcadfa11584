//! PUBLISH (section 3.3).

use bytes::{BufMut, Bytes, BytesMut};

use super::{Sizes, check_packet_id, read_packet_id};
use crate::error::{EncodeError, ErrorKind};
use crate::property::{self, PublishProperties};
use crate::string::MqttStr;
use crate::topic::{self, TopicError};
use crate::wire::{self, Reader};
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
    pub properties: PublishProperties,
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

    pub(super) fn decode(flags: u8, r: &mut Reader, p: Protocol) -> Result<Publish, ErrorKind> {
        let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(ErrorKind::InvalidQoS {
            field: "PUBLISH fixed header",
        })?;
        let dup = flags & 0x08 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(ErrorKind::DupOnQoS0);
        }
        let topic = r.string("topic name")?;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            read_packet_id(r)?
        };
        let properties: PublishProperties = if p.is_v5() {
            property::decode(r)?
        } else {
            PublishProperties::default()
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
        } else if let Err(reason) = topic::validate_topic_name(&topic) {
            return Err(ErrorKind::TopicName {
                topic: topic.to_string(),
                reason,
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

    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        let mut s = Sizes::default();
        let mut n = wire::field_len(self.topic.as_bytes(), "topic name")?;
        if self.qos != QoS::AtMostOnce {
            check_packet_id(self.packet_id)?;
            n += 2;
        }
        if p.is_v5() {
            let (len, total) = property::block_len(&self.properties)?;
            s.props = len;
            n += total;
        }
        s.remaining = n + self.payload.len();
        Ok(s)
    }

    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut BytesMut) {
        wire::put_field(out, self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            out.put_u16(self.packet_id);
        }
        if p.is_v5() {
            property::put(out, &self.properties, s.props);
        }
        out.put_slice(&self.payload);
    }
}
