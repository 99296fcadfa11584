//! Every MQTT 5 reason code (section 2.4), which packets may carry each, and
//! the mapping to the return codes of 3.1 and 3.1.1.

use crate::packet::PacketType;

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// An MQTT 5 reason code. Value 0x00 is named `Success` here; the
        /// spec also calls it Normal disconnection and Granted QoS 0.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(u8)]
        pub enum ReasonCode {
            $($(#[$doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// The reason code for a byte, if the byte is one.
            pub fn from_u8(v: u8) -> Option<ReasonCode> {
                match v {
                    $($value => Some(ReasonCode::$name),)*
                    _ => None,
                }
            }

            /// Every reason code, in numeric order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$name,)*];
        }
    };
}

reason_codes! {
    /// Success, Normal disconnection, Granted QoS 0.
    #[default]
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl ReasonCode {
    /// The byte on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Values of 0x80 and above report failure (section 2.4).
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether an MQTT 5 packet of type `packet` may carry this reason code
    /// (the tables of sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1,
    /// 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1).
    pub fn allowed_in(self, packet: PacketType) -> bool {
        use ReasonCode::*;
        let v = self.as_u8();
        match packet {
            PacketType::ConnAck => matches!(
                self,
                Success
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | UnsupportedProtocolVersion
                    | ClientIdentifierNotValid
                    | BadUserNameOrPassword
                    | NotAuthorized
                    | ServerUnavailable
                    | ServerBusy
                    | Banned
                    | BadAuthenticationMethod
                    | TopicNameInvalid
                    | PacketTooLarge
                    | QuotaExceeded
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QoSNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | ConnectionRateExceeded
            ),
            PacketType::PubAck | PacketType::PubRec => matches!(
                self,
                Success
                    | NoMatchingSubscribers
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicNameInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | PayloadFormatInvalid
            ),
            PacketType::PubRel | PacketType::PubComp => {
                matches!(self, Success | PacketIdentifierNotFound)
            }
            PacketType::SubAck => matches!(
                self,
                Success
                    | GrantedQoS1
                    | GrantedQoS2
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | SharedSubscriptionsNotSupported
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            PacketType::UnsubAck => matches!(
                self,
                Success
                    | NoSubscriptionExisted
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
            ),
            PacketType::Disconnect => {
                matches!(self, Success | DisconnectWithWillMessage)
                    || (v >= 0x80
                        && !matches!(
                            self,
                            UnsupportedProtocolVersion
                                | ClientIdentifierNotValid
                                | BadUserNameOrPassword
                                | ServerUnavailable
                                | Banned
                                | BadAuthenticationMethod
                                | PacketIdentifierInUse
                                | PacketIdentifierNotFound
                        ))
            }
            PacketType::Auth => matches!(self, Success | ContinueAuthentication | ReAuthenticate),
            _ => false,
        }
    }

    /// The CONNACK return code of 3.1 / 3.1.1 (section 3.2.2.3 of 3.1.1) that
    /// carries the meaning of this reason code.
    pub fn to_v3_connect_return_code(self) -> u8 {
        use ReasonCode::*;
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword => 4,
            NotAuthorized | Banned | BadAuthenticationMethod => 5,
            _ => 3,
        }
    }

    /// The reason code for a 3.1 / 3.1.1 CONNACK return code.
    pub fn from_v3_connect_return_code(v: u8) -> Option<ReasonCode> {
        Some(match v {
            0 => ReasonCode::Success,
            1 => ReasonCode::UnsupportedProtocolVersion,
            2 => ReasonCode::ClientIdentifierNotValid,
            3 => ReasonCode::ServerUnavailable,
            4 => ReasonCode::BadUserNameOrPassword,
            5 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_values_round_trip() {
        for &rc in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_u8(rc.as_u8()), Some(rc));
        }
        assert_eq!(ReasonCode::ALL.len(), 43);
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xA3), None);
    }

    #[test]
    fn placement_follows_the_tables() {
        use ReasonCode::*;
        assert!(NoMatchingSubscribers.allowed_in(PacketType::PubAck));
        assert!(!NoMatchingSubscribers.allowed_in(PacketType::PubRel));
        assert!(PacketIdentifierNotFound.allowed_in(PacketType::PubComp));
        assert!(!PacketIdentifierNotFound.allowed_in(PacketType::Disconnect));
        assert!(SessionTakenOver.allowed_in(PacketType::Disconnect));
        assert!(!SessionTakenOver.allowed_in(PacketType::ConnAck));
        assert!(ReAuthenticate.allowed_in(PacketType::Auth));
        assert!(!GrantedQoS1.allowed_in(PacketType::UnsubAck));
        assert!(!Success.allowed_in(PacketType::Publish));
        // The DISCONNECT table of section 3.14.2.1 lists 29 codes.
        let n = ReasonCode::ALL
            .iter()
            .filter(|rc| rc.allowed_in(PacketType::Disconnect))
            .count();
        assert_eq!(n, 29);
        let n = ReasonCode::ALL
            .iter()
            .filter(|rc| rc.allowed_in(PacketType::ConnAck))
            .count();
        assert_eq!(n, 22);
    }

    #[test]
    fn v3_return_codes() {
        for v in 0..=5 {
            let rc = ReasonCode::from_v3_connect_return_code(v).unwrap();
            assert_eq!(rc.to_v3_connect_return_code(), v);
        }
        assert_eq!(ReasonCode::from_v3_connect_return_code(6), None);
    }
}
