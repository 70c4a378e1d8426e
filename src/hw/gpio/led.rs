//! LED patterns and the task that plays them on an output pin.
//!
//! A pattern is a pure function of the time since it started ([`level_at`],
//! [`next_change`]); [`run_led`] only sleeps until the next level change, so the task
//! costs nothing between blinks and `tokio::time::pause` tests see exact edges.

use std::time::Duration;

use embedded_hal::digital::OutputPin;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::PinErrorLog;
use crate::hw::board::GpioRole;
use crate::shutdown::Shutdown;

/// What an LED shows. The daemon picks the pattern; the LED task only plays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedPattern {
    /// Dark.
    #[default]
    Off,
    /// Steadily lit.
    On,
    /// Slow blink, 500 ms on / 500 ms off: something is in progress (activation).
    Activating,
    /// Fast blink, 125 ms on / 125 ms off: needs attention.
    Error,
    /// Double flash (on 100, off 100, on 100, off 700 ms): an incoming call.
    Ringing,
}

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

// One period as `(level, length)` phases, starting lit. Consecutive phases (wrapping
// around) alternate, so every boundary is a level change.
const ACTIVATING: &[(bool, Duration)] = &[(true, ms(500)), (false, ms(500))];
const ERROR: &[(bool, Duration)] = &[(true, ms(125)), (false, ms(125))];
const RINGING: &[(bool, Duration)] = &[
    (true, ms(100)),
    (false, ms(100)),
    (true, ms(100)),
    (false, ms(700)),
];

impl LedPattern {
    /// The blink phases; empty for steady patterns.
    fn phases(self) -> &'static [(bool, Duration)] {
        match self {
            LedPattern::Off | LedPattern::On => &[],
            LedPattern::Activating => ACTIVATING,
            LedPattern::Error => ERROR,
            LedPattern::Ringing => RINGING,
        }
    }

    fn period(self) -> Duration {
        self.phases().iter().map(|(_, length)| *length).sum()
    }
}

/// The LED level `elapsed` after `pattern` started (true = lit).
pub fn level_at(pattern: LedPattern, elapsed: Duration) -> bool {
    match pattern {
        LedPattern::Off => false,
        LedPattern::On => true,
        blinking => phase_at(blinking, elapsed).0,
    }
}

/// When, counted from the pattern's start like `elapsed`, the level next changes after
/// `elapsed`; `None` for steady patterns. Absolute rather than "time left" so a task that
/// wakes late does not drift.
pub fn next_change(pattern: LedPattern, elapsed: Duration) -> Option<Duration> {
    if pattern.phases().is_empty() {
        return None;
    }
    Some(phase_at(pattern, elapsed).1)
}

/// The level at `elapsed` and the end of its phase (both on the pattern's time axis).
/// Phases are half-open: at a boundary the next phase has begun.
fn phase_at(pattern: LedPattern, elapsed: Duration) -> (bool, Duration) {
    let period = pattern.period();
    let cycles = (elapsed.as_nanos() / period.as_nanos()) as u32;
    let cycle_start = period * cycles;
    let mut phase_end = cycle_start;
    for &(level, length) in pattern.phases() {
        phase_end += length;
        if elapsed < phase_end {
            return (level, phase_end);
        }
    }
    unreachable!("elapsed lies within its own cycle")
}

/// Plays the pattern from `patterns` on `pin` until `shutdown`, then turns the LED off.
///
/// A new pattern starts from its beginning (so a blink is never cut short by the
/// remains of the previous one); sending the pattern already playing changes nothing.
/// Pin errors are logged once per distinct error and the task keeps going, so a flaky
/// LED never takes the daemon down. If the sender goes away the last pattern keeps
/// playing until shutdown.
pub async fn run_led<P: OutputPin>(
    role: GpioRole,
    mut pin: P,
    mut patterns: watch::Receiver<LedPattern>,
    mut shutdown: Shutdown,
) {
    let mut errors = PinErrorLog::new(role);
    let mut pattern = *patterns.borrow_and_update();
    let mut started = Instant::now();
    let mut sender_alive = true;
    loop {
        let elapsed = Instant::now() - started;
        errors.check(set_level(&mut pin, level_at(pattern, elapsed)));
        let wake_at = next_change(pattern, elapsed).map(|at| started + at);
        tokio::select! {
            _ = shutdown.recv() => break,
            changed = patterns.changed(), if sender_alive => {
                if changed.is_err() {
                    sender_alive = false;
                    continue;
                }
                let new = *patterns.borrow_and_update();
                if new != pattern {
                    pattern = new;
                    started = Instant::now();
                }
            }
            _ = sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => {}
        }
    }
    errors.check(pin.set_low());
}

fn set_level<P: OutputPin>(pin: &mut P, lit: bool) -> Result<(), P::Error> {
    if lit { pin.set_high() } else { pin.set_low() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::gpio::fake::FakeOutput;
    use crate::hw::gpio::test_support::{CapturedLogs, signal};

    #[test]
    fn steady_patterns_never_change() {
        for elapsed in [ms(0), ms(499), ms(500), ms(10_000)] {
            assert!(!level_at(LedPattern::Off, elapsed));
            assert!(level_at(LedPattern::On, elapsed));
            assert_eq!(next_change(LedPattern::Off, elapsed), None);
            assert_eq!(next_change(LedPattern::On, elapsed), None);
        }
    }

    #[test]
    fn blink_levels_and_changes_follow_the_phases() {
        use LedPattern::*;
        assert!(level_at(Activating, ms(0)));
        assert!(level_at(Activating, ms(499)));
        assert!(!level_at(Activating, ms(500)));
        assert!(level_at(Activating, ms(1000)));
        assert_eq!(next_change(Activating, ms(0)), Some(ms(500)));
        assert_eq!(next_change(Activating, ms(500)), Some(ms(1000)));
        assert_eq!(next_change(Activating, ms(1700)), Some(ms(2000)));

        assert!(!level_at(Error, ms(125)));
        assert_eq!(next_change(Error, ms(130)), Some(ms(250)));

        let ringing: Vec<bool> = [0, 100, 200, 300, 999, 1000]
            .map(|t| level_at(Ringing, ms(t)))
            .into();
        assert_eq!(ringing, [true, false, true, false, false, true]);
        assert_eq!(next_change(Ringing, ms(300)), Some(ms(1000)));
    }

    #[test]
    fn every_phase_boundary_is_a_level_change() {
        for pattern in [
            LedPattern::Activating,
            LedPattern::Error,
            LedPattern::Ringing,
        ] {
            let phases = pattern.phases();
            for (i, (level, _)) in phases.iter().enumerate() {
                assert_ne!(*level, phases[(i + 1) % phases.len()].0, "{pattern:?}");
            }
        }
    }

    /// The transitions `pattern` should produce in `(0, window]` after starting at `start`.
    fn expected_transitions(
        pattern: LedPattern,
        start: Instant,
        window: Duration,
    ) -> Vec<(Instant, bool)> {
        let mut expected = Vec::new();
        let mut at = Duration::ZERO;
        while let Some(next) = next_change(pattern, at) {
            if next > window {
                break;
            }
            expected.push((start + next, level_at(pattern, next)));
            at = next;
        }
        expected
    }

    async fn blink_for_two_seconds(pattern: LedPattern) {
        let (pin, leds) = FakeOutput::new();
        let (_tx, patterns) = watch::channel(pattern);
        let (stop, shutdown) = signal();
        let start = Instant::now();
        let task = tokio::spawn(run_led(GpioRole::StatusLed, pin, patterns, shutdown));
        // Ends between two edges: an edge at the very instant the test wakes could be
        // recorded before or after the test looks.
        tokio::time::sleep(ms(2010)).await;
        let mut history = leds.history();
        // The first entry is the pattern's first level, set at the start.
        assert_eq!(history.remove(0), (start, true));
        assert_eq!(history, expected_transitions(pattern, start, ms(2010)));
        drop(stop);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn activating_blinks_exactly_as_level_at_says() {
        blink_for_two_seconds(LedPattern::Activating).await;
    }

    #[tokio::test(start_paused = true)]
    async fn error_blinks_exactly_as_level_at_says() {
        blink_for_two_seconds(LedPattern::Error).await;
    }

    #[tokio::test(start_paused = true)]
    async fn ringing_double_flashes() {
        blink_for_two_seconds(LedPattern::Ringing).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_pattern_starts_from_its_beginning() {
        let (pin, leds) = FakeOutput::new();
        let (tx, patterns) = watch::channel(LedPattern::Activating);
        let (_stop, shutdown) = signal();
        tokio::spawn(run_led(GpioRole::StatusLed, pin, patterns, shutdown));
        // 300 ms into the slow blink's lit phase.
        tokio::time::sleep(ms(300)).await;
        let switched = Instant::now();
        tx.send(LedPattern::Error).unwrap();
        tokio::time::sleep(ms(1010)).await;
        let after: Vec<_> = leds
            .history()
            .into_iter()
            .filter(|(at, _)| *at > switched)
            .collect();
        // Still lit at the switch (Error starts lit), so the first edge is Error's first
        // off edge 125 ms later, not Activating's at 500 ms.
        assert_eq!(
            after,
            expected_transitions(LedPattern::Error, switched, ms(1010))
        );

        // Resending the playing pattern does not restart it: 1060 ms into the pattern,
        // its next edge is at 1125 ms; a restart would move it to 1060 + 125 ms.
        let before = leds.history().len();
        tokio::time::sleep(ms(50)).await;
        tx.send(LedPattern::Error).unwrap();
        tokio::time::sleep(ms(75)).await;
        assert_eq!(leds.history().len(), before + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_patterns_set_once_and_stay() {
        let (pin, mut leds) = FakeOutput::new();
        let (tx, patterns) = watch::channel(LedPattern::On);
        let (_stop, shutdown) = signal();
        tokio::spawn(run_led(GpioRole::MuteLed, pin, patterns, shutdown));
        assert!(leds.changed().await);
        tokio::time::sleep(ms(5000)).await;
        assert!(leds.level());
        tx.send(LedPattern::Off).unwrap();
        assert!(!leds.changed().await);
        tokio::time::sleep(ms(5000)).await;
        assert!(!leds.level());
        assert_eq!(leds.history().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_turns_the_led_off() {
        let (pin, leds) = FakeOutput::new();
        let (_tx, patterns) = watch::channel(LedPattern::On);
        let (stop, shutdown) = signal();
        let task = tokio::spawn(run_led(GpioRole::MeetingLed, pin, patterns, shutdown));
        tokio::time::sleep(ms(10)).await;
        assert!(leds.level());
        drop(stop);
        task.await.unwrap();
        assert!(!leds.level());
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_pattern_keeps_playing_when_the_sender_goes_away() {
        let (pin, leds) = FakeOutput::new();
        let (tx, patterns) = watch::channel(LedPattern::Error);
        let (_stop, shutdown) = signal();
        tokio::spawn(run_led(GpioRole::StatusLed, pin, patterns, shutdown));
        drop(tx);
        tokio::time::sleep(ms(1010)).await;
        // The initial set plus 8 edges in one second of fast blink.
        assert_eq!(leds.history().len(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pin_error_is_logged_once_and_the_led_goes_on() {
        let logs = CapturedLogs::start();
        let (pin, leds) = FakeOutput::new();
        let (_tx, patterns) = watch::channel(LedPattern::Error);
        let (_stop, shutdown) = signal();
        tokio::spawn(run_led(GpioRole::StatusLed, pin, patterns, shutdown));
        tokio::time::sleep(ms(10)).await;
        leds.fail(Some("line released by the kernel"));
        tokio::time::sleep(ms(1000)).await; // 8 failed toggles
        assert_eq!(logs.count("line released by the kernel"), 1);
        assert!(logs.contains("status_led"));
        leds.fail(None);
        let recovered_at = Instant::now();
        tokio::time::sleep(ms(1000)).await; // to 2010 ms: edges at 1125 ..= 2000 ms
        assert_eq!(
            leds.history()
                .iter()
                .filter(|(at, _)| *at > recovered_at)
                .count(),
            8,
            "blinking resumes"
        );
        assert_eq!(logs.count("line released by the kernel"), 1);
    }
}
