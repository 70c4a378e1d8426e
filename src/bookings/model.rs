//! The bookings model: calendar events filed as numbered Meetings (seed 000's
//! `Creating new Meeting (id=N)` / `Attaching CalendarEvent` / `Removing Meeting`), with
//! encrypted fields kept until their key arrives, and minimal events waiting for their DTO.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::proto::calendar::MeetingDto;
use crate::proto::jwe::Jwe;

/// What a title shows while its key cannot be had.
pub const ENCRYPTED_PLACEHOLDER: &str = "(encrypted)";

/// A text field: plaintext, or a JWE still waiting for its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Text {
    Plain(String),
    Encrypted(String),
}

impl Text {
    /// JWE when it parses as one (wire profile §4), plaintext otherwise.
    pub fn classify(value: &str) -> Self {
        match Jwe::parse(value) {
            Ok(_) => Text::Encrypted(value.to_string()),
            Err(_) => Text::Plain(value.to_string()),
        }
    }

    pub fn shown(&self) -> &str {
        match self {
            Text::Plain(s) => s,
            Text::Encrypted(_) => ENCRYPTED_PLACEHOLDER,
        }
    }

    pub fn plain(&self) -> Option<&str> {
        match self {
            Text::Plain(s) => Some(s),
            Text::Encrypted(_) => None,
        }
    }
}

/// The join URIs and URLs a booking may carry, in the profile's preference order for
/// joining (webexURI > meetingJoinURI > spaceURI > callURI > meetingJoinURL), then the
/// URLs that do not make a booking joinable on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UriKind {
    WebexUri,
    MeetingJoinUri,
    SpaceUri,
    CallUri,
    MeetingJoinUrl,
    WebexUrl,
    SpaceUrl,
}

impl UriKind {
    /// The five that make a booking OBTP-eligible (seed 000's note).
    pub const JOINABLE: [UriKind; 5] = [
        UriKind::WebexUri,
        UriKind::MeetingJoinUri,
        UriKind::SpaceUri,
        UriKind::CallUri,
        UriKind::MeetingJoinUrl,
    ];

    pub fn wire_name(self) -> &'static str {
        match self {
            UriKind::WebexUri => "webexURI",
            UriKind::MeetingJoinUri => "meetingJoinURI",
            UriKind::SpaceUri => "spaceURI",
            UriKind::CallUri => "callURI",
            UriKind::MeetingJoinUrl => "meetingJoinURL",
            UriKind::WebexUrl => "webexURL",
            UriKind::SpaceUrl => "spaceURL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    /// The Meeting number (`Creating new Meeting (id=N)`); the booking's xAPI Id is `webex-N`.
    pub meeting: u64,
    /// The calendar event id (xAPI `MeetingId`).
    pub id: String,
    pub series_id: Option<String>,
    pub start_ms: u64,
    pub duration_minutes: u32,
    pub organizer_id: Option<String>,
    pub organizer_name: Option<Text>,
    pub organizer_email: Option<Text>,
    pub title: Option<Text>,
    pub location: Option<Text>,
    pub key_url: Option<String>,
    pub join_type: String,
    pub uris: BTreeMap<UriKind, Text>,
    pub recurring: bool,
}

impl Booking {
    pub fn xapi_id(&self) -> String {
        format!("webex-{}", self.meeting)
    }

    pub fn end_ms(&self) -> u64 {
        self.start_ms + u64::from(self.duration_minutes) * 60_000
    }

    /// OBTP needs at least one join URI (seed 000).
    pub fn eligible(&self) -> bool {
        UriKind::JOINABLE.iter().any(|k| self.uris.contains_key(k))
    }

    /// The URI a Join dials, by the profile's preference.
    pub fn join_uri(&self) -> Option<(UriKind, &Text)> {
        UriKind::JOINABLE
            .iter()
            .find_map(|k| self.uris.get(k).map(|t| (*k, t)))
    }

    pub fn title_shown(&self) -> &str {
        self.title.as_ref().map(Text::shown).unwrap_or("")
    }

    /// Every text field present: title, location, organizer name and email, then the URIs.
    fn texts(&self) -> impl Iterator<Item = &Text> {
        [
            &self.title,
            &self.location,
            &self.organizer_name,
            &self.organizer_email,
        ]
        .into_iter()
        .flatten()
        .chain(self.uris.values())
    }

    fn texts_mut(&mut self) -> impl Iterator<Item = &mut Text> {
        [
            &mut self.title,
            &mut self.location,
            &mut self.organizer_name,
            &mut self.organizer_email,
        ]
        .into_iter()
        .flatten()
        .chain(self.uris.values_mut())
    }

    /// True while any field is still encrypted.
    pub fn needs_key(&self) -> bool {
        self.texts().any(|t| matches!(t, Text::Encrypted(_)))
    }

    /// The key URLs its encrypted fields name.
    pub fn wanted_keys(&self) -> BTreeSet<String> {
        self.texts()
            .filter_map(|t| match t {
                Text::Encrypted(jwe) => Jwe::parse(jwe).ok().map(|j| j.kid),
                Text::Plain(_) => None,
            })
            .collect()
    }

    fn log_fields(&self) -> String {
        let has = |k: UriKind| self.uris.contains_key(&k);
        format!(
            "organizer='{}' start='{}' id='{}' meetingJoinType='{}' meetingJoinURI={} meetingJoinURL={} webexURI={} spaceURI={} callURI={}",
            self.organizer_id.as_deref().unwrap_or(""),
            crate::clock::iso8601(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.start_ms)
            ),
            self.id,
            self.join_type,
            has(UriKind::MeetingJoinUri),
            has(UriKind::MeetingJoinUrl),
            has(UriKind::WebexUri),
            has(UriKind::SpaceUri),
            has(UriKind::CallUri),
        )
    }
}

/// A change the model made, for logs and feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Inserted(String),
    Updated(String),
    Unchanged,
    Removed(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookingsModel {
    /// By calendar event id.
    pub bookings: BTreeMap<String, Booking>,
    /// The next Meeting number (kept across restarts so numbers stay put).
    pub next_meeting: u64,
    /// Minimal events whose DTO could not be fetched yet: id → failed attempts.
    pub pending: BTreeMap<String, u32>,
}

impl BookingsModel {
    /// Files a full DTO (create, update, fetched minimal, catch-up item). Fields whose key is
    /// in `keys` are decrypted at once, so an unchanged booking compares equal.
    pub fn upsert(&mut self, dto: &MeetingDto, keys: &HashMap<String, [u8; 32]>) -> Change {
        let Some(start_ms) = dto
            .start
            .as_deref()
            .and_then(crate::clock::parse_iso8601_ms)
        else {
            tracing::error!("calendar event {} has no readable start; ignored", dto.id);
            return Change::Unchanged;
        };
        self.pending.remove(&dto.id);
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| decrypt_known(Text::classify(v), keys, &dto.id))
        };
        let mut uris = BTreeMap::new();
        let join_info = dto.meeting_join_info.clone().unwrap_or_default();
        for (kind, value) in [
            (UriKind::WebexUri, &dto.webex_uri),
            (UriKind::MeetingJoinUri, &join_info.meeting_join_uri),
            (UriKind::SpaceUri, &dto.space_uri),
            (UriKind::CallUri, &dto.call_uri),
            (UriKind::MeetingJoinUrl, &join_info.meeting_join_url),
            (UriKind::WebexUrl, &dto.webex_url),
            (UriKind::SpaceUrl, &dto.space_url),
        ] {
            if let Some(t) = text(value) {
                uris.insert(kind, t);
            }
        }
        let existing = self.bookings.get(&dto.id);
        let meeting = match existing {
            Some(b) => b.meeting,
            None => {
                self.next_meeting = self.next_meeting.max(1);
                let n = self.next_meeting;
                self.next_meeting += 1;
                n
            }
        };
        let booking = Booking {
            meeting,
            id: dto.id.clone(),
            series_id: dto.series_id.clone(),
            start_ms,
            duration_minutes: dto.duration_minutes.unwrap_or(0),
            organizer_id: dto.organizer.clone(),
            organizer_name: text(&dto.encrypted_organizer_name),
            organizer_email: text(&dto.encrypted_organizer_email),
            title: text(&dto.encrypted_subject),
            location: text(&dto.encrypted_location),
            key_url: dto.encryption_key_url.clone(),
            join_type: dto
                .meeting_join_type
                .clone()
                .unwrap_or_else(|| "UNKNOWN".into()),
            uris,
            recurring: dto.is_recurring.unwrap_or(false),
        };
        // A re-delivered DTO whose fields we already decrypted must not lose them.
        if let Some(old) = existing {
            if same_source(old, &booking) {
                return Change::Unchanged;
            }
        }
        let inserted = existing.is_none();
        if inserted {
            tracing::info!("Inserting new meeting - {}", booking.log_fields());
        } else {
            tracing::info!("Updating meeting - {}", booking.log_fields());
        }
        match dto.encrypted_subject.as_deref().map(Text::classify) {
            Some(Text::Plain(_)) => tracing::info!(
                "Found plaintext title for calendar event with id='{}'",
                booking.id
            ),
            Some(Text::Encrypted(_)) => tracing::info!(
                "Decrypting title for calendar event with id='{}'",
                booking.id
            ),
            None => {}
        }
        if inserted {
            tracing::info!("Creating new Meeting (id={meeting})");
            tracing::info!(
                "Attaching CalendarEvent (id={}) to Meeting (id={meeting})",
                booking.id
            );
        }
        let id = booking.id.clone();
        self.bookings.insert(id.clone(), booking);
        if inserted {
            Change::Inserted(id)
        } else {
            Change::Updated(id)
        }
    }

    pub fn remove(&mut self, id: &str) -> Change {
        self.pending.remove(id);
        match self.bookings.remove(id) {
            Some(booking) => {
                tracing::info!(
                    "Detaching CalendarEvent (id={id}) from Meeting (id={})",
                    booking.meeting
                );
                tracing::info!("Removing Meeting (id={})", booking.meeting);
                Change::Removed(id.to_string())
            }
            None => Change::Unchanged,
        }
    }

    /// A minimal event arrived: the DTO must be fetched; until then the id waits here.
    pub fn mark_pending(&mut self, id: &str) {
        self.pending.entry(id.to_string()).or_insert(0);
    }

    /// After a complete catch-up over [from, to): bookings in that window it did not list
    /// are gone. Bookings outside the window (known from events) are kept.
    pub fn reconcile(
        &mut self,
        listed: &BTreeSet<String>,
        from_ms: u64,
        to_ms: u64,
    ) -> Vec<String> {
        let gone: Vec<String> = self
            .bookings
            .values()
            .filter(|b| !listed.contains(&b.id) && b.start_ms < to_ms && b.end_ms() > from_ms)
            .map(|b| b.id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    /// Seed 003's rule: meetings that ended more than 24 h ago are removed.
    pub fn purge_ended(&mut self, now_ms: u64) -> Vec<String> {
        let cutoff = now_ms.saturating_sub(24 * 3600 * 1000);
        let old: Vec<String> = self
            .bookings
            .values()
            .filter(|b| b.end_ms() < cutoff)
            .map(|b| b.id.clone())
            .collect();
        for id in &old {
            tracing::info!("housekeeping: meeting {id} ended over 24 h ago");
            self.remove(id);
        }
        old
    }

    /// Key URLs some booking still needs.
    pub fn wanted_keys(&self) -> BTreeSet<String> {
        self.bookings
            .values()
            .flat_map(Booking::wanted_keys)
            .collect()
    }

    /// Decrypts every field whose key is in `keys`; returns how many bookings changed.
    pub fn decrypt_with(&mut self, keys: &HashMap<String, [u8; 32]>) -> usize {
        let mut changed = 0;
        for booking in self.bookings.values_mut() {
            if !booking.needs_key() {
                continue;
            }
            let id = booking.id.clone();
            let title_encrypted = matches!(booking.title, Some(Text::Encrypted(_)));
            let mut any = false;
            for text in booking.texts_mut() {
                if matches!(text, Text::Plain(_)) {
                    continue;
                }
                *text = decrypt_known(text.clone(), keys, &id);
                any |= matches!(text, Text::Plain(_));
            }
            if title_encrypted {
                tracing::info!("Decrypting title for calendar event with id='{id}'");
            }
            if any {
                changed += 1;
            }
        }
        changed
    }

    /// In start order (then id): the order of `Booking N` lines.
    pub fn ordered(&self) -> Vec<&Booking> {
        let mut list: Vec<&Booking> = self.bookings.values().collect();
        list.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then_with(|| a.id.cmp(&b.id)));
        list
    }
}

/// The same booking as already filed (an encrypted field whose key is unknown compares
/// unequal to its decrypted self: it is filed again and decrypted once the key comes).
fn same_source(old: &Booking, new: &Booking) -> bool {
    old == new
}

/// Decrypts `text` now when its key is known; a JWE that does not open stays encrypted.
fn decrypt_known(text: Text, keys: &HashMap<String, [u8; 32]>, id: &str) -> Text {
    let Text::Encrypted(jwe) = &text else {
        return text;
    };
    let Ok(parsed) = Jwe::parse(jwe) else {
        return text;
    };
    let Some(key) = keys.get(&parsed.kid) else {
        return text;
    };
    match parsed.decrypt(key) {
        Ok(plain) => Text::Plain(plain),
        Err(e) => {
            tracing::error!("calendar event {id}: {e}");
            text
        }
    }
}

/// The key URLs a DTO's encrypted fields name (to fetch before filing it).
pub fn dto_key_urls(dto: &MeetingDto) -> BTreeSet<String> {
    let join = dto.meeting_join_info.clone().unwrap_or_default();
    [
        &dto.encrypted_subject,
        &dto.encrypted_location,
        &dto.encrypted_organizer_name,
        &dto.encrypted_organizer_email,
        &dto.webex_uri,
        &dto.webex_url,
        &dto.space_uri,
        &dto.space_url,
        &dto.call_uri,
        &join.meeting_join_uri,
        &join.meeting_join_url,
    ]
    .into_iter()
    .flatten()
    .filter_map(|v| Jwe::parse(v).ok().map(|j| j.kid))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::calendar::JoinInfo;
    use crate::proto::jwe;

    const KEY: [u8; 32] = [3; 32];

    pub(crate) fn dto(id: &str, start: &str) -> MeetingDto {
        MeetingDto {
            id: id.into(),
            start: Some(start.into()),
            duration_minutes: Some(30),
            organizer: Some("org-1".into()),
            meeting_join_type: Some("WEBEX".into()),
            encrypted_subject: Some("CLUS 2022 Test Meeting".into()),
            webex_uri: Some("123@webex.com".into()),
            ..Default::default()
        }
    }

    #[test]
    fn meetings_are_numbered_and_kept_across_updates() {
        let mut model = BookingsModel::default();
        assert_eq!(
            model.upsert(&dto("a", "2022-04-26T13:15:00.000Z"), &HashMap::new()),
            Change::Inserted("a".into())
        );
        assert_eq!(
            model.upsert(&dto("b", "2022-04-26T12:00:00.000Z"), &HashMap::new()),
            Change::Inserted("b".into())
        );
        assert_eq!(
            model.upsert(&dto("a", "2022-04-26T13:15:00.000Z"), &HashMap::new()),
            Change::Unchanged
        );
        let mut moved = dto("a", "2022-04-26T14:00:00.000Z");
        moved.call_uri = Some("sip:x@y".into());
        assert_eq!(
            model.upsert(&moved, &HashMap::new()),
            Change::Updated("a".into())
        );
        assert_eq!(model.bookings["a"].meeting, 1);
        assert_eq!(model.bookings["b"].xapi_id(), "webex-2");
        let order: Vec<&str> = model.ordered().iter().map(|b| b.id.as_str()).collect();
        assert_eq!(order, ["b", "a"]);
        assert_eq!(model.remove("a"), Change::Removed("a".into()));
        assert_eq!(
            model
                .upsert(&dto("c", "2022-04-26T13:15:00.000Z"), &HashMap::new())
                .clone(),
            Change::Inserted("c".into())
        );
        assert_eq!(model.bookings["c"].meeting, 3, "numbers are never reused");
    }

    #[test]
    fn eligibility_and_join_preference() {
        let mut model = BookingsModel::default();
        let mut none = dto("n", "2022-04-26T13:15:00.000Z");
        none.webex_uri = None;
        none.webex_url = Some("https://example.webex.com/meet/x".into());
        model.upsert(&none, &HashMap::new());
        assert!(
            !model.bookings["n"].eligible(),
            "a webexURL alone is not joinable"
        );
        let mut all = dto("all", "2022-04-26T13:15:00.000Z");
        all.call_uri = Some("sip:call@x".into());
        all.space_uri = Some("space@x".into());
        all.meeting_join_info = Some(JoinInfo {
            meeting_join_uri: Some("join@x".into()),
            meeting_join_url: Some("https://join".into()),
        });
        model.upsert(&all, &HashMap::new());
        let (kind, uri) = model.bookings["all"].join_uri().unwrap();
        assert_eq!((kind, uri.shown()), (UriKind::WebexUri, "123@webex.com"));
        let mut no_webex = all.clone();
        no_webex.id = "nw".into();
        no_webex.webex_uri = None;
        model.upsert(&no_webex, &HashMap::new());
        assert_eq!(
            model.bookings["nw"].join_uri().unwrap().0,
            UriKind::MeetingJoinUri
        );
    }

    #[test]
    fn encrypted_fields_wait_for_their_key() {
        let mut model = BookingsModel::default();
        let mut secret = dto("s", "2022-04-26T13:15:00.000Z");
        secret.encrypted_subject = Some(jwe::encrypt("Board meeting", &KEY, "kms://k/1", [1; 12]));
        secret.webex_uri = Some(jwe::encrypt("777@webex.com", &KEY, "kms://k/1", [2; 12]));
        model.upsert(&secret, &HashMap::new());
        assert_eq!(model.bookings["s"].title_shown(), ENCRYPTED_PLACEHOLDER);
        assert!(
            model.bookings["s"].eligible(),
            "an encrypted URI still counts as present"
        );
        assert_eq!(
            model.wanted_keys(),
            BTreeSet::from(["kms://k/1".to_string()])
        );
        assert_eq!(model.decrypt_with(&HashMap::new()), 0);
        let keys = HashMap::from([("kms://k/1".to_string(), KEY)]);
        assert_eq!(model.decrypt_with(&keys), 1);
        assert_eq!(model.bookings["s"].title_shown(), "Board meeting");
        assert!(!model.bookings["s"].needs_key());
        // The same DTO again, its key known: decrypted on arrival, so nothing changed.
        assert_eq!(model.upsert(&secret, &keys), Change::Unchanged);
        assert_eq!(model.bookings["s"].title_shown(), "Board meeting");
        // Re-encrypted content (a fresh IV, or a new title) with the key: compared in clear.
        let mut renamed = secret.clone();
        renamed.encrypted_subject = Some(jwe::encrypt(
            "Board meeting (moved)",
            &KEY,
            "kms://k/1",
            [9; 12],
        ));
        assert_eq!(model.upsert(&renamed, &keys), Change::Updated("s".into()));
        assert_eq!(model.bookings["s"].title_shown(), "Board meeting (moved)");
    }

    #[test]
    fn reconcile_only_inside_the_window_and_purge_after_a_day() {
        let mut model = BookingsModel::default();
        model.upsert(&dto("in", "2022-04-26T13:00:00.000Z"), &HashMap::new());
        model.upsert(&dto("far", "2022-06-01T13:00:00.000Z"), &HashMap::new());
        let from = crate::clock::parse_iso8601_ms("2022-04-26T00:00:00.000Z").unwrap();
        let to = crate::clock::parse_iso8601_ms("2022-05-03T00:00:00.000Z").unwrap();
        assert_eq!(
            model.reconcile(&BTreeSet::new(), from, to),
            vec!["in".to_string()]
        );
        assert!(model.bookings.contains_key("far"));
        let next_day = crate::clock::parse_iso8601_ms("2022-06-02T13:00:00.000Z").unwrap();
        assert!(
            model.purge_ended(next_day).is_empty(),
            "ended 23.5 h ago: kept"
        );
        let two_days = crate::clock::parse_iso8601_ms("2022-06-03T00:00:00.000Z").unwrap();
        assert_eq!(model.purge_ended(two_days), vec!["far".to_string()]);
    }
}
