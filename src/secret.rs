//! Secrets that must never reach a log line: tokens, activation codes, passwords.
//!
//! Redaction is done by type: `Secret<T>` prints `<redacted>` for both `Debug` and
//! `Display`, so a secret that slips into a `tracing` field or an error message stays
//! hidden. The value is reachable only through [`Secret::expose`], which makes every
//! place that handles the plain value easy to find.

use std::fmt;

/// The text every redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// A value that is redacted whenever it is formatted.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The plain value. Call only where the secret is used on the wire or written to a
    /// 0600 file.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

// Deliberately no `Serialize`: writing a secret out must go through `expose()`.

/// `#[serde(serialize_with = "crate::secret::serialize_exposed")]`: writes the plain value.
/// Only for files that hold secrets on purpose (0600 credential files) and request bodies;
/// each use is a place to review.
pub fn serialize_exposed<T: serde::Serialize, S: serde::Serializer>(
    secret: &Secret<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    secret.0.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let token = Secret::new("eyJhbGciOi.secret-token".to_string());
        assert_eq!(format!("{token:?}"), REDACTED);
        assert_eq!(format!("{token}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&token)), format!("Some({REDACTED})"));
        assert_eq!(token.expose(), "eyJhbGciOi.secret-token");
    }

    #[test]
    fn derived_debug_of_a_containing_struct_stays_redacted() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            user: String,
            password: Secret<String>,
        }
        let creds = Credentials {
            user: "admin".into(),
            password: Secret::new("hunter2".into()),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin"));
    }
}
