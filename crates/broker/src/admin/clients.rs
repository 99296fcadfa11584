//! `/api/v1/clients`: the sessions the broker holds, connected or offline,
//! in pages; and `DELETE /api/v1/clients/{id}`, which disconnects a client
//! (5.0: DISCONNECT 0x98 Administrative action; its will is published, as
//! for any connection the server ends).
//!
//! A list is a snapshot of the client ids taken under the registry lock;
//! sorting, filtering and paging happen after it is released.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use strata_codec::ReasonCode;
use tokio::sync::oneshot;

use super::{AdminState, error};
use crate::registry::Owner;

/// The largest page; a larger `limit` is cut to it.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;
/// How long a kick waits for the connection to hand its session back.
const KICK_WAIT: Duration = Duration::from_secs(5);

/// `page` (from 1) and `limit`, or a 400 naming the field.
pub(super) fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let number = |name: &str, default: usize| match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{name}={v:?}: a whole number from 1"),
            )
        }),
    };
    Ok((
        number("page", 1)?,
        number("limit", DEFAULT_LIMIT)?.min(MAX_LIMIT),
    ))
}

/// One page of `items` in the API's envelope.
pub(super) fn page<T: serde::Serialize>(items: Vec<T>, page: usize, limit: usize) -> Response {
    let count = items.len();
    let data: Vec<T> = items
        .into_iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .collect();
    axum::Json(json!({"data": data, "meta": {"page": page, "limit": limit, "count": count}}))
        .into_response()
}

#[derive(serde::Serialize)]
struct Client {
    client_id: String,
    connected: bool,
}

/// `GET /api/v1/clients?page=&limit=&connected=true|false&id=SUBSTRING`
pub(super) async fn list(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (page_no, limit) = match paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let connected = match q.get("connected").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("connected={v:?}: true or false"),
            );
        }
    };
    let id_part = q.get("id").cloned().unwrap_or_default();
    let snapshot: Vec<(strata_codec::MqttStr, bool)> = {
        let reg = s.shared.registry();
        reg.by_client
            .iter()
            .map(|(id, e)| (id.clone(), matches!(e.conn, Owner::Conn(_))))
            .collect()
    };
    let mut clients: Vec<Client> = snapshot
        .into_iter()
        .filter(|(id, c)| connected.is_none_or(|want| *c == want) && id.contains(id_part.as_str()))
        .map(|(id, connected)| Client {
            client_id: id.to_string(),
            connected,
        })
        .collect();
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    page(clients, page_no, limit)
}

/// `DELETE /api/v1/clients/{id}`: 204 once the client is disconnected
/// (and its session back in the registry), 404 if it is not connected.
pub(super) async fn kick(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let (tx, rx) = oneshot::channel();
    let key = strata_codec::MqttStr::try_from(id.clone()).unwrap_or_default();
    let kicked = {
        let reg = s.shared.registry();
        match reg.by_client.get(&key).map(|e| (e.conn, e.mailbox.clone())) {
            Some((Owner::Conn(conn), mailbox)) => {
                mailbox.kick_for(conn, tx, ReasonCode::AdministrativeAction);
                true
            }
            _ => false,
        }
    };
    if !kicked {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no client {id:?} is connected"),
        );
    }
    tracing::info!(client_id = %id, "admin: client kicked");
    let _ = tokio::time::timeout(KICK_WAIT, rx).await;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /api/v1/clients/{id}`: one session, connected or offline: its
/// subscriptions (with their options) and the deliveries queued for it.
pub(super) async fn details(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let key = strata_codec::MqttStr::try_from(id.clone()).unwrap_or_default();
    let found = {
        let reg = s.shared.registry();
        reg.by_client.get(&key).map(|e| {
            (
                e.key,
                matches!(e.conn, Owner::Conn(_)),
                e.mailbox.is_persistent(),
                e.mailbox.queued(),
            )
        })
    };
    let Some((router_key, connected, persistent, (queued, queued_bytes))) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no session {id:?}"),
        );
    };
    let subscriptions: Vec<serde_json::Value> = s
        .shared
        .routes()
        .router()
        .subscriptions_of(router_key)
        .into_iter()
        .map(|(filter, o)| {
            json!({
                "filter": filter,
                "qos": o.qos as u8,
                "no_local": o.no_local,
                "retain_as_published": o.retain_as_published,
                "subscription_id": o.subscription_id,
            })
        })
        .collect();
    axum::Json(json!({
        "client_id": id,
        "connected": connected,
        "persistent": persistent,
        "queued": queued,
        "queued_bytes": queued_bytes,
        "subscriptions": subscriptions,
    }))
    .into_response()
}
