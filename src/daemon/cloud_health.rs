//! The GDS health gate: check on start, retry with backoff while the cloud is unreachable
//! or unhealthy (honouring `Retry-After`), re-check at a slow interval while it is healthy.
//! Every outcome lands in [`DeviceStatus`]; transitions and retries are logged.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::cloud::gds::GdsClient;
use crate::net::backoff::Backoff;
use crate::net::http::HttpError;
use crate::platform::logging::message_id;
use crate::shutdown::Shutdown;
use crate::status::{CloudState, DeviceStatus};

pub async fn monitor(
    client: GdsClient,
    status: watch::Sender<DeviceStatus>,
    healthy_interval: Duration,
    mut backoff: Backoff,
    mut shutdown: Shutdown,
) {
    loop {
        let result = tokio::select! {
            result = client.health() => result,
            _ = shutdown.recv() => return,
        };
        let delay = record(&client, &status, result, healthy_interval, &mut backoff);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// Applies one check's outcome to the status and returns the delay until the next check.
fn record(
    client: &GdsClient,
    status: &watch::Sender<DeviceStatus>,
    result: Result<crate::cloud::gds::HealthReport, HttpError>,
    healthy_interval: Duration,
    backoff: &mut Backoff,
) -> Duration {
    let url = client.health_url();
    let was = status.borrow().cloud.state;
    let (state, detail, tracking_id, delay) = match result {
        Ok(report) if report.document.is_online() => {
            backoff.reset();
            let detail = report
                .document
                .message
                .clone()
                .unwrap_or_else(|| "online".into());
            if was != CloudState::Online {
                tracing::info!(
                    message_id = message_id::GDS_ONLINE,
                    trackingid = %report.tracking_id,
                    %url,
                    "GDS health: serviceState=online ({detail}); cloud reachable"
                );
            }
            (
                CloudState::Online,
                detail,
                Some(report.tracking_id),
                healthy_interval,
            )
        }
        Ok(report) => {
            let doc = &report.document;
            let delay = backoff.next_delay();
            let failing = doc.failing_upstreams();
            let detail = if failing.is_empty() {
                format!("reports {}", doc.service_state)
            } else {
                format!("reports {} ({})", doc.service_state, failing.join(", "))
            };
            tracing::warn!(
                message_id = message_id::GDS_UNHEALTHY,
                trackingid = %report.tracking_id,
                %url,
                retry_in_ms = delay.as_millis() as u64,
                "GDS health: {detail}; activation waits, retrying in {:.1} s",
                delay.as_secs_f64()
            );
            (
                CloudState::Unhealthy,
                detail,
                Some(report.tracking_id),
                delay,
            )
        }
        Err(error) => {
            let delay = backoff.next_delay_after(error.retry_after());
            let tracking_id = match &error {
                HttpError::Status { tracking_id, .. } => Some(tracking_id.clone()),
                _ => None,
            };
            tracing::warn!(
                message_id = message_id::GDS_UNREACHABLE,
                %url,
                retry_in_ms = delay.as_millis() as u64,
                "GDS health check failed: {error}; retrying in {:.1} s",
                delay.as_secs_f64()
            );
            (
                CloudState::Unreachable,
                error.short_reason(),
                tracking_id,
                delay,
            )
        }
    };
    status.send_modify(|s| {
        let cloud = &mut s.cloud;
        cloud.failures = if state == CloudState::Online {
            0
        } else {
            cloud.failures + 1
        };
        cloud.state = state;
        cloud.detail = detail;
        cloud.tracking_id = tracking_id;
        cloud.last_checked = Some(SystemTime::now());
        cloud.next_check = Some(delay);
    });
    delay
}
