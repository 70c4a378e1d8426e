//! Certificate checks in the style of a Meeting Server's own (seed 003):
//! `SUCCESS: <Name> Key and certificate pair match`,
//! `SUCCESS: <Name> full chain of certificates verifies correctly`, and one line per
//! trust bundle with its certificate count and earliest expiry. Key files are read to
//! compare public keys; nothing of a key is ever printed.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, InconsistentKeys, RootCertStore};
use x509_cert::certificate::{Raw, Version};
use x509_cert::der::oid::db::rfc4519::COMMON_NAME;
use x509_cert::der::{self, Decode, Reader, SliceReader, TagMode, TagNumber};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned as AlgorithmIdentifier;
use x509_cert::time::{Time, Validity};

use super::{CheckLine, fail, ok};

/// What the certificate is for: the chain is verified for that usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Presented to a server (Meeting Server mutual TLS).
    Client,
    /// Presented to clients (the xAPI's TLS listener); a self-signed one is accepted
    /// since its clients are told to trust it directly.
    Server,
}

/// A configured certificate chain and its private key, and where to find the roots.
#[derive(Debug)]
pub struct KeyPair<'a> {
    /// As the output names it: `Meeting Server client`, `xAPI HTTPS`.
    pub name: &'static str,
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    pub usage: Usage,
    /// The trust the chain must reach, for messages (`cloud.extra_ca_files, platform roots`).
    pub trust_label: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The pair-match line, then (when the certificate could be read) the chain line.
pub fn key_pair_lines(pair: &KeyPair<'_>, roots: &RootCertStore) -> Vec<CheckLine> {
    let name = pair.name;
    let chain = match read_certificates(pair.cert_file) {
        Ok(chain) => chain,
        Err(reason) => {
            return vec![fail(format!(
                "{name} certificate file {}: {reason}",
                pair.cert_file.display()
            ))];
        }
    };
    vec![
        pair_line(pair, &chain),
        chain_line(pair, &chain, roots, UnixTime::now()),
    ]
}

fn pair_line(pair: &KeyPair<'_>, chain: &[CertificateDer<'static>]) -> CheckLine {
    let name = pair.name;
    let key_file = pair.key_file.display();
    let key = match std::fs::read(pair.key_file) {
        // Only the kind of problem is shown: a PEM parser's message could quote key bytes.
        Ok(bytes) => match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(key) => key,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                return fail(format!("{name} key file {key_file} holds no private key"));
            }
            Err(_) => {
                return fail(format!(
                    "{name} key file {key_file} is not a valid PEM private key"
                ));
            }
        },
        Err(e) => return fail(format!("{name} key file {key_file}: cannot read: {e}")),
    };
    let signing_key = match provider().key_provider.load_private_key(key) {
        Ok(key) => key,
        Err(_) => {
            return fail(format!(
                "{name} key file {key_file} holds a key type roomd cannot use \
                 (RSA, ECDSA P-256/P-384 or Ed25519 expected)"
            ));
        }
    };
    match CertifiedKey::new(chain.to_vec(), signing_key).keys_match() {
        Ok(()) => ok(format!("{name} Key and certificate pair match")),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => fail(format!(
            "{name} Key and certificate pair do not match: the first certificate of {} \
             is not for the key in {key_file}",
            pair.cert_file.display()
        )),
        Err(e) => fail(format!(
            "{name} Key and certificate pair cannot be compared: {e}"
        )),
    }
}

fn chain_line(
    pair: &KeyPair<'_>,
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    now: UnixTime,
) -> CheckLine {
    let name = pair.name;
    let (leaf, intermediates) = chain.split_first().expect("read_certificates: not empty");
    let verified = match pair.usage {
        Usage::Client => verify_client(leaf, intermediates, roots, now),
        Usage::Server => verify_server(leaf, intermediates, roots, now),
    };
    match verified {
        Ok(()) => ok(format!(
            "{name} full chain of certificates verifies correctly"
        )),
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
            if pair.usage == Usage::Server && is_self_signed(leaf, now) =>
        {
            ok(format!(
                "{name} certificate is self-signed: no chain to verify, clients must trust it directly"
            ))
        }
        Err(e) => fail(format!(
            "{name} full chain of certificates does not verify: {}",
            chain_problem(&e, leaf, &pair.trust_label)
        )),
    }
}

fn verify_client(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map(|_| ())
}

fn verify_server(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(leaf)?;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        now,
        provider().signature_verification_algorithms.all,
    )
}

/// True when `leaf` verifies with itself as the only trust anchor.
fn is_self_signed(leaf: &CertificateDer<'_>, now: UnixTime) -> bool {
    let mut own = RootCertStore::empty();
    own.add(leaf.clone().into_owned()).is_ok() && verify_server(leaf, &[], &own, now).is_ok()
}

/// The reason a technician can act on, instead of rustls' enum names.
fn chain_problem(error: &rustls::Error, leaf: &CertificateDer<'_>, trust: &str) -> String {
    let subject = summarize(leaf)
        .map(|s| s.subject)
        .unwrap_or_else(|| "the certificate".into());
    match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer => {
                format!("{subject} is not signed by a CA in the trust store ({trust})")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                match summarize(leaf) {
                    Some(s) => format!("{subject} expired on {}", s.not_after.date),
                    None => format!("{subject} (or a CA of its chain) has expired"),
                }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                match summarize(leaf) {
                    Some(s) => format!("{subject} is not valid before {}", s.not_before.date),
                    None => format!("{subject} is not valid yet"),
                }
            }
            CertificateError::BadSignature => {
                format!("a signature in the chain of {subject} is wrong")
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!("{subject} is not issued for this use (extended key usage)")
            }
            other => format!("{subject}: {other:?}"),
        },
        other => other.to_string(),
    }
}

/// Every certificate of a PEM file; an error names what is wrong with the file.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    Ok(certs)
}

/// The roots a configured chain must reach: the platform set plus every readable CA file
/// (the unreadable ones already have their FAIL line).
pub fn roots_with(files: &[&Path]) -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for file in files {
        if let Ok(certs) = read_certificates(file) {
            roots.add_parsable_certificates(certs);
        }
    }
    roots
}

/// `SUCCESS: trust bundle <file> (<key>): 2 certificates, earliest expiry 2027-11-21 ("CA")`,
/// or FAIL naming the unreadable, unusable or expired certificate.
pub fn bundle_line(path: &Path, config_key: &str, now: SystemTime) -> CheckLine {
    let what = format!("trust bundle {} ({config_key})", path.display());
    let certs = match read_certificates(path) {
        Ok(certs) => certs,
        Err(reason) => return fail(format!("{what}: {reason}")),
    };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut summaries = Vec::with_capacity(certs.len());
    for (index, cert) in certs.iter().enumerate() {
        let number = index + 1;
        let Some(summary) = summarize(cert) else {
            return fail(format!(
                "{what}: certificate {number} is not a valid X.509 certificate"
            ));
        };
        if let Err(e) = RootCertStore::empty().add(cert.clone()) {
            return fail(format!(
                "{what}: certificate {number} ({}) cannot be a trust anchor: {e}",
                summary.subject
            ));
        }
        if summary.not_after.unix < now {
            return fail(format!(
                "{what}: certificate {number} ({}) expired on {}",
                summary.subject, summary.not_after.date
            ));
        }
        summaries.push(summary);
    }
    let earliest = summaries
        .iter()
        .min_by_key(|s| s.not_after.unix)
        .expect("read_certificates: not empty");
    let count = match certs.len() {
        1 => "1 certificate".to_string(),
        n => format!("{n} certificates"),
    };
    ok(format!(
        "{what}: {count}, earliest expiry {} ({})",
        earliest.not_after.date, earliest.subject
    ))
}

/// What the checks show of a certificate. webpki keeps validity to itself, so the
/// certificate is read a second time with `x509-cert` for these few fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    /// The subject's common name, quoted, or `certificate without a common name`.
    subject: String,
    not_before: CertTime,
    not_after: CertTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CertTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    unix: u64,
    /// `YYYY-MM-DD`.
    date: String,
}

impl From<Time> for CertTime {
    fn from(time: Time) -> Self {
        let date = time.to_date_time();
        CertTime {
            unix: time.to_unix_duration().as_secs(),
            date: format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
        }
    }
}

/// Subject and validity of one certificate's DER, or None when they cannot be read.
///
/// Only TBSCertificate's fields up to the subject are decoded (x509-cert's types, with der's
/// reader); the rest (key, extensions, signature) is webpki's to judge, as it is when the
/// certificate becomes a trust anchor or part of a chain. A certificate rustls can use is
/// thus never called unreadable because of a part that this summary does not show.
///
/// Times are UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` of a real date and
/// time from 1970 on: x509-cert's lower bound, which webpki's own time checks share (RFC
/// 5280 would read UTCTime 50-69 as 1950-1969). The `Raw` profile (x509-cert's `hazmat`
/// feature) only drops RFC 5280's 20-octet limit on the serial number, which webpki does
/// not enforce either.
fn summarize(der: &[u8]) -> Option<Summary> {
    let (validity, subject) = SliceReader::new(der)
        .ok()?
        .sequence(|certificate| {
            let fields = certificate.sequence(|tbs| {
                tbs.context_specific::<Version>(TagNumber(0), TagMode::Explicit)?;
                SerialNumber::<Raw>::decode(tbs)?;
                AlgorithmIdentifier::decode(tbs)?;
                Name::decode(tbs)?;
                let validity = Validity::<Raw>::decode(tbs)?;
                let subject = Name::decode(tbs)?;
                tbs.read_slice(tbs.remaining_len())?;
                Ok::<_, der::Error>((validity, subject))
            })?;
            certificate.read_slice(certificate.remaining_len())?;
            Ok::<_, der::Error>(fields)
        })
        .ok()?;
    Some(Summary {
        subject: common_name(&subject).map_or_else(
            || "certificate without a common name".to_string(),
            |cn| format!("{cn:?}"),
        ),
        not_before: validity.not_before.into(),
        not_after: validity.not_after.into(),
    })
}

/// The first commonName of the name. Its bytes are shown as UTF-8 whatever the string type
/// (UTF8String, PrintableString and IA5String, the ones CAs use, all are).
fn common_name(name: &Name) -> Option<String> {
    name.iter()
        .find(|attribute| attribute.oid == COMMON_NAME)
        .map(|attribute| String::from_utf8_lossy(attribute.value.value()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Outcome;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair as RcKey, date_time_ymd};

    struct Ca {
        cert: rcgen::Certificate,
        key: RcKey,
    }

    fn ca(name: &str) -> Ca {
        dated_ca(name, (1975, 1, 1), (2040, 1, 2))
    }

    fn dated_ca(name: &str, from: (i32, u8, u8), until: (i32, u8, u8)) -> Ca {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(until.0, until.1, until.2);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn leaf(name: &str, signer: &Ca) -> (rcgen::Certificate, RcKey) {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(vec!["device.example".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &signer.cert, &signer.key).unwrap();
        (cert, key)
    }

    fn roots(cas: &[&Ca]) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca.cert.der().clone()).unwrap();
        }
        roots
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn texts(lines: &[CheckLine]) -> Vec<(Outcome, &str)> {
        lines.iter().map(|l| (l.outcome, l.text.as_str())).collect()
    }

    #[test]
    fn validity_and_subject_are_read_from_the_der() {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Room CA");
        params.not_before = date_time_ymd(1999, 12, 31);
        params.not_after = date_time_ymd(2051, 2, 28);
        let cert = params.self_signed(&key).unwrap();
        let summary = summarize(cert.der()).unwrap();
        assert_eq!(summary.subject, "\"Room CA\"");
        assert_eq!(summary.not_before.date, "1999-12-31");
        assert_eq!(summary.not_before.unix, 946_598_400);
        assert_eq!(summary.not_after.date, "2051-02-28");
        assert_eq!(summary.not_after.unix, 2_561_155_200);

        // What follows the subject (here the key's algorithm, id-ecPublicKey, made an empty
        // OID) is webpki's to judge, not the summary's.
        let ec_public_key = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let damaged = patched(cert.der(), &ec_public_key, &[0x06, 0x00]);
        assert_eq!(summarize(&damaged), Some(summary));
    }

    /// A self-signed certificate valid from `not_before` until `not_after`, as DER.
    fn dated_der(
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
        after_midnight: std::time::Duration,
    ) -> Vec<u8> {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Dated CA");
        params.not_before = date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = date_time_ymd(not_after.0, not_after.1, not_after.2) + after_midnight;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// `der` with its one occurrence of `from` replaced by `to` (same length).
    fn patched(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = der
            .windows(from.len())
            .position(|window| window == from)
            .unwrap();
        let mut der = der.to_vec();
        der[at..at + to.len()].copy_from_slice(to);
        der
    }

    #[test]
    fn times_follow_rfc_5280() {
        let midnight = std::time::Duration::ZERO;
        // UTCTime up to 2049, GeneralizedTime from 2050 (rcgen writes what RFC 5280 asks).
        let der = dated_der((1970, 1, 1), (2049, 12, 31), midnight);
        assert!(der.windows(13).any(|w| w == b"700101000000Z"));
        let summary = summarize(&der).unwrap();
        assert_eq!(summary.not_before.unix, 0);
        assert_eq!(summary.not_before.date, "1970-01-01");
        assert_eq!(summary.not_after.date, "2049-12-31");
        let der = dated_der(
            (2000, 2, 29),
            (2038, 1, 19),
            std::time::Duration::from_secs(3 * 3600 + 14 * 60 + 8),
        );
        assert_eq!(summarize(&der).unwrap().not_after.unix, 2_147_483_648);
        let der = dated_der((2000, 2, 29), (2050, 1, 1), midnight);
        assert!(der.windows(15).any(|w| w == b"20500101000000Z"));
        let summary = summarize(&der).unwrap();
        assert_eq!(summary.not_before.date, "2000-02-29");
        assert_eq!(summary.not_after.date, "2050-01-01");
        assert_eq!(summary.not_after.unix, 2_524_608_000);

        // Not a time of a certificate: a 13th month, a 30th of February, no `Z`, a letter.
        let der = dated_der((1970, 1, 1), (2049, 12, 31), midnight);
        for bad in [
            &b"701301000000Z"[..],
            b"700230000000Z",
            b"7001010000000",
            b"70010100000aZ",
        ] {
            assert_eq!(
                summarize(&patched(&der, b"700101000000Z", bad)),
                None,
                "{bad:?}"
            );
        }
        // RFC 5280 reads UTCTime 50-69 as 1950-1969; x509-cert (like webpki's time checks)
        // starts at 1970, so such a certificate is not read.
        let der = dated_der((1969, 12, 31), (2049, 12, 31), midnight);
        assert!(der.windows(13).any(|w| w == b"691231000000Z"));
        assert_eq!(summarize(&der), None);
    }

    #[test]
    fn the_subject_is_the_first_common_name_and_may_be_missing() {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Rooms Inc");
        let cert = params.clone().self_signed(&key).unwrap();
        assert_eq!(
            summarize(cert.der()).unwrap().subject,
            "certificate without a common name"
        );
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Zürich \"Room\" CA");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            summarize(cert.der()).unwrap().subject,
            "\"Zürich \\\"Room\\\" CA\""
        );
    }

    #[test]
    fn a_serial_longer_than_rfc_5280_allows_is_still_read() {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Long Serial CA");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x5a; 32]));
        let cert = params.self_signed(&key).unwrap();
        assert!(cert.der().windows(34).any(|w| w[..2] == [0x02, 32]));
        // webpki takes it as a trust anchor, so the summary must read it too.
        RootCertStore::empty().add(cert.der().clone()).unwrap();
        assert_eq!(summarize(cert.der()).unwrap().subject, "\"Long Serial CA\"");
    }

    proptest::proptest! {
        #[test]
        fn summarize_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = summarize(&bytes);
        }

        /// A real certificate with bytes changed and cut short: read or refused, never a
        /// panic, and what is read has dates of the form the output promises.
        #[test]
        fn summarize_survives_damaged_certificates(
            changes in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..8,
            ),
            keep in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let mut der = DER
                .get_or_init(|| dated_der((1999, 12, 31), (2051, 2, 28), std::time::Duration::ZERO))
                .clone();
            for (at, byte) in changes {
                let at = at.index(der.len());
                der[at] = byte;
            }
            for bytes in [&der[..], &der[..keep.index(der.len())]] {
                if let Some(summary) = summarize(bytes) {
                    for time in [summary.not_before, summary.not_after] {
                        proptest::prop_assert_eq!(time.date.len(), 10, "{:?}", time);
                    }
                }
            }
        }
    }

    #[test]
    fn a_matching_pair_and_a_chain_to_a_known_ca_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("Room CA");
        let (cert, key) = leaf("room client", &ca);
        let pair = KeyPair {
            name: "Meeting Server client",
            cert_file: &write(dir.path(), "client.pem", &cert.pem()),
            key_file: &write(dir.path(), "client-key.pem", &key.serialize_pem()),
            usage: Usage::Client,
            trust_label: "meeting_server.ca_file".into(),
        };
        assert_eq!(
            texts(&key_pair_lines(&pair, &roots(&[&ca]))),
            [
                (
                    Outcome::Success,
                    "Meeting Server client Key and certificate pair match"
                ),
                (
                    Outcome::Success,
                    "Meeting Server client full chain of certificates verifies correctly"
                ),
            ]
        );
    }

    #[test]
    fn another_key_and_an_unknown_ca_fail() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, stranger) = (ca("Room CA"), ca("Stranger CA"));
        let (cert, _) = leaf("room client", &stranger);
        let other_key = RcKey::generate().unwrap();
        let cert_file = write(dir.path(), "client.pem", &cert.pem());
        let key_file = write(dir.path(), "other-key.pem", &other_key.serialize_pem());
        let pair = KeyPair {
            name: "Meeting Server client",
            cert_file: &cert_file,
            key_file: &key_file,
            usage: Usage::Client,
            trust_label: "meeting_server.ca_file".into(),
        };
        let lines = key_pair_lines(&pair, &roots(&[&ca]));
        assert_eq!(
            texts(&lines),
            [
                (
                    Outcome::Fail,
                    format!(
                        "Meeting Server client Key and certificate pair do not match: the first \
                         certificate of {} is not for the key in {}",
                        cert_file.display(),
                        key_file.display()
                    )
                    .as_str()
                ),
                (
                    Outcome::Fail,
                    "Meeting Server client full chain of certificates does not verify: \
                     \"room client\" is not signed by a CA in the trust store (meeting_server.ca_file)"
                ),
            ]
        );
        // Not a line of the key file reaches the output.
        let key_body = other_key.serialize_pem();
        let secret_line = key_body.lines().nth(1).unwrap();
        assert!(lines.iter().all(|l| !l.text.contains(secret_line)));
    }

    #[test]
    fn an_intermediate_in_the_file_completes_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let root = ca("Root CA");
        let intermediate_key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Issuing CA");
        let intermediate = Ca {
            cert: params
                .signed_by(&intermediate_key, &root.cert, &root.key)
                .unwrap(),
            key: intermediate_key,
        };
        let (cert, key) = leaf("room client", &intermediate);
        let full_chain = format!("{}{}", cert.pem(), intermediate.cert.pem());
        let only_leaf = write(dir.path(), "leaf.pem", &cert.pem());
        let mut pair = KeyPair {
            name: "C2W",
            cert_file: &write(dir.path(), "chain.pem", &full_chain),
            key_file: &write(dir.path(), "key.pem", &key.serialize_pem()),
            usage: Usage::Client,
            trust_label: "x".into(),
        };
        let lines = key_pair_lines(&pair, &roots(&[&root]));
        assert_eq!(lines[1].outcome, Outcome::Success, "{lines:?}");
        pair.cert_file = &only_leaf;
        let lines = key_pair_lines(&pair, &roots(&[&root]));
        assert_eq!(lines[0].outcome, Outcome::Success, "{lines:?}");
        assert_eq!(lines[1].outcome, Outcome::Fail, "{lines:?}");
    }

    #[test]
    fn a_self_signed_server_certificate_is_accepted_a_client_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["room.local".into()]).unwrap();
        let cert_file = write(dir.path(), "xapi.pem", &certified.cert.pem());
        let key_file = write(
            dir.path(),
            "xapi-key.pem",
            &certified.key_pair.serialize_pem(),
        );
        let mut pair = KeyPair {
            name: "xAPI HTTPS",
            cert_file: &cert_file,
            key_file: &key_file,
            usage: Usage::Server,
            trust_label: "platform roots".into(),
        };
        let lines = key_pair_lines(&pair, &roots_with(&[]));
        assert_eq!(
            texts(&lines)[1],
            (
                Outcome::Success,
                "xAPI HTTPS certificate is self-signed: no chain to verify, clients must trust it directly"
            )
        );
        pair.usage = Usage::Client;
        assert_eq!(
            key_pair_lines(&pair, &roots_with(&[]))[1].outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn unreadable_files_are_named_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = write(
            dir.path(),
            "garbage.pem",
            "-----BEGIN PRIVATE KEY-----\n!!\n",
        );
        let ca = ca("Room CA");
        let (cert, _) = leaf("room client", &ca);
        let cert_file = write(dir.path(), "client.pem", &cert.pem());
        let mut pair = KeyPair {
            name: "Meeting Server client",
            cert_file: &missing,
            key_file: &garbage,
            usage: Usage::Client,
            trust_label: "x".into(),
        };
        let lines = key_pair_lines(&pair, &roots(&[&ca]));
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].text.starts_with(&format!(
                "Meeting Server client certificate file {}: cannot read: ",
                missing.display()
            )),
            "{lines:?}"
        );
        pair.cert_file = &cert_file;
        let lines = key_pair_lines(&pair, &roots(&[&ca]));
        assert_eq!(
            lines[0].text,
            format!(
                "Meeting Server client key file {} is not a valid PEM private key",
                garbage.display()
            )
        );
    }

    #[test]
    fn bundles_report_count_and_earliest_expiry_and_fail_when_expired() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let (a, b) = (ca("CA A"), ca("CA B"));
        let early = dated_ca("Early CA", (2020, 1, 1), (2039, 6, 1));
        let bundle = write(
            dir.path(),
            "bundle.pem",
            &format!("{}{}{}", a.cert.pem(), early.cert.pem(), b.cert.pem()),
        );
        let line = bundle_line(&bundle, "cloud.extra_ca_files", now);
        assert_eq!(
            (line.outcome, line.text.as_str()),
            (
                Outcome::Success,
                format!(
                    "trust bundle {} (cloud.extra_ca_files): 3 certificates, earliest expiry 2039-06-01 (\"Early CA\")",
                    bundle.display()
                )
                .as_str()
            )
        );

        let old = dated_ca("Old CA", (2000, 1, 1), (2001, 1, 1));
        let expired = write(
            dir.path(),
            "old.pem",
            &format!("{}{}", a.cert.pem(), old.cert.pem()),
        );
        let line = bundle_line(&expired, "meeting_server.ca_file", now);
        assert_eq!(line.outcome, Outcome::Fail);
        assert_eq!(
            line.text,
            format!(
                "trust bundle {} (meeting_server.ca_file): certificate 2 (\"Old CA\") expired on 2001-01-01",
                expired.display()
            )
        );

        let empty = write(dir.path(), "empty.pem", "nothing here\n");
        assert_eq!(
            bundle_line(&empty, "cloud.extra_ca_files", now).text,
            format!(
                "trust bundle {} (cloud.extra_ca_files): holds no certificate",
                empty.display()
            )
        );
        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let line = bundle_line(&broken, "cloud.extra_ca_files", now);
        assert_eq!(line.outcome, Outcome::Fail, "{line:?}");
    }
}
