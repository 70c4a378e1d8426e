//! Board files (`board/<name>.toml`): which GPIO line and which GStreamer element plays
//! each role on a given piece of hardware.
//!
//! Roles map to line *names* (as a device tree's `gpio-line-names` gives them), never to
//! chip offsets, so one binary serves every board. A role without a line is a start-up
//! error naming the board and the role.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, parse_checked};

/// A validated board: every required role has a line or element.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Board {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub gpio: BoardGpio,
    pub media: BoardMedia,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardGpio {
    pub backend: GpioBackend,
    /// Restrict the line lookup to this chip (`gpiochip0`); by default every chip is searched.
    pub chip: Option<String>,
    /// Line name per role; only roles the board has (optional roles may be absent).
    pub lines: BTreeMap<GpioRole, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardMedia {
    /// Video capture (`v4l2src`, `libcamerasrc`, a test source).
    pub camera: ElementSpec,
    /// Audio capture (`alsasrc`, a test source).
    pub microphone: ElementSpec,
    /// Audio output: far-end audio and the ring tone (`alsasink`, `filesink`, `fakesink`).
    pub speaker: ElementSpec,
    /// Video output: the composed layout (`kmssink`, `waylandsink`, `fakesink`).
    pub display: ElementSpec,
    pub video_encoder: ElementSpec,
    /// H.264 decoder; `None`: the first of `avdec_h264`, `openh264dec` that is installed.
    pub video_decoder: Option<ElementSpec>,
}

impl BoardMedia {
    /// Every role the board names, with its element (for checks and `roomd check`).
    pub fn roles(&self) -> Vec<(&'static str, &ElementSpec)> {
        let mut roles = vec![
            ("camera", &self.camera),
            ("microphone", &self.microphone),
            ("speaker", &self.speaker),
            ("display", &self.display),
            ("video_encoder", &self.video_encoder),
        ];
        if let Some(decoder) = &self.video_decoder {
            roles.push(("video_decoder", decoder));
        }
        roles
    }
}

/// A GStreamer element, the properties to set on it (as strings, parsed by GStreamer) and,
/// where the device needs them, the caps it produces or takes
/// (`video/x-raw,width=1280,height=720,framerate=30/1` after a `v4l2src`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ElementSpec {
    pub element: String,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<String>,
}

impl ElementSpec {
    /// An element with no properties and no caps.
    pub fn new(element: &str) -> Self {
        Self {
            element: element.to_owned(),
            properties: BTreeMap::new(),
            caps: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpioBackend {
    /// Lines simulated inside the process (development and tests without a GPIO chip).
    Sim,
    /// Linux GPIO character devices (`/dev/gpiochipN`).
    Cdev,
}

/// What a GPIO line does on this board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpioRole {
    StatusLed,
    MuteLed,
    MeetingLed,
    JoinButton,
    MuteButton,
    PrivacySwitch,
}

impl GpioRole {
    pub const ALL: [GpioRole; 6] = [
        GpioRole::StatusLed,
        GpioRole::MuteLed,
        GpioRole::MeetingLed,
        GpioRole::JoinButton,
        GpioRole::MuteButton,
        GpioRole::PrivacySwitch,
    ];

    pub fn key(self) -> &'static str {
        match self {
            GpioRole::StatusLed => "status_led",
            GpioRole::MuteLed => "mute_led",
            GpioRole::MeetingLed => "meeting_led",
            GpioRole::JoinButton => "join_button",
            GpioRole::MuteButton => "mute_button",
            GpioRole::PrivacySwitch => "privacy_switch",
        }
    }

    /// The "meeting available" LED is optional: not every board has one.
    pub fn required(self) -> bool {
        !matches!(self, GpioRole::MeetingLed)
    }

    pub fn is_output(self) -> bool {
        matches!(
            self,
            GpioRole::StatusLed | GpioRole::MuteLed | GpioRole::MeetingLed
        )
    }
}

impl fmt::Display for GpioRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Board problems, each naming the board (and role) at fault.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum BoardError {
    /// board name {0:?} is not valid (letters, digits, `-` and `_` only)
    BadName(String),
    /// board {name:?} not found: {path} does not exist
    NotFound { name: String, path: PathBuf },
    /// board {name:?}: {source}
    File { name: String, source: ConfigError },
    /// board {board:?} ({path}): role `{role}` has no GPIO line name
    MissingLine {
        board: String,
        path: PathBuf,
        role: GpioRole,
    },
    /// board {board:?} ({path}): role `{role}` has no GStreamer element
    MissingElement {
        board: String,
        path: PathBuf,
        role: &'static str,
    },
    /// board {board:?} ({path}): roles `{first}` and `{second}` share GPIO line {line:?}
    SharedLine {
        board: String,
        path: PathBuf,
        first: GpioRole,
        second: GpioRole,
        line: String,
    },
}

// The file as written; every key optional so a missing one is reported by role name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardFile {
    board: BoardInfo,
    #[serde(default)]
    gpio: GpioFile,
    #[serde(default)]
    media: MediaFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardInfo {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GpioFile {
    backend: Option<GpioBackend>,
    chip: Option<String>,
    #[serde(default)]
    lines: LinesFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LinesFile {
    status_led: Option<String>,
    mute_led: Option<String>,
    meeting_led: Option<String>,
    join_button: Option<String>,
    mute_button: Option<String>,
    privacy_switch: Option<String>,
}

impl LinesFile {
    fn get(&self, role: GpioRole) -> Option<&str> {
        let line = match role {
            GpioRole::StatusLed => &self.status_led,
            GpioRole::MuteLed => &self.mute_led,
            GpioRole::MeetingLed => &self.meeting_led,
            GpioRole::JoinButton => &self.join_button,
            GpioRole::MuteButton => &self.mute_button,
            GpioRole::PrivacySwitch => &self.privacy_switch,
        };
        line.as_deref().filter(|name| !name.trim().is_empty())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MediaFile {
    camera: Option<ElementSpec>,
    microphone: Option<ElementSpec>,
    speaker: Option<ElementSpec>,
    display: Option<ElementSpec>,
    video_encoder: Option<ElementSpec>,
    video_decoder: Option<ElementSpec>,
}

impl Board {
    /// Loads `board_dir/<name>.toml`.
    pub fn load(board_dir: &Path, name: &str) -> Result<Board, BoardError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(BoardError::BadName(name.to_string()));
        }
        let path = board_dir.join(format!("{name}.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BoardError::NotFound {
                    name: name.to_string(),
                    path,
                });
            }
            Err(source) => {
                return Err(BoardError::File {
                    name: name.to_string(),
                    source: ConfigError::Read { path, source },
                });
            }
        };
        Self::parse(&path, &text, name)
    }

    /// Parses and validates a board file's text; `name` is the board being looked for.
    pub fn parse(path: &Path, text: &str, name: &str) -> Result<Board, BoardError> {
        let file: BoardFile = parse_checked(path, text).map_err(|source| BoardError::File {
            name: name.to_string(),
            source,
        })?;
        let board = file.board.name;
        let mut lines = BTreeMap::new();
        for role in GpioRole::ALL {
            match file.gpio.lines.get(role) {
                Some(line) => {
                    if let Some((&first, _)) = lines.iter().find(|(_, l)| *l == line) {
                        return Err(BoardError::SharedLine {
                            board,
                            path: path.to_path_buf(),
                            first,
                            second: role,
                            line: line.to_string(),
                        });
                    }
                    lines.insert(role, line.to_string());
                }
                None if role.required() => {
                    return Err(BoardError::MissingLine {
                        board,
                        path: path.to_path_buf(),
                        role,
                    });
                }
                None => {}
            }
        }
        let element = |spec: Option<ElementSpec>, role: &'static str| {
            spec.filter(|s| !s.element.trim().is_empty())
                .ok_or_else(|| BoardError::MissingElement {
                    board: board.clone(),
                    path: path.to_path_buf(),
                    role,
                })
        };
        let media = BoardMedia {
            camera: element(file.media.camera, "camera")?,
            microphone: element(file.media.microphone, "microphone")?,
            speaker: element(file.media.speaker, "speaker")?,
            display: element(file.media.display, "display")?,
            video_encoder: element(file.media.video_encoder, "video_encoder")?,
            video_decoder: file
                .media
                .video_decoder
                .filter(|s| !s.element.trim().is_empty()),
        };
        Ok(Board {
            name: board,
            description: file.board.description,
            path: path.to_path_buf(),
            gpio: BoardGpio {
                backend: file.gpio.backend.unwrap_or(GpioBackend::Cdev),
                chip: file.gpio.chip,
                lines,
            },
            media,
        })
    }

    pub fn line(&self, role: GpioRole) -> Option<&str> {
        self.gpio.lines.get(&role).map(String::as_str)
    }
}
