//! Compact JWE as the calendar uses it (wire profile §4): `alg` `dir`, `enc` `A256GCM`, the key
//! named by `kid` (a KMS key URL). Parsing is separate from decryption so a field can be
//! classified (encrypted or plaintext) before its key is known.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Largest compact JWE accepted (a calendar field is short; this bounds the work).
pub const MAX_JWE_BYTES: usize = 64 * 1024;

/// A parsed compact JWE, not yet decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwe {
    /// The first segment as sent: it is the AAD.
    protected: String,
    /// The key URL (`kid`).
    pub kid: String,
    iv: [u8; 12],
    ciphertext: Vec<u8>,
    tag: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum JweError {
    /// not a compact JWE: {0}
    Format(String),
    /// unsupported JWE header: {0}
    Header(String),
    /// the JWE does not decrypt with key {kid} (wrong key or tampered)
    Decrypt { kid: String },
    /// the JWE plaintext is not UTF-8
    NotUtf8,
}

impl Jwe {
    /// Parses `text`; anything that is not five base64url segments with a `dir`/`A256GCM`
    /// header is an error (callers treat such fields as plaintext).
    pub fn parse(text: &str) -> Result<Self, JweError> {
        if text.len() > MAX_JWE_BYTES {
            return Err(JweError::Format(format!(
                "{} bytes is too long",
                text.len()
            )));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [protected, key, iv, ciphertext, tag] = parts[..] else {
            return Err(JweError::Format(format!("{} segments, not 5", parts.len())));
        };
        let decode = |what: &str, segment: &str| {
            URL_SAFE_NO_PAD
                .decode(segment)
                .map_err(|e| JweError::Format(format!("{what}: {e}")))
        };
        let header: serde_json::Value = serde_json::from_slice(&decode("header", protected)?)
            .map_err(|e| JweError::Format(format!("header is not JSON: {e}")))?;
        let field = |name: &str| header.get(name).and_then(|v| v.as_str());
        if field("alg") != Some("dir") {
            return Err(JweError::Header(format!(
                "alg {:?}, expected \"dir\"",
                field("alg")
            )));
        }
        if field("enc") != Some("A256GCM") {
            return Err(JweError::Header(format!(
                "enc {:?}, expected \"A256GCM\"",
                field("enc")
            )));
        }
        let kid = field("kid")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| JweError::Header("no kid".into()))?
            .to_string();
        if !decode("encrypted key", key)?.is_empty() {
            return Err(JweError::Format(
                "direct encryption has an empty key segment".into(),
            ));
        }
        let iv: [u8; 12] = decode("iv", iv)?
            .try_into()
            .map_err(|v: Vec<u8>| JweError::Format(format!("iv of {} bytes, not 12", v.len())))?;
        let tag: [u8; 16] = decode("tag", tag)?
            .try_into()
            .map_err(|v: Vec<u8>| JweError::Format(format!("tag of {} bytes, not 16", v.len())))?;
        Ok(Self {
            protected: protected.to_string(),
            kid,
            iv,
            ciphertext: decode("ciphertext", ciphertext)?,
            tag,
        })
    }

    /// Decrypts with the 256-bit content key; the header is authenticated as AAD.
    pub fn decrypt(&self, key: &[u8; 32]) -> Result<String, JweError> {
        let mut sealed = Vec::with_capacity(self.ciphertext.len() + 16);
        sealed.extend_from_slice(&self.ciphertext);
        sealed.extend_from_slice(&self.tag);
        let plain = Aes256Gcm::new(&(*key).into())
            .decrypt(
                &Nonce::from(self.iv),
                Payload {
                    msg: &sealed,
                    aad: self.protected.as_bytes(),
                },
            )
            .map_err(|_| JweError::Decrypt {
                kid: self.kid.clone(),
            })?;
        String::from_utf8(plain).map_err(|_| JweError::NotUtf8)
    }
}

/// Encrypts `plaintext` (tests, benches and fuzz seeds; the cloud does this for real).
pub fn encrypt(plaintext: &str, key: &[u8; 32], kid: &str, iv: [u8; 12]) -> String {
    let header = serde_json::json!({"alg": "dir", "enc": "A256GCM", "kid": kid}).to_string();
    let protected = URL_SAFE_NO_PAD.encode(header);
    let sealed = Aes256Gcm::new(&(*key).into())
        .encrypt(
            &Nonce::from(iv),
            Payload {
                msg: plaintext.as_bytes(),
                aad: protected.as_bytes(),
            },
        )
        .expect("AES-256-GCM encrypts short texts");
    let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
    format!(
        "{protected}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn round_trip_and_tamper() {
        let text = encrypt("CLUS 2022 Test Meeting", &KEY, "kms://k/1", [1; 12]);
        let jwe = Jwe::parse(&text).unwrap();
        assert_eq!(jwe.kid, "kms://k/1");
        assert_eq!(jwe.decrypt(&KEY).unwrap(), "CLUS 2022 Test Meeting");
        assert_eq!(
            jwe.decrypt(&[8; 32]).unwrap_err().to_string(),
            "the JWE does not decrypt with key kms://k/1 (wrong key or tampered)"
        );
        // The header is authenticated: another kid in the same envelope fails.
        let other = URL_SAFE_NO_PAD.encode(r#"{"alg":"dir","enc":"A256GCM","kid":"kms://k/2"}"#);
        let tampered = format!("{other}{}", &text[text.find('.').unwrap()..]);
        assert!(Jwe::parse(&tampered).unwrap().decrypt(&KEY).is_err());
    }

    #[test]
    fn plaintext_and_other_algorithms_are_not_ours() {
        assert!(matches!(Jwe::parse("CLUS 2022"), Err(JweError::Format(_))));
        assert!(matches!(Jwe::parse("sip:a@b.c"), Err(JweError::Format(_))));
        let rsa = URL_SAFE_NO_PAD.encode(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k"}"#);
        assert!(matches!(
            Jwe::parse(&format!(
                "{rsa}.AA.AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA"
            )),
            Err(JweError::Header(_))
        ));
    }
}
