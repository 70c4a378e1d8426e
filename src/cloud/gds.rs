//! Global discovery service: the health gate before activation.

use crate::net::http::{HttpClient, HttpError};
use crate::proto::gds::{HealthDocument, parse_health};

#[derive(Debug, Clone)]
pub struct GdsClient {
    http: HttpClient,
    base_url: String,
}

/// A health check that reached the server and got a document.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub document: HealthDocument,
    pub tracking_id: String,
}

impl GdsClient {
    pub fn new(http: HttpClient, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn health_url(&self) -> String {
        format!("{}/health", self.base_url)
    }

    /// `GET {gds}/health`.
    pub async fn health(&self) -> Result<HealthReport, HttpError> {
        let url = self.health_url();
        let response = self.http.get(&url).await?;
        let document = parse_health(&response.body).map_err(|e| HttpError::Decode {
            url,
            what: "GDS health JSON",
            reason: e.to_string(),
        })?;
        Ok(HealthReport {
            document,
            tracking_id: response.tracking_id,
        })
    }
}
