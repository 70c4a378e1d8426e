//! Clients of the cloud services, built on [`crate::net`] and the wire types in
//! [`crate::proto`].

pub mod authed;
pub mod calendar;
pub mod gds;
pub mod locus;
pub mod mercury;
pub mod registration;
pub mod tokens;
