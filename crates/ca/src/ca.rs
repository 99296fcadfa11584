//! [`Ca`]: make a certificate authority, save it, load it back, and sign
//! server certificates, client certificates and CRLs with it.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, RevokedCertParams, SanType, SerialNumber,
};

use crate::files::{self, NewFile};
use crate::validity::to_asn1_time;
use crate::{CaError, Issued, Serial, Validity, der};

/// The CA certificate's file name in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";

/// The CA private key's file name in a CA directory (mode 0600 on unix).
pub const CA_KEY_FILE: &str = "ca.key";

/// A certificate authority: its key and what is needed to name it as the
/// issuer of the certificates and CRLs it signs.
///
/// The CA certificate allows no intermediate CAs below it
/// (pathLenConstraint 0) and its key usages are keyCertSign and cRLSign.
/// Keys, the CA's and every issued one, are ECDSA P-256 with SHA-256.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// How the CA's key identifier is derived, reused for CRLs so that
    /// their authorityKeyIdentifier matches the CA certificate's
    /// subjectKeyIdentifier.
    key_id: KeyIdMethod,
    cert_der: Vec<u8>,
}

impl Ca {
    /// Makes a new self-signed CA named `common_name`, valid for `days` days.
    pub fn new(common_name: &str, days: u32) -> Result<Ca, CaError> {
        Ca::new_with(common_name, Validity::days_from_now(days)?)
    }

    /// Makes a new self-signed CA named `common_name`, valid over `validity`.
    pub fn new_with(common_name: &str, validity: Validity) -> Result<Ca, CaError> {
        if common_name.is_empty() {
            return Err(CaError::Name {
                name: String::new(),
                reason: "a CA needs a common name, e.g. \"Strata test CA\"",
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Sign)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from_slice(Serial::random()?.as_bytes()));
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = ca_key_usages();
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key).map_err(CaError::Sign)?;
        Ok(Ca {
            key_id: params.key_identifier_method.clone(),
            issuer: Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
        })
    }

    /// Makes a new CA (see [`Ca::new`]) and writes it into `dir`, creating
    /// `dir` if needed: [`CA_CERT_FILE`] and [`CA_KEY_FILE`], the key with
    /// mode 0600 on unix, both fsynced.
    ///
    /// Refuses, writing nothing, if either file is already there: a CA
    /// replaced by mistake invalidates everything it signed.
    pub fn init(dir: &Path, common_name: &str, days: u32) -> Result<Ca, CaError> {
        let ca = Ca::new(common_name, days)?;
        let key_pem = ca.key_pem();
        let cert_pem = ca.cert_pem();
        files::create_all(
            dir,
            &[
                NewFile {
                    path: dir.join(CA_KEY_FILE),
                    contents: key_pem.as_bytes(),
                    secret: true,
                },
                NewFile {
                    path: dir.join(CA_CERT_FILE),
                    contents: cert_pem.as_bytes(),
                    secret: false,
                },
            ],
            |path| CaError::CaExists { path },
        )?;
        Ok(ca)
    }

    /// Reads a CA from the [`CA_CERT_FILE`] and [`CA_KEY_FILE`] in `dir`,
    /// to sign more certificates with it.
    ///
    /// Certificates chain to a CA only if their issuer name equals the CA
    /// certificate's subject byte for byte. rcgen without its x509-parser
    /// feature cannot read a certificate, so this reads the few fields it
    /// needs itself (a small DER walk, in `der`): the subject, which is
    /// turned back into rcgen's terms; the public key; and the subject key
    /// identifier, which becomes the authorityKeyIdentifier of what is
    /// signed. Reading the certificate, rather than keeping the CA's name
    /// in a file of our own beside it, leaves `ca.pem` as the one source of
    /// truth: an edited or swapped file cannot disagree with a sidecar.
    ///
    /// Then it checks what it rebuilt: the key must be the certificate's
    /// key, and a subject encoded from the rebuilt name must equal the
    /// certificate's bytes. Either failure is an error naming the file,
    /// rather than certificates that fail to verify later.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_der = read_certificate(&cert_path)?;
        let key_text = files::read(&key_path)?;
        let key = KeyPair::from_pem(&key_text).map_err(|source| CaError::Key {
            path: key_path.clone(),
            source,
        })?;

        let cert_error = |reason| CaError::Certificate {
            path: cert_path.clone(),
            reason,
        };
        let parts = der::certificate(&cert_der).map_err(cert_error)?;
        if parts.spki != key.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let subject_error = |reason: &str| CaError::Subject {
            path: cert_path.clone(),
            reason: reason.to_owned(),
        };
        let mut params = CertificateParams::default();
        params.distinguished_name =
            der::distinguished_name(parts.subject).map_err(subject_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = ca_key_usages();
        params.key_identifier_method = match parts.subject_key_id {
            Some(id) => KeyIdMethod::PreSpecified(id.to_vec()),
            None => KeyIdMethod::Sha256,
        };

        let probe = params.self_signed(&key).map_err(CaError::Sign)?;
        let probe_parts = der::certificate(probe.der())
            .map_err(|_| subject_error("rcgen wrote a certificate this crate cannot read back"))?;
        if probe_parts.subject != parts.subject {
            return Err(subject_error(
                "its subject re-encodes to different bytes (string types or order differ)",
            ));
        }

        Ok(Ca {
            key_id: params.key_identifier_method.clone(),
            issuer: Issuer::new(params, key),
            cert_der,
        })
    }

    /// The CA certificate, PEM. Peers put this in their trust store.
    pub fn cert_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("CERTIFICATE", self.cert_der.as_slice()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM. Keep it secret.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a server certificate for `names`, valid for `days` days.
    /// See [`Ca::issue_server_with`].
    pub fn issue_server(&self, names: &[String], days: u32) -> Result<Issued, CaError> {
        self.issue_server_with(names, Validity::days_from_now(days)?)
    }

    /// Issues a server certificate for `names`, valid over `validity`.
    ///
    /// Each name becomes a subjectAltName: an IP address if it parses as
    /// one (`127.0.0.1`, `::1`), a DNS name otherwise (`localhost`,
    /// `*.example.com`). The first name is also the common name. Extended
    /// key usage serverAuth; key usage digitalSignature.
    pub fn issue_server_with(
        &self,
        names: &[String],
        validity: Validity,
    ) -> Result<Issued, CaError> {
        let first = names.first().ok_or(CaError::NoNames)?;
        let mut params = leaf_params(first, validity)?;
        params.subject_alt_names = names
            .iter()
            .map(|name| subject_alt_name(name))
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// Issues a client certificate for `name`, valid for `days` days.
    /// See [`Ca::issue_client_with`].
    pub fn issue_client(&self, name: &str, days: u32) -> Result<Issued, CaError> {
        self.issue_client_with(name, Validity::days_from_now(days)?)
    }

    /// Issues a client certificate whose common name is `name`, valid over
    /// `validity`. Extended key usage clientAuth; key usage
    /// digitalSignature; no subjectAltName (a broker that maps certificates
    /// to users reads the common name).
    pub fn issue_client_with(&self, name: &str, validity: Validity) -> Result<Issued, CaError> {
        let mut params = leaf_params(name, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A CRL, PEM, listing the serials in `revoked` as revoked now, and due
    /// to be replaced in `days` days (its nextUpdate). `revoked` is any
    /// collection of `&Serial`: `[&issued.serial]`, `&serials`, `[]`.
    ///
    /// The CRL number is the current Unix time in seconds, so CRLs made
    /// later carry larger numbers as RFC 5280 §5.2.3 asks, as long as the
    /// clock does not go back and no two are made within one second.
    pub fn crl<'a>(
        &self,
        revoked: impl IntoIterator<Item = &'a Serial>,
        days: u32,
    ) -> Result<String, CaError> {
        self.crl_at(SystemTime::now(), revoked, days)
    }

    /// [`Ca::crl`] as of `now`.
    pub fn crl_at<'a>(
        &self,
        now: SystemTime,
        revoked: impl IntoIterator<Item = &'a Serial>,
        days: u32,
    ) -> Result<String, CaError> {
        if days == 0 {
            return Err(CaError::Validity(
                "a CRL must be valid for at least 1 day, not 0".to_owned(),
            ));
        }
        let this_update = to_asn1_time(now)?;
        let next_update = Validity::days_from(now, days)?.not_after;
        let crl_number = u64::try_from(this_update.unix_timestamp())
            .map_err(|_| CaError::Validity("a CRL cannot be dated before 1970".to_owned()))?;
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .into_iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial.as_bytes()),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.key_id.clone(),
        };
        let crl = params.signed_by(&self.issuer).map_err(CaError::Sign)?;
        crl.pem().map_err(CaError::Sign)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<Issued, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Sign)?;
        let serial = Serial::random()?;
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CaError::Sign)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }
}

impl fmt::Debug for Ca {
    /// Shows the issuer's name and key identifier method; never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
}

/// What server and client certificates share.
fn leaf_params(common_name: &str, validity: Validity) -> Result<CertificateParams, CaError> {
    if common_name.is_empty() {
        return Err(CaError::Name {
            name: String::new(),
            reason: "the name is empty; give a host name, an IP address or a client name",
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn subject_alt_name(name: &str) -> Result<SanType, CaError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = |reason| CaError::Name {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid(
            "the name is empty; give a DNS name or an IP address",
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*');
    if !name.chars().all(allowed) {
        return Err(invalid(
            "not an IP address, and a DNS name may hold only ASCII letters, digits and - . _ *",
        ));
    }
    let dns = name
        .try_into()
        .map_err(|_| invalid("not representable as an IA5String"))?;
    Ok(SanType::DnsName(dns))
}

fn read_certificate(path: &Path) -> Result<Vec<u8>, CaError> {
    let text = files::read(path)?;
    let pem_error = |reason: String| CaError::Pem {
        path: path.to_owned(),
        reason,
    };
    let blocks = pem::parse_many(&text).map_err(|e| pem_error(format!("not valid PEM ({e})")))?;
    let mut certs = blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE");
    let cert = certs
        .next()
        .ok_or_else(|| pem_error("no CERTIFICATE block found".to_owned()))?;
    if certs.next().is_some() {
        return Err(pem_error(
            "more than one CERTIFICATE block; a CA directory holds exactly one".to_owned(),
        ));
    }
    Ok(cert.into_contents())
}
