//! The tests of pubsub.rs with every client served over the in-memory
//! transport (`Broker::connect_in_memory`): rumqttc connects to a TCP proxy
//! in the test that copies each connection into a duplex the broker serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::in_memory::{start_default, start_with};
use common::*;
use rumqttc::QoS;

include!("pubsub/cases.rs");
