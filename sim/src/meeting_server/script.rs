//! The scripted conference: "Andy's coSpace" starts, three participants join one by one, the second
//! is moved (a remove, then an add of a new participant carrying `movedParticipant` and
//! `movedParticipantCallBridge`). The call stays up until it is ended through the admin API.
//!
//! Steps are separated by the acks: after each step the script waits until every open, non-silent
//! socket has sent everything and got every ack (at most `step_timeout_secs`). After the call
//! starts, if some socket has an active `calls` subscription, it also waits (as long) until some
//! socket has an active `callRoster` subscription for the call, so a client that discovers the call
//! through `callListUpdate` sees every join.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::{CmsResource, CmsSubscriptionState};
use super::{CmsCallFields, CmsError, CmsParticipantFields, Inner, MeetingServer};

/// `POST /admin/meeting-server/script` body; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmsScriptOptions {
    /// The call's GUID (default: a new one).
    pub call: Option<String>,
    /// Default `Andy's coSpace`.
    pub name: Option<String>,
    /// Longest wait for the acks (and for a roster subscription) after a step; default 10.
    pub step_timeout_secs: Option<u64>,
}

/// A scripted conference's plan and progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmsScript {
    pub call: String,
    pub name: String,
    /// The GUIDs of the three participants, in join order (the second is moved).
    pub participants: Vec<String>,
    /// The GUID of the participant the move creates.
    pub moved: String,
    /// The Call Bridge GUID the moved participant carries.
    pub bridge: String,
    /// What each step does.
    pub steps: Vec<String>,
    /// Steps done so far.
    pub completed: usize,
    /// Every step done (or the script failed).
    pub done: bool,
    /// Why the script stopped early (the call was ended meanwhile, the simulator stopped).
    pub error: Option<String>,
}

const PEOPLE: [(&str, &str, &str); 3] = [
    ("Alice", "alice", "incoming"),
    ("Bob", "bob", "outgoing"),
    ("Carol", "carol", "incoming"),
];

/// Default bound of each wait between steps.
const STEP_TIMEOUT_SECS: u64 = 10;

impl MeetingServer {
    /// Starts the script in the background; answers its plan at once.
    pub(crate) fn start_script(
        self: &Arc<Self>,
        opts: &CmsScriptOptions,
    ) -> Result<CmsScript, CmsError> {
        let call = opts
            .call
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let name = opts
            .name
            .clone()
            .unwrap_or_else(|| "Andy's coSpace".to_owned());
        let participants: Vec<String> = PEOPLE
            .iter()
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let script = CmsScript {
            call: call.clone(),
            name: name.clone(),
            participants,
            moved: uuid::Uuid::new_v4().to_string(),
            bridge: self.bridge.clone(),
            steps: vec![
                format!("call {name:?} starts"),
                "Alice joins (incoming)".to_owned(),
                "Bob joins (outgoing)".to_owned(),
                "Carol joins (incoming)".to_owned(),
                "Bob is moved: removed, then added again as a new participant".to_owned(),
            ],
            completed: 0,
            done: false,
            error: None,
        };
        self.with(|inner| {
            if inner.script.as_ref().is_some_and(|s| !s.done) {
                return Err(CmsError::Conflict("a script is already running".to_owned()));
            }
            if inner.model.call(&call).is_some() {
                return Err(CmsError::Conflict(format!("call {call} is already active")));
            }
            inner.script = Some(script.clone());
            Ok(())
        })?;
        let step_timeout =
            Duration::from_secs(opts.step_timeout_secs.unwrap_or(STEP_TIMEOUT_SECS).max(1));
        let cms = Arc::clone(self);
        let plan = script.clone();
        tokio::spawn(async move {
            let mut stopped = cms.stopped.subscribe();
            let result = tokio::select! {
                r = cms.run_script(&plan, step_timeout) => r,
                _ = stopped.wait_for(|s| *s) => Err(CmsError::Conflict("the simulator stopped".to_owned())),
            };
            cms.with(|inner| {
                if let Some(s) = inner.script.as_mut() {
                    s.done = true;
                    s.error = result.err().map(|e| e.to_string());
                }
            });
        });
        Ok(script)
    }

    async fn run_script(&self, plan: &CmsScript, step_timeout: Duration) -> Result<(), CmsError> {
        self.create_call(&CmsCallFields {
            call: Some(plan.call.clone()),
            name: Some(plan.name.clone()),
            call_type: Some("coSpace".to_owned()),
            ..CmsCallFields::default()
        })?;
        self.step_done(step_timeout).await;
        let call = plan.call.clone();
        let watched = self.read(|inner| {
            inner.conns.values().any(|c| {
                c.is_open()
                    && c.session.subs.values().any(|s| {
                        s.resource == CmsResource::Calls && s.state == CmsSubscriptionState::Active
                    })
            })
        });
        if watched {
            self.wait_inner(|inner| roster_watched(inner, &call), step_timeout)
                .await;
            self.wait_quiet(step_timeout).await;
        }
        for (i, (name, uri, direction)) in PEOPLE.iter().enumerate() {
            self.add_participant(
                &call,
                &CmsParticipantFields {
                    participant: Some(plan.participants[i].clone()),
                    name: Some((*name).to_owned()),
                    uri: Some((*uri).to_owned()),
                    direction: Some((*direction).to_owned()),
                    state: Some("connected".to_owned()),
                    can_move: Some(true),
                    ..CmsParticipantFields::default()
                },
            )?;
            self.step_done(step_timeout).await;
        }
        self.move_participant(&call, &plan.participants[1], None, Some(plan.moved.clone()))?;
        self.step_done(step_timeout).await;
        Ok(())
    }

    /// Waits for the acks, then counts the step.
    async fn step_done(&self, step_timeout: Duration) {
        self.wait_quiet(step_timeout).await;
        self.with(|inner| {
            if let Some(s) = inner.script.as_mut() {
                s.completed += 1;
            }
        });
    }

    async fn wait_quiet(&self, bound: Duration) {
        if !self.wait_inner(Inner::quiet, bound).await {
            tracing::info!("meeting server script: sockets still busy after {bound:?}; going on");
        }
    }
}

fn roster_watched(inner: &Inner, call: &str) -> bool {
    inner.conns.values().any(|c| {
        c.is_open()
            && c.session.subs.values().any(|s| {
                s.resource == CmsResource::CallRoster
                    && s.state == CmsSubscriptionState::Active
                    && s.call.as_deref() == Some(call)
            })
    })
}
