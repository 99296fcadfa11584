//! The broker's own [`Authenticator`] and [`Authorizer`]: the files of
//! `[auth]` (a Mosquitto password file, ACL file and ban list, read by
//! `strata-auth`) and each listener's `allow_anonymous`.
//!
//! The rules are one immutable [`Rules`] value behind a lock, swapped
//! whole on reload, with a generation counter beside it. Each connection's
//! [`Grants`] resolve the ACL for its user name and client id once per
//! generation and remember their decisions by topic, so the hot path is an
//! atomic load, an uncontended lock and a hash lookup, whatever the ACL's
//! size. Password hashes are checked on tokio's blocking threads: a CONNECT
//! waits for its own hash without holding up any other connection.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strata_auth::{
    Access, Acl, Bans, ClientAcl, JwtSettings, Mechanism, PasswordFile, ScramFile, TokenAcl,
    Verifier,
};
use strata_codec::{QoS, ReasonCode};

use crate::auth::{
    AuthDecision, AuthFuture, Authenticator, Authorizer, ConnectInfo, Identity, unshared,
};
use crate::config::{AuthConfig, Listener};
use crate::util::lock;

/// Decisions a connection remembers before it starts over (a client
/// publishing to ever new topics costs a lookup and a resolve per topic,
/// and no more memory than this).
const CACHE_TOPICS: usize = 1024;
/// Topics longer than this are not remembered (so a connection's cache
/// holds at most 256 KiB of topics).
const CACHE_TOPIC_LEN: usize = 256;

/// What the files say, read at once.
#[derive(Debug, Default)]
struct Rules {
    passwords: Option<PasswordFile>,
    acl: Option<Arc<Acl>>,
    bans: Bans,
    jwt: Option<Verifier>,
    scram: Option<ScramFile>,
}

fn read(key: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{key} = {:?}: {e}", path.display()))
}

impl Rules {
    /// Whether deliveries need checking: an ACL file, or tokens that may
    /// carry one.
    fn checks_deliveries(&self, config: &AuthConfig) -> bool {
        self.acl.is_some() || config.jwt.as_ref().is_some_and(|j| j.acl_claim.is_some())
    }

    /// Reads every file `config` names; an error names the key, the file
    /// and the line.
    fn load(config: &AuthConfig) -> Result<Rules, String> {
        let at = |key: &str, path: &Path, e: strata_auth::FileError| {
            format!("{key} = {:?}: {e}", path.display())
        };
        let mut rules = Rules::default();
        if let Some(p) = &config.password_file {
            let text = read("auth.password_file", p)?;
            rules.passwords =
                Some(PasswordFile::parse(&text).map_err(|e| at("auth.password_file", p, e))?);
        }
        if let Some(p) = &config.acl_file {
            let text = read("auth.acl_file", p)?;
            rules.acl = Some(Arc::new(
                Acl::parse(&text).map_err(|e| at("auth.acl_file", p, e))?,
            ));
        }
        if let Some(p) = &config.ban_file {
            let text = read("auth.ban_file", p)?;
            rules.bans = Bans::parse(&text).map_err(|e| at("auth.ban_file", p, e))?;
        }
        if let Some(p) = &config.scram_file {
            let text = read("auth.scram_file", p)?;
            rules.scram = Some(ScramFile::parse(&text).map_err(|e| at("auth.scram_file", p, e))?);
        }
        if let Some(j) = &config.jwt {
            let bytes = |key: &str, p: &Option<std::path::PathBuf>| {
                p.as_ref()
                    .map(|p| {
                        std::fs::read(p).map_err(|e| format!("{key} = {:?}: {e}", p.display()))
                    })
                    .transpose()
            };
            let secret = bytes("auth.jwt.secret_file", &j.secret_file)?;
            let secret = secret.as_deref().map(|s| {
                let end = s.len()
                    - s.iter()
                        .rev()
                        .take_while(|b| matches!(b, b'\n' | b'\r'))
                        .count();
                &s[..end]
            });
            let pem = j
                .public_key_file
                .as_ref()
                .map(|p| read("auth.jwt.public_key_file", p))
                .transpose()?;
            let jwks = j
                .jwks_file
                .as_ref()
                .map(|p| read("auth.jwt.jwks_file", p))
                .transpose()?;
            let settings = JwtSettings {
                secret,
                public_key_pem: pem.as_deref(),
                jwks: jwks.as_deref(),
                algorithms: &j.algorithms,
                username_claim: &j.username_claim,
                clientid_claim: j.clientid_claim.as_deref(),
                acl_claim: j.acl_claim.as_deref(),
                audience: j.audience.as_deref(),
                issuer: j.issuer.as_deref(),
            };
            rules.jwt = Some(Verifier::new(&settings).map_err(|e| format!("auth.jwt: {e}"))?);
        }
        Ok(rules)
    }
}

/// The broker's security: see the module's docs.
#[derive(Debug)]
pub(crate) struct Security {
    config: AuthConfig,
    /// Whether anonymous clients may connect, per listener in the
    /// configuration's order.
    anonymous: Vec<bool>,
    /// The same for in-process connections ([`crate::Handle::serve`]).
    anonymous_in_process: bool,
    rules: RwLock<Arc<Rules>>,
    generation: AtomicU64,
    /// Whether `rules` has an ACL (asked on every delivery round).
    acl_on: AtomicBool,
    /// Made-up SCRAM salts for unknown users come from it: random, kept
    /// for the process's life.
    scram_secret: [u8; 32],
    /// Password hashes checked at once.
    hashing: tokio::sync::Semaphore,
}

impl Security {
    /// Reads the files; an error names the key, file and line.
    pub fn load(config: &AuthConfig, listeners: &[Listener]) -> Result<Security, String> {
        let rules = Rules::load(config)?;
        // Once something authenticates clients, anonymous ones are refused
        // unless a key allows them; before that, only where the network
        // cannot reach.
        let default = |l: Option<&Listener>| {
            config
                .allow_anonymous
                .unwrap_or(!config.authenticates() && l.is_none_or(Listener::anonymous_by_default))
        };
        let anonymous = listeners
            .iter()
            .map(|l| l.allow_anonymous.unwrap_or_else(|| default(Some(l))))
            .collect();
        Ok(Security {
            config: config.clone(),
            anonymous,
            anonymous_in_process: default(None),
            acl_on: AtomicBool::new(rules.checks_deliveries(config)),
            rules: RwLock::new(Arc::new(rules)),
            generation: AtomicU64::new(1),
            scram_secret: strata_auth::scram::new_secret(),
            hashing: tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
        })
    }

    /// Whether anonymous clients may connect on listener `i`.
    pub fn anonymous(&self, listener: Option<usize>) -> bool {
        match listener {
            Some(i) => self.anonymous.get(i).copied().unwrap_or(false),
            None => self.anonymous_in_process,
        }
    }

    /// Reads the files again; on an error the old rules stay. Open
    /// connections decide by the new rules from their next check on.
    pub fn reload(&self) -> Result<(), String> {
        let rules = Rules::load(&self.config)?;
        let acl_on = rules.checks_deliveries(&self.config);
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        self.generation.fetch_add(1, Ordering::Release);
        self.acl_on.store(acl_on, Ordering::Release);
        Ok(())
    }

    fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the configuration names any file to reload.
    pub fn has_files(&self) -> bool {
        let c = &self.config;
        c.password_file.is_some()
            || c.acl_file.is_some()
            || c.ban_file.is_some()
            || c.scram_file.is_some()
            || c.jwt.is_some()
    }

    /// Whether an ACL is in force: a file, or tokens that may carry one.
    fn has_acl(&self) -> bool {
        self.acl_on.load(Ordering::Acquire)
    }

    /// `who`'s decision on `topic`, from its cache when this generation
    /// decided it before.
    fn check(&self, who: &Identity, topic: &str, access: Access) -> bool {
        // Without an ACL (the default) nothing is decided: no lock taken.
        if !self.has_acl() {
            return true;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(grants) = who.grants.as_ref().and_then(|g| g.downcast_ref::<Grants>()) else {
            // Not one of ours (cannot happen): decide without a cache.
            let rules = self.rules();
            return rules.acl.as_ref().is_none_or(|acl| {
                let username = who.username.as_deref();
                acl.for_client(username, &who.client_id)
                    .check(topic, access)
            });
        };
        if let Some(acl) = &grants.token {
            return acl.check(topic, access);
        }
        let mut cache = lock(&grants.cache);
        if cache.generation != generation {
            let rules = self.rules();
            let username = who.username.as_deref();
            cache.acl = rules
                .acl
                .as_ref()
                .map(|acl| Arc::new(acl.for_client(username, &who.client_id)));
            cache.decisions.clear();
            cache.generation = generation;
        }
        let Some(acl) = cache.acl.clone() else {
            return true;
        };
        let bit = match access {
            Access::Read => READ,
            Access::Write => WRITE,
        };
        let known = bit << 2;
        if let Some(&d) = cache.decisions.get(topic)
            && d & known != 0
        {
            return d & bit != 0;
        }
        let allowed = acl.check(topic, access);
        if topic.len() > CACHE_TOPIC_LEN {
            // Long topics are decided each time: the cache stays small.
            return allowed;
        }
        if cache.decisions.len() >= CACHE_TOPICS {
            cache.decisions.clear();
        }
        let d = cache.decisions.entry(topic.into()).or_insert(0);
        *d |= known | if allowed { bit } else { 0 };
        allowed
    }
}

const READ: u8 = 1;
const WRITE: u8 = 2;

/// What a connection authenticated by [`Security`] carries: its resolved
/// ACL and remembered decisions, or the ACL its token carries.
#[derive(Debug, Default)]
struct Grants {
    cache: Mutex<Cache>,
    /// A token's own ACL, which stands for the ACL file.
    token: Option<TokenAcl>,
}

#[derive(Debug, Default)]
struct Cache {
    /// The generation of the rules `acl` and `decisions` come from; 0:
    /// none yet.
    generation: u64,
    acl: Option<Arc<ClientAcl>>,
    /// By topic: bits READ and WRITE (allowed), shifted left by 2 (known).
    decisions: HashMap<Box<str>, u8>,
}

fn allow(username: Option<&str>) -> AuthDecision {
    allow_with(username, None)
}

/// Allowed, with Authentication Data for the CONNACK or AUTH success.
fn allow_with(username: Option<&str>, data: Option<bytes::Bytes>) -> AuthDecision {
    let grants: Arc<dyn Any + Send + Sync> = Arc::new(Grants::default());
    AuthDecision::Allow {
        identity: Identity::user(username.map(Arc::from), Some(grants)),
        data,
    }
}

fn allow_token(claims: strata_auth::Claims) -> AuthDecision {
    let grants: Arc<dyn Any + Send + Sync> = Arc::new(Grants {
        token: claims.acl,
        ..Grants::default()
    });
    let mut identity = Identity::user(Some(Arc::from(claims.username)), Some(grants));
    identity.valid_until = claims
        .expires
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s)));
    AuthDecision::Allow {
        identity,
        data: None,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator for Security {
    fn enhanced(&self) -> bool {
        self.config.scram_file.is_some()
    }

    fn reauthenticate<'a>(
        &'a self,
        who: &'a Identity,
        method: &'a str,
        data: Option<&'a [u8]>,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            let rules = self.rules();
            self.scram(&rules, method, data, who.username.as_deref(), true)
        })
    }

    fn connect<'a>(&'a self, client: ConnectInfo<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            let rules = self.rules();
            let ip = client.peer.map(|p| p.ip());
            if let Some(ban) = rules.bans.check(client.client_id, client.username, ip) {
                tracing::info!(client_id = client.client_id, peer = ?client.peer, %ban, "refused: banned");
                return AuthDecision::Deny(ReasonCode::Banned);
            }
            if let Some(method) = client.method {
                return self.scram(&rules, method, client.data, client.username, false);
            }
            // A listener with `use_identity_as_username` made the verified
            // certificate's identity the username.
            if client.username_is_certificate {
                return allow(client.username);
            }
            if let (Some(jwt), Some(token)) = (&rules.jwt, client.password)
                && strata_auth::jwt::looks_like_token(token)
            {
                return self.token(&rules, jwt, client, token);
            }
            if let (Some(user), Some(_)) = (client.username, &rules.passwords) {
                let (name, password) = (
                    user.to_owned(),
                    client.password.unwrap_or_default().to_vec(),
                );
                // A hash costs a core for milliseconds and argon2id 19 MiB:
                // at most a few at once, the rest wait here (cancelled with
                // their CONNECT), not in the blocking pool.
                let Ok(_slot) = self.hashing.acquire().await else {
                    return AuthDecision::Deny(ReasonCode::ServerBusy);
                };
                let held = rules.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    held.passwords
                        .as_ref()
                        .is_some_and(|p| p.verify(&name, &password))
                })
                .await
                .unwrap_or(false);
                if ok {
                    return allow(Some(user));
                }
                tracing::info!(client_id = client.client_id, peer = ?client.peer, username = user, "refused: bad user name or password");
                return AuthDecision::Deny(ReasonCode::BadUserNameOrPassword);
            }
            // A name that nothing here can prove is refused once something
            // authenticates clients (a JWT-only broker, say): it would
            // pick another user's ACL lines. Without any, it is taken as
            // sent, as Mosquitto takes it.
            if let Some(user) = client.username
                && self.config.authenticates()
            {
                tracing::info!(client_id = client.client_id, peer = ?client.peer, username = user, "refused: a user name without credentials that prove it");
                return AuthDecision::Deny(ReasonCode::BadUserNameOrPassword);
            }
            // Nothing proved a name: a verified client certificate, or a
            // listener open to anonymous clients, lets it in.
            if client.certificate.is_some() || self.anonymous(client.listener) {
                return allow(client.username);
            }
            tracing::info!(
                client_id = client.client_id,
                peer = ?client.peer,
                "refused: anonymous clients are not allowed on this listener (allow_anonymous)"
            );
            AuthDecision::Deny(ReasonCode::NotAuthorized)
        })
    }
}

/// A SCRAM exchange between the server's first message and the client's
/// final one.
#[derive(Debug)]
struct ScramStep {
    exchange: strata_auth::scram::Exchange,
    /// Re-authentication: the user the connection already is.
    must_be: Option<Arc<str>>,
}

impl crate::auth::AuthExchange for ScramStep {
    fn step<'a>(&'a mut self, data: Option<&'a [u8]>) -> AuthFuture<'a> {
        Box::pin(async move {
            let user = self.exchange.username().to_owned();
            match self.exchange.finish(data.unwrap_or_default()) {
                Ok(last) => {
                    if self.must_be.as_deref().is_some_and(|u| u != user) {
                        tracing::info!(
                            username = user,
                            "refused: re-authenticated as another user"
                        );
                        return AuthDecision::Deny(ReasonCode::NotAuthorized);
                    }
                    allow_with(Some(&user), Some(last.into()))
                }
                Err(e) => {
                    tracing::info!(username = user, reason = %e, "refused: SCRAM");
                    AuthDecision::Deny(ReasonCode::BadUserNameOrPassword)
                }
            }
        })
    }
}

impl Security {
    /// The start of a SCRAM exchange (CONNECT, or AUTH 0x19 for a
    /// re-authentication, which must name the connection's user).
    fn scram(
        &self,
        rules: &Arc<Rules>,
        method: &str,
        data: Option<&[u8]>,
        username: Option<&str>,
        reauth: bool,
    ) -> AuthDecision {
        let (Some(mech), Some(file)) = (Mechanism::from_name(method), &rules.scram) else {
            // [MQTT-4.12.0-1]: a method the server does not support.
            return AuthDecision::Deny(ReasonCode::BadAuthenticationMethod);
        };
        let nonce = strata_auth::scram::server_nonce();
        let started = strata_auth::scram::Exchange::start(
            mech,
            data.unwrap_or_default(),
            |u| file.get(u, mech).cloned(),
            &self.scram_secret,
            &nonce,
        );
        let (exchange, first) = match started {
            Ok(x) => x,
            Err(e) => {
                tracing::info!(reason = %e, "refused: SCRAM");
                return AuthDecision::Deny(ReasonCode::NotAuthorized);
            }
        };
        // A CONNECT that names a user must name the one SCRAM proves.
        if !reauth && username.is_some_and(|u| u != exchange.username()) {
            return AuthDecision::Deny(ReasonCode::BadUserNameOrPassword);
        }
        if let Some(ban) = rules.bans.check("", Some(exchange.username()), None) {
            tracing::info!(%ban, "refused: banned");
            return AuthDecision::Deny(ReasonCode::Banned);
        }
        AuthDecision::Continue {
            data: Some(first.into()),
            exchange: Box::new(ScramStep {
                exchange,
                must_be: username.filter(|_| reauth).map(Arc::from),
            }),
        }
    }

    /// A token in the password field: valid, for the username sent (if
    /// any) and the client id (if the configuration binds one), and its
    /// user not banned.
    fn token(
        &self,
        rules: &Rules,
        jwt: &Verifier,
        client: ConnectInfo<'_>,
        token: &[u8],
    ) -> AuthDecision {
        let token = std::str::from_utf8(token).unwrap_or_default();
        let refuse = |code: ReasonCode, why: &str| {
            tracing::info!(client_id = client.client_id, peer = ?client.peer, reason = why, "refused: token");
            AuthDecision::Deny(code)
        };
        let claims = match jwt.verify(token, unix_now()) {
            Ok(c) => c,
            Err(e) => return refuse(ReasonCode::BadUserNameOrPassword, &e.to_string()),
        };
        if client.username.is_some_and(|u| u != claims.username) {
            return refuse(
                ReasonCode::BadUserNameOrPassword,
                "the token names another user",
            );
        }
        if claims
            .client_id
            .as_deref()
            .is_some_and(|id| id != client.client_id)
        {
            return refuse(
                ReasonCode::NotAuthorized,
                "the token is for another client id",
            );
        }
        let ip = client.peer.map(|p| p.ip());
        if let Some(ban) = rules
            .bans
            .check(client.client_id, Some(&claims.username), ip)
        {
            tracing::info!(client_id = client.client_id, %ban, "refused: banned");
            return AuthDecision::Deny(ReasonCode::Banned);
        }
        allow_token(claims)
    }
}

impl Authorizer for Security {
    fn publish(&self, who: &Identity, topic: &str, _: QoS, _: bool) -> bool {
        self.check(who, topic, Access::Write)
    }

    fn subscribe(&self, who: &Identity, filter: &str, _: QoS) -> bool {
        if !self.has_acl() {
            return true;
        }
        let token = who.grants.as_ref().and_then(|g| g.downcast_ref::<Grants>());
        if let Some(acl) = token.and_then(|g| g.token.as_ref()) {
            return acl.may_subscribe(unshared(filter));
        }
        let rules = self.rules();
        let Some(acl) = &rules.acl else {
            return true;
        };
        acl.for_client(who.username.as_deref(), &who.client_id)
            .may_subscribe(unshared(filter))
    }

    fn checks_deliveries(&self) -> bool {
        self.has_acl()
    }

    fn deliver(&self, who: &Identity, topic: &str) -> bool {
        self.check(who, topic, Access::Read)
    }
}

#[cfg(test)]
mod tests;
