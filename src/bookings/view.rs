//! How bookings are shown: the RoomOS booking shape (xAPI `Bookings List`, wire profile §8)
//! and `bookings.txt` in seed 000's `*r BookingsListResult Booking 1 Id: "webex-1"` form.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::model::{Booking, BookingsModel, Text, UriKind};
use crate::clock::iso8601;

fn iso(ms: u64) -> String {
    iso8601(UNIX_EPOCH + Duration::from_millis(ms))
}

/// RoomOS names for the join types the calendar sends.
fn platform(join_type: &str) -> &str {
    match join_type {
        "WEBEX" => "Webex",
        "TEAMS" => "MicrosoftTeams",
        "ZOOM" => "Zoom",
        "GOOGLE" => "GoogleMeet",
        "SIP" => "Sip",
        _ => "Other",
    }
}

/// One booking as xAPI `Bookings List` returns it; `index` is its list position (1-based).
pub fn booking_json(booking: &Booking, index: usize, start_buffer_secs: u64) -> Value {
    let name = booking
        .organizer_name
        .as_ref()
        .map(Text::shown)
        .unwrap_or("");
    let (first, last) = match name.rsplit_once(' ') {
        Some((first, last))
            if booking
                .organizer_name
                .as_ref()
                .and_then(Text::plain)
                .is_some() =>
        {
            (first, last)
        }
        _ => (name, ""),
    };
    let calls: Vec<Value> = booking
        .join_uri()
        .map(|(kind, uri)| {
            let number = uri.shown();
            let protocol = if kind == UriKind::CallUri || number.starts_with("sip:") {
                "SIP"
            } else {
                "Spark"
            };
            json!({ "id": 1, "Number": number, "Protocol": protocol, "CallType": "Video" })
        })
        .into_iter()
        .collect();
    let mut entry = json!({
        "id": index,
        "Id": booking.xapi_id(),
        "MeetingId": booking.id,
        "Title": booking.title_shown(),
        "Organizer": {
            "FirstName": first,
            "LastName": last,
            "Email": booking.organizer_email.as_ref().map(Text::shown).unwrap_or(""),
        },
        "Time": {
            "StartTime": iso(booking.start_ms),
            "StartTimeBuffer": start_buffer_secs,
            "EndTime": iso(booking.end_ms()),
            "EndTimeBuffer": 0,
        },
        "MeetingPlatform": platform(&booking.join_type),
        "DialInfo": {
            "Calls": { "Call": calls },
            "ConnectMode": if booking.eligible() { "OBTP" } else { "Manual" },
        },
    });
    if let Some(location) = &booking.location {
        entry["Location"] = json!(location.shown());
    }
    entry
}

/// Every booking in start order, as the `BookingsListResult` tree.
pub fn bookings_list(model: &BookingsModel, start_buffer_secs: u64) -> Value {
    let bookings: Vec<Value> = model
        .ordered()
        .into_iter()
        .enumerate()
        .map(|(i, b)| booking_json(b, i + 1, start_buffer_secs))
        .collect();
    json!({
        "BookingsListResult": {
            "ResultInfo": { "TotalRows": bookings.len() },
            "Booking": bookings,
        }
    })
}

/// `bookings.txt` (and `roomd bookings`).
pub fn bookings_txt(model: &BookingsModel, start_buffer_secs: u64) -> String {
    crate::proto::xtext::render_lines(&bookings_list(model, start_buffer_secs), "*r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::calendar::MeetingDto;

    #[test]
    fn seed_000_lines() {
        let mut model = BookingsModel::default();
        model.upsert(
            &MeetingDto {
                id: "6103501f-3650-6ae0-bf76-b661a74ceba3".into(),
                start: Some("2022-04-26T13:15:00.000Z".into()),
                duration_minutes: Some(30),
                meeting_join_type: Some("WEBEX".into()),
                encrypted_subject: Some("CLUS 2022 Test Meeting".into()),
                encrypted_organizer_name: Some("Ann Example".into()),
                webex_uri: Some("123@example.webex.com".into()),
                ..Default::default()
            },
            &Default::default(),
        );
        model.upsert(
            &MeetingDto {
                id: "no-uri".into(),
                start: Some("2022-04-26T15:00:00.000Z".into()),
                ..Default::default()
            },
            &Default::default(),
        );
        let text = bookings_txt(&model, 300);
        for line in [
            "*r BookingsListResult ResultInfo TotalRows: 2\n",
            "*r BookingsListResult Booking 1 Id: \"webex-1\"\n",
            "*r BookingsListResult Booking 1 MeetingId: \"6103501f-3650-6ae0-bf76-b661a74ceba3\"\n",
            "*r BookingsListResult Booking 1 Title: \"CLUS 2022 Test Meeting\"\n",
            "*r BookingsListResult Booking 1 Organizer FirstName: \"Ann\"\n",
            "*r BookingsListResult Booking 1 Time StartTime: \"2022-04-26T13:15:00.000Z\"\n",
            "*r BookingsListResult Booking 1 Time StartTimeBuffer: 300\n",
            "*r BookingsListResult Booking 1 DialInfo Calls Call 1 Number: \"123@example.webex.com\"\n",
            "*r BookingsListResult Booking 1 DialInfo ConnectMode: \"OBTP\"\n",
            "*r BookingsListResult Booking 2 DialInfo ConnectMode: \"Manual\"\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("** end\n"));
    }
}
