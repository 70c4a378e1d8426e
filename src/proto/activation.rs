//! Activation wire types (wire profile §1): SRP init/invoke bodies, the device info sealed in
//! `oauthData`, and the service data sealed in `serviceData`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::proto::{ParseError, parse_json};
use crate::secret::{Secret, serialize_exposed};

#[derive(Debug, Serialize)]
pub struct InitRequest<'a> {
    #[serde(rename = "activationId")]
    pub activation_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitResponse {
    pub srp_b: String,
    pub srp_s: String,
    pub srp_group: String,
    #[serde(default)]
    pub version: Option<String>,
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct InvokeRequest<'a> {
    #[serde(rename = "srpA")]
    pub srp_a: &'a str,
    #[serde(rename = "srpB")]
    pub srp_b: &'a str,
    #[serde(rename = "oauthData")]
    pub oauth_data: &'a str,
    #[serde(rename = "oauthDataHMAC")]
    pub oauth_data_hmac: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InvokeResponse {
    #[serde(rename = "serviceData")]
    pub service_data: String,
    #[serde(rename = "serviceDataHMAC")]
    pub service_data_hmac: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// What the device tells the cloud about itself, sealed in `oauthData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    pub device_identifier: String,
    pub system_name: String,
    pub system_version: String,
    pub model: String,
    pub serial: String,
}

/// The decrypted service data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceData {
    pub device_identifier: String,
    #[serde(default)]
    pub org_id: String,
    pub service_urls: BTreeMap<String, String>,
    /// PEM certificates of TLS-inspecting proxies; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_list: Option<Vec<String>>,
    pub tokens: TokenGrant,
}

/// Tokens as the activation service and the identity service hand them out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TokenGrant {
    #[serde(serialize_with = "serialize_exposed")]
    pub access_token: Secret<String>,
    pub expires_in: u64,
    #[serde(serialize_with = "serialize_exposed")]
    pub refresh_token: Secret<String>,
    #[serde(default)]
    pub refresh_token_expires_in: Option<u64>,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

/// Services the device cannot work without.
pub const REQUIRED_SERVICES: [&str; 2] = ["u2c", "identity"];

pub fn parse_init(body: &[u8]) -> Result<InitResponse, ParseError> {
    let init: InitResponse = parse_json("SRP init response", body)?;
    if init.srp_group != "3072" {
        return Err(ParseError::Invalid {
            what: "SRP init response",
            reason: format!("srpGroup {:?} is not the 3072-bit group", init.srp_group),
        });
    }
    Ok(init)
}

pub fn parse_invoke(body: &[u8]) -> Result<InvokeResponse, ParseError> {
    parse_json("SRP invoke response", body)
}

pub fn parse_service_data(plaintext: &[u8]) -> Result<ServiceData, ParseError> {
    let data: ServiceData = parse_json("service data", plaintext)?;
    for service in REQUIRED_SERVICES {
        if !data.service_urls.contains_key(service) {
            return Err(ParseError::Invalid {
                what: "service data",
                reason: format!("serviceUrls has no `{service}`"),
            });
        }
    }
    Ok(data)
}

pub fn parse_token_grant(body: &[u8]) -> Result<TokenGrant, ParseError> {
    parse_json("token response", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE_DATA: &str = r#"{"deviceIdentifier":"d-1","orgId":"o-1",
      "serviceUrls":{"u2c":"https://u2c/u2c","identity":"https://id/identity","wdm":"https://w"},
      "trustList":["-----BEGIN CERTIFICATE-----\n..."],
      "tokens":{"access_token":"AT-secret","expires_in":1209600,"refresh_token":"RT-secret",
                "refresh_token_expires_in":5184000,"token_type":"Bearer"},"future":1}"#;

    #[test]
    fn service_data_parses_and_tokens_stay_redacted() {
        let data = parse_service_data(SERVICE_DATA.as_bytes()).unwrap();
        assert_eq!(data.service_urls["u2c"], "https://u2c/u2c");
        assert_eq!(data.trust_list.as_ref().unwrap().len(), 1);
        assert_eq!(data.tokens.access_token.expose(), "AT-secret");
        let shown = format!("{data:?}");
        assert!(
            !shown.contains("AT-secret") && !shown.contains("RT-secret"),
            "{shown}"
        );
        // Written to the 0600 credential file in full.
        let stored = serde_json::to_string(&data).unwrap();
        assert!(stored.contains("AT-secret"));
    }

    #[test]
    fn missing_required_service_is_named() {
        let text = SERVICE_DATA.replace("\"u2c\":\"https://u2c/u2c\",", "");
        let err = parse_service_data(text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "service data is not valid: serviceUrls has no `u2c`"
        );
    }

    #[test]
    fn init_needs_the_3072_group() {
        let err = parse_init(br#"{"srpB":"AA==","srpS":"AA==","srpGroup":"2048","url":"u"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("not the 3072-bit group"), "{err}");
        assert!(
            parse_init(br#"{"srpB":"AA==","srpS":"AA==","srpGroup":"3072","url":"u"}"#).is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_init(&bytes);
            let _ = parse_invoke(&bytes);
            let _ = parse_service_data(&bytes);
            let _ = parse_token_grant(&bytes);
        }
    }
}
