//! WDM device registration (wire profile §2, seed 000 "Registration").

use serde::{Deserialize, Serialize};

use crate::proto::{ParseError, parse_json};

/// The registration body (seed 000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    pub device_identifier: String,
    pub system_name: String,
    pub system_version: String,
    pub device_type: String,
    pub model: String,
    pub name: String,
    pub localized_model: String,
    pub capabilities: Capabilities,
    pub is_device_managed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub group_call_supported: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    pub url: String,
    #[serde(default)]
    pub web_socket_url: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub features: Features,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Features {
    pub developer: Vec<FeatureToggle>,
    pub entitlement: Vec<FeatureToggle>,
    pub user: Vec<FeatureToggle>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeatureToggle {
    pub key: String,
    #[serde(default)]
    pub val: serde_json::Value,
    #[serde(default)]
    pub mutable: Option<bool>,
}

/// A toggle's value: "true"/"false" → bool, numeric → number, else string.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl FeatureValue {
    /// The value as JSON (for status): a bool, a number, or a string.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FeatureValue::Bool(b) => serde_json::json!(b),
            FeatureValue::Number(n) => serde_json::json!(n),
            FeatureValue::Text(t) => serde_json::json!(t),
        }
    }
}

impl FeatureToggle {
    pub fn value(&self) -> FeatureValue {
        match &self.val {
            serde_json::Value::Bool(b) => FeatureValue::Bool(*b),
            serde_json::Value::Number(n) => FeatureValue::Number(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => match s.trim() {
                t if t.eq_ignore_ascii_case("true") => FeatureValue::Bool(true),
                t if t.eq_ignore_ascii_case("false") => FeatureValue::Bool(false),
                t => match t.parse::<f64>() {
                    Ok(n) if n.is_finite() => FeatureValue::Number(n),
                    _ => FeatureValue::Text(s.clone()),
                },
            },
            other => FeatureValue::Text(other.to_string()),
        }
    }
}

impl Features {
    /// Every toggle as (group, key, value), groups in the order developer, entitlement, user.
    pub fn all(&self) -> Vec<(&'static str, &str, FeatureValue)> {
        [
            ("developer", &self.developer),
            ("entitlement", &self.entitlement),
            ("user", &self.user),
        ]
        .into_iter()
        .flat_map(|(group, toggles)| {
            toggles
                .iter()
                .map(move |t| (group, t.key.as_str(), t.value()))
        })
        .collect()
    }
}

pub fn parse_registration(body: &[u8]) -> Result<Registration, ParseError> {
    let registration: Registration = parse_json("WDM registration", body)?;
    if !registration.url.starts_with("https://") {
        return Err(ParseError::Invalid {
            what: "WDM registration",
            reason: format!("device url {:?} is not https", registration.url),
        });
    }
    Ok(registration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggles_follow_the_bool_number_string_rule() {
        let body = br#"{"url":"https://wdm/devices/1","features":{"developer":[
            {"key":"a","val":"true","mutable":true},{"key":"b","val":"FALSE"},
            {"key":"c","val":"42"},{"key":"d","val":"dark"},{"key":"e","val":7}]}}"#;
        let reg = parse_registration(body).unwrap();
        let values: Vec<_> = reg
            .features
            .all()
            .into_iter()
            .map(|(_, k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            values,
            vec![
                ("a".into(), FeatureValue::Bool(true)),
                ("b".into(), FeatureValue::Bool(false)),
                ("c".into(), FeatureValue::Number(42.0)),
                ("d".into(), FeatureValue::Text("dark".into())),
                ("e".into(), FeatureValue::Number(7.0)),
            ]
        );
    }

    #[test]
    fn the_seed_body_serialises_with_its_field_names() {
        let body = RegisterRequest {
            device_identifier: "d".into(),
            system_name: "s".into(),
            system_version: "v".into(),
            device_type: "TP_ENDPOINT".into(),
            model: "m".into(),
            name: "n".into(),
            localized_model: "l".into(),
            capabilities: Capabilities {
                group_call_supported: true,
            },
            is_device_managed: true,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["deviceType"], "TP_ENDPOINT");
        assert_eq!(json["capabilities"]["groupCallSupported"], true);
        assert_eq!(json["isDeviceManaged"], true);
        assert_eq!(json["localizedModel"], "l");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_registration(&bytes);
        }
    }
}
