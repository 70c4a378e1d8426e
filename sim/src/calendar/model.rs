//! The calendar's public types (scenario `[[bookings]]` and `[kms]`, admin bodies, ground truth)
//! and the resolved [`Booking`] the store keeps.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::dto::{key_url, resource_id};
use super::time::{MAX_MS, MIN_MS, format_ms, parse_iso8601};
use crate::mercury::DeliveredEvent;

/// Largest |`start_in_mins`| accepted (ten years).
pub const MAX_START_IN_MINS: i64 = 10 * 525_600;
/// Longest booking (one year), in minutes.
pub const MAX_DURATION_MINS: u32 = 525_600;
/// Most bookings one bulk request may create.
pub const MAX_BULK: usize = 100_000;

/// `[[bookings]]` of the scenario, and the body of `POST /admin/calendar/bookings` (plus `event`).
/// Give exactly one of `start` and `start_in_mins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingSpec {
    /// The meeting id; a new UUID when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `seriesId`; omitted from the DTO when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    /// The subject (`encryptedSubject`).
    pub title: String,
    /// `encryptedLocation`; omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `organizer` (plaintext); a new UUID when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_id: Option<String>,
    /// `encryptedOrganizerName`; default [`DEFAULT_ORGANIZER_NAME`].
    #[serde(default = "default_organizer_name")]
    pub organizer_name: String,
    /// `encryptedOrganizerEmail`; default [`DEFAULT_ORGANIZER_EMAIL`].
    #[serde(default = "default_organizer_email")]
    pub organizer_email: String,
    /// ISO-8601 with an offset or `Z` (`2022-04-26T13:15:00.000Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Minutes from when the scenario is loaded (or the admin call is made); may be negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_in_mins: Option<i64>,
    /// Default 30; 1..=525600.
    #[serde(default = "default_duration")]
    pub duration_mins: u32,
    /// `meetingJoinType`: `WEBEX` (default), `TEAMS`, `ZOOM`, `SIP`, ...
    #[serde(default = "default_join_type")]
    pub join_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webex_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webex_url: Option<String>,
    /// `meetingJoinInfo.meetingJoinURI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_join_uri: Option<String>,
    /// `meetingJoinInfo.meetingJoinURL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_join_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_uri: Option<String>,
    /// JWE-encrypt the `encrypted*` and URI/URL fields (default true); false sends them plaintext.
    #[serde(default = "yes")]
    pub encrypted: bool,
    /// KMS key name (`[kms] keys`); default `default`.
    #[serde(default = "default_key")]
    pub key: String,
    /// `isRecurring`.
    #[serde(default)]
    pub recurring: bool,
}

/// `organizer_name` when a booking names none.
pub const DEFAULT_ORGANIZER_NAME: &str = "Sim Organizer";
/// `organizer_email` when a booking names none.
pub const DEFAULT_ORGANIZER_EMAIL: &str = "organizer@sim.invalid";
/// The KMS key every scenario has unless `[kms] keys` says otherwise.
pub const DEFAULT_KEY: &str = "default";

fn default_organizer_name() -> String {
    DEFAULT_ORGANIZER_NAME.to_owned()
}
fn default_organizer_email() -> String {
    DEFAULT_ORGANIZER_EMAIL.to_owned()
}
fn default_duration() -> u32 {
    30
}
fn default_join_type() -> String {
    "WEBEX".to_owned()
}
fn default_key() -> String {
    DEFAULT_KEY.to_owned()
}
fn yes() -> bool {
    true
}

impl Default for BookingSpec {
    fn default() -> Self {
        Self {
            id: None,
            series_id: None,
            title: String::new(),
            location: None,
            organizer_id: None,
            organizer_name: default_organizer_name(),
            organizer_email: default_organizer_email(),
            start: None,
            start_in_mins: None,
            duration_mins: default_duration(),
            join_type: default_join_type(),
            webex_uri: None,
            webex_url: None,
            meeting_join_uri: None,
            meeting_join_url: None,
            space_uri: None,
            space_url: None,
            call_uri: None,
            encrypted: true,
            key: default_key(),
            recurring: false,
        }
    }
}

impl BookingSpec {
    /// A booking titled `title` starting `start_in_mins` from now, every other field at its default.
    pub fn new(title: impl Into<String>, start_in_mins: i64) -> Self {
        Self {
            title: title.into(),
            start_in_mins: Some(start_in_mins),
            ..Self::default()
        }
    }

    /// The booking this spec describes, relative times taken from `now_ms`; `Err` names the problem.
    pub(crate) fn resolve(&self, now_ms: i64) -> Result<Booking, String> {
        let start_ms = resolve_start(self.start.as_deref(), self.start_in_mins, now_ms)?
            .ok_or("give one of start or start_in_mins")?;
        let b = Booking {
            id: self.id.clone().unwrap_or_else(new_id),
            series_id: self.series_id.clone(),
            title: self.title.clone(),
            location: self.location.clone(),
            organizer_id: self.organizer_id.clone().unwrap_or_else(new_id),
            organizer_name: self.organizer_name.clone(),
            organizer_email: self.organizer_email.clone(),
            start_ms,
            duration_mins: self.duration_mins,
            join_type: self.join_type.clone(),
            uris: Uris {
                webex_uri: nonempty(&self.webex_uri),
                webex_url: nonempty(&self.webex_url),
                meeting_join_uri: nonempty(&self.meeting_join_uri),
                meeting_join_url: nonempty(&self.meeting_join_url),
                space_uri: nonempty(&self.space_uri),
                space_url: nonempty(&self.space_url),
                call_uri: nonempty(&self.call_uri),
            },
            encrypted: self.encrypted,
            key: self.key.clone(),
            recurring: self.recurring,
        };
        b.check()?;
        Ok(b)
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// `start` (absolute) or `start_in_mins` (relative to `now_ms`); `Ok(None)` when neither is given.
fn resolve_start(
    start: Option<&str>,
    start_in_mins: Option<i64>,
    now_ms: i64,
) -> Result<Option<i64>, String> {
    match (start, start_in_mins) {
        (Some(_), Some(_)) => Err("give only one of start and start_in_mins".to_owned()),
        (Some(s), None) => parse_iso8601(s)
            .filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "start {s:?} is not an ISO-8601 time from 1970 to 9999 with Z or an offset \
                     (2022-04-26T13:15:00.000Z)"
                )
            }),
        (None, Some(m)) if m.abs() <= MAX_START_IN_MINS => {
            Ok(Some((now_ms + m * 60_000).clamp(MIN_MS, MAX_MS)))
        }
        (None, Some(_)) => Err(format!(
            "start_in_mins must be within -{MAX_START_IN_MINS}..={MAX_START_IN_MINS}"
        )),
        (None, None) => Ok(None),
    }
}

/// `[kms]` of the scenario: the keys the simulated KMS holds, each 32 random bytes made at load and
/// served at `kms://kms.sim.invalid/keys/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KmsScenario {
    /// Key names (letters, digits, `.`, `_`, `~`, `-`); default `["default"]`.
    pub keys: Vec<String>,
}

impl Default for KmsScenario {
    fn default() -> Self {
        Self {
            keys: vec![default_key()],
        }
    }
}

/// Checks a KMS key name: 1..=128 URL-unreserved characters.
pub(crate) fn check_key_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "KMS key name {name:?} must be 1 to 128 letters, digits, '.', '_', '~' or '-'"
        ))
    }
}

/// Sets a field that may be removed: absent = unchanged, `null` = removed, a value = set.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PATCH /admin/calendar/bookings/{id}` (plus `event`): the fields to change. Optional
/// fields (`series_id`, `location`, the URIs) are removed with `null`; an empty URI also removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingPatch {
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub series_id: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub location: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Relative to the moment of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_in_mins: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_mins: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub webex_uri: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub webex_url: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub meeting_join_uri: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub meeting_join_url: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub space_uri: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub space_url: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub call_uri: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring: Option<bool>,
}

impl BookingPatch {
    /// `b` with the changes; `Err` names the problem (and `b` is left as it was).
    pub(crate) fn apply(&self, b: &Booking, now_ms: i64) -> Result<Booking, String> {
        fn set<T: Clone>(field: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                field.clone_from(v);
            }
        }
        fn set_opt(field: &mut Option<String>, v: &Option<Option<String>>) {
            if let Some(v) = v {
                *field = nonempty(v);
            }
        }
        let mut n = b.clone();
        if let Some(start) = resolve_start(self.start.as_deref(), self.start_in_mins, now_ms)? {
            n.start_ms = start;
        }
        set_opt(&mut n.series_id, &self.series_id);
        set(&mut n.title, &self.title);
        set_opt(&mut n.location, &self.location);
        set(&mut n.organizer_id, &self.organizer_id);
        set(&mut n.organizer_name, &self.organizer_name);
        set(&mut n.organizer_email, &self.organizer_email);
        set(&mut n.duration_mins, &self.duration_mins);
        set(&mut n.join_type, &self.join_type);
        set_opt(&mut n.uris.webex_uri, &self.webex_uri);
        set_opt(&mut n.uris.webex_url, &self.webex_url);
        set_opt(&mut n.uris.meeting_join_uri, &self.meeting_join_uri);
        set_opt(&mut n.uris.meeting_join_url, &self.meeting_join_url);
        set_opt(&mut n.uris.space_uri, &self.space_uri);
        set_opt(&mut n.uris.space_url, &self.space_url);
        set_opt(&mut n.uris.call_uri, &self.call_uri);
        set(&mut n.encrypted, &self.encrypted);
        set(&mut n.key, &self.key);
        set(&mut n.recurring, &self.recurring);
        n.check()?;
        Ok(n)
    }
}

/// Which mercury event an admin change emits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventMode {
    /// `calendar.meeting.create` / `.update` with the full DTO; `.delete` with `{"id"}` (default).
    #[default]
    Full,
    /// `calendar.meeting.create.minimal` / `.update.minimal` with `{"id","start"}` (not for delete).
    Minimal,
    /// No event: the client finds out by its next catch-up.
    None,
}

impl EventMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Minimal => "minimal",
            Self::None => "none",
        }
    }
}

/// `POST /admin/calendar/bookings/bulk`: `count` bookings `Bulk meeting <n>` (n from 1), the n-th
/// starting `start_in_mins + (n-1) * spacing_mins` from now, each with a `webexURI`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkSpec {
    /// 1..=100000.
    pub count: usize,
    /// Default 0.
    #[serde(default)]
    pub start_in_mins: i64,
    /// Default 1 (0 or negative allowed).
    #[serde(default = "one_min")]
    pub spacing_mins: i64,
    #[serde(default = "default_duration")]
    pub duration_mins: u32,
    #[serde(default = "yes")]
    pub encrypted: bool,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_join_type")]
    pub join_type: String,
    /// Titles are `<title_prefix> <n>`; default `Bulk meeting`.
    #[serde(default = "default_title_prefix")]
    pub title_prefix: String,
    /// Default `none`; `full`/`minimal` push one create event per booking, in one batch (a socket
    /// queues at most 1024 frames; the rest are reported undelivered).
    #[serde(default = "no_event")]
    pub event: EventMode,
}

fn one_min() -> i64 {
    1
}
fn default_title_prefix() -> String {
    "Bulk meeting".to_owned()
}
fn no_event() -> EventMode {
    EventMode::None
}

impl BulkSpec {
    /// `count` bookings with every other setting at its default.
    pub fn new(count: usize) -> Self {
        Self {
            count,
            start_in_mins: 0,
            spacing_mins: one_min(),
            duration_mins: default_duration(),
            encrypted: true,
            key: default_key(),
            join_type: default_join_type(),
            title_prefix: default_title_prefix(),
            event: EventMode::None,
        }
    }

    pub(crate) fn resolve(&self, now_ms: i64) -> Result<Vec<Booking>, String> {
        if self.count == 0 || self.count > MAX_BULK {
            return Err(format!("count must be within 1..={MAX_BULK}"));
        }
        let mut out = Vec::with_capacity(self.count);
        let mut offset = self.start_in_mins;
        for n in 1..=self.count {
            if offset.abs() > MAX_START_IN_MINS {
                return Err(format!(
                    "booking {n} would start {offset} minutes from now, beyond {MAX_START_IN_MINS}"
                ));
            }
            let b = Booking {
                id: new_id(),
                series_id: None,
                title: format!("{} {n}", self.title_prefix),
                location: None,
                organizer_id: new_id(),
                organizer_name: default_organizer_name(),
                organizer_email: default_organizer_email(),
                start_ms: (now_ms + offset * 60_000).clamp(MIN_MS, MAX_MS),
                duration_mins: self.duration_mins,
                join_type: self.join_type.clone(),
                uris: Uris {
                    webex_uri: Some(format!("bulk-{n}@webex.sim.invalid")),
                    ..Uris::default()
                },
                encrypted: self.encrypted,
                key: self.key.clone(),
                recurring: false,
            };
            if n == 1 {
                b.check()?;
            }
            out.push(b);
            offset = offset.saturating_add(self.spacing_mins);
        }
        Ok(out)
    }
}

/// A failure armed with `POST /admin/calendar/faults`: list page `fail_page` (offset / max + 1)
/// answers `status` the next `count` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageFault {
    /// 1 is the first page.
    pub fail_page: u64,
    /// 200..=599.
    pub status: u16,
    /// Default 1; what remains while armed.
    #[serde(default = "one_count")]
    pub count: u32,
    /// Seconds for a `Retry-After` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// JSON body; `{"message":"<reason> (fault injected by roomd-sim)"}` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

fn one_count() -> u32 {
    1
}

impl PageFault {
    /// Page `page` fails with `status` `count` times.
    pub fn new(page: u64, status: u16, count: u32) -> Self {
        Self {
            fail_page: page,
            status,
            count,
            retry_after: None,
            body: None,
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.fail_page == 0 {
            return Err("fail_page counts from 1".to_owned());
        }
        if !(200..=599).contains(&self.status) {
            return Err(format!("status {} must be within 200..=599", self.status));
        }
        if self.count == 0 {
            return Err("count must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// One KMS key as `GET /admin/kms/keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsKey {
    pub name: String,
    /// `kms://kms.sim.invalid/keys/<name>`, the bookings' `encryptionKeyUrl`.
    pub uri: String,
    /// The 32 key bytes, base64url without padding (the JWK's `k`).
    pub k: String,
    /// `GET /kms/keys` answers 404 for it while true.
    pub missing: bool,
}

/// One booking as the simulator holds it, in plaintext: what roomd should end up showing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingTruth {
    pub id: String,
    /// base64url (no padding) of `id`: the `{id}` of `GET {calendar}/calendarEvents/{id}`.
    pub resource_id: String,
    pub series_id: Option<String>,
    pub title: String,
    pub location: Option<String>,
    pub organizer_id: String,
    pub organizer_name: String,
    pub organizer_email: String,
    /// ISO-8601 UTC with milliseconds.
    pub start: String,
    /// `start` + `duration_mins`.
    pub end: String,
    pub start_ms: i64,
    pub duration_mins: u32,
    pub join_type: String,
    pub webex_uri: Option<String>,
    pub webex_url: Option<String>,
    pub meeting_join_uri: Option<String>,
    pub meeting_join_url: Option<String>,
    pub space_uri: Option<String>,
    pub space_url: Option<String>,
    pub call_uri: Option<String>,
    /// Any of meetingJoinURI, meetingJoinURL, webexURI, spaceURI, callURI is present.
    pub obtp_eligible: bool,
    /// The URI to dial by the profile's preference: webexURI > meetingJoinURI > spaceURI > callURI
    /// > meetingJoinURL.
    pub join_uri: Option<String>,
    pub encrypted: bool,
    pub key: String,
    /// `encryptionKeyUrl`.
    pub key_url: String,
    pub recurring: bool,
}

/// What an admin create, update or delete did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingChange {
    /// The booking as it now is (for a delete: as it was).
    pub booking: BookingTruth,
    /// The event pushed, `None` with `event: "none"`.
    #[serde(rename = "eventType")]
    pub event_type: Option<String>,
    /// One entry per online socket that got it (its `id` is the frame id the client acks).
    pub delivered: Vec<DeliveredEvent>,
    /// Registrations without an online socket.
    pub undelivered: Vec<String>,
}

/// What a bulk create did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkOutcome {
    /// The new bookings' ids, in creation (= start) order.
    pub ids: Vec<String>,
    pub delivered: Vec<DeliveredEvent>,
    pub undelivered: Vec<String>,
}

/// Why an admin calendar or KMS request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// 400: bad input.
    BadRequest(String),
    /// 404: no such booking or key.
    NotFound(String),
    /// 409: a booking with this id exists.
    Conflict(String),
}

impl std::fmt::Display for CalendarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(m) | Self::NotFound(m) | Self::Conflict(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CalendarError {}

/// The join URIs and URLs of a booking; `None` = not present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Uris {
    pub webex_uri: Option<String>,
    pub webex_url: Option<String>,
    pub meeting_join_uri: Option<String>,
    pub meeting_join_url: Option<String>,
    pub space_uri: Option<String>,
    pub space_url: Option<String>,
    pub call_uri: Option<String>,
}

/// A booking with everything resolved (ids, absolute start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Booking {
    pub id: String,
    pub series_id: Option<String>,
    pub title: String,
    pub location: Option<String>,
    pub organizer_id: String,
    pub organizer_name: String,
    pub organizer_email: String,
    pub start_ms: i64,
    pub duration_mins: u32,
    pub join_type: String,
    pub uris: Uris,
    pub encrypted: bool,
    pub key: String,
    pub recurring: bool,
}

impl Booking {
    /// What serde cannot check.
    fn check(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("id must not be empty".to_owned());
        }
        if self.organizer_id.is_empty() {
            return Err("organizer_id must not be empty".to_owned());
        }
        if self.join_type.trim().is_empty() {
            return Err("join_type must not be empty".to_owned());
        }
        if self.duration_mins == 0 || self.duration_mins > MAX_DURATION_MINS {
            return Err(format!(
                "duration_mins must be within 1..={MAX_DURATION_MINS}"
            ));
        }
        check_key_name(&self.key)
    }

    pub(crate) fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.duration_mins) * 60_000
    }

    /// The URI to join with, by the profile's preference.
    fn join_uri(&self) -> Option<&String> {
        let u = &self.uris;
        u.webex_uri
            .as_ref()
            .or(u.meeting_join_uri.as_ref())
            .or(u.space_uri.as_ref())
            .or(u.call_uri.as_ref())
            .or(u.meeting_join_url.as_ref())
    }

    pub(crate) fn truth(&self) -> BookingTruth {
        let u = &self.uris;
        BookingTruth {
            id: self.id.clone(),
            resource_id: resource_id(&self.id),
            series_id: self.series_id.clone(),
            title: self.title.clone(),
            location: self.location.clone(),
            organizer_id: self.organizer_id.clone(),
            organizer_name: self.organizer_name.clone(),
            organizer_email: self.organizer_email.clone(),
            start: format_ms(self.start_ms),
            end: format_ms(self.end_ms()),
            start_ms: self.start_ms,
            duration_mins: self.duration_mins,
            join_type: self.join_type.clone(),
            webex_uri: u.webex_uri.clone(),
            webex_url: u.webex_url.clone(),
            meeting_join_uri: u.meeting_join_uri.clone(),
            meeting_join_url: u.meeting_join_url.clone(),
            space_uri: u.space_uri.clone(),
            space_url: u.space_url.clone(),
            call_uri: u.call_uri.clone(),
            obtp_eligible: self.join_uri().is_some(),
            join_uri: self.join_uri().cloned(),
            encrypted: self.encrypted,
            key: self.key.clone(),
            key_url: key_url(&self.key),
            recurring: self.recurring,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_650_000_000_000;

    #[test]
    fn spec_defaults_and_resolution() {
        let b = BookingSpec::new("Standup", 10)
            .resolve(NOW)
            .expect("resolves");
        assert_eq!(b.start_ms, NOW + 600_000);
        assert_eq!(b.duration_mins, 30);
        assert_eq!(b.join_type, "WEBEX");
        assert!(b.encrypted && !b.recurring);
        assert_eq!(b.key, "default");
        assert_eq!(b.id.len(), 36);
        let t = b.truth();
        assert!(!t.obtp_eligible);
        assert_eq!(t.join_uri, None);
        assert_eq!(t.key_url, "kms://kms.sim.invalid/keys/default");

        let spec = BookingSpec {
            id: Some("m1".into()),
            start: Some("2022-04-26T13:15:00.000Z".into()),
            start_in_mins: None,
            meeting_join_url: Some("https://join".into()),
            call_uri: Some("sip:call@x".into()),
            space_uri: Some(String::new()),
            ..BookingSpec::new("x", 0)
        };
        let t = spec.resolve(NOW).expect("resolves").truth();
        assert_eq!(t.start, "2022-04-26T13:15:00.000Z");
        assert_eq!(t.end, "2022-04-26T13:45:00.000Z");
        assert_eq!(t.space_uri, None, "empty means absent");
        assert_eq!(t.join_uri.as_deref(), Some("sip:call@x"));
        assert_eq!(t.resource_id, "bTE");
    }

    #[test]
    fn spec_errors() {
        let both = BookingSpec {
            start: Some("2022-04-26T13:15:00Z".into()),
            ..BookingSpec::new("x", 1)
        };
        assert!(both.resolve(NOW).unwrap_err().contains("only one"));
        let none = BookingSpec {
            start_in_mins: None,
            ..BookingSpec::new("x", 1)
        };
        assert!(none.resolve(NOW).unwrap_err().contains("one of"));
        let bad = BookingSpec {
            start: Some("tomorrow".into()),
            start_in_mins: None,
            ..BookingSpec::new("x", 1)
        };
        assert!(bad.resolve(NOW).unwrap_err().contains("ISO-8601"));
        let zero = BookingSpec {
            duration_mins: 0,
            ..BookingSpec::new("x", 1)
        };
        assert!(zero.resolve(NOW).unwrap_err().contains("duration_mins"));
        let key = BookingSpec {
            key: "a/b".into(),
            ..BookingSpec::new("x", 1)
        };
        assert!(key.resolve(NOW).unwrap_err().contains("KMS key name"));
        assert!(
            BookingSpec::new("x", MAX_START_IN_MINS + 1)
                .resolve(NOW)
                .is_err()
        );
    }

    #[test]
    fn patch_sets_removes_and_keeps() {
        let b = BookingSpec {
            location: Some("Room 1".into()),
            webex_uri: Some("w@x".into()),
            ..BookingSpec::new("x", 0)
        }
        .resolve(NOW)
        .expect("resolves");
        let patch: BookingPatch = serde_json::from_str(
            r#"{"title":"y","location":null,"call_uri":"c@x","start_in_mins":5}"#,
        )
        .expect("patch");
        let n = patch.apply(&b, NOW).expect("applies");
        assert_eq!(n.title, "y");
        assert_eq!(n.location, None);
        assert_eq!(n.uris.webex_uri.as_deref(), Some("w@x"));
        assert_eq!(n.uris.call_uri.as_deref(), Some("c@x"));
        assert_eq!(n.start_ms, NOW + 300_000);
        assert_eq!(n.id, b.id);
        let bad: BookingPatch = serde_json::from_str(r#"{"duration_mins":0}"#).expect("patch");
        assert!(bad.apply(&b, NOW).is_err());
        assert!(serde_json::from_str::<BookingPatch>(r#"{"id":"z"}"#).is_err());
    }

    #[test]
    fn bulk_resolves_in_order() {
        let spec = BulkSpec {
            start_in_mins: -5,
            spacing_mins: 2,
            ..BulkSpec::new(3)
        };
        let v = spec.resolve(NOW).expect("bulk");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].start_ms, NOW - 300_000);
        assert_eq!(v[2].start_ms, NOW - 300_000 + 240_000);
        assert_eq!(v[1].title, "Bulk meeting 2");
        assert!(BulkSpec::new(0).resolve(NOW).is_err());
    }
}
