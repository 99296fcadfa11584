//! JSON Web Tokens (RFC 7519) in the password field: a compact JWS signed
//! with an HMAC secret (HS256/384/512), an RSA key (RS256/384/512) or an
//! EC key (ES256/384), the keys from a secret file, a PEM public key or a
//! JWKS file. `alg: none` is never accepted, and an algorithm is accepted
//! only if the configuration lists it and the key is of its kind (so an
//! RSA public key can never be used as an HMAC secret). `exp` and `nbf`
//! are honoured; the username claim names the user, an optional claim
//! binds the token to a client id, and an optional claim carries the
//! client's own ACL.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

use crate::acl::Access;
use crate::der::Der;
use crate::topic::{intersects, matches};

/// A signature algorithm a token may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Es256,
    Es384,
}

impl Alg {
    /// The JOSE name (`HS256`, ...). `none` is not one.
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            _ => return None,
        })
    }

    fn is_hmac(self) -> bool {
        matches!(self, Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
    }
}

/// A key tokens are checked against.
#[derive(Debug, Clone)]
enum Key {
    Hmac(Vec<u8>),
    /// PKCS#1 RSAPublicKey DER.
    Rsa(Vec<u8>),
    /// An uncompressed point, and whether the curve is P-384.
    Ec {
        point: Vec<u8>,
        p384: bool,
    },
}

/// The keys and rules tokens are verified by.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<(Option<String>, Key)>,
    algorithms: Vec<Alg>,
    username_claim: String,
    clientid_claim: Option<String>,
    acl_claim: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
}

/// Where the keys come from, and which claims mean what.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings<'a> {
    /// The HMAC secret: the file's bytes, without a trailing newline.
    pub secret: Option<&'a [u8]>,
    /// A PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub public_key_pem: Option<&'a str>,
    /// A JWKS document: `{"keys": [...]}` with RSA (`n`, `e`) and EC
    /// (`crv`, `x`, `y`) keys.
    pub jwks: Option<&'a str>,
    /// JOSE names; empty: every algorithm the keys can check.
    pub algorithms: &'a [String],
    pub username_claim: &'a str,
    pub clientid_claim: Option<&'a str>,
    pub acl_claim: Option<&'a str>,
    /// A token's `aud` (a string or a list) must hold it, when set.
    pub audience: Option<&'a str>,
    /// A token's `iss` must be it, when set.
    pub issuer: Option<&'a str>,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub username: String,
    /// The client id the token is bound to, when the configuration names
    /// the claim.
    pub client_id: Option<String>,
    /// `exp`, in seconds since the Unix epoch.
    pub expires: Option<u64>,
    /// The client's own ACL, when the configuration names the claim and
    /// the token has it.
    pub acl: Option<TokenAcl>,
}

/// Topic filters a token grants: publish to topics matching `publish`,
/// receive from topics matching `subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenAcl {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl TokenAcl {
    pub fn check(&self, topic: &str, access: Access) -> bool {
        if access == Access::Write && !crate::acl::sys_writable(topic) {
            return false;
        }
        let filters = match access {
            Access::Write => &self.publish,
            Access::Read => &self.subscribe,
        };
        filters.iter().any(|f| matches(f, topic))
    }

    pub fn may_subscribe(&self, filter: &str) -> bool {
        self.subscribe.iter().any(|f| intersects(f, filter))
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key for it")]
    NoKey,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("{0}")]
    Claim(String),
}

/// The latest `exp` or `nbf` taken (2^40 seconds after 1970).
const MAX_TIME: f64 = 1_099_511_627_776.0;

fn b64url(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)
}

/// Whether a password is a compact JWS at all (three base64url parts):
/// other passwords go to the password file.
pub fn looks_like_token(password: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(password) else {
        return false;
    };
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Verifier {
    /// Builds a verifier; an error says which setting is wrong.
    pub fn new(s: &JwtSettings<'_>) -> Result<Verifier, String> {
        let mut keys = Vec::new();
        if let Some(secret) = s.secret {
            if secret.len() < 32 {
                return Err(format!(
                    "the HMAC secret has {} bytes: use at least 32 (e.g. `head -c 48 /dev/urandom | base64`)",
                    secret.len()
                ));
            }
            keys.push((None, Key::Hmac(secret.to_vec())));
        }
        if let Some(pem) = s.public_key_pem {
            keys.push((None, pem_key(pem)?));
        }
        if let Some(jwks) = s.jwks {
            keys.extend(jwks_keys(jwks)?);
        }
        if keys.is_empty() {
            return Err("no key: give secret_file, public_key_file or jwks_file".to_owned());
        }
        let mut algorithms = Vec::new();
        for name in s.algorithms {
            if name.eq_ignore_ascii_case("none") {
                return Err("\"none\" is never accepted: a token must be signed".to_owned());
            }
            let alg = Alg::from_name(name).ok_or_else(|| {
                format!("{name:?}: use HS256, HS384, HS512, RS256, RS384, RS512, ES256 or ES384")
            })?;
            if !keys.iter().any(|(_, k)| fits(alg, k)) {
                return Err(format!("{name}: none of the keys is of its kind"));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            let all = [
                Alg::Hs256,
                Alg::Hs384,
                Alg::Hs512,
                Alg::Rs256,
                Alg::Rs384,
                Alg::Rs512,
                Alg::Es256,
                Alg::Es384,
            ];
            algorithms = all
                .into_iter()
                .filter(|a| keys.iter().any(|(_, k)| fits(*a, k)))
                .collect();
        }
        Ok(Verifier {
            keys,
            algorithms,
            username_claim: s.username_claim.to_owned(),
            clientid_claim: s.clientid_claim.map(str::to_owned),
            acl_claim: s.acl_claim.map(str::to_owned),
            audience: s.audience.map(str::to_owned),
            issuer: s.issuer.map(str::to_owned),
        })
    }

    /// Checks `token` at `now` (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = serde_json::from_slice(&b64url(h)?).map_err(|_| JwtError::Malformed)?;
        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = Alg::from_name(alg_name)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| JwtError::Algorithm(alg_name.to_owned()))?;
        let kid = header.get("kid").and_then(Value::as_str);
        let signature = b64url(sig)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|(k, key)| {
                fits(alg, key) && (kid.is_none() || k.is_none() || k.as_deref() == kid)
            })
            .map(|(_, key)| key)
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::NoKey);
        }
        if !candidates.iter().any(|k| check(alg, k, signed, &signature)) {
            return Err(JwtError::Signature);
        }
        let claims: Value = serde_json::from_slice(&b64url(p)?).map_err(|_| JwtError::Malformed)?;
        let time = |name: &str| -> Result<Option<u64>, JwtError> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                // Seconds since 1970, up to the year 36812: a time, not
                // just a number.
                Some(v) => v
                    .as_f64()
                    .filter(|t| (0.0..=MAX_TIME).contains(t))
                    .map(|t| Some(t as u64))
                    .ok_or_else(|| JwtError::Claim(format!("{name} is not a time"))),
            }
        };
        let expires = time("exp")?;
        if expires.is_some_and(|exp| now >= exp) {
            return Err(JwtError::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| now < nbf) {
            return Err(JwtError::NotYetValid);
        }
        let string = |name: &str| -> Result<String, JwtError> {
            claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| JwtError::Claim(format!("no {name} claim (a string)")))
        };
        if let Some(want) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == want,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                return Err(JwtError::Claim(format!("aud does not name {want:?}")));
            }
        }
        if let Some(want) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(want)
        {
            return Err(JwtError::Claim(format!("iss is not {want:?}")));
        }
        let username = string(&self.username_claim)?;
        let client_id = self.clientid_claim.as_deref().map(string).transpose()?;
        let acl = match self.acl_claim.as_deref().and_then(|c| claims.get(c)) {
            None => None,
            Some(v) => Some(token_acl(v)?),
        };
        Ok(Claims {
            username,
            client_id,
            expires,
            acl,
        })
    }
}

fn token_acl(v: &Value) -> Result<TokenAcl, JwtError> {
    let list = |name: &str| -> Result<Vec<String>, JwtError> {
        match v.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .filter(|f| crate::acl::valid_filter(f).is_ok())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            JwtError::Claim(format!("acl.{name}: {i} is not a topic filter"))
                        })
                })
                .collect(),
            Some(_) => Err(JwtError::Claim(format!("acl.{name} is not a list"))),
        }
    };
    Ok(TokenAcl {
        publish: list("pub")?,
        subscribe: list("sub")?,
    })
}

fn fits(alg: Alg, key: &Key) -> bool {
    match key {
        Key::Hmac(_) => alg.is_hmac(),
        Key::Rsa(_) => matches!(alg, Alg::Rs256 | Alg::Rs384 | Alg::Rs512),
        Key::Ec { p384, .. } => (alg == Alg::Es256 && !p384) || (alg == Alg::Es384 && *p384),
    }
}

fn check(alg: Alg, key: &Key, signed: &[u8], sig: &[u8]) -> bool {
    match key {
        Key::Hmac(secret) => {
            let h = match alg {
                Alg::Hs256 => ring::hmac::HMAC_SHA256,
                Alg::Hs384 => ring::hmac::HMAC_SHA384,
                _ => ring::hmac::HMAC_SHA512,
            };
            // Constant-time comparison inside ring.
            ring::hmac::verify(&ring::hmac::Key::new(h, secret), signed, sig).is_ok()
        }
        Key::Rsa(der) => {
            let params: &'static signature::RsaParameters = match alg {
                Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            UnparsedPublicKey::new(params, der)
                .verify(signed, sig)
                .is_ok()
        }
        Key::Ec { point, p384 } => {
            let params = if *p384 {
                &signature::ECDSA_P384_SHA384_FIXED
            } else {
                &signature::ECDSA_P256_SHA256_FIXED
            };
            UnparsedPublicKey::new(params, point)
                .verify(signed, sig)
                .is_ok()
        }
    }
}

const RSA_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const EC_OID: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const P256_OID: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];

fn pem_key(pem: &str) -> Result<Key, String> {
    let bad = |why: &str| format!("the public key file: {why}");
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| bad("no -----BEGIN line: expected a PEM public key"))?;
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let bytes = STANDARD
        .decode(body)
        .map_err(|_| bad("the PEM body is not base64"))?;
    match label {
        "RSA PUBLIC KEY" => Ok(Key::Rsa(bytes)),
        "PUBLIC KEY" => {
            spki(&bytes).ok_or_else(|| bad("not an RSA, P-256 or P-384 SubjectPublicKeyInfo"))
        }
        other => Err(bad(&format!(
            "a {other} is not a public key (give the PUBLIC KEY, not the private one)"
        ))),
    }
}

/// A SubjectPublicKeyInfo's key, for RSA and the NIST curves.
fn spki(bytes: &[u8]) -> Option<Key> {
    let mut spki = Der::new(Der::new(bytes).expect(0x30)?);
    let mut algorithm = Der::new(spki.expect(0x30)?);
    let (&0, key) = spki.expect(0x03)?.split_first()? else {
        return None;
    };
    let oid = algorithm.expect(0x06)?;
    if oid == RSA_OID {
        return Some(Key::Rsa(key.to_vec()));
    }
    if oid == EC_OID {
        let p384 = match algorithm.expect(0x06)? {
            c if c == P256_OID => false,
            c if c == P384_OID => true,
            _ => return None,
        };
        return Some(Key::Ec {
            point: key.to_vec(),
            p384,
        });
    }
    None
}

/// A DER INTEGER of these big-endian magnitude bytes.
fn der_integer(mag: &[u8]) -> Vec<u8> {
    let mag = match mag.iter().position(|&b| b != 0) {
        Some(i) => &mag[i..],
        None => &[0][..],
    };
    let mut body = Vec::with_capacity(mag.len() + 1);
    if mag[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(mag);
    der_wrap(0x02, &body)
}

fn der_wrap(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

fn jwks_keys(text: &str) -> Result<Vec<(Option<String>, Key)>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("the JWKS file is not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS file has no \"keys\" list")?;
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let s = k
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("JWKS key {i}: no {name:?}"))?;
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| format!("JWKS key {i}: {name:?} is not base64url"))
        };
        let kid = k.get("kid").and_then(Value::as_str).map(str::to_owned);
        let key = match k.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                let mut body = der_integer(&field("n")?);
                body.extend(der_integer(&field("e")?));
                Key::Rsa(der_wrap(0x30, &body))
            }
            Some("EC") => {
                let p384 = match k.get("crv").and_then(Value::as_str) {
                    Some("P-256") => false,
                    Some("P-384") => true,
                    other => {
                        return Err(format!("JWKS key {i}: curve {other:?}: use P-256 or P-384"));
                    }
                };
                let mut point = vec![4];
                point.extend(field("x")?);
                point.extend(field("y")?);
                Key::Ec { point, p384 }
            }
            // Keys for other uses (symmetric "oct" keys, OKP) are skipped.
            _ => continue,
        };
        out.push((kid, key));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
