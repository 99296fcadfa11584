//! A connection's session in the registry: taken over, resumed or made
//! new at CONNECT, and handed back (or ended) when the connection ends.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_codec::{Connect, MqttStr, ReasonCode};
use strata_session::SessionState;
use tokio::sync::oneshot;

use super::{Attached, Conn, TAKEOVER_WAIT};
use crate::auth::Identity;
use crate::mailbox::Mailbox;
use crate::registry::{Entry as RegistryEntry, Fallout, Owner};
use strata_journal::Entry;

impl Conn {
    /// Takeover, resume or a new session, then CONNACK (with `auth_data`
    /// from the authenticator), for a client authenticated as `identity`.
    pub(super) async fn attach(
        &mut self,
        c: Box<Connect>,
        mut identity: Identity,
        auth_data: Option<Bytes>,
    ) {
        let shared = self.shared.clone();
        let assigned = c.client_id.is_empty();
        let client_id = if assigned {
            // Unique: the connection id never repeats in this process.
            MqttStr::try_from(format!(
                "{}{:x}-{:x}",
                shared.config().session.assigned_id_prefix,
                shared.started().elapsed().as_nanos() as u64,
                self.id
            ))
            .unwrap_or_default()
        } else {
            // Kept as long as the session: out of the read buffer.
            c.client_id.detach()
        };
        identity.client_id = client_id.clone();
        tracing::debug!(
            client_id = %client_id,
            peer = ?identity.peer,
            username = ?identity.username,
            "client connecting"
        );
        // The will is published as this client: the authorizer decides on
        // it now, as on any publish.
        if let Some(w) = &c.will
            && !shared
                .authorizer()
                .publish(&identity, &w.topic, w.qos, w.retain)
        {
            shared.counters().connection_refused(crate::auth::DENIED);
            self.session.reject(crate::auth::DENIED);
            return;
        }
        // Until the CONNACK is queued, no other CONNECT of this id runs.
        let _pass = shared.gate().enter(&client_id).await;

        // Take the session back from a connection that still holds it: the
        // kick is placed under the registry lock, where that connection's
        // end also looks for one it did not see.
        let kicked = {
            let mut reg = shared.registry();
            let kicked = reg.by_client.get_mut(&client_id).and_then(|e| {
                let Owner::Conn(old) = e.conn else {
                    return None;
                };
                e.conn = Owner::Leaving(old);
                let (tx, rx) = oneshot::channel();
                e.mailbox.kick(old, tx);
                Some(rx)
            });
            if kicked.is_some() {
                // The old connection no longer counts; its release (as
                // `Leaving`) only parks the state.
                reg.connected = reg.connected.saturating_sub(1);
            }
            kicked
        };
        if let Some(done) = kicked {
            let _ = tokio::time::timeout(TAKEOVER_WAIT, done).await;
        }
        // Counted once the session this one takes over has let go of its
        // own connection: a client that reconnects from the same address
        // does not count twice.
        if let Some(ip) = identity.peer.map(|p| p.ip())
            && let Err(code) = shared
                .admission()
                .connect(ip, crate::clock::now(), c.protocol)
        {
            tracing::info!(client_id = %client_id, peer = ?identity.peer, "refused: max_connections_per_address");
            shared.counters().connection_refused(code);
            self.session.reject(code);
            return;
        }

        let mut fallout = Fallout::default();
        let persistent = self.session.session_expiry() > 0;
        let (state, key, mailbox, present, was_persistent) = {
            let mut reg = shared.registry();
            let resumable = !c.clean_start
                && reg
                    .by_client
                    .get(&client_id)
                    .is_some_and(|e| e.offline.is_some());
            if !resumable {
                // [MQTT-3.1.2-4]: Clean Start discards any existing session.
                reg.end(&client_id, &mut fallout);
            }
            reg.connected += 1;
            let entry = reg.by_client.entry(client_id.clone()).or_insert_with(|| {
                let key = shared.next_id();
                RegistryEntry {
                    key,
                    mailbox: Arc::new(Mailbox::new(
                        client_id.clone(),
                        shared.config().session.max_queued_messages,
                        shared.config().session.max_queued_bytes,
                        shared.config().queue_qos0_messages,
                    )),
                    conn: Owner::None,
                    offline: None,
                    expires_at: None,
                    pending_will: None,
                }
            });
            let state = entry.offline.take();
            // [MQTT-3.1.3-9]: a session resumed within the Will Delay
            // Interval cancels the pending will.
            entry.pending_will = None;
            entry.expires_at = None;
            entry.conn = Owner::Conn(self.id);
            entry.mailbox.attach(self.id);
            let was_persistent = entry.mailbox.is_persistent();
            entry.mailbox.set_persistent(persistent);
            let present = state.is_some();
            (
                state,
                entry.key,
                entry.mailbox.clone(),
                present,
                was_persistent,
            )
        };
        // A stored session this CONNECT discarded ends in the journal with
        // the record below (settle writes the End of every other session).
        let discarded = fallout
            .ended
            .iter()
            .position(|c| *c == client_id)
            .map(|i| fallout.ended.swap_remove(i))
            .is_some();
        shared.settle(fallout);
        let (client, expiry) = (client_id.clone(), self.session.session_expiry());
        // The CONNACK waits for the record of what it tells the client
        // (see `RoundLog::barrier`): a crash after it must neither lose the
        // session the client was told it has, nor bring back one it was
        // told is gone (Session Present 0: 3.1.1 [MQTT-3.2.2-1], 5.0
        // [MQTT-3.2.2-2]) or will end with
        // this connection (Session Expiry 0).
        let barrier = if persistent && !present {
            // A new persistent session: earlier state of this id is gone.
            let up = Entry::Up { client, expiry };
            if discarded {
                let end = Entry::End {
                    client: client_id.clone(),
                };
                shared.journal().record_waited(&[end, up])
            } else {
                shared.journal().record_waited(&[up])
            }
        } else if present && was_persistent {
            // Connected again: until the next Down, a crash must not count
            // the session as offline (with expiry 0, ends it).
            shared
                .journal()
                .record_waited(&[Entry::Resume { client, expiry }])
        } else if discarded {
            shared.journal().record_waited(&[Entry::End { client }])
        } else {
            None
        };
        shared.routes().add_mailbox(key, mailbox.clone());
        shared.counters().client_accepted();

        let state = state.map_or_else(|| SessionState::new(client_id.clone(), 0), |s| *s);
        self.session.accept_authenticated(
            crate::clock::now(),
            state,
            present,
            assigned.then(|| client_id.clone()),
            auth_data,
        );
        self.attached = Some(Attached {
            key,
            mailbox,
            persistent,
            identity: Arc::new(identity),
        });
        self.wait_for(barrier);
        // Messages that arrived while offline.
        self.drain_mailbox(crate::clock::now());
        // Shutdown rings the mailboxes it finds; one added after that sees
        // the flag.
        if shared.life().is_shutting_down() {
            self.session.disconnect(ReasonCode::ServerShuttingDown);
        }
    }

    /// Hands the session back to the registry (or ends it) and publishes the
    /// will if one is due.
    pub(super) fn finish(mut self) {
        // Nothing of this round is written (what earlier rounds left unsent
        // already passed its wait): no need to wait for it.
        let _ = self.record_round();
        let Some(a) = self.attached.take() else {
            return;
        };
        if let Some(ip) = a.identity.peer.map(|p| p.ip()) {
            self.shared.admission().disconnect(ip);
        }
        let (expiry, will) = self
            .more
            .as_mut()
            .and_then(|m| m.closed.take())
            .unwrap_or((0, None));
        // The will is checked again when it is due: rules reloaded since
        // the CONNECT may deny it now.
        let will = will.filter(|w| {
            let m = &w.message;
            let ok = self
                .shared
                .authorizer()
                .publish(&a.identity, &m.topic, m.qos, m.retain);
            if !ok {
                tracing::info!(client_id = %a.client_id(), topic = %m.topic, "will dropped: not authorized any more");
            }
            ok
        });
        // A delayed will of a session kept offline waits in the registry;
        // the journal keeps it too. Due at the Will Delay Interval or the
        // session's end, whichever is first [MQTT-3.1.3-9].
        let delayed = will
            .as_ref()
            .filter(|w| !w.delay.is_zero() && a.persistent && self.shared.journal().is_on())
            .map(|w| {
                let delay = match expiry {
                    u32::MAX => w.delay,
                    e => w.delay.min(Duration::from_secs(u64::from(e))),
                };
                let due_ms = crate::durable::now_ms()
                    .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                (due_ms, w.message.clone())
            });
        let state = self.session.take_state();
        let mut fallout = Fallout::default();
        // The journal hears of it under the registry lock: a CONNECT that
        // resumes the session right after must find its `Down` (and will)
        // already written before its `Resume`.
        let mut reg = self.shared.registry();
        let kept = reg.release(
            crate::clock::now(),
            a.client_id(),
            self.id,
            state,
            expiry,
            will,
            &mut fallout,
        );
        // A takeover that asked after this task last looked is answered
        // here.
        let takeover_done = self
            .more
            .as_mut()
            .and_then(|m| m.takeover_done.take())
            .or_else(|| a.mailbox.take_kick(self.id));
        if kept && a.persistent {
            let client = a.client_id().clone();
            self.shared.journal().record(|| Entry::Down {
                client,
                expiry,
                at_ms: crate::durable::now_ms(),
            });
            if let Some((due_ms, message)) = delayed {
                let client = a.client_id().clone();
                self.shared.journal().record(|| Entry::Will {
                    client,
                    due_ms,
                    message,
                });
            }
        }
        drop(reg);
        self.shared.settle(fallout);
        if let Some(done) = takeover_done {
            let _ = done.send(());
        }
    }
}
