//! What the people in the room can do, whichever way they ask (xAPI, touch panel, buttons):
//! speaker volume, microphone mute, layout, the privacy switch, and dialling (a number, or a
//! booking's join URI). One place, so the xAPI and the GPIO buttons cannot drift apart.

use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use crate::bookings::model::Booking;
use crate::bookings::store::BookingsStore;
use crate::calls::{CallError, CallState, Calls, DialOutcome, DialRecord};
use crate::media::{LayoutFamily, RoomControls};
use crate::platform::logging::message_id;
use crate::status::DeviceStatus;

/// Volume steps of `Audio Volume Increase/Decrease` without `Steps`.
pub const DEFAULT_VOLUME_STEPS: u8 = 5;

#[derive(Debug, Clone)]
pub struct Room {
    /// The room's controls, for media and call control to follow.
    controls: watch::Sender<RoomControls>,
    /// The device status: the controls are mirrored there (`Audio`, `Video`), dials recorded.
    status: watch::Sender<DeviceStatus>,
    bookings: BookingsStore,
    calls: Calls,
    /// The last touch (xAPI command, button press, call): the standby timer counts from it.
    activity: watch::Sender<Instant>,
}

/// A dial as asked for: a number, a booking, or both (the number then wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    pub number: Option<String>,
    pub booking_id: Option<String>,
    /// Who asked: `xapi:touchpanel`, `gpio:join_button`.
    pub source: String,
}

/// Why a room action did not happen; the text is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum RoomError {
    /// No booking with Id {0:?}
    NoSuchBooking(String),
    /// Booking {0} has no join URI to dial
    NoJoinUri(String),
    /// Nothing to dial: give a Number or a BookingId
    NothingToDial,
    /// No meeting to join now (no booking is inside its join window)
    NothingToJoin,
    /// {0}
    Call(#[from] CallError),
    /// Unknown layout family {0:?} (auto, equal, prominent, overlay or single)
    BadLayout(String),
    /// Standby is not possible during a call
    StandbyInCall,
}

impl Room {
    /// `controls` starts as the status's controls say (the configured default volume).
    pub fn new(
        controls: watch::Sender<RoomControls>,
        status: watch::Sender<DeviceStatus>,
        bookings: BookingsStore,
        calls: Calls,
    ) -> Self {
        let room = Self {
            controls,
            status,
            bookings,
            calls,
            activity: watch::Sender::new(Instant::now()),
        };
        room.mirror();
        room
    }

    /// Call control: accept, reject, disconnect, hold, resume, DTMF, call events.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    pub fn status(&self) -> watch::Receiver<DeviceStatus> {
        self.status.subscribe()
    }

    /// The room's controls as media and call control see them.
    pub fn controls(&self) -> watch::Receiver<RoomControls> {
        self.controls.subscribe()
    }

    /// Changes the controls; watchers (media, xAPI feedback, LEDs) wake only when they changed.
    fn change(&self, change: impl FnOnce(&mut RoomControls)) -> bool {
        let changed = self.controls.send_if_modified(|c| {
            let before = c.clone();
            change(c);
            *c != before
        });
        if changed {
            self.mirror();
        }
        changed
    }

    /// Copies the controls into the device status.
    fn mirror(&self) {
        let now = self.controls.borrow().clone();
        self.status.send_if_modified(|s| {
            let changed = s.controls != now;
            s.controls = now;
            changed
        });
    }

    pub fn set_volume(&self, level: u8) {
        self.change(|c| c.volume = level.min(100));
    }

    /// Moves the volume by `steps` (negative: down), clamped to 0..=100; returns the new level.
    pub fn step_volume(&self, steps: i16) -> u8 {
        let mut now = 0;
        self.change(|c| {
            now = (i16::from(c.volume) + steps).clamp(0, 100) as u8;
            c.volume = now;
        });
        now
    }

    pub fn set_speaker_muted(&self, muted: bool) {
        self.change(|c| c.speaker_muted = muted);
    }

    pub fn set_microphones_muted(&self, muted: bool) {
        if self.change(|c| c.microphones_muted = muted) {
            tracing::info!(
                muted,
                "microphones {}",
                if muted { "muted" } else { "unmuted" }
            );
        }
    }

    /// Flips microphone mute; returns the new state.
    pub fn toggle_microphones(&self) -> bool {
        let muted = !self.controls.borrow().microphones_muted;
        self.set_microphones_muted(muted);
        muted
    }

    pub fn set_layout_family(&self, family: &str) -> Result<(), RoomError> {
        let family =
            LayoutFamily::parse(family).ok_or_else(|| RoomError::BadLayout(family.to_owned()))?;
        self.change(|c| c.layout = family);
        Ok(())
    }

    /// Self-view: the camera's picture in a corner of the display during calls.
    pub fn set_selfview(&self, on: bool) {
        self.change(|c| c.selfview = on);
    }

    /// Someone used the room (`source`: `xapi:<user>`, `gpio:join_button`, `call`): wakes it
    /// from standby and restarts the standby timer.
    pub fn wake(&self, source: &str) {
        self.activity.send_replace(Instant::now());
        if self.change(|c| c.standby = false) {
            tracing::info!(source, "standby off: woken by {source}");
        }
    }

    /// `Standby Activate`: display and camera off until a call, a touch or a button.
    pub fn standby(&self, source: &str) -> Result<(), RoomError> {
        if !self.status.borrow().calls.active.is_empty() {
            return Err(RoomError::StandbyInCall);
        }
        if self.change(|c| c.standby = true) {
            tracing::info!(source, "standby on ({source})");
        }
        Ok(())
    }

    /// When the room was last used.
    pub fn activity(&self) -> watch::Receiver<Instant> {
        self.activity.subscribe()
    }

    /// The privacy switch: closed turns the camera off.
    pub fn set_camera_off(&self, off: bool) {
        if self.change(|c| c.camera_off = off) {
            tracing::info!(
                message_id = message_id::PRIVACY_SWITCH,
                camera_off = off,
                "privacy switch {}: camera {}",
                if off { "closed" } else { "opened" },
                if off { "off" } else { "on" }
            );
        }
    }

    /// Resolves what to dial, records it, and hands it to call control.
    pub async fn dial(&self, request: DialRequest) -> Result<DialOutcome, RoomError> {
        let booking_number = match &request.booking_id {
            Some(id) => Some(self.booking_number(id)?),
            None => None,
        };
        let number = request
            .number
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or(booking_number)
            .ok_or(RoomError::NothingToDial)?;
        tracing::info!(
            message_id = message_id::DIAL_REQUESTED,
            number = %number,
            booking = request.booking_id.as_deref().unwrap_or(""),
            source = %request.source,
            "Dial requested: {number}{} by {}",
            request
                .booking_id
                .as_deref()
                .map(|b| format!(" (booking {b})"))
                .unwrap_or_default(),
            request.source
        );
        self.status.send_modify(|s| {
            s.calls.dial_requests += 1;
            s.calls.last_dial = Some(DialRecord {
                number: number.clone(),
                booking_id: request.booking_id.clone(),
                source: request.source.clone(),
                at: SystemTime::now(),
            });
        });
        Ok(self.calls.dial(&number).await?)
    }

    /// The join button: answers a ringing call, else dials the current OBTP booking (the
    /// earliest joinable one).
    pub async fn join_current(&self, source: &str) -> Result<(), RoomError> {
        let ringing = self
            .status
            .borrow()
            .calls
            .active
            .iter()
            .find(|c| c.status == CallState::Ringing)
            .map(|c| c.id);
        if let Some(id) = ringing {
            tracing::info!("{source}: answering the ringing call {id}");
            return Ok(self.calls.accept(Some(id)).await?);
        }
        let booking = {
            let status = self.status.borrow();
            status
                .bookings
                .current_id
                .clone()
                .filter(|id| status.bookings.joinable.contains(id))
                .or_else(|| status.bookings.joinable.first().cloned())
        };
        let Some(booking_id) = booking else {
            tracing::info!("{source}: {}", RoomError::NothingToJoin);
            return Err(RoomError::NothingToJoin);
        };
        self.dial(DialRequest {
            number: None,
            booking_id: Some(booking_id),
            source: source.to_owned(),
        })
        .await
        .map(|_| ())
    }

    fn booking_number(&self, xapi_id: &str) -> Result<String, RoomError> {
        self.bookings.read(|model| {
            let booking: &Booking = model
                .ordered()
                .into_iter()
                .find(|b| b.xapi_id().eq_ignore_ascii_case(xapi_id))
                .ok_or_else(|| RoomError::NoSuchBooking(xapi_id.to_owned()))?;
            booking
                .join_uri()
                .map(|(_, uri)| uri.shown().to_owned())
                .ok_or_else(|| RoomError::NoJoinUri(xapi_id.to_owned()))
        })
    }
}
