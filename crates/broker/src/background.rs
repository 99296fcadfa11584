//! The broker's own tasks beside the connections: the alarm clock, the
//! sweeper of expired sessions and delayed wills, the journal compactor and
//! the `$SYS` publisher.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_codec::{MqttStr, QoS};
use strata_session::Message;

use crate::registry::Fallout;
use crate::shared::Shared;

/// Wakes connection tasks at their deadlines.
pub(crate) async fn alarm_clock(shared: Arc<Shared>) {
    shared.alarms().run().await;
}

/// Ends expired offline sessions and publishes delayed wills.
pub(crate) async fn sweeper(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let mut fallout = Fallout::default();
        shared.registry().sweep(crate::clock::now(), &mut fallout);
        shared.settle(fallout);
    }
}

/// Compacts the journal whenever it has grown enough, one compaction at a
/// time, off the async threads.
pub(crate) async fn compactor(shared: Arc<Shared>) {
    let Some(d) = shared.journal().durable() else {
        return;
    };
    loop {
        d.compaction_wanted().await;
        let s = shared.clone();
        let done = tokio::task::spawn_blocking(move || s.journal().durable().map(|d| d.compact()));
        if let Ok(Some(Err(e))) = done.await {
            tracing::error!(error = %e, "journal compaction failed; the log goes on as it was");
        }
    }
}

/// Publishes the `$SYS/broker/...` topics, retained, every `every`.
pub(crate) async fn sys_publisher(shared: Arc<Shared>, every: Duration) {
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
                received: crate::clock::now(),
                id: 0,
            };
            // $SYS values are regenerated, never stored.
            shared.publish_with(message, None, None, false, |_| {});
        }
    }
}

fn sys_values(shared: &Shared) -> Vec<(&'static str, String)> {
    let s = shared.stats();
    vec![
        (
            "$SYS/broker/uptime",
            format!("{} seconds", shared.started().elapsed().as_secs()),
        ),
        (
            "$SYS/broker/version",
            format!("strata {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/clients/connected",
            s.clients_connected.to_string(),
        ),
        ("$SYS/broker/clients/total", s.clients_total.to_string()),
        (
            "$SYS/broker/messages/received",
            s.messages_received.to_string(),
        ),
        ("$SYS/broker/messages/sent", s.messages_sent.to_string()),
        ("$SYS/broker/bytes/received", s.bytes_received.to_string()),
        ("$SYS/broker/bytes/sent", s.bytes_sent.to_string()),
        (
            "$SYS/broker/subscriptions/count",
            s.subscriptions.to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            s.retained.to_string(),
        ),
    ]
}
