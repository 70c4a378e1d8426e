//! Locus call-control state, sans I/O (wire profile §5): [`tracker`] keeps one locus's working
//! copy, merging deltas and holding those that arrive ahead of a gap. The DTO types and the
//! sequence rules ([`sequence`]: compare, what to do with an incoming DTO) live in
//! [`crate::proto::locus`]; the HTTP and event plumbing lives elsewhere.

pub mod tracker;

pub use crate::proto::locus::sequence;

pub use sequence::{Comparison, Sequence, UpdateAction, compare, update_action};
pub use tracker::{Applied, LocusTracker, SyncReason, TrackerStats};
