//! [`Shared`]: what every connection task reaches, as components that own
//! their data behind narrow handles: routing and mailboxes ([`Routes`]),
//! the session registry and the CONNECT gate, the journal handle, the
//! counters, the alarm clock and the broker's lifecycle.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use strata_codec::MqttStr;
use strata_journal::Entry;
use strata_session::Message;

use crate::admission::Admission;
use crate::alarm::Alarms;
use crate::auth::{Authenticator, Authorizer};
use crate::config::BrokerConfig;
use crate::gate::ConnectGate;
use crate::journal::Journal;
use crate::lifecycle::Lifecycle;
use crate::registry::{Fallout, Registry};
use crate::routing::{Published, Routes};
use crate::security::Security;
use crate::stats::{Counters, Gauges, Stats};
use crate::util::lock;

#[derive(Debug)]
pub(crate) struct Shared {
    config: BrokerConfig,
    session_config: Arc<strata_session::Config>,
    routes: Routes,
    registry: Mutex<Registry>,
    gate: ConnectGate,
    journal: Journal,
    counters: Counters,
    alarms: Alarms,
    life: Lifecycle,
    /// Connection ids and router keys: never repeated in this process.
    next_id: AtomicU64,
    started: Instant,
    /// The application's, or the broker's own ([`Security`]).
    authenticator: Arc<dyn Authenticator>,
    authorizer: Arc<dyn Authorizer>,
    /// The broker's own, when either of the two above is it: what a reload
    /// reloads.
    security: Option<Arc<Security>>,
    /// Per address limits: connections, CONNECT rate, failed logins.
    admission: Admission,
    /// Connections open on each listener (by its index), for listeners
    /// with a `max_connections` of their own.
    listener_open: Vec<AtomicUsize>,
}

impl Shared {
    /// `security` is the broker's own authentication, used where the
    /// configuration names no authenticator or authorizer of an
    /// application's.
    pub fn new(config: BrokerConfig, journal: Journal, security: Arc<Security>) -> Shared {
        let seed = std::process::id() as u64 ^ 0x9E37_79B9_7F4A_7C15;
        let authenticator: Arc<dyn Authenticator> = match &config.authenticator {
            Some(a) => a.clone(),
            None => security.clone(),
        };
        let authorizer: Arc<dyn Authorizer> = match &config.authorizer {
            Some(a) => a.clone(),
            None => security.clone(),
        };
        let security =
            (config.authenticator.is_none() || config.authorizer.is_none()).then_some(security);
        Shared {
            session_config: Arc::new(strata_session::Config {
                enhanced_auth: authenticator.enhanced(),
                ..config.session.clone()
            }),
            routes: Routes::new(config.share_strategy, seed),
            registry: Mutex::new(Registry::default()),
            gate: ConnectGate::default(),
            journal,
            counters: Counters::default(),
            alarms: Alarms::default(),
            life: Lifecycle::default(),
            next_id: AtomicU64::new(1),
            started: crate::clock::now(),
            admission: Admission::new(&config.limits),
            listener_open: config
                .listeners
                .iter()
                .map(|_| AtomicUsize::new(0))
                .collect(),
            config,
            authenticator,
            authorizer,
            security,
        }
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// A connection accepted on listener `i`: whether its own
    /// `max_connections` has room (then it counts until
    /// [`Shared::listener_left`]).
    pub fn listener_admit(&self, i: u16) -> bool {
        let Some(max) = self
            .config
            .listeners
            .get(usize::from(i))
            .and_then(|l| l.max_connections)
        else {
            return true;
        };
        let open = &self.listener_open[usize::from(i)];
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
    }

    /// A connection that [`Shared::listener_admit`] counted ended.
    pub fn listener_left(&self, i: u16) {
        let counted = self
            .config
            .listeners
            .get(usize::from(i))
            .is_some_and(|l| l.max_connections.is_some());
        if counted {
            self.listener_open[usize::from(i)].fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.authenticator
    }

    pub fn authorizer(&self) -> &Arc<dyn Authorizer> {
        &self.authorizer
    }

    pub fn security(&self) -> Option<&Arc<Security>> {
        self.security.as_ref()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn session_config(&self) -> &Arc<strata_session::Config> {
        &self.session_config
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The registry, locked; never held with the router (see
    /// `registry.rs`).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    pub fn gate(&self) -> &ConnectGate {
        &self.gate
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    pub fn life(&self) -> &Lifecycle {
        &self.life
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes a message to every matching subscriber's mailbox; returns how
    /// many deliveries were made. `publisher` is the router key of the
    /// publishing session (for No Local). Messages that must survive are
    /// stored first: see [`Routes::publish_with`].
    pub fn publish(&self, message: Message, publisher: Option<u64>) -> usize {
        self.publish_with(message, publisher, None, true, |_| {})
            .delivered
    }

    /// [`Routes::publish_with`] with this broker's journal.
    pub fn publish_with(
        &self,
        message: Message,
        publisher: Option<u64>,
        from: Option<(&MqttStr, u16)>,
        durable: bool,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> Published {
        self.routes
            .publish_with(&self.journal, message, publisher, from, durable, done)
    }

    /// Removes subscriptions and mailboxes of ended sessions and publishes
    /// their wills.
    pub fn settle(&self, fallout: Fallout) {
        self.routes.remove(&fallout.removed_keys);
        let now = crate::clock::now();
        for mut will in fallout.wills {
            // Expiry of a will counts from when it is published.
            will.received = now;
            self.publish(will, None);
        }
        // After the wills: a crash in between publishes a will twice
        // rather than never [MQTT-3.1.2-8].
        for client in fallout.ended {
            self.journal.record(|| Entry::End { client });
        }
        for client in fallout.wills_gone {
            self.journal.record(|| Entry::WillGone { client });
        }
    }

    /// The counters, and the levels of the registry and the router.
    pub fn stats(&self) -> Stats {
        let (clients_connected, sessions) = {
            let reg = self.registry();
            (reg.connected, reg.by_client.len())
        };
        let (subscriptions, retained) = {
            let r = self.routes.router();
            (r.subscription_count(), r.retained_count())
        };
        self.counters.snapshot(Gauges {
            clients_connected,
            sessions,
            subscriptions,
            retained,
        })
    }
}
