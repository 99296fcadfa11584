//! Who a client certificate names: [`certificate_identity`] reads the
//! subject's Common Name, or else its first subjectAltName, out of the
//! certificate's DER (RFC 5280, section 4.1) with a small DER reader of its
//! own.
//!
//! It reads, it does not verify. It is meant for a certificate the TLS
//! layer has already verified against the configured CAs, so it checks
//! only what it needs to read safely (the tags and lengths of the elements
//! it walks) and answers `None` to anything else. It walks the fixed
//! structure of a certificate with loops, never recursion, so no input can
//! make it go deep, and every read is bounds-checked, so none can make it
//! panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use strata_auth::der::Der;

/// The identity of a client certificate: its subject's Common Name or,
/// when the subject has none, its first subjectAltName that is a dNSName,
/// rfc822Name, URI or iPAddress (an address as text: "192.0.2.7",
/// "2001:db8::1"). SANs of other kinds (otherName, directoryName, ...) are
/// passed over.
///
/// With several CNs, the last one is taken: a Name lists its attributes
/// from the most general to the most specific (C, O, OU, CN), so the last
/// is the one that names the holder. Go's `crypto/x509` makes the same
/// choice.
///
/// The name chosen must be text: a CN in a string type this does not read
/// (anything but UTF8String, PrintableString, IA5String, TeletexString as
/// Latin-1 and BMPString), not decodable, empty, or with a control
/// character (which would invite log injection, or truncation in whatever
/// the identity is handed to) gives `None`, as does such a SAN. It never
/// falls back to another name, so an unreadable CN cannot make a SAN the
/// identity. `None` too when the certificate names no one, or the DER
/// cannot be read.
pub(crate) fn certificate_identity(der: &[u8]) -> Option<String> {
    let mut outer = Der::new(der);
    let certificate = outer.expect(SEQUENCE)?;
    if !outer.is_empty() {
        return None;
    }
    let mut tbs = Der::new(Der::new(certificate).expect(SEQUENCE)?);
    tbs.skip_if(VERSION)?;
    tbs.expect(INTEGER)?; // serialNumber
    tbs.expect(SEQUENCE)?; // signature
    tbs.expect(SEQUENCE)?; // issuer
    tbs.expect(SEQUENCE)?; // validity
    let subject = tbs.expect(SEQUENCE)?;
    if let Some((tag, value)) = last_common_name(subject)? {
        return directory_string(tag, value).and_then(usable);
    }
    tbs.expect(SEQUENCE)?; // subjectPublicKeyInfo
    tbs.skip_if(ISSUER_UNIQUE_ID)?;
    tbs.skip_if(SUBJECT_UNIQUE_ID)?;
    let extensions = Der::new(tbs.expect(EXTENSIONS)?).expect(SEQUENCE)?;
    let alt_names = subject_alt_names(extensions)?;
    first_alt_name(alt_names)
}

// Tags, with their class and constructed bits (X.690, section 8.1.2).
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const BMP_STRING: u8 = 0x1e;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// tbsCertificate's `[0] EXPLICIT Version`.
const VERSION: u8 = 0xa0;
/// tbsCertificate's `[1] IMPLICIT UniqueIdentifier`.
const ISSUER_UNIQUE_ID: u8 = 0x81;
/// tbsCertificate's `[2] IMPLICIT UniqueIdentifier`.
const SUBJECT_UNIQUE_ID: u8 = 0x82;
/// tbsCertificate's `[3] EXPLICIT Extensions`.
const EXTENSIONS: u8 = 0xa3;
// GeneralName's choices read here (RFC 5280, section 4.2.1.6), all IMPLICIT
// and primitive.
const RFC822_NAME: u8 = 0x81;
const DNS_NAME: u8 = 0x82;
const URI: u8 = 0x86;
const IP_ADDRESS: u8 = 0x87;

/// id-at-commonName, 2.5.4.3, as the contents of its OID.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-ce-subjectAltName, 2.5.29.17, as the contents of its OID.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The value of the last commonName in a Name (the contents of its
/// RDNSequence), with its string tag; `Some(None)` if it has none, `None`
/// if it cannot be read.
fn last_common_name(name: &[u8]) -> Option<Option<(u8, &[u8])>> {
    let mut found = None;
    let mut rdns = Der::new(name);
    while !rdns.is_empty() {
        // A RelativeDistinguishedName is a SET of one or more attributes.
        let mut attributes = Der::new(rdns.expect(SET)?);
        while !attributes.is_empty() {
            let mut attribute = Der::new(attributes.expect(SEQUENCE)?);
            let kind = attribute.expect(OID)?;
            let value = attribute.next()?;
            if kind == OID_COMMON_NAME {
                found = Some(value);
            }
        }
    }
    Some(found)
}

/// The GeneralNames of the first subjectAltName extension in a list of
/// extensions (the contents of its SEQUENCE); `None` if there is none or
/// the list cannot be read.
fn subject_alt_names(extensions: &[u8]) -> Option<&[u8]> {
    let mut extensions = Der::new(extensions);
    while !extensions.is_empty() {
        let mut extension = Der::new(extensions.expect(SEQUENCE)?);
        let id = extension.expect(OID)?;
        extension.skip_if(BOOLEAN)?; // critical
        let value = extension.expect(OCTET_STRING)?;
        if id == OID_SUBJECT_ALT_NAME {
            return Der::new(value).expect(SEQUENCE);
        }
    }
    None
}

/// The first name of a kind read here in GeneralNames, as text.
fn first_alt_name(names: &[u8]) -> Option<String> {
    let mut names = Der::new(names);
    while !names.is_empty() {
        let (tag, name) = names.next()?;
        match tag {
            // IA5String: ASCII.
            RFC822_NAME | DNS_NAME | URI => return ascii(name).and_then(usable),
            IP_ADDRESS => {
                let address = match name.len() {
                    4 => Ipv4Addr::from(<[u8; 4]>::try_from(name).ok()?).to_string(),
                    16 => Ipv6Addr::from(<[u8; 16]>::try_from(name).ok()?).to_string(),
                    _ => return None,
                };
                return Some(address);
            }
            _ => {}
        }
    }
    None
}

/// An attribute value of one of the string types a CN may have.
fn directory_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING => String::from_utf8(value.to_vec()).ok(),
        // Strictly a PrintableString has a smaller alphabet, but real
        // certificates carry `*`, `@` and `_` in them; ASCII is ASCII.
        PRINTABLE_STRING | IA5_STRING => ascii(value),
        // T.61 proper is not Latin-1, but Latin-1 is how OpenSSL reads it
        // and what the CAs that used it meant.
        TELETEX_STRING => Some(value.iter().map(|&b| char::from(b)).collect()),
        // UCS-2 in big-endian order; UTF-16 is a superset of it.
        BMP_STRING => {
            let (units, rest) = value.as_chunks::<2>();
            if !rest.is_empty() {
                return None;
            }
            let units = units.iter().map(|&pair| u16::from_be_bytes(pair));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

fn ascii(value: &[u8]) -> Option<String> {
    value
        .is_ascii()
        .then(|| value.iter().map(|&b| char::from(b)).collect())
}

/// `name` if it can stand as an identity: not empty, no control character.
fn usable(name: String) -> Option<String> {
    (!name.is_empty() && !name.chars().any(char::is_control)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString};
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyPair, SanType};

    fn dns(name: &str) -> SanType {
        SanType::DnsName(Ia5String::try_from(name).unwrap())
    }

    fn ip(addr: &str) -> SanType {
        SanType::IpAddress(addr.parse().unwrap())
    }

    /// A self-signed certificate with this subject and these SANs.
    fn certificate(subject: &[(DnType, DnValue)], sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), value.clone());
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn cn(name: &str) -> (DnType, DnValue) {
        (DnType::CommonName, DnValue::from(name))
    }

    fn org(name: &str) -> (DnType, DnValue) {
        (DnType::OrganizationName, DnValue::from(name))
    }

    fn identity(der: &[u8]) -> Option<String> {
        certificate_identity(der)
    }

    #[test]
    fn common_name_only() {
        let der = certificate(&[org("Acme"), cn("sensor-17")], vec![]);
        assert_eq!(identity(&der).as_deref(), Some("sensor-17"));
    }

    #[test]
    fn dns_name_without_common_name() {
        let der = certificate(&[org("Acme")], vec![dns("sensor-17.example.com")]);
        assert_eq!(identity(&der).as_deref(), Some("sensor-17.example.com"));
        let der = certificate(&[], vec![dns("a.example"), dns("b.example")]);
        assert_eq!(identity(&der).as_deref(), Some("a.example"));
    }

    #[test]
    fn ip_address_without_common_name() {
        let der = certificate(&[org("Acme")], vec![ip("192.0.2.7")]);
        assert_eq!(identity(&der).as_deref(), Some("192.0.2.7"));
        let der = certificate(&[], vec![ip("2001:db8::1"), dns("later.example")]);
        assert_eq!(identity(&der).as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn email_and_uri_without_common_name() {
        let email = SanType::Rfc822Name(Ia5String::try_from("zoe@example.com").unwrap());
        assert_eq!(
            identity(&certificate(&[], vec![email])).as_deref(),
            Some("zoe@example.com")
        );
        let uri = SanType::URI(Ia5String::try_from("spiffe://acme/sensor/17").unwrap());
        let der = certificate(&[], vec![uri]);
        assert_eq!(identity(&der).as_deref(), Some("spiffe://acme/sensor/17"));
    }

    #[test]
    fn other_kinds_of_alt_name_are_passed_over() {
        let other = SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            "upn@example.com".into(),
        ));
        let der = certificate(&[], vec![other, dns("after.example")]);
        assert_eq!(identity(&der).as_deref(), Some("after.example"));
    }

    #[test]
    fn utf8_common_name() {
        let der = certificate(&[cn("Zoë")], vec![]);
        assert_eq!(identity(&der).as_deref(), Some("Zoë"));
    }

    #[test]
    fn common_name_wins_over_alt_names() {
        let der = certificate(&[cn("sensor-17")], vec![dns("x.example"), ip("10.0.0.1")]);
        assert_eq!(identity(&der).as_deref(), Some("sensor-17"));
    }

    #[test]
    fn common_name_string_types() {
        let printable = PrintableString::try_from("Sensor 17").unwrap();
        let bmp = BmpString::try_from("Zoë Ω").unwrap();
        let teletex = TeletexString::try_from("tele 17").unwrap();
        let ia5 = Ia5String::try_from("ia5@17").unwrap();
        for (value, expected) in [
            (DnValue::PrintableString(printable), "Sensor 17"),
            (DnValue::BmpString(bmp), "Zoë Ω"),
            (DnValue::TeletexString(teletex), "tele 17"),
            (DnValue::Ia5String(ia5), "ia5@17"),
        ] {
            let der = certificate(&[(DnType::CommonName, value)], vec![]);
            assert_eq!(identity(&der).as_deref(), Some(expected));
        }
    }

    #[test]
    fn no_name_at_all() {
        assert_eq!(
            identity(&certificate(&[org("Acme")], vec![])).as_deref(),
            None
        );
        assert_eq!(identity(&certificate(&[], vec![])).as_deref(), None);
    }

    #[test]
    fn subject_not_issuer() {
        let mut ca = CertificateParams::default();
        ca.distinguished_name = DistinguishedName::new();
        ca.distinguished_name
            .push(DnType::CommonName, "Strata Test CA");
        let issuer = Issuer::new(ca, KeyPair::generate().unwrap());
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = DistinguishedName::new();
        leaf.subject_alt_names = vec![dns("leaf.example")];
        let key = KeyPair::generate().unwrap();
        let der = leaf.signed_by(&key, &issuer).unwrap().der().to_vec();
        assert_eq!(identity(&der).as_deref(), Some("leaf.example"));
    }

    /// A DER element: tag, length in the shortest form, contents.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            let bytes = u32::try_from(len).unwrap().to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | u8::try_from(4 - skip).unwrap());
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(contents);
        out
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(SEQUENCE, &parts.concat())
    }

    /// An attribute of a Name: OID contents, string tag, value.
    type Attribute<'a> = (&'a [u8], u8, &'a [u8]);

    /// A Name from RDNs, each a list of attributes.
    fn name(rdns: &[&[Attribute<'_>]]) -> Vec<u8> {
        let rdns: Vec<Vec<u8>> = rdns
            .iter()
            .map(|attributes| {
                let attributes: Vec<Vec<u8>> = attributes
                    .iter()
                    .map(|(oid, tag, value)| seq(&[tlv(OID, oid), tlv(*tag, value)]))
                    .collect();
                tlv(SET, &attributes.concat())
            })
            .collect();
        seq(&rdns)
    }

    fn cn_of(tag: u8, value: &[u8]) -> Vec<u8> {
        name(&[&[(OID_COMMON_NAME, tag, value)]])
    }

    /// A certificate built by hand, not signed (nothing here checks it),
    /// with `subject`, and a subjectAltName of `alt_names` if given.
    fn handmade(subject: Vec<u8>, alt_names: Option<&[Vec<u8>]>) -> Vec<u8> {
        let algorithm = seq(&[tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])]);
        let mut tbs = vec![
            tlv(VERSION, &tlv(INTEGER, &[2])),
            tlv(INTEGER, &[0x01, 0x23]),
            algorithm.clone(),
            cn_of(UTF8_STRING, b"Issuing CA"),
            seq(&[tlv(0x17, b"250101000000Z"), tlv(0x17, b"350101000000Z")]),
            subject,
            seq(&[seq(&[tlv(
                OID,
                &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
            )])]),
        ];
        if let Some(names) = alt_names {
            let key_usage = seq(&[
                tlv(OID, &[0x55, 0x1d, 0x0f]),
                tlv(BOOLEAN, &[0xff]),
                tlv(OCTET_STRING, &tlv(0x03, &[0x07, 0x80])),
            ]);
            let san = seq(&[
                tlv(OID, OID_SUBJECT_ALT_NAME),
                tlv(BOOLEAN, &[0xff]),
                tlv(OCTET_STRING, &seq(names)),
            ]);
            tbs.push(tlv(EXTENSIONS, &seq(&[key_usage, san])));
        }
        seq(&[seq(&tbs), algorithm, tlv(0x03, &[0x00, 0x01])])
    }

    #[test]
    fn handmade_certificates_read_like_real_ones() {
        let der = handmade(cn_of(UTF8_STRING, b"hand"), None);
        assert_eq!(identity(&der).as_deref(), Some("hand"));
        let names = [tlv(DNS_NAME, b"hand.example")];
        assert_eq!(
            identity(&handmade(seq(&[]), Some(&names))).as_deref(),
            Some("hand.example")
        );
    }

    #[test]
    fn the_last_common_name_wins() {
        let subject = name(&[
            &[(OID_COMMON_NAME, UTF8_STRING, b"first")],
            &[(&[0x55, 0x04, 0x0a], UTF8_STRING, b"Acme")],
            &[(OID_COMMON_NAME, PRINTABLE_STRING, b"last")],
        ]);
        assert_eq!(identity(&handmade(subject, None)).as_deref(), Some("last"));
        // Within one multi-valued RDN, too.
        let subject = name(&[&[
            (OID_COMMON_NAME, UTF8_STRING, b"one"),
            (&[0x55, 0x04, 0x0b], UTF8_STRING, b"unit"),
            (OID_COMMON_NAME, UTF8_STRING, b"two"),
        ]]);
        assert_eq!(identity(&handmade(subject, None)).as_deref(), Some("two"));
    }

    #[test]
    fn a_version_1_certificate_has_no_version_field() {
        let der = handmade(cn_of(UTF8_STRING, b"old"), None);
        // Drop `[0] { INTEGER 2 }`, five bytes, and fix the two lengths.
        let tbs = Der::new(&der).expect(SEQUENCE).unwrap();
        let mut fields = Der::new(Der::new(tbs).expect(SEQUENCE).unwrap());
        fields.expect(VERSION).unwrap();
        let algorithm = seq(&[tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])]);
        let v1 = seq(&[tlv(SEQUENCE, fields.rest()), algorithm, tlv(0x03, &[0x00])]);
        assert_eq!(identity(&v1).as_deref(), Some("old"));
    }

    #[test]
    fn latin1_teletex_and_bmp_surrogates() {
        let der = handmade(cn_of(TELETEX_STRING, b"Zo\xeb"), None);
        assert_eq!(identity(&der).as_deref(), Some("Zoë"));
        // "😀" as a surrogate pair, then a lone high surrogate.
        let der = handmade(cn_of(BMP_STRING, &[0xd8, 0x3d, 0xde, 0x00]), None);
        assert_eq!(identity(&der).as_deref(), Some("😀"));
        assert_eq!(
            identity(&handmade(cn_of(BMP_STRING, &[0xd8, 0x3d]), None)).as_deref(),
            None
        );
        assert_eq!(
            identity(&handmade(cn_of(BMP_STRING, &[0, 0x41, 0]), None)).as_deref(),
            None
        );
    }

    #[test]
    fn a_common_name_that_is_not_text_names_no_one() {
        let san = [tlv(DNS_NAME, b"fallback.example")];
        for (tag, value) in [
            (UTF8_STRING, &b"Zo\xc3"[..]),
            (UTF8_STRING, b"admin\0evil"),
            (UTF8_STRING, b"two\nlines"),
            (UTF8_STRING, b""),
            (PRINTABLE_STRING, b"Zo\xeb"),
            (IA5_STRING, b"\x80"),
            (0x1c, b"\0\0\0A"), // UniversalString
            (OCTET_STRING, b"bytes"),
        ] {
            let der = handmade(cn_of(tag, value), Some(&san));
            assert_eq!(identity(&der).as_deref(), None, "{tag:#x} {value:?}");
        }
    }

    #[test]
    fn an_alt_name_that_is_not_text_names_no_one() {
        for names in [
            vec![
                tlv(DNS_NAME, b"bad\xff.example"),
                tlv(DNS_NAME, b"good.example"),
            ],
            vec![tlv(DNS_NAME, b""), tlv(DNS_NAME, b"good.example")],
            vec![tlv(IP_ADDRESS, &[10, 0, 0, 0, 255, 0, 0, 0])],
            vec![tlv(0xa4, &cn_of(UTF8_STRING, b"directory"))],
            vec![],
        ] {
            assert_eq!(identity(&handmade(seq(&[]), Some(&names))).as_deref(), None);
        }
    }

    #[test]
    fn encodings_der_does_not_allow() {
        let good = handmade(cn_of(UTF8_STRING, b"x"), None);
        assert_eq!(identity(&good).as_deref(), Some("x"));
        // Trailing bytes after the certificate.
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(identity(&trailing).as_deref(), None);
        // An indefinite length on the outer SEQUENCE.
        let mut indefinite = vec![SEQUENCE, 0x80];
        indefinite.extend_from_slice(&good[2..]);
        indefinite.extend_from_slice(&[0, 0]);
        assert_eq!(identity(&indefinite).as_deref(), None);
        // A 5-byte length.
        let mut five = vec![SEQUENCE, 0x85, 0, 0, 0, 0];
        five.push(u8::try_from(good.len() - 2).unwrap());
        five.extend_from_slice(&good[2..]);
        assert_eq!(identity(&five).as_deref(), None);
        // A 4-byte length that is not the shortest form is read.
        let mut long = vec![SEQUENCE, 0x84, 0, 0, 0];
        long.push(u8::try_from(good.len() - 2).unwrap());
        long.extend_from_slice(&good[2..]);
        assert_eq!(identity(&long).as_deref(), Some("x"));
        // A length near the top of the range, over what is there.
        assert_eq!(
            identity(&[SEQUENCE, 0x84, 0xff, 0xff, 0xff, 0xff, 0]).as_deref(),
            None
        );
        // A tag number in more than one byte.
        assert_eq!(identity(&[0x3f, 0x81, 0x00, 0x00]).as_deref(), None);
    }

    #[test]
    fn every_truncation_of_a_certificate_is_refused() {
        let der = certificate(&[cn("sensor-17")], vec![dns("x.example")]);
        assert!(der.len() > 256, "long lengths are exercised");
        for end in 0..der.len() {
            assert_eq!(certificate_identity(&der[..end]), None, "{end} bytes");
        }
    }

    /// xorshift64: enough randomness for these loops, the same every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        for _ in 0..20_000 {
            let len = rng.next() % 64;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
            // Half of them start like a certificate.
            if rng.next().is_multiple_of(2) {
                bytes.splice(0..0, [SEQUENCE, 0x81, 0x40, SEQUENCE]);
            }
            assert_eq!(certificate_identity(&bytes), None);
        }
    }

    #[test]
    fn every_single_byte_change_never_panics() {
        let der = certificate(&[org("Acme"), cn("sensor-17")], vec![dns("x.example")]);
        let no_cn = certificate(&[org("Acme")], vec![ip("10.0.0.1"), dns("x.example")]);
        for original in [der, no_cn] {
            let mut bytes = original.clone();
            for at in 0..bytes.len() {
                for value in 0..=u8::MAX {
                    bytes[at] = value;
                    let _ = certificate_identity(&bytes);
                }
                bytes[at] = original[at];
            }
        }
    }
}
