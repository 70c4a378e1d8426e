//! SRP-6a math (RFC 5054) and the activation envelope (wire profile §1), written for the simulator's
//! server side and public so tests can play the client with the same primitives.
//!
//! Generic over the group and the hash, so the RFC 5054 Appendix B vectors (1024-bit group, SHA-1)
//! check the same code the activation service runs with the 3072-bit group and SHA-256.
//!
//! Conventions (exactly the wire profile's):
//! - `PAD(x)`: big-endian, left-padded with zeros to the byte length of N.
//! - `k = H(N | PAD(g))`, `x = H(s | H(I ":" P))`, `v = g^x mod N`, `B = (k·v + g^b) mod N`,
//!   `u = H(PAD(A) | PAD(B))`, server `S = (A·v^u)^b mod N`, client `S = (B − k·g^x)^(a + u·x) mod N`.
//! - `K = H(S)` over the *minimal* big-endian bytes of S (no leading zeros).
//! - enc key = HKDF-SHA256(ikm = K, no salt, info = `roomd-activation-enc`, 32 bytes); mac key likewise
//!   with info `roomd-activation-mac`.
//! - Envelope: `data = base64(nonce(12) ‖ AES-256-GCM(enc key, nonce, plaintext, no AAD))`,
//!   `hmac = base64(HMAC-SHA256(mac key, data's ASCII bytes))`; base64 is the standard alphabet with
//!   padding. Integers on the wire are base64 of big-endian bytes.

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use num_bigint::BigUint;
use num_traits::Zero as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// HKDF `info` of the envelope's encryption key.
pub const ENC_INFO: &[u8] = b"roomd-activation-enc";
/// HKDF `info` of the envelope's MAC key.
pub const MAC_INFO: &[u8] = b"roomd-activation-mac";
/// AES-GCM nonce length in the envelope.
pub const NONCE_LEN: usize = 12;

/// RFC 5054 Appendix A, 3072-bit group (the same prime as RFC 3526 group 15); g = 5.
const N_3072_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// RFC 5054 Appendix A, 1024-bit group; g = 2. Only for the Appendix B test vectors.
const N_1024_HEX: &str = concat!(
    "EEAF0AB9ADB38DD69C33F80AFA8FC5E86072618775FF3C0B9EA2314C",
    "9C256576D674DF7496EA81D3383B4813D692C6E0E0D5D8E250B98BE4",
    "8E495C1D6089DAD15DC7D7B46154D6B6CE8EF4AD69B15D4982559B29",
    "7BCF1885C529F566660E57EC68EDBC3C05726CC02FD4CBF4976EAA9A",
    "FD5138FE8376435B9FC61D2FC0EB06E3",
);

/// An SRP group: the safe prime N and the generator g.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub n: BigUint,
    pub g: BigUint,
}

impl Group {
    /// The activation group: RFC 5054 3072-bit, g = 5.
    pub fn rfc5054_3072() -> Self {
        Self::from_hex(N_3072_HEX, 5)
    }

    /// RFC 5054 1024-bit, g = 2 (test vectors only; far too small for real use).
    pub fn rfc5054_1024() -> Self {
        Self::from_hex(N_1024_HEX, 2)
    }

    fn from_hex(n: &str, g: u32) -> Self {
        Self {
            // A compile-time constant of hex digits: parsing cannot fail.
            n: BigUint::parse_bytes(n.as_bytes(), 16).unwrap_or_default(),
            g: BigUint::from(g),
        }
    }

    /// Byte length of N (384 for the 3072-bit group).
    pub fn byte_len(&self) -> usize {
        usize::try_from(self.n.bits().div_ceil(8)).unwrap_or(usize::MAX)
    }

    /// `PAD(x)`: big-endian, left-padded with zeros to the length of N. Values longer than N (which
    /// never happens for residues mod N) come back unpadded.
    pub fn pad(&self, x: &BigUint) -> Vec<u8> {
        let bytes = x.to_bytes_be();
        let len = self.byte_len();
        if bytes.len() >= len {
            return bytes;
        }
        let mut out = vec![0u8; len - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    }
}

/// `H(a | b | ...)` as bytes.
pub fn hash<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = D::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn hash_int<D: Digest>(parts: &[&[u8]]) -> BigUint {
    BigUint::from_bytes_be(&hash::<D>(parts))
}

/// `k = H(N | PAD(g))`.
pub fn multiplier<D: Digest>(group: &Group) -> BigUint {
    hash_int::<D>(&[&group.n.to_bytes_be(), &group.pad(&group.g)])
}

/// `x = H(s | H(I ":" P))`.
pub fn private_key<D: Digest>(salt: &[u8], identity: &[u8], password: &[u8]) -> BigUint {
    let inner = hash::<D>(&[identity, b":", password]);
    hash_int::<D>(&[salt, &inner])
}

/// `v = g^x mod N`.
pub fn verifier(group: &Group, x: &BigUint) -> BigUint {
    group.g.modpow(x, &group.n)
}

/// `B = (k·v + g^b) mod N`.
pub fn server_public<D: Digest>(group: &Group, v: &BigUint, b: &BigUint) -> BigUint {
    let k = multiplier::<D>(group);
    (k * v + group.g.modpow(b, &group.n)) % &group.n
}

/// `A = g^a mod N`.
pub fn client_public(group: &Group, a: &BigUint) -> BigUint {
    group.g.modpow(a, &group.n)
}

/// `u = H(PAD(A) | PAD(B))`.
pub fn scrambler<D: Digest>(group: &Group, a_pub: &BigUint, b_pub: &BigUint) -> BigUint {
    hash_int::<D>(&[&group.pad(a_pub), &group.pad(b_pub)])
}

/// Server premaster secret `S = (A·v^u)^b mod N`.
pub fn server_secret(
    group: &Group,
    a_pub: &BigUint,
    v: &BigUint,
    u: &BigUint,
    b: &BigUint,
) -> BigUint {
    let base = (a_pub * v.modpow(u, &group.n)) % &group.n;
    base.modpow(b, &group.n)
}

/// Client premaster secret `S = (B − k·g^x)^(a + u·x) mod N`.
pub fn client_secret<D: Digest>(
    group: &Group,
    b_pub: &BigUint,
    x: &BigUint,
    a: &BigUint,
    u: &BigUint,
) -> BigUint {
    let n = &group.n;
    let kgx = (multiplier::<D>(group) * group.g.modpow(x, n)) % n;
    // B − k·g^x, kept non-negative.
    let base = ((b_pub % n) + n - kgx) % n;
    base.modpow(&(a + u * x), n)
}

/// `K = H(S)` over the minimal big-endian bytes of S.
pub fn session_key<D: Digest>(s: &BigUint) -> Vec<u8> {
    hash::<D>(&[&s.to_bytes_be()])
}

/// True when `A mod N == 0` (or `B mod N == 0`): such a value would fix the secret, so it is refused.
pub fn is_degenerate(group: &Group, public: &BigUint) -> bool {
    (public % &group.n).is_zero()
}

/// `n` random bytes as a big-endian integer (ephemeral secrets a and b).
pub fn random_secret(n: usize) -> BigUint {
    BigUint::from_bytes_be(&random_bytes(n))
}

/// `n` random bytes from the OS-seeded thread RNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rand::rng().fill_bytes(&mut out);
    out
}

/// Standard base64 (with padding) of the minimal big-endian bytes.
pub fn encode_int(x: &BigUint) -> String {
    STANDARD.encode(x.to_bytes_be())
}

/// Parses base64 (standard alphabet, padded) of big-endian bytes; leading zeros are allowed.
pub fn decode_int(text: &str) -> Option<BigUint> {
    let bytes = STANDARD.decode(text).ok()?;
    if bytes.is_empty() {
        return None;
    }
    Some(BigUint::from_bytes_be(&bytes))
}

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Inverse of [`b64`]; `None` for anything that is not canonical padded standard base64.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Why an envelope could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The HMAC is not valid base64 or does not match `data` under the MAC key.
    Hmac,
    /// `data` is not valid base64, too short, or fails AES-GCM authentication.
    Decrypt,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hmac => "envelope HMAC does not verify",
            Self::Decrypt => "envelope data does not decrypt",
        })
    }
}

impl std::error::Error for EnvelopeError {}

/// One sealed message: the `data` and `HMAC` fields of the activation exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub data: String,
    pub hmac: String,
}

/// The two keys both ends derive from K.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub enc: [u8; 32],
    pub mac: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    /// HKDF-SHA256 with K as input keying material and no salt.
    pub fn derive(k: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(None, k);
        let mut enc = [0u8; 32];
        let mut mac = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        let _ = hk.expand(ENC_INFO, &mut enc);
        let _ = hk.expand(MAC_INFO, &mut mac);
        Self { enc, mac }
    }

    /// The envelope's HMAC over `data` (its ASCII bytes), base64.
    pub fn mac_of(&self, data: &str) -> String {
        b64(&self.mac_raw(data))
    }

    fn mac_raw(&self, data: &str) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.mac)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// Constant-time check of a base64 HMAC over `data`.
    pub fn verify(&self, data: &str, hmac_b64: &str) -> bool {
        let Some(tag) = unb64(hmac_b64) else {
            return false;
        };
        let mut mac = self.hmac();
        mac.update(data.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// Encrypts with a fresh random nonce and MACs the result.
    pub fn seal(&self, plaintext: &[u8]) -> Envelope {
        let nonce = random_bytes(NONCE_LEN);
        self.seal_with_nonce(plaintext, &nonce)
    }

    /// As [`SessionKeys::seal`] with a given 12-byte nonce (deterministic tests).
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &[u8]) -> Envelope {
        let cipher = Aes256Gcm::new((&self.enc).into());
        let sealed = cipher
            .encrypt(Nonce::from_slice(nonce), plaintext)
            .unwrap_or_else(|_| unreachable!("AES-GCM encryption of an in-memory buffer"));
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        let data = b64(&raw);
        let hmac = self.mac_of(&data);
        Envelope { data, hmac }
    }

    /// Decrypts `data` without looking at any HMAC (call [`SessionKeys::verify`] first).
    pub fn decrypt(&self, data: &str) -> Result<Vec<u8>, EnvelopeError> {
        let raw = unb64(data).ok_or(EnvelopeError::Decrypt)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(EnvelopeError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        Aes256Gcm::new((&self.enc).into())
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| EnvelopeError::Decrypt)
    }

    /// Verifies the HMAC, then decrypts: what the client must do with `serviceData`.
    pub fn open(&self, envelope: &Envelope) -> Result<Vec<u8>, EnvelopeError> {
        if !self.verify(&envelope.data, &envelope.hmac) {
            return Err(EnvelopeError::Hmac);
        }
        self.decrypt(&envelope.data)
    }
}

/// The activation's keys from the premaster secret: `K = SHA-256(S)`, then HKDF.
pub fn keys_from_secret(s: &BigUint) -> SessionKeys {
    SessionKeys::derive(&session_key::<Sha256>(s))
}

/// Splits a 16-digit activation code into (activationId, password): first 8 and last 8 digits.
pub fn split_code(code: &str) -> Option<(&str, &str)> {
    if code.len() != 16 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(code.split_at(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_sizes() {
        assert_eq!(Group::rfc5054_3072().n.bits(), 3072);
        assert_eq!(Group::rfc5054_3072().byte_len(), 384);
        assert_eq!(Group::rfc5054_1024().byte_len(), 128);
        let g = Group::rfc5054_3072();
        assert_eq!(g.pad(&BigUint::from(5u8)).len(), 384);
        assert_eq!(g.pad(&BigUint::from(5u8))[383], 5);
    }

    #[test]
    fn honest_exchange_agrees_and_envelope_roundtrips() {
        let group = Group::rfc5054_3072();
        let salt = random_bytes(16);
        let x = private_key::<Sha256>(&salt, b"43534500", b"12345678");
        let v = verifier(&group, &x);
        let b = random_secret(32);
        let b_pub = server_public::<Sha256>(&group, &v, &b);
        let a = random_secret(32);
        let a_pub = client_public(&group, &a);
        let u = scrambler::<Sha256>(&group, &a_pub, &b_pub);
        let s_server = server_secret(&group, &a_pub, &v, &u, &b);
        let s_client = client_secret::<Sha256>(&group, &b_pub, &x, &a, &u);
        assert_eq!(s_server, s_client);
        let keys = keys_from_secret(&s_server);
        let env = keys.seal(b"{\"a\":1}");
        assert_eq!(keys.open(&env).expect("open"), b"{\"a\":1}");
        let mut bad = env.clone();
        bad.hmac = keys.mac_of("other");
        assert_eq!(keys.open(&bad), Err(EnvelopeError::Hmac));
        let other = SessionKeys::derive(b"other");
        assert_eq!(other.open(&env), Err(EnvelopeError::Hmac));
        assert_eq!(other.decrypt(&env.data), Err(EnvelopeError::Decrypt));
    }

    #[test]
    fn int_encoding_accepts_padding() {
        let x = BigUint::from(0x0102u32);
        assert_eq!(encode_int(&x), "AQI=");
        assert_eq!(decode_int("AAECAw=="), Some(BigUint::from(0x010203u32)));
        assert_eq!(decode_int("AQI"), None, "padding is required");
        assert_eq!(decode_int(""), None);
    }

    #[test]
    fn code_split() {
        assert_eq!(
            split_code("4353450012345678"),
            Some(("43534500", "12345678"))
        );
        assert_eq!(split_code("4353-4500-1234-5678"), None);
    }
}
