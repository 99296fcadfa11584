//! Messages through the API: `POST /api/v1/publish` (HTTP to MQTT, as the
//! broker itself), and the retained messages: `GET /api/v1/retained`
//! (paged, under a filter), `GET` and `DELETE /api/v1/retained/{topic}`.
//! Deleting publishes an empty retained message to the topic, as a client
//! would [MQTT-3.3.1-10]: it is journaled like any other, and subscribers
//! see it.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use strata_codec::QoS;

use super::clients::{page, paging};
use super::{AdminState, error};
use crate::embed::{self, Publication};

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// `POST /api/v1/publish` with `{"topic", "payload" | "payload_base64",
/// "qos", "retain"}`; answers `{"delivered": N}` once routed (and, when it
/// must survive a restart, durable).
pub(super) async fn publish(State(s): State<AdminState>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return bad("the body is a JSON object: {\"topic\", \"payload\", \"qos\", \"retain\"}");
        }
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let Some(topic) = v.get("topic").and_then(Value::as_str) else {
        return bad("topic: a string is required");
    };
    let payload = match (v.get("payload"), v.get("payload_base64")) {
        (Some(Value::String(p)), None) => Bytes::from(p.clone().into_bytes()),
        (None, Some(Value::String(b))) => match base64::engine::general_purpose::STANDARD.decode(b)
        {
            Ok(p) => Bytes::from(p),
            Err(_) => return bad("payload_base64: not base64"),
        },
        (None, None) => Bytes::new(),
        _ => return bad("payload (a string) or payload_base64, not both"),
    };
    let qos = match v.get("qos") {
        None => QoS::AtMostOnce,
        Some(q) => match q
            .as_u64()
            .and_then(|q| u8::try_from(q).ok())
            .and_then(QoS::from_u8)
        {
            Some(q) => q,
            None => return bad("qos: 0, 1 or 2"),
        },
    };
    let retain = match v.get("retain") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return bad("retain: true or false"),
    };
    let p = Publication::new(topic, payload).qos(qos).retain(retain);
    match embed::publish(&s.shared, p).await {
        Ok(delivered) => {
            tracing::info!(topic, "admin: published");
            axum::Json(json!({"delivered": delivered})).into_response()
        }
        Err(e) => bad(format!("topic: {e}")),
    }
}

/// Copies of the retained messages under `filter`, sorted by topic.
fn retained(
    s: &AdminState,
    filter: &str,
) -> Vec<(String, std::sync::Arc<strata_session::Message>)> {
    let mut out = Vec::new();
    s.shared
        .routes()
        .router()
        .retained_matching(filter, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn describe(topic: &str, m: &strata_session::Message, with_payload: bool) -> Value {
    let mut v = json!({"topic": topic, "qos": m.qos as u8, "payload_size": m.payload.len()});
    if with_payload {
        match std::str::from_utf8(&m.payload) {
            Ok(text) => v["payload"] = Value::from(text),
            Err(_) => {
                v["payload_base64"] =
                    Value::from(base64::engine::general_purpose::STANDARD.encode(&m.payload));
            }
        }
    }
    v
}

/// `GET /api/v1/retained?filter=F&page=&limit=` (filter `#` by default).
pub(super) async fn list(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (page_no, limit) = match paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let filter = q.get("filter").map_or("#", String::as_str);
    if let Err(e) = strata_codec::topic::validate_topic_filter(filter) {
        return bad(format!("filter={filter:?}: {e}"));
    }
    let items: Vec<Value> = retained(&s, filter)
        .iter()
        .map(|(t, m)| describe(t, m, false))
        .collect();
    page(items, page_no, limit)
}

/// `GET /api/v1/retained/{topic}`: the message with its payload (UTF-8 as
/// `payload`, anything else as `payload_base64`).
pub(super) async fn get_one(State(s): State<AdminState>, Path(topic): Path<String>) -> Response {
    if strata_codec::topic::validate_topic_name(&topic).is_err() {
        return bad(format!("{topic:?} is not a topic name"));
    }
    match retained(&s, &topic).into_iter().find(|(t, _)| *t == topic) {
        Some((t, m)) => axum::Json(describe(&t, &m, true)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no retained message on {topic:?}"),
        ),
    }
}

/// `DELETE /api/v1/retained/{topic}`: 204 once cleared, 404 if there was
/// none.
pub(super) async fn delete(State(s): State<AdminState>, Path(topic): Path<String>) -> Response {
    if strata_codec::topic::validate_topic_name(&topic).is_err() {
        return bad(format!("{topic:?} is not a topic name"));
    }
    if !retained(&s, &topic).iter().any(|(t, _)| *t == topic) {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no retained message on {topic:?}"),
        );
    }
    let clear = Publication::new(topic.clone(), Bytes::new()).retain(true);
    match embed::publish(&s.shared, clear).await {
        Ok(_) => {
            tracing::info!(topic, "admin: retained message deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad(format!("{e}")),
    }
}
