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
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
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

/// What the checks show of a certificate. webpki keeps validity to itself, so these few
/// fields are read from the DER directly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    /// The subject's common name, quoted, or `certificate without a common name`.
    subject: String,
    not_before: DerTime,
    not_after: DerTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DerTime {
    unix: i64,
    /// `YYYY-MM-DD`.
    date: String,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OBJECT_ID: u8 = 0x06;
const EXPLICIT_VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const COMMON_NAME_OID: [u8; 3] = [0x55, 0x04, 0x03];

/// One DER element: its tag, its contents and the bytes after it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let len = rest[..octets]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[octets..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial,
/// signature, issuer, validity SEQUENCE { notBefore, notAfter }, subject, ... }, ... }
fn summarize(der: &[u8]) -> Option<Summary> {
    let Some((SEQUENCE, certificate, _)) = der_element(der) else {
        return None;
    };
    let Some((SEQUENCE, mut tbs, _)) = der_element(certificate) else {
        return None;
    };
    if let Some((EXPLICIT_VERSION, _, rest)) = der_element(tbs) {
        tbs = rest;
    }
    let Some((INTEGER, _, rest)) = der_element(tbs) else {
        return None;
    };
    let Some((SEQUENCE, _signature, rest)) = der_element(rest) else {
        return None;
    };
    let Some((SEQUENCE, _issuer, rest)) = der_element(rest) else {
        return None;
    };
    let Some((SEQUENCE, validity, rest)) = der_element(rest) else {
        return None;
    };
    let Some((SEQUENCE, subject, _)) = der_element(rest) else {
        return None;
    };
    let (before_tag, before, validity) = der_element(validity)?;
    let (after_tag, after, _) = der_element(validity)?;
    Some(Summary {
        subject: common_name(subject).map_or_else(
            || "certificate without a common name".to_string(),
            |cn| format!("{cn:?}"),
        ),
        not_before: der_time(before_tag, before)?,
        not_after: der_time(after_tag, after)?,
    })
}

/// Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
fn common_name(mut name: &[u8]) -> Option<String> {
    while let Some((SET, set, rest)) = der_element(name) {
        name = rest;
        let Some((SEQUENCE, attribute, _)) = der_element(set) else {
            continue;
        };
        let Some((OBJECT_ID, oid, value)) = der_element(attribute) else {
            continue;
        };
        if oid == COMMON_NAME_OID {
            let (_, text, _) = der_element(value)?;
            return Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`, the
/// only forms RFC 5280 allows in certificates.
fn der_time(tag: u8, bytes: &[u8]) -> Option<DerTime> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 12) => {
            let yy = number(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 14) => (number(0..4)?, &text[4..]),
        _ => return None,
    };
    let field = |at: usize| rest.get(at..at + 2)?.parse::<i64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    valid.then(|| DerTime {
        unix: days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
        date: format!("{year:04}-{month:02}-{day:02}"),
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
    }

    #[test]
    fn times_follow_rfc_5280() {
        assert_eq!(der_time(UTC_TIME, b"700101000000Z").unwrap().unix, 0);
        assert_eq!(
            der_time(UTC_TIME, b"491231235959Z").unwrap().date,
            "2049-12-31"
        );
        assert_eq!(
            der_time(UTC_TIME, b"500101000000Z").unwrap().date,
            "1950-01-01"
        );
        assert_eq!(
            der_time(GENERALIZED_TIME, b"20380119031408Z").unwrap().unix,
            2_147_483_648
        );
        for bad in [
            &b"7001010000Z"[..],
            b"701301000000Z",
            b"700101000000",
            b"70010100000\xc3\xa9Z",
        ] {
            assert_eq!(der_time(UTC_TIME, bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn summarize_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = summarize(&bytes);
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
