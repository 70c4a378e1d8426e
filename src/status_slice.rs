//! A subsystem's slice of the device status.
//!
//! The device status is one value behind one `watch` channel (the aggregate in
//! [`crate::status`]), so that a watcher sees every change at once and in order. Each subsystem
//! owns the type of its own part (`CallsStatus` in `calls`, `BookingsStatus` in `bookings`, …)
//! and writes it through a [`StatusSlice`], which knows nothing of the aggregate: the subsystem
//! does not import the floor above it, and the aggregate composes the slices from above.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

type Modify<T> = dyn Fn(&mut dyn FnMut(&mut T) -> bool) -> bool + Send + Sync;
type Read<T> = dyn Fn(&mut dyn FnMut(&T)) + Send + Sync;

/// Writes and reads one part of a value shared through a `watch` channel.
pub struct StatusSlice<T> {
    modify: Arc<Modify<T>>,
    read: Arc<Read<T>>,
}

impl<T> Clone for StatusSlice<T> {
    fn clone(&self) -> Self {
        Self {
            modify: Arc::clone(&self.modify),
            read: Arc::clone(&self.read),
        }
    }
}

impl<T> fmt::Debug for StatusSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusSlice")
    }
}

impl<T: 'static> StatusSlice<T> {
    /// The part of `root` that `part` selects (`|s| &mut s.calls`, `|s| &s.calls`).
    pub fn of<R: Send + Sync + 'static>(
        root: &watch::Sender<R>,
        part_mut: fn(&mut R) -> &mut T,
        part: fn(&R) -> &T,
    ) -> Self {
        let writer = root.clone();
        let reader = root.clone();
        Self {
            modify: Arc::new(move |change| writer.send_if_modified(|r| change(part_mut(r)))),
            read: Arc::new(move |look| look(part(&reader.borrow()))),
        }
    }

    /// A slice with a channel of its own, for a subsystem running without the aggregate
    /// (unit tests, detached handles): the receiver sees what the subsystem writes.
    pub fn standalone(initial: T) -> (Self, watch::Receiver<T>)
    where
        T: Send + Sync,
    {
        let (tx, rx) = watch::channel(initial);
        (Self::of(&tx, |t| t, |t| t), rx)
    }

    /// Changes the slice; watchers wake only when `change` returns true.
    pub fn modify(&self, change: impl FnOnce(&mut T) -> bool) -> bool {
        let mut change = Some(change);
        (self.modify)(&mut |t| change.take().is_some_and(|c| c(t)))
    }

    /// Changes the slice and wakes the watchers.
    pub fn update(&self, change: impl FnOnce(&mut T)) {
        self.modify(|t| {
            change(t);
            true
        });
    }

    /// Replaces the slice, waking the watchers only if the value differs.
    pub fn set(&self, value: T) -> bool
    where
        T: PartialEq,
    {
        self.modify(|t| {
            if *t == value {
                return false;
            }
            *t = value;
            true
        })
    }

    /// Looks at the slice as it is now.
    pub fn read<U>(&self, look: impl FnOnce(&T) -> U) -> U {
        let mut look = Some(look);
        let mut out = None;
        (self.read)(&mut |t| {
            if let Some(look) = look.take() {
                out = Some(look(t));
            }
        });
        out.expect("the reader runs once")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Default)]
    struct Root {
        a: u32,
        b: String,
    }

    #[test]
    fn a_slice_writes_its_part_and_wakes_watchers_only_on_change() {
        let (root, mut watcher) = watch::channel(Root::default());
        let a = StatusSlice::of(&root, |r| &mut r.a, |r| &r.a);
        let b = StatusSlice::of(&root, |r| &mut r.b, |r| &r.b);
        watcher.borrow_and_update();
        assert!(a.set(7));
        assert!(watcher.has_changed().unwrap());
        watcher.borrow_and_update();
        assert!(!a.set(7), "the same value is no change");
        assert!(!watcher.has_changed().unwrap());
        b.update(|b| b.push('x'));
        assert_eq!(
            *watcher.borrow_and_update(),
            Root {
                a: 7,
                b: "x".into()
            }
        );
        assert_eq!(a.read(|a| *a), 7);
        assert!(!a.modify(|a| {
            *a += 1;
            false
        }));
        assert_eq!(root.borrow().a, 8, "a silent change is still made");
    }

    #[test]
    fn a_standalone_slice_has_its_own_channel() {
        let (slice, rx) = StatusSlice::standalone(1u8);
        slice.update(|v| *v = 2);
        assert_eq!(*rx.borrow(), 2);
    }
}
