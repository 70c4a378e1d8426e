//! Participant moves (seed 002): Locus moves the device from the call it is in to another
//! meeting. The core leaves the old locus, then joins the destination with a new correlation
//! id as the same call; mute and layout stay as they are in the room. Each move ends in a
//! [`MoveRecord`] and a notice for the room.

use super::core::{CallCore, MoveInProgress};
use super::diagnostics as diag;
use super::messages::{Action, CallEvent, LocusRequest};
use super::state::{CallState, EndCause};
use super::status::{CallKind, MoveOutcome, MoveRecord};
use crate::locus::tracker::LocusTracker;
use crate::platform::logging::message_id;
use crate::proto::locus::{JoinAnswer, LocusDto};

/// Moves kept in status.
const MOVES_KEPT: usize = 5;

impl CallCore {
    /// A `locus.participant_moved` event: its DTO is the destination, `replaces` names the
    /// locus the device leaves.
    pub(super) fn moved(&mut self, destination: LocusDto) {
        let Some(index) = self.calls.iter().position(|c| {
            c.locus_url()
                .is_some_and(|url| destination.replaces.iter().any(|r| r.locus_url == url))
        }) else {
            tracing::info!(
                "move to {} names no locus this device is in: ignored",
                destination.url
            );
            return;
        };
        if !self.status().available {
            return;
        }
        let moved = destination
            .self_
            .as_ref()
            .and_then(|p| p.reason.as_deref())
            .is_some_and(|r| r.eq_ignore_ascii_case("MOVED"));
        if !moved {
            tracing::warn!(
                "a locus.participant_moved event whose self reason is not MOVED: moving anyway"
            );
        }
        let name = destination
            .display_name()
            .unwrap_or("the new meeting")
            .to_owned();
        let to = destination.url.clone();
        let call = &mut self.calls[index];
        let (id, attempt) = (call.id, call.attempt);
        let from = call.locus_url().unwrap_or_default().to_owned();
        tracing::info!(
            message_id = message_id::PARTICIPANT_MOVED,
            call_id = id,
            "Call {id}: moved by the meeting from {from} to {to} ({name}); leaving the old call"
        );
        let Some(request) = call.leave_request() else {
            return;
        };
        call.diagnostic(diag::CALL_LEAVE);
        // Held from the leave until the join's connectivity check is done.
        call.holds += 1;
        call.moving = Some(MoveInProgress { from, to, name });
        self.push_locus(id, attempt, request);
    }

    /// The old locus answered the move's leave.
    pub(super) fn move_left(&mut self, id: u32, result: Result<(), String>) {
        let Some(call) = self.call_mut(id) else {
            return;
        };
        let Some(moving) = call.moving.clone() else {
            return;
        };
        if let Err(e) = result {
            call.moving = None;
            let detail = format!(
                "nothing happened: leaving the old call failed ({e}); still in the first call"
            );
            tracing::error!(call_id = id, "move of call {id} failed: {detail}");
            self.move_outcome(
                record(
                    id,
                    &moving,
                    MoveOutcome::NothingHappened,
                    Some(detail.clone()),
                ),
                &detail,
            );
            self.release(id);
            return;
        }
        // Presentation does not carry over a move (seed 002); roomd does not share yet.
        self.actions.push(Action::StopMedia { call_id: id });
        let plan = self.new_plan();
        let Some(index) = self.calls.iter().position(|c| c.id == id) else {
            return;
        };
        let call = &mut self.calls[index];
        call.plan = plan;
        call.attempt += 1;
        call.correlation_id = uuid::Uuid::new_v4().to_string();
        call.tracker = LocusTracker::new();
        call.state = CallState::Connecting;
        call.connected_at = None;
        call.display_name = moving.name.clone();
        call.kind = CallKind::Meeting;
        call.joining = true;
        call.diagnostic(diag::CALL_INITIATED);
        call.diagnostic(diag::LOCAL_SDP_GENERATED);
        call.diagnostic(diag::JOIN_REQUEST);
        let attempt = call.attempt;
        let offer = self.new_offer(&self.calls[index]);
        self.push_locus(
            id,
            attempt,
            LocusRequest::Join {
                locus_url: moving.to,
                offer,
            },
        );
    }

    /// The destination answered the move's join.
    pub(super) fn move_joined(&mut self, id: u32, answer: Result<JoinAnswer, String>) {
        let Some(moving) = self.call_mut(id).and_then(|c| c.moving.take()) else {
            return;
        };
        let name = &moving.name;
        match answer {
            Err(e) => {
                let detail = format!("dropped but not reconnected: joining {name} failed ({e})");
                tracing::error!(call_id = id, "move of call {id} failed: {detail}");
                self.move_outcome(
                    record(
                        id,
                        &moving,
                        MoveOutcome::DroppedNotReconnected,
                        Some(detail.clone()),
                    ),
                    &detail,
                );
                self.end(id, EndCause::MoveFailed, Some(detail));
            }
            Ok(answer) => {
                let landed = answer.locus.url.clone();
                let landed_name = answer
                    .locus
                    .display_name()
                    .unwrap_or(landed.as_str())
                    .to_owned();
                self.joined(id, Ok(answer));
                if landed != moving.to {
                    let detail = format!(
                        "connected to the wrong meeting: asked to join {name} ({}), now in {landed_name} ({landed})",
                        moving.to
                    );
                    tracing::error!(call_id = id, "move of call {id}: {detail}");
                    self.move_outcome(
                        record(id, &moving, MoveOutcome::WrongMeeting, Some(detail.clone())),
                        &detail,
                    );
                } else {
                    let text = format!("You have been moved to a new call. Now in {name}");
                    tracing::info!(call_id = id, "{text}");
                    self.move_outcome(record(id, &moving, MoveOutcome::Moved, None), &text);
                }
            }
        }
    }

    fn move_outcome(&mut self, record: MoveRecord, notice: &str) {
        let call_id = record.call_id;
        let status = &mut self.status;
        status.notice = Some(notice.to_owned());
        status.moves.push(record);
        let excess = status.moves.len().saturating_sub(MOVES_KEPT);
        status.moves.drain(..excess);
        self.actions.push(Action::Event(CallEvent::Notice {
            call_id,
            text: notice.to_owned(),
        }));
    }
}

fn record(
    call_id: u32,
    moving: &MoveInProgress,
    outcome: MoveOutcome,
    detail: Option<String>,
) -> MoveRecord {
    MoveRecord {
        call_id,
        outcome,
        from: moving.from.clone(),
        to: moving.to.clone(),
        name: moving.name.clone(),
        detail,
    }
}
