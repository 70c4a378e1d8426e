//! Measuring decoded audio (48 kHz mono): the RMS level over the last second, the dominant
//! frequency and the level of given tones from a Hann-windowed 8192-point spectrum (5.86 Hz per
//! bin) averaged over the non-overlapping blocks of that second (Welch).
//!
//! Levels are dBFS with full scale 1.0: `levelDbfs` is the RMS (a full-scale sine is −3 dBFS), a
//! tone's level is its peak amplitude (a sine of amplitude 0.5 is −6 dBFS, as the contract states
//! the tones the node sends), from the power within ±1 bin of its frequency.

use std::collections::VecDeque;
use std::f64::consts::PI;

/// Sample rate of the decoded audio.
pub(crate) const SAMPLE_RATE: usize = 48_000;
/// Spectrum size: 48000 / 8192 = 5.86 Hz per bin.
pub(crate) const FFT_SIZE: usize = 8192;
/// What levels are measured over (1 s).
const WINDOW: usize = SAMPLE_RATE;
/// Samples between two measurements (200 ms), so measuring stays cheap.
const MEASURE_EVERY: usize = SAMPLE_RATE / 5;
/// The level reported for silence, and the floor of every level.
pub(crate) const FLOOR_DBFS: f64 = -120.0;
/// Below this RMS level there is no dominant frequency.
const QUIET_DBFS: f64 = -90.0;
/// Lowest bin the dominant frequency may be in (about 12 Hz: not DC).
const LOWEST_BIN: usize = 2;

/// What [`Analyzer`] measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioLevels {
    /// RMS over the last second, dBFS.
    pub level_dbfs: f64,
    /// Peak of the spectrum, Hz; `None` before 8192 samples or in silence.
    pub dominant_hz: Option<f64>,
    /// (frequency Hz, peak level dBFS) of every tone asked for.
    pub tones: Vec<(u32, f64)>,
    /// Samples decoded since the stream began.
    pub samples: u64,
}

/// A radix-2 complex FFT of one size, with its twiddles and the Hann window.
#[derive(Debug)]
pub(crate) struct Fft {
    n: usize,
    twiddles: Vec<(f64, f64)>,
    window: Vec<f64>,
}

impl Fft {
    /// `n` must be a power of two.
    pub(crate) fn new(n: usize) -> Self {
        assert!(
            n.is_power_of_two() && n >= 2,
            "FFT size {n} is not a power of two"
        );
        let twiddles = (0..n / 2)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / n as f64;
                (a.cos(), a.sin())
            })
            .collect();
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())
            .collect();
        Self {
            n,
            twiddles,
            window,
        }
    }

    /// In place: `re`/`im` become the DFT of `re + i·im` (both of length `n`).
    pub(crate) fn transform(&self, re: &mut [f64], im: &mut [f64]) {
        let n = self.n;
        assert!(
            re.len() == n && im.len() == n,
            "FFT input of the wrong size"
        );
        let bits = n.trailing_zeros();
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if j > i {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..half {
                    let (wr, wi) = self.twiddles[k * step];
                    let (a, b) = (start + k, start + k + half);
                    let tr = re[b] * wr - im[b] * wi;
                    let ti = re[b] * wi + im[b] * wr;
                    re[b] = re[a] - tr;
                    im[b] = im[a] - ti;
                    re[a] += tr;
                    im[a] += ti;
                }
            }
            len *= 2;
        }
    }

    /// The power spectrum (bins 0..n/2) of the Hann-windowed blocks of `samples`, averaged over
    /// the whole blocks, newest block last; `None` when not even one block is there.
    pub(crate) fn power(&self, samples: &[f32]) -> Option<Vec<f64>> {
        let n = self.n;
        let blocks = samples.len() / n;
        if blocks == 0 {
            return None;
        }
        let skip = samples.len() - blocks * n;
        let mut sum = vec![0.0; n / 2];
        let (mut re, mut im) = (vec![0.0; n], vec![0.0; n]);
        for block in samples[skip..].chunks_exact(n) {
            for (i, (r, s)) in re.iter_mut().zip(block).enumerate() {
                *r = f64::from(*s) * self.window[i];
            }
            im.fill(0.0);
            self.transform(&mut re, &mut im);
            for (k, p) in sum.iter_mut().enumerate() {
                *p += re[k] * re[k] + im[k] * im[k];
            }
        }
        for p in &mut sum {
            *p /= blocks as f64;
        }
        Some(sum)
    }

    /// The peak level (dBFS) of a tone at `hz` in `power`: the power within ±1 bin, scaled so a
    /// sine of amplitude A reads 20·log10(A).
    pub(crate) fn tone_dbfs(&self, power: &[f64], hz: f64) -> f64 {
        let n = self.n as f64;
        let bin = (hz * n / SAMPLE_RATE as f64).round() as usize;
        let band: f64 = power
            .get(bin.saturating_sub(1)..(bin + 2).min(power.len()))
            .map_or(0.0, |b| b.iter().sum());
        let window_energy: f64 = self.window.iter().map(|w| w * w).sum();
        // One-sided: a sine of amplitude A puts n·Σw²·A²/4 into its half of the spectrum.
        dbfs_of_power(4.0 * band / (n * window_energy))
    }

    /// The frequency of the strongest bin (from bin 2), refined between its neighbours
    /// (Gaussian interpolation, exact for a Hann-windowed sine to a fraction of a bin).
    pub(crate) fn dominant_hz(&self, power: &[f64]) -> Option<f64> {
        let (k, _) = power
            .iter()
            .enumerate()
            .skip(LOWEST_BIN)
            .take(power.len().saturating_sub(LOWEST_BIN + 1))
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        let (a, b, c) = (power[k - 1], power[k], power[k + 1]);
        let mut offset = 0.0;
        if a > 0.0 && b > 0.0 && c > 0.0 {
            let (la, lb, lc) = (a.ln(), b.ln(), c.ln());
            let denom = la - 2.0 * lb + lc;
            if denom < 0.0 {
                offset = (0.5 * (la - lc) / denom).clamp(-0.5, 0.5);
            }
        }
        Some((k as f64 + offset) * SAMPLE_RATE as f64 / self.n as f64)
    }
}

/// dBFS of a mean square (or squared amplitude) `p`, floored.
fn dbfs_of_power(p: f64) -> f64 {
    if p <= 0.0 {
        return FLOOR_DBFS;
    }
    (10.0 * p.log10()).max(FLOOR_DBFS)
}

/// RMS level of `samples` in dBFS, floored; silence (or nothing) is the floor.
pub(crate) fn rms_dbfs(samples: impl ExactSizeIterator<Item = f32>) -> f64 {
    let n = samples.len();
    if n == 0 {
        return FLOOR_DBFS;
    }
    let sum: f64 = samples.map(|s| f64::from(s) * f64::from(s)).sum();
    dbfs_of_power(sum / n as f64)
}

/// Keeps the last second of one stream's decoded samples and measures it every 200 ms.
#[derive(Debug)]
pub(crate) struct Analyzer {
    fft: Fft,
    recent: VecDeque<f32>,
    since_measured: usize,
    total: u64,
    tones: Vec<u32>,
}

impl Analyzer {
    /// Measures the level at each of `tones` (Hz) besides the RMS level and dominant frequency.
    pub(crate) fn new(tones: Vec<u32>) -> Self {
        Self {
            fft: Fft::new(FFT_SIZE),
            recent: VecDeque::with_capacity(WINDOW),
            since_measured: 0,
            total: 0,
            tones,
        }
    }

    /// Takes decoded samples; a fresh measurement once 200 ms more arrived.
    pub(crate) fn push(&mut self, samples: &[f32]) -> Option<AudioLevels> {
        self.total += samples.len() as u64;
        self.since_measured += samples.len();
        self.recent.extend(samples.iter().copied());
        let excess = self.recent.len().saturating_sub(WINDOW);
        self.recent.drain(..excess);
        if self.since_measured < MEASURE_EVERY {
            return None;
        }
        self.since_measured = 0;
        Some(self.measure())
    }

    /// Measures the last second now.
    pub(crate) fn measure(&mut self) -> AudioLevels {
        let level_dbfs = rms_dbfs(self.recent.iter().copied());
        let power = self.fft.power(self.recent.make_contiguous());
        let dominant_hz = power
            .as_ref()
            .filter(|_| level_dbfs > QUIET_DBFS)
            .and_then(|p| self.fft.dominant_hz(p))
            .map(|hz| (hz * 10.0).round() / 10.0);
        let tones = self
            .tones
            .iter()
            .map(|&hz| {
                let db = power
                    .as_ref()
                    .map_or(FLOOR_DBFS, |p| self.fft.tone_dbfs(p, f64::from(hz)));
                (hz, (db * 10.0).round() / 10.0)
            })
            .collect();
        AudioLevels {
            level_dbfs: (level_dbfs * 10.0).round() / 10.0,
            dominant_hz,
            tones,
            samples: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, amplitude: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (amplitude * (2.0 * PI * hz * i as f64 / SAMPLE_RATE as f64).sin()) as f32)
            .collect()
    }

    #[test]
    fn fft_matches_a_direct_dft() {
        let fft = Fft::new(16);
        let input: Vec<f64> = (0..16)
            .map(|i| f64::from((i * 7 % 5) as u8) - 2.0)
            .collect();
        let (mut re, mut im) = (input.clone(), vec![0.0; 16]);
        fft.transform(&mut re, &mut im);
        for k in 0..16 {
            let (mut dr, mut di) = (0.0, 0.0);
            for (i, x) in input.iter().enumerate() {
                let a = -2.0 * PI * (k * i) as f64 / 16.0;
                dr += x * a.cos();
                di += x * a.sin();
            }
            assert!(
                (re[k] - dr).abs() < 1e-9 && (im[k] - di).abs() < 1e-9,
                "bin {k}"
            );
        }
    }

    #[test]
    fn dominant_frequency_and_tone_levels_of_a_mix() {
        let fft = Fft::new(FFT_SIZE);
        // Off-bin frequencies on purpose (450 Hz is bin 76.8).
        let mut mix = sine(450.0, 0.5, WINDOW);
        for (s, q) in mix.iter_mut().zip(sine(1037.0, 0.0316, WINDOW)) {
            *s += q;
        }
        let power = fft.power(&mix).expect("five blocks");
        let hz = fft.dominant_hz(&power).expect("a peak");
        assert!((hz - 450.0).abs() < 1.0, "{hz}");
        let loud = fft.tone_dbfs(&power, 450.0);
        assert!((loud - -6.0).abs() < 0.3, "{loud}");
        let quiet = fft.tone_dbfs(&power, 1037.0);
        assert!((quiet - -30.0).abs() < 0.3, "{quiet}");
        assert!(fft.tone_dbfs(&power, 750.0) < -70.0);
        assert!(fft.power(&mix[..FFT_SIZE - 1]).is_none());
    }

    #[test]
    fn rms_level_of_a_sine_and_of_silence() {
        let s = sine(1000.0, 0.25, WINDOW);
        let db = rms_dbfs(s.iter().copied());
        assert!((db - -15.05).abs() < 0.05, "{db}");
        assert_eq!(rms_dbfs(vec![0.0_f32; 100].into_iter()), FLOOR_DBFS);
        assert_eq!(rms_dbfs(Vec::<f32>::new().into_iter()), FLOOR_DBFS);
    }

    #[test]
    fn analyzer_measures_every_200_ms_over_the_last_second() {
        let mut a = Analyzer::new(vec![1000, 440]);
        let chunk = sine(440.0, 0.5, 960);
        let mut measured = Vec::new();
        for _ in 0..20 {
            measured.extend(a.push(&chunk));
        }
        assert_eq!(measured.len(), 2, "400 ms of audio");
        let first = &measured[0];
        assert_eq!((first.samples, first.dominant_hz.is_some()), (9600, true));
        // 2 s of 1 kHz after the 440 Hz: only the last second counts.
        let tone = sine(1000.0, 0.25, 96_000);
        let last = tone
            .chunks(960)
            .filter_map(|c| a.push(c))
            .last()
            .expect("measured");
        let hz = last.dominant_hz.expect("a peak");
        assert!((hz - 1000.0).abs() < 1.0, "{hz}");
        assert!((last.level_dbfs - -15.1).abs() < 0.2, "{last:?}");
        assert!(last.tones[1].1 < -60.0, "no 440 Hz left: {last:?}");
        assert!((last.tones[0].1 - -12.0).abs() < 0.3, "{last:?}");
        a.push(&vec![0.0; WINDOW]);
        let silent = a.measure();
        assert_eq!((silent.level_dbfs, silent.dominant_hz), (FLOOR_DBFS, None));
        assert_eq!(silent.tones[0].1, FLOOR_DBFS);
    }
}
