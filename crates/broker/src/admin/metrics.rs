//! `/metrics`: the broker's figures in Prometheus's text exposition format
//! (version 0.0.4), every name prefixed `strata_`. They are read from the
//! counters the broker keeps anyway (the ones `$SYS` publishes), at scrape
//! time: serving metrics adds nothing per message.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AdminState;

/// One metric family with one sample.
fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

pub(super) async fn metrics(State(s): State<AdminState>) -> Response {
    let st = s.shared.stats();
    let mut out = String::with_capacity(2048);
    let gauges: [(&str, &str, u64); 5] = [
        (
            "strata_connections",
            "Clients connected now.",
            st.clients_connected as u64,
        ),
        (
            "strata_sessions",
            "Sessions held, connected or offline.",
            st.sessions as u64,
        ),
        (
            "strata_subscriptions",
            "Subscriptions in the router.",
            st.subscriptions as u64,
        ),
        (
            "strata_retained_messages",
            "Retained messages held.",
            st.retained as u64,
        ),
        (
            "strata_uptime_seconds",
            "Seconds since the broker started.",
            s.shared.started().elapsed().as_secs(),
        ),
    ];
    for (name, help, v) in gauges {
        family(&mut out, name, "gauge", help, v);
    }
    let counters: [(&str, &str, u64); 5] = [
        (
            "strata_connections_total",
            "CONNECTs accepted.",
            st.clients_total,
        ),
        (
            "strata_messages_received_total",
            "Application Messages received from clients.",
            st.messages_received,
        ),
        (
            "strata_messages_sent_total",
            "Application Messages handed to sessions for their clients.",
            st.messages_sent,
        ),
        (
            "strata_bytes_received_total",
            "Bytes read from clients.",
            st.bytes_received,
        ),
        (
            "strata_bytes_sent_total",
            "Bytes written to clients.",
            st.bytes_sent,
        ),
    ];
    for (name, help, v) in counters {
        family(&mut out, name, "counter", help, v);
    }
    let _ = writeln!(
        out,
        "# HELP strata_connections_refused_total CONNECTs refused, by the CONNACK's reason."
    );
    let _ = writeln!(out, "# TYPE strata_connections_refused_total counter");
    for (code, n) in s.shared.counters().refusals() {
        let _ = writeln!(
            out,
            "strata_connections_refused_total{{reason=\"{}\"}} {n}",
            snake(&format!("{code:?}"))
        );
    }
    let _ = writeln!(out, "# HELP strata_info The broker's version, as a label.");
    let _ = writeln!(out, "# TYPE strata_info gauge");
    let _ = writeln!(
        out,
        "strata_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// `BadUserNameOrPassword` as `bad_user_name_or_password`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
