//! Calendar bookings and OBTP (wire profile §4, seed 000 "Calendar"):
//!
//! - [`model`]: bookings filed as numbered Meetings, encrypted fields, pending minimal events;
//! - [`view`]: the RoomOS booking shape and `bookings.txt`;
//! - [`cache`]: the crash-safe, schema-versioned cache in the state directory;
//! - [`obtp`]: current booking, join windows and StartTimeBuffer/Start/End transitions;
//! - [`store`]: the daemon's model, its persister and the OBTP timer;
//! - [`status`]: the bookings' slice of the device status;
//! - [`sync`]: events, minimal fetches, catch-ups and KMS keys while registered.

pub mod cache;
pub mod model;
pub mod obtp;
pub mod status;
pub mod store;
pub mod sync;
pub mod view;

pub use status::{BookingsStatus, CatchUpState};
