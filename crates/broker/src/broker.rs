//! [`Broker`]: the facade an application holds: start, addresses, stats,
//! graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::durable::Durable;
use crate::embed::{self, EmbedError, Publication, Subscription};
use crate::journal::Journal;
use crate::listener::Endpoint;
use crate::security::Security;
use crate::shared::Shared;
use crate::transport::{Io, Stream};
use crate::{background, connection, listener, restore};
use strata_codec::QoS;
use strata_journal::Recovered;

pub use crate::stats::Stats;

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    /// Each listener's settings and TLS configuration, in the order of
    /// `local_addrs`.
    endpoints: Vec<Arc<Endpoint>>,
    tasks: Vec<JoinHandle<()>>,
    /// `max_connections`, shared by every listener and in-process
    /// connection.
    permits: Arc<Semaphore>,
    /// The admin HTTP listener's address, when there is one.
    admin_addr: Option<SocketAddr>,
    /// Its task: it outlives the others at shutdown, so `/readyz` answers
    /// 503 while connections drain.
    admin_task: Option<JoinHandle<()>>,
}

/// Serves connections to a [`Broker`] from other tasks of its tokio runtime
/// ([`Broker::handle`]).
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Weak<Shared>,
    permits: Arc<Semaphore>,
}

impl Handle {
    /// Serves one MQTT connection over `io`, as a listener serves a TCP
    /// socket; `peer` is what the authenticator sees as the client's
    /// address. Refused when `max_connections` are open, or once the
    /// broker has shut down.
    pub fn serve<S>(&self, io: S, peer: Option<SocketAddr>) -> io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self
            .shared
            .upgrade()
            .filter(|s| !s.life().is_shutting_down())
            .ok_or_else(|| io::Error::other("the broker has shut down"))?;
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| io::Error::other("the broker has max_connections connections open"))?;
        shared.life().task_started();
        let io: Box<dyn Io> = Box::new(io);
        tokio::spawn(connection::run(
            shared,
            Stream::new(io, peer),
            permit,
            crate::clock::now(),
            connection::IN_PROCESS,
        ));
        Ok(())
    }

    /// The client's end of an in-memory duplex whose other end the broker
    /// serves.
    pub fn connect_in_memory(&self) -> io::Result<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        self.serve(server, None)?;
        Ok(client)
    }
}

impl Broker {
    /// Binds every listener and starts serving.
    pub async fn start(config: BrokerConfig) -> io::Result<Broker> {
        // The security files first: a bad line is reported before any port
        // is taken.
        let security = Security::load(&config.auth, &config.listeners)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let admin_keys = config
            .admin
            .bind
            .map(|bind| crate::admin::keys(&config.admin, bind))
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if config.authenticator.is_none() && !config.auth.authenticates() {
            for (i, l) in config.listeners.iter().enumerate() {
                let by_certificate = l.tls.as_ref().is_some_and(|t| t.require_certificate);
                if !security.anonymous(Some(i)) && !by_certificate {
                    tracing::warn!(
                        listener = %l.describe(l.bind),
                        "anonymous clients are refused here and nothing else authenticates: set [auth] password_file, or allow_anonymous = true on the listener to open it"
                    );
                }
            }
        }
        let mut listeners = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            // Certificates first: a bad file is reported before any port
            // is taken.
            let endpoint = Arc::new(Endpoint::new(l.clone(), i)?);
            let addr = l.bind;
            let socket = TcpListener::bind(addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            listeners.push((socket, endpoint));
        }
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
        let shared = Arc::new(Shared::new(
            config,
            Journal::new(durable),
            Arc::new(security),
        ));
        restore::restore(&shared, recovered);
        let mut local_addrs = Vec::new();
        let mut tasks = Vec::new();
        let permits = Arc::new(Semaphore::new(shared.config().max_connections));
        let mut endpoints = Vec::new();
        for (l, endpoint) in listeners {
            let addr = l.local_addr()?;
            tracing::info!(listener = %endpoint.config.describe(addr), "listening");
            local_addrs.push(addr);
            endpoints.push(endpoint.clone());
            tasks.push(tokio::spawn(listener::accept_loop(
                shared.clone(),
                l,
                permits.clone(),
                endpoint,
            )));
        }
        let mut admin_addr = None;
        let mut admin_task = None;
        if let (Some(bind), Some(keys)) = (shared.config().admin.bind, admin_keys) {
            let l = TcpListener::bind(bind).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {bind} (admin.bind): {e}"),
                )
            })?;
            admin_addr = Some(l.local_addr()?);
            let bound = endpoints
                .iter()
                .cloned()
                .zip(local_addrs.iter().copied())
                .collect();
            admin_task = Some(tokio::spawn(crate::admin::serve(
                l,
                shared.clone(),
                keys,
                bound,
            )));
        }
        tasks.push(tokio::spawn(background::sweeper(shared.clone())));
        tasks.push(tokio::spawn(background::alarm_clock(shared.clone())));
        if shared.journal().is_on() {
            tasks.push(tokio::spawn(background::compactor(shared.clone())));
        }
        if let Some(every) = shared.config().sys_interval {
            tasks.push(tokio::spawn(background::sys_publisher(
                shared.clone(),
                every,
            )));
        }
        Ok(Broker {
            shared,
            local_addrs,
            endpoints,
            tasks,
            permits,
            admin_addr,
            admin_task,
        })
    }

    /// The admin HTTP listener's address (port 0 resolved), if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The addresses the listeners are bound to (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Each listener as the start-up line names it: the address for TCP
    /// (`127.0.0.1:1883`), a URL for the others (`tls://127.0.0.1:8883`,
    /// `ws://127.0.0.1:8080/mqtt`), with the port bound.
    pub fn listening(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .zip(&self.local_addrs)
            .map(|(e, a)| e.config.describe(*a))
            .collect()
    }

    /// Reads every TLS listener's certificate, key, CA and CRL files
    /// again: new handshakes use them, open connections keep theirs. A
    /// listener whose files cannot be used keeps its configuration; the
    /// error (naming the file and the reason) is returned with the
    /// listener's name, and logged.
    pub fn reload_certificates(&self) -> Vec<(String, io::Result<()>)> {
        listener::reload_certificates(&self.bound())
    }

    /// Each listener's endpoint with its bound address.
    fn bound(&self) -> Vec<(Arc<Endpoint>, SocketAddr)> {
        self.endpoints
            .iter()
            .cloned()
            .zip(self.local_addrs.iter().copied())
            .collect()
    }

    /// Reloads what can change while the broker runs: every TLS
    /// listener's certificates (as [`Broker::reload_certificates`]) and the
    /// files of `[auth]` (password file, ACL, bans). Whatever cannot be
    /// read keeps its old version; each error is logged and returned,
    /// naming the file (and line).
    pub fn reload(&self) -> Vec<(String, io::Result<()>)> {
        listener::reload(&self.shared, &self.bound())
    }

    /// Applies a configuration's `[limits]` that apply per address and per
    /// client (`ClientLimits`: connections per address, CONNECT rate,
    /// failed logins, subscriptions, topic length and levels, publish
    /// rates) to the running broker: from the next check on, open
    /// connections included. The rest of `[limits]` takes a restart.
    pub fn reload_limits(&self, config: &BrokerConfig) {
        if config.limits != self.shared.admission().limits() {
            self.shared.admission().set_limits(&config.limits);
            tracing::info!(limits = ?config.limits, "[limits] reloaded");
        }
    }

    /// Sessions the broker holds, connected or offline.
    pub fn session_count(&self) -> usize {
        self.shared.registry().by_client.len()
    }

    /// Clients connected now.
    pub fn connected_clients(&self) -> usize {
        self.shared.registry().connected
    }

    /// The broker's counters and levels now.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Serves one MQTT connection over `io`, any byte stream (an in-memory
    /// duplex, a TLS or WebSocket stream an application set up itself),
    /// as a listener serves a TCP socket; see [`Handle::serve`].
    pub fn serve<S>(&self, io: S, peer: Option<SocketAddr>) -> io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.handle().serve(io, peer)
    }

    /// A connection to this broker in this process: the client's end of
    /// an in-memory duplex whose other end the broker serves.
    pub fn connect_in_memory(&self) -> io::Result<tokio::io::DuplexStream> {
        self.handle().connect_in_memory()
    }

    /// A handle that serves connections from another task (an
    /// application's own listener); it does not keep the broker alive.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::downgrade(&self.shared),
            permits: self.permits.clone(),
        }
    }

    /// Publishes `p` in-process, as the broker itself; resolves once it is
    /// routed and, when it must survive a restart, durable. Returns the
    /// deliveries made.
    pub async fn publish(&self, p: Publication) -> Result<usize, EmbedError> {
        embed::publish(&self.shared, p).await
    }

    /// Subscribes in-process to `filter` with the maximum QoS `qos`; the
    /// subscription ends when dropped.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<Subscription, EmbedError> {
        embed::subscribe(&self.shared, filter, qos)
    }

    /// The CONNECT gate, for tests that hold a client id's CONNECT.
    #[cfg(test)]
    pub(crate) fn gate(&self) -> &crate::gate::ConnectGate {
        self.shared.gate()
    }

    /// Stops accepting, sends DISCONNECT 0x8B (Server shutting down) to every
    /// 5.0 client, closes every connection, and waits up to `grace` for the
    /// connection tasks to finish. The admin listener stays up until then,
    /// its `/readyz` answering 503.
    pub async fn shutdown(self, grace: Duration) {
        for t in &self.tasks {
            t.abort();
        }
        // Dropped once they return: their hold on the shared state (and
        // the data directory's lock) ends here, not at some later poll.
        for t in self.tasks {
            let _ = t.await;
        }
        self.shared.life().begin_shutdown();
        // Connected sessions hear of it through their mailbox; one that
        // attaches after this sees the flag.
        self.shared.routes().shut_all();
        let deadline = tokio::time::Instant::now() + grace;
        if !self.shared.life().idle_by(deadline).await {
            tracing::warn!(
                remaining = self.shared.life().active(),
                "shutdown grace period over"
            );
        }
        // The admin listener answered /readyz with 503 meanwhile.
        if let Some(t) = self.admin_task {
            t.abort();
            let _ = t.await;
        }
        // A finished connection task lets go of the shared state just
        // after it counts itself out; the data directory is free once the
        // last one did.
        while Arc::strong_count(&self.shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_codec::MqttStr;

    use super::*;

    /// A 3.1.1 CONNECT with Clean Session 1 for `client`.
    fn connect_packet(client: &str) -> Vec<u8> {
        let mut p = vec![0x10, (12 + client.len()) as u8, 0, 4];
        p.extend_from_slice(b"MQTT");
        p.extend_from_slice(&[4, 0x02, 0, 60, 0, client.len() as u8]);
        p.extend_from_slice(client.as_bytes());
        p
    }

    async fn connect(addr: std::net::SocketAddr, client: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(&connect_packet(client)).await.expect("write");
        s
    }

    async fn connack(s: &mut tokio::net::TcpStream) -> [u8; 4] {
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 4];
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_exact(&mut b))
            .await
            .expect("no CONNACK within 10 s")
            .expect("read");
        b
    }

    #[tokio::test]
    async fn a_stuck_takeover_of_one_id_holds_up_no_other_login() {
        let config = BrokerConfig {
            listeners: vec![crate::config::Listener::tcp(
                "127.0.0.1:0".parse().expect("addr"),
            )],
            ..Default::default()
        };
        let broker = Broker::start(config).await.expect("start");
        let addr = broker.local_addrs()[0];
        // A takeover of "a" that does not end: its CONNECT holds the pass.
        let stuck = broker.gate().enter(&MqttStr::from_static("a")).await;
        let mut a = connect(addr, "a").await;
        // Its CONNECT is read and waits at the gate before "b" connects.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while broker.gate().len() < 1 || !broker.gate().is_waited(&MqttStr::from_static("a")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a never reached the gate"
            );
            tokio::task::yield_now().await;
        }
        let mut b = connect(addr, "b").await;
        assert_eq!(connack(&mut b).await, [0x20, 2, 0, 0], "b's CONNACK");
        // "a" still waits: nothing came for it.
        let mut buf = [0u8; 4];
        assert!(
            matches!(a.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a got an answer while its id's CONNECT was held"
        );
        drop(stuck);
        assert_eq!(
            connack(&mut a).await,
            [0x20, 2, 0, 0],
            "a's CONNACK once the pass is free"
        );
        broker.shutdown(std::time::Duration::from_secs(1)).await;
    }
}
