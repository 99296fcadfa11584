//! The certificates this crate issues, checked by a real TLS stack: rustls
//! (webpki) server and client connections handshake in memory, with client
//! certificates required, and must accept or refuse exactly as expected.

use std::io::Read;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, Error, RootCertStore,
    ServerConfig, ServerConnection, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use strata_ca::{Ca, Issued, Validity};

/// Which side gave up, and why.
#[derive(Debug)]
enum Refused {
    ByServer(Error),
    ByClient(Error),
}

/// The TLS versions the handshake tests run under.
const BOTH: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

// ring is the workspace's one provider (nothing builds aws-lc); rustls
// 0.23.48 marks it deprecated only for lacking post-quantum key exchange,
// which these handshakes do not test.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    Arc::new(roots)
}

fn cert_chain(issued: &Issued) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM")
}

fn private_key(issued: &Issued) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key PEM")
}

/// A server presenting `cert`, requiring client certificates from `trusted_ca_pem`.
fn server_config(
    trusted_ca_pem: &str,
    cert: &Issued,
    crl_pem: Option<&str>,
    version: &'static SupportedProtocolVersion,
) -> Arc<ServerConfig> {
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(roots(trusted_ca_pem), provider());
    if let Some(crl) = crl_pem {
        let crl = CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).expect("CRL PEM");
        verifier = verifier.with_crls([crl]);
    }
    let verifier = verifier.build().expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert_chain(cert), private_key(cert))
        .expect("server certificate and key");
    Arc::new(config)
}

/// A client trusting `trusted_ca_pem` and presenting `cert`.
fn client_config(
    trusted_ca_pem: &str,
    cert: &Issued,
    version: &'static SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("protocol versions")
        .with_root_certificates(roots(trusted_ca_pem))
        .with_client_auth_cert(cert_chain(cert), private_key(cert))
        .expect("client certificate and key");
    Arc::new(config)
}

/// Moves everything `from` has to send into `to` and lets `to` process it.
/// Returns the number of bytes moved.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<usize, Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write to a Vec");
    }
    let mut rd: &[u8] = &wire;
    while !rd.is_empty() {
        to.read_tls(&mut rd).expect("read from a slice");
        to.process_new_packets()?;
    }
    Ok(wire.len())
}

/// Runs a full handshake, then sends one message from client to server.
/// On success returns the client certificate chain the server saw.
fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> Result<Vec<CertificateDer<'static>>, Refused> {
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let mut client = Connection::from(ClientConnection::new(client, name).expect("client"));
    let mut server = Connection::from(ServerConnection::new(server).expect("server"));
    for _ in 0..16 {
        let to_server = transfer(&mut client, &mut server).map_err(Refused::ByServer)?;
        let to_client = transfer(&mut server, &mut client).map_err(Refused::ByClient)?;
        if !client.is_handshaking() && !server.is_handshaking() && to_server + to_client == 0 {
            std::io::Write::write_all(&mut client.writer(), b"ping").expect("plaintext");
            transfer(&mut client, &mut server).map_err(Refused::ByServer)?;
            let mut received = [0u8; 4];
            server
                .reader()
                .read_exact(&mut received)
                .expect("plaintext");
            assert_eq!(&received, b"ping");
            let seen = server.peer_certificates().expect("client certificate");
            return Ok(seen.to_vec());
        }
    }
    panic!("handshake made no progress in 16 round trips");
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

/// A CA with a server certificate for localhost and 127.0.0.1 and one client.
struct Fixture {
    ca: Ca,
    server: Issued,
    client: Issued,
}

fn fixture() -> Fixture {
    let ca = Ca::new("Strata test CA", 30).expect("CA");
    let server = ca
        .issue_server(&names(&["localhost", "127.0.0.1", "::1"]), 30)
        .expect("server");
    let client = ca.issue_client("sensor-1", 30).expect("client");
    Fixture { ca, server, client }
}

#[test]
fn mutual_tls_succeeds_on_tls13_and_tls12_for_dns_and_ip_names() {
    let f = fixture();
    let ca_pem = f.ca.cert_pem();
    for &version in BOTH {
        for server_name in ["localhost", "127.0.0.1", "::1"] {
            let seen = handshake(
                server_config(&ca_pem, &f.server, None, version),
                client_config(&ca_pem, &f.client, version),
                server_name,
            )
            .unwrap_or_else(|e| panic!("{version:?} to {server_name}: {e:?}"));
            assert_eq!(seen, cert_chain(&f.client));
        }
    }
}

#[test]
fn ca_loaded_from_disk_signs_certificates_that_chain_to_ca_pem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = Ca::init(dir.path(), "Strata test CA", 30).expect("init");
    let early_client = made.issue_client("before-reload", 30).expect("client");
    drop(made);

    let ca = Ca::load(dir.path()).expect("load");
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca.pem");
    let server = ca
        .issue_server(&names(&["broker.test"]), 30)
        .expect("server");
    let client = ca.issue_client("after-reload", 30).expect("client");
    for &version in BOTH {
        for c in [&client, &early_client] {
            handshake(
                server_config(&ca_pem, &server, None, version),
                client_config(&ca_pem, c, version),
                "broker.test",
            )
            .unwrap_or_else(|e| panic!("{version:?}: {e:?}"));
        }
    }
}

#[test]
fn ca_made_elsewhere_loads_when_its_subject_can_be_reproduced() {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod,
        KeyPair, KeyUsagePurpose,
    };
    // Several attributes, a PrintableString, and a key identifier that is
    // not the SHA-256 one this crate makes: all must carry over.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("NL".try_into().expect("ascii")),
    );
    dn.push(DnType::OrganizationName, "Example");
    dn.push(DnType::CommonName, "Elsewhere CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha512;
    let cert = params.self_signed(&key).expect("CA");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).expect("write");

    let ca = Ca::load(dir.path()).expect("load");
    let server = ca.issue_server(&names(&["localhost"]), 30).expect("server");
    let client = ca.issue_client("sensor-2", 30).expect("client");
    let revoked = ca.issue_client("sensor-3", 30).expect("client");
    let crl = ca.crl([&revoked.serial], 7).expect("CRL");
    let version = &TLS13;
    handshake(
        server_config(&cert.pem(), &server, Some(&crl), version),
        client_config(&cert.pem(), &client, version),
        "localhost",
    )
    .expect("handshake");
    assert!(matches!(
        handshake(
            server_config(&cert.pem(), &server, Some(&crl), version),
            client_config(&cert.pem(), &revoked, version),
            "localhost",
        ),
        Err(Refused::ByServer(Error::InvalidCertificate(
            CertificateError::Revoked
        )))
    ));
}

#[test]
fn server_certificate_from_another_ca_is_refused_by_the_client() {
    let f = fixture();
    let other = Ca::new("Another CA", 30).expect("CA");
    let impostor = other
        .issue_server(&names(&["localhost"]), 30)
        .expect("server");
    for &version in BOTH {
        let result = handshake(
            server_config(&f.ca.cert_pem(), &impostor, None, version),
            client_config(&f.ca.cert_pem(), &f.client, version),
            "localhost",
        );
        assert!(
            matches!(
                result,
                Err(Refused::ByClient(Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                )))
            ),
            "{version:?}: {result:?}"
        );
    }
}

#[test]
fn client_certificate_from_another_ca_is_refused_even_with_the_same_ca_name() {
    let f = fixture();
    for other_name in ["Another CA", "Strata test CA"] {
        let other = Ca::new(other_name, 30).expect("CA");
        let impostor = other.issue_client("sensor-1", 30).expect("client");
        for &version in BOTH {
            let result = handshake(
                server_config(&f.ca.cert_pem(), &f.server, None, version),
                // The client trusts both CAs, so only the server can refuse.
                client_config(&(f.ca.cert_pem() + &other.cert_pem()), &impostor, version),
                "localhost",
            );
            assert!(
                matches!(result, Err(Refused::ByServer(Error::InvalidCertificate(_)))),
                "{other_name}, {version:?}: {result:?}"
            );
        }
    }
}

#[test]
fn expired_client_certificate_is_refused() {
    let f = fixture();
    let expired =
        f.ca.issue_client_with("sensor-old", Validity::expired().expect("validity"))
            .expect("client");
    for &version in BOTH {
        let result = handshake(
            server_config(&f.ca.cert_pem(), &f.server, None, version),
            client_config(&f.ca.cert_pem(), &expired, version),
            "localhost",
        );
        assert!(
            matches!(
                result,
                Err(Refused::ByServer(Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                )))
            ),
            "{version:?}: {result:?}"
        );
    }
}

#[test]
fn expired_server_certificate_is_refused() {
    let f = fixture();
    let expired =
        f.ca.issue_server_with(
            &names(&["localhost"]),
            Validity::expired().expect("validity"),
        )
        .expect("server");
    let result = handshake(
        server_config(&f.ca.cert_pem(), &expired, None, &TLS13),
        client_config(&f.ca.cert_pem(), &f.client, &TLS13),
        "localhost",
    );
    assert!(
        matches!(
            result,
            Err(Refused::ByClient(Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )))
        ),
        "{result:?}"
    );
}

#[test]
fn revoked_client_certificate_is_refused_and_others_still_pass() {
    let f = fixture();
    let revoked = f.ca.issue_client("sensor-lost", 30).expect("client");
    let crl = f.ca.crl([&revoked.serial], 7).expect("CRL");
    for &version in BOTH {
        let result = handshake(
            server_config(&f.ca.cert_pem(), &f.server, Some(&crl), version),
            client_config(&f.ca.cert_pem(), &revoked, version),
            "localhost",
        );
        assert!(
            matches!(
                result,
                Err(Refused::ByServer(Error::InvalidCertificate(
                    CertificateError::Revoked
                )))
            ),
            "{version:?}: {result:?}"
        );
        handshake(
            server_config(&f.ca.cert_pem(), &f.server, Some(&crl), version),
            client_config(&f.ca.cert_pem(), &f.client, version),
            "localhost",
        )
        .unwrap_or_else(|e| panic!("{version:?}: {e:?}"));
    }
}

#[test]
fn empty_crl_revokes_nobody() {
    let f = fixture();
    let crl = f.ca.crl([], 7).expect("CRL");
    handshake(
        server_config(&f.ca.cert_pem(), &f.server, Some(&crl), &TLS13),
        client_config(&f.ca.cert_pem(), &f.client, &TLS13),
        "localhost",
    )
    .expect("handshake");
}

#[test]
fn server_certificate_for_other_names_is_refused() {
    let f = fixture();
    let result = handshake(
        server_config(&f.ca.cert_pem(), &f.server, None, &TLS13),
        client_config(&f.ca.cert_pem(), &f.client, &TLS13),
        "broker.example.com",
    );
    assert!(
        matches!(
            result,
            Err(Refused::ByClient(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )))
        ),
        "{result:?}"
    );
}

#[test]
fn key_usages_keep_server_and_client_certificates_apart() {
    let f = fixture();
    // A client certificate offered as a server's, and the reverse.
    let client_as_server = handshake(
        server_config(&f.ca.cert_pem(), &f.client, None, &TLS13),
        client_config(&f.ca.cert_pem(), &f.client, &TLS13),
        "sensor-1",
    );
    assert!(
        matches!(
            client_as_server,
            Err(Refused::ByClient(Error::InvalidCertificate(_)))
        ),
        "{client_as_server:?}"
    );
    let server_as_client = handshake(
        server_config(&f.ca.cert_pem(), &f.server, None, &TLS13),
        client_config(&f.ca.cert_pem(), &f.server, &TLS13),
        "localhost",
    );
    assert!(
        matches!(
            server_as_client,
            Err(Refused::ByServer(Error::InvalidCertificate(_)))
        ),
        "{server_as_client:?}"
    );
}
