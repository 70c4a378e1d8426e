//! Cost of the activation handshake against its unit of work, a 3072-bit modular
//! exponentiation. Prints figures; no criterion.
//!
//! `cargo bench --bench srp` (native) or `cargo bench --bench srp --target
//! aarch64-unknown-linux-gnu` (under qemu). `ROOMD_BENCH_RUNS=N` sets the number of timed
//! runs per figure (default 21; the median is reported).
//!
//! (a) g^a mod N with a 256-bit exponent, through the `srp` crate's own big-int code
//!     (`Client::compute_g_x`, crypto-bigint `BoxedMontyForm::pow`, constant time).
//! (b) `srp_client`: A = g^a, then `process_reply` (which computes g^a again, g^x and
//!     (B − k·g^x)^(a+u·x) with a ~512-bit exponent), then K and HKDF.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use roomd::activation::crypto::{derive_keys, open, seal, srp_client};
use roomd::secret::Secret;
use sha2::Sha256;
use srp::bigint::BoxedUint;
use srp::{ClientG3072, ServerG3072};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    black_box(f()); // warm-up
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = std::env::var("ROOMD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(21);
    let mut rng = rand::rngs::OsRng;

    // (a) one 3072-bit modexp, 256-bit exponent.
    let client = ClientG3072::<Sha256>::new();
    let mut a = [0u8; 32];
    rng.fill_bytes(&mut a);
    a[0] |= 0x80; // a full 256 bits
    let exponent = BoxedUint::from_be_slice_vartime(&a);
    let modexp = time(runs, || client.compute_g_x(black_box(&exponent)));

    // (b) the full client handshake against a server value made here.
    let (activation_id, password) = ("43534500", Secret::new("12345678".to_string()));
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let verifier = client.compute_verifier(
        activation_id.as_bytes(),
        password.expose().as_bytes(),
        &salt,
    );
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    let b_pub = ServerG3072::<Sha256>::new().compute_public_ephemeral(&b, &verifier);
    let (salt_b64, b_pub_b64) = (STANDARD.encode(salt), STANDARD.encode(&b_pub));
    srp_client(activation_id, &password, &salt_b64, &b_pub_b64).expect("handshake succeeds");
    let handshake = time(runs, || {
        srp_client(activation_id, &password, &salt_b64, &b_pub_b64)
    });

    // Where the handshake's time goes: process_reply alone, and one exponentiation with a
    // 512-bit exponent (the size of a + u·x).
    let process_reply = time(runs, || {
        client.process_reply(
            &a,
            activation_id.as_bytes(),
            password.expose().as_bytes(),
            &salt,
            &b_pub,
        )
    });
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    wide[0] |= 0x80;
    let wide = BoxedUint::from_be_slice_vartime(&wide);
    let modexp_512 = time(runs, || client.compute_g_x(black_box(&wide)));

    // For scale: the symmetric part of activation (a 1 KiB envelope).
    let keys = derive_keys(&b_pub);
    let plaintext = vec![0x5a_u8; 1024];
    let envelope = time(runs, || {
        let (data, hmac) = seal(&keys, &plaintext);
        open(&keys, &data, &hmac)
    });

    let unit = modexp.as_secs_f64();
    let line = |what: &str, d: Duration| {
        println!(
            "  {what:<52} {:9.3} ms  {:5.2} x",
            ms(d),
            d.as_secs_f64() / unit
        );
    };
    println!(
        "srp bench ({}, {runs} runs each, medians)",
        std::env::consts::ARCH
    );
    line("(a) modexp g^a mod N, 3072-bit N, 256-bit a", modexp);
    line(
        "(b) srp_client handshake (A, process_reply, keys)",
        handshake,
    );
    println!(
        "  ratio handshake / modexp: {:.2}",
        handshake.as_secs_f64() / unit
    );
    println!("  breakdown:");
    line("    process_reply alone (g^a, g^x, S)", process_reply);
    line("    modexp with a 512-bit exponent (as in S)", modexp_512);
    line("    seal + open, 1 KiB envelope", envelope);
}
