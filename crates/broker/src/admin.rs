//! The admin HTTP listener (`[admin]`): `/healthz`, `/readyz` and
//! `/metrics` for anyone who can reach it, and the API under `/api/v1` for
//! holders of an API key (`Authorization: Bearer KEY`, keys from
//! `[admin] api_key_file`). Without keys the listener must be on a loopback
//! address, and the API answers only requests whose `Host` (and `Origin`,
//! when there is one) is a localhost name: a web page the operator opens
//! cannot drive it, through DNS rebinding or a cross-site request.
//!
//! Errors are JSON `{"code", "message"}` with the matching status: 401
//! without a valid key, 403 for a foreign Host or Origin, 404 for an
//! unknown route, 405 for a wrong method.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use strata_auth::ApiKeys;
use tokio::net::TcpListener;

use crate::listener::Endpoint;
use crate::shared::Shared;

mod clients;
mod messages;
mod metrics;

/// What the handlers reach.
#[derive(Clone)]
struct AdminState {
    shared: Arc<Shared>,
    /// `None` without `api_key_file`; with one, the API wants a key even
    /// while the file holds none (it is then closed).
    keys: Option<Arc<ApiKeys>>,
    /// The bound address (its port is what Host must carry).
    addr: SocketAddr,
    /// The MQTT listeners and their addresses (names, and reloads).
    bound: Arc<Vec<(Arc<Endpoint>, SocketAddr)>>,
}

/// An API error body.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message.into()})),
    )
        .into_response()
}

/// Reads the key file, if there is one; refuses a listener that anyone
/// could reach without one.
pub(crate) fn keys(
    config: &crate::config::AdminConfig,
    bind: SocketAddr,
) -> Result<Option<ApiKeys>, String> {
    let keys = match &config.api_key_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("admin.api_key_file = {:?}: {e}", p.display()))?;
            Some(
                ApiKeys::parse(&text)
                    .map_err(|e| format!("admin.api_key_file = {:?}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    if keys.is_none() && !bind.ip().is_loopback() {
        return Err(format!(
            "admin.bind = \"{bind}\": an admin listener off loopback needs credentials: set [admin] api_key_file (`strata admin key create --file FILE` adds a key), or bind it to 127.0.0.1"
        ));
    }
    Ok(keys)
}

/// Serves the admin API on `listener` until the task is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    keys: Option<ApiKeys>,
    bound: Vec<(Arc<Endpoint>, SocketAddr)>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let state = AdminState {
        shared,
        keys: keys.map(Arc::new),
        addr,
        bound: Arc::new(bound),
    };
    let api = Router::new()
        .route("/status", get(status))
        .route("/clients", get(clients::list))
        .route("/clients/{id}", get(clients::details).delete(clients::kick))
        .route("/publish", axum::routing::post(messages::publish))
        .route("/reload", axum::routing::post(reload))
        .route("/retained", get(messages::list))
        .route(
            "/retained/{*topic}",
            get(messages::get_one).delete(messages::delete),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the admin listener stopped");
    }
}

async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {}", req.uri().path()),
    )
}

async fn wrong_method(req: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// The process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: replay finished and every listener bound (both happen before
/// this listener starts), and not draining.
async fn readyz(State(s): State<AdminState>) -> Response {
    if s.shared.life().is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

/// Whether `value` (a Host header, or an Origin's host) names this machine
/// on the admin port.
fn is_local_name(value: &str, port: u16) -> bool {
    let (host, p) = match value.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().ok()),
        _ => (value, None),
    };
    let host_ok = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    // A Host without a port means port 80.
    host_ok && p.unwrap_or(80) == port
}

/// The API's door: a key when keys are configured; otherwise only
/// requests addressed to a localhost name.
async fn guard(
    State(s): State<AdminState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(keys) = &s.keys {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        return match key {
            Some(k) if keys.verify(k.trim()) => next.run(req).await,
            _ => error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send an API key: Authorization: Bearer KEY (strata admin key create)",
            ),
        };
    }
    let port = s.addr.port();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_local_name(host, port) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "Host {host:?}: without API keys the admin API answers only to localhost:{port}"
            ),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        let ok = o
            .strip_prefix("http://")
            .is_some_and(|h| is_local_name(h, port));
        if !ok {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("Origin {o:?}: a page from another site may not use the admin API"),
            );
        }
    }
    next.run(req).await
}

/// Node status and uptime.
async fn status(State(s): State<AdminState>) -> Response {
    let st = s.shared.stats();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": s.shared.started().elapsed().as_secs(),
        "listeners": s.bound.iter().map(|(e, a)| e.config.describe(*a)).collect::<Vec<_>>(),
        "clients_connected": st.clients_connected,
        "sessions": st.sessions,
        "subscriptions": st.subscriptions,
        "retained": st.retained,
        "clients_total": st.clients_total,
        "messages_received": st.messages_received,
        "messages_sent": st.messages_sent,
        "bytes_received": st.bytes_received,
        "bytes_sent": st.bytes_sent,
    }))
    .into_response()
}

/// `POST /api/v1/reload`: what SIGHUP reloads but `[limits]` (which needs
/// the configuration file): certificates and the `[auth]` files. 200 with
/// each part's outcome; 422 when a part kept its old version.
async fn reload(State(s): State<AdminState>) -> Response {
    tracing::info!("admin: reload");
    let results = crate::listener::reload(&s.shared, &s.bound);
    let ok = results.iter().all(|(_, r)| r.is_ok());
    let parts: Vec<serde_json::Value> = results
        .iter()
        .map(|(name, r)| match r {
            Ok(()) => json!({"part": name, "reloaded": true}),
            Err(e) => json!({"part": name, "reloaded": false, "error": e.to_string()}),
        })
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, axum::Json(json!({"data": parts}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        assert!(is_local_name("localhost:8080", 8080));
        assert!(is_local_name("127.0.0.1:8080", 8080));
        assert!(is_local_name("[::1]:8080", 8080));
        assert!(!is_local_name("localhost:8081", 8080));
        assert!(!is_local_name("evil.example:8080", 8080));
        assert!(!is_local_name("localhost.evil.example:8080", 8080));
        assert!(is_local_name("localhost", 80));
        assert!(!is_local_name("localhost", 8080));
        assert!(!is_local_name("", 8080));
    }
}
