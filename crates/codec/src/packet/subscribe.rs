//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (sections 3.8 to 3.11).

use super::connect::check_reason;
use super::{PacketType, Sizes, check_packet_id, read_packet_id};
use crate::error::{EncodeError, ErrorKind};
use crate::property::{self, AckProperties, SubscribeProperties, UnsubscribeProperties};
use crate::reason::ReasonCode;
use crate::string::MqttStr;
use crate::topic;
use crate::wire::{self, Reader, Writer};
use crate::{Protocol, QoS};

/// When retained messages are sent for a new subscription (section 3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAlways = 0,
    /// Send them only if the subscription did not exist yet.
    SendIfNew = 1,
    /// Do not send them.
    DoNotSend = 2,
}

/// The Subscription Options byte. Before 5.0 only `qos` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SubscribeOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscribeOptions {
    fn decode(b: u8, p: Protocol) -> Result<SubscribeOptions, ErrorKind> {
        let reserved = if p.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(ErrorKind::ReservedSubscriptionOptions(b));
        }
        // 3.1.1 calls QoS 3 malformed [MQTT-3-8.3-4]; 5.0 a Protocol Error.
        let qos = QoS::from_u8(b & 0x03).ok_or(if p.is_v5() {
            ErrorKind::SubscriptionQoS3
        } else {
            ErrorKind::InvalidQoS {
                field: "subscription options",
            }
        })?;
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::SendAlways,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(ErrorKind::InvalidRetainHandling),
        };
        Ok(SubscribeOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(&self, p: Protocol) -> u8 {
        let mut b = self.qos as u8;
        if p.is_v5() {
            b |= u8::from(self.no_local) << 2
                | u8::from(self.retain_as_published) << 3
                | (self.retain_handling as u8) << 4;
        }
        b
    }
}

/// One Topic Filter and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub filter: MqttStr,
    pub options: SubscribeOptions,
}

/// A SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    /// 5.0 only.
    pub properties: SubscribeProperties,
    /// At least one [MQTT-3.8.3-2].
    pub filters: Vec<Subscription>,
}

#[inline(always)]
fn read_filter(r: &mut Reader) -> Result<MqttStr, ErrorKind> {
    let (filter, wildcard) = r.string_scan("topic filter")?;
    // Most filters have no wildcard and no share prefix: the one scan that
    // validated the string already proves them well-formed.
    if wildcard || filter.is_empty() || filter.starts_with(topic::SHARE_PREFIX) {
        topic::validate_topic_filter(&filter).map_err(|reason| ErrorKind::TopicFilter {
            filter: filter.to_string(),
            reason,
        })?;
    }
    Ok(filter)
}

/// How many length-prefixed fields (each followed by `extra` bytes) the
/// rest of `r` holds, to size a vector once.
fn count_fields(r: &Reader, extra: usize) -> usize {
    let bytes = r.as_slice();
    let (mut i, mut n) = (0, 0);
    while i + 2 <= bytes.len() {
        i += 2 + usize::from(u16::from_be_bytes([bytes[i], bytes[i + 1]])) + extra;
        n += 1;
    }
    n
}

fn non_empty<T>(v: &[T], packet: &'static str) -> Result<(), EncodeError> {
    if v.is_empty() {
        Err(EncodeError::Empty { packet })
    } else {
        Ok(())
    }
}

/// The property block of a 5.0 packet, or nothing before 5.0.
fn props_size<P: property::PropertySet>(
    p: Protocol,
    props: &P,
    s: &mut Sizes,
) -> Result<usize, EncodeError> {
    if !p.is_v5() {
        return Ok(0);
    }
    let (len, total) = property::block_len(props)?;
    s.props = len;
    Ok(total)
}

impl Subscribe {
    #[inline]
    pub(super) fn decode(r: &mut Reader, p: Protocol) -> Result<Subscribe, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let properties = if p.is_v5() {
            property::decode(r)?
        } else {
            SubscribeProperties::default()
        };
        let mut filters = Vec::with_capacity(count_fields(r, 1));
        while !r.is_empty() {
            let filter = read_filter(r)?;
            let options = SubscribeOptions::decode(r.u8("subscription options")?, p)?;
            // [MQTT-3.8.3-4]
            if options.no_local && filter.starts_with(topic::SHARE_PREFIX) && p.is_v5() {
                return Err(ErrorKind::NoLocalOnSharedSubscription);
            }
            filters.push(Subscription { filter, options });
        }
        if filters.is_empty() {
            return Err(ErrorKind::NoTopicFilters {
                packet: "SUBSCRIBE",
            });
        }
        Ok(Subscribe {
            packet_id,
            properties,
            filters,
        })
    }

    #[inline]
    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id)?;
        non_empty(&self.filters, "SUBSCRIBE")?;
        let mut s = Sizes::default();
        let mut n = 2 + props_size(p, &self.properties, &mut s)?;
        for f in &self.filters {
            n += wire::field_len(f.filter.as_bytes(), "topic filter")? + 1;
        }
        s.remaining = n;
        Ok(s)
    }

    #[inline]
    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        out.put_u16(self.packet_id);
        if p.is_v5() {
            property::put(out, &self.properties, s.props);
        }
        for f in &self.filters {
            wire::put_field(out, f.filter.as_bytes());
            out.put_u8(f.options.encode(p));
        }
    }
}

/// A SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    /// 5.0 only.
    pub properties: AckProperties,
    /// One per requested filter, in order. Before 5.0 every failure travels
    /// as 0x80 and decodes as [`ReasonCode::UnspecifiedError`].
    pub codes: Vec<ReasonCode>,
}

impl SubAck {
    #[inline]
    pub(super) fn decode(r: &mut Reader, p: Protocol) -> Result<SubAck, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let properties = if p.is_v5() {
            property::decode(r)?
        } else {
            AckProperties::default()
        };
        let mut codes = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let raw = r.u8("reason code")?;
            let code = if p.is_v5() {
                ReasonCode::from_u8(raw)
                    .filter(|c| c.allowed_in(PacketType::SubAck))
                    .ok_or(ErrorKind::InvalidReasonCode { value: raw })?
            } else {
                match raw {
                    0 => ReasonCode::Success,
                    1 => ReasonCode::GrantedQoS1,
                    2 => ReasonCode::GrantedQoS2,
                    0x80 => ReasonCode::UnspecifiedError,
                    v => return Err(ErrorKind::InvalidSubAckCode { value: v }),
                }
            };
            codes.push(code);
        }
        // One code per filter of the SUBSCRIBE, which has at least one
        // [MQTT-3.8.4-6] [MQTT-3.9.3-1].
        if codes.is_empty() {
            return Err(ErrorKind::NoReasonCodes { packet: "SUBACK" });
        }
        Ok(SubAck {
            packet_id,
            properties,
            codes,
        })
    }

    #[inline]
    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id)?;
        non_empty(&self.codes, "SUBACK")?;
        // Before 5.0 every failure travels as 0x80; other codes have no
        // 3.1.1 form [MQTT-3.9.3-2].
        for &c in &self.codes {
            check_reason(c, PacketType::SubAck)?;
        }
        let mut s = Sizes::default();
        s.remaining = 2 + props_size(p, &self.properties, &mut s)? + self.codes.len();
        Ok(s)
    }

    #[inline]
    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        out.put_u16(self.packet_id);
        if p.is_v5() {
            property::put(out, &self.properties, s.props);
        }
        for &c in &self.codes {
            let b = if !p.is_v5() && c.is_error() {
                0x80
            } else {
                c.as_u8()
            };
            out.put_u8(b);
        }
    }
}

/// An UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    /// 5.0 only.
    pub properties: UnsubscribeProperties,
    /// At least one [MQTT-3.10.3-2].
    pub filters: Vec<MqttStr>,
}

impl Unsubscribe {
    #[inline]
    pub(super) fn decode(r: &mut Reader, p: Protocol) -> Result<Unsubscribe, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let properties = if p.is_v5() {
            property::decode(r)?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::with_capacity(count_fields(r, 0));
        while !r.is_empty() {
            filters.push(read_filter(r)?);
        }
        if filters.is_empty() {
            return Err(ErrorKind::NoTopicFilters {
                packet: "UNSUBSCRIBE",
            });
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    #[inline]
    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id)?;
        non_empty(&self.filters, "UNSUBSCRIBE")?;
        let mut s = Sizes::default();
        let mut n = 2 + props_size(p, &self.properties, &mut s)?;
        for f in &self.filters {
            n += wire::field_len(f.as_bytes(), "topic filter")?;
        }
        s.remaining = n;
        Ok(s)
    }

    #[inline]
    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        out.put_u16(self.packet_id);
        if p.is_v5() {
            property::put(out, &self.properties, s.props);
        }
        for f in &self.filters {
            wire::put_field(out, f.as_bytes());
        }
    }
}

/// An UNSUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    /// 5.0 only.
    pub properties: AckProperties,
    /// 5.0 only: one per filter, in order.
    pub codes: Vec<ReasonCode>,
}

impl UnsubAck {
    #[inline]
    pub(super) fn decode(r: &mut Reader, p: Protocol) -> Result<UnsubAck, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let mut ack = UnsubAck {
            packet_id,
            properties: AckProperties::default(),
            codes: Vec::new(),
        };
        if p.is_v5() {
            ack.properties = property::decode(r)?;
            while !r.is_empty() {
                let raw = r.u8("reason code")?;
                ack.codes.push(
                    ReasonCode::from_u8(raw)
                        .filter(|c| c.allowed_in(PacketType::UnsubAck))
                        .ok_or(ErrorKind::InvalidReasonCode { value: raw })?,
                );
            }
            if ack.codes.is_empty() {
                return Err(ErrorKind::NoReasonCodes { packet: "UNSUBACK" });
            }
        }
        Ok(ack)
    }

    #[inline]
    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id)?;
        let mut s = Sizes::default();
        if !p.is_v5() {
            s.remaining = 2;
            return Ok(s);
        }
        non_empty(&self.codes, "UNSUBACK")?;
        for &c in &self.codes {
            check_reason(c, PacketType::UnsubAck)?;
        }
        s.remaining = 2 + props_size(p, &self.properties, &mut s)? + self.codes.len();
        Ok(s)
    }

    #[inline]
    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        out.put_u16(self.packet_id);
        if p.is_v5() {
            property::put(out, &self.properties, s.props);
            for &c in &self.codes {
                out.put_u8(c.as_u8());
            }
        }
    }
}
