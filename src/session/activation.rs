//! Not activated: waiting for a code (a command or the code file), then the GDS gate and the
//! SRP exchange that turn it into stored credentials.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::error::{Activated, SessionError};
use super::{CODE_FILE, CODE_FILE_POLL, SessionCommand, SessionContext};
use crate::activation::code::ActivationCode;
use crate::activation::flow::ActivationClient;
use crate::net::http::HttpClient;
use crate::net::tls::TrustStore;
use crate::platform::logging::message_id;
use crate::shutdown::Shutdown;
use crate::status::{ActivationState, CloudState};
use crate::store::credentials::Credentials;

/// Not activated: waits for a code (command or file) and activates with it.
pub(super) async fn wait_for_code(
    ctx: &SessionContext,
    commands: &mut mpsc::Receiver<SessionCommand>,
    shutdown: &mut Shutdown,
) -> Option<Credentials> {
    let mut poll = tokio::time::interval(CODE_FILE_POLL);
    loop {
        tokio::select! {
            command = commands.recv() => match command? {
                SessionCommand::Activate { code, reply } => {
                    match activate(ctx, &code, shutdown).await {
                        Ok(credentials) => {
                            let device_identifier = credentials.device_identifier.clone();
                            let _ = reply.send(Ok(Activated { device_identifier }));
                            return Some(credentials);
                        }
                        Err(error) => { let _ = reply.send(Err(error)); }
                    }
                }
                SessionCommand::FactoryReset { reply } => {
                    let _ = reply.send(super::reset::factory_reset(ctx, None).await);
                }
            },
            _ = poll.tick() => {
                if let Some(code) = take_code_file(ctx) {
                    if let Ok(credentials) = activate(ctx, &code, shutdown).await {
                        return Some(credentials);
                    }
                }
            }
            _ = shutdown.recv() => return None,
        }
    }
}

/// Reads and deletes the provisioning code file; a malformed code is logged and dropped.
fn take_code_file(ctx: &SessionContext) -> Option<ActivationCode> {
    let bytes = ctx.state.read(CODE_FILE).ok()??;
    if let Err(e) = ctx.state.remove(CODE_FILE) {
        tracing::error!("cannot delete the activation code file: {e}");
    }
    match ActivationCode::parse(&String::from_utf8_lossy(&bytes)) {
        Ok(code) => {
            tracing::info!(
                "activation code file found in the state directory (consumed and deleted)"
            );
            Some(code)
        }
        Err(e) => {
            tracing::error!(
                "activation code file {}: {e}",
                ctx.state.file(CODE_FILE).display()
            );
            None
        }
    }
}

/// GDS gate, then the SRP exchange; stores the credentials and installs the trustList.
async fn activate(
    ctx: &SessionContext,
    code: &ActivationCode,
    shutdown: &mut Shutdown,
) -> Result<Credentials, SessionError> {
    let Some(activation_url) = ctx.activation_url.clone() else {
        return Err(SessionError::NoActivationUrl);
    };
    let previous = ctx.status.borrow().activation.clone();
    ctx.set_activation(ActivationState::Activating);
    let result = async {
        wait_for_gds(ctx, shutdown).await?;
        let http = HttpClient::unverified_for_activation(ctx.timeout())?;
        let client = ActivationClient::new(http, &activation_url);
        let data = client.activate(code, &ctx.device_info()).await?;
        log_trust_list(
            data.trust_list.as_deref(),
            ctx.config.cloud.trust_refresh_secs,
        );
        let credentials = Credentials::from_activation(&data, &ctx.gds_url, SystemTime::now())
            .with_activation_url(&activation_url);
        credentials.save(&ctx.state)?;
        Ok(credentials)
    }
    .await;
    match &result {
        Ok(credentials) => {
            tracing::info!(
                message_id = message_id::ACTIVATED,
                device_identifier = %credentials.device_identifier,
                "activation succeeded; cloud settings are locked until a factory reset"
            );
        }
        Err(error) => {
            tracing::error!(
                message_id = message_id::ACTIVATION_FAILED,
                "activation failed: {error}"
            );
            ctx.set_activation(previous);
        }
    }
    result
}

/// Activation proceeds only when GDS reports `online` (wire profile §1.1).
async fn wait_for_gds(ctx: &SessionContext, shutdown: &mut Shutdown) -> Result<(), SessionError> {
    let mut status = ctx.status.subscribe();
    let wait = async {
        loop {
            if status.borrow_and_update().cloud.state == CloudState::Online {
                return Ok(());
            }
            if status.changed().await.is_err() {
                return Err(SessionError::Stopping);
            }
        }
    };
    tokio::select! {
        result = tokio::time::timeout(Duration::from_secs(120), wait) => {
            result.map_err(|_| SessionError::GdsNotOnline)?
        }
        _ = shutdown.recv() => Err(SessionError::Stopping),
    }
}

/// Seed 000's log lines for the service data's CA list.
pub(super) fn log_trust_list(trust_list: Option<&[String]>, refresh_secs: u64) {
    match trust_list {
        Some(list) => {
            tracing::info!(
                "process_additional_CAs: Parsed {} additional CA certificate(s)",
                list.len()
            );
            tracing::info!("process_additional_CAs: Updated CA certificates from srpconfig");
        }
        None => {
            tracing::info!(
                "process_additional_CAs: No 'trustList' sub-document in configData. No CA certificates will be updated"
            );
            tracing::info!("process_additional_CAs: Parsed 0 additional CA certificate(s)");
        }
    }
    tracing::info!("Restarting CA trust store refresh in {refresh_secs} second(s)");
}

/// The platform/config trust plus the stored trustList.
pub(super) fn trust_with(ctx: &SessionContext, credentials: &Credentials) -> TrustStore {
    let mut trust = ctx.base_trust.clone();
    for (index, pem) in credentials.trust_list.iter().enumerate() {
        if let Err(e) = trust.add_pem(pem.as_bytes(), &format!("trustList[{index}]")) {
            tracing::error!("{e}");
        }
    }
    trust
}
