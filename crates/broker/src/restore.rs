//! Start-up: the state replay recovered from the journal is put in place
//! before any listener accepts.

use std::sync::Arc;

use strata_journal::{Entry, Recovered, Unsent};

use crate::mailbox::{Mailbox, Push};
use crate::registry::{Entry as RegistryEntry, Owner};
use crate::shared::Shared;

/// Puts recovered sessions, their subscriptions and offline queues, and the
/// retained messages in place, before any listener accepts.
pub(crate) fn restore(shared: &Shared, r: Recovered) {
    let now = crate::clock::now();
    let mut subscriptions = Vec::new();
    {
        let mut reg = shared.registry();
        for s in r.sessions {
            let key = shared.next_id();
            let mailbox = Arc::new(Mailbox::new(
                s.client_id.clone(),
                shared.config().session.max_queued_messages,
                shared.config().session.max_queued_bytes,
                shared.config().queue_qos0_messages,
            ));
            mailbox.set_persistent(true);
            for d in s.pending {
                // Offline: no wake, and the overflow policy applies; a copy
                // it drops is journaled as dropped, or the next restart
                // would bring it back, late.
                if let Push::Dropped(d) = mailbox.push(d) {
                    let client = s.client_id.clone();
                    let copies = vec![Unsent::of(d)];
                    shared
                        .journal()
                        .record(|| Entry::Dropped { client, copies });
                }
            }
            subscriptions.push((key, s.subscriptions));
            shared.routes().add_mailbox(key, mailbox.clone());
            // In-flight flows resume under their packet ids.
            let mut state = strata_session::SessionState::new(s.client_id.clone(), s.expiry);
            for o in s.inflight {
                if !state.restore_outbound(o) {
                    tracing::warn!(client = %s.client_id, "a packet id in flight twice in the journal; the later one is dropped");
                }
            }
            for id in s.inbound {
                state.restore_inbound_qos2(id);
            }
            reg.by_client.insert(
                s.client_id,
                RegistryEntry {
                    key,
                    mailbox,
                    conn: Owner::None,
                    offline: Some(Box::new(state)),
                    expires_at: s.expires_in.map(|d| now + d),
                    // Due at once if its time passed while the broker was
                    // down; the sweeper publishes it.
                    pending_will: s.will.map(|(left, m)| Box::new((now + left, m))),
                },
            );
        }
    }
    // The router after the registry, never both at once (lock order).
    let mut router = shared.routes().router();
    for m in r.retained {
        router.set_retained(&m.topic.clone(), Some(m));
    }
    for (key, subs) in subscriptions {
        for (filter, opts) in subs {
            router.subscribe(key, &filter, opts);
        }
    }
}
