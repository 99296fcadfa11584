//! Just enough DER (X.690) to read back a CA certificate: find its subject,
//! public key and subject key identifier, and turn the subject into rcgen's
//! [`DistinguishedName`] so certificates signed later name the issuer with
//! the same bytes.
//!
//! The certificate layout is RFC 5280 §4.1:
//!
//! ```text
//! Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE {
//!     version [0] EXPLICIT OPTIONAL, serialNumber INTEGER, signature SEQUENCE,
//!     issuer Name, validity SEQUENCE, subject Name, subjectPublicKeyInfo SEQUENCE,
//!     issuerUniqueID [1] OPTIONAL, subjectUniqueID [2] OPTIONAL,
//!     extensions [3] EXPLICIT SEQUENCE OF Extension OPTIONAL }
//! ```
//!
//! Every function returns a short reason on malformed input and never
//! panics: the bytes come from a file anyone may have edited.

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{DistinguishedName, DnType, DnValue};

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const VERSION: u8 = 0xa0;
const ISSUER_UNIQUE_ID: u8 = 0x81;
const SUBJECT_UNIQUE_ID: u8 = 0x82;
const EXTENSIONS: u8 = 0xa3;

/// The contents octets of OID 2.5.29.14, id-ce-subjectKeyIdentifier.
const SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x0e];

/// Why a certificate could not be read: a fixed phrase for the error message.
pub(crate) type Reason = &'static str;

/// The parts of a certificate the CA needs, borrowed from its DER.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CertParts<'a> {
    /// The subject Name, tag and length included.
    pub(crate) subject: &'a [u8],
    /// The SubjectPublicKeyInfo, tag and length included.
    pub(crate) spki: &'a [u8],
    /// The subject key identifier extension's key identifier, if present.
    pub(crate) subject_key_id: Option<&'a [u8]>,
}

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    /// The whole element: tag, length and contents.
    encoded: &'a [u8],
}

/// Reads consecutive elements from a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn read(&mut self) -> Result<Tlv<'a>, Reason> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or("unexpected end of data")?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte tags are not used in certificates");
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or("length is missing")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 {
                return Err("indefinite length is not DER");
            }
            if count > 4 {
                return Err("length does not fit in 4 bytes");
            }
            let (len_bytes, rest) = after_len
                .split_at_checked(count)
                .ok_or("length is cut short")?;
            after_len = rest;
            len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let contents = after_len.get(..len).ok_or("element runs past the end")?;
        let header = input.len() - after_len.len();
        let (encoded, rest) = input.split_at(header + len);
        self.rest = rest;
        Ok(Tlv {
            tag,
            contents,
            encoded,
        })
    }

    fn expect(&mut self, tag: u8, what: Reason) -> Result<Tlv<'a>, Reason> {
        match self.read() {
            Ok(tlv) if tlv.tag == tag => Ok(tlv),
            Ok(_) => Err(what),
            Err(reason) => Err(reason),
        }
    }

    fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Reason> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Finds the subject, public key and subject key identifier of a DER certificate.
pub(crate) fn certificate(der: &[u8]) -> Result<CertParts<'_>, Reason> {
    let mut outer = Reader::new(der);
    let cert = outer.expect(SEQUENCE, "the certificate is not a SEQUENCE")?;
    if !outer.is_empty() {
        return Err("data follows the certificate");
    }
    let tbs = Reader::new(cert.contents).expect(SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut fields = Reader::new(tbs.contents);
    fields.optional(VERSION)?;
    fields.expect(INTEGER, "serial number is not an INTEGER")?;
    fields.expect(SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    fields.expect(SEQUENCE, "issuer is not a SEQUENCE")?;
    fields.expect(SEQUENCE, "validity is not a SEQUENCE")?;
    let subject = fields.expect(SEQUENCE, "subject is not a SEQUENCE")?;
    let spki = fields.expect(SEQUENCE, "subject public key info is not a SEQUENCE")?;
    fields.optional(ISSUER_UNIQUE_ID)?;
    fields.optional(SUBJECT_UNIQUE_ID)?;
    let subject_key_id = match fields.optional(EXTENSIONS)? {
        Some(extensions) => find_subject_key_id(extensions.contents)?,
        None => None,
    };
    Ok(CertParts {
        subject: subject.encoded,
        spki: spki.encoded,
        subject_key_id,
    })
}

fn find_subject_key_id(explicit: &[u8]) -> Result<Option<&[u8]>, Reason> {
    let list = Reader::new(explicit).expect(SEQUENCE, "extensions are not a SEQUENCE")?;
    let mut extensions = Reader::new(list.contents);
    while !extensions.is_empty() {
        let extension = extensions.expect(SEQUENCE, "an extension is not a SEQUENCE")?;
        let mut fields = Reader::new(extension.contents);
        let id = fields.expect(OID, "an extension id is not an OBJECT IDENTIFIER")?;
        if id.contents != SUBJECT_KEY_IDENTIFIER {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE may sit between the id and the value.
        fields.optional(0x01)?;
        let value = fields.expect(OCTET_STRING, "extension value is not an OCTET STRING")?;
        let key_id = Reader::new(value.contents).expect(
            OCTET_STRING,
            "subject key identifier is not an OCTET STRING",
        )?;
        return Ok(Some(key_id.contents));
    }
    Ok(None)
}

/// Turns an encoded Name into rcgen's [`DistinguishedName`].
///
/// Refuses what rcgen cannot re-encode as it was: a relative name with more
/// than one attribute, an attribute type that appears twice (rcgen keeps one
/// value per type), and string types other than the six rcgen writes.
pub(crate) fn distinguished_name(name: &[u8]) -> Result<DistinguishedName, Reason> {
    let name = Reader::new(name).expect(SEQUENCE, "the subject is not a SEQUENCE")?;
    let mut rdns = Reader::new(name.contents);
    let mut dn = DistinguishedName::new();
    while !rdns.is_empty() {
        let rdn = rdns.expect(SET, "a relative name is not a SET")?;
        let mut attributes = Reader::new(rdn.contents);
        let attribute = attributes.expect(SEQUENCE, "an attribute is not a SEQUENCE")?;
        if !attributes.is_empty() {
            return Err("a relative name holds more than one attribute");
        }
        let mut fields = Reader::new(attribute.contents);
        let oid = fields.expect(OID, "an attribute type is not an OBJECT IDENTIFIER")?;
        let ty = DnType::from_oid(&oid_arcs(oid.contents)?);
        let value = dn_value(fields.read()?)?;
        if !fields.is_empty() {
            return Err("an attribute holds more than a type and a value");
        }
        if dn.get(&ty).is_some() {
            return Err("an attribute type appears twice in the subject");
        }
        dn.push(ty, value);
    }
    Ok(dn)
}

fn dn_value(tlv: Tlv<'_>) -> Result<DnValue, Reason> {
    let text = || std::str::from_utf8(tlv.contents).map_err(|_| "a name string is not UTF-8");
    let wrong = |_| "a name string holds characters its type does not allow";
    Ok(match tlv.tag {
        UTF8_STRING => DnValue::Utf8String(text()?.to_owned()),
        PRINTABLE_STRING => {
            DnValue::PrintableString(PrintableString::try_from(text()?).map_err(wrong)?)
        }
        IA5_STRING => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(wrong)?),
        TELETEX_STRING => DnValue::TeletexString(TeletexString::try_from(text()?).map_err(wrong)?),
        BMP_STRING => {
            DnValue::BmpString(BmpString::from_utf16be(tlv.contents.to_vec()).map_err(wrong)?)
        }
        UNIVERSAL_STRING => DnValue::UniversalString(
            UniversalString::from_utf32be(tlv.contents.to_vec()).map_err(wrong)?,
        ),
        _ => return Err("a name uses a string type rcgen cannot write"),
    })
}

/// Decodes OBJECT IDENTIFIER contents into arcs (X.690 §8.19).
fn oid_arcs(contents: &[u8]) -> Result<Vec<u64>, Reason> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    let mut in_progress = false;
    for &byte in contents {
        if !in_progress && byte == 0x80 {
            return Err("an object identifier has a padded sub-identifier");
        }
        if value > u64::MAX >> 7 {
            return Err("an object identifier arc is too large");
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        in_progress = byte & 0x80 != 0;
        if in_progress {
            continue;
        }
        if arcs.is_empty() {
            let first = (value / 40).min(2);
            arcs.push(first);
            arcs.push(value - first * 40);
        } else {
            arcs.push(value);
        }
        value = 0;
    }
    if in_progress || arcs.is_empty() {
        return Err("an object identifier is cut short");
    }
    Ok(arcs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, IsCa, KeyPair, PublicKeyData};

    fn sample() -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString("NL".try_into().expect("ascii")),
        );
        dn.push(DnType::OrganizationName, "Strata ✓");
        dn.push(
            DnType::CommonName,
            DnValue::Ia5String("ca".try_into().expect("ascii")),
        );
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.der().to_vec(), key)
    }

    #[test]
    fn reads_back_what_rcgen_wrote() {
        let (der, key) = sample();
        let parts = certificate(&der).expect("parses");
        assert_eq!(parts.spki, key.subject_public_key_info().as_slice());
        assert!(parts.subject_key_id.is_some_and(|id| id.len() == 20));

        let dn = distinguished_name(parts.subject).expect("subject");
        let order: Vec<_> = dn.iter().map(|(ty, _)| ty.clone()).collect();
        assert_eq!(
            order,
            [
                DnType::CountryName,
                DnType::OrganizationName,
                DnType::CommonName
            ]
        );
        assert_eq!(
            dn.get(&DnType::OrganizationName),
            Some(&DnValue::Utf8String("Strata ✓".to_owned()))
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let (der, _) = sample();
        for len in 0..der.len() {
            assert!(certificate(&der[..len]).is_err(), "accepted {len} bytes");
        }
    }

    #[test]
    fn every_single_byte_change_is_handled_without_panic() {
        let (der, _) = sample();
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bytes = der.clone();
                bytes[i] ^= flip;
                if let Ok(parts) = certificate(&bytes) {
                    let _ = distinguished_name(parts.subject);
                }
            }
        }
    }

    #[test]
    fn decodes_object_identifiers() {
        // 2.5.4.3 (commonName) and 1.2.840.113549 (rsadsi).
        assert_eq!(oid_arcs(&[0x55, 0x04, 0x03]), Ok(vec![2, 5, 4, 3]));
        assert_eq!(
            oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            Ok(vec![1, 2, 840, 113549])
        );
        assert!(oid_arcs(&[]).is_err());
        assert!(oid_arcs(&[0x55, 0x86]).is_err());
        assert!(oid_arcs(&[0x55, 0x80, 0x01]).is_err());
        assert!(oid_arcs(&[0xff; 12]).is_err());
    }

    #[test]
    fn refuses_lengths_der_forbids() {
        assert_eq!(
            certificate(&[0x30, 0x80, 0x00, 0x00]),
            Err("indefinite length is not DER")
        );
        assert_eq!(
            certificate(&[0x30, 0x85, 1, 0, 0, 0, 0]),
            Err("length does not fit in 4 bytes")
        );
        assert_eq!(
            certificate(&[0x30, 0x05, 0x00]),
            Err("element runs past the end")
        );
    }

    #[test]
    fn refuses_multi_valued_relative_names() {
        // SEQUENCE { SET { cn=a, o=b } }
        let name = [
            0x30, 0x16, 0x31, 0x14, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, b'a',
            0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, b'b',
        ];
        assert_eq!(
            distinguished_name(&name).err(),
            Some("a relative name holds more than one attribute")
        );
    }
}
