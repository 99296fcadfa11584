//! `strata-broker`: the embeddable Strata MQTT broker on tokio.
//!
//! Modules:
//! - [`broker`]: [`Broker`] (start, addresses, graceful shutdown), routing of
//!   published messages into subscribers' mailboxes, the sweeper of expired
//!   sessions and delayed wills, `$SYS` topics.
//! - `connection` (private): one task per connection driving a
//!   `strata_session::Session`.
//! - `registry` (private): client id to session, connected or offline;
//!   takeover and resume.
//! - `mailbox` (private): the bounded queue between router and session,
//!   and what wakes a connection task.
//! - `alarm` (private): one timer for every connection's deadlines.
//! - [`config`]: the TOML configuration, validated in two stages.
//! - `durable` (private): the data directory: lock, replay, compaction, and
//!   appends to the journal (`journal`, private: what is stored, and how
//!   replay rebuilds sessions, subscriptions, offline queues, retained).

mod alarm;
pub mod auth;
mod background;
pub mod broker;
pub mod config;
mod connection;
mod durable;
mod gate;
pub mod inspect;
mod journal;
mod lifecycle;
mod listener;
mod mailbox;
mod registry;
mod restore;
mod routing;
mod shared;
mod stats;
#[cfg(test)]
mod testing;
mod util;

pub use broker::{Broker, Stats};
pub use config::{BrokerConfig, ConfigError, Fsync, StorageConfig};
