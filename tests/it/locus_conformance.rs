//! Locus conformance against the Webex JS SDK's own vectors (read from `../shared/conformance/
//! webex-sdk`, never copied here; skipped when absent): every sequence comparison of
//! `locus-BasicSeqCmp.json` and `locus-SeqCmp.json`, every update action of the latter, and the
//! SDK's real DTO samples.

use std::path::PathBuf;

use roomd::locus::{Comparison, Sequence, UpdateAction, compare, update_action};
use roomd::proto::locus::{self, LocusState, LocusType, Participant, ParticipantState};
use serde_json::{Map, Value};

fn conformance_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/webex-sdk");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: ../shared/conformance not present");
        None
    }
}

fn load(dir: &std::path::Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn object<'a>(v: &'a Value, key: &str, file: &str) -> &'a Map<String, Value> {
    v.get(key)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{file}: no {key} object"))
}

fn sequence(sequences: &Map<String, Value>, name: &str, file: &str) -> Sequence {
    let v = sequences
        .get(name)
        .unwrap_or_else(|| panic!("{file}: no sequence {name}"));
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{file}: sequence {name}: {e}"))
}

fn comparison(name: &str) -> Comparison {
    match name {
        "GREATER_THAN" => Comparison::GreaterThan,
        "LESS_THAN" => Comparison::LessThan,
        "EQUAL" => Comparison::Equal,
        "DESYNC" => Comparison::Desync,
        other => panic!("unknown comparison result {other}"),
    }
}

fn mirrored(c: Comparison) -> Comparison {
    match c {
        Comparison::GreaterThan => Comparison::LessThan,
        Comparison::LessThan => Comparison::GreaterThan,
        other => other,
    }
}

fn field<'a>(vector: &'a Value, key: &str) -> Option<&'a str> {
    vector.get(key).and_then(Value::as_str)
}

#[test]
fn sequence_vectors() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    let mut antisymmetry = Vec::new();

    for file in ["locus-BasicSeqCmp.json", "locus-SeqCmp.json"] {
        let doc = load(&dir, file);
        let sequences = object(&doc, "sequences", file);
        let mut n = 0;
        for (name, vector) in object(&doc, "comparisons", file) {
            n += 1;
            let description = field(vector, "description").unwrap_or("");
            let current = sequence(sequences, field(vector, "current").unwrap_or(""), file);
            let new = sequence(sequences, field(vector, "new").unwrap_or(""), file);
            let expected = comparison(field(vector, "result").unwrap_or(""));
            let got = compare(&current, &new);
            if got != expected {
                failures.push(format!(
                    "{file} comparisons/{name}: expected {}, got {} ({description})",
                    expected.as_str(),
                    got.as_str()
                ));
            }
            // Antisymmetry, as the tracker's proptests assume it.
            let reversed = compare(&new, &current);
            if reversed != mirrored(expected) {
                antisymmetry.push(format!(
                    "{file} comparisons/{name} reversed: {} vs {}",
                    reversed.as_str(),
                    expected.as_str()
                ));
            }
        }
        counts.push((file, "comparisons", n));
    }

    let file = "locus-SeqCmp.json";
    let doc = load(&dir, file);
    let sequences = object(&doc, "sequences", file);
    let mut n = 0;
    for (name, vector) in object(&doc, "update_actions", file) {
        n += 1;
        let description = field(vector, "description").unwrap_or("");
        let current = sequence(sequences, field(vector, "current").unwrap_or(""), file);
        let new = sequence(sequences, field(vector, "new").unwrap_or(""), file);
        let base = field(vector, "newbase").map(|b| sequence(sequences, b, file));
        let url_changed = field(vector, "currentUrl") != field(vector, "newUrl");
        let expected = field(vector, "result").unwrap_or("");
        let got = update_action(&current, &new, base.as_ref(), url_changed);
        if got.as_str() != expected {
            failures.push(format!(
                "{file} update_actions/{name}: expected {expected}, got {} ({description})",
                got.as_str()
            ));
        }
    }
    counts.push((file, "update_actions", n));

    let total: usize = counts.iter().map(|c| c.2).sum();
    println!("locus conformance: {counts:?}, {total} vectors");
    assert!(
        failures.is_empty(),
        "{} of {total} vectors fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        antisymmetry.is_empty(),
        "compare is not antisymmetric on {} vectors:\n{}",
        antisymmetry.len(),
        antisymmetry.join("\n")
    );
    assert_eq!(
        counts.iter().map(|c| c.2).collect::<Vec<_>>(),
        [88, 25, 23],
        "vector counts changed"
    );
    assert_eq!(total, 136);
    // The names the SDK uses are the names roomd prints.
    assert_eq!(UpdateAction::UseCurrent.as_str(), "KEEP_CURRENT");
}

#[test]
fn full_dto_sample() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let path = dir.join("locus-full-dto.json");
    let bytes = std::fs::read(&path).unwrap();
    let dto = locus::parse_dto(&bytes).unwrap();
    assert!(!dto.is_delta());
    assert!(!dto.is_ended());
    assert_eq!(dto.display_name(), Some("ARUN  Personal Room"));
    let full = dto.full_state.as_ref().unwrap();
    assert_eq!(
        (&full.state, &full.kind),
        (&LocusState::Active, &LocusType::Meeting)
    );
    assert_eq!(dto.participants.len(), 1);
    assert_eq!(dto.participants[0].state, ParticipantState::Joined);
    assert_eq!(dto.media_shares.len(), 3);
    assert!(dto.sync_url.is_some());
    let me = dto.self_.as_ref().unwrap();
    assert_eq!(me.state, ParticipantState::Joined);
    assert_eq!(me.devices.len(), 1);
    assert_eq!(
        dto.host.as_ref().unwrap().name.as_deref(),
        Some("Arun Ganeshan")
    );

    // The sequence entry above 2^53 survives parsing and a round trip exactly.
    const BIG: u64 = 138_781_603_429_640_000;
    assert_eq!(dto.sequence.as_ref().unwrap().entries, vec![BIG]);
    let text = serde_json::to_string(&dto).unwrap();
    assert!(text.contains("138781603429640000"), "{text}");
    let again = locus::parse_dto(text.as_bytes()).unwrap();
    assert_eq!(again, dto);
    assert_eq!(again.sequence.unwrap().entries, vec![BIG]);

    // As an event, and as the first DTO of a tracker.
    let event = locus::parse_event(&serde_json::json!({
        "eventType": "locus.difference",
        "locus": serde_json::from_slice::<Value>(&bytes).unwrap(),
    }))
    .unwrap();
    assert_eq!(event.locus.as_ref(), Some(&dto));
    let mut tracker = roomd::locus::LocusTracker::new();
    let now = std::time::Instant::now();
    assert_eq!(
        tracker.apply(dto.clone(), now),
        roomd::locus::Applied::Updated
    );
    assert_eq!(tracker.apply(dto, now), roomd::locus::Applied::Kept);
}

#[test]
fn self_samples() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let doc = load(&dir, "locus-self.json");
    for key in ["self", "selfWithInactivity"] {
        let me: Participant = serde_json::from_value(doc[key].clone())
            .unwrap_or_else(|e| panic!("locus-self.json {key}: {e}"));
        assert_eq!(me.state, ParticipantState::Joined, "{key}");
        assert_eq!(me.kind.as_deref(), Some("USER"), "{key}");
        let person = me.person.as_ref().unwrap();
        assert_eq!(person.email.as_deref(), Some("alic@cisco.com"), "{key}");
        assert_eq!(me.devices.len(), 1, "{key}");
        assert!(me.status.is_some(), "{key}");
        assert!(!me.removed, "{key}");
        let back: Participant = serde_json::from_str(&serde_json::to_string(&me).unwrap()).unwrap();
        assert_eq!(back, me, "{key}");
    }
    assert!(doc["self"]["devices"][0]["intent"].is_object());
    let me: Participant = serde_json::from_value(doc["self"].clone()).unwrap();
    assert!(me.devices[0].intent.is_some());
}
