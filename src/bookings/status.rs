//! The bookings' slice of the device status, as `roomd status` shows it (the list itself is
//! `roomd bookings`).

use std::fmt;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookingsStatus {
    pub count: usize,
    /// Minimal events whose DTO is still being fetched.
    pub pending: usize,
    /// `Bookings Current Id` (`webex-N`).
    pub current_id: Option<String>,
    /// Bookings whose Join button shows now.
    pub joinable: Vec<String>,
    /// What loading the cache found.
    pub cache: String,
    pub catch_up: CatchUpState,
    pub last_catch_up: Option<SystemTime>,
    /// How long the last complete catch-up took.
    pub catch_up_duration: Option<Duration>,
    pub catch_ups: u32,
    /// Some encrypted field waits for a KMS key.
    pub keys_missing: bool,
}

/// Where the calendar catch-up (the paged list) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUpState {
    #[default]
    Never,
    Running,
    Complete,
    /// Aborted: on a page (a page request failed), or before one (no page at all).
    Failed {
        page: Option<u32>,
    },
}

impl fmt::Display for CatchUpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatchUpState::Never => f.write_str("Never"),
            CatchUpState::Running => f.write_str("Running"),
            CatchUpState::Complete => f.write_str("Complete"),
            CatchUpState::Failed { page: Some(page) } => write!(f, "Failed at page {page}"),
            CatchUpState::Failed { page: None } => f.write_str("Failed"),
        }
    }
}
