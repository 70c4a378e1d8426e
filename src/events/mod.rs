//! The in-process event bus: cloud events (mercury today, the Meeting Server and locus later)
//! reach the daemon's consumers here, keyed by event-type namespace, through bounded channels.

pub mod bus;
pub mod recent;

pub use bus::{Event, EventBus, Namespace, Resync, ResyncReason, Subscription};
