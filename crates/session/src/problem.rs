//! Reason Strings and User Properties on what the server sends (5.0).
//!
//! They are diagnostics a client may refuse: without Request Problem
//! Information they travel only on PUBLISH, CONNACK and DISCONNECT
//! [MQTT-3.1.2-29], and they are left out of any packet they would push over
//! the client's Maximum Packet Size ([MQTT-3.2.2-19], [MQTT-3.2.2-20],
//! [MQTT-3.4.2-2], [MQTT-3.4.2-3], [MQTT-3.5.2-2], [MQTT-3.5.2-3],
//! [MQTT-3.6.2-2], [MQTT-3.6.2-3], [MQTT-3.7.2-2], [MQTT-3.7.2-3],
//! [MQTT-3.9.2-1], [MQTT-3.9.2-2], [MQTT-3.11.2-1], [MQTT-3.11.2-2],
//! [MQTT-3.14.2-3], [MQTT-3.14.2-4], [MQTT-3.15.2-2], [MQTT-3.15.2-3]).
//! PUBLISH is not touched here: its User Properties belong to the
//! application, and an oversize PUBLISH is dropped whole [MQTT-3.1.2-25].

use strata_codec::{MqttStr, Packet, Protocol};

use crate::session::Session;

/// The longest Reason String the server writes, in bytes.
const MAX_REASON: usize = 256;

/// `why` as a Reason String: `None` when empty, cut at a character boundary
/// when long.
pub(crate) fn reason(why: &str) -> Option<MqttStr> {
    if why.is_empty() {
        return None;
    }
    let mut end = why.len().min(MAX_REASON);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    // U+0000 is not allowed in an MQTT string; a reason never needs it.
    let text: String = why[..end].chars().filter(|&c| c != '\0').collect();
    MqttStr::try_from(text).ok()
}

type UserProperties = Vec<(MqttStr, MqttStr)>;

/// The Reason String and User Properties of a packet that has them, PUBLISH
/// excepted.
fn fields(packet: &mut Packet) -> Option<(&mut Option<MqttStr>, &mut UserProperties)> {
    let pair = match packet {
        Packet::ConnAck(c) => (
            &mut c.properties.reason_string,
            &mut c.properties.user_properties,
        ),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => (
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        Packet::SubAck(a) => (
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        Packet::UnsubAck(a) => (
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        Packet::Disconnect(d) => (
            &mut d.properties.reason_string,
            &mut d.properties.user_properties,
        ),
        Packet::Auth(a) => (
            &mut a.properties.reason_string,
            &mut a.properties.user_properties,
        ),
        _ => return None,
    };
    Some(pair)
}

/// Removes the Reason String and User Properties; says whether there were any.
fn strip(packet: &mut Packet) -> bool {
    match fields(packet) {
        Some((reason, users)) if reason.is_some() || !users.is_empty() => {
            *reason = None;
            users.clear();
            true
        }
        _ => false,
    }
}

/// Applies both rules of the module docs to a 5.0 packet about to be sent
/// to a client that allows `problem_information` and reads packets of at
/// most `max_packet_size` bytes.
pub(crate) fn fit(packet: &mut Packet, problem_information: bool, max_packet_size: u32) {
    let always = matches!(packet, Packet::ConnAck(_) | Packet::Disconnect(_));
    if !problem_information && !always {
        strip(packet);
        return;
    }
    let over = |p: &Packet| {
        p.encoded_len(Protocol::V5)
            .is_ok_and(|n| n > max_packet_size as usize)
    };
    let has = fields(packet).is_some_and(|(r, u)| r.is_some() || !u.is_empty());
    if has && over(packet) {
        strip(packet);
    }
}

impl Session {
    pub(crate) fn fit_problem_information(&self, packet: &mut Packet) {
        fit(
            packet,
            self.problem_information,
            self.client_max_packet_size,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_codec::{
        AckProperties, Auth, AuthProperties, ConnAck, Disconnect, PubResponse, ReasonCode, SubAck,
        UnsubAck,
    };

    fn diagnostics() -> (Option<MqttStr>, UserProperties) {
        let user = (MqttStr::from_static("k"), MqttStr::from_static("v"));
        (reason("a reason of some length"), vec![user])
    }

    /// One packet of every type that carries a Reason String, with one and a
    /// User Property.
    fn every_type() -> Vec<Packet> {
        let (r, u) = diagnostics();
        let ack_props = AckProperties {
            reason_string: r.clone(),
            user_properties: u.clone(),
        };
        let mut ack = PubResponse::new(1);
        ack.reason = ReasonCode::Success;
        ack.properties = ack_props.clone();
        let mut disconnect = Disconnect::new(ReasonCode::ProtocolError);
        disconnect.properties.reason_string = r.clone();
        disconnect.properties.user_properties = u.clone();
        let mut connack = ConnAck {
            session_present: false,
            code: ReasonCode::NotAuthorized,
            properties: Default::default(),
        };
        connack.properties.reason_string = r.clone();
        connack.properties.user_properties = u.clone();
        vec![
            Packet::ConnAck(Box::new(connack)),
            Packet::PubAck(ack.clone()),
            Packet::PubRec(ack.clone()),
            Packet::PubRel(ack.clone()),
            Packet::PubComp(ack),
            Packet::SubAck(SubAck {
                packet_id: 1,
                properties: ack_props.clone(),
                codes: vec![ReasonCode::Success],
            }),
            Packet::UnsubAck(UnsubAck {
                packet_id: 1,
                properties: ack_props,
                codes: vec![ReasonCode::Success],
            }),
            Packet::Disconnect(disconnect),
            Packet::Auth(Box::new(Auth {
                reason: ReasonCode::ContinueAuthentication,
                properties: AuthProperties {
                    authentication_method: Some(MqttStr::from_static("m")),
                    reason_string: r,
                    user_properties: u,
                    ..Default::default()
                },
            })),
        ]
    }

    fn len(p: &Packet) -> usize {
        p.encoded_len(Protocol::V5).unwrap()
    }

    fn has(p: &mut Packet) -> bool {
        fields(p).is_some_and(|(r, u)| r.is_some() || !u.is_empty())
    }

    #[test]
    fn diagnostics_that_would_break_the_size_limit_are_left_out() {
        // [MQTT-3.2.2-19] [MQTT-3.2.2-20] [MQTT-3.4.2-2] [MQTT-3.4.2-3]
        // [MQTT-3.5.2-2] [MQTT-3.5.2-3] [MQTT-3.6.2-2] [MQTT-3.6.2-3]
        // [MQTT-3.7.2-2] [MQTT-3.7.2-3] [MQTT-3.9.2-1] [MQTT-3.9.2-2]
        // [MQTT-3.11.2-1] [MQTT-3.11.2-2] [MQTT-3.14.2-3] [MQTT-3.14.2-4]
        // [MQTT-3.15.2-2] [MQTT-3.15.2-3]
        for original in every_type() {
            let full = len(&original);
            // Exactly at the limit: kept whole.
            let mut p = original.clone();
            fit(&mut p, true, full as u32);
            assert_eq!(p, original, "fits at {full} bytes");
            // One byte less: both diagnostics go, and the rest stays.
            let mut p = original.clone();
            fit(&mut p, true, full as u32 - 1);
            assert!(!has(&mut p), "{p:?}");
            assert!(len(&p) < full);
            let mut expected = original.clone();
            strip(&mut expected);
            assert_eq!(p, expected);
        }
    }

    #[test]
    fn without_problem_information_only_connack_and_disconnect_keep_them() {
        // [MQTT-3.1.2-29]
        for original in every_type() {
            let mut p = original.clone();
            fit(&mut p, false, u32::MAX);
            let kept = matches!(p, Packet::ConnAck(_) | Packet::Disconnect(_));
            assert_eq!(has(&mut p), kept, "{p:?}");
        }
    }

    #[test]
    fn reason_strings_are_bounded_and_valid() {
        assert_eq!(reason(""), None);
        assert_eq!(reason("why").unwrap().as_str(), "why");
        let long = "é".repeat(300); // two bytes each
        let r = reason(&long).unwrap();
        assert!(r.len() <= MAX_REASON && r.len() >= MAX_REASON - 1);
        assert_eq!(reason("a\0b").unwrap().as_str(), "ab");
    }
}
