//! OAuth tokens: issued by activation, refreshed by identity, checked by every bearer-protected service.
//!
//! Tokens are random opaque strings (32 random bytes, base64url without padding: 43 characters).
//! Every token ever issued is kept so tests can look for leaks in logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::scenario::TokensScenario;
use crate::srp::random_bytes;
use crate::state::lock;

#[derive(Debug)]
struct Entry {
    /// None: never (a lifetime too large for `Instant`).
    expires_at: Option<Instant>,
    revoked: bool,
    org_id: String,
}

impl Entry {
    fn new(lifetime_secs: u64, org_id: &str) -> Self {
        Self {
            expires_at: Instant::now().checked_add(Duration::from_secs(lifetime_secs)),
            revoked: false,
            org_id: org_id.to_owned(),
        }
    }

    fn valid(&self, now: Instant) -> bool {
        !self.revoked && self.expires_at.is_none_or(|t| now < t)
    }

    /// Whole seconds left (0 when expired).
    fn remaining_secs(&self, now: Instant) -> u64 {
        self.expires_at
            .map_or(u64::MAX, |t| t.saturating_duration_since(now).as_secs())
    }
}

#[derive(Debug, Default)]
struct Inner {
    access: HashMap<String, Entry>,
    refresh: HashMap<String, Entry>,
    /// Issue order, for the admin listing.
    access_order: Vec<String>,
    refresh_order: Vec<String>,
}

/// What a token endpoint answers (`tokens` in the service data, the identity response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_token_expires_in: u64,
}

impl Issued {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": self.refresh_token_expires_in,
            "token_type": "Bearer",
        })
    }
}

/// Every token issued, with its validity.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    inner: Mutex<Inner>,
}

/// A fresh opaque token (recorded for the test run's log scan).
pub(crate) fn new_token() -> String {
    let token = URL_SAFE_NO_PAD.encode(random_bytes(32));
    crate::test_run::record_secret("bearer-token", &token);
    token
}

impl TokenStore {
    /// A new access/refresh pair for a device of `org_id`.
    pub(crate) fn issue(&self, org_id: &str, life: &TokensScenario) -> Issued {
        let access = new_token();
        let refresh = new_token();
        let mut inner = lock(&self.inner);
        inner.access.insert(
            access.clone(),
            Entry::new(life.access_lifetime_secs, org_id),
        );
        inner.access_order.push(access.clone());
        inner.refresh.insert(
            refresh.clone(),
            Entry::new(life.refresh_lifetime_secs, org_id),
        );
        inner.refresh_order.push(refresh.clone());
        Issued {
            access_token: access,
            expires_in: life.access_lifetime_secs,
            refresh_token: refresh,
            refresh_token_expires_in: life.refresh_lifetime_secs,
        }
    }

    /// A new access token for a valid refresh token, which stays the same; `None` when the refresh
    /// token is unknown, expired or revoked.
    pub(crate) fn refresh(&self, refresh_token: &str, life: &TokensScenario) -> Option<Issued> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let entry = inner.refresh.get(refresh_token)?;
        if !entry.valid(now) {
            return None;
        }
        let org_id = entry.org_id.clone();
        let refresh_left = entry.remaining_secs(now);
        let access = new_token();
        inner.access.insert(
            access.clone(),
            Entry::new(life.access_lifetime_secs, &org_id),
        );
        inner.access_order.push(access.clone());
        Some(Issued {
            access_token: access,
            expires_in: life.access_lifetime_secs,
            refresh_token: refresh_token.to_owned(),
            refresh_token_expires_in: refresh_left,
        })
    }

    /// The org of a valid access token.
    pub(crate) fn check_access(&self, token: &str) -> Option<String> {
        let inner = lock(&self.inner);
        let entry = inner.access.get(token)?;
        entry.valid(Instant::now()).then(|| entry.org_id.clone())
    }

    /// Invalidates every access token issued so far.
    pub(crate) fn expire_access(&self) -> usize {
        let mut inner = lock(&self.inner);
        inner.access.values_mut().for_each(|e| e.revoked = true);
        inner.access.len()
    }

    /// Invalidates every refresh token issued so far.
    pub(crate) fn revoke_refresh(&self) -> usize {
        let mut inner = lock(&self.inner);
        inner.refresh.values_mut().for_each(|e| e.revoked = true);
        inner.refresh.len()
    }

    /// (access, refresh) tokens ever issued, oldest first.
    pub(crate) fn all(&self) -> (Vec<String>, Vec<String>) {
        let inner = lock(&self.inner);
        (inner.access_order.clone(), inner.refresh_order.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_refresh_expire_revoke() {
        let store = TokenStore::default();
        let life = TokensScenario::default();
        let first = store.issue("org", &life);
        assert_eq!(first.access_token.len(), 43);
        assert_ne!(first.access_token, first.refresh_token);
        assert_eq!(
            store.check_access(&first.access_token).as_deref(),
            Some("org")
        );
        assert_eq!(store.check_access("nope"), None);

        let second = store.refresh(&first.refresh_token, &life).expect("refresh");
        assert_eq!(second.refresh_token, first.refresh_token);
        assert_ne!(second.access_token, first.access_token);
        assert!(second.refresh_token_expires_in <= life.refresh_lifetime_secs);
        assert!(store.check_access(&first.access_token).is_some());

        assert_eq!(store.expire_access(), 2);
        assert_eq!(store.check_access(&second.access_token), None);
        let third = store.refresh(&first.refresh_token, &life).expect("refresh");
        assert!(store.check_access(&third.access_token).is_some());

        store.revoke_refresh();
        assert!(store.refresh(&first.refresh_token, &life).is_none());
        assert!(store.refresh("unknown", &life).is_none());
        let (access, refresh) = store.all();
        assert_eq!(access.len(), 3);
        assert_eq!(refresh, vec![first.refresh_token]);
    }

    #[test]
    fn expiry_by_time() {
        let store = TokenStore::default();
        let issued = store.issue("org", &TokensScenario::default());
        // Forge an already-expired entry.
        lock(&store.inner)
            .access
            .get_mut(&issued.access_token)
            .expect("entry")
            .expires_at = Some(Instant::now());
        assert_eq!(store.check_access(&issued.access_token), None);
    }
}
