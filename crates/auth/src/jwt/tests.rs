use super::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-secret";
const NOW: u64 = 1_800_000_000;

fn enc(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn hs(alg: &str, claims: &Value, secret: &[u8]) -> String {
    let head = enc(&serde_json::json!({"alg": alg, "typ": "JWT"}));
    let signing = format!("{head}.{}", enc(claims));
    let h = match alg {
        "HS384" => ring::hmac::HMAC_SHA384,
        "HS512" => ring::hmac::HMAC_SHA512,
        _ => ring::hmac::HMAC_SHA256,
    };
    let tag = ring::hmac::sign(&ring::hmac::Key::new(h, secret), signing.as_bytes());
    format!("{signing}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn settings<'a>(algorithms: &'a [String]) -> JwtSettings<'a> {
    JwtSettings {
        secret: Some(SECRET),
        algorithms,
        username_claim: "sub",
        ..JwtSettings::default()
    }
}

fn hmac_verifier() -> Verifier {
    Verifier::new(&settings(&[])).unwrap()
}

#[test]
fn hmac_tokens_and_their_claims() {
    let v = hmac_verifier();
    for alg in ["HS256", "HS384", "HS512"] {
        let t = hs(
            alg,
            &serde_json::json!({"sub": "alice", "exp": NOW + 60}),
            SECRET,
        );
        assert!(looks_like_token(t.as_bytes()));
        let c = v.verify(&t, NOW).unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.expires, Some(NOW + 60));
        assert_eq!(c.acl, None);
    }
}

#[test]
fn bad_tokens_are_refused_with_the_reason() {
    let v = hmac_verifier();
    let claims = serde_json::json!({"sub": "alice"});
    let other = hs("HS256", &claims, b"another secret of at least 32 bytes!!");
    assert_eq!(v.verify(&other, NOW), Err(JwtError::Signature));
    // alg none, with or without a signature.
    let head = enc(&serde_json::json!({"alg": "none"}));
    let none = format!("{head}.{}.", enc(&claims));
    assert_eq!(
        v.verify(&none, NOW),
        Err(JwtError::Algorithm("none".into()))
    );
    // A tampered payload.
    let good = hs("HS256", &claims, SECRET);
    let mut parts: Vec<&str> = good.split('.').collect();
    let evil = enc(&serde_json::json!({"sub": "root"}));
    parts[1] = &evil;
    assert_eq!(v.verify(&parts.join("."), NOW), Err(JwtError::Signature));
    let expired = hs(
        "HS256",
        &serde_json::json!({"sub": "a", "exp": NOW}),
        SECRET,
    );
    assert_eq!(v.verify(&expired, NOW), Err(JwtError::Expired));
    let early = hs(
        "HS256",
        &serde_json::json!({"sub": "a", "nbf": NOW + 1}),
        SECRET,
    );
    assert_eq!(v.verify(&early, NOW), Err(JwtError::NotYetValid));
    let far = hs(
        "HS256",
        &serde_json::json!({"sub": "a", "exp": 1e20}),
        SECRET,
    );
    assert!(matches!(v.verify(&far, NOW), Err(JwtError::Claim(_))));
    let nameless = hs("HS256", &serde_json::json!({"name": "a"}), SECRET);
    assert!(matches!(v.verify(&nameless, NOW), Err(JwtError::Claim(_))));
    for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
        assert!(v.verify(junk, NOW).is_err(), "{junk}");
    }
    assert!(!looks_like_token(b"hunter2"));
    assert!(!looks_like_token(b"a.b"));
    assert!(!looks_like_token("é.a.b".as_bytes()));
}

#[test]
fn only_listed_algorithms_are_accepted() {
    let only256 = vec!["HS256".to_owned()];
    let v = Verifier::new(&settings(&only256)).unwrap();
    let t = hs("HS512", &serde_json::json!({"sub": "a"}), SECRET);
    assert_eq!(v.verify(&t, NOW), Err(JwtError::Algorithm("HS512".into())));
    for (algs, want) in [
        (vec!["none".to_owned()], "never"),
        (vec!["XS1".to_owned()], "use HS256"),
        (vec!["RS256".to_owned()], "none of the keys"),
    ] {
        let e = Verifier::new(&settings(&algs)).unwrap_err();
        assert!(e.contains(want), "{algs:?}: {e}");
    }
    let short = JwtSettings {
        secret: Some(b"short"),
        ..settings(&[])
    };
    assert!(Verifier::new(&short).unwrap_err().contains("at least 32"));
}

#[test]
fn client_id_and_acl_claims() {
    let s = JwtSettings {
        clientid_claim: Some("cid"),
        acl_claim: Some("acl"),
        ..settings(&[])
    };
    let v = Verifier::new(&s).unwrap();
    let t = hs(
        "HS256",
        &serde_json::json!({"sub": "d", "cid": "dev-1", "acl": {"pub": ["t/dev-1/#"], "sub": ["cmd/dev-1"]}}),
        SECRET,
    );
    let c = v.verify(&t, NOW).unwrap();
    assert_eq!(c.client_id.as_deref(), Some("dev-1"));
    let acl = c.acl.unwrap();
    assert!(acl.check("t/dev-1/x", Access::Write));
    assert!(!acl.check("t/dev-2/x", Access::Write));
    assert!(!acl.check("t/dev-1/x", Access::Read));
    assert!(acl.check("cmd/dev-1", Access::Read));
    assert!(acl.may_subscribe("cmd/+"));
    assert!(!acl.may_subscribe("t/#"));
    let no_cid = hs("HS256", &serde_json::json!({"sub": "d"}), SECRET);
    assert!(matches!(v.verify(&no_cid, NOW), Err(JwtError::Claim(_))));
    let bad_acl = hs(
        "HS256",
        &serde_json::json!({"sub": "d", "cid": "x", "acl": {"pub": ["a/#/b"]}}),
        SECRET,
    );
    assert!(matches!(v.verify(&bad_acl, NOW), Err(JwtError::Claim(_))));
}

/// An ES256 key pair from ring, its public key as SPKI PEM and as a JWKS.
fn ec_key() -> (EcdsaKeyPair, String, String) {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let mut alg = der_wrap(0x06, EC_OID);
    alg.extend(der_wrap(0x06, P256_OID));
    let mut bits = vec![0];
    bits.extend_from_slice(&point);
    let mut spki = der_wrap(0x30, &alg);
    spki.extend(der_wrap(0x03, &bits));
    let spki = der_wrap(0x30, &spki);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(spki)
    );
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]})
    .to_string();
    (pair, pem, jwks)
}

fn es256(pair: &EcdsaKeyPair, kid: Option<&str>, claims: &Value) -> String {
    let mut head = serde_json::json!({"alg": "ES256"});
    if let Some(k) = kid {
        head["kid"] = Value::from(k);
    }
    let signing = format!("{}.{}", enc(&head), enc(claims));
    let sig = pair.sign(&SystemRandom::new(), signing.as_bytes()).unwrap();
    format!("{signing}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[test]
fn ec_keys_from_pem_and_jwks() {
    let (pair, pem, jwks) = ec_key();
    let claims = serde_json::json!({"sub": "ec-user"});
    let t = es256(&pair, Some("k1"), &claims);
    for s in [
        JwtSettings {
            public_key_pem: Some(&pem),
            username_claim: "sub",
            ..JwtSettings::default()
        },
        JwtSettings {
            jwks: Some(&jwks),
            username_claim: "sub",
            ..JwtSettings::default()
        },
    ] {
        let v = Verifier::new(&s).unwrap();
        assert_eq!(v.verify(&t, NOW).unwrap().username, "ec-user");
        // The same token re-signed as HS256 with the public key as the
        // secret (the classic confusion attack) is refused: no HMAC key.
        let forged = hs("HS256", &claims, pem.as_bytes());
        assert!(v.verify(&forged, NOW).is_err());
    }
    let (other, _, _) = ec_key();
    let v = Verifier::new(&JwtSettings {
        jwks: Some(&jwks),
        username_claim: "sub",
        ..JwtSettings::default()
    })
    .unwrap();
    assert_eq!(
        v.verify(&es256(&other, Some("k1"), &claims), NOW),
        Err(JwtError::Signature)
    );
    assert_eq!(
        v.verify(&es256(&pair, Some("k2"), &claims), NOW),
        Err(JwtError::NoKey)
    );
}

#[test]
fn bad_key_files_say_what_is_wrong() {
    let s = |pem: &'static str| JwtSettings {
        public_key_pem: Some(pem),
        username_claim: "sub",
        ..JwtSettings::default()
    };
    assert!(
        Verifier::new(&s("hello"))
            .unwrap_err()
            .contains("no -----BEGIN")
    );
    assert!(
        Verifier::new(&s(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ))
        .unwrap_err()
        .contains("not the private one")
    );
    assert!(
        Verifier::new(&s(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        ))
        .unwrap_err()
        .contains("SubjectPublicKeyInfo")
    );
    let j = JwtSettings {
        jwks: Some("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-521\", \"x\": \"\", \"y\": \"\"}]}"),
        username_claim: "sub",
        ..JwtSettings::default()
    };
    assert!(Verifier::new(&j).unwrap_err().contains("P-521"));
    let none = JwtSettings {
        username_claim: "sub",
        ..JwtSettings::default()
    };
    assert!(Verifier::new(&none).unwrap_err().contains("no key"));
}

#[test]
fn audience_and_issuer() {
    let s = JwtSettings {
        audience: Some("strata"),
        issuer: Some("https://idp.example"),
        ..settings(&[])
    };
    let v = Verifier::new(&s).unwrap();
    let good =
        serde_json::json!({"sub": "a", "aud": ["other", "strata"], "iss": "https://idp.example"});
    assert_eq!(
        v.verify(&hs("HS256", &good, SECRET), NOW).unwrap().username,
        "a"
    );
    let single = serde_json::json!({"sub": "a", "aud": "strata", "iss": "https://idp.example"});
    assert!(v.verify(&hs("HS256", &single, SECRET), NOW).is_ok());
    for bad in [
        serde_json::json!({"sub": "a", "aud": "other", "iss": "https://idp.example"}),
        serde_json::json!({"sub": "a", "iss": "https://idp.example"}),
        serde_json::json!({"sub": "a", "aud": "strata", "iss": "https://evil.example"}),
        serde_json::json!({"sub": "a", "aud": "strata"}),
    ] {
        assert!(
            matches!(
                v.verify(&hs("HS256", &bad, SECRET), NOW),
                Err(JwtError::Claim(_))
            ),
            "{bad}"
        );
    }
}
