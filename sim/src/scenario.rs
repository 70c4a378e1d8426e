//! The scenario: what the simulated cloud knows (GDS state, devices, bookings, media clusters).
//!
//! Our own file format, TOML or JSON, so unknown keys are errors (typos must not be silently ignored).
//! Every section has a default, so an empty file is the default scenario.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Everything the simulator serves that a test may want to vary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The GDS health document's state.
    pub gds: GdsScenario,
    /// Devices that may activate (used by the activation service in later issues).
    pub devices: Vec<Device>,
    /// Calendar bookings; free-form until the calendar service lands.
    pub bookings: Vec<serde_json::Value>,
    /// Media clusters for reachability discovery.
    pub clusters: Vec<Cluster>,
}

/// `[gds]`: the state `GET /gds/health` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GdsScenario {
    /// `online` (default), `offline` or `degraded`; any other string is served as is.
    pub service_state: String,
}

impl Default for GdsScenario {
    fn default() -> Self {
        Self {
            service_state: "online".to_owned(),
        }
    }
}

/// `[[devices]]`: one device the activation service will accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// 16 digits, no separators (`4353450012345678`).
    pub activation_code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// `[[clusters]]`: one media cluster and its nodes (`ip:port`) per transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default)]
    pub udp: Vec<String>,
    #[serde(default)]
    pub tcp: Vec<String>,
    #[serde(default)]
    pub xtls: Vec<String>,
}

impl Scenario {
    /// Reads a scenario file; the extension (`.toml` or `.json`) picks the format.
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parsed = match ext.as_deref() {
            Some("toml") => Self::from_toml_str(&text),
            Some("json") => Self::from_json_str(&text),
            _ => bail!(
                "scenario {}: unknown format, the file name must end in .toml or .json",
                path.display()
            ),
        };
        parsed.with_context(|| format!("scenario {}", path.display()))
    }

    /// Parses and validates a TOML scenario.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let s: Self = toml::from_str(text).context("invalid TOML scenario")?;
        s.validate()?;
        Ok(s)
    }

    /// Parses and validates a JSON scenario.
    pub fn from_json_str(text: &str) -> anyhow::Result<Self> {
        let s: Self = serde_json::from_str(text).context("invalid JSON scenario")?;
        s.validate()?;
        Ok(s)
    }

    /// Checks what serde cannot: activation codes are 16 digits and unique, names are non-empty.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.gds.service_state.trim().is_empty() {
            bail!("gds.service_state must not be empty");
        }
        for (i, d) in self.devices.iter().enumerate() {
            let code = &d.activation_code;
            if code.len() != 16 || !code.bytes().all(|b| b.is_ascii_digit()) {
                bail!(
                    "devices[{i}].activation_code {code:?} must be exactly 16 digits without separators"
                );
            }
            if self.devices[..i].iter().any(|o| &o.activation_code == code) {
                bail!("devices[{i}].activation_code {code} appears twice");
            }
        }
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.trim().is_empty() {
                bail!("clusters[{i}].name must not be empty");
            }
            if self.clusters[..i].iter().any(|o| o.name == c.name) {
                bail!("clusters[{i}].name {:?} appears twice", c.name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_default() {
        let s = Scenario::from_toml_str("").expect("empty scenario");
        assert_eq!(s, Scenario::default());
        assert_eq!(s.gds.service_state, "online");
    }

    #[test]
    fn full_toml() {
        let s = Scenario::from_toml_str(
            r#"
            bookings = [{ id = "b1" }]
            [gds]
            service_state = "degraded"
            [[devices]]
            activation_code = "4353450012345678"
            name = "Room 1"
            [[clusters]]
            name = "c1"
            udp = ["127.0.0.1:3478"]
            "#,
        )
        .expect("scenario");
        assert_eq!(s.gds.service_state, "degraded");
        assert_eq!(s.devices[0].name.as_deref(), Some("Room 1"));
        assert_eq!(s.devices[0].model, None);
        assert_eq!(s.clusters[0].udp, vec!["127.0.0.1:3478"]);
        assert!(s.clusters[0].xtls.is_empty());
        assert_eq!(s.bookings[0]["id"], "b1");
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let err = Scenario::from_toml_str("gsd = {}\n").expect_err("typo must fail");
        assert!(
            format!("{err:#}").contains("unknown field `gsd`"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_nested_key_is_an_error() {
        let err = Scenario::from_json_str(r#"{"gds":{"state":"online"}}"#).expect_err("typo");
        assert!(
            format!("{err:#}").contains("unknown field `state`"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_activation_code_is_an_error() {
        let err =
            Scenario::from_toml_str("[[devices]]\nactivation_code = \"4353-4500-1234-5678\"\n")
                .expect_err("grouped code must fail");
        assert!(format!("{err:#}").contains("16 digits"), "{err:#}");
    }

    #[test]
    fn json_roundtrip() {
        let s = Scenario {
            devices: vec![Device {
                activation_code: "4353450012345678".into(),
                name: None,
                model: Some("Room Kit".into()),
            }],
            ..Scenario::default()
        };
        let text = serde_json::to_string(&s).expect("serialize");
        assert_eq!(Scenario::from_json_str(&text).expect("parse"), s);
    }

    #[test]
    fn shipped_default_scenario_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/default.toml");
        let s = Scenario::from_path(&path).expect("default scenario");
        assert_eq!(s.gds.service_state, "online");
        assert_eq!(s.devices.len(), 1);
        assert_eq!(s.devices[0].activation_code, "4353450012345678");
    }

    #[test]
    fn unknown_extension_is_an_error() {
        let err = Scenario::from_path(Path::new("/nonexistent/x.yaml")).expect_err("fails");
        // Reading fails first for a missing file; the message names the file either way.
        assert!(format!("{err:#}").contains("x.yaml"), "{err:#}");
    }
}
