//! SRTP and SRTCP unprotect (`proto::srtp`) against arbitrary bytes, for both profiles under a
//! fixed master key: each call either decrypts or returns a named error, never panics, and a
//! refused packet is left exactly as it came. What one accepts must re-protect to the same
//! bytes (the transform is deterministic for a fresh sender), and must be refused as a replay
//! the second time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::proto::srtp::{SrtpContext, SrtpError, SrtpProfile};

/// The master key and salt the seeds in `fuzz/corpus/srtp_unprotect` are protected with.
const MASTER_KEY: [u8; 16] = *b"roomd-fuzz-srtp!";
const MASTER_SALT: [u8; 14] = *b"fuzz-srtp-salt";

fn context(profile: SrtpProfile) -> SrtpContext {
    SrtpContext::new(
        profile,
        &MASTER_KEY,
        &MASTER_SALT[..profile.master_salt_len()],
    )
    .expect("the fixed key fits the profile")
}

fuzz_target!(|data: &[u8]| {
    for profile in [SrtpProfile::Aes128CmHmacSha1_80, SrtpProfile::AeadAes128Gcm] {
        let mut receiver = context(profile);
        let mut packet = data.to_vec();
        match receiver.unprotect_rtp(&mut packet) {
            Ok(()) => {
                assert_eq!(packet.len() + profile.rtp_overhead(), data.len());
                let mut again = packet.clone();
                context(profile)
                    .protect_rtp(&mut again)
                    .expect("what unprotects, protects");
                assert_eq!(again, data);
                let mut replay = data.to_vec();
                assert!(matches!(
                    receiver.unprotect_rtp(&mut replay),
                    Err(SrtpError::Replayed(_))
                ));
            }
            Err(_) => assert_eq!(packet, data),
        }

        let mut receiver = context(profile);
        let mut packet = data.to_vec();
        match receiver.unprotect_rtcp(&mut packet) {
            Ok(()) => {
                assert_eq!(packet.len() + profile.rtcp_overhead(), data.len());
                let mut replay = data.to_vec();
                assert!(matches!(
                    receiver.unprotect_rtcp(&mut replay),
                    Err(SrtpError::Replayed(_))
                ));
            }
            Err(_) => assert_eq!(packet, data),
        }
    }
});
