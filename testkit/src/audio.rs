//! Measuring sound that roomd wrote to a file sink: the level of one tone (Goertzel), the
//! whole level (RMS), both in dBFS. Written here, apart from roomd and the sim, so neither
//! measures itself.

use std::path::Path;

pub const RATE: u32 = 48_000;

/// The last `seconds` of a raw S16LE mono file at [`RATE`], as samples in −1..1; fewer
/// when the file is shorter.
pub fn tail_s16_mono(path: &Path, seconds: f64) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let want = ((seconds * f64::from(RATE)) as usize) * 2;
    let whole = bytes.len() & !1;
    let start = whole.saturating_sub(want);
    bytes[start..whole]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// RMS level in dBFS (a full-scale sine is −3 dBFS); −120 for silence or nothing.
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return -120.0;
    }
    let mean = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64;
    (10.0 * mean.log10()).max(-120.0)
}

/// The RMS level of the `hz` component in dBFS (Goertzel over a Hann window), on the same
/// scale as [`rms_dbfs`]: a lone sine gives the same figure from both.
pub fn tone_dbfs(samples: &[f32], hz: f64) -> f64 {
    let n = samples.len();
    if n < 2 {
        return -120.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0_f64, 0.0_f64);
    let mut window_sum = 0.0;
    for (i, x) in samples.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
        window_sum += hann;
        let s0 = f64::from(*x) * hann + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // Peak amplitude of the component, then its RMS (÷√2).
    let amplitude = 2.0 * power.max(0.0).sqrt() / window_sum;
    (20.0 * (amplitude / std::f64::consts::SQRT_2).log10()).max(-120.0)
}

/// The level of the `hz` component as the median over 50 ms blocks: a dropout (a late
/// buffer the mixer played as silence on a loaded machine) moves it only when it fills most
/// of the window.
pub fn steady_tone_dbfs(samples: &[f32], hz: f64) -> f64 {
    let block = (RATE / 20) as usize;
    let mut levels: Vec<f64> = samples
        .chunks_exact(block)
        .map(|b| tone_dbfs(b, hz))
        .collect();
    if levels.is_empty() {
        return tone_dbfs(samples, hz);
    }
    levels.sort_by(f64::total_cmp);
    levels[levels.len() / 2]
}

/// Of `candidates`, the frequency with the highest level.
pub fn loudest_of(samples: &[f32], candidates: &[f64]) -> f64 {
    candidates
        .iter()
        .copied()
        .max_by(|a, b| tone_dbfs(samples, *a).total_cmp(&tone_dbfs(samples, *b)))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, amplitude: f32, seconds: f64) -> Vec<f32> {
        (0..(seconds * f64::from(RATE)) as usize)
            .map(|i| {
                amplitude
                    * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(RATE)).sin() as f32
            })
            .collect()
    }

    #[test]
    fn a_lone_sine_measures_the_same_both_ways() {
        let s = sine(450.0, 0.5, 0.5);
        assert!((rms_dbfs(&s) - (-9.03)).abs() < 0.1, "{}", rms_dbfs(&s));
        assert!(
            (tone_dbfs(&s, 450.0) - (-9.03)).abs() < 0.3,
            "{}",
            tone_dbfs(&s, 450.0)
        );
        assert!(tone_dbfs(&s, 750.0) < -60.0);
        assert_eq!(loudest_of(&s, &[300.0, 450.0, 600.0]), 450.0);
        // Silence in a third of the window leaves the steady level where it was.
        let mut gappy = s.clone();
        gappy[..8000].iter_mut().for_each(|x| *x = 0.0);
        assert!((steady_tone_dbfs(&gappy, 450.0) - (-9.03)).abs() < 0.5);
    }
}
