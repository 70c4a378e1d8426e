//! A bounded memory of recently seen event ids, so an event delivered twice (a
//! make-before-break switchover, a server redelivery) reaches consumers once.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::with_capacity(capacity.max(1)),
            seen: HashSet::with_capacity(capacity.max(1)),
        }
    }

    /// Remembers `id`; false when it was already remembered (a duplicate).
    pub fn insert(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.order.push_back(id.to_owned());
        self.seen.insert(id.to_owned());
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_are_caught_and_memory_is_bounded() {
        let mut ids = RecentIds::new(2);
        assert!(ids.insert("a"));
        assert!(!ids.insert("a"));
        assert!(ids.insert("b"));
        assert!(ids.insert("c"));
        assert_eq!(ids.len(), 2);
        // "a" was forgotten when "c" arrived.
        assert!(ids.insert("a"));
    }

    proptest! {
        #[test]
        fn never_exceeds_capacity(cap in 1usize..50, ids in proptest::collection::vec(0u16..100, 0..500)) {
            let mut recent = RecentIds::new(cap);
            for id in ids {
                recent.insert(&id.to_string());
                prop_assert!(recent.len() <= cap);
                prop_assert_eq!(recent.order.len(), recent.seen.len());
            }
        }
    }
}
