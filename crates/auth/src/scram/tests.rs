use super::*;

/// RFC 7677, section 3: user "user", password "pencil".
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_keys() -> Credentials {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    Credentials::derive(
        Mechanism::Sha256,
        b"pencil",
        &salt,
        NonZeroU32::new(4096).unwrap(),
    )
}

fn start(client_first: &str, keys: Option<Credentials>) -> Result<(Exchange, Vec<u8>), ScramError> {
    Exchange::start(
        Mechanism::Sha256,
        client_first.as_bytes(),
        |u| keys.filter(|_| u == "user"),
        b"secret",
        SERVER_NONCE,
    )
}

#[test]
fn rfc_7677_example() {
    let (x, first) = start(CLIENT_FIRST, Some(rfc_keys())).unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), SERVER_FIRST);
    assert_eq!(x.username(), "user");
    let last = x.finish(CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(last).unwrap(), SERVER_FINAL);
}

#[test]
fn wrong_proofs_nonces_and_unknown_users_fail() {
    let (x, _) = start(CLIENT_FIRST, Some(rfc_keys())).unwrap();
    let mut bad = CLIENT_FINAL.to_owned();
    bad.replace_range(bad.len() - 5..bad.len() - 4, "A");
    assert_eq!(x.finish(bad.as_bytes()), Err(ScramError::Proof));
    // A final message of another exchange (its nonce) is refused.
    let replay = CLIENT_FINAL.replace("hNlF$k0", "hNlF$k1");
    assert_eq!(x.finish(replay.as_bytes()), Err(ScramError::Nonce));
    // Another password's keys.
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let other = Credentials::derive(
        Mechanism::Sha256,
        b"pencil2",
        &salt,
        NonZeroU32::new(4096).unwrap(),
    );
    let (x, _) = start(CLIENT_FIRST, Some(other)).unwrap();
    assert_eq!(x.finish(CLIENT_FINAL.as_bytes()), Err(ScramError::Proof));
    // An unknown user gets a salt and count like anyone's, twice the same,
    // and fails at the proof.
    let (x, first) = start("n,,n=nobody,r=abc", None).unwrap();
    let (_, again) = start("n,,n=nobody,r=abc", None).unwrap();
    assert_eq!(first, again);
    assert!(String::from_utf8(first).unwrap().ends_with(",i=4096"));
    assert_eq!(
        x.finish(b"c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"),
        Err(ScramError::Proof)
    );
}

#[test]
fn malformed_first_messages() {
    for (msg, want) in [
        ("", ScramError::Malformed("no GS2 header")),
        ("p=tls-unique,,n=user,r=x", ScramError::ChannelBinding),
        (
            "x,,n=user,r=x",
            ScramError::Malformed("a GS2 header is n, y or p="),
        ),
        (
            "n,,r=x,n=user",
            ScramError::Malformed("an attribute is missing or out of order"),
        ),
        (
            "n,,n=us=er,r=x",
            ScramError::Malformed("a bad '=' escape in the user name"),
        ),
        (
            "n,,m=ext,n=user,r=x",
            ScramError::Malformed("extensions (m=) are not supported"),
        ),
        (
            "n,,n=user,r=",
            ScramError::Malformed("an empty client nonce"),
        ),
    ] {
        assert_eq!(start(msg, None).map(|_| ()), Err(want), "{msg:?}");
    }
    let (x, _) = start("n,,n=a=2Cb=3Dc,r=x", None).unwrap();
    assert_eq!(x.username(), "a,b=c");
}

#[test]
fn sha512_round_trip_with_a_client_written_here() {
    let m = Mechanism::Sha512;
    let keys = Credentials::new(m, b"hunter2");
    let (x, first) = Exchange::start(
        m,
        b"n,,n=u,r=cnonce",
        |_| Some(keys.clone()),
        b"s",
        "snonce",
    )
    .unwrap();
    // The client's side, from the RFC's definitions.
    let first = String::from_utf8(first).unwrap();
    let salt = STANDARD
        .decode(
            first
                .split(",s=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap(),
        )
        .unwrap();
    let mut salted = vec![0u8; 64];
    pbkdf2::derive(
        m.pbkdf2(),
        NonZeroU32::new(ITERATIONS).unwrap(),
        &salt,
        b"hunter2",
        &mut salted,
    );
    let client_key = hmac_of(m, &salted, b"Client Key");
    let stored = digest::digest(m.digest(), &client_key);
    let without_proof = "c=biws,r=cnoncesnonce";
    let auth = format!("n=u,r=cnonce,{first},{without_proof}");
    let sig = hmac_of(m, stored.as_ref(), auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let last = x
        .finish(format!("{without_proof},p={}", STANDARD.encode(proof)).as_bytes())
        .unwrap();
    let server_key = hmac_of(m, &salted, b"Server Key");
    let want = format!(
        "v={}",
        STANDARD.encode(hmac_of(m, &server_key, auth.as_bytes()))
    );
    assert_eq!(String::from_utf8(last).unwrap(), want);
}

#[test]
fn the_file_round_trips_and_names_bad_lines() {
    let mut f = ScramFile::default();
    f.set("alice", Mechanism::Sha256, rfc_keys());
    f.set(
        "alice",
        Mechanism::Sha512,
        Credentials::new(Mechanism::Sha512, b"x"),
    );
    let text = f.to_text();
    assert_eq!(ScramFile::parse(&text).unwrap(), f);
    assert!(f.get("alice", Mechanism::Sha512).is_some());
    assert!(f.remove("alice"));
    assert!(f.get("alice", Mechanism::Sha256).is_none());
    for (bad, want) in [
        (
            "alice:SCRAM-SHA-1:4096:AA==:AA==:AA==\n",
            "SCRAM-SHA-256 or",
        ),
        ("alice:SCRAM-SHA-256:0:AA==:AA==:AA==\n", "iteration"),
        ("alice:SCRAM-SHA-256:4096:AA==:AA==:AA==\n", "32 bytes"),
        ("just a line\n", "expected USER:MECHANISM"),
    ] {
        let e = ScramFile::parse(bad).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains(want), "{bad}: {e}");
    }
    let twice = format!("{text}{}", text.lines().next().unwrap());
    assert!(
        ScramFile::parse(&twice)
            .unwrap_err()
            .reason
            .contains("twice")
    );
}
