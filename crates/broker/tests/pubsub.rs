//! The broker over real sockets with rumqttc (3.1.1 and 5.0) as independent
//! clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rumqttc::QoS;

include!("pubsub/cases.rs");
