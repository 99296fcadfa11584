//! The admin HTTP listener over real sockets: health, readiness, metrics,
//! the API's door (API keys; without them, localhost names only), and the
//! error bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use strata_broker::config::AdminConfig;
use strata_broker::{Broker, BrokerConfig, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request (Connection: close); the status and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    http_body(addr, method, path, headers, "").await
}

async fn http_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

async fn with_admin(admin: AdminConfig) -> (Broker, SocketAddr, SocketAddr) {
    let b = Broker::start(BrokerConfig {
        sys_interval: None,
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        admin,
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let (mqtt, admin) = (b.local_addrs()[0], b.admin_addr().unwrap());
    (b, mqtt, admin)
}

fn local() -> AdminConfig {
    AdminConfig {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..AdminConfig::default()
    }
}

/// A sample's value in Prometheus text.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_credentials() {
    let (_b, mqtt, admin) = with_admin(local()).await;
    assert_eq!(
        http(admin, "GET", "/healthz", &[]).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        http(admin, "GET", "/readyz", &[]).await,
        (200, "ready\n".into())
    );
    let (status, before) = http(admin, "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(sample(&before, "strata_connections"), 0);
    assert!(
        before.contains("# TYPE strata_messages_received_total counter"),
        "{before}"
    );
    // A client publishes five messages to a subscriber: the counters move.
    let mut sub = v4(v4_options(mqtt, "m-sub")).await;
    sub.subscribe("m/#", rumqttc::QoS::AtLeastOnce).await;
    let mut publisher = v4(v4_options(mqtt, "m-pub")).await;
    publisher
        .publish_acked("m/x", (0..5u8).map(|i| vec![i]))
        .await;
    for _ in 0..5 {
        sub.next_publish().await;
    }
    let (_, after) = http(admin, "GET", "/metrics", &[]).await;
    assert_eq!(sample(&after, "strata_connections"), 2);
    assert_eq!(sample(&after, "strata_subscriptions"), 1);
    assert_eq!(
        sample(&after, "strata_messages_received_total")
            - sample(&before, "strata_messages_received_total"),
        5
    );
    assert!(sample(&after, "strata_messages_sent_total") >= 5);
}

#[tokio::test]
async fn without_keys_the_api_answers_only_localhost_names() {
    let (_b, _, admin) = with_admin(local()).await;
    let host = format!("127.0.0.1:{}", admin.port());
    let (status, body) = http(admin, "GET", "/api/v1/status", &[("Host", &host)]).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["clients_connected"], 0);
    assert!(
        v["listeners"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let localhost = format!("localhost:{}", admin.port());
    assert_eq!(
        http(admin, "GET", "/api/v1/status", &[("Host", &localhost)])
            .await
            .0,
        200
    );
    // DNS rebinding: a name that resolves here but is not ours.
    let rebound = format!("evil.example:{}", admin.port());
    let (status, body) = http(admin, "GET", "/api/v1/status", &[("Host", &rebound)]).await;
    assert_eq!(status, 403);
    assert!(body.contains("\"code\":\"forbidden\""), "{body}");
    // A page of another site (CSRF).
    let (status, _) = http(
        admin,
        "GET",
        "/api/v1/status",
        &[("Host", &host), ("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    let own = format!("http://{host}");
    assert_eq!(
        http(
            admin,
            "GET",
            "/api/v1/status",
            &[("Host", &host), ("Origin", &own)]
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (key, line) = strata_auth::api_key::new_key("test");
    std::fs::write(dir.path().join("keys"), format!("{line}\n")).unwrap();
    let (_b, _, admin) = with_admin(AdminConfig {
        api_key_file: Some(dir.path().join("keys")),
        ..local()
    })
    .await;
    let (status, body) = http(admin, "GET", "/api/v1/status", &[("Host", "anything")]).await;
    assert_eq!(status, 401);
    assert!(body.contains("Bearer"), "{body}");
    let wrong = http(
        admin,
        "GET",
        "/api/v1/status",
        &[("Authorization", "Bearer strata_wrong")],
    )
    .await;
    assert_eq!(wrong.0, 401);
    let bearer = format!("Bearer {key}");
    // With a key the Host does not matter.
    let ok = http(
        admin,
        "GET",
        "/api/v1/status",
        &[("Authorization", &bearer), ("Host", "mqtt.example")],
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(http(admin, "GET", "/metrics", &[]).await.0, 200);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let (_b, _, admin) = with_admin(local()).await;
    let (status, body) = http(admin, "GET", "/nope", &[]).await;
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "not_found");
    let (status, body) = http(admin, "POST", "/healthz", &[]).await;
    assert_eq!(status, 405);
    assert!(body.contains("method_not_allowed"), "{body}");
}

#[tokio::test]
async fn off_loopback_without_keys_refuses_to_start() {
    let e = Broker::start(BrokerConfig {
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        admin: AdminConfig {
            bind: Some("0.0.0.0:0".parse().unwrap()),
            ..AdminConfig::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("admin.bind = \"0.0.0.0:0\""), "{e}");
    assert!(e.contains("api_key_file"), "{e}");
    // An embedded broker has none unless asked.
    let b = Broker::start(BrokerConfig {
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(b.admin_addr(), None);
}

async fn api(admin: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    api_with(admin, method, path, "").await
}

async fn api_with(
    admin: SocketAddr,
    method: &str,
    path: &str,
    json: &str,
) -> (u16, serde_json::Value) {
    let host = format!("127.0.0.1:{}", admin.port());
    let (status, body) = http_body(admin, method, path, &[("Host", &host)], json).await;
    let v = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
    };
    (status, v)
}

#[tokio::test]
async fn clients_in_pages_with_filters() {
    let (_b, mqtt, admin) = with_admin(local()).await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(v4(v4_options(mqtt, &format!("dev-{i}"))).await);
    }
    // An offline persistent session too.
    park_subscriber(mqtt, "parked", "p/#").await;
    let (status, v) = api(admin, "GET", "/api/v1/clients?limit=2&page=2").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["meta"]["count"], 6);
    assert_eq!(v["meta"]["limit"], 2);
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dev-2", "dev-3"], "sorted by id");
    let (_, v) = api(admin, "GET", "/api/v1/clients?connected=false").await;
    assert_eq!(
        v["data"],
        serde_json::json!([{"client_id": "parked", "connected": false}])
    );
    let (_, v) = api(admin, "GET", "/api/v1/clients?id=dev-4").await;
    assert_eq!(v["meta"]["count"], 1);
    // Past the end: an empty page; a huge limit is cut.
    let (_, v) = api(admin, "GET", "/api/v1/clients?page=99").await;
    assert_eq!(v["data"], serde_json::json!([]));
    let (_, v) = api(admin, "GET", "/api/v1/clients?limit=1000000").await;
    assert_eq!(v["meta"]["limit"], 1000);
    // One session whole: the parked one holds its subscription.
    let (status, v) = api(admin, "GET", "/api/v1/clients/parked").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["connected"], false);
    assert_eq!(v["persistent"], true);
    assert_eq!(v["subscriptions"][0]["filter"], "p/#");
    assert_eq!(v["subscriptions"][0]["qos"], 1);
    assert_eq!(api(admin, "GET", "/api/v1/clients/nobody").await.0, 404);
    for bad in ["page=0", "limit=x", "connected=maybe"] {
        let (status, v) = api(admin, "GET", &format!("/api/v1/clients?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        let field = bad.split('=').next().unwrap();
        assert!(
            v["message"].as_str().unwrap().starts_with(field),
            "{bad}: {v}"
        );
    }
}

#[tokio::test]
async fn kicking_a_client() {
    let (_b, mqtt, admin) = with_admin(local()).await;
    let mut watcher = v4(v4_options(mqtt, "watcher")).await;
    watcher
        .subscribe("wills/#", rumqttc::QoS::AtLeastOnce)
        .await;
    let mut o = v5_options(mqtt, "victim");
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        "wills/victim",
        "gone",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        None,
    ));
    let mut victim = v5(o).await;
    let (status, body) = api(admin, "DELETE", "/api/v1/clients/victim").await;
    assert_eq!(status, 204, "{body}");
    // 5.0: DISCONNECT 0x98 (rumqttc ends its loop with it); the will goes
    // out, as for any connection the server ends.
    tokio::time::timeout(WAIT, async { while victim.rx.recv().await.is_some() {} })
        .await
        .unwrap();
    let ended = tokio::time::timeout(WAIT, &mut victim.task)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.contains("AdministrativeAction"), "{ended}");
    assert_eq!(watcher.next_publish().await.topic, "wills/victim");
    let (status, v) = api(admin, "DELETE", "/api/v1/clients/victim").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["code"], "not_found");
}

#[tokio::test]
async fn publish_and_retained_messages() {
    let (_b, mqtt, admin) = with_admin(local()).await;
    let mut sub = v4(v4_options(mqtt, "r-sub")).await;
    sub.subscribe("r/#", rumqttc::QoS::AtLeastOnce).await;
    // HTTP to MQTT, QoS 1 and retained.
    let (status, v) = api_with(
        admin,
        "POST",
        "/api/v1/publish",
        r#"{"topic":"r/a/b","payload":"21.5","qos":1,"retain":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["delivered"], 1);
    let p = sub.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("r/a/b", &b"21.5"[..]));
    let (_, v) = api_with(
        admin,
        "POST",
        "/api/v1/publish",
        r#"{"topic":"r/bin","payload_base64":"AP8=","retain":true}"#,
    )
    .await;
    assert_eq!(v["delivered"], 1);
    sub.next_publish().await;
    // Listed, and each one whole.
    let (_, v) = api(admin, "GET", "/api/v1/retained?filter=r/%23").await;
    assert_eq!(v["meta"]["count"], 2, "{v}");
    assert_eq!(v["data"][0]["topic"], "r/a/b");
    let (status, v) = api(admin, "GET", "/api/v1/retained/r/a/b").await;
    assert_eq!(status, 200);
    assert_eq!(v["payload"], "21.5");
    assert_eq!(v["qos"], 1);
    let (_, v) = api(admin, "GET", "/api/v1/retained/r/bin").await;
    assert_eq!(v["payload_base64"], "AP8=");
    // Deleted: gone from the list, and a new subscriber gets nothing.
    assert_eq!(api(admin, "DELETE", "/api/v1/retained/r/a/b").await.0, 204);
    assert_eq!(api(admin, "GET", "/api/v1/retained/r/a/b").await.0, 404);
    assert_eq!(api(admin, "DELETE", "/api/v1/retained/r/a/b").await.0, 404);
    let (_, v) = api(admin, "GET", "/api/v1/retained").await;
    assert_eq!(v["meta"]["count"], 1);
    // Bad input names the field.
    for (body, field) in [
        ("nope", "not JSON"),
        ("[1]", "JSON object"),
        (r#"{"payload":"x"}"#, "topic"),
        (r#"{"topic":"a/+","payload":"x"}"#, "topic"),
        (r#"{"topic":"a","qos":3}"#, "qos"),
        (r#"{"topic":"a","retain":"yes"}"#, "retain"),
        (
            r#"{"topic":"a","payload":"x","payload_base64":"eA=="}"#,
            "payload",
        ),
    ] {
        let (status, v) = api_with(admin, "POST", "/api/v1/publish", body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    assert_eq!(
        api(admin, "GET", "/api/v1/retained?filter=a/%23/b").await.0,
        400
    );
}

#[tokio::test]
async fn reload_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite #\n").unwrap();
    let b = Broker::start(BrokerConfig {
        sys_interval: None,
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        admin: local(),
        auth: strata_broker::config::AuthConfig {
            acl_file: Some(acl.clone()),
            ..Default::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let admin = b.admin_addr().unwrap();
    let (status, v) = api(admin, "POST", "/api/v1/reload").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!([{"part": "auth", "reloaded": true}])
    );
    std::fs::write(&acl, "topic readwrite #\nfrobnicate\n").unwrap();
    let (status, v) = api(admin, "POST", "/api/v1/reload").await;
    assert_eq!(status, 422, "{v}");
    let e = v["data"][0]["error"].as_str().unwrap();
    assert!(e.contains("acl") && e.contains("line 2"), "{e}");
    assert_eq!(api(admin, "GET", "/api/v1/reload").await.0, 405);
}

/// While connections drain at shutdown, /readyz answers 503 (a load
/// balancer stops sending clients); the admin listener goes last.
#[tokio::test]
async fn readiness_fails_while_draining() {
    let (b, mqtt, admin) = with_admin(local()).await;
    // A subscriber that stops reading, with a small receive buffer and
    // megabytes owed: its connection cannot finish writing at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(mqtt).await.unwrap();
    let connect = [
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b's', b'l',
    ];
    slow.write_all(&connect).await.unwrap();
    let mut ack = [0u8; 4];
    slow.read_exact(&mut ack).await.unwrap();
    let subscribe = [0x82, 8, 0, 1, 0, 3, b'b', b'/', b'#', 0];
    slow.write_all(&subscribe).await.unwrap();
    let mut suback = [0u8; 5];
    slow.read_exact(&mut suback).await.unwrap();
    for _ in 0..64 {
        let p = strata_broker::Publication::new("b/x", vec![7u8; 64 * 1024]);
        b.publish(p).await.unwrap();
    }
    assert_eq!(http(admin, "GET", "/readyz", &[]).await.0, 200);
    let draining = tokio::spawn(b.shutdown(std::time::Duration::from_secs(3)));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http(admin, "GET", "/readyz", &[]).await;
        if status == 503 {
            assert_eq!(body, "shutting down\n");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(slow);
    tokio::time::timeout(WAIT, draining).await.unwrap().unwrap();
    // Gone once the drain is over.
    assert!(tokio::net::TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn refused_connections_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut pw = strata_auth::PasswordFile::default();
    pw.set(
        "alice",
        strata_auth::Hash::new(strata_auth::HashKind::Sha512Pbkdf2, b"right"),
    );
    std::fs::write(dir.path().join("passwd"), pw.to_text()).unwrap();
    let b = Broker::start(BrokerConfig {
        sys_interval: None,
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        admin: local(),
        auth: strata_broker::config::AuthConfig {
            password_file: Some(dir.path().join("passwd")),
            ..Default::default()
        },
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let (mqtt, admin) = (b.local_addrs()[0], b.admin_addr().unwrap());
    for _ in 0..2 {
        assert_eq!(
            raw_connack(mqtt, 5, "a", Some(("alice", "wrong"))).await,
            Some(0x86)
        );
    }
    assert_eq!(raw_connack(mqtt, 5, "b", None).await, Some(0x87));
    assert_eq!(
        raw_connack(mqtt, 5, "c", Some(("alice", "right"))).await,
        Some(0)
    );
    let (_, text) = http(admin, "GET", "/metrics", &[]).await;
    assert!(
        text.contains("strata_connections_refused_total{reason=\"bad_user_name_or_password\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_connections_refused_total{reason=\"not_authorized\"} 1\n"),
        "{text}"
    );
}

/// A key file with no key yet (a container's default) lets the listener
/// off loopback start with the API closed: probes and metrics answer.
#[tokio::test]
async fn an_empty_key_file_keeps_the_api_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys"), "# none yet\n").unwrap();
    let (_b, _, admin) = with_admin(AdminConfig {
        bind: Some("0.0.0.0:0".parse().unwrap()),
        api_key_file: Some(dir.path().join("keys")),
    })
    .await;
    let admin = SocketAddr::from(([127, 0, 0, 1], admin.port()));
    let host = format!("127.0.0.1:{}", admin.port());
    assert_eq!(
        http(admin, "GET", "/api/v1/status", &[("Host", &host)])
            .await
            .0,
        401
    );
    assert_eq!(http(admin, "GET", "/healthz", &[]).await.0, 200);
    assert_eq!(http(admin, "GET", "/metrics", &[]).await.0, 200);
}
