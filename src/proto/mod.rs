//! Wire types of the cloud protocols (wire profile in `docs/wire-profile.md`), separate from
//! the clients that fetch them. Cloud JSON is parsed leniently: unknown fields are ignored,
//! never rejected.

pub mod activation;
pub mod calendar;
pub mod gds;
pub mod jsonrpc;
pub mod jwe;
pub mod locus;
pub mod meeting_server;
pub mod mercury;
pub mod multistream;
pub mod rtp;
pub mod srtp;
pub mod stun;
pub mod u2c;
pub mod wdm;
pub mod xtext;

/// A cloud answer that is not what the protocol says it should be.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum ParseError {
    /// {what} is not valid JSON of the expected shape: {reason}
    Json { what: &'static str, reason: String },
    /// {what} is not valid: {reason}
    Invalid { what: &'static str, reason: String },
}

/// Lenient JSON parsing (unknown fields ignored) with the error naming what was parsed.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    body: &[u8],
) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::Json {
        what,
        reason: e.to_string(),
    })
}
