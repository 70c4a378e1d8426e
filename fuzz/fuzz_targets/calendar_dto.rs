//! Everything the calendar sends: event `data`, the single-event answer, list pages, `Link`
//! headers and compact JWEs (parsed, then decrypted with a fixed key). Filing a DTO into the
//! bookings model and rendering `bookings.txt` must never panic either.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use roomd::bookings::model::BookingsModel;
use roomd::bookings::view::bookings_txt;
use roomd::proto::calendar::{self, CalendarEvent};
use roomd::proto::jwe::Jwe;

fuzz_target!(|data: &[u8]| {
    let mut model = BookingsModel::default();
    let keys = HashMap::from([("kms://kms.sim.invalid/keys/default".to_string(), [7u8; 32])]);
    if let Ok(dto) = calendar::parse_meeting(data) {
        model.upsert(&dto, &keys);
    }
    if let Ok(page) = calendar::parse_page(data) {
        for dto in &page.items {
            model.upsert(dto, &keys);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        for kind in ["calendar.meeting.create", "calendar.meeting.update.minimal", "calendar.meeting.delete"] {
            if let Ok(CalendarEvent::Upsert(dto)) = calendar::parse_event(kind, &value) {
                model.upsert(&dto, &keys);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = calendar::next_link(text);
        if let Ok(jwe) = Jwe::parse(text) {
            let _ = jwe.decrypt(&[7u8; 32]);
        }
    }
    model.decrypt_with(&keys);
    let _ = model.wanted_keys();
    let _ = bookings_txt(&model, 300);
});
