//! xAPI users: the local admin and the touch panel, their argon2id password hashes in
//! `<state>/xapi-users.json` (0600, written by `roomd passwd`), credential parsing from the
//! jsxapi subprotocol or Basic auth, and a per-address lockout after failed logins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::store::{StateDir, StoreError};

pub const USERS_FILE: &str = "xapi-users.json";
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Failed logins from one address within [`FAILURE_WINDOW`] that lock it out.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a locked-out address is refused without a check (HTTP 429).
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses with recent failures kept before stale ones are dropped (bounds the memory a
/// stream of wrong logins from many addresses can take).
const MAX_TRACKED_ADDRESSES: usize = 1024;

/// Who may do what (`docs/xapi.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    #[serde(rename = "touchpanel")]
    TouchPanel,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::TouchPanel];

    /// The user name that logs in with this role.
    pub fn user(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TouchPanel => "touchpanel",
        }
    }

    pub fn from_user(user: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.user() == user)
    }
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum AuthError {
    /// unknown user {0:?} (admin or touchpanel)
    UnknownUser(String),
    /// the password must have at least 8 characters
    TooShort,
    /// xapi-users.json is not valid: {0}
    Corrupt(String),
    /// hashing the password failed: {0}
    Hash(String),
    /// {0}
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    schema: u32,
    /// PHC strings (`$argon2id$v=19$...`) by user name.
    users: BTreeMap<String, String>,
}

/// argon2id with OWASP's minimum (19 MiB, 2 passes): a login costs tens of milliseconds here,
/// which the verified-credentials cache keeps off the reconnect path.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

fn load(state: &StateDir) -> Result<UsersFile, AuthError> {
    match state.read(USERS_FILE)? {
        None => Ok(UsersFile {
            schema: 1,
            ..Default::default()
        }),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| AuthError::Corrupt(e.to_string()))
        }
    }
}

/// Sets (or replaces) a user's password (`roomd passwd`).
pub fn set_password(state: &StateDir, user: &str, password: &str) -> Result<(), AuthError> {
    let role = Role::from_user(user).ok_or_else(|| AuthError::UnknownUser(user.to_owned()))?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::TooShort);
    }
    let mut salt = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    let hash = hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .to_string();
    let mut file = load(state)?;
    file.schema = 1;
    file.users.insert(role.user().to_owned(), hash);
    let bytes = serde_json::to_vec_pretty(&file).expect("users file serialises");
    state.write_atomic(USERS_FILE, &bytes)?;
    Ok(())
}

/// Credentials as a client presented them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    fn from_pair(decoded: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(Self::new(user, password))
    }

    /// `auth-<base64url(user:pass)>` among the offered subprotocols (jsxapi); returns the
    /// credentials and the exact protocol to echo.
    pub fn from_subprotocols(header: &str) -> Option<(Self, String)> {
        header.split(',').map(str::trim).find_map(|proto| {
            let encoded = proto.strip_prefix("auth-")?;
            let decoded = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')).ok()?;
            Some((Self::from_pair(&decoded)?, proto.to_owned()))
        })
    }

    /// `Authorization: Basic <base64(user:pass)>`.
    pub fn from_basic(header: &str) -> Option<Self> {
        let (scheme, encoded) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        Self::from_pair(&STANDARD.decode(encoded.trim()).ok()?)
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.user.as_bytes());
        digest.update([0]);
        digest.update(self.password.as_bytes());
        digest.finalize().into()
    }
}

/// Checks logins against the users file. Successful checks are remembered (as a SHA-256 of
/// the credentials, per file version) so reconnects do not pay for argon2 again. Failures are
/// counted per client address: [`MAX_FAILURES`] within [`FAILURE_WINDOW`] lock the address out
/// for [`LOCKOUT`], whatever it sends. argon2 checks run one at a time, so parallel guesses
/// from one address are counted before the next is checked (and cannot exhaust memory).
#[derive(Debug, Clone)]
pub struct Authenticator {
    state: StateDir,
    inner: Arc<Mutex<AuthMemory>>,
    hashing: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Default)]
struct AuthMemory {
    file_stamp: Option<(std::time::SystemTime, u64)>,
    verified: HashSet<[u8; 32]>,
    addresses: HashMap<IpAddr, AddressRecord>,
}

/// Recent failed logins of one client address, and its lockout.
#[derive(Debug, Default)]
struct AddressRecord {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// The outcome of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Accepted(Role),
    /// Wrong or missing credentials. `locked_out`: this failure was the address's
    /// [`MAX_FAILURES`]th within [`FAILURE_WINDOW`], so it is now locked out for [`LOCKOUT`].
    Refused {
        locked_out: bool,
    },
    /// The address is locked out: refused without a check, for `retry_after` more.
    RateLimited {
        retry_after: Duration,
    },
}

impl Authenticator {
    pub fn new(state: StateDir) -> Self {
        Self {
            state,
            inner: Arc::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// Checks `credentials` from `peer`; argon2 runs on the blocking pool.
    pub async fn login(&self, peer: IpAddr, credentials: Option<Credentials>) -> Login {
        if let Some(retry_after) = self.locked_out(peer) {
            return Login::RateLimited { retry_after };
        }
        let role = match credentials {
            Some(credentials) => match self.remembered(&credentials) {
                Some(role) => Some(role),
                None => {
                    let _turn = self.hashing.acquire().await.expect("never closed");
                    // Guesses from one address queue here: the ones behind the failure that
                    // locked it out are refused without a check.
                    if let Some(retry_after) = self.locked_out(peer) {
                        return Login::RateLimited { retry_after };
                    }
                    self.verify(credentials).await
                }
            },
            None => None,
        };
        match role {
            Some(role) => Login::Accepted(role),
            None => Login::Refused {
                locked_out: self.count_failure(peer),
            },
        }
    }

    /// How much longer `peer` is locked out, if it is.
    fn locked_out(&self, peer: IpAddr) -> Option<Duration> {
        let mut memory = self.inner.lock().expect("auth lock");
        let now = Instant::now();
        let record = memory.addresses.get_mut(&peer)?;
        match record.locked_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                record.locked_until = None;
                None
            }
            None => None,
        }
    }

    /// Counts a failed login; true when it locks `peer` out.
    fn count_failure(&self, peer: IpAddr) -> bool {
        let mut memory = self.inner.lock().expect("auth lock");
        let now = Instant::now();
        if memory.addresses.len() >= MAX_TRACKED_ADDRESSES {
            memory.addresses.retain(|_, r| r.is_recent(now));
        }
        let record = memory.addresses.entry(peer).or_default();
        record
            .failures
            .retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
        record.failures.push(now);
        if record.failures.len() < MAX_FAILURES {
            return false;
        }
        record.failures.clear();
        record.locked_until = Some(now + LOCKOUT);
        true
    }

    /// The role of credentials that checked out before against the current users file.
    fn remembered(&self, credentials: &Credentials) -> Option<Role> {
        let role = Role::from_user(&credentials.user)?;
        let stamp = self.file_stamp();
        let mut memory = self.inner.lock().expect("auth lock");
        if memory.file_stamp != stamp {
            memory.file_stamp = stamp;
            memory.verified.clear();
        }
        memory
            .verified
            .contains(&credentials.fingerprint())
            .then_some(role)
    }

    async fn verify(&self, credentials: Credentials) -> Option<Role> {
        let role = Role::from_user(&credentials.user)?;
        let stamp = self.file_stamp();
        let fingerprint = credentials.fingerprint();
        if let Some(role) = self.remembered(&credentials) {
            return Some(role);
        }
        let file = match load(&self.state) {
            Ok(file) => file,
            Err(e) => {
                tracing::error!("xAPI logins refused: {e}");
                return None;
            }
        };
        let hash = file.users.get(role.user())?.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|hash| {
                hasher()
                    .verify_password(credentials.password.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut memory = self.inner.lock().expect("auth lock");
            if memory.file_stamp == stamp {
                memory.verified.insert(fingerprint);
            }
            return Some(role);
        }
        None
    }

    fn file_stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let meta = std::fs::metadata(self.state.file(USERS_FILE)).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }
}

impl AddressRecord {
    /// Still locked out, or failures that still count.
    fn is_recent(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| until > now)
            || self
                .failures
                .iter()
                .any(|at| now.duration_since(*at) < FAILURE_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        (dir, state)
    }

    #[test]
    fn credentials_come_from_jsxapi_subprotocols_and_basic_auth() {
        let (c, proto) = Credentials::from_subprotocols("chat, auth-YWRtaW46czNjcjN0OnBhc3M")
            .expect("auth subprotocol");
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("admin", "s3cr3t:pass")
        );
        assert_eq!(proto, "auth-YWRtaW46czNjcjN0OnBhc3M");
        let c = Credentials::from_basic("Basic dG91Y2hwYW5lbDpwYW5lbHBhc3M=").unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("touchpanel", "panelpass")
        );
        assert!(Credentials::from_subprotocols("auth-!!!").is_none());
        assert!(Credentials::from_basic("Bearer abc").is_none());
        assert!(!format!("{c:?}").contains("panelpass"));
    }

    #[test]
    fn passwords_are_checked_hashed_and_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, state) = state();
        assert!(matches!(
            set_password(&state, "root", "longenough"),
            Err(AuthError::UnknownUser(_))
        ));
        assert!(matches!(
            set_password(&state, "admin", "short"),
            Err(AuthError::TooShort)
        ));
        set_password(&state, "admin", "correct horse").unwrap();
        let text = std::fs::read_to_string(state.file(USERS_FILE)).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains("correct horse"));
        let mode = std::fs::metadata(state.file(USERS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A users file written by an earlier roomd still verifies: this PHC string was made by
    /// argon2 0.6 (password-hash 0.6) with `hasher()`'s parameters; roomd now hashes with
    /// argon2 0.5. PHC strings are one format across both.
    #[tokio::test]
    async fn stored_hashes_from_argon2_0_6_still_verify() {
        const STORED: &str = "$argon2id$v=19$m=19456,t=2,p=1$cm9vbWQtc2FsdC0xNmJ5dA$\
                              t+yrnkVTNP0ik4RaH8ws3xLLD2EGRay0HtGP7o4zaiE";
        let (_dir, state) = state();
        let file = UsersFile {
            schema: 1,
            users: [("admin".to_owned(), STORED.to_owned())].into(),
        };
        state
            .write_atomic(USERS_FILE, &serde_json::to_vec(&file).unwrap())
            .unwrap();
        let auth = Authenticator::new(state);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            auth.login(
                peer,
                Some(Credentials::new("admin", "correct horse battery"))
            )
            .await,
            Login::Accepted(Role::Admin)
        );
        assert_eq!(
            auth.login(peer, Some(Credentials::new("admin", "correct horse")))
                .await,
            Login::Refused { locked_out: false }
        );
    }

    #[tokio::test]
    async fn logins_accept_refuse_and_lock_out() {
        let (_dir, state) = state();
        set_password(&state, "admin", "correct horse").unwrap();
        let auth = Authenticator::new(state.clone());
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let refused = Login::Refused { locked_out: false };
        assert_eq!(
            auth.login(peer, Some(Credentials::new("admin", "correct horse")))
                .await,
            Login::Accepted(Role::Admin)
        );
        // A user without a password cannot log in.
        assert_eq!(
            auth.login(peer, Some(Credentials::new("touchpanel", "")))
                .await,
            refused
        );
        for _ in 2..MAX_FAILURES {
            assert_eq!(
                auth.login(peer, Some(Credentials::new("admin", "wrong")))
                    .await,
                refused
            );
        }
        assert_eq!(
            auth.login(peer, Some(Credentials::new("nobody", "wrong")))
                .await,
            Login::Refused { locked_out: true },
            "the fifth failure within the window locks the address out"
        );
        assert!(matches!(
            auth.login(peer, Some(Credentials::new("admin", "correct horse")))
                .await,
            Login::RateLimited { retry_after } if retry_after <= LOCKOUT
        ));
        assert_eq!(auth.login(other, None).await, refused);
        // A new password invalidates what was remembered.
        set_password(&state, "admin", "battery staple").unwrap();
        assert_eq!(
            auth.login(other, Some(Credentials::new("admin", "correct horse")))
                .await,
            refused
        );
        assert_eq!(
            auth.login(other, Some(Credentials::new("admin", "battery staple")))
                .await,
            Login::Accepted(Role::Admin)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lockout_lasts_its_time_then_the_right_password_works_again() {
        let (_dir, state) = state();
        set_password(&state, "admin", "correct horse").unwrap();
        let auth = Authenticator::new(state);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let right = || Some(Credentials::new("admin", "correct horse"));
        // Missing credentials count as failures too, without an argon2 check each.
        // Failures further apart than the window never add up to a lockout.
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.login(peer, None).await,
                Login::Refused { locked_out: false }
            );
            tokio::time::advance(FAILURE_WINDOW).await;
        }
        for n in 1..=MAX_FAILURES {
            let credentials = (n == MAX_FAILURES).then(|| Credentials::new("admin", "wrong"));
            assert_eq!(
                auth.login(peer, credentials).await,
                Login::Refused {
                    locked_out: n == MAX_FAILURES
                }
            );
        }
        assert_eq!(
            auth.login(peer, right()).await,
            Login::RateLimited {
                retry_after: LOCKOUT
            }
        );
        tokio::time::advance(LOCKOUT - Duration::from_secs(1)).await;
        assert_eq!(
            auth.login(peer, right()).await,
            Login::RateLimited {
                retry_after: Duration::from_secs(1)
            }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            auth.login(peer, right()).await,
            Login::Accepted(Role::Admin)
        );
        // The lockout left no failures behind: it takes MAX_FAILURES again.
        for n in 1..=MAX_FAILURES {
            assert_eq!(
                auth.login(peer, None).await,
                Login::Refused {
                    locked_out: n == MAX_FAILURES
                }
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_guesses_from_one_address_are_counted_before_more_are_checked() {
        let (_dir, state) = state();
        set_password(&state, "admin", "correct horse").unwrap();
        let auth = Authenticator::new(state);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let guesses: Vec<_> = (0..3 * MAX_FAILURES)
            .map(|n| {
                let auth = auth.clone();
                tokio::spawn(async move {
                    auth.login(peer, Some(Credentials::new("admin", format!("guess {n}"))))
                        .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for guess in guesses {
            outcomes.push(guess.await.unwrap());
        }
        let checked = outcomes
            .iter()
            .filter(|o| matches!(o, Login::Refused { .. }))
            .count();
        let locking = outcomes
            .iter()
            .filter(|o| **o == Login::Refused { locked_out: true })
            .count();
        assert_eq!((checked, locking), (MAX_FAILURES, 1), "{outcomes:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_with_stale_failures_are_forgotten() {
        let (_dir, state) = state();
        let auth = Authenticator::new(state);
        for n in 0..MAX_TRACKED_ADDRESSES as u32 {
            let peer = IpAddr::from(std::net::Ipv4Addr::from(0xC000_0200 + n));
            auth.login(peer, None).await;
        }
        assert_eq!(
            auth.inner.lock().unwrap().addresses.len(),
            MAX_TRACKED_ADDRESSES
        );
        tokio::time::advance(FAILURE_WINDOW).await;
        auth.login("198.51.100.1".parse().unwrap(), None).await;
        assert_eq!(auth.inner.lock().unwrap().addresses.len(), 1);
    }
}
