//! What roomd knows about the Meeting Server's conferences: the active calls, each one's
//! callInfo, and its roster, kept from add/update/remove updates (seed 001 §2).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::proto::meeting_server::{SubState, Update, UpdateType};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConferenceModel {
    /// By call GUID.
    pub calls: BTreeMap<String, Conference>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conference {
    /// Elements from the `calls` list (name, participants, ...).
    pub fields: Map<String, Value>,
    /// Elements from this call's `callInfo` subscription.
    pub info: Map<String, Value>,
    /// Participants by GUID.
    pub roster: BTreeMap<String, Participant>,
    pub info_state: Option<SubState>,
    pub roster_state: Option<SubState>,
}

impl Conference {
    pub fn name(&self) -> &str {
        text(&self.info, "name")
            .or_else(|| text(&self.fields, "name"))
            .unwrap_or("")
    }

    pub fn participant_count(&self) -> Option<u64> {
        self.info
            .get("participants")
            .or_else(|| self.fields.get("participants"))
            .and_then(Value::as_u64)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Participant {
    pub fields: Map<String, Value>,
}

impl Participant {
    pub fn name(&self) -> &str {
        text(&self.fields, "name").unwrap_or("")
    }

    /// The participant this one was created from by a move (`movedParticipant`).
    pub fn moved_from(&self) -> Option<&str> {
        text(&self.fields, "movedParticipant")
    }

    /// The Call Bridge hosting the conference the participant was moved from.
    pub fn moved_from_call_bridge(&self) -> Option<&str> {
        text(&self.fields, "movedParticipantCallBridge")
    }

    pub fn can_move(&self) -> Option<bool> {
        self.fields.get("canMove").and_then(Value::as_bool)
    }
}

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Merges `fields` into `target`; a `null` element clears it (e.g. importance unset).
fn merge(target: &mut Map<String, Value>, fields: &Map<String, Value>) {
    for (key, value) in fields {
        if value.is_null() {
            target.remove(key);
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

impl ConferenceModel {
    /// Applies a `callListUpdate`; returns the calls that were added or removed.
    pub fn apply_call_list(&mut self, updates: &[Update]) -> Vec<(String, UpdateType)> {
        let mut changed = Vec::new();
        for update in updates {
            match update.update_type {
                UpdateType::Add | UpdateType::Update => {
                    let is_new = !self.calls.contains_key(&update.id);
                    let call = self.calls.entry(update.id.clone()).or_default();
                    merge(&mut call.fields, &update.fields);
                    if is_new {
                        tracing::info!(
                            "Meeting Server: conference {:?} ({}) started",
                            call.name(),
                            update.id
                        );
                        changed.push((update.id.clone(), UpdateType::Add));
                    }
                }
                UpdateType::Remove => {
                    if let Some(call) = self.calls.remove(&update.id) {
                        tracing::info!(
                            "Meeting Server: conference {:?} ({}) ended",
                            call.name(),
                            update.id
                        );
                        changed.push((update.id.clone(), UpdateType::Remove));
                    }
                }
            }
        }
        changed
    }

    /// Applies a `callInfoUpdate` for `call`.
    pub fn apply_call_info(&mut self, call: &str, info: &Map<String, Value>) {
        if let Some(conference) = self.calls.get_mut(call) {
            merge(&mut conference.info, info);
        }
    }

    /// Applies a `rosterUpdate` for `call`.
    pub fn apply_roster(&mut self, call: &str, updates: &[Update]) {
        let Some(conference) = self.calls.get_mut(call) else {
            return;
        };
        let conference_name = conference.name().to_string();
        for update in updates {
            match update.update_type {
                UpdateType::Add | UpdateType::Update => {
                    let is_new = !conference.roster.contains_key(&update.id);
                    let participant = conference.roster.entry(update.id.clone()).or_default();
                    merge(&mut participant.fields, &update.fields);
                    if is_new {
                        match participant.moved_from() {
                            Some(from) => tracing::info!(
                                "Meeting Server: participant {:?} moved into {conference_name:?} (was participant {from} on call bridge {})",
                                participant.name(),
                                participant.moved_from_call_bridge().unwrap_or("unknown")
                            ),
                            None => tracing::info!(
                                "Meeting Server: participant {:?} joined {conference_name:?}",
                                participant.name()
                            ),
                        }
                    }
                }
                UpdateType::Remove => {
                    if let Some(gone) = conference.roster.remove(&update.id) {
                        tracing::info!(
                            "Meeting Server: participant {:?} left {conference_name:?}",
                            gone.name()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(id: &str, kind: UpdateType, fields: Value) -> Update {
        Update {
            id: id.into(),
            update_type: kind,
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn calls_and_rosters_follow_add_update_remove() {
        let mut model = ConferenceModel::default();
        let added = model.apply_call_list(&[update(
            "c1",
            UpdateType::Add,
            json!({"name":"Andy's coSpace","participants":0}),
        )]);
        assert_eq!(added, vec![("c1".to_string(), UpdateType::Add)]);
        model.apply_call_list(&[update("c1", UpdateType::Update, json!({"participants":1}))]);
        assert_eq!(model.calls["c1"].name(), "Andy's coSpace");
        assert_eq!(model.calls["c1"].participant_count(), Some(1));

        model.apply_roster(
            "c1",
            &[update(
                "p1",
                UpdateType::Add,
                json!({"name":"Ann","canMove":true}),
            )],
        );
        model.apply_roster(
            "c1",
            &[
                update("p1", UpdateType::Remove, json!({})),
                update(
                    "p2",
                    UpdateType::Add,
                    json!({"name":"Ann","movedParticipant":"p1","movedParticipantCallBridge":"cb","importance":3}),
                ),
            ],
        );
        let moved = &model.calls["c1"].roster["p2"];
        assert_eq!(moved.moved_from(), Some("p1"));
        assert_eq!(moved.moved_from_call_bridge(), Some("cb"));
        model.apply_roster(
            "c1",
            &[update("p2", UpdateType::Update, json!({"importance":null}))],
        );
        assert!(
            !model.calls["c1"].roster["p2"]
                .fields
                .contains_key("importance")
        );
        assert_eq!(model.calls["c1"].roster.len(), 1);

        let removed = model.apply_call_list(&[update("c1", UpdateType::Remove, json!({}))]);
        assert_eq!(removed, vec![("c1".to_string(), UpdateType::Remove)]);
        assert!(model.calls.is_empty());
        // Updates for unknown calls are ignored, not invented.
        model.apply_roster("nope", &[update("p", UpdateType::Add, json!({}))]);
        assert!(model.calls.is_empty());
    }
}
