//! Buttons and switches: a pure debouncer and the edge-driven tasks built on it.
//!
//! Levels are logical: active = high. Boards wire buttons and the privacy switch with
//! pull-downs so a press or a closed switch reads high. Inverted wiring belongs in the
//! kernel's `ACTIVE_LOW` line flag (which inverts what the line reads), not in these
//! drivers, so they stay the same on every board.

use std::time::Duration;

use embedded_hal::digital::InputPin;
use embedded_hal_async::digital::Wait;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

use super::PinErrorLog;
use crate::hw::board::GpioRole;
use crate::shutdown::Shutdown;

/// How long a level must hold before it counts: longer than a tactile switch bounces
/// (typically under 10 ms), shorter than a person notices.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(30);

/// How long a driver waits after a pin error before trying again, so a dead line costs
/// one log line and one retry a second instead of a busy loop.
pub const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A level that held for the settle time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    pub level: bool,
    /// When the line reached this level (its last edge), not when the settle time ran out.
    pub at: Instant,
}

/// Turns raw edges and level readings into committed level changes.
///
/// Pure: the caller supplies the time, so it is tested without clocks. Feed it with
/// [`edge`](Self::edge) and [`sample`](Self::sample); call [`poll`](Self::poll) at
/// [`deadline`](Self::deadline) to learn whether a new level was committed.
#[derive(Debug, Clone)]
pub struct Debouncer {
    settle: Duration,
    committed: Option<bool>,
    raw: Option<bool>,
    /// Time of the last raw activity not yet settled.
    unsettled_since: Option<Instant>,
}

impl Debouncer {
    /// Nothing committed yet: the first level that holds for `settle` is committed.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            committed: None,
            raw: None,
            unsettled_since: None,
        }
    }

    /// Starts with `level` committed, as read when a driver starts; a button held down
    /// at start is therefore not a press.
    pub fn with_level(settle: Duration, level: bool) -> Self {
        Self {
            settle,
            committed: Some(level),
            raw: Some(level),
            unsettled_since: None,
        }
    }

    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// The last committed level.
    pub fn committed(&self) -> Option<bool> {
        self.committed
    }

    /// An edge happened at `at` and the line then read `level`. Restarts the settle
    /// time even if the level reads the same as before: the contact is still moving.
    pub fn edge(&mut self, level: bool, at: Instant) {
        self.raw = Some(level);
        self.unsettled_since = Some(at);
    }

    /// The line read `level` at `at`. Restarts the settle time only if the level differs
    /// from the last one seen (an edge was missed).
    pub fn sample(&mut self, level: bool, at: Instant) {
        if self.raw != Some(level) {
            self.edge(level, at);
        }
    }

    /// When [`poll`](Self::poll) may commit a level; `None` while nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.unsettled_since.map(|since| since + self.settle)
    }

    /// Commits the raw level if it held for the settle time by `now`; returns it if it
    /// differs from the previously committed one.
    pub fn poll(&mut self, now: Instant) -> Option<LevelChange> {
        let since = self.unsettled_since?;
        if now < since + self.settle {
            return None;
        }
        self.unsettled_since = None;
        let level = self.raw?;
        if self.committed == Some(level) {
            return None;
        }
        self.committed = Some(level);
        Some(LevelChange { level, at: since })
    }
}

/// A button press: the committed change from released to pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonPress {
    pub role: GpioRole,
    /// When the button went down (its last bounce), not when the debounce ended.
    pub at: Instant,
}

/// Reports each press of the button on `pin` to `presses`, until `shutdown` or until
/// nobody listens. Releases are not reported; a button held at start is not a press.
pub async fn run_button<P: InputPin + Wait>(
    role: GpioRole,
    pin: P,
    settle: Duration,
    presses: mpsc::Sender<ButtonPress>,
    mut shutdown: Shutdown,
) {
    let mut input = tokio::select! {
        input = DebouncedInput::start(role, pin, settle) => input,
        _ = shutdown.recv() => return,
    };
    loop {
        let change = tokio::select! {
            change = input.next_change() => change,
            _ = shutdown.recv() => return,
        };
        if !change.level {
            continue;
        }
        let press = ButtonPress {
            role,
            at: change.at,
        };
        tokio::select! {
            sent = presses.send(press) => if sent.is_err() {
                tracing::debug!(%role, "nobody listens to button presses any more");
                return;
            },
            _ = shutdown.recv() => return,
        }
    }
}

/// Publishes the switch on `pin` to `state` (true = closed = high): the level at start,
/// then every committed change, until `shutdown`.
pub async fn run_switch<P: InputPin + Wait>(
    role: GpioRole,
    pin: P,
    settle: Duration,
    state: watch::Sender<bool>,
    mut shutdown: Shutdown,
) {
    let mut input = tokio::select! {
        input = DebouncedInput::start(role, pin, settle) => input,
        _ = shutdown.recv() => return,
    };
    // send_replace stores the level even while no receiver exists yet.
    state.send_replace(input.level());
    loop {
        tokio::select! {
            change = input.next_change() => { state.send_replace(change.level); }
            _ = shutdown.recv() => return,
        }
    }
}

/// An input pin behind a debouncer. Every await is cancel-safe (state changes happen
/// between awaits), so callers may race it against shutdown.
struct DebouncedInput<P> {
    role: GpioRole,
    pin: P,
    debouncer: Debouncer,
    errors: PinErrorLog,
}

impl<P: InputPin + Wait> DebouncedInput<P> {
    /// Reads the starting level, retrying after errors.
    async fn start(role: GpioRole, mut pin: P, settle: Duration) -> Self {
        let mut errors = PinErrorLog::new(role);
        loop {
            if let Some(level) = errors.check(pin.is_high()) {
                return Self {
                    role,
                    pin,
                    debouncer: Debouncer::with_level(settle, level),
                    errors,
                };
            }
            sleep(ERROR_BACKOFF).await;
        }
    }

    fn level(&self) -> bool {
        // `start` always commits a level.
        self.debouncer.committed().unwrap_or(false)
    }

    /// Waits for the next committed level change.
    async fn next_change(&mut self) -> LevelChange {
        loop {
            // Edge-driven: sleep only while an edge is settling, otherwise just wait.
            let deadline = self.debouncer.deadline();
            let settled = tokio::select! {
                edge = self.pin.wait_for_any_edge() => match edge {
                    Ok(()) => false,
                    Err(e) => {
                        self.errors.check(Err::<(), _>(e));
                        sleep(ERROR_BACKOFF).await;
                        continue;
                    }
                },
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => true,
            };
            let Some(level) = self.errors.check(self.pin.is_high()) else {
                sleep(ERROR_BACKOFF).await;
                continue;
            };
            let now = Instant::now();
            if settled {
                self.debouncer.sample(level, now);
                if let Some(change) = self.debouncer.poll(now) {
                    tracing::debug!(role = %self.role, level = change.level, "input changed");
                    return change;
                }
            } else {
                self.debouncer.edge(level, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::gpio::fake::{FakeInput, FakeInputHandle};
    use crate::hw::gpio::test_support::signal;
    use crate::shutdown::Tasks;
    use proptest::prelude::*;

    const SETTLE: Duration = DEFAULT_SETTLE;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    // ---- the pure debouncer ----

    #[test]
    fn a_level_commits_after_holding_for_the_settle_time() {
        let t0 = Instant::now();
        let mut debouncer = Debouncer::with_level(SETTLE, false);
        debouncer.edge(true, t0);
        assert_eq!(debouncer.deadline(), Some(t0 + SETTLE));
        assert_eq!(debouncer.poll(t0 + ms(29)), None);
        assert_eq!(
            debouncer.poll(t0 + SETTLE),
            Some(LevelChange {
                level: true,
                at: t0
            })
        );
        assert_eq!(debouncer.deadline(), None);
        assert_eq!(debouncer.poll(t0 + ms(100)), None);
    }

    #[test]
    fn an_edge_restarts_the_settle_time_even_at_the_same_level() {
        let t0 = Instant::now();
        let mut debouncer = Debouncer::with_level(SETTLE, false);
        debouncer.edge(true, t0);
        debouncer.edge(true, t0 + ms(20));
        assert_eq!(debouncer.poll(t0 + ms(40)), None);
        assert_eq!(debouncer.poll(t0 + ms(50)).map(|c| c.at), Some(t0 + ms(20)));
    }

    #[test]
    fn a_glitch_back_to_the_committed_level_commits_nothing() {
        let t0 = Instant::now();
        let mut debouncer = Debouncer::with_level(SETTLE, false);
        debouncer.edge(true, t0);
        debouncer.edge(false, t0 + ms(5));
        assert_eq!(debouncer.poll(t0 + ms(100)), None);
        assert_eq!(debouncer.committed(), Some(false));
    }

    #[test]
    fn a_sample_restarts_only_when_the_level_differs() {
        let t0 = Instant::now();
        let mut debouncer = Debouncer::new(SETTLE);
        debouncer.sample(true, t0);
        debouncer.sample(true, t0 + ms(20));
        assert_eq!(debouncer.poll(t0 + SETTLE).map(|c| c.level), Some(true));
        debouncer.sample(false, t0 + ms(40));
        assert_eq!(debouncer.deadline(), Some(t0 + ms(40) + SETTLE));
    }

    proptest! {
        /// Any bouncing whose levels each last less than the settle time, then a stable
        /// level: exactly that level is committed, once, dated at its last edge (nothing
        /// if it is the level already committed). Fed either as edges or as readings
        /// (readings alternate, else two equal ones in a row would be one long level).
        #[test]
        fn bounces_then_a_stable_level_commit_the_final_level_once(
            initial in proptest::option::of(any::<bool>()),
            first in any::<bool>(),
            bounces in proptest::collection::vec(
                (any::<bool>(), 0..SETTLE.as_millis() as u64),
                0..40,
            ),
            last in any::<bool>(),
            as_edges in any::<bool>(),
        ) {
            let t0 = Instant::now();
            let mut debouncer = match initial {
                Some(level) => Debouncer::with_level(SETTLE, level),
                None => Debouncer::new(SETTLE),
            };
            let mut commits = Vec::new();
            let mut at = t0;
            let mut alternating = first;
            for &(edge_level, held_ms) in &bounces {
                if as_edges {
                    debouncer.edge(edge_level, at);
                } else {
                    debouncer.sample(alternating, at);
                    alternating = !alternating;
                }
                commits.extend(debouncer.poll(at));
                at += ms(held_ms);
                commits.extend(debouncer.poll(at));
            }
            debouncer.edge(last, at);
            let settled_from = at;
            for step in 0..100 {
                commits.extend(debouncer.poll(at + ms(step)));
                debouncer.sample(last, at + ms(step));
            }
            if initial == Some(last) {
                prop_assert_eq!(commits, vec![]);
            } else {
                prop_assert_eq!(commits, vec![LevelChange { level: last, at: settled_from }]);
            }
            prop_assert_eq!(debouncer.committed(), Some(last));
        }
    }

    // ---- the button task ----

    struct Button {
        handle: FakeInputHandle,
        presses: mpsc::Receiver<ButtonPress>,
        _stop: Tasks,
    }

    fn spawn_button(initial: bool) -> Button {
        let (pin, handle) = FakeInput::new(initial);
        let (tx, presses) = mpsc::channel(8);
        let (stop, shutdown) = signal();
        tokio::spawn(run_button(GpioRole::JoinButton, pin, SETTLE, tx, shutdown));
        Button {
            handle,
            presses,
            _stop: stop,
        }
    }

    impl Button {
        fn pending(&mut self) -> Vec<ButtonPress> {
            std::iter::from_fn(|| self.presses.try_recv().ok()).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bounces_within_the_settle_time_make_one_press() {
        let mut button = spawn_button(false);
        tokio::task::yield_now().await;
        let down = Instant::now();
        button.handle.bounce(&[true, false, true]);
        sleep(ms(5)).await;
        button.handle.bounce(&[false, true]);
        sleep(ms(20)).await;
        button.handle.bounce(&[false, true]);
        let settled_from = Instant::now();
        assert!(settled_from - down < SETTLE);
        let press = button.presses.recv().await.unwrap();
        assert_eq!(
            press,
            ButtonPress {
                role: GpioRole::JoinButton,
                at: settled_from
            }
        );
        assert_eq!(Instant::now(), settled_from + SETTLE);
        sleep(ms(500)).await;
        assert_eq!(button.pending(), []);
    }

    #[tokio::test(start_paused = true)]
    async fn two_presses_further_apart_than_the_settle_time_are_two_presses() {
        let mut button = spawn_button(false);
        tokio::task::yield_now().await;
        for _ in 0..2 {
            button.handle.bounce(&[true, false, true]);
            sleep(ms(100)).await;
            button.handle.bounce(&[false, true, false]);
            sleep(ms(100)).await;
        }
        assert_eq!(button.pending().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_glitch_shorter_than_the_settle_time_is_no_press() {
        let mut button = spawn_button(false);
        tokio::task::yield_now().await;
        button.handle.set(true);
        sleep(ms(10)).await;
        button.handle.set(false);
        sleep(ms(500)).await;
        assert_eq!(button.pending(), []);
    }

    #[tokio::test(start_paused = true)]
    async fn release_is_not_a_press_and_a_held_button_at_start_is_not_either() {
        let mut button = spawn_button(true);
        tokio::task::yield_now().await;
        sleep(ms(100)).await;
        button.handle.set(false);
        sleep(ms(100)).await;
        assert_eq!(button.pending(), []);
        button.handle.set(true);
        sleep(ms(100)).await;
        assert_eq!(button.pending().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_button_task_sleeps_between_edges() {
        let button = spawn_button(false);
        tokio::task::yield_now().await;
        let calls = button.handle.calls();
        sleep(Duration::from_secs(3600)).await;
        // One wait stays pending all along: no polling.
        assert_eq!(button.handle.calls(), calls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_pin_is_retried_after_a_backoff() {
        let logs = crate::hw::gpio::test_support::CapturedLogs::start();
        let (pin, handle) = FakeInput::new(false);
        handle.fail(Some("EIO"));
        let (tx, mut presses) = mpsc::channel(8);
        let (_stop, shutdown) = signal();
        tokio::spawn(run_button(GpioRole::MuteButton, pin, SETTLE, tx, shutdown));
        sleep(ms(10_500)).await;
        // One read at start and one per second after.
        assert_eq!(handle.calls(), 11);
        assert_eq!(logs.count("EIO"), 1);
        handle.fail(None);
        sleep(ERROR_BACKOFF).await;
        handle.set(true);
        let press = presses.recv().await.unwrap();
        assert_eq!(press.role, GpioRole::MuteButton);
    }

    #[tokio::test(start_paused = true)]
    async fn the_button_task_ends_on_shutdown() {
        let (pin, _handle) = FakeInput::new(false);
        let (tx, _presses) = mpsc::channel(8);
        let (stop, shutdown) = signal();
        let task = tokio::spawn(run_button(GpioRole::JoinButton, pin, SETTLE, tx, shutdown));
        drop(stop);
        task.await.unwrap();
    }

    // ---- the privacy switch ----

    #[tokio::test(start_paused = true)]
    async fn the_switch_publishes_its_initial_level_and_settled_changes() {
        let (pin, handle) = FakeInput::new(true);
        let (tx, mut state) = watch::channel(false);
        let (_stop, shutdown) = signal();
        tokio::spawn(run_switch(
            GpioRole::PrivacySwitch,
            pin,
            SETTLE,
            tx,
            shutdown,
        ));
        state.changed().await.unwrap();
        assert!(*state.borrow_and_update());

        // Opening, with bounces: one change, after the settle time.
        let opened = Instant::now();
        handle.bounce(&[false, true, false]);
        state.changed().await.unwrap();
        assert!(!*state.borrow_and_update());
        assert_eq!(Instant::now(), opened + SETTLE);

        // A bounce shorter than the settle time changes nothing.
        handle.set(true);
        sleep(ms(10)).await;
        handle.set(false);
        sleep(ms(200)).await;
        assert!(!state.has_changed().unwrap());

        // Closing.
        handle.set(true);
        state.changed().await.unwrap();
        assert!(*state.borrow_and_update());
    }

    #[allow(dead_code)]
    fn the_drivers_can_be_spawned_on_a_multi_threaded_runtime(
        input: crate::hw::gpio::CdevInput,
        output: linux_embedded_hal::CdevPin,
        presses: mpsc::Sender<ButtonPress>,
        patterns: watch::Receiver<crate::hw::gpio::LedPattern>,
        shutdown: Shutdown,
        other: Shutdown,
    ) {
        fn send<T: Send + 'static>(_: T) {}
        send(run_button(
            GpioRole::JoinButton,
            input,
            SETTLE,
            presses,
            shutdown,
        ));
        send(crate::hw::gpio::run_led(
            GpioRole::StatusLed,
            output,
            patterns,
            other,
        ));
    }
}
