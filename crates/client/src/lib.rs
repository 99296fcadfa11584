//! `strata-client`: an async MQTT client for 3.1.1 and 5.0 on tokio.
//!
//! [`Client::connect`] opens the connection, waits for the CONNACK, and
//! starts one background task that owns the socket. The [`Client`] handle
//! (cheap to clone) sends requests to that task; [`Incoming`] receives the
//! messages the server delivers. The two paths are independent: the task
//! keeps reading acknowledgements while received messages wait in
//! `Incoming`, so a caller may publish, and await the acknowledgement, from
//! inside the loop that receives, without deadlock.
//!
//! QoS 1 and 2 both ways, in-flight windows from the server's Receive
//! Maximum, keep-alive pings, and, when [`Options::reconnect`] is set,
//! reconnection with exponential backoff that resumes the session
//! (Clean Start 0 after the first connection) and retransmits unacknowledged
//! PUBLISH and PUBREL packets with DUP set [MQTT-4.4.0-1].
//!
//! [`Options::transport`] picks what carries MQTT: TCP (the default), TLS,
//! WebSocket or WebSocket over TLS ([`Transport`]); TLS verifies the
//! server against the CA file of [`TlsOptions`] and may present a client
//! certificate.
//!
//! Modules: `client` (the handle, [`Incoming`], [`Error`]), `conn` (the
//! connection task), `options`, `transport` (opening a connection over
//! each transport, and the stream the task uses), `tls` (the rustls
//! configuration), `ws` (MQTT bytes in WebSocket messages).
//!
//! ```no_run
//! # async fn demo() -> Result<(), strata_client::Error> {
//! use strata_client::{Client, Options, QoS};
//! let (client, mut incoming, _) = Client::connect(Options::new("127.0.0.1:1883", "demo")).await?;
//! client.subscribe(&[("sensors/#", QoS::AtLeastOnce)]).await?;
//! client.publish("sensors/1", QoS::AtLeastOnce, false, "21.5").await?;
//! while let Some(m) = incoming.recv().await {
//!     println!("{} {:?}", m.topic, m.payload);
//! }
//! # Ok(()) }
//! ```

mod client;
mod conn;
mod options;
mod tls;
mod transport;
mod ws;

pub use client::{Client, Connected, Error, Incoming, Message, PublishHandle};
pub use options::{Options, Reconnect, TlsOptions, Transport};
pub use strata_codec::{Protocol, QoS, ReasonCode};
pub use transport::{Connector, Stream};
