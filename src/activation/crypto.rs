//! Activation crypto (wire profile §1, steps 3–5): the client side of SRP-6a and the
//! encrypt-then-MAC envelope of `oauthData` / `serviceData`.
//!
//! - SRP-6a per RFC 5054 with the RFC's 3072-bit group (Appendix A, g = 5) and SHA-256,
//!   computed here on `num-bigint`: k = H(N | PAD(g)), x = H(s | H(I ":" P)), A = g^a mod N,
//!   u = H(PAD(A) | PAD(B)), S = (B − k·g^x)^(a + u·x) mod N, PAD to len(N) = 384 bytes,
//!   with I = the activationId and P = the last 8 digits of the activation code.
//!   `srpS`, `srpB` and `srpA` are base64 (standard alphabet, padded) of big-endian bytes;
//!   A is sent as its minimal big-endian bytes.
//! - K = SHA-256(S), S as minimal big-endian bytes. The two keys are
//!   HKDF-SHA256(ikm = K, no salt, info = `roomd-activation-enc` / `roomd-activation-mac`),
//!   32 bytes each.
//! - Envelope: `data` = base64(nonce(12) ‖ AES-256-GCM(enc key, nonce, plaintext, no AAD)),
//!   `hmac` = base64(HMAC-SHA256(mac key, the ASCII of `data` as sent)). [`open`] checks the
//!   HMAC in constant time before it decodes or decrypts anything: a matching HMAC is what
//!   proves the server knew this activation code's verifier.
//!
//! Every outside input is bounded ([`MAX_FIELD_LEN`]) and every failure is a named
//! [`CryptoError`]; nothing here panics on any input.

use std::fmt;
use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::secret::{REDACTED, Secret};

/// The longest base64 text accepted in any field (`srpS`, `srpB`, `serviceData`,
/// `serviceDataHMAC`): 1 MiB.
pub const MAX_FIELD_LEN: usize = 1 << 20;
/// Bytes of the 3072-bit modulus N.
pub const GROUP_LEN: usize = 384;
/// N of RFC 5054 Appendix A's 3072-bit group (RFC 3526 group 15), big-endian hex.
pub const N_3072_HEX: &str = "\
    FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
    020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
    4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
    EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05\
    98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB\
    9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
    E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718\
    3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33\
    A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7\
    ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864\
    D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2\
    08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";
/// g of the 3072-bit group.
pub const G_3072: u32 = 5;
/// Bytes of the random private value `a` that [`srp_client`] draws.
const PRIVATE_LEN: usize = 32;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const INFO_ENC: &[u8] = b"roomd-activation-enc";
const INFO_MAC: &[u8] = b"roomd-activation-mac";

/// What was wrong with an SRP value or an envelope. No variant carries secret material.
#[derive(Debug, Clone, displaydoc::Display, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// {field} is {len} bytes long; base64 fields are limited to 1 MiB
    TooLong { field: &'static str, len: usize },
    /// {field} is not valid base64 (standard alphabet, with padding)
    BadBase64 { field: &'static str },
    /// the server's SRP value is illegal: {reason}
    IllegalServerValue { reason: &'static str },
    /// the SRP private value `a` must be 1 to 384 bytes and not zero
    BadPrivateValue,
    /// serviceDataHMAC does not verify: the server does not know this activation code's verifier
    BadHmac,
    /// serviceData holds {len} bytes after base64 decoding; at least 28 are needed (12-byte nonce and 16-byte tag)
    TooShort { len: usize },
    /// serviceData has a valid HMAC but does not decrypt with the session's key (AES-256-GCM tag mismatch)
    Decrypt,
}

/// The two session keys derived from the SRP premaster secret. They never print and are
/// wiped when dropped.
pub struct ActivationKeys {
    enc: [u8; KEY_LEN],
    mac: [u8; KEY_LEN],
}

impl fmt::Debug for ActivationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationKeys")
            .field("enc", &format_args!("{REDACTED}"))
            .field("mac", &format_args!("{REDACTED}"))
            .finish()
    }
}

impl Drop for ActivationKeys {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.mac.zeroize();
    }
}

/// The client's answer to `srp/init`: A for the `srpA` field and the session keys.
#[derive(Debug)]
pub struct SrpClientStep {
    /// A = g^a mod N, base64 of its minimal big-endian bytes (public: sent on the wire).
    pub a_pub_b64: String,
    pub keys: ActivationKeys,
}

/// Client side of SRP-6a for the server's salt and B; returns A and the derived keys.
///
/// `a` is 32 bytes from the operating system's random source.
pub fn srp_client(
    activation_id: &str,
    password: &Secret<String>,
    salt_b64: &str,
    b_pub_b64: &str,
) -> Result<SrpClientStep, CryptoError> {
    let mut a = [0u8; PRIVATE_LEN];
    os_random(&mut a);
    let step = srp_client_with_private(activation_id, password, salt_b64, b_pub_b64, &a);
    a.zeroize();
    step
}

/// Same with a fixed private value `a` (tests, benchmarks).
///
/// `a` is big-endian, 1 to 384 bytes, not zero.
pub fn srp_client_with_private(
    activation_id: &str,
    password: &Secret<String>,
    salt_b64: &str,
    b_pub_b64: &str,
    a: &[u8],
) -> Result<SrpClientStep, CryptoError> {
    let salt = decode_field("srpS", salt_b64)?;
    let b_pub = decode_field("srpB", b_pub_b64)?;
    if a.is_empty() || a.len() > GROUP_LEN || is_zero(a) {
        return Err(CryptoError::BadPrivateValue);
    }
    // Leading zero bytes do not change B's value; u pads B to |N| itself.
    let b_pub = strip_leading_zeros(&b_pub);
    check_b_pub(b_pub)?;

    let exchange = client_exchange::<Sha256>(
        group_3072(),
        activation_id.as_bytes(),
        password.expose().as_bytes(),
        &salt,
        &BigUint::from_bytes_be(a),
        &BigUint::from_bytes_be(b_pub),
    )?;
    // S = (B - k·g^x)^(a + u·x) is 0 or 1 only when B - k·v is 0 or 1, which an honest
    // server (B = k·v + g^b) never sends.
    if exchange.premaster.bits() <= 1 {
        return Err(CryptoError::IllegalServerValue {
            reason: "B makes the premaster secret 0 or 1",
        });
    }
    let mut premaster = exchange.premaster.to_bytes_be();
    let keys = derive_keys(&premaster);
    premaster.zeroize();
    Ok(SrpClientStep {
        a_pub_b64: STANDARD.encode(exchange.a_pub.to_bytes_be()),
        keys,
    })
}

/// An SRP group: the safe prime N, the generator g, and len(N) in bytes, the width that
/// PAD() fills to.
#[derive(Debug)]
struct SrpGroup {
    n: BigUint,
    g: BigUint,
    len: usize,
}

impl SrpGroup {
    fn new(n: BigUint, g: u32) -> Self {
        let len = n.bits().div_ceil(8) as usize;
        Self {
            n,
            g: BigUint::from(g),
            len,
        }
    }

    /// g^e mod N.
    fn g_pow(&self, e: &BigUint) -> BigUint {
        self.g.modpow(e, &self.n)
    }

    /// PAD(value): big-endian, zero-filled on the left to len(N) bytes. Every value
    /// padded here (N, g, A, B) is at most N, so nothing is ever cut.
    fn pad(&self, value: &BigUint) -> Vec<u8> {
        let bytes = value.to_bytes_be();
        let mut padded = vec![0; self.len.saturating_sub(bytes.len())];
        padded.extend_from_slice(&bytes);
        padded
    }
}

/// RFC 5054 Appendix A's 3072-bit group, g = 5: the one activation uses.
fn group_3072() -> &'static SrpGroup {
    static GROUP: OnceLock<SrpGroup> = OnceLock::new();
    GROUP.get_or_init(|| {
        let n =
            BigUint::parse_bytes(N_3072_HEX.as_bytes(), 16).expect("N_3072_HEX is a hex constant");
        SrpGroup::new(n, G_3072)
    })
}

/// A hash output as an unsigned big-endian integer.
fn hash_int<D: Digest>(parts: &[&[u8]]) -> BigUint {
    let mut hasher = D::new();
    for part in parts {
        hasher.update(part);
    }
    BigUint::from_bytes_be(&hasher.finalize())
}

/// k = H(N | PAD(g)).
fn compute_k<D: Digest>(group: &SrpGroup) -> BigUint {
    hash_int::<D>(&[&group.pad(&group.n), &group.pad(&group.g)])
}

/// x = H(s | H(I ":" P)).
fn compute_x<D: Digest>(salt: &[u8], identity: &[u8], password: &[u8]) -> BigUint {
    let mut inner = D::new();
    inner.update(identity);
    inner.update(b":");
    inner.update(password);
    let mut identity_hash = inner.finalize();
    let x = hash_int::<D>(&[salt, &identity_hash]);
    identity_hash.as_mut_slice().zeroize();
    x
}

/// u = H(PAD(A) | PAD(B)).
fn compute_u<D: Digest>(group: &SrpGroup, a_pub: &BigUint, b_pub: &BigUint) -> BigUint {
    hash_int::<D>(&[&group.pad(a_pub), &group.pad(b_pub)])
}

/// What the client computes in one SRP-6a exchange.
#[derive(Debug)]
struct ClientExchange {
    /// A = g^a mod N.
    a_pub: BigUint,
    /// S = (B − k·g^x)^(a + u·x) mod N.
    premaster: BigUint,
}

/// The client side of SRP-6a (RFC 5054 §2.6) in any group with any hash: A and S for the
/// private value `a` and the server's B.
///
/// Only B ≡ 0 (mod N) is refused here (RFC 5054 §2.5.4); [`srp_client_with_private`]
/// checks B's bounds first.
///
/// Not constant time: the exponentiations are num-bigint's variable-time `modpow`. That is
/// accepted here because the client's private values are one-shot: `a` is drawn fresh for
/// every attempt and never reused, and x = H(s | H(I ":" P)) comes from an activation code
/// that is only used while the device activates, so a timing observer sees very few
/// exponentiations per secret. (num-bigint values cannot be wiped either; the byte
/// copies of secrets made in this module are.)
fn client_exchange<D: Digest>(
    group: &SrpGroup,
    identity: &[u8],
    password: &[u8],
    salt: &[u8],
    a: &BigUint,
    b_pub: &BigUint,
) -> Result<ClientExchange, CryptoError> {
    let n = &group.n;
    let b_pub = b_pub % n;
    if b_pub.bits() == 0 {
        return Err(CryptoError::IllegalServerValue {
            reason: "B mod N is zero",
        });
    }
    let a_pub = group.g_pow(a);
    let u = compute_u::<D>(group, &a_pub, &b_pub);
    let k = compute_k::<D>(group);
    let x = compute_x::<D>(salt, identity, password);
    // B − k·g^x, kept in [0, N): B + N − (k·g^x mod N) is never negative.
    let k_v = (k * group.g_pow(&x)) % n;
    let base = (b_pub + n - k_v) % n;
    let exponent = a + u * x;
    Ok(ClientExchange {
        a_pub,
        premaster: base.modpow(&exponent, n),
    })
}

/// K = SHA-256(S); enc and mac keys = HKDF-SHA256(ikm = K, no salt,
/// info = `roomd-activation-enc` / `roomd-activation-mac`), 32 bytes each.
///
/// `premaster_s_minimal_be` is S as big-endian bytes without leading zeros.
pub fn derive_keys(premaster_s_minimal_be: &[u8]) -> ActivationKeys {
    let mut k: [u8; 32] = Sha256::digest(premaster_s_minimal_be).into();
    let hkdf = Hkdf::<Sha256>::new(None, &k);
    k.zeroize();
    let mut keys = ActivationKeys {
        enc: [0; KEY_LEN],
        mac: [0; KEY_LEN],
    };
    hkdf.expand(INFO_ENC, &mut keys.enc)
        .expect("32 bytes is within HKDF-SHA256's 8160-byte output limit");
    hkdf.expand(INFO_MAC, &mut keys.mac)
        .expect("32 bytes is within HKDF-SHA256's 8160-byte output limit");
    keys
}

/// Encrypt + MAC: returns (data_b64, hmac_b64).
pub fn seal(keys: &ActivationKeys, plaintext: &[u8]) -> (String, String) {
    let mut nonce = [0u8; NONCE_LEN];
    os_random(&mut nonce);
    seal_with_nonce(keys, nonce, plaintext)
}

fn seal_with_nonce(
    keys: &ActivationKeys,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> (String, String) {
    let sealed = cipher(keys)
        .encrypt(&Nonce::from(nonce), plaintext)
        .expect("AES-256-GCM encrypts messages up to 64 GiB");
    let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
    data.extend_from_slice(&nonce);
    data.extend_from_slice(&sealed);
    let data_b64 = STANDARD.encode(&data);
    let tag = mac(keys).chain_update(data_b64.as_bytes()).finalize();
    let hmac_b64 = STANDARD.encode(tag.into_bytes());
    (data_b64, hmac_b64)
}

/// Verify the HMAC, then decrypt.
///
/// The HMAC is checked (constant time) over the base64 text exactly as received, before
/// `data_b64` is decoded or decrypted.
pub fn open(keys: &ActivationKeys, data_b64: &str, hmac_b64: &str) -> Result<Vec<u8>, CryptoError> {
    check_len("serviceData", data_b64)?;
    let tag = decode_field("serviceDataHMAC", hmac_b64)?;
    mac(keys)
        .chain_update(data_b64.as_bytes())
        .verify_slice(&tag)
        .map_err(|_| CryptoError::BadHmac)?;

    let data = decode_field("serviceData", data_b64)?;
    let too_short = CryptoError::TooShort { len: data.len() };
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(too_short);
    }
    let Some((nonce, sealed)) = data.split_first_chunk::<NONCE_LEN>() else {
        return Err(too_short);
    };
    cipher(keys)
        .decrypt(&Nonce::from(*nonce), sealed)
        .map_err(|_| CryptoError::Decrypt)
}

/// Fills `bytes` from the operating system's random source (getrandom); like rand 0.8's
/// `OsRng::fill_bytes`, a failing source is a panic, never weaker randomness.
fn os_random(bytes: &mut [u8]) {
    OsRng
        .try_fill_bytes(bytes)
        .expect("the operating system's random source failed");
}

fn cipher(keys: &ActivationKeys) -> Aes256Gcm {
    Aes256Gcm::new(&keys.enc.into())
}

fn mac(keys: &ActivationKeys) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(&keys.mac).expect("HMAC takes keys of any length")
}

fn check_len(field: &'static str, text: &str) -> Result<(), CryptoError> {
    if text.len() > MAX_FIELD_LEN {
        return Err(CryptoError::TooLong {
            field,
            len: text.len(),
        });
    }
    Ok(())
}

fn decode_field(field: &'static str, text: &str) -> Result<Vec<u8>, CryptoError> {
    check_len(field, text)?;
    STANDARD
        .decode(text)
        .map_err(|_| CryptoError::BadBase64 { field })
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&byte| byte == 0)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[first..]
}

/// RFC 5054 §2.5.4: the client aborts when B mod N is zero. B is also required to be
/// below N (the server sends B = (k·v + g^b) mod N), which keeps PAD(B) well defined.
fn check_b_pub(b_pub: &[u8]) -> Result<(), CryptoError> {
    if b_pub.is_empty() {
        return Err(CryptoError::IllegalServerValue {
            reason: "B is zero",
        });
    }
    if b_pub.len() > GROUP_LEN {
        return Err(CryptoError::IllegalServerValue {
            reason: "B is longer than the 3072-bit modulus",
        });
    }
    if BigUint::from_bytes_be(b_pub) >= group_3072().n {
        return Err(CryptoError::IllegalServerValue {
            reason: "B is not below N",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret<String> {
        Secret::new(text.to_string())
    }

    fn unhex(text: &str) -> Vec<u8> {
        let text: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        text.chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    // RFC 5054 Appendix B (I, P, s, a, b and the expected values, 1024-bit group, SHA-1).
    // The 1024-bit group of Appendix A, g = 2: only here for the RFC's vectors.
    const RFC_N_1024: &str = "
        EEAF0AB9 ADB38DD6 9C33F80A FA8FC5E8 60726187 75FF3C0B 9EA2314C
        9C256576 D674DF74 96EA81D3 383B4813 D692C6E0 E0D5D8E2 50B98BE4
        8E495C1D 6089DAD1 5DC7D7B4 6154D6B6 CE8EF4AD 69B15D49 82559B29
        7BCF1885 C529F566 660E57EC 68EDBC3C 05726CC0 2FD4CBF4 976EAA9A
        FD5138FE 8376435B 9FC61D2F C0EB06E3";
    const RFC_S: &str = "BEB25379 D1A8581E B5A72767 3A2441EE";
    const RFC_A_PRIV: &str =
        "60975527 035CF2AD 1989806F 0407210B C81EDC04 E2762A56 AFD529DD DA2D4393";
    const RFC_B_PRIV: &str =
        "E487CB59 D31AC550 471E81F0 0F6928E0 1DDA08E9 74A004F4 9E61F5D1 05284D20";

    #[test]
    fn rfc5054_appendix_b_vectors_with_the_1024_bit_group_and_sha1() {
        use sha1::Sha1;

        let group = SrpGroup::new(BigUint::from_bytes_be(&unhex(RFC_N_1024)), 2);
        assert_eq!(group.len, 128);
        let (i, p) = (b"alice".as_slice(), b"password123".as_slice());
        let s = unhex(RFC_S);
        let a = BigUint::from_bytes_be(&unhex(RFC_A_PRIV));
        let b = BigUint::from_bytes_be(&unhex(RFC_B_PRIV));

        let k = compute_k::<Sha1>(&group);
        assert_eq!(
            k.to_bytes_be(),
            unhex("7556AA04 5AEF2CDD 07ABAF0F 665C3E81 8913186F"),
            "k"
        );
        let x = compute_x::<Sha1>(&s, i, p);
        assert_eq!(
            x.to_bytes_be(),
            unhex("94B7555A ABE9127C C58CCF49 93DB6CF8 4D16C124"),
            "x"
        );
        let v = group.g_pow(&x);
        assert_eq!(
            v.to_bytes_be(),
            unhex(
                "7E273DE8 696FFC4F 4E337D05 B4B375BE B0DDE156 9E8FA00A 9886D812
                 9BADA1F1 822223CA 1A605B53 0E379BA4 729FDC59 F105B478 7E5186F5
                 C671085A 1447B52A 48CF1970 B4FB6F84 00BBF4CE BFBB1681 52E08AB5
                 EA53D15C 1AFF87B2 B9DA6E04 E058AD51 CC72BFC9 033B564E 26480D78
                 E955A5E2 9E7AB245 DB2BE315 E2099AFB"
            ),
            "v"
        );
        let a_pub = group.g_pow(&a);
        assert_eq!(
            a_pub.to_bytes_be(),
            unhex(
                "61D5E490 F6F1B795 47B0704C 436F523D D0E560F0 C64115BB 72557EC4
                 4352E890 3211C046 92272D8B 2D1A5358 A2CF1B6E 0BFCF99F 921530EC
                 8E393561 79EAE45E 42BA92AE ACED8251 71E1E8B9 AF6D9C03 E1327F44
                 BE087EF0 6530E69F 66615261 EEF54073 CA11CF58 58F0EDFD FE15EFEA
                 B349EF5D 76988A36 72FAC47B 0769447B"
            ),
            "A"
        );
        // B = (k·v + g^b) mod N, the server's side, as the RFC lists it.
        let b_pub = (&k * &v + group.g_pow(&b)) % &group.n;
        assert_eq!(
            b_pub.to_bytes_be(),
            unhex(
                "BD0C6151 2C692C0C B6D041FA 01BB152D 4916A1E7 7AF46AE1 05393011
                 BAF38964 DC46A067 0DD125B9 5A981652 236F99D9 B681CBF8 7837EC99
                 6C6DA044 53728610 D0C6DDB5 8B318885 D7D82C7F 8DEB75CE 7BD4FBAA
                 37089E6F 9C6059F3 88838E7A 00030B33 1EB76840 910440B1 B27AAEAE
                 EB4012B7 D7665238 A8E3FB00 4B117B58"
            ),
            "B"
        );
        // Here B < k·v mod N: S's base B − k·g^x has to wrap around N.
        assert!(b_pub < (&k * &v) % &group.n, "B − k·v wraps");
        let u = compute_u::<Sha1>(&group, &a_pub, &b_pub);
        assert_eq!(
            u.to_bytes_be(),
            unhex("CE38B959 3487DA98 554ED47D 70A7AE5F 462EF019"),
            "u"
        );
        // The same entry point srp_client_with_private uses.
        let exchange = client_exchange::<Sha1>(&group, i, p, &s, &a, &b_pub).unwrap();
        assert_eq!(exchange.a_pub, a_pub, "A from the exchange");
        assert_eq!(
            exchange.premaster.to_bytes_be(),
            unhex(
                "B0DC82BA BCF30674 AE450C02 87745E79 90A3381F 63B387AA F271A10D
                 233861E3 59B48220 F7C4693C 9AE12B0A 6F67809F 0876E2D0 13800D6C
                 41BB59B6 D5979B5C 00A172B4 A2A5903A 0BDCAF8A 709585EB 2AFAFA8F
                 3499B200 210DCC1F 10EB3394 3CD67FC8 8A2F39A4 BE5BEC4E C0A3212D
                 C346D7E4 74B29EDE 8A469FFE CA686E5A"
            ),
            "premaster secret S"
        );
    }

    // The RFC 5054 Appendix B inputs "adapted to SHA-256" with the 3072-bit group, and a
    // second activation-code-shaped vector, computed independently of the Rust crates with
    // python3 (3.11; big ints, hashlib, hmac, and `cryptography`'s AESGCM only for the
    // envelope). The script, exactly as run:
    //
    // import base64, hashlib, hmac
    // from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    // H = lambda *p: hashlib.sha256(b"".join(p)).digest()
    // be = lambda n, l=None: n.to_bytes(l or max(1, (n.bit_length() + 7) // 8), "big")
    // def atan_inv(x, one):  # arctan(1/x) * one, Taylor series
    //     s, t, k = 0, one // x, 1
    //     while t:
    //         s += t // k if k % 4 == 1 else -(t // k); t //= x * x; k += 2
    //     return s
    // one = 1 << 3000; pi = 16 * atan_inv(5, one) - 4 * atan_inv(239, one)  # Machin
    // # RFC 5054 A's 3072-bit N is RFC 3526 group 15: 2^3072 - 2^3008 - 1 + 2^64 * ([2^2942 pi] + 1690314)
    // N = 2**3072 - 2**3008 - 1 + 2**64 * ((pi >> (3000 - 2942)) + 1690314); g = 5; L = 384
    // def vector(I, P, s, a, b):
    //     k = int.from_bytes(H(be(N, L), be(g, L)), "big")
    //     x = int.from_bytes(H(s, H(I + b":" + P)), "big")
    //     v = pow(g, x, N); A = pow(g, a, N); B = (k * v + pow(g, b, N)) % N
    //     u = int.from_bytes(H(be(A, L), be(B, L)), "big")
    //     S = pow((B - k * pow(g, x, N)) % N, a + u * x, N)
    //     assert S == pow(A * pow(v, u, N), b, N)  # the server's side gives the same S
    //     K = H(be(S))
    //     prk = hmac.new(b"\0" * 32, K, "sha256").digest()  # HKDF-Extract, salt none = 32 zeros
    //     enc = hmac.new(prk, b"roomd-activation-enc\x01", "sha256").digest()  # HKDF-Expand T(1)
    //     mac = hmac.new(prk, b"roomd-activation-mac\x01", "sha256").digest()
    //     for name, val in [("v", be(v)), ("A", be(A)), ("B", be(B)), ("u", be(u)), ("S", be(S)),
    //                       ("K", K), ("enc", enc), ("mac", mac)]:
    //         print(name, val.hex())
    //     return enc, mac
    // enc, mac = vector(b"alice", b"password123", bytes.fromhex("BEB25379D1A8581EB5A727673A2441EE"),
    //     int("60975527035CF2AD1989806F0407210BC81EDC04E2762A56AFD529DDDA2D4393", 16),
    //     int("E487CB59D31AC550471E81F00F6928E01DDA08E974A004F49E61F5D105284D20", 16))
    // nonce = bytes(range(12)); pt = b'{"orgId":"example-org"}'
    // data = base64.b64encode(nonce + AESGCM(enc).encrypt(nonce, pt, None))
    // print("data", data.decode()); print("hmac", base64.b64encode(hmac.new(mac, data, "sha256").digest()).decode())
    // print("-- activation-code shaped")
    // vector(b"43534500", b"12345678", bytes(range(16)), int("11" * 32, 16), int("22" * 32, 16))
    // print("N", be(N).hex())
    const ALICE_V: &str = "\
        ebe52c3cac712e0be1ba08d4dae9d38c960c3f092ed0ee375b12173b1cbe8c2d\
        3380eb4b38f0c529b3c5b207226c2b4c7741249d965a1437abe480b1bb331584\
        673e6e0b83daaf3b2fa370f10dc3b8d599b419133bce88a42cc2675543563faa\
        999d939e90c1c8e7024b906811faa9034512890e21b07135a1ad306380aa5c94\
        62a21e0d635a20b076091145f8f1c0166efde224af4d0ce5ffb9857ddac93875\
        758e4f191131f5837e3dd5bbf8c3242879d0bd7bc9f75a0e492804c69b4fbac8\
        ec02844729a565b859f176e8fff9348deb0ff1ee429c2fffc14af6764dc0c457\
        8d41cd3907e21cde6db94aa64fb79113dde08144c77b404d15addb04d001579d\
        19bfa16830da366a7476a29aadcdef47423ca652f773eb0457c0816683913b63\
        f15a4b17d2bbf3da2dbf976fe5bf66db1cd5a02f0f4765bc636ebe151d95031c\
        6a3fc285c3df130be7cc7281f3664fecacb66be80571551d15a71b0599ef76b8\
        793f1e75eb611f33dd33a046d9c476df84c76c5fa85b6627e6c38756c84b271a";
    const ALICE_A: &str = "\
        fab6f5d2615d1e323512e7991cc37443f487da604ca8c9230fcb04e541dce628\
        0b27ca4680b0374f179dc3bdc7553fe62459798c701ad864a91390a28c93b644\
        adbf9c00745b942b79f9012a21b9b78782319d83a1f8362866fbd6f46bfc0ddb\
        2e1ab6e4b45a9906b82e37f05d6f97f6a3eb6e182079759c4f6847837b62321a\
        c1b4fa68641fcb4bb98dd697a0c73641385f4bab25b793584cc39fc8d48d4bd8\
        67a9a3c10f8ea12170268e34fe3bbe6ff89998d60da2f3e4283cbec1393d52af\
        724a57230c604e9fbce583d7613e6bffd67596ad121a8707eec4694495703368\
        6a155f644d5c5863b48f61bdbf19a53eab6dad0a186b8c152e5f5d8cad4b0ef8\
        aa4ea5008834c3cd342e5e0f167ad04592cd8bd279639398ef9e114dfaaab919\
        e14e850989224ddd98576d79385d2210902e9f9b1f2d86cfa47ee244635465f7\
        1058421a0184be51dd10cc9d079e6f1604e7aa9b7cf7883c7d4ce12b06ebe160\
        81e23f27a231d18432d7d1bb55c28ae21ffcf005f57528d15a88881bb3bbb7fe";
    const ALICE_B: &str = "\
        e4e338879ef55928d8c6242187fc514f5118675749ecbdd76cbd01759ff6f943\
        99e655fe92d656bedfebfe5f4444be01c74ef747f11a7deb67ac99ef9837bc37\
        e5a2c94ccbac1b1b12a1e9be0eb0ae5e0f74b314e3a7625b2e11364dfba043ee\
        facc9da0bb0aa14f3806b079fadb55abb1362cc8090924fa13e30f4198dc3fcf\
        012d69c8eb32e4a93126a830f37709c07dfdf8e66c0fa6d00ad4efc3f03956cb\
        b06f7d2739c14f8bf057ca9282117659114dc265535f7a49db4fefe558a36d80\
        b96bddb96feba4bfc62be99b19b7bf363d59c0e47d1465ad768df7b0f4c4a3be\
        2ab58c9f60591c485b96a0d02481a58c7df3926d4df09a80b80f197cf3c4e20c\
        b8bd6fb4951fe3289c1774a96581e2489f19f0f8671e0fd7547c212fa328b7b9\
        3039fec06e55fa7bb2cc373ba1c5f3abaf10f2a42dbe741421757709c9d23440\
        ff2a256f9909b04ebacabf95efcd5676c74bb4f7f4a188643511cb64fa5f0080\
        9dea47998fba13c8eb5de902e89870ec1ea189de5e5d6a990391fd324644f83f";
    const ALICE_U: &str = "250bbec635f367f772c0ecbd993c068f98d08480251209dd0599784a6473d129";
    const ALICE_S: &str = "\
        b15cbaf557c03f0e657550a2aea0ad2ef92a76d1cff2f078597504754f540498\
        f891ea952c85ccb74b6a9af22990364db8a55d424745a97ef0ac43c03d3a0b36\
        bd1145a2e7db880d42283cf3541f960b33afbd1d39bc9bb6d34f3ac9844e796f\
        4fb5724d906bf28961062248f229327ef5c57e6fc754bb5decb56c021079e9ef\
        8a0b1f2b5f8571c2eb14c04b7d794b1e8bf17b9940ff466d3a337f361e41eb52\
        a7a48d478d0cbc470e2e10dca3120f0b0c41c69bb5bf0510f67e9981dd5c6a11\
        61259a18b7c795002f1c7bdde398372ffea2dcf70c6217540af8c4ca3d5e0f33\
        4c281339fbcfe736236196ab12666ee6e46d4a8ba3999671ea54c5896392d7fe\
        1aaf493832a3be150906bdc27b6cb0735575f5f32a799242f543c444340ca7f1\
        1589308b0b479f82fa2cc321935e82a3a5d628db2329e6657fde217d3010246c\
        7de650e2439d2e0bdd0fd5b7ee97408dec362490916f82698db530cfd17b35c9\
        3107780453cb598b390da1391d01757c18b67488f800e8576408a8464e0d53fc";
    const ALICE_K: &str = "468f4bb304eb97c9c5141ba81e44369a929c3aa7d695078cc7ed7761915d0396";
    const ALICE_ENC: &str = "89812122d82c9242b246286df8a7c7a3dbdd02285a01be674a4bd7a3002a77ec";
    const ALICE_MAC: &str = "9c8f90c903a34e3c16a6482af760eaf4cb8e468c7465fceaaef04f2e148807a6";
    const ENVELOPE_DATA: &str =
        "AAECAwQFBgcICQoLg3TyU/KKSVFX8Qysj0LIYDIVNOwoQR1/0amFF957TOHu1npRM7la";
    const ENVELOPE_HMAC: &str = "e0NWCPz3V6o48UXGXbK6X1zKLr9RD/UAbfyoOeAtKDk=";
    const CODE_V: &str = "\
        a92cdbf95f89204f6224e7324090a502d7d6cc1c7e9426e40b9ccf1fc8581b59\
        b96f880b53f274c600a8a944300846b50da25a1e0a798c2bf604f7a751c59da7\
        b32687891e20dcf8b62237f244a814c810926033031b08a34160296a6d58333d\
        0c749eb2777ac9c33aeb32c15ab37f9986a67b7f08ae8e52f89e948c33cf01c3\
        2768a687b4ce3889934ee9d74d6355311c7ca2510bfd25a790b0d8ad054bcf2d\
        fc9aea360688d3d444224bb04602880683b3140888f1fee708934c74f4a0cc16\
        bf8307ad0d3c9cf92369966a742da3c44de510924ce016a4bd9611ef143b14f4\
        1f9b485b2dc2297205827941d3674f3b3322c2f8575e2c345b7391370c988f0b\
        f3a7e2a801851a05951db5014201448c9a8d7b90954b3f7622a7bdfb66d9bb68\
        4e76994f9ca1bc2bd554e67beecf95eab45d958955ef80f684af46aadddbf8ba\
        cf46d7881297b417788a469e20acdebc86e5f885a772852870f7d6994d43fdb3\
        6ec236cd64d2ec21c8882e08db5ccef4fbf687aae2e4a1efa2ad3293cf432f91";
    const CODE_A: &str = "\
        c95341372ca4d0b469f87c0ae37bda635713223b577ef5e8d64a959a54e53957\
        22fea50e71bbd44306055760924a64885805ae13545fcfc7e65f4e7b75c765a1\
        12d267f79bffb8353d96ae81cfa64ca7eb687a5dba4cf223b21e1362489ca3e0\
        56254b25f610c00643490ea19944f6d3d0872bdcc5fc338bebc8936f30b69592\
        4e117f364a4cfc3898eeaa1a4bb98957df8eb046eba3cf42558138ca616a1dc7\
        991426292dd258693bbd4c11816e3064e4a7c536f7255ae61735db25e3cf0349\
        eb8b3e9848d0aa572b0f809d8983f1b280581aba96104422fcf088b698f8d899\
        115a5653cc473e87f5e45552a5a126c8b7fc273bd2cd12bfb15ff3501a572b17\
        608f16c33f6e971081f3af1be37a0a96748f60d204e935f6a5d2a71303aea434\
        b45bcb9ab6b4444208d3fdf7a00c07a3ba2a09b56b578170c78ba1573ca26924\
        06ba8d461e43bb3d160f0024a388d7234236537e29c3604f666c69d7244eae29\
        a0e8b9fa5ee490890e5892973fa535707fbe8f06e90dcbb99c7b39b5eb2b45fb";
    const CODE_B: &str = "\
        dde2e260a8d6a7035d86a618ac9681cc7fc9ca24ee282962d05478ad8762e2ed\
        c651d239dfd62ed9a9af72f07821c089e198971e713e0febe70def98201dd070\
        4e2ec3af58febccc2f003e74535107a3c58d578a6ed98de22ddf1b15e35b443f\
        1160a8739f8d6aef27fd1b8aa5639de14481a5b3fc4db611a401b94d0b9f25de\
        9fd4e66c3a46b4c1de539d5575ca28890d54c14a36871548a3241ef9547d604a\
        8ededd0f637ece38fb97d24dbc740b5016f3240e0c10edddbb6f9d08b4dd85f9\
        fd424f3bc53a5a3fddb195497975427365c723fe3016fdf551e3eb5f85f7ad29\
        cd6040ac54ca09b5d16c97531af34687cd85ead7f32d4d423a1e6366ae0e60a2\
        8a4b61d124e937f61faf05fa4a1045dcb4d9c4d24d502fad8ea3987413466519\
        748b77c3a7a4873ac5aaa01127e46ab42227d858b20999055e7337ad269f7271\
        117c8e78a97b0baf466aea2ab513010afd76701ce440ed910cce23fa1b8659fe\
        0d7047e6df24d6dc823e787145846f80c80973e0f9e4c63c73e88128f5695866";
    const CODE_U: &str = "0373acfeb03e9e99373ffdf9e70c676d78acc31ede85d7be7d369dfbe506a21d";
    const CODE_S: &str = "\
        78037661a45791d0a3267e14e2338cf39a5b09d2878bcc4155b044668c63150d\
        0c8f2e8d6d287d0118486d05e6545c1929d14381e8d17eaeb40e7ac0db2b1afc\
        c037ad715b2234094138bcec59ad84589b66af16d4c82212dccadbd44741fad2\
        aaceb5c238ba17b2b86b20fa111887433ae88a1b2d38cbf5cccd31296bf4e51f\
        8ad83c91d1d748e0fa280dc2a1fa7deef9b16e4eaca106348e8deddf298ea8f3\
        02e42554b520fa014468bf60962a4fad8a7d65795051f9e0baaf4d9750a93d56\
        70ba02822af192d185806dcd4d65fad90894005e7d21e5c82b14fb5ba1d2873c\
        3686f60ff1f0a3749d4aa28ff6947c82789d04127f146f02ebf33551a15b3266\
        b75025d31706e5debd84989fe549dd0cec7c066126f50634cd464dd5f143cc74\
        e0f935ccffab9653787ed5a6760c62ecbfae07a882d8207ad93309c9dc3350f4\
        51ce10b86ba8c5e0454274336eec1a9938d1de163b654a33097bf5f7f02999de\
        17be80c4176690dd6d44cc0e8feba90b4b659ca7cdefe484fe5b76e425a5127a";
    const CODE_K: &str = "8ddbaaed869ef35f5c0f3a1622d6e39b0e1862a62e0b0ec5d3f9922914b40f4f";
    const CODE_ENC: &str = "6f76b3158a6241d2eb4558a84223aacfa7a45ba9ef5168eb8576719b775e0d7b";
    const CODE_MAC: &str = "2269d11c0040ac1e27761d0af23106a35bb9c90f4b47b7b225d086ff3cc85fdf";
    const PY_N: &str = "\
        ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74\
        020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437\
        4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed\
        ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05\
        98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb\
        9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b\
        e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718\
        3995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33\
        a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7\
        abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864\
        d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2\
        08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff";
    const ENVELOPE_PLAINTEXT: &[u8] = br#"{"orgId":"example-org"}"#;

    fn keys_from_hex(enc: &str, mac: &str) -> ActivationKeys {
        ActivationKeys {
            enc: unhex(enc).try_into().unwrap(),
            mac: unhex(mac).try_into().unwrap(),
        }
    }

    fn assert_keys(keys: &ActivationKeys, enc: &str, mac: &str) {
        assert_eq!(keys.enc.as_slice(), unhex(enc), "enc key");
        assert_eq!(keys.mac.as_slice(), unhex(mac), "mac key");
    }

    /// One python vector: I, P, s, a and the hex values the script printed.
    struct Vector {
        i: &'static str,
        p: &'static str,
        s: Vec<u8>,
        a: Vec<u8>,
        v: &'static str,
        a_pub: &'static str,
        b_pub: &'static str,
        u: &'static str,
        premaster: &'static str,
        k: &'static str,
        enc: &'static str,
        mac: &'static str,
    }

    fn check_vector(vector: &Vector) {
        let group = group_3072();
        let (i, p) = (vector.i.as_bytes(), vector.p.as_bytes());
        let x = compute_x::<Sha256>(&vector.s, i, p);
        assert_eq!(group.g_pow(&x).to_bytes_be(), unhex(vector.v), "v");
        let a_pub = BigUint::from_bytes_be(&unhex(vector.a_pub));
        let b_pub = BigUint::from_bytes_be(&unhex(vector.b_pub));
        let u = compute_u::<Sha256>(group, &a_pub, &b_pub);
        assert_eq!(u.to_bytes_be(), unhex(vector.u), "u");
        let exchange = client_exchange::<Sha256>(
            group,
            i,
            p,
            &vector.s,
            &BigUint::from_bytes_be(&vector.a),
            &b_pub,
        )
        .unwrap();
        assert_eq!(exchange.a_pub, a_pub, "A");
        assert_eq!(
            exchange.premaster.to_bytes_be(),
            unhex(vector.premaster),
            "S"
        );
        assert_eq!(
            Sha256::digest(unhex(vector.premaster)).as_slice(),
            unhex(vector.k),
            "K"
        );
        assert_keys(
            &derive_keys(&unhex(vector.premaster)),
            vector.enc,
            vector.mac,
        );

        // The module's entry point, from the wire's base64.
        let step = srp_client_with_private(
            vector.i,
            &secret(vector.p),
            &b64(&vector.s),
            &b64(&unhex(vector.b_pub)),
            &vector.a,
        )
        .unwrap();
        assert_eq!(step.a_pub_b64, b64(&unhex(vector.a_pub)), "A");
        assert_keys(&step.keys, vector.enc, vector.mac);
    }

    #[test]
    fn sha256_3072_vectors_match_an_independent_python_implementation() {
        // N is the one python derived from RFC 3526's formula.
        assert_eq!(group_3072().n.to_bytes_be(), unhex(PY_N), "N");
        assert_eq!(group_3072().len, GROUP_LEN);
        check_vector(&Vector {
            i: "alice",
            p: "password123",
            s: unhex(RFC_S),
            a: unhex(RFC_A_PRIV),
            v: ALICE_V,
            a_pub: ALICE_A,
            b_pub: ALICE_B,
            u: ALICE_U,
            premaster: ALICE_S,
            k: ALICE_K,
            enc: ALICE_ENC,
            mac: ALICE_MAC,
        });
    }

    #[test]
    fn activation_code_shaped_vector_matches_python() {
        check_vector(&Vector {
            i: "43534500",
            p: "12345678",
            s: (0..16).collect(),
            a: vec![0x11; 32],
            v: CODE_V,
            a_pub: CODE_A,
            b_pub: CODE_B,
            u: CODE_U,
            premaster: CODE_S,
            k: CODE_K,
            enc: CODE_ENC,
            mac: CODE_MAC,
        });
    }

    #[test]
    fn envelope_matches_python() {
        let keys = keys_from_hex(ALICE_ENC, ALICE_MAC);
        let nonce: [u8; 12] = std::array::from_fn(|i| i as u8);
        let (data, hmac) = seal_with_nonce(&keys, nonce, ENVELOPE_PLAINTEXT);
        assert_eq!(
            (data.as_str(), hmac.as_str()),
            (ENVELOPE_DATA, ENVELOPE_HMAC)
        );
        assert_eq!(
            open(&keys, ENVELOPE_DATA, ENVELOPE_HMAC).unwrap(),
            ENVELOPE_PLAINTEXT
        );
    }

    #[test]
    fn leading_zero_bytes_in_b_do_not_change_the_result() {
        let mut b = vec![0, 0];
        b.extend(unhex(CODE_B));
        let step = srp_client_with_private(
            "43534500",
            &secret("12345678"),
            "AAECAwQFBgcICQoLDA0ODw==",
            &b64(&b),
            &[0x11; 32],
        )
        .unwrap();
        assert_keys(&step.keys, CODE_ENC, CODE_MAC);
    }

    #[test]
    fn a_random_private_value_gives_a_fresh_a_each_time() {
        let (salt, b) = ("AAECAwQFBgcICQoLDA0ODw==", b64(&unhex(CODE_B)));
        let one = srp_client("43534500", &secret("12345678"), salt, &b).unwrap();
        let two = srp_client("43534500", &secret("12345678"), salt, &b).unwrap();
        assert_ne!(one.a_pub_b64, two.a_pub_b64);
        assert_ne!(one.keys.enc, two.keys.enc);
        assert_eq!(STANDARD.decode(&one.a_pub_b64).unwrap().len(), 384);
    }

    fn srp_with_b(b: &[u8]) -> Result<SrpClientStep, CryptoError> {
        srp_client_with_private(
            "43534500",
            &secret("12345678"),
            "AAECAwQFBgcICQoLDA0ODw==",
            &b64(b),
            &[0x11; 32],
        )
    }

    fn illegal(reason: &'static str) -> CryptoError {
        CryptoError::IllegalServerValue { reason }
    }

    #[test]
    fn illegal_server_values_are_refused() {
        let n = unhex(PY_N);
        assert_eq!(srp_with_b(&[]).unwrap_err(), illegal("B is zero"));
        assert_eq!(srp_with_b(&[0; 384]).unwrap_err(), illegal("B is zero"));
        assert_eq!(srp_with_b(&n).unwrap_err(), illegal("B is not below N"));
        assert_eq!(
            srp_with_b(&[0xff; 384]).unwrap_err(),
            illegal("B is not below N")
        );
        let mut two_n = vec![1];
        two_n.extend(&n); // more than N, 385 bytes
        assert_eq!(
            srp_with_b(&two_n).unwrap_err(),
            illegal("B is longer than the 3072-bit modulus")
        );
        // B = k·v + g^0 makes the base of S equal to 1, so S = 1.
        let group = group_3072();
        let x = compute_x::<Sha256>(
            &unhex("000102030405060708090a0b0c0d0e0f"),
            b"43534500",
            b"12345678",
        );
        let k = compute_k::<Sha256>(group);
        let k_v = (k * group.g_pow(&x)) % &group.n;
        let b_pub = (&k_v + 1u32) % &group.n;
        assert_eq!(
            srp_with_b(&b_pub.to_bytes_be()).unwrap_err(),
            illegal("B makes the premaster secret 0 or 1")
        );
        // B = k·v mod N makes the base 0, so S = 0.
        assert_eq!(
            srp_with_b(&k_v.to_bytes_be()).unwrap_err(),
            illegal("B makes the premaster secret 0 or 1")
        );
    }

    #[test]
    fn malformed_srp_fields_are_named_errors() {
        let password = secret("12345678");
        let b = b64(&unhex(CODE_B));
        let run = |salt: &str, b: &str, a: &[u8]| {
            srp_client_with_private("43534500", &password, salt, b, a).unwrap_err()
        };
        assert_eq!(
            run("not base64!", &b, &[1; 32]),
            CryptoError::BadBase64 { field: "srpS" }
        );
        assert_eq!(
            run("AAAA", "AAA", &[1; 32]),
            CryptoError::BadBase64 { field: "srpB" }
        );
        assert_eq!(
            run("AAAA", "AA", &[1; 32]),
            CryptoError::BadBase64 { field: "srpB" }
        ); // unpadded
        let huge = "A".repeat(MAX_FIELD_LEN + 4);
        assert_eq!(
            run(&huge, &b, &[1; 32]),
            CryptoError::TooLong {
                field: "srpS",
                len: MAX_FIELD_LEN + 4
            }
        );
        assert_eq!(
            run("AAAA", &huge, &[1; 32]),
            CryptoError::TooLong {
                field: "srpB",
                len: MAX_FIELD_LEN + 4
            }
        );
        assert_eq!(run("AAAA", &b, &[]), CryptoError::BadPrivateValue);
        assert_eq!(run("AAAA", &b, &[0; 32]), CryptoError::BadPrivateValue);
        assert_eq!(run("AAAA", &b, &[1; 385]), CryptoError::BadPrivateValue);
        assert_eq!(
            CryptoError::BadBase64 { field: "srpB" }.to_string(),
            "srpB is not valid base64 (standard alphabet, with padding)"
        );
    }

    fn test_keys() -> ActivationKeys {
        derive_keys(b"test premaster secret")
    }

    /// The HMAC a server with `keys` would send for `data_b64`.
    fn hmac_for(keys: &ActivationKeys, data_b64: &str) -> String {
        b64(&mac(keys)
            .chain_update(data_b64.as_bytes())
            .finalize()
            .into_bytes())
    }

    fn flip_bit_in_b64(text: &str, byte: usize) -> String {
        let mut bytes = STANDARD.decode(text).unwrap();
        bytes[byte] ^= 0x01;
        b64(&bytes)
    }

    #[test]
    fn seal_then_open_round_trips() {
        let keys = test_keys();
        for plaintext in [
            &b""[..],
            b"x",
            br#"{"deviceIdentifier":"roomd-1"}"#,
            &[0u8; 5000],
        ] {
            let (data, hmac) = seal(&keys, plaintext);
            assert_eq!(open(&keys, &data, &hmac).unwrap(), plaintext);
        }
        let (one, _) = seal(&keys, b"same");
        let (two, _) = seal(&keys, b"same");
        assert_ne!(one, two, "a fresh nonce every time");
    }

    #[test]
    fn a_flipped_hmac_bit_is_bad_hmac_and_nothing_is_decoded() {
        let keys = test_keys();
        let (data, hmac) = seal(&keys, b"service data");
        let bad_hmac = flip_bit_in_b64(&hmac, 7);
        assert_eq!(open(&keys, &data, &bad_hmac), Err(CryptoError::BadHmac));
        // With data that would fail to decode, be too short, or fail to decrypt, the answer
        // is still BadHmac: decoding and decryption were not attempted.
        let undecodable = "%%%% not base64";
        let short = b64(&[0; 20]);
        let tampered = flip_bit_in_b64(&data, 20);
        assert_eq!(hmac_for(&keys, undecodable).len(), 44);
        for data in [undecodable, &short, &tampered] {
            assert_eq!(open(&keys, data, &bad_hmac), Err(CryptoError::BadHmac));
        }
        // ...while with a valid HMAC each of them gives its own error.
        assert_eq!(
            open(&keys, undecodable, &hmac_for(&keys, undecodable)),
            Err(CryptoError::BadBase64 {
                field: "serviceData"
            })
        );
        assert_eq!(
            open(&keys, &short, &hmac_for(&keys, &short)),
            Err(CryptoError::TooShort { len: 20 })
        );
        assert_eq!(
            open(&keys, &tampered, &hmac_for(&keys, &tampered)),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn a_flipped_data_bit_under_the_original_hmac_is_bad_hmac() {
        let keys = test_keys();
        let (data, hmac) = seal(&keys, b"service data");
        for byte in [0, 11, 12, 20, STANDARD.decode(&data).unwrap().len() - 1] {
            let tampered = flip_bit_in_b64(&data, byte);
            assert_eq!(
                open(&keys, &tampered, &hmac),
                Err(CryptoError::BadHmac),
                "byte {byte}"
            );
        }
        // The HMAC covers the base64 text itself, not only the bytes it decodes to.
        let mut reformatted = data.clone();
        reformatted.push('\n');
        assert_eq!(open(&keys, &reformatted, &hmac), Err(CryptoError::BadHmac));
    }

    #[test]
    fn bad_base64_and_truncation_are_named_errors() {
        let keys = test_keys();
        let (data, hmac) = seal(&keys, b"service data");
        assert_eq!(
            open(&keys, &data, "not base64!"),
            Err(CryptoError::BadBase64 {
                field: "serviceDataHMAC"
            })
        );
        assert_eq!(open(&keys, &data, ""), Err(CryptoError::BadHmac)); // empty tag: wrong length
        assert_eq!(
            open(&keys, &data, &hmac[..hmac.len() - 4]),
            Err(CryptoError::BadHmac)
        );
        for len in [0, 12, 27] {
            let truncated = b64(&STANDARD.decode(&data).unwrap()[..len]);
            assert_eq!(
                open(&keys, &truncated, &hmac_for(&keys, &truncated)),
                Err(CryptoError::TooShort { len })
            );
        }
        let huge = "A".repeat(MAX_FIELD_LEN + 4);
        assert_eq!(
            open(&keys, &huge, &hmac),
            Err(CryptoError::TooLong {
                field: "serviceData",
                len: MAX_FIELD_LEN + 4
            })
        );
        assert_eq!(
            open(&keys, &data, &huge),
            Err(CryptoError::TooLong {
                field: "serviceDataHMAC",
                len: MAX_FIELD_LEN + 4
            })
        );
    }

    #[test]
    fn wrong_keys_are_bad_hmac() {
        let (data, hmac) = seal(&test_keys(), b"service data");
        let other = derive_keys(b"another premaster secret");
        assert_eq!(open(&other, &data, &hmac), Err(CryptoError::BadHmac));
        assert_eq!(
            CryptoError::BadHmac.to_string(),
            "serviceDataHMAC does not verify: the server does not know this activation code's verifier"
        );
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let keys = keys_from_hex(ALICE_ENC, ALICE_MAC);
        let shown = format!("{keys:?}");
        assert_eq!(shown, "ActivationKeys { enc: <redacted>, mac: <redacted> }");
        let step = SrpClientStep {
            a_pub_b64: "QUJD".into(),
            keys,
        };
        let shown = format!("{step:?} {step:#?}");
        assert!(
            shown.contains("QUJD") && shown.contains(REDACTED),
            "{shown}"
        );
        for key in [ALICE_ENC, ALICE_MAC] {
            let bytes = unhex(key);
            for needle in [&key[..8], &format!("{}, {}", bytes[0], bytes[1])] {
                assert!(!shown.contains(needle), "{shown}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn open_never_panics(data in ".{0,200}", hmac in ".{0,60}") {
            let _ = open(&test_keys(), &data, &hmac);
        }

        #[test]
        fn open_never_panics_on_base64_looking_input(
            data in "[A-Za-z0-9+/]{0,120}={0,2}",
            hmac in "[A-Za-z0-9+/]{40,46}={0,2}",
        ) {
            let keys = test_keys();
            let _ = open(&keys, &data, &hmac);
            // Also past the HMAC check: decode, length and decryption paths.
            let _ = open(&keys, &data, &hmac_for(&keys, &data));
        }

        #[test]
        fn seal_open_round_trips(plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let keys = test_keys();
            let (data, hmac) = seal(&keys, &plaintext);
            proptest::prop_assert_eq!(open(&keys, &data, &hmac), Ok(plaintext));
        }
    }

    proptest::proptest! {
        // Each case that decodes runs three 3072-bit exponentiations: keep the count low.
        #![proptest_config(proptest::test_runner::Config::with_cases(12))]
        #[test]
        fn srp_client_never_panics(salt in "[A-Za-z0-9+/=]{0,24}", b in "[A-Za-z0-9+/]{0,520}={0,2}") {
            let _ = srp_client_with_private("43534500", &secret("12345678"), &salt, &b, &[7; 32]);
        }
    }
}
