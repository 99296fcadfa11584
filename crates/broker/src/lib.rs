//! `strata-broker`: the embeddable Strata MQTT broker on tokio.
//!
//! An application starts a [`Broker`] from a [`BrokerConfig`], and may
//! publish and subscribe in-process ([`Broker::publish`],
//! [`Broker::subscribe`]), read [`Broker::stats`], and plug in who may
//! connect and what they may do ([`auth`]).
//!
//! Public modules: [`broker`] (the facade), [`auth`] (the Authenticator
//! and Authorizer seam), [`config`] (the TOML configuration, validated in
//! two stages), [`inspect`] (a data directory's journal, read-only).
//!
//! Private, each a component behind a narrow handle (`docs/ARCHITECTURE.md`
//! has the map and the direction of every import): `shared` (what the
//! connection tasks reach), `routing` (router and mailboxes), `registry`
//! (client id to session) and `gate` (CONNECT one client id at a time),
//! `journal` (the one way entries are appended) and `durable` (the data
//! directory), `connection` (one task per connection driving a
//! `strata_session::Session`), `listener`, `background` (sweeper,
//! compactor, alarm clock, `$SYS`), `restore`, `embed` (the in-process
//! API), `mailbox`, `alarm`, `lifecycle`, `stats`, `util`.

mod admin;
mod admission;
mod alarm;
pub mod auth;
mod background;
pub mod broker;
mod clock;
pub mod config;
mod connection;
mod durable;
mod embed;
mod gate;
pub mod inspect;
mod journal;
mod lifecycle;
mod listener;
mod mailbox;
mod proxy;
mod registry;
mod restore;
mod routing;
mod security;
mod shared;
mod stats;
#[cfg(test)]
mod testing;
mod tls;
mod tls_identity;
mod tls_stream;
pub mod transport;
mod util;
mod ws;

pub use broker::{Broker, Handle, Stats};
pub use config::{BrokerConfig, ConfigError, Fsync, Listener, StorageConfig, TransportKind};
pub use embed::{EmbedError, Publication, Received, Subscription};
pub use strata_codec::QoS;
