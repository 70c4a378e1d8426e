//! The calendar DTO (`calendarMeetingExternal`) and the mercury event payloads, exactly as
//! `docs/wire-profile-choices.md` §4 names them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::jwe::{self, KEY_LEN};
use super::model::Booking;
use super::time::format_ms;

/// The U2C `calendar` service link; the DTOs' `links[].href` start with it.
pub const CALENDAR_SERVICE_LINK: &str = "https://calendar.sim.invalid/calendar/api/v1";

/// `kms://kms.sim.invalid/keys/<name>`: a key's `encryptionKeyUrl` (and JWE `kid`).
pub fn key_url(name: &str) -> String {
    format!("kms://kms.sim.invalid/keys/{name}")
}

/// base64url (no padding) of the id's UTF-8: the `{id}` of `GET {calendar}/calendarEvents/{id}`.
pub fn resource_id(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The id of a resource id, padding optional; `None` when it is not base64url of UTF-8.
pub(crate) fn decode_resource_id(rid: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(rid.trim_end_matches('=')).ok()?;
    String::from_utf8(bytes).ok()
}

/// The full DTO. With `encrypted` (and its key known) every `encrypted*` and URI/URL field is a
/// fresh compact JWE; otherwise those fields carry plaintext. Absent optional fields are omitted.
pub(crate) fn render(b: &Booking, key: Option<&[u8; KEY_LEN]>) -> Value {
    let kid = key_url(&b.key);
    let seal = |plain: &str| -> Value {
        match key.filter(|_| b.encrypted) {
            Some(k) => Value::String(jwe::encrypt(k, &kid, plain)),
            None => Value::String(plain.to_owned()),
        }
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(b.id));
    if let Some(s) = &b.series_id {
        m.insert("seriesId".into(), json!(s));
    }
    m.insert("start".into(), json!(format_ms(b.start_ms)));
    m.insert("durationMinutes".into(), json!(b.duration_mins));
    m.insert("organizer".into(), json!(b.organizer_id));
    m.insert("encryptedOrganizerName".into(), seal(&b.organizer_name));
    m.insert("encryptedOrganizerEmail".into(), seal(&b.organizer_email));
    m.insert("encryptionKeyUrl".into(), json!(kid));
    m.insert("encryptedSubject".into(), seal(&b.title));
    if let Some(l) = &b.location {
        m.insert("encryptedLocation".into(), seal(l));
    }
    m.insert("meetingJoinType".into(), json!(b.join_type));
    let u = &b.uris;
    let mut info = Map::new();
    for (name, v) in [
        ("meetingJoinURI", &u.meeting_join_uri),
        ("meetingJoinURL", &u.meeting_join_url),
    ] {
        if let Some(v) = v {
            info.insert(name.into(), seal(v));
        }
    }
    if !info.is_empty() {
        m.insert("meetingJoinInfo".into(), Value::Object(info));
    }
    for (name, v) in [
        ("webexURI", &u.webex_uri),
        ("webexURL", &u.webex_url),
        ("spaceURI", &u.space_uri),
        ("spaceURL", &u.space_url),
        ("callURI", &u.call_uri),
    ] {
        if let Some(v) = v {
            m.insert(name.into(), seal(v));
        }
    }
    m.insert("isRecurring".into(), json!(b.recurring));
    m.insert(
        "links".into(),
        json!([{
            "href": format!("{CALENDAR_SERVICE_LINK}/calendarEvents/{}", resource_id(&b.id)),
            "rel": "self",
        }]),
    );
    Value::Object(m)
}

/// `calendar.meeting.<kind>` with the full DTO (`kind`: `create` or `update`).
pub(crate) fn full_event(kind: &str, b: &Booking, key: Option<&[u8; KEY_LEN]>) -> Value {
    json!({
        "eventType": format!("calendar.meeting.{kind}"),
        "calendarMeetingExternal": render(b, key),
    })
}

/// `calendar.meeting.<kind>.minimal` with `{"id","start"}`.
pub(crate) fn minimal_event(kind: &str, b: &Booking) -> Value {
    json!({
        "eventType": format!("calendar.meeting.{kind}.minimal"),
        "calendarMeetingExternal": { "id": b.id, "start": format_ms(b.start_ms) },
    })
}

/// `calendar.meeting.delete` with `{"id"}`.
pub(crate) fn delete_event(id: &str) -> Value {
    json!({
        "eventType": "calendar.meeting.delete",
        "calendarMeetingExternal": { "id": id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::model::BookingSpec;

    fn booking(encrypted: bool) -> Booking {
        BookingSpec {
            id: Some("6103501f-3650-6ae0-bf76-b661a74ceba3".into()),
            organizer_id: Some("d3701784-bbe3-41ff-afc6-b14086d26d4f".into()),
            start: Some("2022-04-26T13:15:00.000Z".into()),
            start_in_mins: None,
            location: Some("Room 1".into()),
            webex_uri: Some("123@webex.sim.invalid".into()),
            meeting_join_url: Some("https://join.sim.invalid/1".into()),
            encrypted,
            ..BookingSpec::new("CLUS 2022 Test Meeting", 0)
        }
        .resolve(0)
        .expect("booking")
    }

    #[test]
    fn plaintext_dto_shape() {
        let dto = render(&booking(false), Some(&[1; KEY_LEN]));
        assert_eq!(
            dto,
            json!({
                "id": "6103501f-3650-6ae0-bf76-b661a74ceba3",
                "start": "2022-04-26T13:15:00.000Z",
                "durationMinutes": 30,
                "organizer": "d3701784-bbe3-41ff-afc6-b14086d26d4f",
                "encryptedOrganizerName": "Sim Organizer",
                "encryptedOrganizerEmail": "organizer@sim.invalid",
                "encryptionKeyUrl": "kms://kms.sim.invalid/keys/default",
                "encryptedSubject": "CLUS 2022 Test Meeting",
                "encryptedLocation": "Room 1",
                "meetingJoinType": "WEBEX",
                "meetingJoinInfo": {"meetingJoinURL": "https://join.sim.invalid/1"},
                "webexURI": "123@webex.sim.invalid",
                "isRecurring": false,
                "links": [{
                    "href": "https://calendar.sim.invalid/calendar/api/v1/calendarEvents/NjEwMzUwMWYtMzY1MC02YWUwLWJmNzYtYjY2MWE3NGNlYmEz",
                    "rel": "self"
                }]
            })
        );
    }

    #[test]
    fn encrypted_fields_decrypt() {
        let key = [9; KEY_LEN];
        let dto = render(&booking(true), Some(&key));
        for (path, want) in [
            ("/encryptedSubject", "CLUS 2022 Test Meeting"),
            ("/encryptedLocation", "Room 1"),
            ("/encryptedOrganizerName", "Sim Organizer"),
            ("/encryptedOrganizerEmail", "organizer@sim.invalid"),
            ("/webexURI", "123@webex.sim.invalid"),
            (
                "/meetingJoinInfo/meetingJoinURL",
                "https://join.sim.invalid/1",
            ),
        ] {
            let jwe = dto.pointer(path).and_then(Value::as_str).expect(path);
            assert_eq!(jwe::decrypt(&key, jwe).as_deref(), Some(want), "{path}");
        }
        assert_eq!(dto["organizer"], "d3701784-bbe3-41ff-afc6-b14086d26d4f");
    }

    #[test]
    fn resource_ids() {
        assert_eq!(
            resource_id("e02c6c66-70ba-65b5-8b1f-c68afad768b9"),
            "ZTAyYzZjNjYtNzBiYS02NWI1LThiMWYtYzY4YWZhZDc2OGI5"
        );
        assert_eq!(resource_id("abcd"), "YWJjZA");
        assert_eq!(decode_resource_id("YWJjZA").as_deref(), Some("abcd"));
        assert_eq!(decode_resource_id("YWJjZA==").as_deref(), Some("abcd"));
        assert_eq!(decode_resource_id("!!"), None);
    }

    #[test]
    fn events() {
        let b = booking(true);
        assert_eq!(
            minimal_event("update", &b),
            json!({"eventType": "calendar.meeting.update.minimal",
                   "calendarMeetingExternal": {"id": b.id, "start": "2022-04-26T13:15:00.000Z"}})
        );
        assert_eq!(
            delete_event("x"),
            json!({"eventType": "calendar.meeting.delete", "calendarMeetingExternal": {"id": "x"}})
        );
        let full = full_event("create", &b, Some(&[1; KEY_LEN]));
        assert_eq!(full["eventType"], "calendar.meeting.create");
        assert_eq!(full["calendarMeetingExternal"]["id"], json!(b.id));
    }
}
