//! [`Broker`]: the shared state, the listeners, routing of published
//! messages, the session sweeper and `$SYS`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_codec::{MqttStr, QoS};
use strata_router::Router;
use strata_session::Message;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::connection;
use crate::durable::Durable;
use crate::gate::ConnectGate;
use crate::mailbox::{Mailbox, Push};
use crate::registry::{Fallout, Registry};
use crate::util::{IdMap, lock};
use strata_journal::{Entry, Recovered, delivery};

/// Counters behind `$SYS/broker/...`.
#[derive(Debug, Default)]
pub struct Stats {
    pub clients_total: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
}

thread_local! {
    /// The matches of one publish, kept for the next one on this thread.
    static MATCHES: std::cell::Cell<Vec<strata_router::Delivery<u64>>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// What [`Shared::publish_with`] did.
#[derive(Debug)]
pub(crate) struct Published {
    /// Deliveries queued.
    pub delivered: usize,
    /// The completion will be called: the message is being stored.
    pub waiting: bool,
    /// A congested receiver to wait for.
    pub congested: Option<Arc<Mailbox>>,
}

/// Everything the connection tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub session_config: Arc<strata_session::Config>,
    pub router: Mutex<Router<u64, Arc<Message>>>,
    pub registry: Mutex<Registry>,
    /// Router key to mailbox, read on every publish.
    pub mailboxes: RwLock<IdMap<Arc<Mailbox>>>,
    /// CONNECT handling (takeover, resume) runs one at a time per client id.
    pub connect_gate: ConnectGate,
    pub next_id: AtomicU64,
    pub stats: Stats,
    pub started: Instant,
    pub shutdown: watch::Sender<bool>,
    pub active: AtomicUsize,
    pub idle: Notify,
    /// The connections' keep-alive and CONNECT deadlines.
    pub alarms: crate::alarm::Alarms,
    /// The journal under the data directory; `None` keeps state in memory.
    pub durable: Option<Durable>,
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes a message to every matching subscriber's mailbox; returns how
    /// many deliveries were made. `publisher` is the router key of the
    /// publishing session (for No Local). Messages that must survive are
    /// stored first: see [`Shared::publish_with`].
    pub fn publish(&self, message: Message, publisher: Option<u64>) -> usize {
        self.publish_with(message, publisher, None, true, |_| {})
            .delivered
    }

    /// [`Shared::publish`], and with a data directory, stores the message
    /// when it must survive a restart: retained (when `durable` is set), or
    /// QoS 1/2 with a persistent session among the receivers. Then `done`
    /// runs once the message is durable (`true`) or could not be stored
    /// (`false`), and the second value returned is `true`; otherwise `done`
    /// is dropped and it is `false`. The message is appended before any
    /// subscriber sees it, so every later journal entry about it follows it.
    /// `congested` names a receiving mailbox (not the publisher's own) the
    /// publisher should wait on before reading more (see `mailbox.rs`).
    /// `from` (a persistent publisher's client id and inbound QoS 2 packet
    /// id, or 0) goes into the stored record with the message.
    ///
    /// Lock order: router, then mailboxes (read).
    pub fn publish_with(
        &self,
        mut message: Message,
        publisher: Option<u64>,
        from: Option<(&MqttStr, u16)>,
        durable: bool,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> Published {
        let mut matches = MATCHES.take();
        let mut router = lock(&self.router);
        router.route(&message.topic, publisher, &mut matches);
        let mailboxes = self.mailboxes.read().unwrap_or_else(|e| e.into_inner());
        let store = match &self.durable {
            Some(d) if durable => {
                let keep = message.retain
                    || (message.qos != QoS::AtMostOnce
                        && matches.iter().any(|m| {
                            m.qos != QoS::AtMostOnce
                                && mailboxes.get(&m.key).is_some_and(|mb| mb.is_persistent())
                        }));
                if keep {
                    message.id = d.next_id();
                }
                keep.then_some(d)
            }
            _ => None,
        };
        let message = Arc::new(message);
        if message.retain {
            // [MQTT-3.3.1-5]..[MQTT-3.3.1-7] (3.1.1: [MQTT-3.3.1-10]
            // [MQTT-3.3.1-11]): an empty payload clears, anything else
            // replaces. The kept copy has allocations of its own: a slice
            // would hold the publisher's whole read buffer for as long as
            // the message stays retained.
            let keep = (!message.payload.is_empty()).then(|| {
                Arc::new(Message {
                    topic: message.topic.detach(),
                    payload: Bytes::copy_from_slice(&message.payload),
                    ..(*message).clone()
                })
            });
            router.set_retained(&message.topic, keep);
        }
        let waiting = match store {
            Some(d) => {
                // Which member of a share group got the message is the
                // router's choice of the moment, which replay cannot make
                // again: it is stated, in the message's append.
                let chosen = matches
                    .iter()
                    .filter(|m| m.share_group.is_some() && m.qos != QoS::AtMostOnce)
                    .filter_map(|m| {
                        let mb = mailboxes.get(&m.key).filter(|mb| mb.is_persistent())?;
                        Some(Entry::Pending {
                            client: mb.client.clone(),
                            id: message.id,
                            qos: m.qos,
                            retain: m.retain_as_published && message.retain,
                            subscription_ids: m.subscription_ids.clone(),
                            on_subscribe: false,
                        })
                    })
                    .collect();
                d.record_message_then(&message, from, chosen, done);
                true
            }
            None => false,
        };
        drop(router);
        let mut published = Published {
            delivered: 0,
            waiting,
            congested: None,
        };
        for m in matches.drain(..) {
            let Some(mb) = mailboxes.get(&m.key) else {
                continue;
            };
            let key = m.key;
            match mb.push(delivery(&message, m)) {
                Push::Dropped(d) => {
                    // A stored copy this session will never get: the
                    // journal must say so, or a restart brings it back (a
                    // QoS 0 copy is never kept for one).
                    if message.id != 0 && d.effective_qos() != QoS::AtMostOnce && mb.is_persistent()
                    {
                        let client = mb.client.clone();
                        let copies = vec![strata_journal::Unsent::of(d)];
                        self.record(|| Entry::Dropped { client, copies });
                    }
                    continue;
                }
                Push::First => mb.wake(),
                Push::Congested if publisher != Some(key) => {
                    published.congested.get_or_insert_with(|| mb.clone());
                }
                Push::Congested | Push::Queued => {}
            }
            published.delivered += 1;
        }
        // A rare huge fan-out does not pin its buffer to the thread.
        if matches.capacity() <= 4096 {
            MATCHES.set(matches);
        }
        published
    }

    /// Appends `entry` to the journal, if there is one; nothing waits.
    pub fn record(&self, entry: impl FnOnce() -> Entry) {
        if let Some(d) = &self.durable {
            d.record(&entry());
        }
    }

    /// Appends `entries` to the journal as one batch, if there is a
    /// journal and they are not empty; the receiver says when they are
    /// durable (`true`) or failed.
    pub(crate) fn record_waited(
        &self,
        entries: &[Entry],
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let d = self.durable.as_ref()?;
        if entries.is_empty() {
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        d.record_then(entries, move |ok| {
            let _ = tx.send(ok);
        });
        Some(rx)
    }

    /// Removes subscriptions and mailboxes of ended sessions and publishes
    /// their wills.
    pub fn settle(&self, fallout: Fallout) {
        if !fallout.removed_keys.is_empty() {
            {
                let mut router = lock(&self.router);
                for &k in &fallout.removed_keys {
                    router.remove_all(k);
                }
            }
            let mut mailboxes = self.mailboxes.write().unwrap_or_else(|e| e.into_inner());
            for k in &fallout.removed_keys {
                mailboxes.remove(k);
            }
        }
        let now = Instant::now();
        for mut will in fallout.wills {
            // Expiry of a will counts from when it is published.
            will.received = now;
            self.publish(will, None);
        }
        // After the wills: a crash in between publishes a will twice
        // rather than never [MQTT-3.1.2-8].
        for client in fallout.ended {
            self.record(|| Entry::End { client });
        }
        for client in fallout.wills_gone {
            self.record(|| Entry::WillGone { client });
        }
    }
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Broker {
    /// Binds every listener and starts serving.
    pub async fn start(config: BrokerConfig) -> io::Result<Broker> {
        let mut listeners = Vec::new();
        for addr in &config.listeners {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            listeners.push(l);
        }
        let seed = std::process::id() as u64 ^ 0x9E37_79B9_7F4A_7C15;
        let (durable, recovered) = match &config.storage.data_dir {
            Some(dir) => {
                let (storage, dir, share) =
                    (config.storage.clone(), dir.clone(), config.share_strategy);
                let backend = config.storage_backend.clone();
                // Replay reads files: off the async threads.
                let (d, r) = tokio::task::spawn_blocking(move || {
                    Durable::open(&storage, &dir, share, backend)
                })
                .await
                .map_err(io::Error::other)??;
                (Some(d), r)
            }
            None => (None, Recovered::default()),
        };
        let shared = Arc::new(Shared {
            session_config: Arc::new(config.session.clone()),
            router: Mutex::new(Router::new(config.share_strategy, seed)),
            registry: Mutex::new(Registry::default()),
            mailboxes: RwLock::new(IdMap::default()),
            connect_gate: ConnectGate::default(),
            next_id: AtomicU64::new(1),
            stats: Stats::default(),
            started: Instant::now(),
            shutdown: watch::channel(false).0,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            alarms: Default::default(),
            durable,
            config,
        });
        restore(&shared, recovered);
        let mut local_addrs = Vec::new();
        let mut tasks = Vec::new();
        let permits = Arc::new(Semaphore::new(shared.config.max_connections));
        for l in listeners {
            let addr = l.local_addr()?;
            tracing::info!(%addr, "listening");
            local_addrs.push(addr);
            tasks.push(tokio::spawn(accept_loop(
                shared.clone(),
                l,
                permits.clone(),
            )));
        }
        tasks.push(tokio::spawn(sweeper(shared.clone())));
        tasks.push(tokio::spawn(alarm_clock(shared.clone())));
        if shared.durable.is_some() {
            tasks.push(tokio::spawn(compactor(shared.clone())));
        }
        if let Some(every) = shared.config.sys_interval {
            tasks.push(tokio::spawn(sys_publisher(shared.clone(), every)));
        }
        Ok(Broker {
            shared,
            local_addrs,
            tasks,
        })
    }

    /// The addresses the listeners are bound to (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Sessions the broker holds, connected or offline.
    pub fn session_count(&self) -> usize {
        lock(&self.shared.registry).by_client.len()
    }

    /// The CONNECT gate, for tests that hold a client id's CONNECT.
    #[cfg(test)]
    pub(crate) fn gate(&self) -> &ConnectGate {
        &self.shared.connect_gate
    }

    /// Clients connected now.
    pub fn connected_clients(&self) -> usize {
        lock(&self.shared.registry).connected
    }

    /// Stops accepting, sends DISCONNECT 0x8B (Server shutting down) to every
    /// 5.0 client, closes every connection, and waits up to `grace` for the
    /// connection tasks to finish.
    pub async fn shutdown(self, grace: Duration) {
        for t in &self.tasks {
            t.abort();
        }
        // Dropped once they return: their hold on the shared state (and
        // the data directory's lock) ends here, not at some later poll.
        for t in self.tasks {
            let _ = t.await;
        }
        // Kept even with no receiver: connections check the flag.
        self.shared.shutdown.send_replace(true);
        // Connected sessions hear of it through their mailbox; one that
        // attaches after this sees the flag.
        for mb in self
            .shared
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            mb.shut();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.active.load(Ordering::Acquire) > 0 {
            let idle = self.shared.idle.notified();
            if self.shared.active.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                tracing::warn!(
                    remaining = self.shared.active.load(Ordering::Acquire),
                    "shutdown grace period over"
                );
                break;
            }
        }
        // A finished connection task lets go of the shared state just
        // after it counts itself out; the data directory is free once the
        // last one did.
        while Arc::strong_count(&self.shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, permits: Arc<Semaphore>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                shared.active.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(%peer, "connection");
                // The task counts itself out of `active` when it ends.
                tokio::spawn(connection::run(shared.clone(), stream, permit));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Wakes connection tasks at their deadlines.
async fn alarm_clock(shared: Arc<Shared>) {
    shared.alarms.run().await;
}

/// Ends expired offline sessions and publishes delayed wills.
async fn sweeper(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let mut fallout = Fallout::default();
        lock(&shared.registry).sweep(Instant::now(), &mut fallout);
        shared.settle(fallout);
    }
}

/// Compacts the journal whenever it has grown enough, one compaction at a
/// time, off the async threads.
async fn compactor(shared: Arc<Shared>) {
    let Some(d) = &shared.durable else { return };
    loop {
        d.compaction_wanted().await;
        let s = shared.clone();
        let done = tokio::task::spawn_blocking(move || s.durable.as_ref().map(|d| d.compact()));
        if let Ok(Some(Err(e))) = done.await {
            tracing::error!(error = %e, "journal compaction failed; the log goes on as it was");
        }
    }
}

/// Publishes the `$SYS/broker/...` topics, retained, every `every`.
/// Puts recovered sessions, their subscriptions and offline queues, and the
/// retained messages in place, before any listener accepts.
fn restore(shared: &Shared, r: Recovered) {
    let now = Instant::now();
    let mut subscriptions = Vec::new();
    {
        let mut reg = lock(&shared.registry);
        let mut mailboxes = shared.mailboxes.write().unwrap_or_else(|e| e.into_inner());
        for s in r.sessions {
            let key = shared.next_id();
            let mailbox = Arc::new(Mailbox::new(
                s.client_id.clone(),
                shared.config.session.max_queued_messages,
                shared.config.session.max_queued_bytes,
            ));
            mailbox.set_persistent(true);
            for d in s.pending {
                // Offline: no wake, and the overflow policy applies; a copy
                // it drops is journaled as dropped, or the next restart
                // would bring it back, late.
                if let Push::Dropped(d) = mailbox.push(d) {
                    let client = s.client_id.clone();
                    let copies = vec![strata_journal::Unsent::of(d)];
                    shared.record(|| Entry::Dropped { client, copies });
                }
            }
            subscriptions.push((key, s.subscriptions));
            mailboxes.insert(key, mailbox.clone());
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
                crate::registry::Entry {
                    key,
                    mailbox,
                    conn: crate::registry::Owner::None,
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
    let mut router = lock(&shared.router);
    for m in r.retained {
        router.set_retained(&m.topic.clone(), Some(m));
    }
    for (key, subs) in subscriptions {
        for (filter, opts) in subs {
            router.subscribe(key, &filter, opts);
        }
    }
}

async fn sys_publisher(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for (topic, value) in sys_values(&shared) {
            let message = Message {
                topic: MqttStr::from_static(topic),
                payload: Bytes::from(value),
                qos: QoS::AtMostOnce,
                retain: true,
                properties: Default::default(),
                received: Instant::now(),
                id: 0,
            };
            // $SYS values are regenerated, never stored.
            shared.publish_with(message, None, None, false, |_| {});
        }
    }
}

fn sys_values(shared: &Shared) -> Vec<(&'static str, String)> {
    let s = &shared.stats;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
    let connected = lock(&shared.registry).connected;
    let (subscriptions, retained) = {
        let r = lock(&shared.router);
        (r.subscription_count(), r.retained_count())
    };
    vec![
        (
            "$SYS/broker/uptime",
            format!("{} seconds", shared.started.elapsed().as_secs()),
        ),
        (
            "$SYS/broker/version",
            format!("strata {}", env!("CARGO_PKG_VERSION")),
        ),
        ("$SYS/broker/clients/connected", connected.to_string()),
        ("$SYS/broker/clients/total", get(&s.clients_total)),
        ("$SYS/broker/messages/received", get(&s.messages_received)),
        ("$SYS/broker/messages/sent", get(&s.messages_sent)),
        ("$SYS/broker/bytes/received", get(&s.bytes_received)),
        ("$SYS/broker/bytes/sent", get(&s.bytes_sent)),
        ("$SYS/broker/subscriptions/count", subscriptions.to_string()),
        ("$SYS/broker/retained messages/count", retained.to_string()),
    ]
}
