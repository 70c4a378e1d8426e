//! Wire types of the cloud protocols (wire profile in `docs/wire-profile.md`), separate from
//! the clients that fetch them. Cloud JSON is parsed leniently: unknown fields are ignored,
//! never rejected.

pub mod gds;
