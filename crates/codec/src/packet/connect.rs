//! CONNECT (section 3.1) and CONNACK (section 3.2).

use bytes::Bytes;

use super::{PacketType, Sizes};
use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::property::{self, ConnAckProperties, ConnectProperties, WillProperties};
use crate::reason::ReasonCode;
use crate::string::MqttStr;
use crate::topic;
use crate::wire::{self, Reader, Writer};
use crate::{Protocol, QoS};

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: Protocol,
    /// Clean Start (5.0) or Clean Session (3.1, 3.1.1).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// 5.0 only.
    pub properties: ConnectProperties,
    /// May be empty (3.1.1 and 5.0); the server decides what that means.
    pub client_id: MqttStr,
    pub will: Option<LastWill>,
    pub username: Option<MqttStr>,
    pub password: Option<Bytes>,
}

/// The Will Message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: MqttStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// 5.0 only.
    pub properties: WillProperties,
}

mod flag {
    pub const RESERVED: u8 = 0x01;
    pub const CLEAN_START: u8 = 0x02;
    pub const WILL: u8 = 0x04;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_RETAIN: u8 = 0x20;
    pub const PASSWORD: u8 = 0x40;
    pub const USERNAME: u8 = 0x80;
}

pub(super) fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let t = Some(PacketType::Connect);
    let mut protocol = None;
    let result = (|| -> Result<Connect, ErrorKind> {
        let name = r.string("protocol name")?;
        let level = r.u8("protocol level")?;
        let p = match (name.as_str(), Protocol::from_level(level)) {
            ("MQTT" | "MQIsdp", None) => return Err(ErrorKind::UnsupportedProtocolLevel(level)),
            ("MQTT", Some(p @ (Protocol::V3_1_1 | Protocol::V5)))
            | ("MQIsdp", Some(p @ Protocol::V3_1)) => p,
            ("MQTT", Some(_)) => {
                return Err(ErrorKind::ProtocolNameMismatch {
                    name: "MQTT",
                    level,
                });
            }
            ("MQIsdp", Some(_)) => {
                return Err(ErrorKind::ProtocolNameMismatch {
                    name: "MQIsdp",
                    level,
                });
            }
            (other, _) => return Err(ErrorKind::InvalidProtocolName(other.to_owned())),
        };
        protocol = Some(p);
        let c = Connect::decode_rest(p, r)?;
        // [MQTT-3.1.4-1]: nothing may follow the last field the flags name.
        r.finish()?;
        Ok(c)
    })();
    result.map_err(|kind| DecodeError {
        packet: t,
        protocol,
        kind,
    })
}

impl Connect {
    /// A CONNECT with the given client id and nothing else set: clean start,
    /// keep-alive 60 s.
    pub fn new(protocol: Protocol, client_id: MqttStr) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            properties: ConnectProperties::default(),
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }

    fn decode_rest(p: Protocol, r: &mut Reader) -> Result<Connect, ErrorKind> {
        let flags = r.u8("connect flags")?;
        if flags & flag::RESERVED != 0 {
            return Err(ErrorKind::ReservedConnectFlag);
        }
        let has_will = flags & flag::WILL != 0;
        let will_qos = QoS::from_u8((flags >> flag::WILL_QOS_SHIFT) & 0x03)
            .ok_or(ErrorKind::InvalidQoS { field: "will QoS" })?;
        let will_retain = flags & flag::WILL_RETAIN != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(ErrorKind::WillFlagsWithoutWill);
        }
        let has_username = flags & flag::USERNAME != 0;
        let has_password = flags & flag::PASSWORD != 0;
        // 5.0 lets a password go without a user name; 3.x does not.
        if has_password && !has_username && !p.is_v5() {
            return Err(ErrorKind::PasswordWithoutUsername);
        }
        let keep_alive = r.u16("keep alive")?;
        let properties: ConnectProperties = if p.is_v5() {
            property::decode(r)?
        } else {
            ConnectProperties::default()
        };
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(ErrorKind::AuthenticationDataWithoutMethod);
        }
        let client_id = r.string("client identifier")?;
        let will = if has_will {
            let properties = if p.is_v5() {
                property::decode(r)?
            } else {
                WillProperties::default()
            };
            let topic = r.string("will topic")?;
            topic::validate_topic_name(&topic).map_err(|reason| ErrorKind::TopicName {
                topic: topic.to_string(),
                reason,
            })?;
            let payload = r.binary("will payload")?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string("user name")?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary("password")?)
        } else {
            None
        };
        Ok(Connect {
            protocol: p,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    #[inline]
    pub(super) fn sizes(&self) -> Result<Sizes, EncodeError> {
        let p = self.protocol;
        if self.password.is_some() && self.username.is_none() && !p.is_v5() {
            return Err(EncodeError::NotInVersion {
                packet: "CONNECT with a password and no user name",
                level: p.level(),
            });
        }
        let mut s = Sizes::default();
        let mut n = wire::field_len(p.name().as_bytes(), "protocol name")? + 1 + 1 + 2;
        if p.is_v5() {
            let (len, total) = property::block_len(&self.properties)?;
            s.props = len;
            n += total;
        }
        n += wire::field_len(self.client_id.as_bytes(), "client identifier")?;
        if let Some(w) = &self.will {
            if p.is_v5() {
                let (len, total) = property::block_len(&w.properties)?;
                s.will_props = len;
                n += total;
            }
            n += wire::field_len(w.topic.as_bytes(), "will topic")?;
            n += wire::field_len(&w.payload, "will payload")?;
        }
        if let Some(u) = &self.username {
            n += wire::field_len(u.as_bytes(), "user name")?;
        }
        if let Some(pw) = &self.password {
            n += wire::field_len(pw, "password")?;
        }
        s.remaining = n;
        Ok(s)
    }

    #[inline]
    pub(super) fn put(&self, s: &Sizes, out: &mut Writer<'_>) {
        let p = self.protocol;
        wire::put_field(out, p.name().as_bytes());
        out.put_u8(p.level());
        let mut flags = 0u8;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(w) = &self.will {
            flags |= flag::WILL | (w.qos as u8) << flag::WILL_QOS_SHIFT;
            if w.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        if p.is_v5() {
            property::put(out, &self.properties, s.props);
        }
        wire::put_field(out, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if p.is_v5() {
                property::put(out, &w.properties, s.will_props);
            }
            wire::put_field(out, w.topic.as_bytes());
            wire::put_field(out, &w.payload);
        }
        if let Some(u) = &self.username {
            wire::put_field(out, u.as_bytes());
        }
        if let Some(pw) = &self.password {
            wire::put_field(out, pw);
        }
    }
}

/// A CONNACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// The reason code; before 5.0 it travels as the matching return code
    /// ([`ReasonCode::to_v3_connect_return_code`]).
    pub code: ReasonCode,
    /// 5.0 only.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(super) fn decode(r: &mut Reader, p: Protocol) -> Result<ConnAck, ErrorKind> {
        let flags = r.u8("connect acknowledge flags")?;
        if flags & 0xFE != 0 {
            return Err(ErrorKind::ReservedConnAckFlags(flags));
        }
        let raw = r.u8("reason code")?;
        let (code, properties) = if p.is_v5() {
            let code = ReasonCode::from_u8(raw)
                .filter(|c| c.allowed_in(PacketType::ConnAck))
                .ok_or(ErrorKind::InvalidReasonCode { value: raw })?;
            (code, property::decode(r)?)
        } else {
            let code = ReasonCode::from_v3_connect_return_code(raw)
                .ok_or(ErrorKind::InvalidReturnCode { value: raw })?;
            (code, ConnAckProperties::default())
        };
        let session_present = flags & 1 != 0;
        // [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4])
        if session_present && code != ReasonCode::Success {
            return Err(ErrorKind::SessionPresentWithFailure);
        }
        Ok(ConnAck {
            session_present,
            code,
            properties,
        })
    }

    #[inline]
    pub(super) fn sizes(&self, p: Protocol) -> Result<Sizes, EncodeError> {
        // [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4])
        if self.session_present && self.code != ReasonCode::Success {
            return Err(EncodeError::SessionPresentWithFailure);
        }
        if !p.is_v5() {
            return Ok(Sizes {
                remaining: 2,
                ..Sizes::default()
            });
        }
        check_reason(self.code, PacketType::ConnAck)?;
        let (len, total) = property::block_len(&self.properties)?;
        Ok(Sizes {
            remaining: 2 + total,
            props: len,
            will_props: 0,
        })
    }

    #[inline]
    pub(super) fn put(&self, p: Protocol, s: &Sizes, out: &mut Writer<'_>) {
        out.put_u8(u8::from(self.session_present));
        if p.is_v5() {
            out.put_u8(self.code.as_u8());
            property::put(out, &self.properties, s.props);
        } else {
            out.put_u8(self.code.to_v3_connect_return_code());
        }
    }
}

/// Fails when `code` may not travel in `packet`.
pub(crate) fn check_reason(code: ReasonCode, packet: PacketType) -> Result<(), EncodeError> {
    if code.allowed_in(packet) {
        Ok(())
    } else {
        Err(EncodeError::ReasonCodeNotAllowed {
            code,
            packet: packet.name(),
        })
    }
}
