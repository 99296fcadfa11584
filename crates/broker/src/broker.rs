//! [`Broker`]: the shared state, the listeners, routing of published
//! messages, the session sweeper and `$SYS`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_codec::{MqttStr, QoS};
use strata_router::Router;
use strata_session::{Delivery, Message};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::connection;
use crate::mailbox::Mailbox;
use crate::registry::{Fallout, Registry};

/// Counters behind `$SYS/broker/...`.
#[derive(Debug, Default)]
pub struct Stats {
    pub clients_total: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
}

/// Everything the connection tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub session_config: Arc<strata_session::Config>,
    pub router: Mutex<Router<u64, Arc<Message>>>,
    pub registry: Mutex<Registry>,
    /// Router key to mailbox, read on every publish.
    pub mailboxes: RwLock<HashMap<u64, Arc<Mailbox>>>,
    /// CONNECT handling (takeover, resume) runs one at a time.
    pub connect_lock: tokio::sync::Mutex<()>,
    pub next_id: AtomicU64,
    pub stats: Stats,
    pub started: Instant,
    pub shutdown: watch::Sender<bool>,
    pub active: AtomicUsize,
    pub idle: Notify,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded structures stay consistent across a panic in a holder
    // (no method leaves them half-updated before a call that can panic).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes a message to every matching subscriber's mailbox; returns how
    /// many deliveries were made. `publisher` is the router key of the
    /// publishing session (for No Local).
    pub fn publish(&self, message: Message, publisher: Option<u64>) -> usize {
        let message = Arc::new(message);
        let mut matches = Vec::new();
        {
            let mut router = lock(&self.router);
            if message.retain {
                // [MQTT-3.3.1-5]..[MQTT-3.3.1-7] (3.1.1: [MQTT-3.3.1-10]
                // [MQTT-3.3.1-11]): an empty payload clears, anything else
                // replaces.
                let keep = (!message.payload.is_empty()).then(|| message.clone());
                router.set_retained(&message.topic, keep);
            }
            router.route(&message.topic, publisher, &mut matches);
        }
        if matches.is_empty() {
            return 0;
        }
        let mailboxes = self.mailboxes.read().unwrap_or_else(|e| e.into_inner());
        let mut delivered = 0;
        for m in matches {
            let Some(mb) = mailboxes.get(&m.key) else {
                continue;
            };
            let d = Delivery {
                message: message.clone(),
                qos: m.qos,
                // [MQTT-3.3.1-12] [MQTT-3.3.1-13] (3.1.1: [MQTT-3.3.1-9])
                retain: m.retain_as_published && message.retain,
                subscription_ids: m.subscription_ids,
            };
            if mb.push(d) {
                mb.wake();
                delivered += 1;
            }
        }
        delivered
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
        let shared = Arc::new(Shared {
            session_config: Arc::new(config.session.clone()),
            router: Mutex::new(Router::new(config.share_strategy, seed)),
            registry: Mutex::new(Registry::default()),
            mailboxes: RwLock::new(HashMap::new()),
            connect_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            stats: Stats::default(),
            started: Instant::now(),
            shutdown: watch::channel(false).0,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            config,
        });
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
        let _ = self.shared.shutdown.send(true);
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
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection::run(shared.clone(), stream, peer).await;
                    drop(permit);
                    if shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                        shared.idle.notify_waiters();
                    }
                });
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

/// Publishes the `$SYS/broker/...` topics, retained, every `every`.
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
            };
            shared.publish(message, None);
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
