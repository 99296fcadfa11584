//! The load generator's clients driven by the rumqttc crate (`--client
//! rumqttc`): client code Strata did not write, with its own framing,
//! buffering and acknowledgement handling, as an application on it would
//! run. Each client is an `AsyncClient` and its `EventLoop`, with
//! TCP_NODELAY on, as device clients set it. MQTT 3.1.1 only.
//!
//! Latency ends when the generator's task reads the message (rumqttc does
//! not pass the socket's receive time through), so it includes the
//! generator's own queueing; the raw clients measure to the socket.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet,
    QoS,
};
use tokio::sync::{Notify, watch};

use super::raw::{Plan, Setup};
use super::{Collector, HEADER};

/// Requests queued between a client and its event loop.
const CHANNEL: usize = 64;
/// The largest packet either side takes.
const MAX_PACKET: usize = 1 << 20;

fn failed(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn qos(q: strata_codec::QoS) -> QoS {
    match q {
        strata_codec::QoS::AtMostOnce => QoS::AtMostOnce,
        strata_codec::QoS::AtLeastOnce => QoS::AtLeastOnce,
        strata_codec::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// A client and its event loop, polled until the CONNACK.
async fn connect(s: &Setup, inflight: u16) -> io::Result<(AsyncClient, EventLoop)> {
    if s.protocol.is_v5() {
        return Err(failed("--client rumqttc speaks MQTT 3.1.1 only"));
    }
    let (host, port) = s
        .addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| failed(format!("not HOST:PORT: {}", s.addr)))?;
    let mut o = MqttOptions::new(s.client_id.clone(), host, port);
    o.set_keep_alive(Duration::from_secs(u64::from(s.keep_alive)))
        .set_clean_session(s.clean_start)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_inflight(inflight.max(1));
    let (client, mut events) = AsyncClient::new(o, CHANNEL);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(30);
    events.set_network_options(net);
    loop {
        match events.poll().await.map_err(failed)? {
            Event::Incoming(Packet::ConnAck(_)) => return Ok((client, events)),
            _ => continue,
        }
    }
}

/// A connected, subscribed rumqttc subscriber.
pub(super) struct Subscriber {
    client: AsyncClient,
    events: EventLoop,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

impl Subscriber {
    pub async fn connect(s: &Setup, filter: &str, q: strata_codec::QoS) -> io::Result<Subscriber> {
        let (client, mut events) = connect(s, u16::MAX).await?;
        client.subscribe(filter, qos(q)).await.map_err(failed)?;
        loop {
            match events.poll().await.map_err(failed)? {
                Event::Incoming(Packet::SubAck(a)) => {
                    if a.return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        return Err(failed(format!("subscription refused: {a:?}")));
                    }
                    return Ok(Subscriber { client, events });
                }
                _ => continue,
            }
        }
    }

    /// Receives until `stop` turns true or changes hands, then disconnects.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        c: &mut Collector,
    ) -> io::Result<()> {
        loop {
            tokio::select! {
                biased;
                e = self.events.poll() => match e.map_err(failed)? {
                    Event::Incoming(Packet::Publish(p)) => {
                        c.read_at(None);
                        c.record(&p.payload);
                        c.delivered(1);
                    }
                    Event::Incoming(Packet::Disconnect) => {
                        return Err(failed("the broker disconnected"));
                    }
                    _ => {}
                },
                _ = stop.changed() => break,
            }
        }
        self.client.disconnect().await.map_err(failed)?;
        drain(&mut self.events).await
    }
}

/// Polls until the DISCONNECT has left, or the connection ended.
async fn drain(events: &mut EventLoop) -> io::Result<()> {
    let drained = async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => continue,
                // The broker closed first: nothing more can leave.
                Err(ConnectionError::Io(_)) => return Ok(()),
                Err(e) => return Err(failed(e)),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .map_err(|_| failed("the DISCONNECT did not leave"))?
}

/// A connected rumqttc publisher.
pub(super) struct Publisher {
    client: AsyncClient,
    events: EventLoop,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// What a publisher's event loop has seen.
#[derive(Debug, Default)]
struct Acks {
    /// PUBACKs (QoS 1) or PUBCOMPs (QoS 2).
    done: AtomicU64,
    changed: Notify,
}

impl Publisher {
    pub async fn connect(s: &Setup, inflight: usize) -> io::Result<Publisher> {
        let inflight = u16::try_from(inflight).unwrap_or(u16::MAX);
        let (client, events) = connect(s, inflight).await?;
        Ok(Publisher { client, events })
    }

    /// Publishes by `plan`, counting what was handed to rumqttc in
    /// `published`, waits for the last acknowledgement, and disconnects.
    pub async fn run(self, plan: &Plan, published: &AtomicU64) -> io::Result<()> {
        let Publisher { client, mut events } = self;
        let acks = Arc::new(Acks::default());
        let polled = {
            let acks = acks.clone();
            tokio::spawn(async move {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                            acks.done.fetch_add(1, Ordering::Relaxed);
                            acks.changed.notify_one();
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                        Ok(Event::Incoming(Packet::Disconnect)) => {
                            return Err(failed("the broker disconnected"));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(failed(e)),
                    }
                }
            })
        };
        let q = qos(plan.qos);
        let mut payload = BytesMut::with_capacity(plan.size);
        let mut seq = 0u64;
        loop {
            let now = Instant::now();
            if (plan.count > 0 && seq >= plan.count) || now >= plan.deadline {
                break;
            }
            // As the raw publisher: a message that waited for its time is
            // stamped as it leaves; one the client held back, with the
            // time it was due.
            let sent_at = match plan
                .rate
                .map(|r| plan.t0 + Duration::from_secs_f64((seq as f64 + plan.phase) / r))
            {
                Some(due) if due > now => {
                    if due >= plan.deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                }
                Some(due) => due,
                None => now,
            };
            payload.put_u32(plan.index);
            payload.put_u64(seq);
            payload.put_u64(sent_at.saturating_duration_since(plan.epoch).as_nanos() as u64);
            payload.put_bytes(b'x', plan.size.saturating_sub(HEADER));
            let body: Bytes = payload.split().freeze();
            if polled.is_finished() {
                break;
            }
            client
                .publish_bytes(plan.topic.clone(), q, false, body)
                .await
                .map_err(failed)?;
            seq += 1;
            published.store(seq, Ordering::Relaxed);
        }
        if q != QoS::AtMostOnce {
            let give_up = tokio::time::Instant::now() + plan.ack_wait;
            while acks.done.load(Ordering::Relaxed) < seq && !polled.is_finished() {
                let notified = acks.changed.notified();
                if acks.done.load(Ordering::Relaxed) >= seq {
                    break;
                }
                if tokio::time::timeout_at(give_up, notified).await.is_err() {
                    return Err(failed(format!(
                        "{} publishes never acknowledged",
                        seq - acks.done.load(Ordering::Relaxed)
                    )));
                }
            }
        }
        // The DISCONNECT queues behind every publish: once it has left,
        // so have they.
        if !polled.is_finished() {
            client.disconnect().await.map_err(failed)?;
        }
        polled.await.map_err(failed)?
    }
}
