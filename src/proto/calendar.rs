//! Calendar DTOs (wire profile §4, seed 000 "Calendar"): the `calendarMeetingExternal`
//! object of mercury events, the single-event answer and the paged list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::{ParseError, parse_json};

/// A calendar meeting as the service sends it; encrypted fields stay as sent (JWE or plaintext).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeetingDto {
    pub id: String,
    pub series_id: Option<String>,
    pub start: Option<String>,
    pub duration_minutes: Option<u32>,
    pub organizer: Option<String>,
    pub encrypted_organizer_name: Option<String>,
    pub encrypted_organizer_email: Option<String>,
    pub encryption_key_url: Option<String>,
    pub encrypted_subject: Option<String>,
    pub encrypted_location: Option<String>,
    pub meeting_join_type: Option<String>,
    pub meeting_join_info: Option<JoinInfo>,
    #[serde(rename = "webexURI")]
    pub webex_uri: Option<String>,
    #[serde(rename = "webexURL")]
    pub webex_url: Option<String>,
    #[serde(rename = "spaceURI")]
    pub space_uri: Option<String>,
    #[serde(rename = "spaceURL")]
    pub space_url: Option<String>,
    #[serde(rename = "callURI")]
    pub call_uri: Option<String>,
    pub is_recurring: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct JoinInfo {
    #[serde(rename = "meetingJoinURI")]
    pub meeting_join_uri: Option<String>,
    #[serde(rename = "meetingJoinURL")]
    pub meeting_join_url: Option<String>,
}

/// What a `calendar.meeting.*` event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CalendarEvent {
    /// create / update with the full DTO.
    Upsert(Box<MeetingDto>),
    /// create.minimal / update.minimal: fetch the DTO by id.
    Minimal {
        id: String,
    },
    Delete {
        id: String,
    },
}

/// Reads a `calendar.meeting.*` event's `data`.
pub fn parse_event(
    event_type: &str,
    data: &serde_json::Value,
) -> Result<CalendarEvent, ParseError> {
    let invalid = |reason: String| ParseError::Invalid {
        what: "calendar event",
        reason,
    };
    let dto = data
        .get("calendarMeetingExternal")
        .ok_or_else(|| invalid(format!("{event_type} without calendarMeetingExternal")))?;
    let id = dto
        .get("id")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("{event_type} without an id")))?
        .to_string();
    match event_type {
        "calendar.meeting.create" | "calendar.meeting.update" => {
            let dto: MeetingDto = serde_json::from_value(dto.clone())
                .map_err(|e| invalid(format!("{event_type}: {e}")))?;
            validate(&dto)?;
            Ok(CalendarEvent::Upsert(Box::new(dto)))
        }
        "calendar.meeting.create.minimal" | "calendar.meeting.update.minimal" => {
            Ok(CalendarEvent::Minimal { id })
        }
        "calendar.meeting.delete" => Ok(CalendarEvent::Delete { id }),
        other => Err(invalid(format!("unknown calendar event type {other}"))),
    }
}

/// A DTO roomd can file: an id and a start time it understands.
fn validate(dto: &MeetingDto) -> Result<(), ParseError> {
    let invalid = |reason: String| ParseError::Invalid {
        what: "calendar meeting",
        reason,
    };
    if dto.id.is_empty() {
        return Err(invalid("empty id".into()));
    }
    let start = dto
        .start
        .as_deref()
        .ok_or_else(|| invalid(format!("{} has no start", dto.id)))?;
    crate::clock::parse_iso8601_ms(start)
        .ok_or_else(|| invalid(format!("{} has an unreadable start {start:?}", dto.id)))?;
    Ok(())
}

/// The single-event answer (`GET calendarEvents/{id}`).
pub fn parse_meeting(body: &[u8]) -> Result<MeetingDto, ParseError> {
    let dto: MeetingDto = parse_json("calendar meeting", body)?;
    validate(&dto)?;
    Ok(dto)
}

/// One page of `GET calendarEvents?...`: the DTOs that parsed, and complaints about those that
/// did not (one bad item must not hide the others).
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<MeetingDto>,
    pub rejected: Vec<String>,
}

pub fn parse_page(body: &[u8]) -> Result<Page, ParseError> {
    #[derive(Deserialize)]
    struct Raw {
        items: Vec<serde_json::Value>,
    }
    let raw: Raw = parse_json("calendar event list", body)?;
    let mut page = Page::default();
    for item in raw.items {
        match serde_json::from_value::<MeetingDto>(item)
            .map_err(|e| ParseError::Invalid {
                what: "calendar meeting",
                reason: e.to_string(),
            })
            .and_then(|dto| validate(&dto).map(|()| dto))
        {
            Ok(dto) => page.items.push(dto),
            Err(e) => page.rejected.push(e.to_string()),
        }
    }
    Ok(page)
}

/// The path segment for one event: base64url of the id, without padding (seed 000's GET).
pub fn event_path_id(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// `<url>; rel="next"` from a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_of_each_kind() {
        let full = json!({"eventType":"calendar.meeting.create","calendarMeetingExternal":{
            "id":"6103501f","start":"2022-04-26T13:15:00.000Z","durationMinutes":30,
            "meetingJoinType":"WEBEX","webexURI":"x@webex.com","meetingJoinInfo":{"meetingJoinURI":"y"}}});
        let CalendarEvent::Upsert(dto) = parse_event("calendar.meeting.create", &full).unwrap()
        else {
            panic!()
        };
        assert_eq!(dto.webex_uri.as_deref(), Some("x@webex.com"));
        assert_eq!(
            dto.meeting_join_info.unwrap().meeting_join_uri.as_deref(),
            Some("y")
        );
        let minimal = json!({"calendarMeetingExternal":{"id":"calendarId1"}});
        assert_eq!(
            parse_event("calendar.meeting.create.minimal", &minimal).unwrap(),
            CalendarEvent::Minimal {
                id: "calendarId1".into()
            }
        );
        assert_eq!(
            parse_event("calendar.meeting.delete", &minimal).unwrap(),
            CalendarEvent::Delete {
                id: "calendarId1".into()
            }
        );
        let err = parse_event(
            "calendar.meeting.update",
            &json!({"calendarMeetingExternal":{"id":"a","start":"yesterday"}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unreadable start"), "{err}");
        assert!(parse_event("calendar.meeting.delete", &json!({})).is_err());
    }

    #[test]
    fn ids_and_links() {
        // Seed 000's GET for e02c6c66-70ba-65b5-8b1f-c68afad768b9.
        assert_eq!(
            event_path_id("e02c6c66-70ba-65b5-8b1f-c68afad768b9"),
            "ZTAyYzZjNjYtNzBiYS02NWI1LThiMWYtYzY4YWZhZDc2OGI5"
        );
        assert_eq!(
            next_link(r#"<https://c/calendarEvents?offset=50&max=50>; rel="next""#).as_deref(),
            Some("https://c/calendarEvents?offset=50&max=50")
        );
        assert_eq!(next_link(r#"<https://c/x>; rel="prev""#), None);
    }

    #[test]
    fn a_bad_item_does_not_hide_the_page() {
        let page = parse_page(
            br#"{"items":[{"id":"a","start":"2022-04-26T13:15:00.000Z"},{"id":"b"},{"nope":1}]}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.rejected.len(), 2);
    }

    #[test]
    fn sdk_calendar_shape_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/conformance/webex-sdk/calendar-meeting-shape.json");
        let Ok(text) = std::fs::read(&path) else {
            eprintln!(
                "skipped: {} not found (../shared is absent)",
                path.display()
            );
            return;
        };
        let dto = parse_meeting(&text).expect("the SDK's calendar meeting shape parses");
        assert_eq!(dto.id, "00000000-0000-4000-8000-0000000000a1");
        assert_eq!(dto.duration_minutes, Some(60));
        assert!(dto.encryption_key_url.unwrap().starts_with("kms://"));
        assert!(dto.meeting_join_info.unwrap().meeting_join_uri.is_some());
        assert!(dto.space_uri.is_some() && dto.webex_uri.is_some());
    }
}
