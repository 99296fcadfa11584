//! The session's events: what a connection does for each PUBLISH,
//! SUBSCRIBE and UNSUBSCRIBE, and for what the journal must hear.

use strata_codec::{QoS, ReasonCode};
use strata_journal::{Entry, Flow, Sent, Unsent};
use strata_session::Event;
use tokio::sync::mpsc;

use super::{AuthStep, Awaited, Conn, PendingAck};
use crate::auth::{DENIED, unshared};
use crate::routing::Subscriber;

impl Conn {
    /// Handles the session's events up to a CONNECT, which it returns: that
    /// one waits for the registry ([`Conn::connect`]).
    pub(super) fn process_events(&mut self) -> Option<Awaited> {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::Connect(c) => return Some(Awaited::Connect(c)),
                Event::Auth {
                    method,
                    data,
                    reauth,
                } => {
                    let step = AuthStep {
                        method,
                        data,
                        reauth,
                    };
                    return Some(Awaited::Auth(Box::new(step)));
                }
                Event::Publish { message, packet_id } => {
                    self.shared.counters().message_received();
                    let qos = message.qos;
                    self.count_publish(&message);
                    // A topic past the limits: 0x90 Topic Name invalid
                    // (3.1.1: acknowledged and dropped).
                    if !self.shared.admission().topic_fits(&message.topic) {
                        self.denied_publish(packet_id, qos, ReasonCode::TopicNameInvalid);
                        continue;
                    }
                    if let Some(a) = &self.attached
                        && !self.shared.authorizer().publish(
                            &a.identity,
                            &message.topic,
                            qos,
                            message.retain,
                        )
                    {
                        // Dropped; QoS 1 and 2 are answered with the
                        // denial, in order with the other answers.
                        self.denied_publish(packet_id, qos, DENIED);
                        continue;
                    }
                    let key = self.attached.as_ref().map(|a| a.key);
                    let answers = self.more.get_or_insert_with(Default::default);
                    let seq = answers.next_seq;
                    answers.next_seq += 1;
                    let tx = self.durable_sender();
                    // An inbound QoS 2 id of a journaled session must be
                    // durable before PUBREC: after a restart, the client's
                    // resend of this PUBLISH is then still a duplicate
                    // [MQTT-4.3.3-10]. It goes in the message's own record
                    // when the message is stored, else in a record of its
                    // own; either way one record, written whole or not at
                    // all.
                    let inbound_id = match (packet_id, qos) {
                        (Some(id), QoS::ExactlyOnce) => id,
                        _ => 0,
                    };
                    let tx2 = tx.clone();
                    let from = self.journaled().map(|a| (a.client_id(), inbound_id));
                    let published = self
                        .shared
                        .publish_with(message, key, from, true, move |ok| {
                            if let Some(tx) = tx {
                                let _ = tx.send((seq, ok));
                            }
                        });
                    let n = published.delivered;
                    if packet_id.is_some() {
                        // Only an answer can wait for the deliveries.
                        let answers = self.more();
                        answers.routed = answers
                            .routed
                            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                    }
                    let mut waiting = published.waiting;
                    if let Some(mb) = published.congested {
                        self.more().paused = Some(Box::pin(async move { mb.space().await }));
                    }
                    if !waiting
                        && inbound_id != 0
                        && let (Some(a), Some(tx)) = (self.journaled(), tx2)
                    {
                        let entry = Entry::Inbound {
                            client: a.client_id().clone(),
                            packet_ids: vec![inbound_id],
                        };
                        waiting = self.shared.journal().record_then(&[entry], move |ok| {
                            let _ = tx.send((seq, ok));
                        });
                    }
                    if let Some(packet_id) = packet_id {
                        let reason = if n == 0 {
                            ReasonCode::NoMatchingSubscribers
                        } else {
                            ReasonCode::Success
                        };
                        let answers = self.more.get_or_insert_with(Default::default);
                        answers.pending.push_back(PendingAck {
                            seq,
                            packet_id,
                            qos,
                            reason,
                            waiting,
                        });
                        self.release_acks();
                    }
                }
                Event::Subscribe {
                    packet_id,
                    subscription_id,
                    filters,
                    granted,
                } => self.on_subscribe(packet_id, subscription_id, filters, granted),
                Event::Unsubscribe { packet_id, filters } => {
                    let journaled = self.journaled().map(|a| a.client_id().clone());
                    let Some(a) = &self.attached else { continue };
                    let (codes, barrier) = self.shared.routes().unsubscribe(
                        self.shared.journal(),
                        Subscriber {
                            key: a.key,
                            journaled: journaled.as_ref(),
                            max_subscriptions: 0,
                        },
                        &filters,
                    );
                    self.wait_for(barrier);
                    self.session.unsubscribe_done(packet_id, codes);
                }
                Event::Closed {
                    reason,
                    will,
                    session_expiry,
                } => {
                    tracing::debug!(?reason, "session closed");
                    self.more().closed = Some((session_expiry, will));
                }
                Event::Dropped { delivery } => {
                    if let Some(r) = self.round() {
                        r.dropped.push(Unsent::of(delivery));
                    }
                }
                Event::Completed { id, packet_id } => {
                    if let Some(r) = self.round() {
                        r.completed.push(Flow { id, packet_id });
                    }
                }
                Event::Sent {
                    packet_id,
                    delivery,
                } => {
                    if let Some(r) = self.round() {
                        r.sent.push(Sent::of(packet_id, &delivery));
                    }
                }
                Event::Released { id, packet_id } => {
                    if let Some(r) = self.round() {
                        r.released.push(Flow { id, packet_id });
                    }
                }
                Event::InboundReleased { packet_id } => {
                    if let Some(r) = self.round() {
                        r.inbound_done.push(packet_id);
                    }
                }
            }
        }
        None
    }

    /// The sender journal completions come back on (made on first use).
    fn durable_sender(&mut self) -> Option<mpsc::UnboundedSender<(u64, bool)>> {
        if !self.shared.journal().is_on() {
            return None;
        }
        let answers = self.more.get_or_insert_with(Default::default);
        if answers.durable_tx.is_none() {
            let (tx, rx) = mpsc::unbounded_channel();
            answers.durable_tx = Some(tx);
            answers.durable_rx = Some(rx);
        }
        answers.durable_tx.clone()
    }

    /// A journal append finished: releases the answers it held back; if it
    /// failed, drops them all and returns false (the caller closes).
    pub(super) fn on_stored(&mut self, seq: u64, stored: bool) -> bool {
        if !stored {
            if let Some(a) = self.more.as_mut() {
                a.pending.clear();
            }
            return false;
        }
        if let Some(a) = self
            .more
            .as_mut()
            .and_then(|a| a.pending.iter_mut().find(|a| a.seq == seq))
        {
            a.waiting = false;
        }
        self.release_acks();
        true
    }

    /// Sends the answers that are ready, in order.
    fn release_acks(&mut self) {
        let Some(answers) = self.more.as_mut() else {
            return;
        };
        while answers.pending.front().is_some_and(|a| !a.waiting) {
            if let Some(a) = answers.pending.pop_front() {
                self.session.publish_done(a.packet_id, a.qos, a.reason);
            }
        }
    }

    fn on_subscribe(
        &mut self,
        packet_id: u16,
        subscription_id: Option<u32>,
        filters: Vec<strata_codec::Subscription>,
        granted: Vec<Result<QoS, ReasonCode>>,
    ) {
        let journaled = self.journaled().map(|a| a.client_id().clone());
        let Some(a) = &self.attached else { return };
        let authorizer = &self.shared.authorizer();
        let limits = self.shared.admission();
        let granted = filters
            .iter()
            .zip(granted)
            .map(|(f, g)| match g {
                // Past the topic limits: 0x8F Topic Filter invalid.
                Ok(_) if !limits.topic_fits(unshared(&f.filter)) => {
                    Err(ReasonCode::TopicFilterInvalid)
                }
                Ok(qos) if !authorizer.subscribe(&a.identity, &f.filter, qos) => Err(DENIED),
                g => g,
            })
            .collect();
        let deliver =
            |topic: &str| !authorizer.checks_deliveries() || authorizer.deliver(&a.identity, topic);
        let done = self.shared.routes().subscribe(
            self.shared.journal(),
            Subscriber {
                key: a.key,
                journaled: journaled.as_ref(),
                max_subscriptions: limits.max_subscriptions(),
            },
            subscription_id,
            &filters,
            granted,
            deliver,
        );
        self.wait_for(done.barrier);
        self.session.subscribe_done(packet_id, done.codes);
        let now = crate::clock::now();
        for d in done.retained {
            self.session.handle_delivery(now, d);
        }
    }

    /// Counts an inbound PUBLISH against the client's rates: past them,
    /// reading pauses until the next one is due (see `rate.rs`).
    fn count_publish(&mut self, message: &strata_session::Message) {
        let rates = self.shared.admission().publish_rates();
        if rates == (0, 0) {
            return;
        }
        let now = crate::clock::now();
        let more = self.more();
        let wait = more
            .rate
            .get_or_insert_with(|| super::rate::PublishRate::new(now, rates))
            .take(now, message.topic.len() + message.payload.len(), rates);
        if !wait.is_zero() && more.paused.is_none() {
            more.paused = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }

    /// A PUBLISH the authorizer or a limit denied: a QoS 1 or 2 one is
    /// answered with `reason`, after the answers before it.
    fn denied_publish(&mut self, packet_id: Option<u16>, qos: QoS, reason: ReasonCode) {
        let Some(packet_id) = packet_id else { return };
        let answers = self.more();
        let seq = answers.next_seq;
        answers.next_seq += 1;
        answers.pending.push_back(PendingAck {
            seq,
            packet_id,
            qos,
            reason,
            waiting: false,
        });
        self.release_acks();
    }

    /// Drops the deliveries the authorizer denies this client; a stored
    /// copy is journaled as dropped, or a restart would bring it back.
    pub(super) fn authorize_deliveries(&mut self) {
        let Some(a) = &self.attached else { return };
        let authorizer = &self.shared.authorizer();
        let who = a.identity.clone();
        let mut denied = Vec::new();
        self.deliveries.retain(|d| {
            let allowed = authorizer.deliver(&who, &d.message.topic);
            if !allowed && d.message.id != 0 && d.effective_qos() != QoS::AtMostOnce {
                denied.push(Unsent::of(d.clone()));
            }
            allowed
        });
        if let Some(r) = self.round() {
            r.dropped.extend(denied);
        }
    }
}
