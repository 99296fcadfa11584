//! The handle applications hold: requests to the connection task, and the
//! stream of received messages.

use bytes::Bytes;
use strata_codec::{
    DecodeError, EncodeError, MqttStr, Publish, PublishProps, QoS, ReasonCode, SubscribeOptions,
    Subscription,
};
use tokio::sync::{mpsc, oneshot};

use crate::conn;
use crate::options::Options;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    /// A file of [`crate::TlsOptions`] cannot be used.
    #[error("TLS {what} {path:?}: {why}")]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        why: String,
    },
    /// The TLS handshake failed: the server's certificate was refused, or
    /// the server refused this client's (or its lack of one).
    #[error("TLS handshake with {address}: {source}")]
    Tls {
        address: String,
        source: std::io::Error,
    },
    /// The WebSocket upgrade failed; `why` has the HTTP status and the
    /// server's explanation when it gave one.
    #[error("WebSocket upgrade at {url}: {why}")]
    WebSocket { url: String, why: String },
    #[error("no CONNACK within the connect timeout")]
    ConnectTimeout,
    #[error("the server refused the connection: {0:?}")]
    Refused(ReasonCode),
    #[error("the server sent a packet that does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
    #[error("protocol violation by the server: {0}")]
    Protocol(&'static str),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("the server answered with {0:?}")]
    Failed(ReasonCode),
    #[error("the connection is closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What the CONNACK of the first connection said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub session_present: bool,
    /// The 5.0 Assigned Client Identifier, when the client id was empty.
    pub assigned_client_id: Option<String>,
}

/// A message the server delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: MqttStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Set when the server resent it.
    pub dup: bool,
    /// 5.0 properties as received, shared, not copied (Topic Alias already
    /// resolved).
    pub properties: PublishProps,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A request to the connection task.
#[derive(Debug)]
pub(crate) enum Request {
    Publish(Publish, Reply<()>),
    Subscribe(Vec<Subscription>, Option<u32>, Reply<Vec<ReasonCode>>),
    Unsubscribe(Vec<MqttStr>, Reply<Vec<ReasonCode>>),
    Disconnect(Reply<()>),
}

/// Sends requests to the connection; clone it freely.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) requests: mpsc::UnboundedSender<Request>,
}

/// The messages the server delivers, in order.
#[derive(Debug)]
pub struct Incoming {
    pub(crate) rx: mpsc::Receiver<Message>,
}

impl Incoming {
    /// The next message; `None` once the client has ended (disconnected,
    /// or the connection broke with reconnect off).
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

/// A publish on its way; await [`PublishHandle::done`] for the outcome.
#[derive(Debug)]
pub struct PublishHandle {
    rx: oneshot::Receiver<Result<(), Error>>,
}

impl PublishHandle {
    /// Resolves when the flow completes: written (QoS 0), PUBACK (QoS 1) or
    /// PUBCOMP (QoS 2). A reason code of 0x80 or more is [`Error::Failed`].
    pub async fn done(self) -> Result<(), Error> {
        self.rx.await.unwrap_or(Err(Error::Closed))
    }
}

fn topic(what: &'static str, s: &str) -> Result<MqttStr, Error> {
    MqttStr::try_from(s).map_err(|e| Error::Invalid {
        what,
        why: e.to_string(),
    })
}

impl Client {
    /// Connects, waits for a successful CONNACK, and starts the connection
    /// task.
    pub async fn connect(options: Options) -> Result<(Client, Incoming, Connected), Error> {
        conn::start(options).await
    }

    /// Publishes and waits until the flow completes (see [`PublishHandle`]).
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.start_publish(topic, qos, retain, payload)?
            .done()
            .await
    }

    /// Queues a publish and returns at once, so many can be in flight.
    pub fn start_publish(
        &self,
        topic_name: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> Result<PublishHandle, Error> {
        let mut p = Publish::new(topic("topic name", topic_name)?, qos, payload.into());
        p.retain = retain;
        self.send_publish(p)
    }

    /// Queues a PUBLISH built by the caller (5.0 properties and all); the
    /// packet identifier is assigned by the client.
    pub fn send_publish(&self, publish: Publish) -> Result<PublishHandle, Error> {
        strata_codec::topic::validate_topic_name(&publish.topic).map_err(|e| Error::Invalid {
            what: "topic name",
            why: e.to_string(),
        })?;
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Publish(publish, tx))
            .map_err(|_| Error::Closed)?;
        Ok(PublishHandle { rx })
    }

    /// Subscribes to each `(filter, maximum QoS)`; returns the SUBACK codes.
    pub async fn subscribe(&self, filters: &[(&str, QoS)]) -> Result<Vec<ReasonCode>, Error> {
        let subs = filters
            .iter()
            .map(|&(f, qos)| {
                Ok(Subscription {
                    filter: topic("topic filter", f)?,
                    options: SubscribeOptions {
                        qos,
                        ..Default::default()
                    },
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.subscribe_with(subs, None).await
    }

    /// Subscribes with full options and a 5.0 Subscription Identifier.
    pub async fn subscribe_with(
        &self,
        subscriptions: Vec<Subscription>,
        subscription_id: Option<u32>,
    ) -> Result<Vec<ReasonCode>, Error> {
        for s in &subscriptions {
            strata_codec::topic::validate_topic_filter(&s.filter).map_err(|e| Error::Invalid {
                what: "topic filter",
                why: e.to_string(),
            })?;
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Subscribe(subscriptions, subscription_id, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Unsubscribes; returns the 5.0 UNSUBACK codes (empty for 3.1.1).
    pub async fn unsubscribe(&self, filters: &[&str]) -> Result<Vec<ReasonCode>, Error> {
        let filters = filters
            .iter()
            .map(|f| topic("topic filter", f))
            .collect::<Result<Vec<_>, Error>>()?;
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Unsubscribe(filters, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Sends DISCONNECT (the will is discarded) and ends the client once
    /// everything queued before it is written.
    pub async fn disconnect(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Disconnect(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }
}
