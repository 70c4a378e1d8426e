//! The scenario: what the simulated cloud knows (GDS state, devices, bookings, media clusters).
//!
//! Our own file format, TOML or JSON, so unknown keys are errors (typos must not be silently ignored).
//! Every section has a default, so an empty file is the default scenario.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::calendar::{BookingSpec, KmsScenario};
use crate::calliope::CalliopeScenario;
use crate::locus::LocusScenario;
use crate::media::MediaScenario;
use crate::meeting_server::MeetingServerScenario;

/// Everything the simulator serves that a test may want to vary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The GDS health document's state.
    pub gds: GdsScenario,
    /// Devices that may activate (used by the activation service in later issues).
    pub devices: Vec<Device>,
    /// `[[bookings]]`: what the calendar service serves at load (relative starts from then).
    pub bookings: Vec<BookingSpec>,
    /// `[kms]`: the keys the simulated KMS holds.
    pub kms: KmsScenario,
    /// Media clusters for reachability discovery (listed only; the served ones come from
    /// `[calliope]`).
    pub clusters: Vec<Cluster>,
    /// `[locus]`: call control.
    pub locus: LocusScenario,
    /// `[calliope]`: the generated media clusters and their STUN nodes.
    pub calliope: CalliopeScenario,
    /// `[media]`: what the media node does with the device's media (SCRs, streams, decoding).
    pub media: MediaScenario,
    /// `[tokens]`: lifetimes of the tokens activation and identity issue.
    pub tokens: TokensScenario,
    /// `[wdm]`: what device registration answers.
    pub wdm: WdmScenario,
    /// `[mercury]`: the event WebSocket.
    pub mercury: MercuryScenario,
    /// `[meeting_server]`: the simulated Meeting Server's credentials and limits.
    pub meeting_server: MeetingServerScenario,
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
    /// 16 digits, no separators (`4353450012345678`): activationId = first 8, SRP password = last 8.
    pub activation_code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The code has expired: `srp/init` answers 410.
    #[serde(default)]
    pub expired: bool,
    /// Whether the service data carries `trustList` (the proxy CA); default true.
    #[serde(default = "yes")]
    pub trust_list: bool,
    /// Misbehaviour of the activation service for this device.
    #[serde(default)]
    pub fault: DeviceFault,
    /// The organisation the device joins; [`DEFAULT_ORG_ID`] when absent.
    #[serde(default)]
    pub org_id: Option<String>,
}

impl Default for Device {
    fn default() -> Self {
        Self {
            activation_code: String::new(),
            name: None,
            model: None,
            expired: false,
            trust_list: true,
            fault: DeviceFault::None,
            org_id: None,
        }
    }
}

impl Device {
    /// A device with this activation code and every other setting at its default.
    pub fn new(activation_code: impl Into<String>) -> Self {
        Self {
            activation_code: activation_code.into(),
            ..Self::default()
        }
    }

    /// The first 8 digits of the code (empty if the code is too short).
    pub fn activation_id(&self) -> &str {
        self.activation_code.get(..8).unwrap_or_default()
    }

    /// `org_id`, or [`DEFAULT_ORG_ID`].
    pub fn org_id(&self) -> &str {
        self.org_id.as_deref().unwrap_or(DEFAULT_ORG_ID)
    }
}

/// The organisation of devices whose scenario entry names none.
pub const DEFAULT_ORG_ID: &str = "5e1c0e7a-5a3b-4c1d-9f2e-000000000001";

fn yes() -> bool {
    true
}

/// `devices[].fault`: how the activation service misbehaves for one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceFault {
    /// Behave correctly.
    #[default]
    None,
    /// Answer normally but flip one bit of `serviceDataHMAC`.
    TamperHmac,
    /// A man in the middle without the verifier: a fake verifier at init, no `oauthDataHMAC` check,
    /// and `serviceData` sealed with keys from the fake secret.
    Mitm,
}

/// `[tokens]`: lifetimes in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensScenario {
    /// Access token lifetime; default 1 209 600 (14 days).
    pub access_lifetime_secs: u64,
    /// Refresh token lifetime; default 5 184 000 (60 days).
    pub refresh_lifetime_secs: u64,
}

impl Default for TokensScenario {
    fn default() -> Self {
        Self {
            access_lifetime_secs: 1_209_600,
            refresh_lifetime_secs: 5_184_000,
        }
    }
}

/// Longest token lifetime a scenario may ask for (100 years, so `Instant` arithmetic never overflows).
const MAX_LIFETIME_SECS: u64 = 100 * 365 * 86_400;

/// `[mercury]`: the event WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MercuryScenario {
    /// Seconds a socket may stay without an authorization frame before the server closes it with
    /// 1008 "authorization timeout"; default 30 (wire profile §3).
    pub auth_timeout_secs: u64,
}

impl Default for MercuryScenario {
    fn default() -> Self {
        Self {
            auth_timeout_secs: 30,
        }
    }
}

/// Longest mercury authorization timeout a scenario or the admin may set (one day).
pub const MAX_AUTH_TIMEOUT_SECS: u64 = 86_400;

/// `[wdm]`: device registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WdmScenario {
    /// Feature toggles every registered device gets.
    pub features: WdmFeatures,
}

/// `[wdm.features]`: feature toggles by group, as WDM returns them under `features`. Without the table
/// the defaults apply; a given table replaces them whole (a group it leaves out is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WdmFeatures {
    #[serde(default)]
    pub developer: Vec<FeatureToggle>,
    #[serde(default)]
    pub entitlement: Vec<FeatureToggle>,
    #[serde(default)]
    pub user: Vec<FeatureToggle>,
}

impl Default for WdmFeatures {
    fn default() -> Self {
        Self {
            developer: vec![
                FeatureToggle::new("roomd-obtp", "true"),
                FeatureToggle::new("roomd-max-bookings", "50"),
            ],
            entitlement: vec![FeatureToggle::new("webex-squared", "true")],
            user: vec![FeatureToggle::new("theme", "dark")],
        }
    }
}

impl WdmFeatures {
    fn validate(&self) -> anyhow::Result<()> {
        for (group, items) in [
            ("developer", &self.developer),
            ("entitlement", &self.entitlement),
            ("user", &self.user),
        ] {
            for (i, f) in items.iter().enumerate() {
                if f.key.trim().is_empty() {
                    bail!("wdm.features.{group}[{i}].key must not be empty");
                }
                if items[..i].iter().any(|o| o.key == f.key) {
                    bail!("wdm.features.{group}[{i}].key {:?} appears twice", f.key);
                }
            }
        }
        Ok(())
    }

    /// Parses and validates a features document (`{"developer":[..],"entitlement":[..],"user":[..]}`).
    pub fn from_json(value: serde_json::Value) -> anyhow::Result<Self> {
        let f: Self = serde_json::from_value(value).context("invalid features")?;
        f.validate()?;
        Ok(f)
    }
}

/// One feature toggle; `val` is always a string on the wire ("true", "42", "dark").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureToggle {
    pub key: String,
    pub val: String,
    /// Default true.
    #[serde(default = "yes")]
    pub mutable: bool,
    /// `type` on the wire; defaults per group: `DEV`, `ENTITLEMENT`, `USER`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl FeatureToggle {
    pub fn new(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            val: val.into(),
            mutable: true,
            kind: None,
        }
    }
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
            let id = d.activation_id();
            if self.devices[..i].iter().any(|o| o.activation_id() == id) {
                bail!(
                    "devices[{i}].activation_code {code}: another device has the same activationId \
                     {id} (the first 8 digits must be unique)"
                );
            }
            if d.org_id.as_deref().is_some_and(|o| o.trim().is_empty()) {
                bail!("devices[{i}].org_id must not be empty when given");
            }
        }
        for (name, secs) in [
            ("access_lifetime_secs", self.tokens.access_lifetime_secs),
            ("refresh_lifetime_secs", self.tokens.refresh_lifetime_secs),
        ] {
            if secs == 0 || secs > MAX_LIFETIME_SECS {
                bail!("tokens.{name} must be within 1..={MAX_LIFETIME_SECS}");
            }
        }
        self.wdm.features.validate()?;
        let auth = self.mercury.auth_timeout_secs;
        if auth == 0 || auth > MAX_AUTH_TIMEOUT_SECS {
            bail!("mercury.auth_timeout_secs must be within 1..={MAX_AUTH_TIMEOUT_SECS}");
        }
        self.meeting_server.validate()?;
        self.locus.validate()?;
        self.calliope.validate()?;
        self.media.validate()?;
        crate::calendar::validate_scenario(self)?;
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
            bookings = [{ id = "b1", title = "Standup", start_in_mins = 10 }]
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
        assert_eq!(s.bookings[0].id.as_deref(), Some("b1"));
        assert_eq!(s.bookings[0].start_in_mins, Some(10));
        assert_eq!(s.kms, KmsScenario::default());
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
                model: Some("Room Kit".into()),
                fault: DeviceFault::Mitm,
                ..Device::new("4353450012345678")
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
        assert_eq!(s.tokens, TokensScenario::default());
        assert_eq!(s.wdm.features, WdmFeatures::default());
        assert_eq!(s.mercury, MercuryScenario::default());
        assert_eq!(s.kms, KmsScenario::default());
        assert_eq!(s.locus, LocusScenario::default());
        assert_eq!(s.calliope, CalliopeScenario::default());
        assert_eq!(s.media, MediaScenario::default());
        assert_eq!(s.bookings.len(), 3);
        assert_eq!(s.bookings[0].start_in_mins, Some(10));
        assert!(s.bookings[0].webex_uri.is_some());
        assert_eq!(s.bookings[1].join_type, "TEAMS");
        assert!(s.bookings[1].meeting_join_uri.is_some());
        let b = &s.bookings[2];
        assert!(
            [
                &b.webex_uri,
                &b.meeting_join_uri,
                &b.meeting_join_url,
                &b.space_uri,
                &b.call_uri
            ]
            .iter()
            .all(|u| u.is_none())
        );
    }

    #[test]
    fn bookings_and_kms() {
        let s = Scenario::from_toml_str(
            r#"
            [kms]
            keys = ["default", "team-2"]
            [[bookings]]
            id = "m1"
            title = "Absolute"
            start = "2022-04-26T13:15:00.000Z"
            key = "team-2"
            encrypted = false
            recurring = true
            series_id = "s1"
            [[bookings]]
            title = "Relative"
            start_in_mins = -15
            "#,
        )
        .expect("scenario");
        assert_eq!(s.kms.keys, ["default", "team-2"]);
        let a = &s.bookings[0];
        assert_eq!(a.key, "team-2");
        assert!(!a.encrypted && a.recurring);
        assert_eq!(a.duration_mins, 30);
        let r = &s.bookings[1];
        assert_eq!((r.id.as_deref(), r.start_in_mins), (None, Some(-15)));
        assert!(r.encrypted);
        assert_eq!(r.key, "default");
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(Scenario::from_json_str(&json).expect("parse"), s);
        assert!(Scenario::from_toml_str("bookings = []\n").is_ok());
    }

    #[test]
    fn invalid_bookings_and_kms() {
        for (toml, want) in [
            ("[[bookings]]\nstart_in_mins = 1\n", "missing field `title`"),
            (
                "[[bookings]]\ntitle = \"x\"\n",
                "one of start or start_in_mins",
            ),
            (
                "[[bookings]]\ntitle = \"x\"\nstart_in_mins = 1\nstart = \"2022-04-26T13:15:00Z\"\n",
                "only one",
            ),
            (
                "[[bookings]]\ntitle = \"x\"\nstart = \"2022-04-26 13:15\"\n",
                "ISO-8601",
            ),
            (
                "[[bookings]]\ntitle = \"x\"\nstart_in_mins = 1\nkey = \"other\"\n",
                "not one of [kms] keys",
            ),
            (
                "[[bookings]]\nid = \"a\"\ntitle = \"x\"\nstart_in_mins = 1\n[[bookings]]\nid = \"a\"\ntitle = \"y\"\nstart_in_mins = 2\n",
                "appears twice",
            ),
            (
                "[[bookings]]\ntitle = \"x\"\nstart_in_mins = 1\nduration_mins = 0\n",
                "duration_mins",
            ),
            (
                "[[bookings]]\ntitle = \"x\"\nstart_in_mins = 1\nwebex = \"y\"\n",
                "unknown field `webex`",
            ),
            ("[kms]\nkeys = [\"a b\"]\n", "KMS key name"),
            ("[kms]\nkeys = [\"a\", \"a\"]\n", "appears twice"),
            ("[kms]\nkey = []\n", "unknown field `key`"),
        ] {
            let err = Scenario::from_toml_str(toml).expect_err(toml);
            assert!(format!("{err:#}").contains(want), "{toml}: {err:#}");
        }
    }

    #[test]
    fn device_and_service_settings() {
        let s = Scenario::from_toml_str(
            r#"
            [tokens]
            access_lifetime_secs = 60
            [mercury]
            auth_timeout_secs = 1
            [wdm.features]
            developer = [{ key = "a", val = "1" }]
            [[devices]]
            activation_code = "4353450012345678"
            expired = true
            trust_list = false
            fault = "tamper-hmac"
            org_id = "org-1"
            [[devices]]
            activation_code = "1111111122222222"
            "#,
        )
        .expect("scenario");
        let d = &s.devices[0];
        assert!(d.expired && !d.trust_list);
        assert_eq!(d.fault, DeviceFault::TamperHmac);
        assert_eq!(d.org_id(), "org-1");
        assert_eq!(d.activation_id(), "43534500");
        let d = &s.devices[1];
        assert!(!d.expired && d.trust_list);
        assert_eq!(d.fault, DeviceFault::None);
        assert_eq!(d.org_id(), DEFAULT_ORG_ID);
        assert_eq!(s.tokens.access_lifetime_secs, 60);
        assert_eq!(s.mercury.auth_timeout_secs, 1);
        assert_eq!(Scenario::default().mercury.auth_timeout_secs, 30);
        assert_eq!(s.tokens.refresh_lifetime_secs, 5_184_000);
        assert_eq!(s.wdm.features.developer, vec![FeatureToggle::new("a", "1")]);
        assert!(
            s.wdm.features.user.is_empty(),
            "a given table replaces the defaults"
        );
        assert_eq!(Scenario::default().wdm.features.developer.len(), 2);
    }

    #[test]
    fn invalid_device_and_service_settings() {
        for (toml, want) in [
            (
                "[[devices]]\nactivation_code = \"4353450012345678\"\nfault = \"evil\"\n",
                "unknown variant",
            ),
            (
                "[[devices]]\nactivation_code = \"4353450012345678\"\n[[devices]]\nactivation_code = \"4353450099999999\"\n",
                "activationId",
            ),
            (
                "[tokens]\naccess_lifetime_secs = 0\n",
                "access_lifetime_secs",
            ),
            ("[mercury]\nauth_timeout_secs = 0\n", "auth_timeout_secs"),
            ("[mercury]\npong = 1\n", "unknown field `pong`"),
            (
                "[wdm.features]\nuser = [{ key = \"a\", val = \"1\" }, { key = \"a\", val = \"2\" }]\n",
                "twice",
            ),
            (
                "[wdm.features]\nuser = [{ key = \"a\", val = true }]\n",
                "invalid type",
            ),
        ] {
            let err = Scenario::from_toml_str(toml).expect_err(toml);
            assert!(format!("{err:#}").contains(want), "{toml}: {err:#}");
        }
    }

    #[test]
    fn locus_and_calliope_tables() {
        let s = Scenario::from_toml_str(
            "[locus]\nanswer_delay_ms = 0\n[calliope]\nclusters = 3\nsilent = 1\nrtt_max_ms = 40\nseed = 7\n",
        )
        .expect("scenario");
        assert_eq!(s.locus.answer_delay_ms, 0);
        assert_eq!(Scenario::default().locus.answer_delay_ms, 500);
        assert_eq!(Scenario::default().locus.join_delay_ms, 0);
        assert_eq!((s.calliope.clusters, s.calliope.silent), (3, 1));
        assert_eq!((s.calliope.rtt_min_ms, s.calliope.rtt_max_ms), (5, 40));
        assert!(s.calliope.enabled);
        assert_eq!(Scenario::default().calliope.clusters, 210);
        for (toml, want) in [
            ("[locus]\nanswer_delay_ms = 600001\n", "answer_delay_ms"),
            ("[locus]\njoin_delay_ms = 600001\n", "join_delay_ms"),
            ("[locus]\ndelay = 1\n", "unknown field `delay`"),
            ("[calliope]\nsilent = 300\n", "calliope.silent"),
            (
                "[calliope]\nrtt_min_ms = 100\nrtt_max_ms = 105\n",
                "rtt_max_ms",
            ),
            ("[calliope]\nnodes = 1\n", "unknown field `nodes`"),
        ] {
            let err = Scenario::from_toml_str(toml).expect_err(toml);
            assert!(format!("{err:#}").contains(want), "{toml}: {err:#}");
        }
    }

    #[test]
    fn media_table() {
        let d = MediaScenario::default();
        assert!(d.auto_scr && d.send_streams && d.decode && d.send_audio);
        assert_eq!(
            (
                d.send_max_fs,
                d.send_fps,
                d.scr_change_after_secs,
                d.participants
            ),
            (920, 15, 0, 3)
        );
        let s = Scenario::from_toml_str(
            "[media]\nauto_scr = false\nsend_streams = false\nsend_max_fs = 240\nsend_fps = 10\n\
             scr_change_after_secs = 20\ndecode = false\nparticipants = 8\nsend_audio = false\n",
        )
        .expect("scenario");
        assert_eq!(
            s.media,
            MediaScenario {
                auto_scr: false,
                send_streams: false,
                send_max_fs: 240,
                send_fps: 10,
                scr_change_after_secs: 20,
                decode: false,
                participants: 8,
                send_audio: false,
            }
        );
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(Scenario::from_json_str(&json).expect("parse"), s);
        for (toml, want) in [
            ("[media]\nsend_fps = 0\n", "media.send_fps"),
            ("[media]\nsend_fps = 61\n", "media.send_fps"),
            ("[media]\nsend_max_fs = 3\n", "media.send_max_fs"),
            ("[media]\nsend_max_fs = 9000\n", "media.send_max_fs"),
            (
                "[media]\nscr_change_after_secs = 3601\n",
                "scr_change_after_secs",
            ),
            ("[media]\nparticipants = 0\n", "media.participants"),
            ("[media]\nparticipants = 9\n", "media.participants"),
            ("[media]\nparticipants = 300\n", "participants"),
            ("[media]\nsend_audio = 1\n", "invalid type"),
            ("[media]\nauto_src = true\n", "unknown field `auto_src`"),
            ("[media]\ndecode = \"yes\"\n", "invalid type"),
        ] {
            let err = Scenario::from_toml_str(toml).expect_err(toml);
            assert!(format!("{err:#}").contains(want), "{toml}: {err:#}");
        }
    }

    #[test]
    fn unknown_extension_is_an_error() {
        let err = Scenario::from_path(Path::new("/nonexistent/x.yaml")).expect_err("fails");
        // Reading fails first for a missing file; the message names the file either way.
        assert!(format!("{err:#}").contains("x.yaml"), "{err:#}");
    }
}
