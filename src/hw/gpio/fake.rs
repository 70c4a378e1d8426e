//! Fake pins: the `sim` backend's lines and the drivers' test doubles.
//!
//! Each pin comes with a cloneable handle that plays the outside world: it reads what
//! an LED shows, or moves a button. State lives in `tokio::sync::watch` channels, so
//! waiting is wake-up driven (no polling) and works under `tokio::time::pause`.

use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin, StatefulOutputPin};
use embedded_hal_async::digital::Wait;
use tokio::sync::watch;
use tokio::time::Instant;

/// A failure a test told a fake pin to report.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
/// fake GPIO failure: {0}
pub struct FakeError(pub String);

impl embedded_hal::digital::Error for FakeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn check(failure: &Mutex<Option<String>>) -> Result<(), FakeError> {
    match &*lock(failure) {
        Some(message) => Err(FakeError(message.clone())),
        None => Ok(()),
    }
}

#[derive(Debug)]
struct OutputShared {
    history: Mutex<Vec<(Instant, bool)>>,
    failure: Mutex<Option<String>>,
    level: watch::Sender<bool>,
}

/// An output line that records its level changes; starts low.
#[derive(Debug)]
pub struct FakeOutput {
    shared: Arc<OutputShared>,
}

/// The outside view of a [`FakeOutput`]: what the LED shows and has shown.
#[derive(Debug, Clone)]
pub struct FakeOutputHandle {
    shared: Arc<OutputShared>,
    level: watch::Receiver<bool>,
}

impl FakeOutput {
    pub fn new() -> (FakeOutput, FakeOutputHandle) {
        let (level, _) = watch::channel(false);
        let shared = Arc::new(OutputShared {
            history: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            level,
        });
        let pin = FakeOutput { shared };
        let handle = pin.handle();
        (pin, handle)
    }

    pub fn handle(&self) -> FakeOutputHandle {
        FakeOutputHandle {
            shared: self.shared.clone(),
            level: self.shared.level.subscribe(),
        }
    }

    fn set(&mut self, level: bool) -> Result<(), FakeError> {
        check(&self.shared.failure)?;
        let mut history = lock(&self.shared.history);
        // Record only changes: a driver re-writing the same level is not an edge.
        if self.shared.level.send_if_modified(|current| {
            let changed = *current != level;
            *current = level;
            changed
        }) {
            history.push((Instant::now(), level));
        }
        Ok(())
    }
}

impl ErrorType for FakeOutput {
    type Error = FakeError;
}

impl OutputPin for FakeOutput {
    fn set_low(&mut self) -> Result<(), FakeError> {
        self.set(false)
    }

    fn set_high(&mut self) -> Result<(), FakeError> {
        self.set(true)
    }
}

impl StatefulOutputPin for FakeOutput {
    fn is_set_high(&mut self) -> Result<bool, FakeError> {
        check(&self.shared.failure)?;
        Ok(*self.shared.level.borrow())
    }

    fn is_set_low(&mut self) -> Result<bool, FakeError> {
        self.is_set_high().map(|high| !high)
    }
}

impl FakeOutputHandle {
    /// The level now (true = high = lit).
    pub fn level(&self) -> bool {
        *self.shared.level.borrow()
    }

    /// Every level change so far, with when it happened.
    pub fn history(&self) -> Vec<(Instant, bool)> {
        lock(&self.shared.history).clone()
    }

    /// Waits for the next level change this handle has not seen yet; returns the new level.
    pub async fn changed(&mut self) -> bool {
        // Cannot fail: the shared state holds the sender as long as this handle lives.
        let _ = self.level.changed().await;
        *self.level.borrow_and_update()
    }

    /// A receiver of the level, for callers that select over several LEDs.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.shared.level.subscribe()
    }

    /// From now on every pin operation fails with `message` (`None`: works again).
    pub fn fail(&self, message: Option<&str>) {
        *lock(&self.shared.failure) = message.map(str::to_string);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputState {
    level: bool,
    // Edge counters, so an edge that came and went before a waiter ran is not lost.
    rising: u64,
    falling: u64,
}

#[derive(Debug)]
struct InputShared {
    state: watch::Sender<InputState>,
    failure: Mutex<Option<String>>,
    calls: Mutex<u64>,
}

/// An input line moved by its [`FakeInputHandle`].
///
/// Edge waits see every edge since the previous wait returned (like the kernel's event
/// queue), so a driver busy between two waits misses nothing; a burst of edges wakes it
/// once. Level waits return at once if the level is already there.
#[derive(Debug)]
pub struct FakeInput {
    shared: Arc<InputShared>,
    state: watch::Receiver<InputState>,
    seen_rising: u64,
    seen_falling: u64,
}

/// The outside world of a [`FakeInput`]: presses the button, flips the switch.
#[derive(Debug, Clone)]
pub struct FakeInputHandle {
    shared: Arc<InputShared>,
}

impl FakeInput {
    pub fn new(level: bool) -> (FakeInput, FakeInputHandle) {
        let (state, receiver) = watch::channel(InputState {
            level,
            rising: 0,
            falling: 0,
        });
        let shared = Arc::new(InputShared {
            state,
            failure: Mutex::new(None),
            calls: Mutex::new(0),
        });
        let pin = FakeInput {
            shared: shared.clone(),
            state: receiver,
            seen_rising: 0,
            seen_falling: 0,
        };
        (pin, FakeInputHandle { shared })
    }

    pub fn handle(&self) -> FakeInputHandle {
        FakeInputHandle {
            shared: self.shared.clone(),
        }
    }

    fn enter(&self) -> Result<(), FakeError> {
        *lock(&self.shared.calls) += 1;
        check(&self.shared.failure)
    }

    /// Waits until `ready` holds for the state, then marks every edge so far as seen.
    async fn wait_until(
        &mut self,
        ready: impl FnMut(&InputState) -> bool,
    ) -> Result<(), FakeError> {
        self.enter()?;
        let state = *self
            .state
            .wait_for(ready)
            .await
            .map_err(|_| FakeError("input handle closed".to_string()))?;
        self.seen_rising = state.rising;
        self.seen_falling = state.falling;
        Ok(())
    }
}

impl ErrorType for FakeInput {
    type Error = FakeError;
}

impl InputPin for FakeInput {
    fn is_high(&mut self) -> Result<bool, FakeError> {
        self.enter()?;
        Ok(self.shared.state.borrow().level)
    }

    fn is_low(&mut self) -> Result<bool, FakeError> {
        self.is_high().map(|high| !high)
    }
}

impl Wait for FakeInput {
    async fn wait_for_high(&mut self) -> Result<(), FakeError> {
        let rising = self.shared.state.borrow().rising;
        self.wait_until(|s| s.level || s.rising > rising).await
    }

    async fn wait_for_low(&mut self) -> Result<(), FakeError> {
        let falling = self.shared.state.borrow().falling;
        self.wait_until(|s| !s.level || s.falling > falling).await
    }

    async fn wait_for_rising_edge(&mut self) -> Result<(), FakeError> {
        let seen = self.seen_rising;
        self.wait_until(|s| s.rising > seen).await
    }

    async fn wait_for_falling_edge(&mut self) -> Result<(), FakeError> {
        let seen = self.seen_falling;
        self.wait_until(|s| s.falling > seen).await
    }

    async fn wait_for_any_edge(&mut self) -> Result<(), FakeError> {
        let (rising, falling) = (self.seen_rising, self.seen_falling);
        self.wait_until(|s| s.rising > rising || s.falling > falling)
            .await
    }
}

impl FakeInputHandle {
    /// Drives the line to `level`; setting the level it already has is no edge.
    pub fn set(&self, level: bool) {
        self.shared.state.send_if_modified(|state| {
            if state.level == level {
                return false;
            }
            state.level = level;
            if level {
                state.rising += 1;
            } else {
                state.falling += 1;
            }
            true
        });
    }

    /// Drives the line through `levels` at this same instant, as a bouncing contact does.
    pub fn bounce(&self, levels: &[bool]) {
        for &level in levels {
            self.set(level);
        }
    }

    /// The level now.
    pub fn level(&self) -> bool {
        self.shared.state.borrow().level
    }

    /// From now on reads and waits fail with `message` (`None`: works again). A wait
    /// already under way is not interrupted.
    pub fn fail(&self, message: Option<&str>) {
        *lock(&self.shared.failure) = message.map(str::to_string);
    }

    /// How many reads and waits the pin has started: lets tests prove a driver does not
    /// spin on a failing pin.
    pub fn calls(&self) -> u64 {
        *lock(&self.shared.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn output_records_changes_only() {
        let (mut pin, handle) = FakeOutput::new();
        pin.set_low().unwrap();
        pin.set_high().unwrap();
        pin.set_high().unwrap();
        assert!(pin.is_set_high().unwrap());
        pin.toggle().unwrap();
        let levels: Vec<bool> = handle.history().into_iter().map(|(_, l)| l).collect();
        assert_eq!(levels, [true, false]);
        assert!(!handle.level());
    }

    #[test]
    fn output_fails_on_command() {
        let (mut pin, handle) = FakeOutput::new();
        handle.fail(Some("gone"));
        assert_eq!(pin.set_high(), Err(FakeError("gone".into())));
        handle.fail(None);
        assert_eq!(pin.set_high(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn output_handle_awaits_changes() {
        let (mut pin, mut handle) = FakeOutput::new();
        let waiter = tokio::spawn(async move { handle.changed().await });
        tokio::task::yield_now().await;
        pin.set_high().unwrap();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn level_waits_return_at_once_when_already_there() {
        let (mut pin, handle) = FakeInput::new(true);
        assert_eq!(pin.wait_for_high().now_or_never(), Some(Ok(())));
        assert!(pin.wait_for_low().now_or_never().is_none());
        handle.set(false);
        assert_eq!(pin.wait_for_low().now_or_never(), Some(Ok(())));
    }

    #[tokio::test(start_paused = true)]
    async fn edges_are_kept_until_a_wait_sees_them() {
        let (mut pin, handle) = FakeInput::new(false);
        assert!(pin.wait_for_any_edge().now_or_never().is_none());
        // A glitch that is over before the pin is looked at still counts, once.
        handle.bounce(&[true, false]);
        assert_eq!(pin.wait_for_rising_edge().now_or_never(), Some(Ok(())));
        assert!(pin.wait_for_any_edge().now_or_never().is_none());
        handle.set(true);
        assert!(pin.wait_for_falling_edge().now_or_never().is_none());
        handle.set(false);
        assert_eq!(pin.wait_for_falling_edge().now_or_never(), Some(Ok(())));
        assert!(!pin.is_high().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_pin_is_woken_by_the_handle() {
        let (mut pin, handle) = FakeInput::new(false);
        let waiter = tokio::spawn(async move { pin.wait_for_high().await });
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        handle.set(true);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[test]
    fn input_fails_on_command() {
        let (mut pin, handle) = FakeInput::new(false);
        handle.fail(Some("unplugged"));
        assert_eq!(pin.is_high(), Err(FakeError("unplugged".into())));
        assert_eq!(
            pin.wait_for_any_edge().now_or_never(),
            Some(Err(FakeError("unplugged".into())))
        );
        assert_eq!(handle.calls(), 2);
    }
}
