//! `roomd check`'s trust-bundle reader (PEM, webpki, and x509-cert for each certificate's
//! subject and validity) against arbitrary file contents: it must end in one SUCCESS or FAIL
//! line, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("roomd-fuzz-bundle-{}.pem", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let line = roomd::check::certs::bundle_line(&path, "fuzz", SystemTime::now());
        assert!(!line.text.is_empty());
    }
});
