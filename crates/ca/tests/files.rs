//! The CA's files on disk: what `init` and `Issued::write` create, what they
//! refuse to overwrite, and how `load` reports damaged or mismatched files.
//! Error messages are asserted whole: they are what an operator reads.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use strata_ca::{Ca, CaError};

fn read(path: &Path) -> String {
    fs::read_to_string(path).expect("read")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn init_writes_the_ca_with_a_private_key_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("new").join("ca");
    let ca = Ca::init(&dir, "Strata test CA", 30).expect("init");
    assert_eq!(read(&dir.join("ca.pem")), ca.cert_pem());
    assert_eq!(read(&dir.join("ca.key")), ca.key_pem());
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    #[cfg(unix)]
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
}

#[test]
fn init_refuses_to_overwrite_a_ca_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    Ca::init(dir, "first", 30).expect("init");
    let pem = read(&dir.join("ca.pem"));
    let key = read(&dir.join("ca.key"));

    let err = Ca::init(dir, "second", 30).expect_err("second init");
    assert!(matches!(err, CaError::CaExists { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{} already exists and Strata will not overwrite a CA; to make a new CA, pick \
             another directory or remove ca.pem and ca.key from this one (certificates the old \
             CA signed will then no longer verify)",
            dir.join("ca.key").display()
        )
    );
    assert_eq!(read(&dir.join("ca.pem")), pem);
    assert_eq!(read(&dir.join("ca.key")), key);

    // Either file alone is enough to refuse, and the other is not created.
    fs::remove_file(dir.join("ca.key")).expect("remove");
    let err = Ca::init(dir, "second", 30).expect_err("init over ca.pem");
    assert!(
        err.to_string()
            .starts_with(&format!("{} already exists", dir.join("ca.pem").display()))
    );
    assert!(!dir.join("ca.key").exists());
    assert_eq!(read(&dir.join("ca.pem")), pem);
}

#[test]
fn load_reads_back_the_same_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let made = Ca::init(tmp.path(), "Strata test CA", 30).expect("init");
    let loaded = Ca::load(tmp.path()).expect("load");
    assert_eq!(loaded.cert_pem(), made.cert_pem());
    assert_eq!(loaded.key_pem(), made.key_pem());
    assert_eq!(loaded.cert_der(), made.cert_der());
}

#[test]
fn load_names_a_missing_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = Ca::load(tmp.path()).expect_err("empty dir");
    assert_eq!(
        err.to_string(),
        format!(
            "{} does not exist; point at the directory `strata ca init` wrote, or run \
             `strata ca init DIR` first",
            tmp.path().join("ca.pem").display()
        )
    );
}

#[test]
fn load_refuses_a_key_that_is_not_the_certificates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Ca::init(&a, "Strata test CA", 30).expect("init a");
    Ca::init(&b, "Strata test CA", 30).expect("init b");
    fs::copy(b.join("ca.key"), a.join("ca.key")).expect("copy");
    let err = Ca::load(&a).expect_err("mismatched key");
    assert_eq!(
        err.to_string(),
        format!(
            "{} does not hold the private key of the certificate in {}; put back the key that \
             belongs to this certificate, or make a new CA in another directory",
            a.join("ca.key").display(),
            a.join("ca.pem").display()
        )
    );
}

#[test]
fn load_reports_damaged_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let ca = Ca::init(dir, "Strata test CA", 30).expect("init");
    let pem_path = dir.join("ca.pem");

    fs::write(&pem_path, "hello\n").expect("write");
    assert_eq!(
        Ca::load(dir).expect_err("no PEM").to_string(),
        format!(
            "{}: no CERTIFICATE block found; expected the PEM file written by `strata ca init`",
            pem_path.display()
        )
    );

    fs::write(&pem_path, ca.cert_pem() + &ca.cert_pem()).expect("write");
    assert!(
        Ca::load(dir)
            .expect_err("two certificates")
            .to_string()
            .contains("more than one CERTIFICATE block")
    );

    let der = ca.cert_der();
    let truncated = pem::encode(&pem::Pem::new("CERTIFICATE", &der[..der.len() / 2]));
    fs::write(&pem_path, truncated).expect("write");
    assert_eq!(
        Ca::load(dir).expect_err("truncated").to_string(),
        format!(
            "{}: malformed certificate: element runs past the end; restore ca.pem from a backup \
             or make a new CA",
            pem_path.display()
        )
    );

    fs::write(&pem_path, ca.cert_pem()).expect("write");
    fs::write(dir.join("ca.key"), ca.cert_pem()).expect("write");
    let err = Ca::load(dir).expect_err("certificate as key");
    assert!(matches!(err, CaError::Key { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: not a usable private key",
            dir.join("ca.key").display()
        )),
        "{err}"
    );
}

#[test]
fn load_refuses_a_subject_it_cannot_reproduce() {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "12345");
    let mut der = params.self_signed(&key).expect("cert").der().to_vec();
    // Retag the subject's common name (the last one; the issuer's comes
    // first) from UTF8String to NumericString, which rcgen cannot write.
    // The signature no longer matches, which load does not check.
    let cn = [0x06, 0x03, 0x55, 0x04, 0x03, 0x0c];
    let at = der
        .windows(cn.len())
        .rposition(|w| w == cn)
        .expect("subject common name");
    der[at + cn.len() - 1] = 0x12;

    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(
        tmp.path().join("ca.pem"),
        pem::encode(&pem::Pem::new("CERTIFICATE", der)),
    )
    .expect("write");
    fs::write(tmp.path().join("ca.key"), key.serialize_pem()).expect("write");
    assert_eq!(
        Ca::load(tmp.path())
            .expect_err("numeric string")
            .to_string(),
        format!(
            "{}: cannot sign as this CA: a name uses a string type rcgen cannot write; Strata \
             signs only with CAs whose subject it can reproduce exactly, such as those `strata \
             ca init` makes",
            tmp.path().join("ca.pem").display()
        )
    );
}

#[test]
fn issued_write_creates_both_files_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Strata test CA", 30).expect("CA");
    let issued = ca.issue_client("sensor-1", 30).expect("client");
    let out = tmp.path().join("certs");
    let files = issued.write(&out, "sensor-1").expect("write");
    assert_eq!(files.cert, out.join("sensor-1.pem"));
    assert_eq!(files.key, out.join("sensor-1.key"));
    assert_eq!(read(&files.cert), issued.cert_pem);
    assert_eq!(read(&files.key), issued.key_pem);
    #[cfg(unix)]
    assert_eq!(mode(&files.key), 0o600);

    let other = ca.issue_client("sensor-1", 30).expect("client");
    let err = other.write(&out, "sensor-1").expect_err("overwrite");
    assert_eq!(
        err.to_string(),
        format!(
            "{} already exists and Strata will not overwrite it; remove it, or write to another \
             directory or under another name",
            files.key.display()
        )
    );
    assert_eq!(read(&files.cert), issued.cert_pem);

    // Only the certificate left: still refused, and no key appears.
    fs::remove_file(&files.key).expect("remove");
    assert!(matches!(
        other.write(&out, "sensor-1"),
        Err(CaError::FileExists { path }) if path == files.cert
    ));
    assert!(!files.key.exists());
}

#[test]
fn issued_write_refuses_stems_that_are_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Strata test CA", 30).expect("CA");
    let issued = ca.issue_client("c", 30).expect("client");
    for stem in ["", ".", "..", "a/b", "../x", "a\\b"] {
        let err = issued.write(tmp.path(), stem).expect_err(stem);
        assert_eq!(
            err.to_string(),
            format!(
                "invalid file name stem {stem:?}: give a plain name such as \"server\", without \
                 path separators"
            )
        );
    }
}

#[test]
fn serials_are_unique_per_issue() {
    let ca = Ca::new("Strata test CA", 30).expect("CA");
    let mut seen = HashSet::new();
    for i in 0..64 {
        let issued = ca.issue_client(&format!("client-{i}"), 1).expect("client");
        assert!(
            seen.insert(issued.serial.clone()),
            "repeated {}",
            issued.serial
        );
    }
}

#[test]
fn bad_names_are_refused_with_the_name() {
    let ca = Ca::new("Strata test CA", 30).expect("CA");
    assert_eq!(
        ca.issue_server(&[], 30).expect_err("no names").to_string(),
        "a server certificate needs at least one DNS name or IP address, e.g. localhost or \
         127.0.0.1"
    );
    assert_eq!(
        ca.issue_server(&["localhost".to_owned(), "bröker".to_owned()], 30)
            .expect_err("non-ASCII")
            .to_string(),
        "invalid certificate name \"bröker\": not an IP address, and a DNS name may hold only \
         ASCII letters, digits and - . _ *"
    );
    assert!(matches!(ca.issue_client("", 30), Err(CaError::Name { .. })));
    assert!(matches!(Ca::new("", 30), Err(CaError::Name { .. })));
    assert!(matches!(ca.issue_client("c", 0), Err(CaError::Validity(_))));
}
