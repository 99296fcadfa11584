//! One error enum for the wire format, and the one place that turns a decode
//! error into the MQTT 5 reason code a server sends.

use crate::Protocol;
use crate::packet::PacketType;
use crate::reason::ReasonCode;
use crate::string::Utf8Error;
use crate::topic::TopicError;

/// What was wrong with a packet, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {kind}", packet.map_or("packet", PacketType::name))]
pub struct DecodeError {
    /// The packet type, once the fixed header named a valid one.
    pub packet: Option<PacketType>,
    /// For a CONNECT, the protocol level it announced, once that was read:
    /// a server answers a bad CONNECT with a CONNACK of that version.
    pub protocol: Option<Protocol>,
    /// What was wrong.
    pub kind: ErrorKind,
}

impl DecodeError {
    pub(crate) fn new(packet: Option<PacketType>, kind: ErrorKind) -> DecodeError {
        DecodeError {
            packet,
            protocol: None,
            kind,
        }
    }

    /// The reason code a server sends for this error in DISCONNECT (or in
    /// CONNACK when the error is in CONNECT), per section 4.13 and the
    /// individual packet rules.
    pub fn reason_code(&self) -> ReasonCode {
        self.kind.reason_code()
    }
}

/// The error kinds. Each names the field it was found in where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },
    #[error("packet type {0} is reserved")]
    ReservedPacketType(u8),
    #[error("fixed header flags {flags:#06b} are not allowed [MQTT-2.2.2-1]")]
    InvalidFlags { flags: u8 },
    #[error("variable byte integer in {field} is longer than four bytes")]
    VarIntTooLong { field: &'static str },
    #[error("variable byte integer in {field} is not minimally encoded [MQTT-1.5.5-1]")]
    VarIntNotMinimal { field: &'static str },
    #[error("{field} runs past the end of the packet")]
    Truncated { field: &'static str },
    #[error("{count} unexpected bytes after the end of the packet")]
    TrailingBytes { count: usize },
    #[error("{field} is not well-formed UTF-8 [MQTT-1.5.4-1]")]
    InvalidUtf8 { field: &'static str },
    #[error("{field} contains U+0000 [MQTT-1.5.4-2]")]
    NullCharacter { field: &'static str },
    #[error("protocol name {0:?} is not MQTT or MQIsdp [MQTT-3.1.2-1]")]
    InvalidProtocolName(String),
    #[error("protocol level {0} is not supported [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel(u8),
    #[error("protocol name {name:?} does not go with protocol level {level}")]
    ProtocolNameMismatch { name: &'static str, level: u8 },
    #[error("reserved CONNECT flag is set [MQTT-3.1.2-3]")]
    ReservedConnectFlag,
    #[error("will QoS or will retain set without the will flag [MQTT-3.1.2-11]")]
    WillFlagsWithoutWill,
    #[error("password flag set without the user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    #[error("QoS 3 in {field}")]
    InvalidQoS { field: &'static str },
    #[error("DUP flag set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")]
    DupOnQoS0,
    #[error("packet identifier is zero [MQTT-2.2.1-3] [MQTT-2.3.1-1]")]
    ZeroPacketId,
    #[error("reserved CONNACK acknowledge flags {0:#04x} are set [MQTT-3.2.2-1]")]
    ReservedConnAckFlags(u8),
    #[error("{value:#04x} is not a reason code allowed in this packet")]
    InvalidReasonCode { value: u8 },
    #[error("{value:#04x} is not a CONNACK return code")]
    InvalidReturnCode { value: u8 },
    #[error("{value:#04x} is not a SUBACK return code")]
    InvalidSubAckCode { value: u8 },
    #[error("property identifier {id:#04x} does not exist")]
    UnknownProperty { id: u8 },
    #[error("property {id:#04x} is not allowed in this packet")]
    PropertyNotAllowed { id: u8 },
    #[error("property {id:#04x} appears more than once")]
    DuplicateProperty { id: u8 },
    #[error("property {id:#04x} has the invalid value {value}")]
    InvalidPropertyValue { id: u8, value: u32 },
    #[error("invalid topic name {topic:?}: {reason}")]
    TopicName { topic: String, reason: TopicError },
    #[error("invalid topic filter {filter:?}: {reason}")]
    TopicFilter { filter: String, reason: TopicError },
    #[error("{packet} carries no topic filter [MQTT-3.8.3-2] [MQTT-3.10.3-2]")]
    NoTopicFilters { packet: &'static str },
    #[error("reserved subscription option bits are set in {0:#04x} [MQTT-3.8.3-5]")]
    ReservedSubscriptionOptions(u8),
    #[error("retain handling 3 is not defined")]
    InvalidRetainHandling,
    #[error("no local set on a shared subscription [MQTT-3.8.3-4]")]
    NoLocalOnSharedSubscription,
    #[error("zero-length topic name without a topic alias")]
    EmptyTopicWithoutAlias,
    #[error("QoS 3 in subscription options")]
    SubscriptionQoS3,
    #[error("CONNACK with a failure code and Session Present 1 [MQTT-3.2.2-6]")]
    SessionPresentWithFailure,
    #[error("authentication data without an authentication method")]
    AuthenticationDataWithoutMethod,
    #[error("{packet} carries no reason code [MQTT-3.9.3-1]")]
    NoReasonCodes { packet: &'static str },
}

impl ErrorKind {
    /// The reason code for this error: Malformed Packet where the bytes do
    /// not follow the format, Protocol Error where well-formed bytes break a
    /// rule, and the specific codes where the spec names one.
    pub fn reason_code(&self) -> ReasonCode {
        use ErrorKind::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            // [MQTT-3.3.2-8]: a Topic Alias of 0 is Topic Alias invalid.
            InvalidPropertyValue {
                id: crate::property::id::TOPIC_ALIAS,
                ..
            } => ReasonCode::TopicAliasInvalid,
            InvalidProtocolName(_) | UnsupportedProtocolLevel(_) | ProtocolNameMismatch { .. } => {
                ReasonCode::UnsupportedProtocolVersion
            }
            TopicName { .. } => ReasonCode::TopicNameInvalid,
            TopicFilter { .. } => ReasonCode::TopicFilterInvalid,
            DuplicateProperty { .. }
            | InvalidPropertyValue { .. }
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | EmptyTopicWithoutAlias
            // 5.0 (3.8.3, 3.10.3) calls an empty SUBSCRIBE or UNSUBSCRIBE a
            // Protocol Error; 3.1.1 [MQTT-3.8.3-3] a protocol violation.
            | NoTopicFilters { .. }
            // 5.0 section 3.8.3.1; 3.1.1 closes the connection either way.
            | SubscriptionQoS3
            // 5.0 section 3.1.2.11.10
            | AuthenticationDataWithoutMethod
            | SessionPresentWithFailure
            | ZeroPacketId => ReasonCode::ProtocolError,
            ReservedPacketType(_)
            | InvalidFlags { .. }
            | VarIntTooLong { .. }
            | VarIntNotMinimal { .. }
            | Truncated { .. }
            | TrailingBytes { .. }
            | InvalidUtf8 { .. }
            | NullCharacter { .. }
            | ReservedConnectFlag
            | WillFlagsWithoutWill
            | PasswordWithoutUsername
            | InvalidQoS { .. }
            | DupOnQoS0
            | ReservedConnAckFlags(_)
            | InvalidReasonCode { .. }
            | InvalidReturnCode { .. }
            | InvalidSubAckCode { .. }
            | UnknownProperty { .. }
            | PropertyNotAllowed { .. }
            | NoReasonCodes { .. }
            | ReservedSubscriptionOptions(_) => ReasonCode::MalformedPacket,
        }
    }

    pub(crate) fn from_utf8(e: Utf8Error, field: &'static str) -> ErrorKind {
        match e {
            Utf8Error::Invalid => ErrorKind::InvalidUtf8 { field },
            Utf8Error::Null => ErrorKind::NullCharacter { field },
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{packet} does not exist in MQTT protocol level {level}")]
    NotInVersion { packet: &'static str, level: u8 },
    #[error("{field} is {len} bytes; the wire format allows at most 65535")]
    TooLong { field: &'static str, len: usize },
    #[error("packet would be {size} bytes; the wire format allows at most 268435460")]
    PacketTooLarge { size: usize },
    #[error("{field} value {value} does not fit a variable byte integer")]
    VarIntTooLarge { field: &'static str, value: usize },
    #[error("packet identifier is zero [MQTT-2.2.1-3]")]
    ZeroPacketId,
    #[error("reason code {code:?} is not allowed in {packet}")]
    ReasonCodeNotAllowed {
        code: ReasonCode,
        packet: &'static str,
    },
    #[error("{packet} must carry at least one entry")]
    Empty { packet: &'static str },
    #[error("a CONNACK with a failure code must have Session Present 0 [MQTT-3.2.2-6]")]
    SessionPresentWithFailure,
}
