//! Locus documents and events: `parse_dto` and `parse_event` return a value or a named error,
//! never panic; a parsed DTO applied to a tracker twice (as the first DTO, then again as a
//! redelivery, a delta against itself or a desync) never panics either, nor does the deadline.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roomd::locus::LocusTracker;
use roomd::proto::locus;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = locus::parse_event(&value) {
            if let Some(dto) = event.locus {
                let mut tracker = LocusTracker::new().with_jitter(Duration::from_secs(1));
                tracker.apply(dto.clone(), now);
                tracker.apply(dto, now);
            }
        }
    }
    if let Ok(dto) = locus::parse_dto(data) {
        let _ = dto.display_name();
        let _ = dto.is_ended();
        let mut tracker = LocusTracker::new().with_jitter(Duration::from_secs(1));
        tracker.apply(dto.clone(), now);
        tracker.apply(dto.clone(), now);
        let _ = tracker.check_deadline(now + Duration::from_secs(20));
        tracker.apply_sync(dto);
        let current = tracker.current().expect("a DTO was applied");
        // What the tracker holds serializes and parses back.
        let bytes = serde_json::to_vec(current).expect("serializes");
        locus::parse_dto(&bytes).expect("parses back");
    }
});
