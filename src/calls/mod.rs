//! Call control (wire profile §5): the call state machine, the sans-IO core that owns every
//! call and decides, the manager task that runs its requests, moves, the diagnostic events,
//! the SDP offer and the connectivity check. The Locus HTTP client
//! is `cloud::locus`, the DTOs `proto::locus`, the sequence rules `locus`.

pub mod core;
#[cfg(test)]
mod core_tests;
pub mod diagnostics;
pub mod ice;
pub mod manager;
pub mod messages;
mod moves;
pub mod sdp;
pub mod state;
pub mod status;

pub use manager::{
    CallError, CallEvent, CallManager, CallServices, Calls, CallsOptions, DialOutcome,
};
pub use state::{CallState, Direction, EndCause};
pub use status::{CallKind, CallView, CallsStatus, DialRecord, MoveOutcome, MoveRecord};
