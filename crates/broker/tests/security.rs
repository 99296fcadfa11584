//! The broker's own security over real sockets, with rumqttc clients: a
//! password file (Mosquitto's format), the ACL file on publish, subscribe,
//! delivery, retained messages, wills and `$share`, bans, anonymous access
//! per listener, bad files, and reload under open connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::*;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PubAckReason, SubscribeReasonCode};
use strata_auth::{Hash, HashKind, PasswordFile};
use strata_broker::config::AuthConfig;
use strata_broker::{Broker, BrokerConfig, Listener};

const ACL: &str = "\
topic read public/#

user alice
topic readwrite a/#
topic deny a/secret/#
topic readwrite marker/#

user bob
topic read a/#
topic read marker/#

user eve
topic read marker/#

pattern readwrite own/%u/#
";

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let mut pw = PasswordFile::default();
        for (user, password) in [
            ("alice", "wonderland"),
            ("bob", "builder"),
            ("eve", "dropper"),
        ] {
            pw.set(user, Hash::new(HashKind::Sha512Pbkdf2, password.as_bytes()));
        }
        std::fs::write(dir.path().join("passwd"), pw.to_text()).unwrap();
        std::fs::write(dir.path().join("acl"), ACL).unwrap();
        std::fs::write(dir.path().join("bans"), "").unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn auth(&self) -> AuthConfig {
        AuthConfig {
            password_file: Some(self.path("passwd")),
            acl_file: Some(self.path("acl")),
            ban_file: Some(self.path("bans")),
            ..AuthConfig::default()
        }
    }
}

async fn broker(auth: AuthConfig) -> (Broker, SocketAddr) {
    start_with(BrokerConfig {
        sys_interval: None,
        auth,
        ..BrokerConfig::default()
    })
    .await
}

fn login4(addr: SocketAddr, id: &str, user: &str, password: &str) -> rumqttc::MqttOptions {
    let mut o = v4_options(addr, id);
    o.set_credentials(user, password);
    o
}

fn login5(addr: SocketAddr, id: &str, user: &str, password: &str) -> rumqttc::v5::MqttOptions {
    let mut o = v5_options(addr, id);
    o.set_credentials(user, password);
    o
}

/// The CONNACK return code of a refused 3.1.1 connection.
async fn refused4(o: rumqttc::MqttOptions) -> rumqttc::ConnectReturnCode {
    let (_c, mut el) = rumqttc::AsyncClient::new(o, 10);
    match tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("an answer")
    {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("not refused: {other:?}"),
    }
}

/// The CONNACK reason of a refused 5.0 connection.
async fn refused5(o: rumqttc::v5::MqttOptions) -> rumqttc::v5::mqttbytes::v5::ConnectReturnCode {
    let (_c, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
    match tokio::time::timeout(WAIT, el.poll())
        .await
        .expect("an answer")
    {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("not refused: {other:?}"),
    }
}

/// 0x8A Banned.
const BANNED: u8 = 0x8A;

/// The reason code of the CONNACK a 5.0 CONNECT with this login gets
/// (rumqttc 0.25 reports a refusal with 0x8A as a lost connection).
async fn connack5(addr: SocketAddr, id: &str, user: &str, password: &str) -> u8 {
    raw_connack(addr, 5, id, Some((user, password)))
        .await
        .expect("a CONNACK")
}

/// Publishes `marker` to `marker/go` as alice and reads `sub`'s messages
/// until it comes: the topics of what came before it.
async fn before_marker(addr: SocketAddr, sub: &mut V4) -> Vec<String> {
    let mut alice = v4(login4(addr, "marker-pub", "alice", "wonderland")).await;
    alice.publish_acked("marker/go", [b"m".to_vec()]).await;
    let mut seen = Vec::new();
    loop {
        let p = sub.next_publish().await;
        if p.topic == "marker/go" {
            return seen;
        }
        seen.push(p.topic);
    }
}

#[tokio::test]
async fn passwords_from_a_mosquitto_format_file() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as R5;
    let files = Files::new();
    let (_b, addr) = broker(files.auth()).await;
    v4(login4(addr, "a1", "alice", "wonderland")).await;
    v5(login5(addr, "a2", "alice", "wonderland")).await;
    use rumqttc::ConnectReturnCode as R4;
    assert_eq!(
        refused4(login4(addr, "x", "alice", "wonderlanD")).await,
        R4::BadUserNamePassword
    );
    assert_eq!(
        refused4(login4(addr, "x", "mallory", "x")).await,
        R4::BadUserNamePassword
    );
    assert_eq!(
        refused5(login5(addr, "x", "alice", "")).await,
        R5::BadUserNamePassword
    );
    // A password file closes the loopback listener to anonymous clients.
    assert_eq!(refused4(v4_options(addr, "anon")).await, R4::NotAuthorized);
    assert_eq!(refused5(v5_options(addr, "anon")).await, R5::NotAuthorized);
}

#[tokio::test]
async fn the_acl_decides_publish_subscribe_and_delivery() {
    let files = Files::new();
    let (_b, addr) = broker(files.auth()).await;
    let mut alice = v5(login5(addr, "alice-1", "alice", "wonderland")).await;
    // A denied QoS 1 PUBLISH is answered 0x87 [MQTT-3.3.5-2 is 3.1.1's].
    for (topic, want) in [
        ("a/x", PubAckReason::Success),
        ("a/secret/x", PubAckReason::NotAuthorized),
        ("b/x", PubAckReason::NotAuthorized),
        ("$SYS/x", PubAckReason::NotAuthorized),
        ("own/alice/x", PubAckReason::Success),
    ] {
        alice
            .client
            .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "p")
            .await
            .unwrap();
        let P5::PubAck(ack) = alice.next_matching(|p| matches!(p, P5::PubAck(_))).await else {
            unreachable!()
        };
        // 0x10 No matching subscribers is a success too.
        let reason = match ack.reason {
            PubAckReason::NoMatchingSubscribers => PubAckReason::Success,
            r => r,
        };
        assert_eq!(reason, want, "{topic}");
    }
    // SUBSCRIBE: a filter nothing readable lies under is refused, each
    // filter on its own.
    for (filter, ok) in [
        ("a/#", true),
        ("#", true),
        ("a/secret/#", false),
        ("b/#", false),
        ("$share/g/a/+", true),
        ("$share/g/a/secret/x", false),
        ("$SYS/#", false),
    ] {
        alice
            .client
            .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtMostOnce)
            .await
            .unwrap();
        let P5::SubAck(ack) = alice.next_matching(|p| matches!(p, P5::SubAck(_))).await else {
            unreachable!()
        };
        let granted = !matches!(ack.return_codes[0], SubscribeReasonCode::NotAuthorized);
        assert_eq!(granted, ok, "{filter}: {:?}", ack.return_codes);
    }
    // A granted `#` delivers only what the ACL lets bob read; so does a
    // shared subscription.
    let mut bob = v4(login4(addr, "bob-1", "bob", "builder")).await;
    bob.subscribe("#", rumqttc::QoS::AtLeastOnce).await;
    let mut bob2 = v4(login4(addr, "bob-2", "bob", "builder")).await;
    bob2.subscribe("$share/g/#", rumqttc::QoS::AtLeastOnce)
        .await;
    let mut publisher = v4(login4(addr, "alice-2", "alice", "wonderland")).await;
    publisher.publish_acked("a/1", [b"1".to_vec()]).await;
    publisher
        .publish_acked("own/alice/2", [b"2".to_vec()])
        .await;
    publisher.publish_acked("a/3", [b"3".to_vec()]).await;
    assert_eq!(before_marker(addr, &mut bob).await, ["a/1", "a/3"]);
    assert_eq!(before_marker(addr, &mut bob2).await, ["a/1", "a/3"]);
}

/// [MQTT-3.3.5-2]: a 3.1.1 client's denied QoS 1 and 2 PUBLISH packets
/// are acknowledged as usual (the flow completes) and go nowhere.
#[tokio::test]
async fn a_denied_publish_is_acknowledged_as_usual_in_3_1_1() {
    let files = Files::new();
    let (_b, addr) = broker(files.auth()).await;
    let mut bob = v4(login4(addr, "bob-d", "bob", "builder")).await;
    bob.subscribe("#", rumqttc::QoS::AtLeastOnce).await;
    let mut eve = v4(login4(addr, "eve-d", "eve", "dropper")).await;
    eve.publish_acked("a/from-eve", [b"1".to_vec()]).await;
    eve.client
        .publish("a/from-eve", rumqttc::QoS::ExactlyOnce, false, "2")
        .await
        .unwrap();
    eve.next_matching(|p| matches!(p, rumqttc::Packet::PubComp(_)))
        .await;
    assert_eq!(before_marker(addr, &mut bob).await, Vec::<String>::new());
}

#[tokio::test]
async fn retained_messages_and_wills_go_through_the_acl() {
    let files = Files::new();
    let (_b, addr) = broker(files.auth()).await;
    let mut alice = v4(login4(addr, "alice-r", "alice", "wonderland")).await;
    for topic in ["a/kept", "own/alice/kept"] {
        alice
            .client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, "r")
            .await
            .unwrap();
        alice
            .next_matching(|p| matches!(p, rumqttc::Packet::PubAck(_)))
            .await;
    }
    // Bob may read a/ but not own/alice/: subscribing to `#` gets the one
    // retained message only.
    let mut bob = v4(login4(addr, "bob-r", "bob", "builder")).await;
    bob.subscribe("#", rumqttc::QoS::AtLeastOnce).await;
    let first = bob.next_publish().await;
    assert_eq!(first.topic, "a/kept");
    assert_eq!(before_marker(addr, &mut bob).await, Vec::<String>::new());
    // A will on a topic its client may not publish to refuses the CONNECT.
    let mut o = login4(addr, "bob-w", "bob", "builder");
    o.set_last_will(rumqttc::LastWill::new(
        "a/will",
        "w",
        rumqttc::QoS::AtMostOnce,
        false,
    ));
    assert_eq!(refused4(o).await, rumqttc::ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn banned_clients_users_and_addresses() {
    let files = Files::new();
    std::fs::write(files.path("bans"), "client bad-device\nuser eve\n").unwrap();
    let (b, addr) = broker(files.auth()).await;
    assert_eq!(
        connack5(addr, "bad-device", "alice", "wonderland").await,
        BANNED
    );
    assert_eq!(connack5(addr, "e", "eve", "dropper").await, BANNED);
    assert_eq!(
        refused4(login4(addr, "e", "eve", "dropper")).await,
        rumqttc::ConnectReturnCode::NotAuthorized
    );
    v5(login5(addr, "fine", "alice", "wonderland")).await;
    // Every client here comes from 127.0.0.1.
    std::fs::write(files.path("bans"), "address 127.0.0.0/8\n").unwrap();
    assert!(b.reload().iter().all(|(_, r)| r.is_ok()));
    assert_eq!(connack5(addr, "fine", "alice", "wonderland").await, BANNED);
    std::fs::write(files.path("bans"), "address ::1\n").unwrap();
    assert!(b.reload().iter().all(|(_, r)| r.is_ok()));
    v5(login5(addr, "fine", "alice", "wonderland")).await;
}

#[tokio::test]
async fn reload_applies_to_open_connections_and_keeps_rules_that_parse() {
    let files = Files::new();
    let (b, addr) = broker(files.auth()).await;
    let mut bob = v4(login4(addr, "bob-h", "bob", "builder")).await;
    bob.subscribe("a/#", rumqttc::QoS::AtLeastOnce).await;
    bob.subscribe("marker/#", rumqttc::QoS::AtLeastOnce).await;
    let mut alice = v4(login4(addr, "alice-h", "alice", "wonderland")).await;
    alice.publish_acked("a/x", [b"1".to_vec()]).await;
    assert_eq!(before_marker(addr, &mut bob).await, ["a/x"]);

    // Bob loses a/x; carol is added.
    std::fs::write(
        files.path("acl"),
        ACL.replace("user bob\n", "user bob\ntopic deny a/x\n"),
    )
    .unwrap();
    let mut pw =
        PasswordFile::parse(&std::fs::read_to_string(files.path("passwd")).unwrap()).unwrap();
    pw.set("carol", Hash::new(HashKind::Sha512Pbkdf2, b"singer"));
    std::fs::write(files.path("passwd"), pw.to_text()).unwrap();
    let results = b.reload();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    alice.publish_acked("a/x", [b"2".to_vec()]).await;
    alice.publish_acked("a/y", [b"3".to_vec()]).await;
    assert_eq!(before_marker(addr, &mut bob).await, ["a/y"]);
    v4(login4(addr, "carol-1", "carol", "singer")).await;

    // A file that does not parse keeps the rules in force.
    std::fs::write(files.path("acl"), "user bob\ntopic read a/#/x\n").unwrap();
    let results = b.reload();
    let (_, r) = results.iter().find(|(name, _)| name == "auth").unwrap();
    let e = r.as_ref().unwrap_err().to_string();
    assert!(e.contains("auth.acl_file") && e.contains("line 2"), "{e}");
    alice.publish_acked("a/x", [b"4".to_vec()]).await;
    alice.publish_acked("a/z", [b"5".to_vec()]).await;
    assert_eq!(before_marker(addr, &mut bob).await, ["a/z"]);
}

#[tokio::test]
async fn anonymous_access_follows_each_listener() {
    let wide = |allow: Option<bool>| {
        let mut l = Listener::tcp("0.0.0.0:0".parse().unwrap());
        l.allow_anonymous = allow;
        l
    };
    let b = Broker::start(BrokerConfig {
        sys_interval: None,
        listeners: vec![
            Listener::tcp("127.0.0.1:0".parse().unwrap()),
            wide(None),
            wide(Some(true)),
        ],
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let port = |i: usize| SocketAddr::from(([127, 0, 0, 1], b.local_addrs()[i].port()));
    v4(v4_options(port(0), "loopback")).await;
    assert_eq!(
        refused4(v4_options(port(1), "wide")).await,
        rumqttc::ConnectReturnCode::NotAuthorized
    );
    v4(v4_options(port(2), "opened")).await;
}

#[tokio::test]
async fn bad_files_stop_the_start_naming_file_and_line() {
    let files = Files::new();
    std::fs::write(files.path("passwd"), "alice:$7$101$AAAA$AAAA\nbob:plain\n").unwrap();
    let e = Broker::start(BrokerConfig {
        auth: files.auth(),
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("auth.password_file = "), "{e}");
    assert!(e.contains("line 2: user bob: not a password hash"), "{e}");
    assert!(e.contains("strata passwd -U"), "{e}");
    let missing = AuthConfig {
        acl_file: Some(Path::new("/nonexistent/acl").to_owned()),
        ..AuthConfig::default()
    };
    let e = broker_err(missing).await;
    assert!(e.contains("auth.acl_file = \"/nonexistent/acl\""), "{e}");
}

async fn broker_err(auth: AuthConfig) -> String {
    Broker::start(BrokerConfig {
        auth,
        listeners: vec![Listener::tcp("127.0.0.1:0".parse().unwrap())],
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err()
    .to_string()
}

/// An HS256 token for these claims, signed with `secret`.
fn hs256(claims: &str, secret: &[u8]) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let signing = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let sig = ring::hmac::sign(&key, signing.as_bytes());
    format!("{signing}.{}", b64(sig.as_ref()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const JWT_SECRET: &[u8] = b"a secret of more than thirty-two bytes, for HS256";

async fn jwt_broker(files: &Files) -> (Broker, SocketAddr) {
    std::fs::write(files.path("jwt.secret"), [JWT_SECRET, b"\n"].concat()).unwrap();
    let mut auth = files.auth();
    auth.jwt = Some(strata_broker::config::JwtConfig {
        secret_file: Some(files.path("jwt.secret")),
        algorithms: vec!["HS256".to_owned()],
        username_claim: "sub".to_owned(),
        clientid_claim: Some("cid".to_owned()),
        acl_claim: Some("acl".to_owned()),
        ..Default::default()
    });
    broker(auth).await
}

#[tokio::test]
async fn tokens_in_the_password_field() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as R5;
    let files = Files::new();
    let (_b, addr) = jwt_broker(&files).await;
    let exp = unix_now() + 600;
    let claims = |sub: &str, cid: &str, exp: u64| {
        format!(
            r#"{{"sub":"{sub}","cid":"{cid}","exp":{exp},"acl":{{"pub":["t/{cid}/#"],"sub":["c/{cid}"]}}}}"#
        )
    };
    let good = hs256(&claims("dev", "dev-1", exp), JWT_SECRET);
    // The token's ACL stands for the file's: dev may publish under its
    // own prefix only.
    let mut dev = v5(login5(addr, "dev-1", "dev", &good)).await;
    for (topic, ok) in [("t/dev-1/x", true), ("t/dev-2/x", false), ("a/x", false)] {
        dev.client
            .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "p")
            .await
            .unwrap();
        let P5::PubAck(ack) = dev.next_matching(|p| matches!(p, P5::PubAck(_))).await else {
            unreachable!()
        };
        assert_eq!(
            ack.reason != PubAckReason::NotAuthorized,
            ok,
            "{topic}: {:?}",
            ack.reason
        );
    }
    let forged = hs256(
        &claims("dev", "dev-1", exp),
        b"another secret, just as long as the first one",
    );
    assert_eq!(
        refused5(login5(addr, "dev-1", "dev", &forged)).await,
        R5::BadUserNamePassword
    );
    let expired = hs256(&claims("dev", "dev-1", unix_now() - 1), JWT_SECRET);
    assert_eq!(
        refused5(login5(addr, "dev-1", "dev", &expired)).await,
        R5::BadUserNamePassword
    );
    assert_eq!(
        refused5(login5(addr, "dev-1", "root", &good)).await,
        R5::BadUserNamePassword
    );
    assert_eq!(
        refused5(login5(addr, "dev-2", "dev", &good)).await,
        R5::NotAuthorized
    );
    // Passwords that are not tokens still go to the password file.
    v5(login5(addr, "alice-j", "alice", "wonderland")).await;
}

#[tokio::test]
async fn a_connection_ends_when_its_token_expires() {
    let files = Files::new();
    let (_b, addr) = jwt_broker(&files).await;
    let claims = |cid: &str| format!(r#"{{"sub":"dev","cid":"{cid}","exp":{}}}"#, unix_now() + 2);
    let v5c = v5(login5(
        addr,
        "dev-5",
        "dev",
        &hs256(&claims("dev-5"), JWT_SECRET),
    ))
    .await;
    let mut v4c = v4(login4(
        addr,
        "dev-4",
        "dev",
        &hs256(&claims("dev-4"), JWT_SECRET),
    ))
    .await;
    // rumqttc ends its event loop on the server's DISCONNECT, with the
    // reason in the error.
    let mut v5c = v5c;
    tokio::time::timeout(WAIT, async { while v5c.rx.recv().await.is_some() {} })
        .await
        .expect("the connection ends");
    let ended = tokio::time::timeout(WAIT, &mut v5c.task)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.contains("NotAuthorized"), "{ended}");
    // 3.1.1 has no DISCONNECT from the server: the connection is closed.
    v4c.until_closed_without(
        |p| matches!(p, rumqttc::Packet::Publish(_)),
        "nothing after expiry",
    )
    .await;
}

/// A 3.1.1 CONNECT with a will (QoS 0) and a login, by hand; the socket is
/// returned once the CONNACK (return code 0) came, to be dropped without a
/// DISCONNECT.
async fn connect_with_will(
    addr: SocketAddr,
    id: &str,
    login: (&str, &str),
    will_topic: &str,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let field = |s: &[u8]| {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    };
    let mut body = field(b"MQTT");
    body.extend([4, 0xC6, 0, 30]);
    for f in [
        id.as_bytes(),
        will_topic.as_bytes(),
        b"gone",
        login.0.as_bytes(),
        login.1.as_bytes(),
    ] {
        body.extend(field(f));
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&packet).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
    s
}

/// Waits until the broker counts `n` connected clients.
async fn connected(b: &Broker, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.connected_clients() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} connected, not {n}",
            b.connected_clients()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_will_is_checked_again_when_it_is_due() {
    let files = Files::new();
    let (b, addr) = broker(files.auth()).await;
    let mut bob = v4(login4(addr, "bob-will", "bob", "builder")).await;
    bob.subscribe("a/#", rumqttc::QoS::AtLeastOnce).await;
    bob.subscribe("marker/#", rumqttc::QoS::AtLeastOnce).await;
    // Allowed: the will comes when the connection is lost.
    drop(connect_with_will(addr, "alice-w1", ("alice", "wonderland"), "a/will").await);
    connected(&b, 1).await;
    assert_eq!(before_marker(addr, &mut bob).await, ["a/will"]);
    // Allowed at CONNECT, denied by a reload before it is due: dropped.
    let s = connect_with_will(addr, "alice-w2", ("alice", "wonderland"), "a/will").await;
    std::fs::write(
        files.path("acl"),
        ACL.replace("user alice\n", "user alice\ntopic deny a/will\n"),
    )
    .unwrap();
    assert!(b.reload().iter().all(|(_, r)| r.is_ok()));
    let before = b.connected_clients();
    drop(s);
    connected(&b, before - 1).await;
    assert_eq!(before_marker(addr, &mut bob).await, Vec::<String>::new());
}

/// With only tokens to authenticate clients, a user name sent with a
/// password that is not a token proves nothing: refused (it would pick
/// that user's ACL lines), as is a client without credentials.
#[tokio::test]
async fn a_user_name_nothing_proves_is_refused() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as R5;
    let files = Files::new();
    std::fs::write(files.path("jwt.secret"), JWT_SECRET).unwrap();
    let auth = AuthConfig {
        acl_file: Some(files.path("acl")),
        jwt: Some(strata_broker::config::JwtConfig {
            secret_file: Some(files.path("jwt.secret")),
            username_claim: "sub".to_owned(),
            ..Default::default()
        }),
        ..AuthConfig::default()
    };
    let (_b, addr) = broker(auth).await;
    assert_eq!(
        refused5(login5(addr, "x", "alice", "not a token")).await,
        R5::BadUserNamePassword
    );
    assert_eq!(refused5(v5_options(addr, "anon")).await, R5::NotAuthorized);
    let token = hs256(
        &format!(r#"{{"sub":"alice","exp":{}}}"#, unix_now() + 60),
        JWT_SECRET,
    );
    v5(login5(addr, "y", "alice", &token)).await;
}
