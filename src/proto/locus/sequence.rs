//! Locus sequence comparison (wire profile §5): which of two working copies is newer, and what
//! to do with an incoming DTO. Pure functions; the conformance vectors of the Webex JS SDK
//! (`tests/locus_conformance.rs`) pin every rule. The DTOs of [`crate::proto::locus`] carry
//! [`Sequence`]; `locus::tracker` applies the rules to a working copy.

use serde::{Deserialize, Serialize};

/// A locus sequence: change numbers, the oldest folded into `[rangeStart, rangeEnd]`.
///
/// Entries are u64 and compared exactly (the cloud sends values above 2^53). Unknown fields
/// (`since`, `sequenceHash`, `dataCenter`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sequence {
    #[serde(deserialize_with = "null_default")]
    pub entries: Vec<u64>,
    #[serde(deserialize_with = "null_default")]
    pub range_start: u64,
    #[serde(deserialize_with = "null_default")]
    pub range_end: u64,
}

impl Sequence {
    /// No entries and no range: the state of a locus nobody has seen yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.range_start == 0 && self.range_end == 0
    }

    /// `rangeStart` if non-zero, else the first entry.
    fn min(&self) -> Option<u64> {
        if self.range_start != 0 {
            Some(self.range_start)
        } else {
            self.entries.first().copied()
        }
    }

    /// The last entry if any, else `rangeEnd`.
    fn max(&self) -> u64 {
        self.entries.last().copied().unwrap_or(self.range_end)
    }

    fn has_range(&self) -> bool {
        self.range_start != 0 || self.range_end != 0
    }

    fn in_range(&self, n: u64) -> bool {
        self.range_start <= n && n <= self.range_end
    }

    /// The first entry of `self` that `other` knows nothing about: absent from its entries and
    /// outside its range.
    fn first_unique(&self, other: &Sequence) -> Option<u64> {
        self.uniques(other).next()
    }

    /// The entries of `self` that `other` knows nothing about, in order.
    fn uniques<'a>(&'a self, other: &'a Sequence) -> impl Iterator<Item = u64> + 'a {
        self.entries
            .iter()
            .copied()
            .filter(|&n| !other.in_range(n) && !other.entries.contains(&n))
    }
}

/// `null` reads as the default, like an absent field.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The result of [`compare`] (the SDK's `compareSequence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    GreaterThan,
    LessThan,
    Equal,
    /// Neither is a continuation of the other: the working copy must be fetched again.
    Desync,
}

impl Comparison {
    /// The SDK's name (`GREATER_THAN`, `LESS_THAN`, `EQUAL`, `DESYNC`).
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThan => "GREATER_THAN",
            Comparison::LessThan => "LESS_THAN",
            Comparison::Equal => "EQUAL",
            Comparison::Desync => "DESYNC",
        }
    }
}

/// What to do with an incoming DTO (the SDK's `compare` with the base sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateAction {
    /// `KEEP_CURRENT`: ignore the incoming DTO.
    UseCurrent,
    /// `ACCEPT_NEW`: a full DTO replaces the working copy, a delta merges into it.
    UseIncoming,
    /// `WAIT`: a delta whose base is newer than the working copy; hold it until the gap fills.
    Wait,
    /// `DESYNC`: fetch the working copy again (`syncUrl`, else the locus URL).
    Desync,
    /// `LOCUS_URL_CHANGED`: a newer delta for a different locus URL; the caller decides.
    LocusUrlChanged,
}

impl UpdateAction {
    /// The SDK's name (`KEEP_CURRENT`, `ACCEPT_NEW`, `WAIT`, `DESYNC`, `LOCUS_URL_CHANGED`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateAction::UseCurrent => "KEEP_CURRENT",
            UpdateAction::UseIncoming => "ACCEPT_NEW",
            UpdateAction::Wait => "WAIT",
            UpdateAction::Desync => "DESYNC",
            UpdateAction::LocusUrlChanged => "LOCUS_URL_CHANGED",
        }
    }
}

/// Compares two sequences, first matching rule wins (wire profile §5):
///
/// 1. `cur.min > inc.max` → greater; `cur.max < inc.min` → less.
/// 2. No unique entries on either side → compare `rangeEnd − min`.
/// 3. Unique entries on one side only → that side is greater.
/// 4. Desync if neither side has a range, or a unique entry of one side lies strictly
///    between the other side's min and max; otherwise the side with the larger first unique
///    entry is greater.
///
/// A side with neither entries nor `rangeStart` has no min; as in the SDK (where it is
/// `undefined`) every comparison against it is false.
pub fn compare(current: &Sequence, incoming: &Sequence) -> Comparison {
    let (cur_min, cur_max) = (current.min(), current.max());
    let (inc_min, inc_max) = (incoming.min(), incoming.max());

    // Rule 1: no overlap at all.
    if cur_min.is_some_and(|m| m > inc_max) {
        return Comparison::GreaterThan;
    }
    if inc_min.is_some_and(|m| cur_max < m) {
        return Comparison::LessThan;
    }

    let cur_unique = current.first_unique(incoming);
    let inc_unique = incoming.first_unique(current);
    match (cur_unique, inc_unique) {
        // Rule 2: one is a (non-strict) subset of the other; the wider total range is newer.
        (None, None) => {
            let span = |s: &Sequence, min: Option<u64>| {
                min.map(|m| i128::from(s.range_end) - i128::from(m))
            };
            match (span(current, cur_min), span(incoming, inc_min)) {
                (Some(c), Some(i)) if c > i => Comparison::GreaterThan,
                (Some(c), Some(i)) if c < i => Comparison::LessThan,
                _ => Comparison::Equal,
            }
        }
        // Rule 3: only one side knows something new.
        (Some(_), None) => Comparison::GreaterThan,
        (None, Some(_)) => Comparison::LessThan,
        // Rule 4: both do.
        (Some(cu), Some(iu)) => {
            // Any unique entry of one side strictly inside the other's [min, max].
            let inside = |side: &Sequence, other: &Sequence, min: Option<u64>, max: u64| {
                side.uniques(other)
                    .any(|n| min.is_some_and(|m| n > m) && n < max)
            };
            if (!current.has_range() && !incoming.has_range())
                || inside(current, incoming, inc_min, inc_max)
                || inside(incoming, current, cur_min, cur_max)
            {
                Comparison::Desync
            } else if cu > iu {
                Comparison::GreaterThan
            } else {
                Comparison::LessThan
            }
        }
    }
}

/// What to do with an incoming DTO whose sequence is `incoming` (and, for a delta,
/// `base_sequence`) against the working copy's `current` (wire profile §5).
pub fn update_action(
    current: &Sequence,
    incoming: &Sequence,
    base_sequence: Option<&Sequence>,
    locus_url_changed: bool,
) -> UpdateAction {
    if current.is_empty() || incoming.is_empty() {
        return UpdateAction::UseIncoming;
    }
    let as_full = |c: Comparison| match c {
        Comparison::GreaterThan | Comparison::Equal => UpdateAction::UseCurrent,
        Comparison::LessThan => UpdateAction::UseIncoming,
        Comparison::Desync => UpdateAction::Desync,
    };
    let comparison = compare(current, incoming);
    let Some(base) = base_sequence else {
        return as_full(comparison);
    };
    if comparison != Comparison::LessThan {
        return as_full(comparison);
    }
    if locus_url_changed {
        return UpdateAction::LocusUrlChanged;
    }
    match compare(current, base) {
        Comparison::GreaterThan | Comparison::Equal => UpdateAction::UseIncoming,
        // Locus forces a desync with a delta whose base is its own sequence.
        Comparison::LessThan if base == incoming => UpdateAction::Desync,
        Comparison::LessThan => UpdateAction::Wait,
        Comparison::Desync => UpdateAction::Desync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(entries: &[u64], range_start: u64, range_end: u64) -> Sequence {
        Sequence {
            entries: entries.to_vec(),
            range_start,
            range_end,
        }
    }

    #[test]
    fn disjoint_sequences_order_by_their_ends() {
        let old = seq(&[10, 11], 0, 0);
        let new = seq(&[20, 21], 0, 0);
        assert_eq!(compare(&old, &new), Comparison::LessThan);
        assert_eq!(compare(&new, &old), Comparison::GreaterThan);
        assert_eq!(compare(&new, &new), Comparison::Equal);
    }

    #[test]
    fn a_folded_range_covers_its_entries() {
        // The newer one folded 10 and 11 into its range and added 13.
        let old = seq(&[10, 11, 12], 0, 0);
        let new = seq(&[12, 13], 10, 11);
        assert_eq!(compare(&old, &new), Comparison::LessThan);
        assert_eq!(compare(&new, &old), Comparison::GreaterThan);
    }

    #[test]
    fn any_unique_entry_inside_the_other_side_desyncs() {
        // The first uniques (30 and 1) are outside; 12 lies inside current's (5, 40).
        let current = seq(&[30, 40], 5, 10);
        let incoming = seq(&[1, 12], 0, 0);
        assert_eq!(compare(&current, &incoming), Comparison::Desync);
        assert_eq!(compare(&incoming, &current), Comparison::Desync);
    }

    #[test]
    fn entries_above_2_pow_53_compare_exactly() {
        let a = seq(&[(1 << 60) + 1], 0, 0);
        let b = seq(&[(1 << 60) + 2], 0, 0);
        assert_eq!(compare(&a, &b), Comparison::LessThan);
    }

    #[test]
    fn a_sequence_without_min_compares_as_the_sdk_does() {
        // rangeEnd only: min is undefined in the SDK, every comparison with it false.
        let odd = seq(&[], 0, 5);
        let other = seq(&[3], 0, 0);
        assert_eq!(compare(&odd, &other), Comparison::Equal);
        assert_eq!(compare(&other, &odd), Comparison::Equal);
        assert_eq!(compare(&odd, &seq(&[9], 0, 0)), Comparison::LessThan);
    }

    #[test]
    fn update_actions_for_deltas() {
        let cur = seq(&[10, 11], 0, 0);
        let next = seq(&[10, 11, 12], 0, 0);
        let after = seq(&[10, 11, 12, 13], 0, 0);
        assert_eq!(
            update_action(&cur, &next, Some(&cur), false),
            UpdateAction::UseIncoming
        );
        assert_eq!(
            update_action(&cur, &after, Some(&next), false),
            UpdateAction::Wait
        );
        assert_eq!(
            update_action(&cur, &after, Some(&next), true),
            UpdateAction::LocusUrlChanged
        );
        assert_eq!(
            update_action(&cur, &after, Some(&after), false),
            UpdateAction::Desync
        );
        assert_eq!(
            update_action(&next, &next, Some(&cur), false),
            UpdateAction::UseCurrent
        );
        assert_eq!(
            update_action(&Sequence::default(), &next, None, false),
            UpdateAction::UseIncoming
        );
    }

    /// Well-formed sequences as Locus makes them: strictly increasing entries, the range (if
    /// any) below the first entry.
    fn well_formed() -> impl Strategy<Value = Sequence> {
        (
            1u64..40,
            proptest::collection::btree_set(1u64..60, 0..8),
            any::<bool>(),
            0u64..30,
        )
            .prop_map(|(start, set, ranged, len)| {
                let entries: Vec<u64> = set.into_iter().collect();
                if ranged {
                    let end = start + len;
                    let entries = entries.into_iter().filter(|&e| e > end).collect();
                    seq_owned(entries, start, end)
                } else {
                    seq_owned(entries, 0, 0)
                }
            })
    }

    fn seq_owned(entries: Vec<u64>, range_start: u64, range_end: u64) -> Sequence {
        Sequence {
            entries,
            range_start,
            range_end,
        }
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric(a in well_formed(), b in well_formed()) {
            let ab = compare(&a, &b);
            let ba = compare(&b, &a);
            let expected = match ab {
                Comparison::GreaterThan => Comparison::LessThan,
                Comparison::LessThan => Comparison::GreaterThan,
                other => other,
            };
            prop_assert_eq!(ba, expected, "{:?} vs {:?}", a, b);
        }

        #[test]
        fn compare_is_reflexive(a in well_formed()) {
            prop_assert_eq!(compare(&a, &a), Comparison::Equal);
        }

        #[test]
        fn compare_is_total(a in any::<(Vec<u64>, u64, u64)>(), b in any::<(Vec<u64>, u64, u64)>()) {
            let _ = compare(&seq_owned(a.0, a.1, a.2), &seq_owned(b.0, b.1, b.2));
        }
    }
}
