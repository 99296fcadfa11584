//! Strata embedded in an application: the broker runs in this process,
//! the application publishes and subscribes without a socket, and MQTT
//! clients on the network see the same topics.
//!
//! `cargo run -p strata-broker --example embedded`

use std::time::Duration;

use strata_broker::{Broker, BrokerConfig, Publication, QoS};

/// What the example saw, for its test to check.
#[derive(Debug)]
pub struct Seen {
    /// What the application's subscription received, in order.
    pub in_process: Vec<(String, Vec<u8>)>,
    /// What the network client received.
    pub over_tcp: Vec<(String, Vec<u8>)>,
    pub stats: strata_broker::Stats,
}

pub async fn run() -> Result<Seen, Box<dyn std::error::Error>> {
    let broker = Broker::start(BrokerConfig {
        listeners: vec![strata_broker::Listener::tcp("127.0.0.1:0".parse()?)],
        sys_interval: None,
        ..BrokerConfig::default()
    })
    .await?;
    let addr = broker.local_addrs()[0];

    // The application listens to every command, in-process.
    let mut commands = broker.subscribe("commands/#", QoS::AtLeastOnce)?;

    // A device on the network: it subscribes to telemetry requests and
    // sends a command.
    let mut options = rumqttc::MqttOptions::new("device-1", addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (device, mut events) = rumqttc::AsyncClient::new(options, 10);
    device
        .subscribe("telemetry/request", rumqttc::QoS::AtLeastOnce)
        .await?;
    let mut over_tcp = Vec::new();
    let mut published = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await?? {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) if !published => {
                device
                    .publish("commands/lamp", rumqttc::QoS::AtLeastOnce, false, "on")
                    .await?;
                published = true;
            }
            rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) => {
                // The command is routed: the application answers it.
                let request = Publication::new("telemetry/request", "send").qos(QoS::AtLeastOnce);
                broker.publish(request).await?;
            }
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                over_tcp.push((p.topic.clone(), p.payload.to_vec()));
                break;
            }
            _ => {}
        }
    }
    let mut in_process = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(5), commands.recv()).await?;
    if let Some(m) = got {
        println!("application got {} = {:?}", m.topic(), m.payload());
        in_process.push((m.topic().to_owned(), m.payload().to_vec()));
    }
    let stats = broker.stats();
    println!(
        "{} clients connected, {} messages received, {} sent",
        stats.clients_connected, stats.messages_received, stats.messages_sent
    );
    device.disconnect().await?;
    broker.shutdown(Duration::from_secs(1)).await;
    Ok(Seen {
        in_process,
        over_tcp,
        stats,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seen = run().await?;
    println!("device got {:?}", seen.over_tcp);
    Ok(())
}
