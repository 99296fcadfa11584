//! TLS for `tls` and `wss` listeners, with rustls on ring: the server
//! certificate (and further ones by SNI), client certificates verified
//! against `cafile` and `crlfile`, the versions and cipher suites allowed,
//! ALPN `mqtt`. [`Tls`] holds the listener's configuration and swaps in a
//! new one on reload: new handshakes take it, open connections keep
//! theirs.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};

use crate::config::{CertFiles, TlsFiles, TlsVersion};
use crate::tls_identity::certificate_identity;

/// A listener's TLS configuration, replaced whole on reload.
#[derive(Debug)]
pub(crate) struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the listener's files; an error names the file and the reason.
    pub fn load(files: &TlsFiles) -> io::Result<Tls> {
        Ok(Tls {
            current: RwLock::new(Arc::new(server_config(files)?)),
            files: files.clone(),
        })
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads the files again; on an error the configuration in use stays.
    pub fn reload(&self) -> io::Result<()> {
        let new = Arc::new(server_config(&self.files)?);
        match self.current.write() {
            Ok(mut c) => *c = new,
            Err(p) => *p.into_inner() = new,
        }
        Ok(())
    }

    /// Whether the client's certificate is its username.
    pub fn identity_is_username(&self) -> bool {
        self.files.use_identity_as_username
    }
}

/// An error about `path`, for the start-up or reload message.
fn file_error(key: &str, path: &Path, reason: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "listener.{key} = {:?}: {reason}",
            path.display().to_string()
        ),
    )
}

fn read_chain(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error("certfile", path, e))?;
    if chain.is_empty() {
        return Err(file_error(
            "certfile",
            path,
            "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(chain)
}

fn certified_key(files: &CertFiles, provider: &CryptoProvider) -> io::Result<Arc<CertifiedKey>> {
    let chain = read_chain(&files.certfile)?;
    let key = PrivateKeyDer::from_pem_file(&files.keyfile)
        .map_err(|e| file_error("keyfile", &files.keyfile, e))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_error("keyfile", &files.keyfile, e))?;
    let ck = CertifiedKey::new(chain, key);
    ck.keys_match().map_err(|e| {
        file_error(
            "keyfile",
            &files.keyfile,
            format!("does not match certfile: {e}"),
        )
    })?;
    Ok(Arc::new(ck))
}

/// The provider, limited to the named cipher suites.
// ring is the workspace's one provider (nothing builds aws-lc); rustls
// marks it deprecated for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider(files: &TlsFiles) -> io::Result<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    if !files.ciphers.is_empty() {
        let mut chosen = Vec::new();
        for name in &files.ciphers {
            let suite = p
                .cipher_suites
                .iter()
                .find(|s| s.suite().as_str() == Some(name.as_str()))
                .ok_or_else(|| {
                    let known: Vec<_> = p.cipher_suites.iter().filter_map(|s| s.suite().as_str()).collect();
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("listener.ciphers: {name:?} is not a cipher suite rustls offers; use some of {known:?}"),
                    )
                })?;
            chosen.push(*suite);
        }
        p.cipher_suites = chosen;
    }
    Ok(p)
}

fn server_config(files: &TlsFiles) -> io::Result<ServerConfig> {
    let provider = Arc::new(provider(files)?);
    let versions: &[&rustls::SupportedProtocolVersion] = match files.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listener.ciphers: {e}"),
            )
        })?;
    let builder = match &files.cafile {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("cafile", ca, e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_error("cafile", ca, "no usable CA certificate in it"));
            }
            let mut v =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if let Some(crl) = &files.crlfile {
                let crls = CertificateRevocationListDer::pem_file_iter(crl)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| file_error("crlfile", crl, e))?;
                if crls.is_empty() {
                    return Err(file_error("crlfile", crl, "no PEM X509 CRL in it"));
                }
                v = v.with_crls(crls);
            }
            if !files.require_certificate {
                v = v.allow_unauthenticated();
            }
            let inner = v.build().map_err(|e| file_error("cafile", ca, e))?;
            builder.with_client_cert_verifier(Arc::new(Logged(inner)))
        }
        None => builder.with_no_client_auth(),
    };
    let mut by_name = HashMap::new();
    for (name, cert) in &files.sni {
        by_name.insert(name.clone(), certified_key(cert, &provider)?);
    }
    let resolver = Certificates {
        default: certified_key(&files.cert, &provider)?,
        by_name,
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    // Offered, not required: a client that names no protocol is served;
    // one that names only others is refused, as RFC 7301 says.
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(config)
}

/// The listener's certificate, or the one its SNI tables give for the
/// name the client asked for.
#[derive(Debug)]
struct Certificates {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(chosen.unwrap_or(&self.default).clone())
    }
}

/// The webpki client verifier, with a log line naming the certificate
/// and the reason when it refuses one.
#[derive(Debug)]
struct Logged(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Logged {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| {
                let subject =
                    certificate_identity(end_entity).unwrap_or_else(|| "(unnamed)".into());
                tracing::warn!(%subject, reason = %e, "client certificate refused");
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The identity of the certificate a finished handshake verified (the
/// chain's first, the client's own).
pub(crate) fn peer_identity(certs: Option<&[CertificateDer<'static>]>) -> Option<Arc<str>> {
    certificate_identity(certs?.first()?).map(Arc::from)
}
