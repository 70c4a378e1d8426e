//! Compact JWE, `dir` + `A256GCM` (RFC 7516), as the calendar's encrypted fields carry it
//! (`docs/wire-profile-choices.md` §4):
//! `B64(header) . B64(empty key) . B64(iv, 12 bytes) . B64(ciphertext) . B64(tag, 16 bytes)`,
//! base64url without padding; header `{"alg":"dir","enc":"A256GCM","kid":"<key url>"}`; AAD = the
//! ASCII of the first segment; a fresh random IV per encryption.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde_json::json;

/// Length of a content encryption key (A256GCM).
pub(crate) const KEY_LEN: usize = 32;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The protected header of every field encrypted with the key at `kid`.
pub(crate) fn header(kid: &str) -> String {
    json!({ "alg": "dir", "enc": "A256GCM", "kid": kid }).to_string()
}

/// Encrypts `plaintext` (UTF-8) under `key`, naming `kid` in the header.
pub(crate) fn encrypt(key: &[u8; KEY_LEN], kid: &str, plaintext: &str) -> String {
    let protected = URL_SAFE_NO_PAD.encode(header(kid));
    let mut iv = [0_u8; IV_LEN];
    rand::rng().fill_bytes(&mut iv);
    let sealed = Aes256Gcm::new(key.into())
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: plaintext.as_bytes(),
                aad: protected.as_bytes(),
            },
        )
        // AES-GCM fails only for plaintexts over 64 GiB.
        .unwrap_or_default();
    let (ciphertext, tag) = sealed.split_at(sealed.len().saturating_sub(TAG_LEN));
    format!(
        "{protected}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The plaintext of a compact JWE made by [`encrypt`], or `None` when it is malformed or does not
/// authenticate (wrong key, tampered header, IV, ciphertext or tag).
#[cfg(test)]
pub(crate) fn decrypt(key: &[u8; KEY_LEN], compact: &str) -> Option<String> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [protected, cek, iv, ciphertext, tag] = parts[..] else {
        return None;
    };
    if !cek.is_empty() {
        return None;
    }
    let iv = URL_SAFE_NO_PAD.decode(iv).ok()?;
    if iv.len() != IV_LEN {
        return None;
    }
    let mut sealed = URL_SAFE_NO_PAD.decode(ciphertext).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if tag.len() != TAG_LEN {
        return None;
    }
    sealed.extend_from_slice(&tag);
    let plain = Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &sealed,
                aad: protected.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str = "kms://kms.sim.invalid/keys/default";

    #[test]
    fn round_trip_and_shape() {
        let key = [7_u8; KEY_LEN];
        let jwe = encrypt(&key, KID, "CLUS 2022 Test Meeting");
        let parts: Vec<&str> = jwe.split('.').collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[0]).expect("header"),
            br#"{"alg":"dir","enc":"A256GCM","kid":"kms://kms.sim.invalid/keys/default"}"#
        );
        assert!(parts[1].is_empty());
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).expect("iv").len(), 12);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[3]).expect("ct").len(), 22);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[4]).expect("tag").len(), 16);
        assert_eq!(
            decrypt(&key, &jwe).as_deref(),
            Some("CLUS 2022 Test Meeting")
        );
        assert_ne!(encrypt(&key, KID, "x"), encrypt(&key, KID, "x"), "fresh IV");
        assert_eq!(decrypt(&key, &encrypt(&key, KID, "")).as_deref(), Some(""));
    }

    #[test]
    fn tampering_fails() {
        let key = [7_u8; KEY_LEN];
        let jwe = encrypt(&key, KID, "subject");
        assert_eq!(decrypt(&[8_u8; KEY_LEN], &jwe), None);
        let other = URL_SAFE_NO_PAD.encode(header("kms://kms.sim.invalid/keys/other"));
        let (_, rest) = jwe.split_once('.').expect("dots");
        assert_eq!(
            decrypt(&key, &format!("{other}.{rest}")),
            None,
            "AAD binds the header"
        );
        assert_eq!(decrypt(&key, &jwe.replacen("..", ".x.", 1)), None);
    }
}
