//! Authentication: a CONNECT goes to the authenticator before the
//! registry, and an MQTT 5 AUTH exchange (at CONNECT or a
//! re-authentication) runs step by step through it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use strata_codec::{AuthProperties, Connect, MqttStr, ReasonCode};

use super::Conn;
use crate::auth::{AuthDecision, AuthExchange, ConnectInfo};

/// An exchange waiting for the client's next AUTH.
#[derive(Debug)]
pub(super) struct Exchange {
    /// The CONNECT it authenticates; none for a re-authentication.
    connect: Option<Box<Connect>>,
    peer: Option<SocketAddr>,
    step: Box<dyn AuthExchange>,
}

impl Conn {
    /// Asks the authenticator about a CONNECT.
    pub(super) async fn on_connect(&mut self, c: Box<Connect>, peer: Option<SocketAddr>) {
        let shared = self.shared.clone();
        let info = ConnectInfo {
            client_id: &c.client_id,
            username: c.username.as_deref(),
            password: c.password.as_deref(),
            peer,
            certificate: None,
            protocol: c.protocol,
            method: c.properties.authentication_method.as_deref(),
            data: c.properties.authentication_data.as_deref(),
        };
        let decision = shared.config().authenticator.connect(info).await;
        self.decided(Some(c), peer, decision).await;
    }

    /// The client's AUTH: the next step of the exchange under way, or the
    /// start of a re-authentication.
    pub(super) async fn on_auth(&mut self, method: MqttStr, data: Option<Bytes>, reauth: bool) {
        let shared = self.shared.clone();
        let exchange = self.more.as_mut().and_then(|m| m.auth.take());
        let (connect, peer, decision) = match exchange {
            Some(mut x) => {
                let decision = x.step.step(data.as_deref()).await;
                (x.connect, x.peer, decision)
            }
            None if reauth => {
                let Some(a) = &self.attached else { return };
                let who = a.identity.clone();
                let a = &shared.config().authenticator;
                let decision = a.reauthenticate(&who, &method, data.as_deref()).await;
                (None, who.peer, decision)
            }
            // The session passes up an AUTH only within an exchange.
            None => return,
        };
        self.decided(connect, peer, decision).await;
    }

    /// Acts on an authenticator's decision, for the CONNECT `connect` or,
    /// without one, a re-authentication.
    async fn decided(
        &mut self,
        connect: Option<Box<Connect>>,
        peer: Option<SocketAddr>,
        decision: AuthDecision,
    ) {
        let now = crate::clock::now();
        match decision {
            AuthDecision::Allow { mut identity, data } => {
                identity.peer = peer;
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
            AuthDecision::Continue { data, exchange } => {
                self.session.auth_continue(now, props(data));
                self.more().auth = Some(Box::new(Exchange {
                    connect,
                    peer,
                    step: exchange,
                }));
            }
            // A CONNACK before the CONNACK, a DISCONNECT after it
            // [MQTT-4.12.0-4] [MQTT-4.12.1-2].
            AuthDecision::Deny(code) => self.session.reject(deny_code(code)),
        }
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
