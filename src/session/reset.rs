//! `roomd factory-reset`: unregister (best effort), empty the bookings, wipe the state.

use std::time::Duration;

use super::SessionContext;
use super::error::{FactoryResetDone, SessionError};
use crate::cloud::authed::AuthedClient;
use crate::cloud::registration;
use crate::platform::logging::message_id;
use crate::status::{ActivationState, RegistrationState};

/// Unregisters when registered (best effort), then wipes the state directory.
pub(super) async fn factory_reset(
    ctx: &SessionContext,
    registered: Option<(AuthedClient, String)>,
) -> Result<FactoryResetDone, SessionError> {
    if let Some((client, url)) = registered {
        match registration::unregister(&client, &url).await {
            Ok(()) => tracing::info!("unregistered from WDM"),
            Err(e) => tracing::warn!("could not unregister from WDM ({e}); wiping anyway"),
        }
    }
    ctx.bookings.update(|m| {
        *m = Default::default();
        ((), true)
    });
    // The cache writer persists the emptied model in the background: let it finish first,
    // so its temporary file does not vanish under the wipe (or reappear after it).
    let cleared = *ctx.bookings.generation().borrow();
    let mut persisted = ctx.bookings.persisted();
    if tokio::time::timeout(
        Duration::from_secs(5),
        persisted.wait_for(|g| *g >= cleared),
    )
    .await
    .is_err()
    {
        tracing::warn!(
            "factory reset: the bookings cache was not written within 5 s; wiping anyway"
        );
    }
    let removed = ctx.state.wipe()?;
    ctx.set_activation(ActivationState::NotActivated);
    ctx.status
        .send_modify(|s| s.registration = Default::default());
    ctx.set_registration(RegistrationState::Disconnected, None);
    tracing::warn!(
        message_id = message_id::FACTORY_RESET,
        "factory reset: credentials and state wiped ({removed} file(s))"
    );
    Ok(FactoryResetDone { removed })
}
