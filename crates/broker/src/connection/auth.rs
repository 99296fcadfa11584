//! Authentication: a CONNECT goes to the authenticator before the
//! registry, and an MQTT 5 AUTH exchange (at CONNECT or a
//! re-authentication) runs step by step through it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_codec::{AuthProperties, Connect, MqttStr, ReasonCode};

use super::Conn;
use crate::auth::{AuthDecision, AuthExchange, ConnectInfo};
use crate::transport::Origin;

/// How long an authenticator may take to decide. The connection waits for
/// it and does nothing else meanwhile, so the bound stays below the 5 s a
/// takeover waits for the session's state: a slow authentication service
/// never costs a reconnecting client its session.
const AUTH_WAIT: Duration = Duration::from_secs(4);

/// An authenticator's decision within [`AUTH_WAIT`]; past it, the client
/// is refused with 0x89 Server busy (CONNACK, or DISCONNECT on a
/// re-authentication).
async fn within_wait(decision: impl Future<Output = AuthDecision>) -> AuthDecision {
    match tokio::time::timeout(AUTH_WAIT, decision).await {
        Ok(d) => d,
        Err(_) => {
            tracing::warn!("the authenticator did not decide within {AUTH_WAIT:?}");
            AuthDecision::Deny(ReasonCode::ServerBusy)
        }
    }
}

/// An exchange waiting for the client's next AUTH.
#[derive(Debug)]
pub(super) struct Exchange {
    /// The CONNECT it authenticates; none for a re-authentication.
    connect: Option<Box<Connect>>,
    origin: Origin,
    step: Box<dyn AuthExchange>,
}

impl Conn {
    /// Asks the authenticator about a CONNECT.
    pub(super) async fn on_connect(&mut self, c: Box<Connect>, origin: &Origin) {
        let shared = self.shared.clone();
        let ip = origin.peer.map(|p| p.ip());
        if let Some(ip) = ip
            && let Err(code) = shared
                .admission()
                .attempt(ip, crate::clock::now(), c.protocol)
        {
            tracing::info!(peer = ?origin.peer, ?code, "CONNECT refused: connect rate or failed logins of the address");
            shared.counters().connection_refused(code);
            self.session.reject(code);
            return;
        }
        // A listener with `use_identity_as_username` names the client by
        // its certificate, whatever username and password it sent.
        let (username, password) = if origin.certificate_is_username {
            (origin.certificate.as_deref(), None)
        } else {
            (c.username.as_deref(), c.password.as_deref())
        };
        let info = ConnectInfo {
            client_id: &c.client_id,
            username,
            password,
            peer: origin.peer,
            listener: self.listener(),
            certificate: origin.certificate.as_deref(),
            username_is_certificate: origin.certificate_is_username && origin.certificate.is_some(),
            protocol: c.protocol,
            method: c.properties.authentication_method.as_deref(),
            data: c.properties.authentication_data.as_deref(),
        };
        let decision = within_wait(shared.authenticator().connect(info)).await;
        failed_login(&shared, denied(&decision), ip).await;
        self.decided(Some(c), origin.clone(), decision).await;
    }

    /// The client's AUTH: the next step of the exchange under way, or the
    /// start of a re-authentication.
    pub(super) async fn on_auth(&mut self, method: MqttStr, data: Option<Bytes>, reauth: bool) {
        let shared = self.shared.clone();
        let exchange = self.more.as_mut().and_then(|m| m.auth.take());
        let (connect, origin, decision) = match exchange {
            Some(mut x) => {
                let decision = within_wait(x.step.step(data.as_deref())).await;
                // A wrong proof at CONNECT is a failed login like a wrong
                // password.
                if x.connect.is_some() {
                    failed_login(&shared, denied(&decision), x.origin.peer.map(|p| p.ip())).await;
                }
                (x.connect, x.origin, decision)
            }
            None if reauth => {
                let Some(a) = &self.attached else { return };
                let who = a.identity.clone();
                let a = shared.authenticator();
                let decision = within_wait(a.reauthenticate(&who, &method, data.as_deref())).await;
                let origin = Origin {
                    peer: who.peer,
                    certificate: who.certificate.clone(),
                    certificate_is_username: who.certificate.is_some()
                        && who.certificate == who.username,
                };
                (None, origin, decision)
            }
            // The session passes up an AUTH only within an exchange.
            None => return,
        };
        self.decided(connect, origin, decision).await;
    }

    /// Acts on an authenticator's decision, for the CONNECT `connect` or,
    /// without one, a re-authentication.
    async fn decided(
        &mut self,
        connect: Option<Box<Connect>>,
        origin: Origin,
        decision: AuthDecision,
    ) {
        let now = crate::clock::now();
        match decision {
            AuthDecision::Allow { mut identity, data } => {
                // Credentials that run out (a token's `exp`) end the
                // connection then, unless a re-authentication moves it.
                let left = identity.valid_until.map(|t| {
                    t.duration_since(std::time::SystemTime::now())
                        .unwrap_or_default()
                });
                self.session.credentials_expire(left.map(|d| now + d));
                identity.peer = origin.peer;
                if origin.certificate_is_username {
                    identity.username = origin.certificate.clone();
                }
                identity.certificate = origin.certificate;
                match connect {
                    Some(c) => self.attach(c, identity, data).await,
                    None => {
                        if let Some(a) = self.attached.as_mut() {
                            identity.client_id = a.client_id().clone();
                            a.identity = Arc::new(identity);
                        }
                        self.session.auth_success(now, props(data));
                    }
                }
            }
            AuthDecision::Continue { .. } if self.session.auth_method().is_none() => {
                // No exchange without an Authentication Method in CONNECT
                // [MQTT-4.12.0-6]: an authenticator that asks for one
                // refuses.
                self.session.reject(ReasonCode::NotAuthorized);
            }
            AuthDecision::Continue { data, exchange } => {
                self.session.auth_continue(now, props(data));
                self.more().auth = Some(Box::new(Exchange {
                    connect,
                    origin,
                    step: exchange,
                }));
            }
            // A CONNACK before the CONNACK, a DISCONNECT after it
            // [MQTT-4.12.0-4] [MQTT-4.12.1-2].
            AuthDecision::Deny(code) => {
                if connect.is_some() {
                    self.shared.counters().connection_refused(deny_code(code));
                }
                self.session.reject(deny_code(code));
            }
        }
    }
}

/// A login refused for its credentials slows the next refusal of its
/// address down, and enough of them block the address for a while
/// (`limits.max_failed_logins`).
async fn failed_login(
    shared: &crate::shared::Shared,
    denied: Option<ReasonCode>,
    ip: Option<std::net::IpAddr>,
) {
    if let (Some(code), Some(ip)) = (denied, ip)
        && matches!(
            code,
            ReasonCode::BadUserNameOrPassword | ReasonCode::NotAuthorized
        )
    {
        let wait = shared.admission().failed(ip, crate::clock::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

fn denied(decision: &AuthDecision) -> Option<ReasonCode> {
    match decision {
        AuthDecision::Deny(code) => Some(*code),
        _ => None,
    }
}

/// An authenticator's refusal as a code a CONNACK or DISCONNECT may carry.
fn deny_code(code: ReasonCode) -> ReasonCode {
    if code.is_error() {
        code
    } else {
        ReasonCode::NotAuthorized
    }
}

fn props(data: Option<Bytes>) -> AuthProperties {
    AuthProperties {
        authentication_data: data,
        ..AuthProperties::default()
    }
}
