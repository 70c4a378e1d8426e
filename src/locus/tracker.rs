//! One locus's working copy: full DTOs and deltas applied with the sequence rules, deltas that
//! arrive ahead of a gap held in the WAIT queue until it fills (or a sync is due).
//!
//! Sans-IO: the caller feeds DTOs and the time, and fetches `syncUrl` (else the locus URL)
//! when told [`Applied::NeedsSync`] or by [`LocusTracker::check_deadline`], then hands the
//! answer to [`LocusTracker::apply_sync`].

use std::time::{Duration, Instant};

use rand::Rng as _;

use crate::proto::locus::LocusDto;
use crate::proto::locus::sequence::{self, Sequence, UpdateAction, update_action};

/// More queued deltas than this → sync.
pub const MAX_QUEUED: usize = 5;
/// How long the first queued delta may wait for its gap to fill, before the jitter.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The jitter added to [`WAIT_TIMEOUT`] is drawn from `0..WAIT_JITTER`.
pub const WAIT_JITTER: Duration = Duration::from_secs(5);

/// What [`LocusTracker::apply`] did with a DTO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The working copy changed (the DTO and any queued deltas it unblocked).
    Updated,
    /// The DTO was not newer; the working copy is unchanged.
    Kept,
    /// A delta ahead of a gap, held; `queued` deltas wait now.
    Queued { queued: usize },
    /// Fetch the working copy again and hand it to [`LocusTracker::apply_sync`].
    NeedsSync(SyncReason),
    /// A newer delta for another locus URL; not applied, the caller decides (a move).
    UrlChanged,
}

/// Why the working copy must be fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncReason {
    /// The sequences say neither copy continues the other (or Locus forced it).
    Desync,
    /// More than [`MAX_QUEUED`] deltas wait for a gap.
    QueueFull,
    /// The first queued delta waited past its deadline.
    WaitTimeout,
}

/// Counters since the tracker was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// DTOs that changed the working copy (sync answers and dequeued deltas included).
    pub applied: u64,
    /// DTOs ignored as not newer (dequeued stale deltas included).
    pub kept: u64,
    /// Deltas put in the WAIT queue.
    pub queued_total: u64,
    /// Queued deltas applied once their gap filled.
    pub dequeued: u64,
    /// Deltas not queued: an identical one already waited, or the queue was over full.
    pub queue_dropped: u64,
    /// DESYNC answers (each asks for a sync).
    pub desyncs: u64,
    /// Over-full queues (each asks for a sync).
    pub queue_full: u64,
    /// Wait deadlines passed (each asks for a sync).
    pub wait_timeouts: u64,
    /// Sync answers applied with [`LocusTracker::apply_sync`].
    pub syncs: u64,
    /// Sync answers that replaced a working copy they were not newer than (DESYNC).
    pub sync_replacements: u64,
    /// Deltas for another locus URL.
    pub url_changes: u64,
}

/// The working copy of one locus and its WAIT queue.
#[derive(Debug, Default)]
pub struct LocusTracker {
    current: Option<LocusDto>,
    /// Deltas answered WAIT, sorted by base sequence (oldest first).
    queue: Vec<LocusDto>,
    deadline: Option<Instant>,
    /// A fixed jitter (tests); `None` draws one from `0..WAIT_JITTER` each time.
    jitter: Option<Duration>,
    stats: TrackerStats,
}

impl LocusTracker {
    /// An empty tracker: the first DTO is always accepted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `jitter` instead of a random one in the wait deadline (deterministic tests).
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// The working copy (never with a `baseSequence`).
    pub fn current(&self) -> Option<&LocusDto> {
        self.current.as_ref()
    }

    /// Deltas waiting for a gap to fill.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// When the queued deltas have waited long enough (10 s + jitter after the first was
    /// queued); `None` while nothing waits.
    pub fn wait_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// [`SyncReason::WaitTimeout`] once the wait deadline has passed. It then re-arms, so a
    /// sync that fails is asked for again.
    pub fn check_deadline(&mut self, now: Instant) -> Option<SyncReason> {
        let deadline = self.deadline?;
        if now < deadline {
            return None;
        }
        self.stats.wait_timeouts += 1;
        self.deadline = Some(now + self.wait_period());
        Some(SyncReason::WaitTimeout)
    }

    /// Applies a full DTO or a delta from an event or an answer.
    pub fn apply(&mut self, incoming: LocusDto, now: Instant) -> Applied {
        let action = self.action_for(&incoming);
        match action {
            UpdateAction::UseIncoming => {
                self.accept(incoming);
                self.stats.applied += 1;
                self.drain_queue();
                Applied::Updated
            }
            UpdateAction::UseCurrent => {
                self.stats.kept += 1;
                Applied::Kept
            }
            UpdateAction::Wait => self.enqueue(incoming, now),
            UpdateAction::Desync => {
                self.stats.desyncs += 1;
                Applied::NeedsSync(SyncReason::Desync)
            }
            UpdateAction::LocusUrlChanged => {
                self.stats.url_changes += 1;
                Applied::UrlChanged
            }
        }
    }

    /// Applies an authoritative full DTO (a sync or `GET {locusUrl}` answer): newer replaces
    /// the working copy and so does DESYNC; older or equal is kept. Queued deltas it unblocks
    /// are applied; the rest of the queue is dropped (the answer covers them).
    pub fn apply_sync(&mut self, mut full: LocusDto) -> Applied {
        self.stats.syncs += 1;
        // An authoritative answer is a full DTO, whatever it carries.
        full.base_sequence = None;
        let result = match self.action_for(&full) {
            UpdateAction::UseIncoming => {
                self.accept(full);
                self.stats.applied += 1;
                Applied::Updated
            }
            UpdateAction::Desync => {
                self.stats.sync_replacements += 1;
                self.accept(full);
                self.stats.applied += 1;
                Applied::Updated
            }
            // A full DTO is never WAIT or LOCUS_URL_CHANGED.
            UpdateAction::UseCurrent | UpdateAction::Wait | UpdateAction::LocusUrlChanged => {
                self.stats.kept += 1;
                Applied::Kept
            }
        };
        self.drain_queue();
        self.stats.queue_dropped += self.queue.len() as u64;
        self.queue.clear();
        self.deadline = None;
        result
    }

    fn action_for(&self, incoming: &LocusDto) -> UpdateAction {
        let Some(current) = &self.current else {
            return UpdateAction::UseIncoming;
        };
        let empty = Sequence::default();
        update_action(
            current.sequence.as_ref().unwrap_or(&empty),
            incoming.sequence.as_ref().unwrap_or(&empty),
            incoming.base_sequence.as_ref(),
            !incoming.url.is_empty() && incoming.url != current.url,
        )
    }

    /// ACCEPT_NEW: a full DTO replaces the working copy, a delta merges into it.
    fn accept(&mut self, incoming: LocusDto) {
        match &mut self.current {
            Some(current) if incoming.is_delta() => merge(current, incoming),
            slot => {
                let mut incoming = incoming;
                incoming.base_sequence = None;
                *slot = Some(incoming);
            }
        }
    }

    fn enqueue(&mut self, delta: LocusDto, now: Instant) -> Applied {
        let key = |d: &LocusDto| (d.base_sequence.clone(), d.sequence.clone());
        if self.queue.iter().any(|q| key(q) == key(&delta)) {
            // The same change again (a redelivery): one copy waits.
            self.stats.queue_dropped += 1;
            return self.queue_state();
        }
        if self.queue.len() > MAX_QUEUED {
            // Already over full and a sync asked for; the sync answer covers this one.
            self.stats.queue_dropped += 1;
            self.stats.queue_full += 1;
            return Applied::NeedsSync(SyncReason::QueueFull);
        }
        let base = delta.base_sequence.clone().unwrap_or_default();
        let at = self.queue.partition_point(|q| {
            let qb = q.base_sequence.as_ref().expect("only deltas are queued");
            sequence::compare(qb, &base) != sequence::Comparison::GreaterThan
        });
        self.queue.insert(at, delta);
        self.stats.queued_total += 1;
        if self.deadline.is_none() {
            self.deadline = Some(now + self.wait_period());
        }
        if self.queue.len() > MAX_QUEUED {
            self.stats.queue_full += 1;
        }
        self.queue_state()
    }

    fn queue_state(&self) -> Applied {
        if self.queue.len() > MAX_QUEUED {
            Applied::NeedsSync(SyncReason::QueueFull)
        } else {
            Applied::Queued {
                queued: self.queue.len(),
            }
        }
    }

    /// Retries the queue in base-sequence order until nothing more applies: ACCEPT_NEW is
    /// applied, KEEP_CURRENT dropped, WAIT kept. Any other answer (DESYNC, a URL change)
    /// leaves the delta for the sync that follows to cover.
    fn drain_queue(&mut self) {
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < self.queue.len() {
                match self.action_for(&self.queue[i]) {
                    UpdateAction::UseIncoming => {
                        let delta = self.queue.remove(i);
                        self.accept(delta);
                        self.stats.applied += 1;
                        self.stats.dequeued += 1;
                        progressed = true;
                    }
                    UpdateAction::UseCurrent => {
                        self.queue.remove(i);
                        self.stats.kept += 1;
                    }
                    UpdateAction::Wait | UpdateAction::Desync | UpdateAction::LocusUrlChanged => {
                        i += 1
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        if self.queue.is_empty() {
            self.deadline = None;
        }
    }

    fn wait_period(&self) -> Duration {
        let jitter = self.jitter.unwrap_or_else(|| {
            let ms = rand::rng().random_range(0..WAIT_JITTER.as_millis() as u64);
            Duration::from_millis(ms)
        });
        WAIT_TIMEOUT + jitter
    }
}

/// Merges a delta into the working copy: top-level fields present in the delta replace
/// (lists when non-empty: absent and empty read the same), participants merge by `url` (the
/// whole participant replaced, `removed:true` deleting it). The base sequence is not kept.
fn merge(current: &mut LocusDto, delta: LocusDto) {
    let LocusDto {
        url,
        full_state,
        participants,
        self_,
        host,
        info,
        controls,
        media_shares,
        replaces,
        sequence,
        base_sequence: _,
        sync_url,
    } = delta;
    if !url.is_empty() {
        current.url = url;
    }
    replace_if_some(&mut current.full_state, full_state);
    replace_if_some(&mut current.self_, self_);
    replace_if_some(&mut current.host, host);
    replace_if_some(&mut current.info, info);
    replace_if_some(&mut current.controls, controls);
    replace_if_some(&mut current.sequence, sequence);
    replace_if_some(&mut current.sync_url, sync_url);
    if !media_shares.is_empty() {
        current.media_shares = media_shares;
    }
    if !replaces.is_empty() {
        current.replaces = replaces;
    }
    for participant in participants {
        let existing = current
            .participants
            .iter()
            .position(|p| p.url == participant.url);
        match (existing, participant.removed) {
            (Some(i), true) => {
                current.participants.remove(i);
            }
            (Some(i), false) => current.participants[i] = participant,
            (None, true) => {}
            (None, false) => current.participants.push(participant),
        }
    }
    current.base_sequence = None;
}

fn replace_if_some<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::locus::{Participant, ParticipantState};

    const URL: &str = "https://locus.sim.invalid/locus/api/v1/loci/1";
    const T0: u64 = 259_005_341_176_400;

    /// The sequence after `n` changes: entries T0..=T0+n, the oldest folded past 10.
    fn seq_at(n: u64) -> Sequence {
        let entries: Vec<u64> = (0..=n).map(|i| T0 + i).collect();
        if entries.len() > 10 {
            let fold = entries.len() - 10;
            Sequence {
                range_start: entries[0],
                range_end: entries[fold - 1],
                entries: entries[fold..].to_vec(),
            }
        } else {
            Sequence {
                entries,
                ..Sequence::default()
            }
        }
    }

    fn participant(i: u64, state: ParticipantState) -> Participant {
        Participant {
            url: format!("{URL}/participant/{i}"),
            id: format!("p{i}"),
            state,
            ..Participant::default()
        }
    }

    fn full(n: u64) -> LocusDto {
        LocusDto {
            url: URL.into(),
            participants: (0..3)
                .map(|i| participant(i, ParticipantState::Joined))
                .collect(),
            sequence: Some(seq_at(n)),
            sync_url: Some(format!("{URL}/sync")),
            ..LocusDto::default()
        }
    }

    /// Change `n` (from `n - 1`): participant `n % 3` becomes `p{n}`.
    fn delta(n: u64) -> LocusDto {
        let mut p = participant(n % 3, ParticipantState::Joined);
        p.id = format!("p{n}");
        LocusDto {
            url: URL.into(),
            participants: vec![p],
            sequence: Some(seq_at(n)),
            base_sequence: Some(seq_at(n - 1)),
            ..LocusDto::default()
        }
    }

    fn tracker() -> LocusTracker {
        LocusTracker::new().with_jitter(Duration::from_secs(2))
    }

    fn ids(t: &LocusTracker) -> Vec<String> {
        let mut ids: Vec<String> = t
            .current()
            .unwrap()
            .participants
            .iter()
            .map(|p| p.id.clone())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn first_dto_is_accepted_and_deltas_merge_in_order() {
        let now = Instant::now();
        let mut t = tracker();
        assert!(t.current().is_none());
        assert_eq!(t.apply(full(0), now), Applied::Updated);
        assert_eq!(t.apply(delta(1), now), Applied::Updated);
        assert_eq!(t.apply(delta(2), now), Applied::Updated);
        let cur = t.current().unwrap();
        assert_eq!(cur.sequence, Some(seq_at(2)));
        assert!(cur.base_sequence.is_none());
        assert_eq!(cur.sync_url.as_deref(), Some(&*format!("{URL}/sync")));
        assert_eq!(ids(&t), ["p0", "p1", "p2"]);
        // A redelivered delta is not newer.
        assert_eq!(t.apply(delta(2), now), Applied::Kept);
        assert_eq!(t.stats().applied, 3);
        assert_eq!(t.stats().kept, 1);
    }

    #[test]
    fn reordered_deltas_wait_then_apply_in_order() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        assert_eq!(t.apply(delta(4), now), Applied::Queued { queued: 1 });
        assert_eq!(t.wait_deadline(), Some(now + Duration::from_secs(12)));
        assert_eq!(t.apply(delta(3), now), Applied::Queued { queued: 2 });
        assert_eq!(t.apply(delta(2), now), Applied::Queued { queued: 3 });
        // The same delta again waits once.
        assert_eq!(t.apply(delta(3), now), Applied::Queued { queued: 3 });
        assert_eq!(t.apply(delta(1), now), Applied::Updated);
        assert_eq!(t.queued(), 0);
        assert_eq!(t.wait_deadline(), None);
        let cur = t.current().unwrap();
        assert_eq!(cur.sequence, Some(seq_at(4)));
        // Applied in order: participant 1 was changed by deltas 1 and 4; 4 wins.
        assert_eq!(ids(&t), ["p2", "p3", "p4"]);
        let stats = t.stats();
        assert_eq!(
            (stats.queued_total, stats.dequeued, stats.applied),
            (3, 3, 5)
        );
    }

    #[test]
    fn a_gap_fills_the_queue_then_asks_for_a_sync() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        for n in 2..=6 {
            assert_eq!(
                t.apply(delta(n), now),
                Applied::Queued {
                    queued: n as usize - 1
                }
            );
        }
        assert_eq!(
            t.apply(delta(7), now),
            Applied::NeedsSync(SyncReason::QueueFull)
        );
        assert_eq!(
            t.apply(delta(8), now),
            Applied::NeedsSync(SyncReason::QueueFull)
        );
        assert_eq!(t.queued(), 6);
        // The sync answer (change 5) applies, unblocks 6 and 7, and drops the rest.
        assert_eq!(t.apply_sync(full(5)), Applied::Updated);
        assert_eq!(t.current().unwrap().sequence, Some(seq_at(7)));
        assert_eq!(t.queued(), 0);
        assert_eq!(t.wait_deadline(), None);
        assert_eq!(t.stats().queue_full, 2);
    }

    #[test]
    fn the_wait_deadline_asks_for_a_sync_and_rearms() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        t.apply(delta(2), now);
        let deadline = t.wait_deadline().unwrap();
        assert_eq!(deadline, now + Duration::from_secs(12));
        // Later deltas do not move it.
        t.apply(delta(3), now + Duration::from_secs(5));
        assert_eq!(t.wait_deadline(), Some(deadline));
        assert_eq!(t.check_deadline(deadline - Duration::from_millis(1)), None);
        assert_eq!(t.check_deadline(deadline), Some(SyncReason::WaitTimeout));
        assert_eq!(t.wait_deadline(), Some(deadline + Duration::from_secs(12)));
        assert_eq!(t.stats().wait_timeouts, 1);
    }

    #[test]
    fn random_jitter_stays_in_bounds() {
        let now = Instant::now();
        for _ in 0..20 {
            let mut t = LocusTracker::new();
            t.apply(full(0), now);
            t.apply(delta(2), now);
            let wait = t.wait_deadline().unwrap() - now;
            assert!(
                wait >= WAIT_TIMEOUT && wait < WAIT_TIMEOUT + WAIT_JITTER,
                "{wait:?}"
            );
        }
    }

    #[test]
    fn a_forced_desync_asks_for_a_sync_that_replaces() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        let mut forced = delta(3);
        forced.base_sequence = forced.sequence.clone();
        assert_eq!(t.apply(forced, now), Applied::NeedsSync(SyncReason::Desync));
        assert_eq!(t.current().unwrap().sequence, Some(seq_at(0)));
        assert_eq!(t.apply_sync(full(3)), Applied::Updated);
        assert_eq!(t.current().unwrap().sequence, Some(seq_at(3)));
        assert_eq!(t.stats().desyncs, 1);
    }

    #[test]
    fn a_desync_sync_answer_replaces_an_older_one_is_kept() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(4), now);
        // No ranges, entries unique on both sides: DESYNC; authoritative, so it replaces.
        let mut other = full(0);
        other.sequence = Some(Sequence {
            entries: vec![T0 + 1, T0 + 3],
            ..Sequence::default()
        });
        let mut mine = full(0);
        mine.sequence = Some(Sequence {
            entries: vec![T0 + 1, T0 + 2],
            ..Sequence::default()
        });
        let mut t2 = tracker();
        t2.apply(mine, now);
        assert_eq!(
            t2.apply(other.clone(), now),
            Applied::NeedsSync(SyncReason::Desync)
        );
        assert_eq!(t2.apply_sync(other.clone()), Applied::Updated);
        assert_eq!(t2.current().unwrap().sequence, other.sequence);
        assert_eq!(t2.stats().sync_replacements, 1);
        // Older than the working copy: kept.
        assert_eq!(t.apply_sync(full(2)), Applied::Kept);
        assert_eq!(t.current().unwrap().sequence, Some(seq_at(4)));
    }

    #[test]
    fn removed_participants_are_deleted_and_new_ones_added() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        let mut d = delta(1);
        d.participants = vec![
            Participant {
                url: format!("{URL}/participant/0"),
                removed: true,
                ..Participant::default()
            },
            participant(7, ParticipantState::Notified),
        ];
        d.full_state = Some(crate::proto::locus::FullState {
            state: crate::proto::locus::LocusState::Active,
            kind: crate::proto::locus::LocusType::Call,
        });
        assert_eq!(t.apply(d, now), Applied::Updated);
        assert_eq!(ids(&t), ["p1", "p2", "p7"]);
        let cur = t.current().unwrap();
        assert!(cur.full_state.is_some());
        // Fields the delta did not carry stay.
        assert_eq!(cur.sync_url.as_deref(), Some(&*format!("{URL}/sync")));
    }

    #[test]
    fn a_delta_for_another_url_is_left_to_the_caller() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        let mut d = delta(2);
        d.url = "https://locus.sim.invalid/locus/api/v1/loci/2".into();
        assert_eq!(t.apply(d, now), Applied::UrlChanged);
        assert_eq!(t.current().unwrap().url, URL);
    }

    #[test]
    fn apply_sync_resets_the_queue_and_deadline() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        t.apply(delta(3), now);
        t.apply(delta(9), now);
        assert_eq!(t.queued(), 2);
        // The sync answer unblocks 3 (base 2) but not 9.
        assert_eq!(t.apply_sync(full(2)), Applied::Updated);
        assert_eq!(t.current().unwrap().sequence, Some(seq_at(3)));
        assert_eq!(t.queued(), 0);
        assert_eq!(t.wait_deadline(), None);
        assert_eq!(t.check_deadline(now + Duration::from_secs(60)), None);
        assert_eq!(t.stats().syncs, 1);
        assert_eq!(t.stats().queue_dropped, 1);
    }

    #[test]
    fn folded_sequences_keep_applying() {
        let now = Instant::now();
        let mut t = tracker();
        t.apply(full(0), now);
        for n in 1..40 {
            assert_eq!(t.apply(delta(n), now), Applied::Updated, "delta {n}");
        }
        assert_eq!(t.current().unwrap().sequence, Some(seq_at(39)));
    }

    proptest::proptest! {
        /// Any arrival order of six deltas (at most five can wait) ends where applying them in
        /// order ends.
        #[test]
        fn any_arrival_order_converges(
            order in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just((1u64..=6).collect::<Vec<_>>()))
        ) {
            let now = Instant::now();
            let mut t = tracker();
            t.apply(full(0), now);
            for n in order {
                let r = t.apply(delta(n), now);
                proptest::prop_assert!(matches!(r, Applied::Updated | Applied::Queued { .. }), "{:?}", r);
            }
            proptest::prop_assert_eq!(t.current().unwrap().sequence.clone(), Some(seq_at(6)));
            proptest::prop_assert_eq!(t.queued(), 0);
            proptest::prop_assert_eq!(ids(&t), ["p4", "p5", "p6"]);
        }
    }
}
