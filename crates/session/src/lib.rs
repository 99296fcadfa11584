//! `strata-session`: one MQTT client's protocol state machine, with no I/O,
//! no runtime and no clock of its own: time and packets are parameters, so
//! every protocol rule is tested on a virtual clock without sockets.
//!
//! Modules:
//! - [`session`]: [`Session`], the per-connection state machine
//!   (`handle_*` input, commands, `poll_*` output), and its [`Event`]s.
//! - `auth` (private): enhanced authentication, the AUTH exchange at
//!   CONNECT and re-authentication.
//! - `inbound` (private): CONNECT, PUBLISH and the acknowledgement flows from
//!   the client.
//! - `outbound` (private): deliveries to the client: QoS, packet ids, the
//!   in-flight window, topic aliases, size limits, expiry.
//! - [`state`]: [`SessionState`], what outlives a connection.
//! - [`message`]: [`Message`] and [`Delivery`].
//! - [`config`]: [`Config`], the server's limits and capabilities.
//! - [`timer`]: the deadline table.

mod auth;
pub mod config;
mod inbound;
pub mod message;
mod outbound;
mod problem;
pub mod session;
pub mod state;
pub mod timer;

pub use config::Config;
pub use message::{Delivery, Message};
pub use session::{Event, Session, Will};
pub use state::{Outbound, OutboundPhase, QueueOutcome, SessionState};
