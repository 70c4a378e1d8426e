//! Retry delays: exponential with ±20 % jitter, capped, reset after success.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Share of each delay that is randomised either way, so a fleet does not retry in step.
pub const JITTER: f64 = 0.2;

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    rng: StdRng,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self::with_rng(initial, max, StdRng::from_os_rng())
    }

    /// A reproducible schedule for tests.
    pub fn seeded(initial: Duration, max: Duration, seed: u64) -> Self {
        Self::with_rng(initial, max, StdRng::seed_from_u64(seed))
    }

    fn with_rng(initial: Duration, max: Duration, rng: StdRng) -> Self {
        let initial = initial.min(max);
        Self {
            initial,
            max,
            next: initial,
            rng,
        }
    }

    /// The delay before the next attempt; the base doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let factor = self.rng.random_range((1.0 - JITTER)..=(1.0 + JITTER));
        base.mul_f64(factor)
    }

    /// A server's `Retry-After` replaces the computed delay, within the cap; the
    /// exponential base still advances so a server that keeps refusing is not hammered.
    pub fn next_delay_after(&mut self, retry_after: Option<Duration>) -> Duration {
        let computed = self.next_delay();
        match retry_after {
            Some(server) => server.min(self.max),
            None => computed,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The un-jittered delay the next call is based on.
    pub fn base(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within_jitter(delay: Duration, base_secs: f64) -> bool {
        let d = delay.as_secs_f64();
        d >= base_secs * (1.0 - JITTER) - 1e-9 && d <= base_secs * (1.0 + JITTER) + 1e-9
    }

    #[test]
    fn doubles_to_the_cap_with_jitter() {
        let mut backoff = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(32), 7);
        for base in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 32.0, 32.0] {
            let delay = backoff.next_delay();
            assert!(within_jitter(delay, base), "{delay:?} vs {base}");
        }
        backoff.reset();
        assert!(within_jitter(backoff.next_delay(), 1.0));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let mut backoff = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(60), 1);
        assert_eq!(
            backoff.next_delay_after(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff.next_delay_after(Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
        assert_eq!(backoff.base(), Duration::from_secs(4));
    }

    #[test]
    fn initial_above_cap_is_capped() {
        let mut backoff = Backoff::seeded(Duration::from_secs(90), Duration::from_secs(60), 3);
        assert!(within_jitter(backoff.next_delay(), 60.0));
    }
}
