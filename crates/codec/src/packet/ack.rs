//! PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 to 3.7): one shape,
//! four packet types.

use super::connect::check_reason;
use super::{PacketType, Sizes, check_packet_id, read_packet_id};
use crate::Protocol;
use crate::error::{EncodeError, ErrorKind};
use crate::property::{self, AckProperties};
use crate::reason::ReasonCode;
use crate::wire::{Reader, Writer};

/// The body of PUBACK, PUBREC, PUBREL and PUBCOMP. The packet type is the
/// [`Packet`](super::Packet) variant that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    pub packet_id: u16,
    /// 5.0 only; `Success` before.
    pub reason: ReasonCode,
    /// 5.0 only.
    pub properties: AckProperties,
}

pub type PubAck = PubResponse;
pub type PubRec = PubResponse;
pub type PubRel = PubResponse;
pub type PubComp = PubResponse;

impl PubResponse {
    /// A successful response for `packet_id`.
    pub fn new(packet_id: u16) -> PubResponse {
        PubResponse {
            packet_id,
            reason: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }

    pub(super) fn decode(
        t: PacketType,
        r: &mut Reader,
        p: Protocol,
    ) -> Result<PubResponse, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let mut ack = PubResponse::new(packet_id);
        // 5.0: a Remaining Length of 2 means Success and no properties, 3
        // means a reason code and no properties (section 3.4.2.1).
        if p.is_v5() && !r.is_empty() {
            let raw = r.u8("reason code")?;
            ack.reason = ReasonCode::from_u8(raw)
                .filter(|c| c.allowed_in(t))
                .ok_or(ErrorKind::InvalidReasonCode { value: raw })?;
            if !r.is_empty() {
                ack.properties = property::decode(r)?;
            }
        }
        Ok(ack)
    }

    pub(super) fn sizes(&self, t: PacketType, p: Protocol) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id)?;
        if !p.is_v5() {
            return Ok(Sizes {
                remaining: 2,
                ..Sizes::default()
            });
        }
        check_reason(self.reason, t)?;
        if self.properties.is_empty() {
            let remaining = if self.reason == ReasonCode::Success {
                2
            } else {
                3
            };
            return Ok(Sizes {
                remaining,
                ..Sizes::default()
            });
        }
        let (len, total) = property::block_len(&self.properties)?;
        Ok(Sizes {
            remaining: 3 + total,
            props: len,
            will_props: 0,
        })
    }

    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        out.put_u16(self.packet_id);
        if p.is_v5() && s.remaining > 2 {
            out.put_u8(self.reason.as_u8());
            if s.remaining > 3 {
                property::put(out, &self.properties, s.props);
            }
        }
    }
}
