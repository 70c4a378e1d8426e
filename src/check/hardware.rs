//! Hardware checks: where each GPIO role's line is and whether roomd can have it, and the
//! camera and microphone device nodes the board names. Lines are only listed (the kernel's
//! line info), never requested, and device nodes are only looked at, never opened: a
//! running daemon holding them must not be disturbed.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use gpio_cdev::Chip;

use super::{CheckLine, fail, ok};
use crate::hw::board::{Board, BoardGpio, ElementSpec, GpioBackend};
use crate::hw::gpio::{LineAddress, LineListing, locate_lines};

// The consumer label `hw::gpio::cdev` requests lines with (`gpioinfo` shows it).
use crate::hw::gpio::cdev::CONSUMER as ROOMD_CONSUMER;

/// One line per GPIO role of the board.
pub fn gpio_lines(board: &Board, daemon_running: bool) -> Vec<CheckLine> {
    match board.gpio.backend {
        GpioBackend::Sim => board
            .gpio
            .lines
            .iter()
            .map(|(role, name)| {
                ok(format!(
                    "GPIO {role}: line {name:?} is simulated in process (gpio.backend = \"sim\")"
                ))
            })
            .collect(),
        GpioBackend::Cdev => match scan(&board.gpio) {
            Ok(scan) => cdev_lines(&board.gpio, &scan, daemon_running),
            Err(line) => vec![line],
        },
    }
}

/// A line as the kernel lists it, with who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineUse {
    pub listing: LineListing,
    /// `Some(consumer)` when requested; the consumer label may be empty.
    pub holder: Option<String>,
}

/// What the scan of the GPIO chips found.
#[derive(Debug, Default)]
pub(crate) struct ChipScan {
    pub lines: Vec<LineUse>,
    /// Chips that could not be opened, with why; a role's line may be on one of them.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Lists `gpio.chip` (or every `/dev/gpiochip*`) as `hw::gpio::cdev` does when it opens
/// the board, but only reads line info.
fn scan(gpio: &BoardGpio) -> Result<ChipScan, CheckLine> {
    let chips: Vec<(String, PathBuf)> = match &gpio.chip {
        Some(key) if key.starts_with('/') => vec![(key.clone(), PathBuf::from(key))],
        Some(key) => vec![(key.clone(), Path::new("/dev").join(key))],
        None => {
            let entries = std::fs::read_dir("/dev")
                .map_err(|e| fail(format!("GPIO: cannot list the GPIO chips in /dev: {e}")))?;
            let mut chips: Vec<_> = entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.starts_with("gpiochip").then(|| (name, entry.path()))
                })
                .collect();
            chips.sort();
            chips
        }
    };
    let mut scan = ChipScan::default();
    for (key, path) in chips {
        let listed = Chip::new(&path).and_then(|chip| {
            chip.lines()
                .map(|line| {
                    let info = line.info()?;
                    Ok(LineUse {
                        listing: LineListing {
                            chip: key.clone(),
                            offset: line.offset(),
                            name: info.name().map(str::to_string),
                        },
                        holder: info
                            .is_used()
                            .then(|| info.consumer().unwrap_or_default().to_string()),
                    })
                })
                .collect::<Result<Vec<_>, gpio_cdev::Error>>()
        });
        match listed {
            Ok(lines) => scan.lines.extend(lines),
            Err(e) => scan.unreadable.push((path, e.to_string())),
        }
    }
    Ok(scan)
}

/// Per role: where its line is and whether it is free, held by roomd, or taken.
pub(crate) fn cdev_lines(
    gpio: &BoardGpio,
    scan: &ChipScan,
    daemon_running: bool,
) -> Vec<CheckLine> {
    let listing: Vec<LineListing> = scan.lines.iter().map(|l| l.listing.clone()).collect();
    let holders: BTreeMap<(&str, u32), &Option<String>> = scan
        .lines
        .iter()
        .map(|l| ((l.listing.chip.as_str(), l.listing.offset), &l.holder))
        .collect();
    let mut lines: Vec<CheckLine> = scan
        .unreadable
        .iter()
        .map(|(path, e)| {
            fail(format!(
                "GPIO chip {}: cannot open: {e} (run as root or as a user with access to it)",
                path.display()
            ))
        })
        .collect();
    if scan.lines.is_empty() && scan.unreadable.is_empty() {
        // Only without `gpio.chip`: a named chip that cannot be opened is `unreadable`.
        lines.push(fail(format!(
            "GPIO: no /dev/gpiochip* at all, and the board's {} GPIO roles need one: \
             is the GPIO driver loaded?",
            gpio.lines.len()
        )));
        return lines;
    }
    for (&role, name) in &gpio.lines {
        // One role at a time, so every role gets its own line even when others are missing.
        let single = BoardGpio {
            backend: gpio.backend,
            chip: gpio.chip.clone(),
            lines: BTreeMap::from([(role, name.clone())]),
        };
        let address = match locate_lines(&single, &listing) {
            Ok(mut found) => found.remove(&role).expect("located role"),
            Err(e) => {
                lines.push(fail(format!("GPIO {e}")));
                continue;
            }
        };
        let LineAddress { chip, offset } = &address;
        let at = format!("GPIO {role}: line {name:?} is {address}");
        lines.push(match holders.get(&(chip.as_str(), *offset)) {
            Some(None) | None => ok(format!("{at}, free")),
            Some(Some(holder)) if holder == ROOMD_CONSUMER => ok(if daemon_running {
                format!("{at}, held by the running roomd")
            } else {
                format!("{at}, held by another roomd process")
            }),
            Some(Some(holder)) if holder.is_empty() => fail(format!(
                "{at}, in use by an unnamed consumer (the kernel or another program): roomd cannot request it"
            )),
            Some(Some(holder)) => fail(format!(
                "{at}, in use by {holder:?}: roomd cannot request it"
            )),
        });
    }
    lines
}

/// The camera's and microphone's device nodes, when the board's element properties name
/// them (`device = "/dev/video0"`, ALSA `device = "hw:1,0"`). Test sources name none.
pub fn device_node_lines(board: &Board) -> Vec<CheckLine> {
    [
        ("camera", &board.media.camera, NodeKind::Capture),
        (
            "microphone",
            &board.media.microphone,
            NodeKind::AudioCapture,
        ),
    ]
    .into_iter()
    .filter_map(|(role, spec, kind)| {
        let device = device_property(spec)?;
        Some(node_line(role, device, node_path(device, kind)))
    })
    .collect()
}

#[derive(Debug, Clone, Copy)]
enum NodeKind {
    Capture,
    AudioCapture,
}

fn device_property(spec: &ElementSpec) -> Option<&str> {
    spec.properties
        .get("device")
        .map(String::as_str)
        .filter(|d| !d.is_empty())
}

/// The node a `device` property stands for: a path as is, ALSA `hw:C,D` / `plughw:C,D`
/// as its capture PCM. Other ALSA names (`default`, `CARD=...`) map to no fixed node.
fn node_path(device: &str, kind: NodeKind) -> Option<PathBuf> {
    if device.starts_with('/') {
        return Some(PathBuf::from(device));
    }
    let NodeKind::AudioCapture = kind else {
        return None;
    };
    let numbers = device
        .strip_prefix("hw:")
        .or_else(|| device.strip_prefix("plughw:"))?;
    let (card, pcm) = numbers.split_once(',').unwrap_or((numbers, "0"));
    let card: u32 = card.trim().parse().ok()?;
    let pcm: u32 = pcm.trim().parse().ok()?;
    Some(PathBuf::from(format!("/dev/snd/pcmC{card}D{pcm}c")))
}

fn node_line(role: &str, device: &str, node: Option<PathBuf>) -> CheckLine {
    let Some(node) = node else {
        return ok(format!(
            "{role}: device {device:?} has no fixed device node to check"
        ));
    };
    let shown = if node.as_os_str() == device {
        format!("{role}: device node {}", node.display())
    } else {
        format!("{role}: device node {} ({device})", node.display())
    };
    match std::fs::metadata(&node) {
        Ok(meta) if meta.file_type().is_char_device() => ok(format!("{shown} is present")),
        Ok(_) => fail(format!("{shown} is not a character device")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(format!(
            "{shown} does not exist (driver not loaded, or not plugged in?)"
        )),
        Err(e) => fail(format!("{shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Outcome;
    use crate::hw::board::GpioRole;

    fn line(chip: &str, offset: u32, name: &str, holder: Option<&str>) -> LineUse {
        LineUse {
            listing: LineListing {
                chip: chip.into(),
                offset,
                name: Some(name.into()),
            },
            holder: holder.map(str::to_string),
        }
    }

    fn texts(lines: &[CheckLine]) -> Vec<(Outcome, &str)> {
        lines.iter().map(|l| (l.outcome, l.text.as_str())).collect()
    }

    #[test]
    fn each_role_says_where_its_line_is_and_who_holds_it() {
        let gpio = BoardGpio {
            backend: GpioBackend::Cdev,
            chip: None,
            lines: BTreeMap::from([
                (GpioRole::StatusLed, "roomd-status-led".to_string()),
                (GpioRole::MuteLed, "roomd-mute-led".to_string()),
                (GpioRole::JoinButton, "roomd-join-button".to_string()),
                (GpioRole::MuteButton, "roomd-mute-button".to_string()),
                (GpioRole::PrivacySwitch, "roomd-privacy-switch".to_string()),
            ]),
        };
        let scan = ChipScan {
            lines: vec![
                line("gpiochip0", 0, "roomd-status-led", None),
                line("gpiochip0", 1, "roomd-mute-led", Some("roomd")),
                line("gpiochip0", 3, "roomd-join-button", Some("sysfs")),
                line("gpiochip0", 4, "roomd-mute-button", Some("")),
            ],
            unreadable: vec![(PathBuf::from("/dev/gpiochip1"), "Permission denied".into())],
        };
        assert_eq!(
            texts(&cdev_lines(&gpio, &scan, true)),
            [
                (
                    Outcome::Fail,
                    "GPIO chip /dev/gpiochip1: cannot open: Permission denied (run as root or as a user with access to it)"
                ),
                (
                    Outcome::Success,
                    "GPIO status_led: line \"roomd-status-led\" is gpiochip0 line 0, free"
                ),
                (
                    Outcome::Success,
                    "GPIO mute_led: line \"roomd-mute-led\" is gpiochip0 line 1, held by the running roomd"
                ),
                (
                    Outcome::Fail,
                    "GPIO join_button: line \"roomd-join-button\" is gpiochip0 line 3, in use by \"sysfs\": roomd cannot request it"
                ),
                (
                    Outcome::Fail,
                    "GPIO mute_button: line \"roomd-mute-button\" is gpiochip0 line 4, in use by an unnamed consumer (the kernel or another program): roomd cannot request it"
                ),
                (
                    Outcome::Fail,
                    "GPIO privacy_switch: line \"roomd-privacy-switch\" not found on any GPIO chip"
                ),
            ]
        );
        let held = cdev_lines(&gpio, &scan, false);
        assert_eq!(
            held[2].text,
            "GPIO mute_led: line \"roomd-mute-led\" is gpiochip0 line 1, held by another roomd process"
        );
    }

    #[test]
    fn no_chip_at_all_is_one_line() {
        let gpio = BoardGpio {
            backend: GpioBackend::Cdev,
            chip: None,
            lines: BTreeMap::from([(GpioRole::StatusLed, "led".to_string())]),
        };
        assert_eq!(
            texts(&cdev_lines(&gpio, &ChipScan::default(), false)),
            [(
                Outcome::Fail,
                "GPIO: no /dev/gpiochip* at all, and the board's 1 GPIO roles need one: \
                 is the GPIO driver loaded?"
            )]
        );
    }

    #[test]
    fn device_properties_map_to_nodes() {
        assert_eq!(
            node_path("/dev/video2", NodeKind::Capture),
            Some(PathBuf::from("/dev/video2"))
        );
        assert_eq!(
            node_path("hw:1,0", NodeKind::AudioCapture),
            Some(PathBuf::from("/dev/snd/pcmC1D0c"))
        );
        assert_eq!(
            node_path("plughw:2", NodeKind::AudioCapture),
            Some(PathBuf::from("/dev/snd/pcmC2D0c"))
        );
        assert_eq!(node_path("default", NodeKind::AudioCapture), None);
        assert_eq!(node_path("hw:1,0", NodeKind::Capture), None);
    }

    #[test]
    fn a_node_must_exist_and_be_a_character_device() {
        let null = node_line("camera", "/dev/null", Some(PathBuf::from("/dev/null")));
        assert_eq!(
            (null.outcome, null.text.as_str()),
            (Outcome::Success, "camera: device node /dev/null is present")
        );
        let missing = node_line(
            "microphone",
            "hw:9,0",
            Some(PathBuf::from("/nonexistent/pcmC9D0c")),
        );
        assert_eq!(missing.outcome, Outcome::Fail);
        assert_eq!(
            missing.text,
            "microphone: device node /nonexistent/pcmC9D0c (hw:9,0) does not exist (driver not loaded, or not plugged in?)"
        );
        let dir = node_line("camera", "/tmp", Some(PathBuf::from("/tmp")));
        assert_eq!(
            dir.text,
            "camera: device node /tmp is not a character device"
        );
    }
}
