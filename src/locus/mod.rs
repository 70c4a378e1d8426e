//! Locus call-control state, sans I/O (wire profile §5): [`sequence`] compares Locus sequences
//! and decides what to do with an incoming DTO; [`tracker`] keeps one locus's working copy,
//! merging deltas and holding those that arrive ahead of a gap. The DTO types live in
//! [`crate::proto::locus`]; the HTTP and event plumbing lives elsewhere.

pub mod sequence;
pub mod tracker;

pub use sequence::{Comparison, Sequence, UpdateAction, compare, update_action};
pub use tracker::{Applied, LocusTracker, SyncReason, TrackerStats};
