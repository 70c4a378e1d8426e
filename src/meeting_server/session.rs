//! The Meeting Server events protocol as a sans-IO state machine (seed 001 §1 and §5):
//! feed it the server's frames, send what it returns. It acks every message, keeps its own
//! messageId space, follows every active call with callInfo and callRoster subscriptions by
//! re-sending the complete set, and never holds more than 100 subscriptions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::meeting_server::model::ConferenceModel;
use crate::proto::meeting_server::{
    self, MAX_SUBSCRIPTIONS, MessageError, Resource, ServerFrame, ServerMessage, SubState,
    Subscription, UpdateType,
};

/// Index of the `calls` subscription (stable for the life of the process).
pub const CALLS_INDEX: u32 = 1;

#[derive(Debug)]
pub struct EventsSession {
    /// Our next messageId on this connection (each side numbers its own, from 1).
    next_message_id: u64,
    /// The complete set last sent.
    current: Vec<Subscription>,
    /// Stable indexes per (resource, call), so an unchanged subscription keeps its index.
    indexes: HashMap<(Resource, Option<String>), u32>,
    next_index: u32,
    pub states: BTreeMap<u32, SubState>,
    /// Our subscribeRequests not acked yet.
    unacked: BTreeSet<u64>,
    pub model: ConferenceModel,
    /// Calls not followed because the subscription limit was reached.
    pub unfollowed: BTreeSet<String>,
    pub messages_received: u64,
}

impl Default for EventsSession {
    fn default() -> Self {
        Self::new()
    }
}

impl EventsSession {
    pub fn new() -> Self {
        let mut indexes = HashMap::new();
        indexes.insert((Resource::Calls, None), CALLS_INDEX);
        Self {
            next_message_id: 1,
            current: Vec::new(),
            indexes,
            next_index: CALLS_INDEX + 1,
            states: BTreeMap::new(),
            unacked: BTreeSet::new(),
            model: ConferenceModel::default(),
            unfollowed: BTreeSet::new(),
            messages_received: 0,
        }
    }

    /// A new socket: numbering starts over and the server replays state as `add`s once the
    /// subscriptions are active again. Returns the first subscribeRequest.
    pub fn on_open(&mut self) -> Vec<String> {
        self.next_message_id = 1;
        self.current.clear();
        self.states.clear();
        self.unacked.clear();
        self.model = ConferenceModel::default();
        self.unfollowed.clear();
        self.resubscribe_if_changed().into_iter().collect()
    }

    /// The complete set as last sent.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.current
    }

    /// Re-sends the current set unchanged (same indexes): a liveness probe the server acks.
    pub fn probe(&mut self) -> String {
        let id = self.take_message_id();
        self.unacked.insert(id);
        meeting_server::subscribe_request(id, &self.current)
    }

    /// Handles one frame; returns the frames to send back, in order.
    pub fn on_text(&mut self, text: &str) -> Result<Vec<String>, MessageError> {
        let frame = meeting_server::parse(text)?;
        self.messages_received += 1;
        match frame {
            ServerFrame::Ack {
                message_id,
                success,
            } => {
                if !self.unacked.remove(&message_id) {
                    tracing::debug!("Meeting Server acked message {message_id} we did not send");
                } else if !success {
                    tracing::error!(
                        "Meeting Server refused our subscribeRequest {message_id} (status failure)"
                    );
                }
                Ok(Vec::new())
            }
            ServerFrame::Message { message_id, body } => {
                let understood = !matches!(body, ServerMessage::Unknown { .. });
                if let ServerMessage::Unknown { kind } = &body {
                    tracing::warn!(
                        "Meeting Server message type `{kind}` is not known; acked as failure"
                    );
                }
                // Ack first: the server sends nothing more until it has it.
                let mut out = vec![meeting_server::ack(message_id, understood)];
                if self.apply(body) {
                    out.extend(self.resubscribe_if_changed());
                }
                Ok(out)
            }
        }
    }

    /// Applies a message; true when the set of calls changed.
    fn apply(&mut self, body: ServerMessage) -> bool {
        match body {
            ServerMessage::SubscriptionUpdate(states) => {
                for s in states {
                    tracing::info!(
                        "Meeting Server: subscription {} ({}) is {}",
                        s.index,
                        self.describe(s.index),
                        s.state.as_str()
                    );
                    self.states.insert(s.index, s.state);
                    if let Some((resource, Some(call))) = self.resource_of(s.index) {
                        if let Some(conference) = self.model.calls.get_mut(&call) {
                            match resource {
                                Resource::CallInfo => conference.info_state = Some(s.state),
                                Resource::CallRoster => conference.roster_state = Some(s.state),
                                Resource::Calls => {}
                            }
                        }
                    }
                }
                false
            }
            ServerMessage::CallListUpdate {
                subscription_index,
                updates,
            } => {
                if subscription_index != CALLS_INDEX {
                    tracing::warn!(
                        "callListUpdate for subscription {subscription_index}, not ours; ignored"
                    );
                    return false;
                }
                let changed = self.model.apply_call_list(&updates);
                changed
                    .iter()
                    .any(|(_, kind)| matches!(kind, UpdateType::Add | UpdateType::Remove))
            }
            ServerMessage::CallInfoUpdate {
                subscription_index,
                call_info,
            } => {
                match self.resource_of(subscription_index) {
                    Some((Resource::CallInfo, Some(call))) => {
                        self.model.apply_call_info(&call, &call_info)
                    }
                    _ => tracing::warn!(
                        "callInfoUpdate for unknown subscription {subscription_index}; ignored"
                    ),
                }
                false
            }
            ServerMessage::RosterUpdate {
                subscription_index,
                updates,
            } => {
                match self.resource_of(subscription_index) {
                    Some((Resource::CallRoster, Some(call))) => {
                        self.model.apply_roster(&call, &updates)
                    }
                    _ => tracing::warn!(
                        "rosterUpdate for unknown subscription {subscription_index}; ignored"
                    ),
                }
                false
            }
            ServerMessage::Unknown { .. } => false,
        }
    }

    fn resource_of(&self, index: u32) -> Option<(Resource, Option<String>)> {
        self.current
            .iter()
            .find(|s| s.index == index)
            .map(|s| (s.resource, s.call.clone()))
    }

    fn describe(&self, index: u32) -> String {
        match self.resource_of(index) {
            Some((resource, Some(call))) => format!("{} of {call}", resource.as_str()),
            Some((resource, None)) => resource.as_str().to_string(),
            None => "not ours".into(),
        }
    }

    /// The set roomd wants: the calls list, and callInfo + callRoster per active call
    /// while the limit allows.
    fn desired(&mut self) -> Vec<Subscription> {
        let mut set = vec![Subscription {
            index: CALLS_INDEX,
            resource: Resource::Calls,
            call: None,
        }];
        let calls: Vec<String> = self.model.calls.keys().cloned().collect();
        self.unfollowed.clear();
        for call in calls {
            if set.len() + 2 > MAX_SUBSCRIPTIONS {
                self.unfollowed.insert(call);
                continue;
            }
            for resource in [Resource::CallInfo, Resource::CallRoster] {
                let index = self.index_for(resource, Some(call.clone()));
                set.push(Subscription {
                    index,
                    resource,
                    call: Some(call.clone()),
                });
            }
        }
        if !self.unfollowed.is_empty() {
            tracing::error!(
                "not following {} conference(s): a Meeting Server connection allows at most {MAX_SUBSCRIPTIONS} subscriptions",
                self.unfollowed.len()
            );
        }
        // Indexes of calls that ended are forgotten, so the map stays bounded.
        let live: BTreeSet<u32> = set.iter().map(|s| s.index).collect();
        self.indexes.retain(|_, index| live.contains(index));
        set
    }

    fn index_for(&mut self, resource: Resource, call: Option<String>) -> u32 {
        if let Some(index) = self.indexes.get(&(resource, call.clone())) {
            return *index;
        }
        let index = self.next_index;
        self.next_index += 1;
        self.indexes.insert((resource, call), index);
        index
    }

    fn resubscribe_if_changed(&mut self) -> Option<String> {
        let desired = self.desired();
        if desired == self.current && !self.current.is_empty() {
            return None;
        }
        let request = subscribe_checked(self.take_message_id(), &desired)
            .expect("desired() never exceeds the limit");
        self.unacked.insert(self.next_message_id - 1);
        // Subscriptions left out are torn down by the server; forget their states.
        let kept: BTreeSet<u32> = desired.iter().map(|s| s.index).collect();
        self.states.retain(|index, _| kept.contains(index));
        self.current = desired;
        Some(request)
    }

    fn take_message_id(&mut self) -> u64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }
}

/// A subscribeRequest, refused when it would exceed the per-connection limit.
pub fn subscribe_checked(
    message_id: u64,
    subscriptions: &[Subscription],
) -> Result<String, crate::meeting_server::MeetingServerError> {
    if subscriptions.len() > MAX_SUBSCRIPTIONS {
        return Err(
            crate::meeting_server::MeetingServerError::TooManySubscriptions {
                requested: subscriptions.len(),
                limit: MAX_SUBSCRIPTIONS,
            },
        );
    }
    Ok(meeting_server::subscribe_request(message_id, subscriptions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn message(id: u64, body: Value) -> String {
        let mut message = body;
        message["messageId"] = json!(id);
        json!({"type":"message","message":message}).to_string()
    }

    fn parse(frame: &str) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    #[test]
    fn follows_calls_and_acks_everything() {
        let mut session = EventsSession::new();
        let first = session.on_open();
        assert_eq!(first.len(), 1);
        let request = parse(&first[0]);
        assert_eq!(request["message"]["messageId"], 1);
        assert_eq!(
            request["message"]["subscriptions"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(
            session
                .on_text(r#"{"type":"messageAck","messageAck":{"messageId":1,"status":"success"}}"#)
                .unwrap()
                .is_empty()
        );

        let out = session
            .on_text(&message(
                1,
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":1,"state":"active"}]}),
            ))
            .unwrap();
        assert_eq!(out, vec![meeting_server::ack(1, true)]);

        let out = session
            .on_text(&message(2, json!({"type":"callListUpdate","subscriptionIndex":1,
                "updates":[{"call":"c1","updateType":"add","name":"Andy's coSpace","participants":0}]})))
            .unwrap();
        assert_eq!(out.len(), 2, "ack, then the complete set again");
        assert_eq!(out[0], meeting_server::ack(2, true));
        let again = parse(&out[1]);
        assert_eq!(again["message"]["messageId"], 2);
        let subs = again["message"]["subscriptions"].as_array().unwrap();
        assert_eq!(subs.len(), 3);
        assert_eq!(
            subs[0]["index"], 1,
            "the calls subscription keeps its index"
        );

        // A participant count update changes no subscription.
        let out = session
            .on_text(&message(
                3,
                json!({"type":"callListUpdate","subscriptionIndex":1,
                "updates":[{"call":"c1","updateType":"update","participants":1}]}),
            ))
            .unwrap();
        assert_eq!(out.len(), 1);

        let roster_index = subs[2]["index"].as_u64().unwrap();
        session
            .on_text(&message(
                4,
                json!({"type":"rosterUpdate","subscriptionIndex":roster_index,
                "updates":[{"participant":"p1","updateType":"add","name":"Ann","canMove":true}]}),
            ))
            .unwrap();
        assert_eq!(
            session.model.calls["c1"].roster["p1"].can_move(),
            Some(true)
        );

        // Unknown types are acked as failure and change nothing.
        let out = session
            .on_text(&message(5, json!({"type":"brandNew"})))
            .unwrap();
        assert_eq!(out, vec![meeting_server::ack(5, false)]);

        // The call ends: the set shrinks back to the calls list.
        let out = session
            .on_text(&message(
                6,
                json!({"type":"callListUpdate","subscriptionIndex":1,
                "updates":[{"call":"c1","updateType":"remove"}]}),
            ))
            .unwrap();
        let shrunk = parse(&out[1]);
        assert_eq!(
            shrunk["message"]["subscriptions"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn never_exceeds_one_hundred_subscriptions() {
        let mut session = EventsSession::new();
        session.on_open();
        let updates: Vec<Value> = (0..60)
            .map(|i| json!({"call": format!("c{i:02}"), "updateType": "add", "name": format!("conf {i}")}))
            .collect();
        let out = session
            .on_text(&message(
                1,
                json!({"type":"callListUpdate","subscriptionIndex":1,"updates":updates}),
            ))
            .unwrap();
        let request = parse(&out[1]);
        let count = request["message"]["subscriptions"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(count, 99, "1 calls + 2 × 49 calls");
        assert_eq!(session.unfollowed.len(), 11);
        let too_many: Vec<Subscription> = (0..101)
            .map(|i| Subscription {
                index: i,
                resource: Resource::Calls,
                call: None,
            })
            .collect();
        let err = subscribe_checked(1, &too_many).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a subscribeRequest of 101 subscriptions exceeds the Meeting Server's limit of 100 per connection"
        );
    }

    #[test]
    fn reconnect_starts_numbering_over() {
        let mut session = EventsSession::new();
        session.on_open();
        session.probe();
        let first = session.on_open();
        assert_eq!(parse(&first[0])["message"]["messageId"], 1);
    }
}
