//! The Linux backend: lines found by name on the GPIO character devices.
//!
//! Outputs are `linux_embedded_hal::CdevPin`s. Inputs are [`CdevInput`]s over the
//! kernel's edge-event queue. `CdevPin` (linux-embedded-hal 0.5) cannot serve them: it
//! wraps a plain line handle, requested without edge detection, and implements only
//! `InputPin`/`OutputPin`. It has no async `Wait` (its `async-tokio` feature adds only an
//! async `DelayNs`) and no way to read edge events, so an input on it could only be polled:
//! an edge-driven button must not poll, and a press shorter than the poll period would be
//! lost where the kernel's queue keeps it.

use std::collections::BTreeMap;
use std::fmt;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin};
use embedded_hal_async::digital::Wait;
use futures_util::StreamExt;
use gpio_cdev::{AsyncLineEventHandle, Chip, EventRequestFlags, EventType, LineRequestFlags};
use linux_embedded_hal::CdevPin;

use super::{GpioError, MissingLine, MissingLines};
use crate::hw::board::{BoardGpio, GpioRole};

/// The consumer label the kernel shows for our lines (`gpioinfo`).
pub(crate) const CONSUMER: &str = "roomd";

/// One line as a chip lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineListing {
    /// The chip, as `/dev/<chip>` opens it (`gpiochip0`).
    pub chip: String,
    pub offset: u32,
    /// The line's name (device tree `gpio-line-names`); unnamed lines have none.
    pub name: Option<String>,
}

/// Where a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAddress {
    pub chip: String,
    pub offset: u32,
}

impl fmt::Display for LineAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.chip, self.offset)
    }
}

/// Finds every role's line by name in `listing` (only on `gpio.chip` if the board names
/// one). All roles not found are reported together, so one start-up names every
/// wiring mistake; a name found twice is an error rather than a guess.
pub fn locate_lines(
    gpio: &BoardGpio,
    listing: &[LineListing],
) -> Result<BTreeMap<GpioRole, LineAddress>, GpioError> {
    let on_board_chip = |entry: &&LineListing| gpio.chip.as_ref().is_none_or(|c| *c == entry.chip);
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for (&role, name) in &gpio.lines {
        let mut matches = listing
            .iter()
            .filter(on_board_chip)
            .filter(|entry| entry.name.as_deref() == Some(name.as_str()))
            .map(|entry| LineAddress {
                chip: entry.chip.clone(),
                offset: entry.offset,
            });
        match (matches.next(), matches.next()) {
            (Some(address), None) => {
                found.insert(role, address);
            }
            (Some(first), Some(second)) => {
                return Err(GpioError::AmbiguousLine {
                    role,
                    line: name.clone(),
                    first,
                    second,
                });
            }
            (None, _) => missing.push(MissingLine {
                role,
                line: name.clone(),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(GpioError::LinesNotFound(MissingLines {
            missing,
            chip: gpio.chip.clone(),
        }));
    }
    Ok(found)
}

/// The board's lines, requested from the kernel and ready for the drivers.
pub struct CdevLines {
    pub outputs: Vec<(GpioRole, CdevPin)>,
    pub inputs: Vec<(GpioRole, CdevInput)>,
}

// CdevPin has no Debug; the roles are what matters in a log anyway.
impl fmt::Debug for CdevLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdevLines")
            .field(
                "outputs",
                &self.outputs.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            )
            .field(
                "inputs",
                &self.inputs.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Finds and requests every line of the board: outputs start low (LEDs off), inputs
/// deliver both edges. Must run inside the tokio runtime (inputs register with its
/// reactor).
pub fn open_cdev(gpio: &BoardGpio) -> Result<CdevLines, GpioError> {
    let (mut chips, listing) = scan_chips(gpio.chip.as_deref())?;
    let addresses = locate_lines(gpio, &listing)?;
    let mut lines = CdevLines {
        outputs: Vec::new(),
        inputs: Vec::new(),
    };
    for (role, address) in addresses {
        let name = &gpio.lines[&role];
        let request_error = |source| GpioError::Request {
            role,
            line: name.clone(),
            address: address.clone(),
            source,
        };
        let chip = chips
            .get_mut(&address.chip)
            .expect("located lines are on scanned chips");
        let line = chip.get_line(address.offset).map_err(request_error)?;
        if role.is_output() {
            let handle = line
                .request(LineRequestFlags::OUTPUT, 0, CONSUMER)
                .map_err(request_error)?;
            let pin = CdevPin::new(handle).map_err(request_error)?;
            lines.outputs.push((role, pin));
        } else {
            let pin = CdevInput::request(&line).map_err(request_error)?;
            lines.inputs.push((role, pin));
        }
    }
    Ok(lines)
}

/// Opens `only` (`gpiochip0`, or a path) or else every `/dev/gpiochip*`, and lists the lines.
fn scan_chips(only: Option<&str>) -> Result<(BTreeMap<String, Chip>, Vec<LineListing>), GpioError> {
    let mut chips = BTreeMap::new();
    match only {
        Some(key) => {
            let path = if key.starts_with('/') {
                key.to_string()
            } else {
                format!("/dev/{key}")
            };
            let chip = Chip::new(&path).map_err(|source| GpioError::Chip {
                chip: key.to_string(),
                source,
            })?;
            chips.insert(key.to_string(), chip);
        }
        None => {
            for chip in gpio_cdev::chips().map_err(GpioError::ListChips)? {
                // One unreadable chip must not hide the lines on the others; if a role's
                // line was on it, the "not found" error follows this warning.
                match chip {
                    Ok(chip) => {
                        chips.insert(chip.name().to_string(), chip);
                    }
                    Err(e) => tracing::warn!(error = %e, "skipping a GPIO chip"),
                }
            }
        }
    }
    let mut listing = Vec::new();
    for (key, chip) in &chips {
        for line in chip.lines() {
            let info = line.info().map_err(|source| GpioError::Chip {
                chip: key.clone(),
                source,
            })?;
            listing.push(LineListing {
                chip: key.clone(),
                offset: line.offset(),
                name: info.name().map(str::to_string),
            });
        }
    }
    Ok((chips, listing))
}

/// Why a [`CdevInput`] read or wait failed.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum CdevInputError {
    /// GPIO line: {0}
    Line(#[from] gpio_cdev::Error),
    /// the GPIO line's event stream ended
    EventsEnded,
}

impl embedded_hal::digital::Error for CdevInputError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// An input line read through the kernel's edge-event queue: edges that happen while
/// the driver is busy wait in the kernel, so none is lost.
pub struct CdevInput {
    events: AsyncLineEventHandle,
}

// AsyncLineEventHandle has no Debug.
impl fmt::Debug for CdevInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.events.as_ref().line();
        f.debug_struct("CdevInput")
            .field("chip", &line.chip().name())
            .field("offset", &line.offset())
            .finish()
    }
}

impl CdevInput {
    /// Requests `line` as an input reporting both edges. Needs the tokio runtime.
    pub fn request(line: &gpio_cdev::Line) -> Result<Self, gpio_cdev::Error> {
        let events = line.async_events(
            LineRequestFlags::INPUT,
            EventRequestFlags::BOTH_EDGES,
            CONSUMER,
        )?;
        Ok(Self { events })
    }

    async fn next_edge(&mut self) -> Result<EventType, CdevInputError> {
        match self.events.next().await {
            Some(event) => Ok(event?.event_type()),
            None => Err(CdevInputError::EventsEnded),
        }
    }
}

impl ErrorType for CdevInput {
    type Error = CdevInputError;
}

impl InputPin for CdevInput {
    fn is_high(&mut self) -> Result<bool, CdevInputError> {
        // The kernel reports the logical value, so a line requested ACTIVE_LOW would
        // read inverted here; roomd requests lines as wired (active high).
        Ok(self.events.as_ref().get_value()? != 0)
    }

    fn is_low(&mut self) -> Result<bool, CdevInputError> {
        self.is_high().map(|high| !high)
    }
}

impl Wait for CdevInput {
    async fn wait_for_high(&mut self) -> Result<(), CdevInputError> {
        loop {
            if self.is_high()? || self.next_edge().await? == EventType::RisingEdge {
                return Ok(());
            }
        }
    }

    async fn wait_for_low(&mut self) -> Result<(), CdevInputError> {
        loop {
            if self.is_low()? || self.next_edge().await? == EventType::FallingEdge {
                return Ok(());
            }
        }
    }

    async fn wait_for_rising_edge(&mut self) -> Result<(), CdevInputError> {
        while self.next_edge().await? != EventType::RisingEdge {}
        Ok(())
    }

    async fn wait_for_falling_edge(&mut self) -> Result<(), CdevInputError> {
        while self.next_edge().await? != EventType::FallingEdge {}
        Ok(())
    }

    async fn wait_for_any_edge(&mut self) -> Result<(), CdevInputError> {
        self.next_edge().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::board::GpioBackend;

    fn listing(lines: &[(&str, u32, Option<&str>)]) -> Vec<LineListing> {
        lines
            .iter()
            .map(|&(chip, offset, name)| LineListing {
                chip: chip.to_string(),
                offset,
                name: name.map(str::to_string),
            })
            .collect()
    }

    fn board(chip: Option<&str>, roles: &[(GpioRole, &str)]) -> BoardGpio {
        BoardGpio {
            backend: GpioBackend::Cdev,
            chip: chip.map(str::to_string),
            lines: roles
                .iter()
                .map(|&(role, line)| (role, line.to_string()))
                .collect(),
        }
    }

    fn at(chip: &str, offset: u32) -> LineAddress {
        LineAddress {
            chip: chip.to_string(),
            offset,
        }
    }

    #[test]
    fn lines_are_found_by_name_on_any_chip() {
        let lines = listing(&[
            ("gpiochip0", 0, None),
            ("gpiochip0", 1, Some("roomd-status-led")),
            ("gpiochip1", 0, Some("other")),
            ("gpiochip1", 7, Some("roomd-join-button")),
        ]);
        let gpio = board(
            None,
            &[
                (GpioRole::StatusLed, "roomd-status-led"),
                (GpioRole::JoinButton, "roomd-join-button"),
            ],
        );
        let found = locate_lines(&gpio, &lines).unwrap();
        assert_eq!(found[&GpioRole::StatusLed], at("gpiochip0", 1));
        assert_eq!(found[&GpioRole::JoinButton], at("gpiochip1", 7));
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn every_missing_line_is_named_in_one_error() {
        let lines = listing(&[("gpiochip0", 0, Some("roomd-status-led"))]);
        let gpio = board(
            None,
            &[
                (GpioRole::StatusLed, "roomd-status-led"),
                (GpioRole::JoinButton, "roomd-join-button"),
                (GpioRole::PrivacySwitch, "roomd-privacy"),
            ],
        );
        let err = locate_lines(&gpio, &lines).unwrap_err();
        assert_eq!(
            err.to_string(),
            "join_button: line \"roomd-join-button\" not found on any GPIO chip; \
             privacy_switch: line \"roomd-privacy\" not found on any GPIO chip"
        );
    }

    #[test]
    fn a_board_chip_restricts_the_search() {
        let lines = listing(&[("gpiochip0", 3, Some("LED")), ("gpiochip2", 5, Some("LED"))]);
        let gpio = board(Some("gpiochip2"), &[(GpioRole::MuteLed, "LED")]);
        assert_eq!(
            locate_lines(&gpio, &lines).unwrap()[&GpioRole::MuteLed],
            at("gpiochip2", 5)
        );

        let gpio = board(Some("gpiochip1"), &[(GpioRole::MuteLed, "LED")]);
        assert_eq!(
            locate_lines(&gpio, &lines).unwrap_err().to_string(),
            "mute_led: line \"LED\" not found on gpiochip1"
        );
    }

    #[test]
    fn a_name_on_two_lines_is_an_error_not_a_guess() {
        let lines = listing(&[("gpiochip0", 3, Some("LED")), ("gpiochip2", 5, Some("LED"))]);
        let gpio = board(None, &[(GpioRole::MuteLed, "LED")]);
        assert_eq!(
            locate_lines(&gpio, &lines).unwrap_err().to_string(),
            "mute_led: line \"LED\" is both gpiochip0 line 3 and gpiochip2 line 5; \
             set `gpio.chip` in the board file"
        );
    }

    #[test]
    fn names_match_exactly() {
        let lines = listing(&[("gpiochip0", 0, Some("roomd-mute-led-2"))]);
        let gpio = board(None, &[(GpioRole::MuteLed, "roomd-mute-led")]);
        assert!(locate_lines(&gpio, &lines).is_err());
    }
}
