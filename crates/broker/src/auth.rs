//! The auth seam: an [`Authenticator`] decides who may connect (CONNECT,
//! the MQTT 5 AUTH exchange, re-authentication), an [`Authorizer`] what a
//! connected client may publish, subscribe to and receive. The broker calls
//! each in one place (`connection/attach.rs` and `connection/auth.rs` for
//! the first, `connection/events.rs` and `routing.rs` for the second); the
//! default allows everything.
//!
//! Authentication is asynchronous (a method may hash a password or ask
//! another service); authorization is synchronous and on the hot path, so
//! an authorizer answers from what it holds in memory.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use strata_codec::{MqttStr, Protocol, QoS, ReasonCode};

/// What an [`Authenticator`] returns, later.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthDecision> + Send + 'a>>;

/// What an authenticator knows of a client at CONNECT.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectInfo<'a> {
    /// As the client sent it: empty when the server assigns one.
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// The client's address, where the transport knows it.
    pub peer: Option<SocketAddr>,
    /// The listener it came in on, as an index into
    /// [`crate::BrokerConfig::listeners`]; `None` for an in-process
    /// connection ([`crate::Handle::serve`]).
    pub listener: Option<usize>,
    /// The identity of a verified client certificate (mutual TLS).
    pub certificate: Option<&'a str>,
    /// The listener makes that identity the username
    /// (`use_identity_as_username`): `username` is it, proven by the
    /// certificate.
    pub username_is_certificate: bool,
    pub protocol: Protocol,
    /// MQTT 5 enhanced authentication: the Authentication Method and Data.
    pub method: Option<&'a str>,
    pub data: Option<&'a [u8]>,
}

/// Who a connection is, once authenticated: what the [`Authorizer`] is
/// asked about.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Identity {
    /// The client id the session runs under (assigned, if the client sent
    /// none).
    pub client_id: MqttStr,
    /// The authenticated user name, if any.
    pub username: Option<Arc<str>>,
    pub peer: Option<SocketAddr>,
    pub certificate: Option<Arc<str>>,
    /// What the authenticator wants its authorizer to have (the claims of a
    /// token, say).
    pub grants: Option<Arc<dyn Any + Send + Sync>>,
    /// When the credentials run out (a token's `exp`): the connection then
    /// ends, 0x87 Not authorized (3.1.1: closed), unless it
    /// re-authenticated meanwhile.
    pub valid_until: Option<std::time::SystemTime>,
}

impl Identity {
    /// An identity with this user name and grants; the broker fills in
    /// the client id and the peer address (and, once a transport verifies
    /// client certificates, the certificate).
    pub fn user(
        username: Option<Arc<str>>,
        grants: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Identity {
        Identity {
            username,
            grants,
            ..Identity::default()
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("peer", &self.peer)
            .field("certificate", &self.certificate)
            .field("grants", &self.grants.is_some())
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

/// An authenticator's answer.
#[derive(Debug)]
pub enum AuthDecision {
    /// Connected (or re-authenticated) as `identity`; `data` goes back as
    /// Authentication Data in the CONNACK or AUTH success.
    Allow {
        identity: Identity,
        data: Option<Bytes>,
    },
    /// Enhanced authentication goes on: AUTH 0x18 with `data`, and the
    /// client's answer goes to `exchange`.
    Continue {
        data: Option<Bytes>,
        exchange: Box<dyn AuthExchange>,
    },
    /// Refused with this reason code: a CONNACK at CONNECT (0x86 Bad user
    /// name or password, 0x87 Not authorized, 0x8C Bad authentication
    /// method, ...; a 3.1.1 client gets the nearest return code), a
    /// DISCONNECT on re-authentication [MQTT-4.12.1-2].
    Deny(ReasonCode),
}

/// Decides who may connect.
pub trait Authenticator: Send + Sync + fmt::Debug + 'static {
    /// Whether clients may use MQTT 5 enhanced authentication. Without it
    /// a CONNECT with an Authentication Method is refused with 0x8C before
    /// [`Authenticator::connect`] sees it [MQTT-4.12.0-1].
    fn enhanced(&self) -> bool {
        false
    }

    /// A CONNECT passed the protocol checks. The connection waits for the
    /// decision and does nothing else meanwhile: past 4 s the client is
    /// refused with 0x89 Server busy (so is a slow step or
    /// re-authentication).
    fn connect<'a>(&'a self, client: ConnectInfo<'a>) -> AuthFuture<'a>;

    /// A connected client asks to re-authenticate (AUTH 0x19, MQTT 5)
    /// with its connection's method [MQTT-4.12.1-1]. By default the method
    /// does not support it: the connection ends with 0x8C.
    fn reauthenticate<'a>(
        &'a self,
        who: &'a Identity,
        method: &'a str,
        data: Option<&'a [u8]>,
    ) -> AuthFuture<'a> {
        let _ = (who, method, data);
        Box::pin(async { AuthDecision::Deny(ReasonCode::BadAuthenticationMethod) })
    }
}

/// One enhanced-authentication exchange in progress: the client's next
/// Authentication Data comes here.
pub trait AuthExchange: Send + fmt::Debug {
    fn step<'a>(&'a mut self, data: Option<&'a [u8]>) -> AuthFuture<'a>;
}

/// Decides what a connected client may do. Called on the hot path: answer
/// from memory.
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// Whether `who` may publish to `topic`. A denied QoS 1 or 2 PUBLISH is
    /// answered 0x87 (MQTT 5) and dropped; a denied QoS 0 one is dropped.
    /// Asked about the will at CONNECT too: a denied will refuses the
    /// CONNECT with 0x87 (3.1.1: return code 5).
    fn publish(&self, who: &Identity, topic: &str, qos: QoS, retain: bool) -> bool;

    /// Whether `who` may subscribe to `filter`; a denied filter gets 0x87
    /// in the SUBACK (3.1.1: 0x80).
    fn subscribe(&self, who: &Identity, filter: &str, qos: QoS) -> bool;

    /// Whether [`Authorizer::deliver`] must be asked about each message
    /// delivered: false skips the call on the delivery path.
    fn checks_deliveries(&self) -> bool {
        false
    }

    /// Whether `who` may receive a message on `topic` that one of its
    /// subscriptions matched (a wildcard, or a retained message on
    /// subscribing). A denied one is dropped, as if never routed to it; a
    /// message a share group gave to a denied member is dropped, not given
    /// to another member.
    fn deliver(&self, who: &Identity, topic: &str) -> bool {
        let _ = (who, topic);
        true
    }
}

/// The default: every client may connect and do anything.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn connect<'a>(&'a self, client: ConnectInfo<'a>) -> AuthFuture<'a> {
        let username = client.username.map(Arc::from);
        Box::pin(async move {
            AuthDecision::Allow {
                identity: Identity::user(username, None),
                data: None,
            }
        })
    }
}

impl Authorizer for AllowAll {
    fn publish(&self, _: &Identity, _: &str, _: QoS, _: bool) -> bool {
        true
    }

    fn subscribe(&self, _: &Identity, _: &str, _: QoS) -> bool {
        true
    }
}

/// The reason code a denied PUBLISH or SUBSCRIBE filter is answered with:
/// the one place a denial becomes a code (the session turns it into what
/// the client's protocol version can carry).
pub(crate) const DENIED: ReasonCode = ReasonCode::NotAuthorized;

/// A filter without its `$share/GROUP/` prefix: what a shared
/// subscription is authorized and limited on.
pub(crate) fn unshared(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, f)| f)
}
