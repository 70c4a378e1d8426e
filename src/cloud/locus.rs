//! Locus call control over HTTPS (wire profile §5, `docs/wire-profile-choices.md` §5): dial,
//! meeting lookup and join, accept, decline, alert, leave, hold/resume, DTMF and the two syncs.

use serde_json::{Value, json};

use crate::cloud::authed::{AuthedClient, CloudError};
use crate::net::http::{Method, percent_encode};
use crate::proto::ParseError;
use crate::proto::locus::{JoinAnswer, LocusAnswer, LocusDto, MeetingInfo};

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum LocusError {
    /// {0}
    Cloud(#[from] CloudError),
    /// {0}
    Protocol(#[from] ParseError),
}

impl LocusError {
    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            LocusError::Cloud(e) => e.status(),
            LocusError::Protocol(_) => None,
        }
    }
}

/// Where Locus lives and who this device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocusUrls {
    /// `…/locus/api/v1`, resolved from the U2C catalog.
    pub locus: String,
    /// This device's WDM URL (`device.url` in every join).
    pub device_url: String,
}

/// What every join carries besides the target.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinBody {
    pub correlation_id: String,
    pub local_sdp: String,
    /// The `reachability` object of wire profile §6.
    pub reachability: Value,
    /// roomd extension: local mute carried into the call (a move keeps it).
    pub audio_muted: bool,
    pub video_muted: bool,
}

#[derive(Debug, Clone)]
pub struct LocusClient {
    client: AuthedClient,
    urls: LocusUrls,
}

const DEVICE_TYPE: &str = "TP_ENDPOINT";

impl LocusClient {
    pub fn new(client: AuthedClient, urls: LocusUrls) -> Self {
        Self { client, urls }
    }

    pub fn device_url(&self) -> &str {
        &self.urls.device_url
    }

    fn join_json(&self, body: &JoinBody, invitee: Option<&str>) -> Value {
        let mut value = json!({
            "device": { "url": self.urls.device_url, "deviceType": DEVICE_TYPE },
            "correlationId": body.correlation_id,
            "localMedias": [{ "localSdp": body.local_sdp }],
            "reachability": body.reachability,
            "audioMuted": body.audio_muted,
            "videoMuted": body.video_muted,
        });
        if let Some(address) = invitee {
            value["invitee"] = json!({ "address": address });
        }
        value
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &'static str,
    ) -> Result<T, LocusError> {
        let response = self.client.send(method, url, body, &[]).await?;
        Ok(crate::proto::parse_json(what, &response.body)?)
    }

    /// A call: `POST {locus}/loci/call` with the invitee.
    pub async fn call(&self, address: &str, body: &JoinBody) -> Result<JoinAnswer, LocusError> {
        let url = format!("{}/loci/call", self.urls.locus);
        let json = self.join_json(body, Some(address));
        self.send(Method::POST, &url, Some(&json), "Locus call answer")
            .await
    }

    /// Finds a cloud meeting's locus by its URI.
    pub async fn meeting_info(&self, address: &str) -> Result<MeetingInfo, LocusError> {
        let url = format!(
            "{}/loci/meetingInfo?address={}",
            self.urls.locus,
            percent_encode(address)
        );
        self.send(Method::GET, &url, None, "Locus meetingInfo answer")
            .await
    }

    /// Joins an existing locus (a meeting, an incoming call, a move's destination).
    pub async fn join(&self, locus_url: &str, body: &JoinBody) -> Result<JoinAnswer, LocusError> {
        let url = format!("{locus_url}/participant");
        let json = self.join_json(body, None);
        self.send(Method::POST, &url, Some(&json), "Locus join answer")
            .await
    }

    pub async fn leave(
        &self,
        locus_url: &str,
        self_id: &str,
        correlation_id: &str,
    ) -> Result<LocusDto, LocusError> {
        let url = format!("{locus_url}/participant/{self_id}/leave");
        let json = json!({
            "device": { "url": self.urls.device_url, "deviceType": DEVICE_TYPE },
            "correlationId": correlation_id,
        });
        let answer: LocusAnswer = self
            .send(Method::PUT, &url, Some(&json), "Locus leave answer")
            .await?;
        Ok(answer.locus)
    }

    pub async fn decline(&self, locus_url: &str) -> Result<LocusDto, LocusError> {
        let url = format!("{locus_url}/participant/decline");
        let json = json!({ "deviceUrl": self.urls.device_url, "reason": "BUSY" });
        let answer: LocusAnswer = self
            .send(Method::PUT, &url, Some(&json), "Locus decline answer")
            .await?;
        Ok(answer.locus)
    }

    /// Tells Locus the device is ringing.
    pub async fn alert(&self, locus_url: &str) -> Result<LocusDto, LocusError> {
        let url = format!("{locus_url}/participant/alert");
        let json = json!({ "deviceUrl": self.urls.device_url });
        let answer: LocusAnswer = self
            .send(Method::PUT, &url, Some(&json), "Locus alert answer")
            .await?;
        Ok(answer.locus)
    }

    pub async fn hold(
        &self,
        locus_url: &str,
        self_url: &str,
        held: bool,
    ) -> Result<LocusDto, LocusError> {
        let url = format!("{locus_url}/controls");
        let json = json!({ "hold": { "held": held }, "participantUrl": self_url });
        let answer: LocusAnswer = self
            .send(Method::PATCH, &url, Some(&json), "Locus controls answer")
            .await?;
        Ok(answer.locus)
    }

    pub async fn send_dtmf(
        &self,
        locus_url: &str,
        correlation_id: &str,
        tones: &str,
    ) -> Result<(), LocusError> {
        let url = format!("{locus_url}/sendDtmf");
        let json = json!({
            "deviceUrl": self.urls.device_url,
            "dtmf": { "correlationId": correlation_id, "tones": tones },
        });
        self.client
            .send(Method::POST, &url, Some(&json), &[])
            .await?;
        Ok(())
    }

    /// `GET` of a syncUrl or a locus URL: the full DTO.
    pub async fn fetch(&self, url: &str) -> Result<LocusDto, LocusError> {
        self.send(Method::GET, url, None, "Locus DTO").await
    }
}
