//! The activation exchange (wire profile §1 steps 2–5): SRP init, SRP invoke with the
//! sealed device info, and the service data the server can only seal if it knows the
//! code's verifier. The server's `serviceDataHMAC` is verified before anything is
//! decrypted; a malformed code never reaches the network.

use crate::activation::code::ActivationCode;
use crate::activation::crypto::{self, CryptoError};
use crate::net::http::{HttpClient, HttpError, Method, Request};
use crate::proto::ParseError;
use crate::proto::activation::{
    DeviceInfo, InitRequest, InvokeRequest, ServiceData, parse_init, parse_invoke,
    parse_service_data,
};

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ActivationError {
    /// the activation service does not know this activation code (HTTP 404)
    UnknownCode,
    /// the activation code has expired or was already used (HTTP 410): ask for a new one
    Expired,
    /// the activation code is locked after too many wrong attempts (HTTP 423): ask for a new one
    Locked,
    /// the activation service rejected the code (HTTP 401: SRP verification failed); check the digits
    Rejected,
    /// the activation service answered: {0}
    Http(HttpError),
    /// {0}
    Protocol(#[from] ParseError),
    /// {0}
    Crypto(#[from] CryptoError),
}

impl From<HttpError> for ActivationError {
    fn from(error: HttpError) -> Self {
        match &error {
            HttpError::Status { status: 404, .. } => ActivationError::UnknownCode,
            HttpError::Status { status: 410, .. } => ActivationError::Expired,
            HttpError::Status { status: 423, .. } => ActivationError::Locked,
            HttpError::Status { status: 401, .. } => ActivationError::Rejected,
            _ => ActivationError::Http(error),
        }
    }
}

impl ActivationError {
    /// Worth trying again with the same code later (network, server trouble)?
    pub fn is_transient(&self) -> bool {
        match self {
            ActivationError::Http(HttpError::Status { status, .. }) => {
                *status == 429 || *status >= 500
            }
            ActivationError::Http(HttpError::Connect { .. } | HttpError::Timeout { .. }) => true,
            _ => false,
        }
    }
}

/// Talks to the activation service. Its HTTP client does not verify certificates
/// (see [`HttpClient::unverified_for_activation`]): SRP authenticates both ends.
#[derive(Debug, Clone)]
pub struct ActivationClient {
    http: HttpClient,
    base_url: String,
}

impl ActivationClient {
    pub fn new(http: HttpClient, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    /// Runs the exchange and returns the verified, decrypted service data.
    pub async fn activate(
        &self,
        code: &ActivationCode,
        device: &DeviceInfo,
    ) -> Result<ServiceData, ActivationError> {
        let init_url = format!("{}/idb/token/v1/actions/srp/init", self.base_url);
        let response = self
            .http
            .send(Request::new(Method::POST, &init_url).json(&InitRequest {
                activation_id: code.activation_id(),
            }))
            .await?;
        let init = parse_init(&response.body)?;
        tracing::info!(
            trackingid = %response.tracking_id,
            "SRP init answered (group {}, version {})",
            init.srp_group,
            init.version.as_deref().unwrap_or("?")
        );

        let step = crypto::srp_client(
            code.activation_id(),
            &code.password(),
            &init.srp_s,
            &init.srp_b,
        )?;
        let device_json = serde_json::to_vec(device).expect("device info serialises");
        let (oauth_data, oauth_data_hmac) = crypto::seal(&step.keys, &device_json);
        let response = self
            .http
            .send(Request::new(Method::POST, &init.url).json(&InvokeRequest {
                srp_a: &step.a_pub_b64,
                srp_b: &init.srp_b,
                oauth_data: &oauth_data,
                oauth_data_hmac: &oauth_data_hmac,
            }))
            .await?;
        let invoke = parse_invoke(&response.body)?;
        // open() verifies serviceDataHMAC before it decrypts anything.
        let plaintext = crypto::open(&step.keys, &invoke.service_data, &invoke.service_data_hmac)?;
        let data = parse_service_data(&plaintext)?;
        tracing::info!(
            trackingid = %response.tracking_id,
            "SRP invoke: service data verified and decrypted ({} service URLs)",
            data.service_urls.len()
        );
        Ok(data)
    }
}
