//! U2C catalog and WDM registration (wire profile §2): pick the best host per service,
//! fail over to the next when one refuses or fails with 5xx, register the device, refresh
//! the registration with its ETag, register again when WDM forgot it (404).

use std::collections::HashSet;

use crate::cloud::authed::{AuthedClient, CloudError};
use crate::net::http::Method;
use crate::proto::ParseError;
use crate::proto::u2c::{Catalog, parse_catalog};
use crate::proto::wdm::{RegisterRequest, Registration, parse_registration};

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum RegistrationError {
    /// {0}
    Cloud(#[from] CloudError),
    /// {0}
    Protocol(#[from] ParseError),
    /// the service catalog has no `{0}` service
    NoService(String),
}

/// Hosts that failed, skipped until every host of the service has failed.
#[derive(Debug, Default)]
pub struct HostSelector {
    failed: HashSet<String>,
}

impl HostSelector {
    /// Candidates for `service` in the order to try them.
    pub fn order(
        &mut self,
        catalog: &Catalog,
        service: &str,
    ) -> Result<Vec<String>, RegistrationError> {
        let candidates = catalog
            .services
            .get(service)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| RegistrationError::NoService(service.to_string()))?;
        let healthy: Vec<String> = candidates
            .iter()
            .map(|c| c.base_url.clone())
            .filter(|url| !self.failed.contains(url))
            .collect();
        if healthy.is_empty() {
            // Every host failed once: start over rather than give up.
            for candidate in candidates {
                self.failed.remove(&candidate.base_url);
            }
            return Ok(candidates.iter().map(|c| c.base_url.clone()).collect());
        }
        Ok(healthy)
    }

    pub fn mark_failed(&mut self, base_url: &str) {
        self.failed.insert(base_url.to_string());
    }
}

pub async fn fetch_catalog(
    client: &AuthedClient,
    u2c_url: &str,
) -> Result<Catalog, RegistrationError> {
    let url = format!("{}/catalog?format=hostmap", u2c_url.trim_end_matches('/'));
    let response = client.send(Method::GET, &url, None, &[]).await?;
    let catalog = parse_catalog(&response.body)?;
    tracing::info!(
        trackingid = %response.tracking_id,
        "U2C catalog: {} services",
        catalog.services.len()
    );
    Ok(catalog)
}

/// A registration and its ETag.
#[derive(Debug, Clone)]
pub struct Registered {
    pub registration: Registration,
    pub etag: Option<String>,
}

/// Outcome of a registration refresh.
#[derive(Debug)]
pub enum Refreshed {
    Unchanged,
    Updated(Registered),
    /// WDM no longer knows the device: register again.
    Gone,
}

fn etag(response: &crate::net::http::Response) -> Option<String> {
    response
        .headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `POST {wdm}/devices` on the first WDM host that answers.
pub async fn register(
    client: &AuthedClient,
    catalog: &Catalog,
    hosts: &mut HostSelector,
    body: &RegisterRequest,
) -> Result<Registered, RegistrationError> {
    let json = serde_json::to_value(body).expect("registration body serialises");
    let mut last_error = None;
    for base in hosts.order(catalog, "wdm")? {
        let url = format!("{}/devices", base.trim_end_matches('/'));
        match client.send(Method::POST, &url, Some(&json), &[]).await {
            Ok(response) => {
                let registration = parse_registration(&response.body)?;
                tracing::info!(
                    message_id = crate::platform::logging::message_id::REGISTERED,
                    trackingid = %response.tracking_id,
                    device_url = %registration.url,
                    "WDM registration succeeded at {base}"
                );
                return Ok(Registered {
                    etag: etag(&response),
                    registration,
                });
            }
            Err(e) if e.is_host_failure() => {
                tracing::warn!("WDM host {base} failed ({e}); trying the next host");
                hosts.mark_failed(&base);
                last_error = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error
        .map(RegistrationError::from)
        .unwrap_or_else(|| RegistrationError::NoService("wdm".into())))
}

/// `PUT {device url}` with `If-None-Match`.
pub async fn refresh(
    client: &AuthedClient,
    current: &Registered,
    body: &RegisterRequest,
) -> Result<Refreshed, RegistrationError> {
    let json = serde_json::to_value(body).expect("registration body serialises");
    let headers: Vec<(&'static str, String)> = current
        .etag
        .iter()
        .map(|tag| ("if-none-match", tag.clone()))
        .collect();
    match client
        .send(
            Method::PUT,
            &current.registration.url,
            Some(&json),
            &headers,
        )
        .await
    {
        Ok(response) if response.status == 304 => Ok(Refreshed::Unchanged),
        Ok(response) => Ok(Refreshed::Updated(Registered {
            etag: etag(&response),
            registration: parse_registration(&response.body)?,
        })),
        Err(e) if e.status() == Some(404) => Ok(Refreshed::Gone),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE {device url}` (factory reset).
pub async fn unregister(client: &AuthedClient, device_url: &str) -> Result<(), RegistrationError> {
    match client.send(Method::DELETE, device_url, None, &[]).await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(404) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
