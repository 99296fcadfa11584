//! The auth seam, driven by a challenge-response authenticator and a
//! rule-based authorizer written for these tests, over raw packets: CONNACK
//! refusal, SUBACK and PUBACK 0x87, a delivery filtered, the MQTT 5 AUTH
//! exchange at CONNECT and re-authentication [MQTT-4.12.0-1 .. 4.12.1-2].

use std::sync::Arc;

use bytes::Bytes;
use packets::*;
use strata_broker::BrokerConfig;
use strata_broker::auth::{
    AuthDecision, AuthExchange, AuthFuture, Authenticator, Authorizer, ConnectInfo, Identity,
};
use strata_testkit::raw::{self, field, packet, var_int};
use strata_testkit::{RawClient, RawPacket, Read, TestBroker};

/// Packet building the testkit lacks: 5.0 CONNECT with properties, user
/// name and password, and AUTH.
mod packets {
    use super::*;

    pub const METHOD: &str = "test-challenge";

    /// Properties: Authentication Method (0x15) and Data (0x16).
    pub fn auth_props(method: &str, data: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![0x15];
        p.extend(field(method.as_bytes()));
        if let Some(d) = data {
            p.push(0x16);
            p.extend(field(d));
        }
        let mut out = var_int(p.len());
        out.extend(p);
        out
    }

    /// A 5.0 clean CONNECT with these properties and, if given, a user
    /// name and password.
    pub fn connect_v5(client_id: &str, props: &[u8], login: Option<(&str, &str)>) -> Vec<u8> {
        let mut body = field(b"MQTT");
        body.push(5);
        body.push(0x02 | if login.is_some() { 0xC0 } else { 0 });
        body.extend_from_slice(&60u16.to_be_bytes());
        body.extend_from_slice(props);
        body.extend(field(client_id.as_bytes()));
        if let Some((user, password)) = login {
            body.extend(field(user.as_bytes()));
            body.extend(field(password.as_bytes()));
        }
        packet(0x10, &body)
    }

    pub fn auth(reason: u8, data: &[u8]) -> Vec<u8> {
        let mut body = vec![reason];
        body.extend(auth_props(METHOD, Some(data)));
        packet(0xF0, &body)
    }

    /// The value of property `id` (a two-byte-length field) in a property
    /// block starting at `at`.
    pub fn property(body: &[u8], mut at: usize, id: u8) -> Option<Vec<u8>> {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = body[at];
            at += 1;
            len |= usize::from(b & 0x7F) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = at + len;
        while at < end {
            let pid = body[at];
            let n = usize::from(u16::from_be_bytes([body[at + 1], body[at + 2]]));
            let value = body[at + 3..at + 3 + n].to_vec();
            if pid == id {
                return Some(value);
            }
            at += 3 + n;
        }
        None
    }
}

/// Users: alice/secret and bob/hunter2 by password; by the test method,
/// whoever answers the challenge with it reversed. A re-authentication
/// repeats the challenge; an answer of "wrong" fails it. User `continue`
/// is asked for an exchange it did not offer; user `slow` is never
/// answered.
#[derive(Debug)]
struct TestAuthenticator;

#[derive(Debug)]
struct Challenge {
    nonce: &'static [u8],
}

impl AuthExchange for Challenge {
    fn step<'a>(&'a mut self, data: Option<&'a [u8]>) -> AuthFuture<'a> {
        let expected: Vec<u8> = self.nonce.iter().rev().copied().collect();
        let ok = data == Some(&expected[..]);
        Box::pin(async move {
            if ok {
                AuthDecision::Allow {
                    identity: Identity::user(Some(Arc::from("challenged")), None),
                    data: Some(Bytes::from_static(b"welcome")),
                }
            } else {
                AuthDecision::Deny(strata_codec::ReasonCode::NotAuthorized)
            }
        })
    }
}

impl Authenticator for TestAuthenticator {
    fn enhanced(&self) -> bool {
        true
    }

    fn connect<'a>(&'a self, c: ConnectInfo<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            if let Some(method) = c.method {
                if method != METHOD {
                    return AuthDecision::Deny(strata_codec::ReasonCode::BadAuthenticationMethod);
                }
                return AuthDecision::Continue {
                    data: Some(Bytes::from_static(b"nonce-1")),
                    exchange: Box::new(Challenge { nonce: b"nonce-1" }),
                };
            }
            match c.username {
                // Asks for an exchange the client did not offer.
                Some("continue") => {
                    return AuthDecision::Continue {
                        data: None,
                        exchange: Box::new(Challenge { nonce: b"x" }),
                    };
                }
                // Never decides.
                Some("slow") => std::future::pending::<()>().await,
                _ => {}
            }
            let ok = matches!(
                (c.username, c.password),
                (Some("alice"), Some(b"secret")) | (Some("bob"), Some(b"hunter2"))
            );
            if ok {
                AuthDecision::Allow {
                    identity: Identity::user(c.username.map(Arc::from), None),
                    data: None,
                }
            } else {
                AuthDecision::Deny(strata_codec::ReasonCode::BadUserNameOrPassword)
            }
        })
    }

    fn reauthenticate<'a>(
        &'a self,
        _: &'a Identity,
        _: &'a str,
        _: Option<&'a [u8]>,
    ) -> AuthFuture<'a> {
        Box::pin(async {
            AuthDecision::Continue {
                data: Some(Bytes::from_static(b"nonce-2")),
                exchange: Box::new(Challenge { nonce: b"nonce-2" }),
            }
        })
    }
}

/// bob may not publish under `secret/` (nor leave a will there); nobody
/// may subscribe to `private/...`; nobody receives `sensors/hidden/...`.
#[derive(Debug)]
struct TestAuthorizer;

impl Authorizer for TestAuthorizer {
    fn publish(&self, who: &Identity, topic: &str, _: strata_codec::QoS, _: bool) -> bool {
        !(who.username.as_deref() == Some("bob") && topic.starts_with("secret/"))
    }

    fn subscribe(&self, _: &Identity, filter: &str, _: strata_codec::QoS) -> bool {
        !filter.starts_with("private/")
    }

    fn checks_deliveries(&self) -> bool {
        true
    }

    fn deliver(&self, _: &Identity, topic: &str) -> bool {
        !topic.starts_with("sensors/hidden/")
    }
}

async fn broker() -> TestBroker {
    TestBroker::start(BrokerConfig {
        sys_interval: None,
        authenticator: Some(Arc::new(TestAuthenticator)),
        authorizer: Some(Arc::new(TestAuthorizer)),
        ..BrokerConfig::default()
    })
    .await
}

/// A 5.0 client logged in with a password; the CONNACK's reason code.
async fn login(b: &TestBroker, id: &str, user: &str, password: &str) -> (RawClient, u8) {
    let mut c = b.client().await;
    c.send(&connect_v5(id, &[0], Some((user, password)))).await;
    let ack = c.expect(2).await;
    (c, ack.body[1])
}

async fn next(c: &mut RawClient) -> RawPacket {
    match c.read().await {
        Read::Packet(p) => p,
        Read::Closed => panic!("closed"),
    }
}

#[tokio::test]
async fn a_refused_connect_gets_connack_with_the_code_and_is_closed() {
    let b = broker().await;
    let (mut c, code) = login(&b, "x", "alice", "nope").await;
    assert_eq!(code, 0x86, "5.0: Bad User Name or Password");
    assert_eq!(c.read().await, Read::Closed);
    // 3.1.1: return code 4 [MQTT-3.2.2-5].
    let mut c = b.client().await;
    let mut extra = field(b"alice");
    extra.extend(field(b"nope"));
    c.send(&raw::connect(4, 0xC2, 60, "y", &extra)).await;
    let ack = c.expect(2).await;
    assert_eq!(ack.body[1], 4);
    assert_eq!(c.read().await, Read::Closed);
    let (_, code) = login(&b, "z", "alice", "secret").await;
    assert_eq!(code, 0, "the right password connects");
}

#[tokio::test]
async fn a_denied_filter_gets_0x87_in_the_suback_and_no_subscription() {
    let b = broker().await;
    let (mut c, _) = login(&b, "s", "alice", "secret").await;
    c.send(&raw::subscribe(5, 1, "private/x", 1)).await;
    let ack = c.expect(9).await;
    assert_eq!(ack.body[3..], [0x87], "SUBACK: Not authorized");
    c.send(&raw::subscribe(5, 2, "public/x", 1)).await;
    assert_eq!(c.expect(9).await.body[3..], [0x01]);
    // Nothing arrives on the denied filter, what follows on the granted one
    // does.
    let (mut p, _) = login(&b, "p", "alice", "secret").await;
    p.send(&raw::publish_qos0(5, "private/x", b"no")).await;
    p.send(&raw::publish_qos0(5, "public/x", b"yes")).await;
    let got = c.expect(3).await;
    assert!(got.body.ends_with(b"yes"), "{got:?}");
}

#[tokio::test]
async fn a_denied_publish_is_answered_0x87_and_routed_nowhere() {
    let b = broker().await;
    let (mut sub, _) = login(&b, "s", "alice", "secret").await;
    sub.send(&raw::subscribe(5, 1, "secret/#", 1)).await;
    sub.expect(9).await;
    let (mut bob, _) = login(&b, "bob", "bob", "hunter2").await;
    bob.send(&raw::publish(5, 1, false, "secret/plans", 7, b"leak"))
        .await;
    let ack = bob.expect(4).await;
    assert_eq!(ack.ack_id(), 7);
    assert_eq!(ack.body[2], 0x87, "PUBACK: Not authorized");
    // alice may publish there; hers is the first message the subscriber sees.
    let (mut alice, _) = login(&b, "a", "alice", "secret").await;
    alice
        .send(&raw::publish(5, 1, false, "secret/plans", 8, b"ok"))
        .await;
    let ack = alice.expect(4).await;
    assert!(
        ack.body.len() == 2 || ack.body[2] == 0,
        "alice's PUBACK: {ack:?}"
    );
    let got = sub.expect(3).await;
    assert!(got.body.ends_with(b"ok"), "{got:?}");
}

#[tokio::test]
async fn a_wildcard_delivery_the_authorizer_denies_is_filtered() {
    let b = broker().await;
    let (mut sub, _) = login(&b, "s", "alice", "secret").await;
    sub.send(&raw::subscribe(5, 1, "sensors/#", 0)).await;
    sub.expect(9).await;
    let (mut p, _) = login(&b, "p", "alice", "secret").await;
    p.send(&raw::publish_qos0(5, "sensors/hidden/a", b"hidden"))
        .await;
    p.send(&raw::publish_qos0(5, "sensors/open/a", b"open"))
        .await;
    let got = sub.expect(3).await;
    assert!(
        got.body.ends_with(b"open"),
        "the hidden one came first: {got:?}"
    );
    // Retained messages on subscribing go through the same check.
    p.send(&raw::publish(5, 1, true, "sensors/hidden/r", 1, b"kept"))
        .await;
    p.expect(4).await;
    p.send(&raw::publish(5, 1, true, "sensors/open/r", 2, b"kept-open"))
        .await;
    p.expect(4).await;
    let (mut late, _) = login(&b, "late", "alice", "secret").await;
    late.send(&raw::subscribe(5, 1, "sensors/#", 0)).await;
    late.expect(9).await;
    let got = late.expect(3).await;
    assert!(got.body.ends_with(b"kept-open"), "{got:?}");
    late.send(&raw::PINGREQ).await;
    let after = next(&mut late).await;
    assert_eq!(
        after.packet_type(),
        13,
        "no other retained message: {after:?}"
    );
}

#[tokio::test]
async fn an_auth_exchange_at_connect_ends_in_connack_with_method_and_data() {
    let b = broker().await;
    let mut c = b.client().await;
    c.send(&connect_v5("cr", &auth_props(METHOD, Some(b"hello")), None))
        .await;
    // AUTH 0x18 with the method and the challenge [MQTT-4.12.0-2] [MQTT-4.12.0-5].
    let challenge = c.expect(15).await;
    assert_eq!(challenge.body[0], 0x18);
    assert_eq!(
        property(&challenge.body, 1, 0x15).as_deref(),
        Some(METHOD.as_bytes())
    );
    assert_eq!(
        property(&challenge.body, 1, 0x16).as_deref(),
        Some(&b"nonce-1"[..])
    );
    c.send(&auth(0x18, b"1-ecnon")).await;
    let ack = c.expect(2).await;
    assert_eq!(ack.body[1], 0, "CONNACK success");
    assert_eq!(
        property(&ack.body, 2, 0x15).as_deref(),
        Some(METHOD.as_bytes())
    );
    assert_eq!(
        property(&ack.body, 2, 0x16).as_deref(),
        Some(&b"welcome"[..])
    );
    // A wrong answer is refused with the authenticator's code.
    let mut c = b.client().await;
    c.send(&connect_v5("cr2", &auth_props(METHOD, None), None))
        .await;
    c.expect(15).await;
    c.send(&auth(0x18, b"wrong")).await;
    let ack = c.expect(2).await;
    assert_eq!(ack.body[1], 0x87);
    assert_eq!(c.read().await, Read::Closed);
    // A method the authenticator does not know [MQTT-4.12.0-1].
    let mut c = b.client().await;
    c.send(&connect_v5("cr3", &auth_props("other", None), None))
        .await;
    let ack = c.expect(2).await;
    assert_eq!(ack.body[1], 0x8C);
    assert_eq!(c.read().await, Read::Closed);
}

#[tokio::test]
async fn reauthentication_succeeds_with_auth_success_and_fails_with_disconnect() {
    let b = broker().await;
    let mut c = b.client().await;
    c.send(&connect_v5("re", &auth_props(METHOD, None), None))
        .await;
    c.expect(15).await;
    c.send(&auth(0x18, b"1-ecnon")).await;
    assert_eq!(c.expect(2).await.body[1], 0);
    // AUTH 0x19 with the same method [MQTT-4.12.1-1]: a new challenge.
    c.send(&auth(0x19, b"again")).await;
    let challenge = c.expect(15).await;
    assert_eq!(challenge.body[0], 0x18);
    assert_eq!(
        property(&challenge.body, 1, 0x16).as_deref(),
        Some(&b"nonce-2"[..])
    );
    // Other packets flow meanwhile.
    c.send(&raw::PINGREQ).await;
    assert_eq!(next(&mut c).await.packet_type(), 13);
    c.send(&auth(0x18, b"2-ecnon")).await;
    let ok = c.expect(15).await;
    assert_eq!(ok.body[0], 0x00, "AUTH success");
    assert_eq!(
        property(&ok.body, 1, 0x15).as_deref(),
        Some(METHOD.as_bytes())
    );
    // A failed re-authentication: DISCONNECT with the code, then close
    // [MQTT-4.12.1-2].
    c.send(&auth(0x19, b"again")).await;
    c.expect(15).await;
    c.send(&auth(0x18, b"wrong")).await;
    let d = c.expect(14).await;
    assert_eq!(d.body[0], 0x87, "DISCONNECT: Not authorized");
    assert_eq!(c.read().await, Read::Closed);
}

#[tokio::test]
async fn a_will_the_authorizer_denies_refuses_the_connect() {
    let b = broker().await;
    let mut c = b.client().await;
    // 5.0, user bob, a will on secret/x: empty will properties, topic,
    // payload, then user name and password.
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[5, 0xC6, 0, 60, 0]);
    body.extend(field(b"w"));
    body.push(0);
    body.extend(field(b"secret/x"));
    body.extend(field(b"gone"));
    body.extend(field(b"bob"));
    body.extend(field(b"hunter2"));
    c.send(&packet(0x10, &body)).await;
    assert_eq!(c.expect(2).await.body[1], 0x87);
    assert_eq!(c.read().await, Read::Closed);
}

#[tokio::test]
async fn an_exchange_for_a_connect_without_a_method_is_refused() {
    // [MQTT-4.12.0-6]: no AUTH to a client that offered no method.
    let b = broker().await;
    let (mut c, code) = login(&b, "c", "continue", "x").await;
    assert_eq!(code, 0x87);
    assert_eq!(c.read().await, Read::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_authenticator_that_does_not_decide_refuses_with_server_busy() {
    let b = broker().await;
    let started = tokio::time::Instant::now();
    let mut c = b.client().await;
    c.send(&connect_v5("s", &[0], Some(("slow", "x")))).await;
    let Read::Packet(ack) = c.read_within(std::time::Duration::from_secs(60)).await else {
        panic!("closed without CONNACK");
    };
    assert_eq!((ack.packet_type(), ack.body[1]), (2, 0x89));
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(4), "{waited:?}");
    // The broker goes on.
    let (_, code) = login(&b, "a", "alice", "secret").await;
    assert_eq!(code, 0);
}
