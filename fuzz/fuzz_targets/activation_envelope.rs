//! The activation envelope and the SRP client step against arbitrary bytes: `open` must
//! return the plaintext or a named error, and so must `srp_client_with_private`; neither
//! may panic.
//!
//! Input: two strings split at the first newline (lossy UTF-8), used as (data, hmac) for
//! `open` with fixed keys and as (srpS, srpB) for the SRP step with a fixed `a`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use roomd::activation::crypto::{ActivationKeys, derive_keys, open, srp_client_with_private};
use roomd::secret::Secret;

fn keys() -> &'static ActivationKeys {
    static KEYS: OnceLock<ActivationKeys> = OnceLock::new();
    // The seeds in corpus/activation_envelope/ are sealed with these keys.
    KEYS.get_or_init(|| derive_keys(b"roomd-fuzz"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (first, second) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = open(keys(), first, second);
    let password = Secret::new("12345678".to_string());
    let _ = srp_client_with_private("43534500", &password, first, second, &[0x11; 32]);
});
