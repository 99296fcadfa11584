//! Configuration in two stages: [`RawConfig`] is what the TOML file says,
//! [`BrokerConfig`] the one validated, typed structure the broker uses.
//! Every error names the key and says how to fix it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use strata_codec::QoS;

mod listen;

pub use listen::{
    CertFiles, DEFAULT_WS_PATH, Listener, RawListener, RawSni, TlsFiles, TlsVersion, TransportKind,
    parse_listen_url,
};
use strata_router::ShareStrategy;

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key} = {value}: {fix}")]
    Invalid {
        key: &'static str,
        value: String,
        fix: &'static str,
    },
}

/// The file as written. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listener: Vec<RawListener>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub shared_subscriptions: RawShared,
    #[serde(default)]
    pub sys: RawSys,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub admin: RawAdmin,
}

/// `[admin]`: the admin HTTP listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub bind: Option<String>,
    pub api_key_file: Option<String>,
}

/// `[auth]`: who may connect and what they may touch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub allow_anonymous: Option<bool>,
    pub password_file: Option<String>,
    pub acl_file: Option<String>,
    pub ban_file: Option<String>,
    pub scram_file: Option<String>,
    pub jwt: Option<RawJwt>,
}

/// `[auth.jwt]`: JSON Web Tokens in the password field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    pub secret_file: Option<String>,
    pub public_key_file: Option<String>,
    pub jwks_file: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub username_claim: Option<String>,
    pub clientid_claim: Option<String>,
    pub acl_claim: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_packet_size: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub max_inflight: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub max_session_expiry_secs: Option<u32>,
    pub connect_timeout_ms: Option<u64>,
    pub max_queued_messages: Option<usize>,
    pub max_queued_bytes: Option<usize>,
    pub queue_qos0_messages: Option<bool>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub connect_rate_per_address: Option<u32>,
    pub max_failed_logins: Option<u32>,
    pub failed_login_block_secs: Option<u64>,
    pub max_subscriptions: Option<usize>,
    pub max_topic_length: Option<usize>,
    pub max_topic_levels: Option<usize>,
    pub publish_rate: Option<u32>,
    pub publish_bytes_rate: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShared {
    pub strategy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSys {
    pub interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub data_dir: Option<String>,
    pub fsync: Option<String>,
    pub fsync_interval_ms: Option<u64>,
    pub compact_after_records: Option<u64>,
    pub in_memory: Option<bool>,
}

/// Where a configuration file (or `strata serve` without one) keeps its
/// durable state unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// When appends to the durable log are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// One `fdatasync` per batch before any acknowledgement (the default).
    Always,
    /// Every so often: acknowledgements do not wait.
    Interval(Duration),
    /// Never explicitly: the OS decides.
    Never,
}

/// Where and how the broker keeps what must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The data directory; `None` keeps everything in memory.
    pub data_dir: Option<std::path::PathBuf>,
    pub fsync: Fsync,
    /// The journal is compacted while the broker runs once it holds this
    /// many records (and twice what the last compaction left).
    pub compact_after_records: u64,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            data_dir: None,
            fsync: Fsync::Always,
            compact_after_records: 1_000_000,
        }
    }
}

/// The security files of `[auth]` and the anonymous default; the broker
/// reads the files at start and again on [`crate::Broker::reload`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Whether clients without credentials may connect, on listeners that
    /// do not say; `None`: only on loopback listeners without PROXY
    /// headers, and only while nothing authenticates clients.
    pub allow_anonymous: Option<bool>,
    /// Mosquitto's password file format (`strata passwd`).
    pub password_file: Option<std::path::PathBuf>,
    /// Mosquitto's ACL file format.
    pub acl_file: Option<std::path::PathBuf>,
    /// `client ID`, `user NAME` and `address CIDR` lines.
    pub ban_file: Option<std::path::PathBuf>,
    /// SCRAM-SHA-256/512 credentials (`strata passwd --scram`), for MQTT 5
    /// enhanced authentication.
    pub scram_file: Option<std::path::PathBuf>,
    /// JSON Web Tokens in the password field.
    pub jwt: Option<JwtConfig>,
}

/// `[auth.jwt]`, validated: at least one key file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtConfig {
    /// An HMAC secret (the file's bytes, less a trailing newline).
    pub secret_file: Option<std::path::PathBuf>,
    /// A PEM public key (RSA, P-256 or P-384).
    pub public_key_file: Option<std::path::PathBuf>,
    /// A JWKS document.
    pub jwks_file: Option<std::path::PathBuf>,
    /// JOSE names accepted; empty: every one the keys can check.
    pub algorithms: Vec<String>,
    /// The claim that names the user (default `sub`).
    pub username_claim: String,
    /// A claim the client id must equal, if set.
    pub clientid_claim: Option<String>,
    /// A claim `{"pub": [filters], "sub": [filters]}` that is the client's
    /// ACL, if set.
    pub acl_claim: Option<String>,
    /// What a token's `aud` must hold, if set.
    pub audience: Option<String>,
    /// What a token's `iss` must be, if set.
    pub issuer: Option<String>,
}

impl AuthConfig {
    /// Whether clients can prove who they are other than by a client
    /// certificate: then anonymous clients are refused unless allowed.
    pub fn authenticates(&self) -> bool {
        self.password_file.is_some() || self.jwt.is_some() || self.scram_file.is_some()
    }
}

/// Limits on what one address or one client may take; 0 is no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// MQTT connections (past CONNECT) from one source address.
    pub max_connections_per_address: usize,
    /// CONNECT attempts per second from one source address.
    pub connect_rate_per_address: u32,
    /// Failed logins from one address within a minute before the address
    /// is refused for `failed_login_block`.
    pub max_failed_logins: u32,
    pub failed_login_block: Duration,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// Bytes of a topic name or filter.
    pub max_topic_length: usize,
    /// Levels of a topic name or filter.
    pub max_topic_levels: usize,
    /// Inbound PUBLISH packets per second per client; past it the broker
    /// reads the client's input slower.
    pub publish_rate: u32,
    /// Inbound topic and payload bytes per second per client, likewise.
    pub publish_bytes_rate: u64,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            max_connections_per_address: 0,
            connect_rate_per_address: 0,
            max_failed_logins: 0,
            failed_login_block: Duration::from_secs(300),
            max_subscriptions: 0,
            max_topic_length: 65535,
            max_topic_levels: 0,
            publish_rate: 0,
            publish_bytes_rate: 0,
        }
    }
}

/// Where a configuration file puts the admin HTTP listener unless it says
/// otherwise.
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:8080";

/// The admin HTTP listener: health, readiness, metrics and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None`: no admin listener (`bind = "off"`, and the default of an
    /// embedded broker).
    pub bind: Option<SocketAddr>,
    /// API keys, as `strata admin key create` writes them. Without it the
    /// API answers only on a loopback address, to localhost names.
    pub api_key_file: Option<std::path::PathBuf>,
}

/// Reads an admin `bind` value: `HOST:PORT` or `off`.
pub fn parse_admin_bind(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        format!("{value:?}: use HOST:PORT with a numeric address (e.g. 127.0.0.1:8080), or \"off\"")
    })
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listeners: Vec<Listener>,
    pub session: strata_session::Config,
    pub share_strategy: ShareStrategy,
    /// How often `$SYS/broker/...` is published; `None` turns it off.
    pub sys_interval: Option<Duration>,
    pub max_connections: usize,
    /// Per address and per client limits of `[limits]`.
    pub limits: ClientLimits,
    /// Offline persistent sessions queue QoS 0 messages too (Mosquitto's
    /// `queue_qos0_messages`); by default they are dropped.
    pub queue_qos0_messages: bool,
    pub storage: StorageConfig,
    /// Where the data directory's files live: `None` is the real
    /// filesystem. Tests put a fault-injecting `strata_store::SimStorage`
    /// here; the data directory is then a path inside it, with no lock
    /// file.
    pub storage_backend: Option<std::sync::Arc<dyn strata_store::Storage>>,
    /// The broker's own authentication and authorization: `[auth]`.
    pub auth: AuthConfig,
    /// Who may connect ([`crate::auth`]): an application's own
    /// authenticator replaces the broker's (`auth` and the listeners'
    /// `allow_anonymous` then mean nothing).
    pub authenticator: Option<std::sync::Arc<dyn crate::auth::Authenticator>>,
    /// What a connected client may do: an application's own authorizer
    /// replaces the broker's ACL file.
    pub authorizer: Option<std::sync::Arc<dyn crate::auth::Authorizer>>,
    /// The admin HTTP listener; off unless configured (a configuration
    /// file turns it on at [`DEFAULT_ADMIN_BIND`]).
    pub admin: AdminConfig,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            listeners: vec![Listener::tcp(SocketAddr::from(([127, 0, 0, 1], 1883)))],
            session: strata_session::Config::default(),
            share_strategy: ShareStrategy::RoundRobin,
            sys_interval: Some(Duration::from_secs(10)),
            max_connections: 100_000,
            limits: ClientLimits::default(),
            queue_qos0_messages: false,
            storage: StorageConfig::default(),
            storage_backend: None,
            auth: AuthConfig::default(),
            authenticator: None,
            authorizer: None,
            admin: AdminConfig::default(),
        }
    }
}

impl BrokerConfig {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_file_env(path, std::iter::empty())
    }

    /// [`BrokerConfig::from_file`] with environment overrides (see
    /// [`BrokerConfig::from_toml_env`]).
    pub fn from_file_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        BrokerConfig::from_toml_env(&text, path.parent(), env).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text; relative file names in it are
    /// relative to the working directory.
    pub fn from_toml(text: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_toml_in(text, None)
    }

    /// Parses and validates TOML text whose relative file names are
    /// relative to `base` (the directory of the file it came from).
    pub fn from_toml_in(text: &str, base: Option<&Path>) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_toml_env(text, base, std::iter::empty())
    }

    /// [`BrokerConfig::from_toml_in`], with keys set by environment
    /// variables over the file's: `STRATA_SECTION__KEY=VALUE` sets
    /// `[section] key` (`STRATA_AUTH__JWT__SECRET_FILE` sets `[auth.jwt]
    /// secret_file`), the value read as TOML (a number, `true`, an array)
    /// or else as a string. Other variables are ignored; `[[listener]]`
    /// tables cannot be set this way (`--listen` can).
    pub fn from_toml_env(
        text: &str,
        base: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: "config".to_owned(),
            message: e.to_string(),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        for (name, value) in env {
            let Some(path) = name.strip_prefix("STRATA_").filter(|p| p.contains("__")) else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            if keys[0] == "listener" {
                return Err(invalid(
                    "environment",
                    name,
                    "[[listener]] tables cannot be set from the environment: use --listen URL",
                ));
            }
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            let (last, sections) = keys.split_last().unwrap_or((&keys[0], &[]));
            let mut at = &mut table;
            for section in sections {
                let entry = at
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                at = match entry {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(invalid(
                            "environment",
                            name,
                            "names a key that is not a table in the file",
                        ));
                    }
                };
            }
            at.insert(last.clone(), parsed);
        }
        let raw: RawConfig = toml::Value::Table(table).try_into().map_err(parse_error)?;
        raw.validate_in(base)
    }
}

/// Session limits with a given maximum packet size and defaults otherwise
/// (for tests and embedding).
pub fn session_config_with_max_packet(max_packet_size: u32) -> strata_session::Config {
    strata_session::Config {
        max_packet_size,
        ..strata_session::Config::default()
    }
}

fn invalid(key: &'static str, value: impl ToString, fix: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        fix,
    }
}

impl RawConfig {
    /// The second stage: check every value and build the typed structure.
    pub fn validate(self) -> Result<BrokerConfig, ConfigError> {
        self.validate_in(None)
    }

    /// [`RawConfig::validate`], with relative file names read from `base`.
    pub fn validate_in(self, base: Option<&Path>) -> Result<BrokerConfig, ConfigError> {
        let mut c = BrokerConfig::default();
        if !self.listener.is_empty() {
            c.listeners = self
                .listener
                .into_iter()
                .map(|l| l.validate(base))
                .collect::<Result<_, _>>()?;
        }
        let l = self.limits;
        let s = &mut c.session;
        if let Some(v) = l.max_packet_size {
            if v < 64 {
                return Err(invalid(
                    "limits.max_packet_size",
                    v,
                    "use at least 64 bytes; the MQTT maximum is 268435460",
                ));
            }
            s.max_packet_size = v;
        }
        if let Some(v) = l.receive_maximum {
            if v == 0 {
                return Err(invalid(
                    "limits.receive_maximum",
                    v,
                    "use 1 to 65535: MQTT 5 forbids a Receive Maximum of 0",
                ));
            }
            s.receive_maximum = v;
        }
        if let Some(v) = l.max_inflight {
            if v == 0 {
                return Err(invalid(
                    "limits.max_inflight",
                    v,
                    "use 1 to 65534 messages in flight per client",
                ));
            }
            s.max_inflight = v;
        }
        if let Some(v) = l.topic_alias_maximum {
            s.topic_alias_maximum = v;
        }
        if let Some(v) = l.maximum_qos {
            s.maximum_qos =
                QoS::from_u8(v).ok_or_else(|| invalid("limits.maximum_qos", v, "use 0, 1 or 2"))?;
        }
        if let Some(v) = l.retain_available {
            s.retain_available = v;
        }
        if let Some(v) = l.wildcard_subscription_available {
            s.wildcard_subscription_available = v;
        }
        if let Some(v) = l.subscription_identifiers_available {
            s.subscription_identifiers_available = v;
        }
        if let Some(v) = l.shared_subscription_available {
            s.shared_subscription_available = v;
        }
        s.server_keep_alive = l.server_keep_alive;
        if let Some(v) = l.max_session_expiry_secs {
            s.max_session_expiry = v;
        }
        if let Some(v) = l.connect_timeout_ms {
            if v == 0 {
                return Err(invalid(
                    "limits.connect_timeout_ms",
                    v,
                    "use a positive number of milliseconds, e.g. 10000",
                ));
            }
            s.connect_timeout = Duration::from_millis(v);
        }
        if let Some(v) = l.max_queued_messages {
            s.max_queued_messages = v;
        }
        if let Some(v) = l.max_queued_bytes {
            s.max_queued_bytes = v;
        }
        if let Some(v) = l.queue_qos0_messages {
            c.queue_qos0_messages = v;
        }
        if let Some(v) = l.max_connections {
            if v == 0 {
                return Err(invalid(
                    "limits.max_connections",
                    v,
                    "use a positive number of connections",
                ));
            }
            c.max_connections = v;
        }
        let a = self.auth;
        c.auth.allow_anonymous = a.allow_anonymous;
        let file = |key: &'static str, v: Option<String>| match v {
            Some(p) if p.is_empty() => Err(invalid(
                key,
                "\"\"",
                "give the file's path, or remove the key",
            )),
            Some(p) => Ok(Some(listen::resolve(base, &p))),
            None => Ok(None),
        };
        c.auth.password_file = file("auth.password_file", a.password_file)?;
        c.auth.acl_file = file("auth.acl_file", a.acl_file)?;
        c.auth.ban_file = file("auth.ban_file", a.ban_file)?;
        c.auth.scram_file = file("auth.scram_file", a.scram_file)?;
        if let Some(j) = a.jwt {
            let jwt = JwtConfig {
                secret_file: file("auth.jwt.secret_file", j.secret_file)?,
                public_key_file: file("auth.jwt.public_key_file", j.public_key_file)?,
                jwks_file: file("auth.jwt.jwks_file", j.jwks_file)?,
                algorithms: j.algorithms.unwrap_or_default(),
                username_claim: j.username_claim.unwrap_or_else(|| "sub".to_owned()),
                clientid_claim: j.clientid_claim,
                acl_claim: j.acl_claim,
                audience: j.audience,
                issuer: j.issuer,
            };
            if jwt.secret_file.is_none() && jwt.public_key_file.is_none() && jwt.jwks_file.is_none()
            {
                return Err(invalid(
                    "auth.jwt",
                    "a table without keys",
                    "set secret_file (HMAC), public_key_file (PEM) or jwks_file",
                ));
            }
            if jwt
                .algorithms
                .iter()
                .any(|a| a.eq_ignore_ascii_case("none"))
            {
                return Err(invalid(
                    "auth.jwt.algorithms",
                    format!("{:?}", jwt.algorithms),
                    "remove \"none\": unsigned tokens are never accepted",
                ));
            }
            c.auth.jwt = Some(jwt);
        }
        let cl = &mut c.limits;
        cl.max_connections_per_address = l.max_connections_per_address.unwrap_or(0);
        cl.connect_rate_per_address = l.connect_rate_per_address.unwrap_or(0);
        cl.max_failed_logins = l.max_failed_logins.unwrap_or(0);
        if let Some(v) = l.failed_login_block_secs {
            if v == 0 {
                return Err(invalid(
                    "limits.failed_login_block_secs",
                    v,
                    "use a positive number of seconds, or max_failed_logins = 0 to block nobody",
                ));
            }
            cl.failed_login_block = Duration::from_secs(v);
        }
        cl.max_subscriptions = l.max_subscriptions.unwrap_or(0);
        if let Some(v) = l.max_topic_length {
            if v == 0 || v > 65535 {
                return Err(invalid(
                    "limits.max_topic_length",
                    v,
                    "use 1 to 65535 bytes (MQTT's own limit)",
                ));
            }
            cl.max_topic_length = v;
        }
        cl.max_topic_levels = l.max_topic_levels.unwrap_or(0);
        cl.publish_rate = l.publish_rate.unwrap_or(0);
        cl.publish_bytes_rate = l.publish_bytes_rate.unwrap_or(0);
        let ad = self.admin;
        c.admin.bind = match ad.bind.as_deref() {
            None => DEFAULT_ADMIN_BIND.parse().ok(),
            Some(v) => parse_admin_bind(v).map_err(|_| {
                invalid(
                    "admin.bind",
                    format!("{v:?}"),
                    "use HOST:PORT with a numeric address (e.g. 127.0.0.1:8080), or \"off\"",
                )
            })?,
        };
        c.admin.api_key_file = file("admin.api_key_file", ad.api_key_file)?;
        if let Some(name) = self.shared_subscriptions.strategy {
            c.share_strategy = match name.as_str() {
                "round_robin" => ShareStrategy::RoundRobin,
                "random" => ShareStrategy::Random,
                "sticky" => ShareStrategy::Sticky,
                _ => {
                    return Err(invalid(
                        "shared_subscriptions.strategy",
                        format!("{name:?}"),
                        "use \"round_robin\", \"random\" or \"sticky\"",
                    ));
                }
            };
        }
        if let Some(v) = self.sys.interval_secs {
            c.sys_interval = (v > 0).then(|| Duration::from_secs(v));
        }
        let st = self.storage;
        let in_memory = st.in_memory.unwrap_or(false);
        match st.data_dir {
            Some(_) if in_memory => {
                return Err(invalid(
                    "storage.in_memory",
                    "true",
                    "remove it to keep state in storage.data_dir, or remove data_dir to keep nothing across restarts",
                ));
            }
            Some(dir) if dir.is_empty() => {
                return Err(invalid(
                    "storage.data_dir",
                    "\"\"",
                    "give a directory path, e.g. \"./data\", or set in_memory = true to keep nothing across restarts",
                ));
            }
            Some(dir) => c.storage.data_dir = Some(dir.into()),
            None if in_memory => c.storage.data_dir = None,
            None => c.storage.data_dir = Some(DEFAULT_DATA_DIR.into()),
        }
        c.storage.fsync = match st.fsync.as_deref() {
            None | Some("always") => Fsync::Always,
            Some("never") => Fsync::Never,
            Some("interval") => {
                let ms = st.fsync_interval_ms.unwrap_or(100);
                if ms == 0 {
                    return Err(invalid(
                        "storage.fsync_interval_ms",
                        ms,
                        "use a positive number of milliseconds, e.g. 100",
                    ));
                }
                Fsync::Interval(Duration::from_millis(ms))
            }
            Some(other) => {
                return Err(invalid(
                    "storage.fsync",
                    format!("{other:?}"),
                    "use \"always\", \"interval\" or \"never\"",
                ));
            }
        };
        if let Some(n) = st.compact_after_records {
            if n == 0 {
                return Err(invalid(
                    "storage.compact_after_records",
                    n,
                    "use a positive number of records, e.g. 1000000",
                ));
            }
            c.storage.compact_after_records = n;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
