//! `xCommand/<Path…>`: the command table of `docs/xapi.md`, backed by the daemon's real state
//! (bookings, room controls, activation). Paths and argument names are case-insensitive.

use serde_json::{Map, Value, json};

use super::auth::Role;
use crate::activation::code::ActivationCode;
use crate::bookings::store::BookingsStore;
use crate::bookings::view;
use crate::proto::jsonrpc::{COMMAND_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, PERMISSION_DENIED};
use crate::room::{DEFAULT_VOLUME_STEPS, DialRequest, Room};
use crate::session::SessionHandle;

/// What a command needs from the daemon.
#[derive(Debug, Clone)]
pub struct Backends {
    pub room: Room,
    pub bookings: BookingsStore,
    pub session: SessionHandle,
}

/// A failed command: the JSON-RPC error code and the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub code: i64,
    pub message: String,
}

impl CommandError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn failed(message: impl ToString) -> Self {
        Self::new(COMMAND_ERROR, message.to_string())
    }
}

/// Arguments (and xGet/xSet/xFeedback params), looked up case-insensitively by name.
pub(super) struct Args<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Args<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The argument, or −32602 "Missing required parameter: <name>".
    pub(super) fn required(&self, name: &str) -> Result<&'a Value, CommandError> {
        self.get(name).ok_or_else(|| missing(name))
    }

    fn text(&self, name: &str) -> Result<Option<String>, CommandError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(CommandError::new(
                INVALID_PARAMS,
                format!("{name}: expected a string, got {other}"),
            )),
        }
    }

    fn required_text(&self, name: &str) -> Result<String, CommandError> {
        self.text(name)?.ok_or_else(|| {
            CommandError::new(
                INVALID_PARAMS,
                format!("Missing required parameter: {name}"),
            )
        })
    }

    /// An integer argument in `range` (numbers or numeric strings, as RoomOS accepts both).
    fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, CommandError> {
        let value = match self.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(CommandError::new(
                INVALID_PARAMS,
                format!(
                    "{name}: expected an integer {}..{}, got {}",
                    range.start(),
                    range.end(),
                    self.get(name).map(Value::to_string).unwrap_or_default()
                ),
            )),
        }
    }
}

fn missing(name: &str) -> CommandError {
    CommandError::new(
        INVALID_PARAMS,
        format!("Missing required parameter: {name}"),
    )
}

/// Runs `xCommand/<path>` as `user` with `role`.
pub async fn execute(
    backends: &Backends,
    role: Role,
    user: &str,
    path: &[String],
    params: &Map<String, Value>,
) -> Result<Value, CommandError> {
    let key = path
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let args = Args(params);
    let room = &backends.room;
    let ok = || Ok(json!({}));
    // Any command is someone using the room (a touch on the panel is one), except asking
    // for standby itself.
    if key != "standby activate" {
        room.wake(&format!("xapi:{user}"));
    }
    match key.as_str() {
        "standby activate" => room
            .standby(&format!("xapi:{user}"))
            .map(|()| json!({}))
            .map_err(CommandError::failed),
        "standby deactivate" | "standby resettimer" => ok(),
        "bookings list" => {
            let limit = args.integer("Limit", 1..=1000)?.map(|v| v as usize);
            let offset = args.integer("Offset", 0..=100_000)?.unwrap_or(0) as usize;
            let buffer = backends.bookings.start_buffer_secs();
            let mut list = backends
                .bookings
                .read(|model| view::bookings_list(model, buffer));
            let mut result = list["BookingsListResult"].take();
            if let Some(Value::Array(items)) = result.get_mut("Booking") {
                let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
                *items = items.drain(..).take(end).skip(offset).collect();
            }
            Ok(result)
        }
        "bookings get" => {
            let id = args.required_text("Id")?;
            let buffer = backends.bookings.start_buffer_secs();
            let list = backends
                .bookings
                .read(|model| view::bookings_list(model, buffer));
            list["BookingsListResult"]["Booking"]
                .as_array()
                .and_then(|items| items.iter().find(|b| b["Id"] == id.as_str()))
                .map(|booking| json!({ "Booking": booking }))
                .ok_or_else(|| CommandError::failed(format!("No booking with Id {id:?}")))
        }
        "dial" => {
            let number = args.text("Number")?;
            let booking_id = args.text("BookingId")?;
            if let Some(call_type) = args.text("CallType")? {
                if !["audio", "video", "auto"]
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&call_type))
                {
                    return Err(CommandError::new(
                        INVALID_PARAMS,
                        format!("CallType: expected Audio or Video, got {call_type:?}"),
                    ));
                }
            }
            room.dial(DialRequest {
                number,
                booking_id,
                source: format!("xapi:{user}"),
            })
            .await
            .map(|outcome| json!({ "CallId": outcome.call_id, "ConferenceId": outcome.conference_id }))
            .map_err(CommandError::failed)
        }
        "call accept" | "call reject" | "call disconnect" | "call hold" | "call resume"
        | "call dtmfsend" => {
            let call_id = args
                .integer("CallId", 1..=i64::from(u32::MAX))?
                .map(|v| v as u32);
            let calls = room.calls();
            let done = match key.as_str() {
                "call accept" => calls.accept(call_id).await,
                "call reject" => calls.reject(call_id).await,
                "call disconnect" => calls.disconnect(call_id).await,
                "call hold" => calls.hold(call_id, true).await,
                "call resume" => calls.hold(call_id, false).await,
                _ => {
                    let tones = args.required_text("DTMFString")?;
                    calls.send_dtmf(call_id, &tones).await
                }
            };
            done.map(|()| json!({})).map_err(CommandError::failed)
        }
        "audio volume set" => {
            let level = args
                .integer("Level", 0..=100)?
                .ok_or_else(|| missing("Level"))?;
            room.set_volume(level as u8);
            ok()
        }
        "audio volume increase" | "audio volume decrease" => {
            let steps = args
                .integer("Steps", 1..=10)?
                .unwrap_or(i64::from(DEFAULT_VOLUME_STEPS)) as i16;
            let signed = if key.ends_with("increase") {
                steps
            } else {
                -steps
            };
            room.step_volume(signed);
            ok()
        }
        "audio volume mute" => {
            room.set_speaker_muted(true);
            ok()
        }
        "audio volume unmute" => {
            room.set_speaker_muted(false);
            ok()
        }
        "audio microphones mute" => {
            room.set_microphones_muted(true);
            ok()
        }
        "audio microphones unmute" => {
            room.set_microphones_muted(false);
            ok()
        }
        "audio microphones togglemute" => {
            room.toggle_microphones();
            ok()
        }
        "video selfview set" => {
            let mode = args.required_text("Mode")?;
            let on = match mode.to_ascii_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(CommandError::new(
                        INVALID_PARAMS,
                        format!("Mode: {mode:?} is not On or Off"),
                    ));
                }
            };
            room.set_selfview(on);
            ok()
        }
        "video layout layoutfamily set" => {
            let family = args.required_text("LayoutFamily")?;
            room.set_layout_family(&family)
                .map_err(|e| CommandError::new(INVALID_PARAMS, e.to_string()))?;
            ok()
        }
        "systemunit activate" => {
            if role != Role::Admin {
                return Err(CommandError::new(PERMISSION_DENIED, "Permission denied"));
            }
            let code = ActivationCode::parse(&args.required_text("Code")?)
                .map_err(|e| CommandError::new(INVALID_PARAMS, format!("Code: {e}")))?;
            backends
                .session
                .activate(code)
                .await
                .map(|activated| json!({ "Message": activated.to_string() }))
                .map_err(CommandError::failed)
        }
        _ => Err(CommandError::new(
            METHOD_NOT_FOUND,
            format!("Unknown command: {}", path.join(" ")),
        )),
    }
}
