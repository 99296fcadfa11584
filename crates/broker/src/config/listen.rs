//! `[[listener]]` tables: where the broker listens and over which
//! transport (TCP, TLS, WebSocket, WebSocket over TLS, each optionally
//! behind the PROXY protocol), checked without touching the files they
//! name (those are read when the broker starts, and again on reload).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, invalid};

/// One `[[listener]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub bind: String,
    pub transport: Option<String>,
    pub path: Option<String>,
    pub proxy_protocol: Option<bool>,
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
    pub cafile: Option<String>,
    pub crlfile: Option<String>,
    pub require_certificate: Option<bool>,
    pub use_identity_as_username: Option<bool>,
    pub tls_version: Option<String>,
    pub ciphers: Option<Vec<String>>,
    #[serde(default)]
    pub sni: Vec<RawSni>,
    pub allow_anonymous: Option<bool>,
    pub max_connections: Option<usize>,
}

/// A `[[listener.sni]]` table: a further certificate, chosen when the
/// client asks for `name` (Server Name Indication).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSni {
    pub name: String,
    pub certfile: String,
    pub keyfile: String,
}

/// How a listener's clients speak MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Tcp,
    Tls,
    /// WebSocket (RFC 6455), the `mqtt` subprotocol.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl TransportKind {
    /// Whether the transport starts with a TLS handshake.
    pub fn is_tls(self) -> bool {
        matches!(self, TransportKind::Tls | TransportKind::Wss)
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, TransportKind::Ws | TransportKind::Wss)
    }

    fn scheme(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Ws => "ws",
            TransportKind::Wss => "wss",
        }
    }
}

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

/// A certificate and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, leaf first.
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

/// What a `tls` or `wss` listener serves and asks of its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: CertFiles,
    /// Further certificates by SNI name (lowercase).
    pub sni: Vec<(String, CertFiles)>,
    /// Client certificates are verified against these roots.
    pub cafile: Option<PathBuf>,
    /// Client certificates it lists as revoked are refused.
    pub crlfile: Option<PathBuf>,
    /// A client without a valid certificate is refused (mutual TLS).
    pub require_certificate: bool,
    /// The certificate's identity (its CN, or first SAN) is the client's
    /// username.
    pub use_identity_as_username: bool,
    pub min_version: TlsVersion,
    /// rustls cipher suite names (`TLS13_AES_128_GCM_SHA256`, ...); empty:
    /// the provider's defaults.
    pub ciphers: Vec<String>,
}

impl TlsFiles {
    /// Serving `cert`, asking nothing of clients, TLS 1.2 and 1.3 with
    /// rustls's cipher suites: what a listener gets from `certfile` and
    /// `keyfile` alone.
    pub fn new(cert: CertFiles) -> TlsFiles {
        TlsFiles {
            cert,
            sni: Vec::new(),
            cafile: None,
            crlfile: None,
            require_certificate: false,
            use_identity_as_username: false,
            min_version: TlsVersion::V1_2,
            ciphers: Vec::new(),
        }
    }
}

/// A validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub bind: SocketAddr,
    pub transport: TransportKind,
    /// The HTTP path of a WebSocket listener.
    pub path: String,
    /// A PROXY protocol header (v1 or v2) precedes everything else.
    pub proxy_protocol: bool,
    /// Present exactly for `tls` and `wss`.
    pub tls: Option<TlsFiles>,
    /// Whether clients without credentials may connect here; `None`:
    /// `[auth] allow_anonymous`, else the default (see
    /// [`Listener::anonymous_by_default`]).
    pub allow_anonymous: Option<bool>,
    /// Connections open on this listener at once, beside the broker's
    /// `limits.max_connections`; `None`: no limit of its own.
    pub max_connections: Option<usize>,
}

/// The WebSocket path unless a listener says otherwise.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

impl Listener {
    /// Plain MQTT over TCP on `bind`.
    pub fn tcp(bind: SocketAddr) -> Listener {
        Listener {
            bind,
            transport: TransportKind::Tcp,
            path: DEFAULT_WS_PATH.to_owned(),
            proxy_protocol: false,
            tls: None,
            allow_anonymous: None,
            max_connections: None,
        }
    }

    /// Whether anonymous clients may connect when nothing says: only on a
    /// loopback address that takes no PROXY header (a PROXY header says
    /// the client is somewhere else).
    pub fn anonymous_by_default(&self) -> bool {
        self.bind.ip().is_loopback() && !self.proxy_protocol
    }

    /// How the start-up line names it, with `addr` (the bound address):
    /// a bare address for TCP, a URL for the others.
    pub fn describe(&self, addr: SocketAddr) -> String {
        match self.transport {
            TransportKind::Tcp => addr.to_string(),
            TransportKind::Tls => format!("tls://{addr}"),
            k => format!("{}://{addr}{}", k.scheme(), self.path),
        }
    }
}

impl From<SocketAddr> for Listener {
    fn from(bind: SocketAddr) -> Listener {
        Listener::tcp(bind)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

fn quoted(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| format!("{s:?}"))
}

/// Reads `path` relative to `base` (the config file's directory).
pub(super) fn resolve(base: Option<&Path>, path: &str) -> PathBuf {
    let p = Path::new(path);
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    }
}

impl RawListener {
    /// The second stage for one table; relative file names are read from
    /// `base`.
    pub fn validate(self, base: Option<&Path>) -> Result<Listener, ConfigError> {
        let bind = self.bind.parse().map_err(|_| {
            invalid(
                "listener.bind",
                format!("{:?}", self.bind),
                "use HOST:PORT with a numeric address, e.g. \"127.0.0.1:1883\" or \"[::1]:1883\"",
            )
        })?;
        let transport = match self.transport.as_deref() {
            None | Some("tcp") => TransportKind::Tcp,
            Some("tls") => TransportKind::Tls,
            Some("ws") => TransportKind::Ws,
            Some("wss") => TransportKind::Wss,
            Some(other) => {
                return Err(invalid(
                    "listener.transport",
                    format!("{other:?}"),
                    "use \"tcp\", \"tls\", \"ws\" or \"wss\"",
                ));
            }
        };
        let path = match self.path.as_deref() {
            Some(p) if !transport.is_websocket() => {
                return Err(invalid(
                    "listener.path",
                    format!("{p:?}"),
                    "only ws and wss listeners have an HTTP path: set transport = \"ws\" or \"wss\", or remove path",
                ));
            }
            Some(p) if !p.starts_with('/') || p.contains(char::is_whitespace) => {
                return Err(invalid(
                    "listener.path",
                    format!("{p:?}"),
                    "use an absolute HTTP path without spaces, e.g. \"/mqtt\"",
                ));
            }
            Some(p) => p.to_owned(),
            None => DEFAULT_WS_PATH.to_owned(),
        };
        let tls = if transport.is_tls() {
            Some(self.tls(base)?)
        } else {
            self.refuse_tls_keys()?;
            None
        };
        Ok(Listener {
            bind,
            transport,
            path,
            proxy_protocol: self.proxy_protocol.unwrap_or(false),
            tls,
            allow_anonymous: self.allow_anonymous,
            max_connections: match self.max_connections {
                Some(0) => {
                    return Err(invalid(
                        "listener.max_connections",
                        0,
                        "use a positive number of connections, or remove the key for no limit of the listener's own",
                    ));
                }
                m => m,
            },
        })
    }

    /// A plain listener names no TLS file or option.
    fn refuse_tls_keys(&self) -> Result<(), ConfigError> {
        let given: [(&'static str, Option<String>); 8] = [
            ("listener.certfile", quoted(&self.certfile)),
            ("listener.keyfile", quoted(&self.keyfile)),
            ("listener.cafile", quoted(&self.cafile)),
            ("listener.crlfile", quoted(&self.crlfile)),
            (
                "listener.require_certificate",
                self.require_certificate.map(|v| v.to_string()),
            ),
            (
                "listener.use_identity_as_username",
                self.use_identity_as_username.map(|v| v.to_string()),
            ),
            ("listener.tls_version", quoted(&self.tls_version)),
            (
                "listener.ciphers",
                self.ciphers.as_ref().map(|c| format!("{c:?}")),
            ),
        ];
        for (key, value) in given {
            if let Some(v) = value {
                return Err(invalid(
                    key,
                    v,
                    "only tls and wss listeners take TLS settings: set transport = \"tls\" or \"wss\", or remove the key",
                ));
            }
        }
        if !self.sni.is_empty() {
            return Err(invalid(
                "listener.sni",
                format!("{:?}", self.sni[0].name),
                "only tls and wss listeners take SNI certificates: set transport = \"tls\" or \"wss\", or remove the table",
            ));
        }
        Ok(())
    }

    fn tls(&self, base: Option<&Path>) -> Result<TlsFiles, ConfigError> {
        let certfile = self.certfile.as_deref().ok_or_else(|| {
            invalid(
                "listener.certfile",
                "(missing)",
                "tls and wss listeners need a certificate chain: set certfile = \"server.pem\" (PEM; `strata ca issue --server NAME` makes one)",
            )
        })?;
        let keyfile = self.keyfile.as_deref().ok_or_else(|| {
            invalid(
                "listener.keyfile",
                "(missing)",
                "tls and wss listeners need the certificate's private key: set keyfile = \"server.key\" (PEM)",
            )
        })?;
        let require_certificate = self.require_certificate.unwrap_or(false);
        if require_certificate && self.cafile.is_none() {
            return Err(invalid(
                "listener.require_certificate",
                "true",
                "client certificates are verified against cafile: set cafile = \"ca.pem\"",
            ));
        }
        if let (Some(crl), None) = (&self.crlfile, &self.cafile) {
            return Err(invalid(
                "listener.crlfile",
                format!("{crl:?}"),
                "a CRL applies to client certificates verified against cafile: set cafile too",
            ));
        }
        let use_identity_as_username = self.use_identity_as_username.unwrap_or(false);
        if use_identity_as_username && !require_certificate {
            // Otherwise a client without a certificate would connect with
            // whatever username it sends, on a listener meant to name it.
            return Err(invalid(
                "listener.use_identity_as_username",
                "true",
                "the username comes from the client's certificate: set require_certificate = true",
            ));
        }
        let min_version = match self.tls_version.as_deref() {
            None | Some("1.2") => TlsVersion::V1_2,
            Some("1.3") => TlsVersion::V1_3,
            Some(other) => {
                return Err(invalid(
                    "listener.tls_version",
                    format!("{other:?}"),
                    "use \"1.2\" (TLS 1.2 and 1.3) or \"1.3\" (TLS 1.3 only)",
                ));
            }
        };
        let mut sni = Vec::new();
        for s in &self.sni {
            let name = s.name.to_ascii_lowercase();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(invalid(
                    "listener.sni.name",
                    format!("{:?}", s.name),
                    "use the DNS name clients connect to, e.g. \"mqtt.example.com\"",
                ));
            }
            sni.push((
                name,
                CertFiles {
                    certfile: resolve(base, &s.certfile),
                    keyfile: resolve(base, &s.keyfile),
                },
            ));
        }
        Ok(TlsFiles {
            cert: CertFiles {
                certfile: resolve(base, certfile),
                keyfile: resolve(base, keyfile),
            },
            sni,
            cafile: self.cafile.as_deref().map(|p| resolve(base, p)),
            crlfile: self.crlfile.as_deref().map(|p| resolve(base, p)),
            require_certificate,
            use_identity_as_username,
            min_version,
            ciphers: self.ciphers.clone().unwrap_or_default(),
        })
    }
}

/// A `--listen` URL: `tcp://HOST:PORT` or a bare `HOST:PORT`,
/// `tls://HOST:PORT`, `ws://HOST:PORT/PATH`, `wss://HOST:PORT/PATH`. TLS
/// ones take the certificate given on the command line (`cert`).
pub fn parse_listen_url(url: &str, cert: Option<&CertFiles>) -> Result<Listener, String> {
    let (transport, rest) = match url.split_once("://") {
        None => (TransportKind::Tcp, url),
        Some(("tcp" | "mqtt", rest)) => (TransportKind::Tcp, rest),
        Some(("tls" | "mqtts" | "ssl", rest)) => (TransportKind::Tls, rest),
        Some(("ws", rest)) => (TransportKind::Ws, rest),
        Some(("wss", rest)) => (TransportKind::Wss, rest),
        Some((scheme, _)) => {
            return Err(format!(
                "{url}: unknown scheme {scheme:?}; use tcp://, tls://, ws:// or wss://"
            ));
        }
    };
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path.is_empty() && !transport.is_websocket() {
        return Err(format!(
            "{url}: only ws:// and wss:// listeners have a path"
        ));
    }
    let bind: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{url}: use HOST:PORT with a numeric address, e.g. 127.0.0.1:1883"))?;
    let tls = if transport.is_tls() {
        let cert =
            cert.ok_or_else(|| format!("{url}: a TLS listener needs --certfile and --keyfile"))?;
        Some(TlsFiles::new(cert.clone()))
    } else {
        None
    };
    Ok(Listener {
        bind,
        transport,
        path: if path.is_empty() {
            DEFAULT_WS_PATH.to_owned()
        } else {
            path.to_owned()
        },
        proxy_protocol: false,
        tls,
        allow_anonymous: None,
        max_connections: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BrokerConfig;

    fn one(text: &str) -> Result<Listener, String> {
        BrokerConfig::from_toml_in(text, Some(Path::new("/etc/strata")))
            .map(|c| c.listeners[0].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn transports_and_their_keys() {
        let l = one("[[listener]]\nbind = \"0.0.0.0:8883\"\ntransport = \"tls\"\ncertfile = \"s.pem\"\nkeyfile = \"/k/s.key\"\ncafile = \"ca.pem\"\nrequire_certificate = true\nuse_identity_as_username = true\n").unwrap();
        assert_eq!(l.transport, TransportKind::Tls);
        let t = l.tls.unwrap();
        // Relative paths from the file's directory; absolute ones as given.
        assert_eq!(t.cert.certfile, Path::new("/etc/strata/s.pem"));
        assert_eq!(t.cert.keyfile, Path::new("/k/s.key"));
        assert_eq!(t.cafile.as_deref(), Some(Path::new("/etc/strata/ca.pem")));
        assert!(t.require_certificate && t.use_identity_as_username);
        let l = one("[[listener]]\nbind = \"127.0.0.1:8080\"\ntransport = \"ws\"\n").unwrap();
        assert_eq!((l.transport, l.path.as_str()), (TransportKind::Ws, "/mqtt"));
        assert_eq!(l.describe(l.bind), "ws://127.0.0.1:8080/mqtt");
        let l = one("[[listener]]\nbind = \"127.0.0.1:1\"\nproxy_protocol = true\n").unwrap();
        assert!(l.proxy_protocol && l.tls.is_none());
        assert_eq!(l.describe(l.bind), "127.0.0.1:1");
    }

    #[test]
    fn misplaced_or_missing_tls_keys_name_the_key_and_the_fix() {
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\ncertfile = \"s.pem\"\n").unwrap_err();
        assert!(
            e.starts_with("listener.certfile = \"s.pem\": only tls and wss listeners"),
            "{e}"
        );
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\ntransport = \"wss\"\n").unwrap_err();
        assert!(e.starts_with("listener.certfile = (missing)"), "{e}");
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\ntransport = \"tls\"\ncertfile = \"a\"\nkeyfile = \"b\"\nrequire_certificate = true\n").unwrap_err();
        assert!(e.contains("set cafile"), "{e}");
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\ntransport = \"tls\"\ncertfile = \"a\"\nkeyfile = \"b\"\ncafile = \"c\"\nuse_identity_as_username = true\n").unwrap_err();
        assert!(e.contains("set require_certificate = true"), "{e}");
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\ntransport = \"quic\"\n").unwrap_err();
        assert_eq!(
            e,
            "listener.transport = \"quic\": use \"tcp\", \"tls\", \"ws\" or \"wss\""
        );
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\npath = \"/x\"\n").unwrap_err();
        assert!(e.starts_with("listener.path"), "{e}");
        let e = one("[[listener]]\nbind = \"127.0.0.1:1\"\ntransport = \"tls\"\ncertfile = \"a\"\nkeyfile = \"b\"\ntls_version = \"1.1\"\n").unwrap_err();
        assert!(e.starts_with("listener.tls_version = \"1.1\""), "{e}");
    }

    #[test]
    fn listen_urls() {
        let cert = CertFiles {
            certfile: "c.pem".into(),
            keyfile: "c.key".into(),
        };
        let l = parse_listen_url("127.0.0.1:0", None).unwrap();
        assert_eq!(l.transport, TransportKind::Tcp);
        let l = parse_listen_url("tcp://127.0.0.1:0", None).unwrap();
        assert_eq!(l.transport, TransportKind::Tcp);
        let l = parse_listen_url("ws://127.0.0.1:0/mqtt/v1", None).unwrap();
        assert_eq!(
            (l.transport, l.path.as_str()),
            (TransportKind::Ws, "/mqtt/v1")
        );
        let l = parse_listen_url("wss://[::1]:0", Some(&cert)).unwrap();
        assert_eq!(
            (l.transport, l.path.as_str()),
            (TransportKind::Wss, "/mqtt")
        );
        assert_eq!(l.tls.unwrap().cert, cert);
        assert!(
            parse_listen_url("tls://127.0.0.1:0", None)
                .unwrap_err()
                .contains("--certfile")
        );
        assert!(parse_listen_url("quic://127.0.0.1:0", None).is_err());
        assert!(parse_listen_url("tcp://127.0.0.1:0/x", None).is_err());
        assert!(parse_listen_url("localhost:1883", None).is_err());
    }
}
