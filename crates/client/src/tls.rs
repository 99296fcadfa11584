//! The rustls client configuration of [`TlsOptions`]: roots from `cafile`
//! only, an optional client certificate, and, for `insecure`, a verifier
//! that checks everything but the server's name.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::client::Error;
use crate::options::TlsOptions;

/// The ALPN protocol name of MQTT (IANA registry).
pub(crate) const ALPN_MQTT: &[u8] = b"mqtt";

// ring is the workspace's one provider (nothing builds aws-lc); rustls
// marks it deprecated for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(what: &'static str, path: &Path, why: impl ToString) -> Error {
    Error::TlsFile {
        what,
        path: path.to_owned(),
        why: why.to_string(),
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(
            what,
            path,
            "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// Reads the files of `o` and builds the configuration, offering `alpn`.
pub(crate) fn client_config(o: &TlsOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Error> {
    let Some(cafile) = &o.cafile else {
        return Err(Error::Invalid {
            what: "TLS options",
            why: "no CA certificate to verify the server with: set TlsOptions::cafile \
                  (strata pub/sub: --cafile FILE); the system's trust store is not used"
                .to_owned(),
        });
    };
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(read_certs("cafile", cafile)?);
    if added == 0 {
        return Err(file_error(
            "cafile",
            cafile,
            "no usable CA certificate in it",
        ));
    }
    let roots = Arc::new(roots);
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid {
            what: "TLS options",
            why: e.to_string(),
        })?;
    let builder = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName {
                roots,
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| file_error("cafile", cafile, e))?;
        builder.with_webpki_verifier(verifier)
    };
    let mut config = match (&o.cert, &o.key) {
        (Some(cert), Some(keyfile)) => {
            let chain = read_certs("cert", cert)?;
            let key =
                PrivateKeyDer::from_pem_file(keyfile).map_err(|e| file_error("key", keyfile, e))?;
            // Fails for a key rustls cannot use, or one that is not the
            // certificate's.
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error("key", keyfile, e))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Invalid {
                what: "TLS options",
                why: "a client certificate needs its key, and a key its certificate: \
                      set both cert and key (strata pub/sub: --cert FILE --key FILE)"
                    .to_owned(),
            });
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: `server_name`, or the
/// host of `address` (`HOST:PORT`, `[V6]:PORT`).
pub(crate) fn server_name(o: &TlsOptions, address: &str) -> Result<ServerName<'static>, Error> {
    let name = match &o.server_name {
        Some(n) => n.as_str(),
        None => host_of(address),
    };
    ServerName::try_from(name.to_owned()).map_err(|e| Error::Invalid {
        what: "TLS server name",
        why: format!("{name:?}: {e}"),
    })
}

fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[')
        && let Some((host, _)) = rest.split_once(']')
    {
        return host;
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// The `insecure` verifier: the chain must lead to a root of `cafile`
/// within its validity dates, and the signatures must hold, as with
/// rustls's webpki verifier; only the name check
/// (`rustls::client::verify_server_name`) is left out.
#[derive(Debug)]
struct AnyName {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_address_without_its_port() {
        assert_eq!(host_of("localhost:8883"), "localhost");
        assert_eq!(host_of("127.0.0.1:8883"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8883"), "::1");
        assert_eq!(host_of("bare"), "bare");
    }

    #[test]
    fn the_server_name_is_a_dns_name_or_an_ip_address() {
        let o = TlsOptions::default();
        assert!(matches!(
            server_name(&o, "broker.example:8883").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name(&o, "[::1]:8883").unwrap(),
            ServerName::IpAddress(_)
        ));
        let o = TlsOptions {
            server_name: Some("not a name".into()),
            ..TlsOptions::default()
        };
        let e = server_name(&o, "127.0.0.1:8883").unwrap_err();
        assert!(e.to_string().contains("\"not a name\""), "{e}");
    }

    #[test]
    fn without_a_cafile_the_error_says_to_give_one() {
        let e = client_config(&TlsOptions::default(), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid TLS options: no CA certificate to verify the server with: set \
             TlsOptions::cafile (strata pub/sub: --cafile FILE); the system's trust store \
             is not used"
        );
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let o = TlsOptions {
            cafile: Some(missing.clone()),
            ..TlsOptions::default()
        };
        let e = client_config(&o, &[]).unwrap_err();
        assert!(
            matches!(&e, Error::TlsFile { what: "cafile", path, .. } if *path == missing),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not PEM\n").unwrap();
        let o = TlsOptions {
            cafile: Some(empty.clone()),
            ..TlsOptions::default()
        };
        let e = client_config(&o, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "TLS cafile {empty:?}: no PEM certificate in it (expected -----BEGIN \
                 CERTIFICATE-----)"
            )
        );
    }
}
