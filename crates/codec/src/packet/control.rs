//! DISCONNECT (section 3.14) and AUTH (section 3.15).

use super::connect::check_reason;
use super::{PacketType, Sizes};
use crate::Protocol;
use crate::error::{EncodeError, ErrorKind};
use crate::property::{self, AuthProperties, DisconnectProperties};
use crate::reason::ReasonCode;
use crate::wire::{Reader, Writer};

/// A DISCONNECT packet. Before 5.0 it has no body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: DisconnectProperties,
}

/// Reads the optional reason code and properties that DISCONNECT and AUTH
/// share: a Remaining Length of 0 means Success and no properties, and of 1
/// a reason code and no properties (sections 3.14.2.1 and 3.15.2.1).
fn decode_reason_and_props<P: property::PropertySet>(
    t: PacketType,
    r: &mut Reader,
) -> Result<(ReasonCode, P), ErrorKind> {
    if r.is_empty() {
        return Ok((ReasonCode::Success, P::default()));
    }
    let raw = r.u8("reason code")?;
    let reason = ReasonCode::from_u8(raw)
        .filter(|c| c.allowed_in(t))
        .ok_or(ErrorKind::InvalidReasonCode { value: raw })?;
    let props = if r.is_empty() {
        P::default()
    } else {
        property::decode(r)?
    };
    Ok((reason, props))
}

fn reason_and_props_size<P: property::PropertySet>(
    t: PacketType,
    reason: ReasonCode,
    props: &P,
    empty: bool,
) -> Result<Sizes, EncodeError> {
    check_reason(reason, t)?;
    if empty && reason == ReasonCode::Success {
        return Ok(Sizes::default());
    }
    let (len, total) = property::block_len(props)?;
    Ok(Sizes {
        remaining: 1 + total,
        props: len,
        will_props: 0,
    })
}

impl Disconnect {
    /// A DISCONNECT with `reason` and no properties.
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect {
            reason,
            properties: DisconnectProperties::default(),
        }
    }

    pub(super) fn decode(r: &mut Reader, p: Protocol) -> Result<Disconnect, ErrorKind> {
        if !p.is_v5() {
            // The caller rejects any body as trailing bytes [MQTT-3.14.1-1].
            return Ok(Disconnect::default());
        }
        let (reason, properties) = decode_reason_and_props(PacketType::Disconnect, r)?;
        Ok(Disconnect { reason, properties })
    }

    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        if !p.is_v5() {
            return Ok(Sizes::default());
        }
        reason_and_props_size(
            PacketType::Disconnect,
            self.reason,
            &self.properties,
            self.properties.is_empty(),
        )
    }

    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        if p.is_v5() && s.remaining > 0 {
            out.put_u8(self.reason.as_u8());
            property::put(out, &self.properties, s.props);
        }
    }
}

/// An AUTH packet (5.0 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: AuthProperties,
}

impl Auth {
    pub(super) fn decode(r: &mut Reader) -> Result<Auth, ErrorKind> {
        let (reason, properties) = decode_reason_and_props(PacketType::Auth, r)?;
        Ok(Auth { reason, properties })
    }

    pub(super) fn sizes(&self) -> Result<Sizes, EncodeError> {
        reason_and_props_size(
            PacketType::Auth,
            self.reason,
            &self.properties,
            self.properties.is_empty(),
        )
    }

    pub(super) fn put(&self, s: &Sizes, out: &mut Writer<'_>) {
        if s.remaining > 0 {
            out.put_u8(self.reason.as_u8());
            property::put(out, &self.properties, s.props);
        }
    }
}
