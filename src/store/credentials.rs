//! `credentials.json`: what activation produced (service URLs, extra CAs, tokens) and the
//! WDM registration, in one 0600 file replaced atomically on every change.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{StateDir, StoreError};
use crate::proto::activation::{ServiceData, TokenGrant};
use crate::secret::{Secret, serialize_exposed};

pub const CREDENTIALS_FILE: &str = "credentials.json";
/// Bumped when the layout changes; older files are migrated or refused by version.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub version: u32,
    pub device_identifier: String,
    pub org_id: String,
    /// The GDS this device was activated against: locked until a factory reset.
    pub locked_gds_url: String,
    #[serde(default)]
    pub locked_activation_url: Option<String>,
    pub activated_at_ms: u64,
    pub service_urls: BTreeMap<String, String>,
    /// PEM CAs from the service data's `trustList`.
    pub trust_list: Vec<String>,
    pub tokens: StoredTokens,
    #[serde(default)]
    pub registration: Option<StoredRegistration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTokens {
    #[serde(serialize_with = "serialize_exposed")]
    pub access_token: Secret<String>,
    #[serde(serialize_with = "serialize_exposed")]
    pub refresh_token: Secret<String>,
    /// When the access token was issued and when it expires (Unix ms), so its lifetime is
    /// known for the "refresh at 10 % left" rule.
    pub access_issued_at_ms: u64,
    pub access_expires_at_ms: u64,
    pub refresh_expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRegistration {
    pub url: String,
    pub etag: Option<String>,
    #[serde(default)]
    pub web_socket_url: Option<String>,
}

pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl StoredTokens {
    /// Tokens from a grant received at `now`.
    pub fn from_grant(grant: &TokenGrant, now: SystemTime) -> Self {
        let now_ms = unix_ms(now);
        Self {
            access_token: grant.access_token.clone(),
            refresh_token: grant.refresh_token.clone(),
            access_issued_at_ms: now_ms,
            access_expires_at_ms: now_ms + grant.expires_in.saturating_mul(1000),
            refresh_expires_at_ms: grant
                .refresh_token_expires_in
                .map(|s| now_ms + s.saturating_mul(1000)),
        }
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(
            self.access_expires_at_ms
                .saturating_sub(self.access_issued_at_ms),
        )
    }

    pub fn remaining(&self, now: SystemTime) -> Duration {
        Duration::from_millis(self.access_expires_at_ms.saturating_sub(unix_ms(now)))
    }
}

impl Credentials {
    pub fn from_activation(data: &ServiceData, gds_url: &str, now: SystemTime) -> Self {
        Self {
            version: SCHEMA_VERSION,
            device_identifier: data.device_identifier.clone(),
            org_id: data.org_id.clone(),
            locked_gds_url: gds_url.to_string(),
            locked_activation_url: None,
            activated_at_ms: unix_ms(now),
            service_urls: data.service_urls.clone(),
            trust_list: data.trust_list.clone().unwrap_or_default(),
            tokens: StoredTokens::from_grant(&data.tokens, now),
            registration: None,
        }
    }

    pub fn with_activation_url(mut self, url: &str) -> Self {
        self.locked_activation_url = Some(url.to_string());
        self
    }

    /// Loads the file; a file that does not parse is moved aside (the device then needs
    /// activation again) and reported as [`StoreError::Corrupt`].
    pub fn load(state: &StateDir) -> Result<Option<Self>, StoreError> {
        let Some(bytes) = state.read(CREDENTIALS_FILE)? else {
            return Ok(None);
        };
        let parsed = serde_json::from_slice::<Credentials>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                if c.version == SCHEMA_VERSION {
                    Ok(c)
                } else {
                    Err(format!("unsupported schema version {}", c.version))
                }
            });
        match parsed {
            Ok(credentials) => Ok(Some(credentials)),
            Err(reason) => {
                let moved_to = state.move_aside(CREDENTIALS_FILE)?;
                Err(StoreError::Corrupt {
                    path: state.file(CREDENTIALS_FILE),
                    reason,
                    moved_to,
                })
            }
        }
    }

    pub fn save(&self, state: &StateDir) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(self).expect("credentials serialise");
        state.write_atomic(CREDENTIALS_FILE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::activation::parse_service_data;

    fn sample() -> Credentials {
        let data = parse_service_data(
            br#"{"deviceIdentifier":"d","orgId":"o","serviceUrls":{"u2c":"https://u","identity":"https://i"},
                "tokens":{"access_token":"AT-1","expires_in":3600,"refresh_token":"RT-1","refresh_token_expires_in":7200}}"#,
        )
        .unwrap();
        Credentials::from_activation(&data, "https://gds", UNIX_EPOCH + Duration::from_secs(1000))
    }

    #[test]
    fn round_trips_through_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(Credentials::load(&state).unwrap().is_none());
        let creds = sample();
        assert_eq!(creds.tokens.lifetime(), Duration::from_secs(3600));
        assert_eq!(
            creds.tokens.refresh_expires_at_ms,
            Some(1_000_000 + 7_200_000)
        );
        creds.save(&state).unwrap();
        assert_eq!(Credentials::load(&state).unwrap().unwrap(), creds);
        let shown = format!("{creds:?}");
        assert!(!shown.contains("AT-1") && !shown.contains("RT-1"));
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state.write_atomic(CREDENTIALS_FILE, b"{ not json").unwrap();
        let err = Credentials::load(&state).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(state.read(CREDENTIALS_FILE).unwrap().is_none());
        assert!(Credentials::load(&state).unwrap().is_none());
    }
}
