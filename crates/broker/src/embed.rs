//! The in-process API: an application that embeds the broker publishes and
//! subscribes without a socket ([`Broker::publish`](crate::Broker::publish),
//! [`Broker::subscribe`](crate::Broker::subscribe)). Its messages take the
//! path a client's take: the router, the journal when they must survive,
//! the subscribers' mailboxes with their limits.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use strata_codec::topic::{parse_filter, validate_topic_name};
use strata_codec::{MqttStr, PublishProps, QoS, SubscribeOptions};
use strata_session::{Delivery, Message};
use tokio::sync::oneshot;

use crate::mailbox::{Later, Mailbox, Signal};
use crate::routing::Subscriber;
use crate::shared::Shared;

/// Why an in-process publish or subscribe was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbedError {
    #[error("{0:?} is not a valid topic name: {1}")]
    Topic(String, String),
    #[error("{0:?} is not a valid topic filter: {1}")]
    Filter(String, String),
    /// The message had to be stored and the journal could not store it.
    #[error("the message could not be stored: the data directory's log failed")]
    NotStored,
}

/// A message published in-process. Built with [`Publication::new`]; the
/// other fields default to QoS 0, not retained, no properties.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Publication {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: PublishProps,
}

impl Publication {
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publication {
        Publication {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: PublishProps::default(),
        }
    }

    pub fn qos(mut self, qos: QoS) -> Publication {
        self.qos = qos;
        self
    }

    pub fn retain(mut self, retain: bool) -> Publication {
        self.retain = retain;
        self
    }
}

/// Routes `p` as the broker itself (no publishing client: no No Local, no
/// authorizer); resolves once it is in every matching mailbox and, when it
/// must survive a restart (retained, or QoS 1/2 for a persistent session),
/// durable. Returns the deliveries made.
pub(crate) async fn publish(shared: &Shared, p: Publication) -> Result<usize, EmbedError> {
    validate_topic_name(&p.topic).map_err(|e| EmbedError::Topic(p.topic.clone(), e.to_string()))?;
    let topic = MqttStr::try_from(p.topic.clone())
        .map_err(|e| EmbedError::Topic(p.topic.clone(), e.to_string()))?;
    let message = Message {
        topic,
        payload: p.payload,
        qos: p.qos,
        retain: p.retain,
        properties: p.properties,
        received: crate::clock::now(),
        id: 0,
    };
    let (tx, rx) = oneshot::channel();
    let published = shared.publish_with(message, None, None, true, move |ok| {
        let _ = tx.send(ok);
    });
    if published.waiting && !rx.await.unwrap_or(false) {
        return Err(EmbedError::NotStored);
    }
    Ok(published.delivered)
}

/// A message delivered to an in-process [`Subscription`].
#[derive(Debug, Clone)]
pub struct Received {
    delivery: Delivery,
}

impl Received {
    pub fn topic(&self) -> &str {
        &self.delivery.message.topic
    }

    pub fn payload(&self) -> &Bytes {
        &self.delivery.message.payload
    }

    /// The QoS of the delivery: the lower of the published one and the
    /// subscription's.
    pub fn qos(&self) -> QoS {
        self.delivery.effective_qos()
    }

    /// The RETAIN flag as a client would see it: set for a retained
    /// message sent on subscribing.
    pub fn retain(&self) -> bool {
        self.delivery.retain
    }

    pub fn properties(&self) -> &PublishProps {
        &self.delivery.message.properties
    }
}

/// An in-process subscription: the messages its filter matches, in the
/// order the broker routed them, starting with the retained ones. Dropping
/// it unsubscribes. Its mailbox has a session's limits: a subscription
/// that is not read while messages pour in loses the overflow (QoS 0
/// first), as a slow client would.
#[derive(Debug)]
pub struct Subscription {
    /// Weak: a subscription does not keep a broker that shut down alive
    /// (nor its data directory locked).
    shared: Weak<Shared>,
    key: u64,
    mailbox: Arc<Mailbox>,
    queue: VecDeque<Delivery>,
}

/// Subscribes in-process to `filter` (wildcards and `$share/` allowed)
/// with the maximum QoS `qos`.
pub(crate) fn subscribe(
    shared: &Arc<Shared>,
    filter: &str,
    qos: QoS,
) -> Result<Subscription, EmbedError> {
    parse_filter(filter).map_err(|e| EmbedError::Filter(filter.to_owned(), e.to_string()))?;
    let filter = MqttStr::try_from(filter.to_owned())
        .map_err(|e| EmbedError::Filter(filter.to_owned(), e.to_string()))?;
    let key = shared.next_id();
    let limits = &shared.config().session;
    let mailbox = Arc::new(Mailbox::new(
        MqttStr::from_static(""),
        limits.max_queued_messages,
        limits.max_queued_bytes,
        false,
    ));
    mailbox.attach(key);
    shared.routes().add_mailbox(key, mailbox.clone());
    let wanted = [strata_codec::Subscription {
        filter,
        options: SubscribeOptions {
            qos,
            ..SubscribeOptions::default()
        },
    }];
    let done = shared.routes().subscribe(
        shared.journal(),
        Subscriber {
            key,
            journaled: None,
            // The broker's own subscriptions are not a client's to limit.
            max_subscriptions: 0,
        },
        None,
        &wanted,
        vec![Ok(qos)],
        |_| true,
    );
    Ok(Subscription {
        shared: Arc::downgrade(shared),
        key,
        mailbox,
        queue: done.retained.into(),
    })
}

impl Subscription {
    /// The next message; `None` once the broker shuts down.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            while let Some(delivery) = self.queue.pop_front() {
                // [MQTT-3.3.2-5]: an expired message is not delivered.
                if delivery
                    .message
                    .expires_at()
                    .is_some_and(|at| at <= crate::clock::now())
                {
                    continue;
                }
                return Some(Received { delivery });
            }
            let signal = std::future::poll_fn(|cx| {
                self.mailbox.poll_signal(cx, self.key, true, Later::Never)
            });
            match signal.await {
                Signal::Mail | Signal::MailLater(_) => self.mailbox.drain_into(&mut self.queue),
                Signal::Kicked(..) | Signal::Shutdown => return None,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.mailbox.detach();
        if let Some(shared) = self.shared.upgrade() {
            shared.routes().remove(&[self.key]);
        }
    }
}
