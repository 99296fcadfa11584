//! MQTT 5 properties (section 2.2.2), typed per packet.
//!
//! Each packet has its own property struct holding exactly the properties
//! section 2.2.2.2 allows in it, so a misplaced property cannot be encoded.
//! On decode, a property that exists but is not allowed in the packet is a
//! Malformed Packet, an unknown identifier is a Malformed Packet, and a
//! property repeated where only one is allowed is a Protocol Error. Every
//! packet may carry any number of User Properties, kept in order
//! [MQTT-3.3.2-18]; PUBLISH may carry several Subscription Identifiers.

use bytes::Bytes;

use crate::QoS;
use crate::error::{EncodeError, ErrorKind};
use crate::string::MqttStr;
use crate::wire::{self, Reader, Writer};

/// Property identifiers (section 2.2.2.2).
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

    /// Every identifier section 2.2.2.2 defines.
    pub const ALL: [u8; 27] = [
        0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A,
        0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
    ];
}

/// One property to encode: its identifier and its value in wire form.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prop<'a> {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    VarInt(u8, u32),
    /// A UTF-8 string or Binary Data: both are a two-byte length and bytes.
    Data(u8, &'a [u8]),
    Pair(u8, &'a [u8], &'a [u8]),
}

/// A packet's property set: how to take in one decoded property, and how to
/// list the properties to encode.
pub(crate) trait PropertySet: Default {
    /// Reads the value of property `id` from `r` and stores it.
    fn read(&mut self, id: u8, r: &mut Reader) -> Result<(), ErrorKind>;
    /// Calls `f` for every property present, in declaration order, then the
    /// user properties in their original order.
    fn visit<'a>(&'a self, f: &mut impl FnMut(Prop<'a>));
}

/// Reads a Property Length and the properties it covers.
#[inline]
pub(crate) fn decode<P: PropertySet>(r: &mut Reader) -> Result<P, ErrorKind> {
    let len = r.var_int("property length")? as usize;
    let mut props = P::default();
    if len == 0 {
        return Ok(props);
    }
    let mut r = r.sub(len, "properties")?;
    while !r.is_empty() {
        let raw = r.var_int("property identifier")?;
        let id = u8::try_from(raw).map_err(|_| ErrorKind::UnknownProperty { id: 0xFF })?;
        props.read(id, &mut r)?;
    }
    Ok(props)
}

/// The encoded length of a property set, without its Property Length.
#[inline]
pub(crate) fn encoded_len<P: PropertySet>(p: &P) -> Result<usize, EncodeError> {
    let mut len = 0usize;
    let mut err = None;
    p.visit(&mut |prop| {
        len += match prop {
            Prop::Byte(..) => 2,
            Prop::U16(..) => 3,
            Prop::U32(..) => 5,
            // Subscription Identifiers run from 1 to 268,435,455 (3.8.2.1.2).
            Prop::VarInt(_, 0) => {
                err.get_or_insert(EncodeError::VarIntTooLarge {
                    field: "subscription identifier",
                    value: 0,
                });
                0
            }
            Prop::VarInt(_, v) => {
                match wire::check_var_int(v as usize, "subscription identifier") {
                    Ok(n) => 1 + n,
                    Err(e) => {
                        err.get_or_insert(e);
                        0
                    }
                }
            }
            Prop::Data(_, d) => match wire::field_len(d, "property") {
                Ok(n) => 1 + n,
                Err(e) => {
                    err.get_or_insert(e);
                    0
                }
            },
            Prop::Pair(_, k, v) => {
                match (
                    wire::field_len(k, "user property"),
                    wire::field_len(v, "user property"),
                ) {
                    (Ok(a), Ok(b)) => 1 + a + b,
                    (Err(e), _) | (_, Err(e)) => {
                        err.get_or_insert(e);
                        0
                    }
                }
            }
        };
    });
    match err {
        Some(e) => Err(e),
        None => Ok(len),
    }
}

/// Writes the Property Length `len` (from [`encoded_len`]) and the properties.
#[inline]
pub(crate) fn put<P: PropertySet>(out: &mut Writer<'_>, p: &P, len: usize) {
    wire::put_var_int(out, len);
    if len == 0 {
        return;
    }
    p.visit(&mut |prop| match prop {
        Prop::Byte(id, v) => {
            out.put_u8(id);
            out.put_u8(v);
        }
        Prop::U16(id, v) => {
            out.put_u8(id);
            out.put_u16(v);
        }
        Prop::U32(id, v) => {
            out.put_u8(id);
            out.put_u32(v);
        }
        Prop::VarInt(id, v) => {
            out.put_u8(id);
            wire::put_var_int(out, v as usize);
        }
        Prop::Data(id, d) => {
            out.put_u8(id);
            wire::put_field(out, d);
        }
        Prop::Pair(id, k, v) => {
            out.put_u8(id);
            wire::put_field(out, k);
            wire::put_field(out, v);
        }
    });
}

/// The size of a property block on the wire: Property Length plus content.
#[inline]
pub(crate) fn block_len<P: PropertySet>(p: &P) -> Result<(usize, usize), EncodeError> {
    let len = encoded_len(p)?;
    Ok((len, wire::check_var_int(len, "property length")? + len))
}

fn bad_value(id: u8, value: u32) -> ErrorKind {
    ErrorKind::InvalidPropertyValue { id, value }
}

fn read_flag(r: &mut Reader, id: u8) -> Result<u8, ErrorKind> {
    match r.u8("property")? {
        v @ (0 | 1) => Ok(v),
        v => Err(bad_value(id, v.into())),
    }
}

fn not_here(id: u8) -> ErrorKind {
    if id::ALL.contains(&id) {
        ErrorKind::PropertyNotAllowed { id }
    } else {
        ErrorKind::UnknownProperty { id }
    }
}

// Each kind of property value: its Rust type, how it is read, how it is
// encoded. The kinds with a range check reject the values the spec calls a
// Protocol Error (a flag other than 0 or 1, a zero Receive Maximum or
// Maximum Packet Size, a zero Subscription Identifier, a Maximum QoS of 2).
macro_rules! kind_ty {
    (bool) => {
        bool
    };
    (flag) => {
        u8
    };
    (qos) => {
        QoS
    };
    (u16) => {
        u16
    };
    (u16nz) => {
        u16
    };
    (u32) => {
        u32
    };
    (u32nz) => {
        u32
    };
    (varnz) => {
        u32
    };
    (string) => {
        MqttStr
    };
    (binary) => {
        Bytes
    };
}

macro_rules! kind_read {
    (bool, $r:expr, $id:expr) => {
        read_flag($r, $id).map(|v| v == 1)
    };
    (flag, $r:expr, $id:expr) => {
        read_flag($r, $id)
    };
    (qos, $r:expr, $id:expr) => {
        match $r.u8("property")? {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            v => Err(bad_value($id, v.into())),
        }
    };
    (u16, $r:expr, $id:expr) => {
        $r.u16("property")
    };
    (u16nz, $r:expr, $id:expr) => {
        match $r.u16("property")? {
            0 => Err(bad_value($id, 0)),
            v => Ok(v),
        }
    };
    (u32, $r:expr, $id:expr) => {
        $r.u32("property")
    };
    (u32nz, $r:expr, $id:expr) => {
        match $r.u32("property")? {
            0 => Err(bad_value($id, 0)),
            v => Ok(v),
        }
    };
    (varnz, $r:expr, $id:expr) => {
        match $r.var_int("subscription identifier")? {
            0 => Err(bad_value($id, 0)),
            v => Ok(v),
        }
    };
    (string, $r:expr, $id:expr) => {
        $r.string("property")
    };
    (binary, $r:expr, $id:expr) => {
        $r.binary("property")
    };
}

macro_rules! kind_prop {
    (bool, $id:expr, $v:expr) => {
        Prop::Byte($id, u8::from(*$v))
    };
    (flag, $id:expr, $v:expr) => {
        Prop::Byte($id, *$v)
    };
    (qos, $id:expr, $v:expr) => {
        Prop::Byte($id, *$v as u8)
    };
    (u16, $id:expr, $v:expr) => {
        Prop::U16($id, *$v)
    };
    (u16nz, $id:expr, $v:expr) => {
        Prop::U16($id, *$v)
    };
    (u32, $id:expr, $v:expr) => {
        Prop::U32($id, *$v)
    };
    (u32nz, $id:expr, $v:expr) => {
        Prop::U32($id, *$v)
    };
    (varnz, $id:expr, $v:expr) => {
        Prop::VarInt($id, *$v)
    };
    (string, $id:expr, $v:expr) => {
        Prop::Data($id, $v.as_bytes())
    };
    (binary, $id:expr, $v:expr) => {
        Prop::Data($id, &$v[..])
    };
}

macro_rules! property_set {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident: $id:ident $kind:ident, )*
        }
        $( repeated $(#[$rmeta:meta])* $rfield:ident: $rid:ident, )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<kind_ty!($kind)>, )*
            $( $(#[$rmeta])* pub $rfield: Vec<u32>, )?
            /// User Properties (0x26), in the order they were sent.
            pub user_properties: Vec<(MqttStr, MqttStr)>,
        }

        impl $name {
            /// The set with no property, as a constant.
            pub const EMPTY: $name = $name {
                $( $field: None, )*
                $( $rfield: Vec::new(), )?
                user_properties: Vec::new(),
            };

            /// True when no property is set.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )* $( && self.$rfield.is_empty() )?
                    && self.user_properties.is_empty()
            }
        }

        impl PropertySet for $name {
            fn read(&mut self, pid: u8, r: &mut Reader) -> Result<(), ErrorKind> {
                match pid {
                    $(
                        id::$id => {
                            if self.$field.is_some() {
                                return Err(ErrorKind::DuplicateProperty { id: pid });
                            }
                            self.$field = Some(kind_read!($kind, r, pid)?);
                        }
                    )*
                    $( id::$rid => self.$rfield.push(kind_read!(varnz, r, pid)?), )?
                    id::USER_PROPERTY => {
                        let k = r.string("user property name")?;
                        let v = r.string("user property value")?;
                        self.user_properties.push((k, v));
                    }
                    other => return Err(not_here(other)),
                }
                Ok(())
            }

            fn visit<'a>(&'a self, f: &mut impl FnMut(Prop<'a>)) {
                $( if let Some(v) = &self.$field { f(kind_prop!($kind, id::$id, v)); } )*
                $( for v in &self.$rfield { f(Prop::VarInt(id::$rid, *v)); } )?
                for (k, v) in &self.user_properties {
                    f(Prop::Pair(id::USER_PROPERTY, k.as_bytes(), v.as_bytes()));
                }
            }
        }
    };
}

property_set! {
    /// CONNECT properties (section 3.1.2.11).
    ConnectProperties {
        session_expiry_interval: SESSION_EXPIRY_INTERVAL u32,
        receive_maximum: RECEIVE_MAXIMUM u16nz,
        maximum_packet_size: MAXIMUM_PACKET_SIZE u32nz,
        topic_alias_maximum: TOPIC_ALIAS_MAXIMUM u16,
        request_response_information: REQUEST_RESPONSE_INFORMATION bool,
        request_problem_information: REQUEST_PROBLEM_INFORMATION bool,
        authentication_method: AUTHENTICATION_METHOD string,
        authentication_data: AUTHENTICATION_DATA binary,
    }
}

property_set! {
    /// Will properties in the CONNECT payload (section 3.1.3.2).
    WillProperties {
        payload_format_indicator: PAYLOAD_FORMAT_INDICATOR flag,
        message_expiry_interval: MESSAGE_EXPIRY_INTERVAL u32,
        content_type: CONTENT_TYPE string,
        response_topic: RESPONSE_TOPIC string,
        correlation_data: CORRELATION_DATA binary,
        will_delay_interval: WILL_DELAY_INTERVAL u32,
    }
}

property_set! {
    /// CONNACK properties (section 3.2.2.3).
    ConnAckProperties {
        session_expiry_interval: SESSION_EXPIRY_INTERVAL u32,
        assigned_client_identifier: ASSIGNED_CLIENT_IDENTIFIER string,
        server_keep_alive: SERVER_KEEP_ALIVE u16,
        authentication_method: AUTHENTICATION_METHOD string,
        authentication_data: AUTHENTICATION_DATA binary,
        response_information: RESPONSE_INFORMATION string,
        server_reference: SERVER_REFERENCE string,
        reason_string: REASON_STRING string,
        receive_maximum: RECEIVE_MAXIMUM u16nz,
        topic_alias_maximum: TOPIC_ALIAS_MAXIMUM u16,
        maximum_qos: MAXIMUM_QOS qos,
        retain_available: RETAIN_AVAILABLE bool,
        maximum_packet_size: MAXIMUM_PACKET_SIZE u32nz,
        wildcard_subscription_available: WILDCARD_SUBSCRIPTION_AVAILABLE bool,
        subscription_identifiers_available: SUBSCRIPTION_IDENTIFIER_AVAILABLE bool,
        shared_subscription_available: SHARED_SUBSCRIPTION_AVAILABLE bool,
    }
}

property_set! {
    /// PUBLISH properties (section 3.3.2.3).
    PublishProperties {
        payload_format_indicator: PAYLOAD_FORMAT_INDICATOR flag,
        message_expiry_interval: MESSAGE_EXPIRY_INTERVAL u32,
        content_type: CONTENT_TYPE string,
        response_topic: RESPONSE_TOPIC string,
        correlation_data: CORRELATION_DATA binary,
        topic_alias: TOPIC_ALIAS u16nz,
    }
    repeated
    /// Subscription Identifiers (0x0B) of the matching subscriptions; only a
    /// server sends these [MQTT-3.3.4-6].
    subscription_identifiers: SUBSCRIPTION_IDENTIFIER,
}

property_set! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK
    /// (sections 3.4.2.2, 3.5.2.2, 3.6.2.2, 3.7.2.2, 3.9.2.1, 3.11.2.1).
    AckProperties {
        reason_string: REASON_STRING string,
    }
}

property_set! {
    /// SUBSCRIBE properties (section 3.8.2.1).
    SubscribeProperties {
        subscription_identifier: SUBSCRIPTION_IDENTIFIER varnz,
    }
}

property_set! {
    /// UNSUBSCRIBE properties (section 3.10.2.1): user properties only.
    UnsubscribeProperties {}
}

property_set! {
    /// DISCONNECT properties (section 3.14.2.2).
    DisconnectProperties {
        session_expiry_interval: SESSION_EXPIRY_INTERVAL u32,
        server_reference: SERVER_REFERENCE string,
        reason_string: REASON_STRING string,
    }
}

property_set! {
    /// AUTH properties (section 3.15.2.2).
    AuthProperties {
        authentication_method: AUTHENTICATION_METHOD string,
        authentication_data: AUTHENTICATION_DATA binary,
        reason_string: REASON_STRING string,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_bytes<P: PropertySet>(bytes: &'static [u8]) -> Result<P, ErrorKind> {
        decode(&mut Reader::new(Bytes::from_static(bytes)))
    }

    #[test]
    fn user_properties_keep_order_and_repeat() {
        let p: AckProperties = decode_bytes(&[
            14, 0x26, 0, 1, b'a', 0, 1, b'1', 0x26, 0, 1, b'a', 0, 1, b'2',
        ])
        .unwrap();
        assert_eq!(p.user_properties.len(), 2);
        assert_eq!(p.user_properties[0].1, "1");
        assert_eq!(p.user_properties[1].1, "2");
    }

    #[test]
    fn duplicate_is_protocol_error() {
        let e = decode_bytes::<DisconnectProperties>(&[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]);
        assert_eq!(e, Err(ErrorKind::DuplicateProperty { id: 0x11 }));
    }

    #[test]
    fn misplaced_and_unknown_are_malformed() {
        // Topic Alias in SUBSCRIBE.
        let e = decode_bytes::<SubscribeProperties>(&[3, 0x23, 0, 1]);
        assert_eq!(e, Err(ErrorKind::PropertyNotAllowed { id: 0x23 }));
        let e = decode_bytes::<SubscribeProperties>(&[2, 0x04, 0]);
        assert_eq!(e, Err(ErrorKind::UnknownProperty { id: 0x04 }));
    }

    #[test]
    fn range_checks() {
        assert_eq!(
            decode_bytes::<ConnectProperties>(&[3, 0x21, 0, 0]),
            Err(ErrorKind::InvalidPropertyValue { id: 0x21, value: 0 })
        );
        assert_eq!(
            decode_bytes::<ConnectProperties>(&[2, 0x17, 2]),
            Err(ErrorKind::InvalidPropertyValue { id: 0x17, value: 2 })
        );
        assert_eq!(
            decode_bytes::<ConnAckProperties>(&[2, 0x24, 2]),
            Err(ErrorKind::InvalidPropertyValue { id: 0x24, value: 2 })
        );
        assert_eq!(
            decode_bytes::<SubscribeProperties>(&[2, 0x0B, 0]),
            Err(ErrorKind::InvalidPropertyValue { id: 0x0B, value: 0 })
        );
    }

    #[test]
    fn property_length_past_the_end_is_truncated() {
        assert_eq!(
            decode_bytes::<AckProperties>(&[5, 0x1F, 0]),
            Err(ErrorKind::Truncated {
                field: "properties"
            })
        );
        // A string that runs past the Property Length.
        assert_eq!(
            decode_bytes::<AckProperties>(&[3, 0x1F, 0, 5, b'a', b'b']),
            Err(ErrorKind::Truncated { field: "property" })
        );
    }

    #[test]
    fn publish_subscription_identifiers_repeat() {
        let p: PublishProperties = decode_bytes(&[5, 0x0B, 1, 0x0B, 0x80, 0x01]).unwrap();
        assert_eq!(p.subscription_identifiers, vec![1, 128]);
        let (len, total) = block_len(&p).unwrap();
        assert_eq!((len, total), (5, 6));
        let mut buf = [0u8; 6];
        put(&mut Writer::new(&mut buf), &p, len);
        assert_eq!(buf, [5, 0x0B, 1, 0x0B, 0x80, 0x01]);
    }
}

/// PUBLISH properties as a PUBLISH or a routed message carries them: no
/// allocation when there are none (most messages), one shared allocation
/// otherwise. This keeps `Publish` small, so decoding moves less, and a
/// delivery to each of many subscribers clones a pointer instead of a
/// 160-byte struct with its strings.
///
/// Reading goes through `Deref` (an empty set reads as
/// [`PublishProperties::EMPTY`]); writing through `DerefMut` allocates on
/// first use and copies a shared set (copy on write), so callers on hot
/// paths test before they write.
#[derive(Clone, Default)]
pub struct PublishProps(Option<std::sync::Arc<PublishProperties>>);

impl PublishProps {
    /// No properties.
    pub const fn new() -> PublishProps {
        PublishProps(None)
    }

    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.is_empty())
    }
}

static EMPTY_PUBLISH_PROPERTIES: PublishProperties = PublishProperties::EMPTY;

impl std::ops::Deref for PublishProps {
    type Target = PublishProperties;
    fn deref(&self) -> &PublishProperties {
        self.0.as_deref().unwrap_or(&EMPTY_PUBLISH_PROPERTIES)
    }
}

impl std::ops::DerefMut for PublishProps {
    fn deref_mut(&mut self) -> &mut PublishProperties {
        std::sync::Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }
}

impl From<PublishProperties> for PublishProps {
    fn from(p: PublishProperties) -> PublishProps {
        if p.is_empty() {
            PublishProps(None)
        } else {
            PublishProps(Some(std::sync::Arc::new(p)))
        }
    }
}

impl PartialEq for PublishProps {
    fn eq(&self, other: &PublishProps) -> bool {
        **self == **other
    }
}

impl Eq for PublishProps {}

impl std::fmt::Debug for PublishProps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}
