//! The events protocol of one socket (seed 001 §1.1 and §5, wire profile §9): the subscription set,
//! its state changes, and the messages a model change produces for it. Pure: no I/O, no clock.
//!
//! Messages are queued without a `messageId`; the socket numbers them when it sends them, one at a
//! time, each after the client acked the one before.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::model::{
    CALL_INFO_ELEMENTS, CALLS_ELEMENTS, CallView, Change, CmsCall, CmsParticipant, Model,
    ROSTER_ELEMENTS,
};

/// A subscribable event resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CmsResource {
    Calls,
    CallInfo,
    CallRoster,
}

/// A subscription's state as `subscriptionUpdate` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmsSubscriptionState {
    Pending,
    Active,
    Deactivated,
}

impl CmsSubscriptionState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Deactivated => "deactivated",
        }
    }
}

/// One subscription of a socket's current set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmsSubscription {
    /// The client's number for it.
    pub index: u64,
    #[serde(rename = "type")]
    pub resource: CmsResource,
    /// The call GUID (`callInfo` and `callRoster` only).
    pub call: Option<String>,
    /// The elements asked for, as sent (unknown names are kept here and never reported).
    pub elements: Vec<String>,
    pub state: CmsSubscriptionState,
}

impl CmsSubscription {
    /// Same index, resource, call and elements: a re-sent subscription, not a new one.
    fn same_request(&self, other: &Self) -> bool {
        self.index == other.index
            && self.resource == other.resource
            && self.call == other.call
            && self.elements == other.elements
    }

    fn wants(&self, element: &str) -> bool {
        self.elements.iter().any(|e| e == element)
    }

    fn is_for_call(&self, call: &str) -> bool {
        self.call.as_deref() == Some(call)
    }
}

/// Parses the `subscriptions` array of a `subscribeRequest`. Errors name the problem (the client
/// only sees an ack `failure`; the reason goes to the violation log).
pub(crate) fn parse_subscriptions(message: &Value) -> Result<Vec<CmsSubscription>, String> {
    let list = message
        .get("subscriptions")
        .and_then(Value::as_array)
        .ok_or("subscribeRequest without a subscriptions array")?;
    let mut out: Vec<CmsSubscription> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let index = s
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("subscriptions[{i}].index is not a non-negative integer"))?;
        if out.iter().any(|o| o.index == index) {
            return Err(format!("subscriptions[{i}].index {index} appears twice"));
        }
        let resource = match s.get("type").and_then(Value::as_str) {
            Some("calls") => CmsResource::Calls,
            Some("callInfo") => CmsResource::CallInfo,
            Some("callRoster") => CmsResource::CallRoster,
            other => {
                return Err(format!(
                    "subscriptions[{i}].type {other:?} is not a resource"
                ));
            }
        };
        let call = match resource {
            CmsResource::Calls => None,
            CmsResource::CallInfo | CmsResource::CallRoster => Some(
                s.get("call")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| format!("subscriptions[{i}] needs a call"))?
                    .to_owned(),
            ),
        };
        let elements = match s.get("elements") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|e| e.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("subscriptions[{i}].elements must be strings"))?,
            Some(_) => return Err(format!("subscriptions[{i}].elements is not an array")),
        };
        out.push(CmsSubscription {
            index,
            resource,
            call,
            elements,
            state: CmsSubscriptionState::Pending,
        });
    }
    Ok(out)
}

/// The protocol state of one socket: its subscriptions and the messages waiting to be sent.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub subs: BTreeMap<u64, CmsSubscription>,
    /// Message bodies (`type` and the rest, no `messageId`), oldest first.
    pub queue: VecDeque<Map<String, Value>>,
}

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn subscription_update(states: &[(u64, CmsSubscriptionState)]) -> Map<String, Value> {
    let subs: Vec<Value> = states
        .iter()
        .map(|(index, state)| json!({ "index": index, "state": state.as_str() }))
        .collect();
    body(json!({ "type": "subscriptionUpdate", "subscriptions": subs }))
}

fn elements_of<'a>(
    names: &'a [&'a str],
    sub: &'a CmsSubscription,
    value: impl Fn(&str) -> Option<Value> + 'a,
) -> impl Iterator<Item = (String, Value)> + 'a {
    names
        .iter()
        .filter(|n| sub.wants(n))
        .filter_map(move |n| value(n).map(|v| ((*n).to_owned(), v)))
}

/// The subscribed elements whose value differs between `before` and `after`.
fn changed_elements(
    names: &[&str],
    sub: &CmsSubscription,
    before: impl Fn(&str) -> Option<Value>,
    after: impl Fn(&str) -> Option<Value>,
) -> Vec<(String, Value)> {
    names
        .iter()
        .filter(|n| sub.wants(n))
        .filter_map(|n| {
            let (b, a) = (before(n), after(n));
            (b != a).then(|| ((*n).to_owned(), a.unwrap_or(Value::Null)))
        })
        .collect()
}

fn call_item(call: &str, update_type: &str, elements: Vec<(String, Value)>) -> Value {
    let mut m = Map::new();
    m.insert("call".to_owned(), json!(call));
    m.insert("updateType".to_owned(), json!(update_type));
    m.extend(elements);
    Value::Object(m)
}

fn participant_item(participant: &str, update_type: &str, elements: Vec<(String, Value)>) -> Value {
    let mut m = Map::new();
    m.insert("participant".to_owned(), json!(participant));
    m.insert("updateType".to_owned(), json!(update_type));
    m.extend(elements);
    Value::Object(m)
}

fn call_list_update(index: u64, updates: Vec<Value>) -> Map<String, Value> {
    body(json!({ "type": "callListUpdate", "subscriptionIndex": index, "updates": updates }))
}

fn roster_update(index: u64, updates: Vec<Value>) -> Map<String, Value> {
    body(json!({ "type": "rosterUpdate", "subscriptionIndex": index, "updates": updates }))
}

fn call_info_update(index: u64, elements: Vec<(String, Value)>) -> Map<String, Value> {
    let info: Map<String, Value> = elements.into_iter().collect();
    body(json!({ "type": "callInfoUpdate", "subscriptionIndex": index, "callInfo": info }))
}

fn call_added(sub: &CmsSubscription, call: &CmsCall) -> Value {
    let els = elements_of(&CALLS_ELEMENTS, sub, |n| call.element(CallView::Calls, n)).collect();
    call_item(&call.call, "add", els)
}

fn participant_added(sub: &CmsSubscription, p: &CmsParticipant) -> Value {
    let els = elements_of(&ROSTER_ELEMENTS, sub, |n| p.element(n)).collect();
    participant_item(&p.participant, "add", els)
}

impl Session {
    /// Replaces the subscription set with `wanted` (already validated) and queues what that
    /// reports: one `subscriptionUpdate` with `deactivated` for subscriptions left out and
    /// `pending` for new or changed ones, then one with their outcome (`active`, or `deactivated`
    /// for a call that is not active), then the current state of each newly active one as `add`
    /// updates. A re-sent identical subscription is left alone; an identical set queues nothing.
    pub(crate) fn subscribe(&mut self, wanted: Vec<CmsSubscription>, model: &Model) {
        let mut old = std::mem::take(&mut self.subs);
        let mut fresh = Vec::new();
        for mut s in wanted {
            match old.remove(&s.index) {
                Some(o) if o.same_request(&s) => {
                    self.subs.insert(o.index, o);
                }
                _ => {
                    s.state = CmsSubscriptionState::Pending;
                    fresh.push(s.index);
                    self.subs.insert(s.index, s);
                }
            }
        }
        let mut first: Vec<(u64, CmsSubscriptionState)> = old
            .values()
            .filter(|o| o.state != CmsSubscriptionState::Deactivated)
            .map(|o| (o.index, CmsSubscriptionState::Deactivated))
            .collect();
        first.extend(fresh.iter().map(|i| (*i, CmsSubscriptionState::Pending)));
        first.sort_by_key(|(i, _)| *i);
        if first.is_empty() {
            return;
        }
        self.queue.push_back(subscription_update(&first));
        if fresh.is_empty() {
            return;
        }
        let mut outcome = Vec::with_capacity(fresh.len());
        for index in &fresh {
            let Some(s) = self.subs.get_mut(index) else {
                continue;
            };
            let exists = match &s.call {
                None => true,
                Some(c) => model.call(c).is_some(),
            };
            s.state = if exists {
                CmsSubscriptionState::Active
            } else {
                CmsSubscriptionState::Deactivated
            };
            outcome.push((s.index, s.state));
        }
        self.queue.push_back(subscription_update(&outcome));
        for index in fresh {
            if let Some(s) = self.subs.get(&index) {
                if s.state == CmsSubscriptionState::Active {
                    let initial = Self::initial_state(s, model);
                    self.queue.extend(initial);
                }
            }
        }
    }

    /// The current state of a subscription that just became active.
    fn initial_state(s: &CmsSubscription, model: &Model) -> Option<Map<String, Value>> {
        match s.resource {
            CmsResource::Calls => {
                let updates: Vec<Value> = model.calls.iter().map(|c| call_added(s, c)).collect();
                (!updates.is_empty()).then(|| call_list_update(s.index, updates))
            }
            CmsResource::CallInfo => {
                let call = model.call(s.call.as_deref()?)?;
                let els = elements_of(&CALL_INFO_ELEMENTS, s, |n| {
                    call.element(CallView::CallInfo, n)
                })
                .collect();
                Some(call_info_update(s.index, els))
            }
            CmsResource::CallRoster => {
                let call = model.call(s.call.as_deref()?)?;
                let updates: Vec<Value> = call
                    .roster
                    .iter()
                    .map(|p| participant_added(s, p))
                    .collect();
                (!updates.is_empty()).then(|| roster_update(s.index, updates))
            }
        }
    }

    /// Queues what one model change means for the active subscriptions, in index order.
    pub(crate) fn on_change(&mut self, change: &Change) {
        let active = |s: &&CmsSubscription| s.state == CmsSubscriptionState::Active;
        match change {
            Change::CallAdded { call } => {
                for s in self.subs.values().filter(active) {
                    if s.resource == CmsResource::Calls {
                        self.queue
                            .push_back(call_list_update(s.index, vec![call_added(s, call)]));
                    }
                }
            }
            Change::CallChanged { before, after } => {
                for s in self.subs.values().filter(active) {
                    match s.resource {
                        CmsResource::Calls => {
                            let els = changed_elements(
                                &CALLS_ELEMENTS,
                                s,
                                |n| before.element(CallView::Calls, n),
                                |n| after.element(CallView::Calls, n),
                            );
                            if !els.is_empty() {
                                let item = call_item(&after.call, "update", els);
                                self.queue.push_back(call_list_update(s.index, vec![item]));
                            }
                        }
                        CmsResource::CallInfo if s.is_for_call(&after.call) => {
                            let els = changed_elements(
                                &CALL_INFO_ELEMENTS,
                                s,
                                |n| before.element(CallView::CallInfo, n),
                                |n| after.element(CallView::CallInfo, n),
                            );
                            if !els.is_empty() {
                                self.queue.push_back(call_info_update(s.index, els));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Change::CallEnded { call } => {
                for s in self.subs.values().filter(active) {
                    if s.resource == CmsResource::Calls {
                        let item = call_item(call, "remove", Vec::new());
                        self.queue.push_back(call_list_update(s.index, vec![item]));
                    }
                }
                let mut ended = Vec::new();
                for s in self.subs.values_mut() {
                    if s.resource != CmsResource::Calls
                        && s.is_for_call(call)
                        && s.state != CmsSubscriptionState::Deactivated
                    {
                        s.state = CmsSubscriptionState::Deactivated;
                        ended.push((s.index, s.state));
                    }
                }
                if !ended.is_empty() {
                    self.queue.push_back(subscription_update(&ended));
                }
            }
            Change::ParticipantAdded { call, participant } => {
                for s in self.subs.values().filter(active) {
                    if s.resource == CmsResource::CallRoster && s.is_for_call(call) {
                        let item = participant_added(s, participant);
                        self.queue.push_back(roster_update(s.index, vec![item]));
                    }
                }
            }
            Change::ParticipantChanged {
                call,
                before,
                after,
            } => {
                for s in self.subs.values().filter(active) {
                    if s.resource == CmsResource::CallRoster && s.is_for_call(call) {
                        let els = changed_elements(
                            &ROSTER_ELEMENTS,
                            s,
                            |n| before.element(n),
                            |n| after.element(n),
                        );
                        if !els.is_empty() {
                            let item = participant_item(&after.participant, "update", els);
                            self.queue.push_back(roster_update(s.index, vec![item]));
                        }
                    }
                }
            }
            Change::ParticipantRemoved { call, participant } => {
                for s in self.subs.values().filter(active) {
                    if s.resource == CmsResource::CallRoster && s.is_for_call(call) {
                        let item = participant_item(participant, "remove", Vec::new());
                        self.queue.push_back(roster_update(s.index, vec![item]));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{CmsCallFields, CmsParticipantFields};
    use super::*;

    fn drain(s: &mut Session) -> Vec<Value> {
        s.queue.drain(..).map(Value::Object).collect()
    }

    fn subs(v: Value) -> Vec<CmsSubscription> {
        parse_subscriptions(&json!({ "subscriptions": v })).expect("valid subscriptions")
    }

    fn apply(s: &mut Session, changes: &[Change]) {
        for c in changes {
            s.on_change(c);
        }
    }

    #[test]
    fn seed_001_section_5_flow() {
        let mut m = Model::default();
        let mut s = Session::default();
        s.subscribe(
            subs(json!([{"index":3,"type":"calls","elements":["name","participants"]}])),
            &m,
        );
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":3,"state":"pending"}]}),
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":3,"state":"active"}]}),
            ]
        );
        let (call, changes) = m
            .create_call(&CmsCallFields {
                call: Some("97c771ae-fc2e-4257-b129-30ee818e034b".into()),
                name: Some("Andy's coSpace".into()),
                ..CmsCallFields::default()
            })
            .expect("call");
        apply(&mut s, &changes);
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"callListUpdate","subscriptionIndex":3,"updates":[
                {"call":"97c771ae-fc2e-4257-b129-30ee818e034b","updateType":"add",
                 "name":"Andy's coSpace","participants":0}]})
            ]
        );
        let (p1, changes) = m
            .add_participant(&call.call, &CmsParticipantFields::default(), None)
            .expect("participant");
        apply(&mut s, &changes);
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"callListUpdate","subscriptionIndex":3,"updates":[
                {"call":call.call,"updateType":"update","participants":1}]})
            ]
        );
        s.subscribe(
            subs(json!([
                {"index":1,"type":"callRoster","call":call.call,"elements":["name","uri","state","importance"]},
                {"index":2,"type":"callInfo","call":call.call,"elements":["name","participants","streaming"]},
                {"index":3,"type":"calls","elements":["name","participants"]}
            ])),
            &m,
        );
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":1,"state":"pending"},{"index":2,"state":"pending"}]}),
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":1,"state":"active"},{"index":2,"state":"active"}]}),
                json!({"type":"rosterUpdate","subscriptionIndex":1,"updates":[
                    {"participant":p1.participant,"updateType":"add","name":"Participant 1",
                     "uri":"participant1","state":"connected","importance":null}]}),
                json!({"type":"callInfoUpdate","subscriptionIndex":2,"callInfo":
                    {"name":"Andy's coSpace","participants":1,"streaming":"inactive"}}),
            ]
        );
        // The same set again: acked, otherwise ignored.
        s.subscribe(
            subs(json!([
                {"index":1,"type":"callRoster","call":call.call,"elements":["name","uri","state","importance"]},
                {"index":2,"type":"callInfo","call":call.call,"elements":["name","participants","streaming"]},
                {"index":3,"type":"calls","elements":["name","participants"]}
            ])),
            &m,
        );
        assert!(s.queue.is_empty());
        let changes = m.end_call(&call.call).expect("end");
        apply(&mut s, &changes);
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"callListUpdate","subscriptionIndex":3,"updates":[{"call":call.call,"updateType":"remove"}]}),
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":1,"state":"deactivated"},{"index":2,"state":"deactivated"}]}),
            ]
        );
    }

    #[test]
    fn unknown_call_left_out_and_reindexed() {
        let mut m = Model::default();
        let (call, _) = m.create_call(&CmsCallFields::default()).expect("call");
        let mut s = Session::default();
        s.subscribe(
            subs(json!([
                {"index":1,"type":"callRoster","call":"nope"},
                {"index":2,"type":"calls"}
            ])),
            &m,
        );
        let got = drain(&mut s);
        assert_eq!(
            got[1],
            json!({"type":"subscriptionUpdate","subscriptions":[{"index":1,"state":"deactivated"},{"index":2,"state":"active"}]})
        );
        assert_eq!(
            got[2],
            json!({"type":"callListUpdate","subscriptionIndex":2,"updates":[{"call":call.call,"updateType":"add"}]})
        );
        // calls under a new index: a new subscription; index 2 is torn down; index 1 was already
        // deactivated and is dropped silently.
        s.subscribe(subs(json!([{"index":5,"type":"calls"}])), &m);
        let got = drain(&mut s);
        assert_eq!(
            got[0],
            json!({"type":"subscriptionUpdate","subscriptions":[{"index":2,"state":"deactivated"},{"index":5,"state":"pending"}]})
        );
        assert_eq!(got.len(), 3);
        // Changed elements under the same index: pending, active, the state again.
        s.subscribe(
            subs(json!([{"index":5,"type":"calls","elements":["name"]}])),
            &m,
        );
        let got = drain(&mut s);
        assert_eq!(
            got[0],
            json!({"type":"subscriptionUpdate","subscriptions":[{"index":5,"state":"pending"}]})
        );
        assert_eq!(got[2]["updates"][0]["name"], "Call");
        // Empty set: everything deactivated.
        s.subscribe(Vec::new(), &m);
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"subscriptionUpdate","subscriptions":[{"index":5,"state":"deactivated"}]})
            ]
        );
        assert!(s.subs.is_empty());
    }

    #[test]
    fn updates_carry_only_changed_subscribed_elements() {
        let mut m = Model::default();
        let (call, _) = m.create_call(&CmsCallFields::default()).expect("call");
        let (p, _) = m
            .add_participant(&call.call, &CmsParticipantFields::default(), None)
            .expect("p");
        let mut s = Session::default();
        s.subscribe(
            subs(json!([
                {"index":1,"type":"callRoster","call":call.call,"elements":["audioMuted","importance"]},
                {"index":2,"type":"calls","elements":["lockState"]}
            ])),
            &m,
        );
        drain(&mut s);
        let (_, changes) = m
            .update_participant(
                &call.call,
                &p.participant,
                &CmsParticipantFields {
                    video_muted: Some(true),
                    ..CmsParticipantFields::default()
                },
            )
            .expect("update");
        apply(&mut s, &changes);
        assert!(s.queue.is_empty(), "videoMuted is not subscribed");
        let (_, changes) = m
            .update_participant(
                &call.call,
                &p.participant,
                &CmsParticipantFields {
                    audio_muted: Some(true),
                    importance: Some(Some(2)),
                    ..CmsParticipantFields::default()
                },
            )
            .expect("update");
        apply(&mut s, &changes);
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"rosterUpdate","subscriptionIndex":1,"updates":[
                {"participant":p.participant,"updateType":"update","audioMuted":true,"importance":2}]})
            ]
        );
        let (_, changes) = m
            .update_call(
                &call.call,
                &CmsCallFields {
                    lock_state: Some("locked".into()),
                    ..CmsCallFields::default()
                },
            )
            .expect("lock");
        apply(&mut s, &changes);
        assert_eq!(
            drain(&mut s),
            vec![
                json!({"type":"callListUpdate","subscriptionIndex":2,"updates":[
                {"call":call.call,"updateType":"update","lockState":"locked"}]})
            ]
        );
    }

    #[test]
    fn invalid_requests() {
        for bad in [
            json!({}),
            json!({"subscriptions":[{"index":-1,"type":"calls"}]}),
            json!({"subscriptions":[{"index":1,"type":"calls"},{"index":1,"type":"calls"}]}),
            json!({"subscriptions":[{"index":1,"type":"rooms"}]}),
            json!({"subscriptions":[{"index":1,"type":"callInfo"}]}),
            json!({"subscriptions":[{"index":1,"type":"calls","elements":"name"}]}),
            json!({"subscriptions":[{"index":1,"type":"calls","elements":[1]}]}),
        ] {
            assert!(parse_subscriptions(&bad).is_err(), "{bad}");
        }
    }
}
