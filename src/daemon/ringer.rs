//! Rings the speaker while a call is ringing (an incoming call not yet answered or
//! declined), at the room's volume; speaker mute silences it as it does the call.

use tokio::sync::watch;

use crate::calls::CallState;
use crate::hw::board::ElementSpec;
use crate::media::RoomControls;
use crate::media::ring::Ringer;
use crate::status::DeviceStatus;

use crate::shutdown::Shutdown;

pub async fn run(
    speaker: ElementSpec,
    mut status: watch::Receiver<DeviceStatus>,
    mut controls: watch::Receiver<RoomControls>,
    mut shutdown: Shutdown,
) {
    let mut ringer: Option<Ringer> = None;
    loop {
        let ringing = status
            .borrow_and_update()
            .calls
            .active
            .iter()
            .any(|c| c.status == CallState::Ringing);
        let (volume, muted) = {
            let c = controls.borrow_and_update();
            (c.volume, c.speaker_muted)
        };
        let volume = if muted { 0 } else { volume };
        match (&ringer, ringing) {
            (None, true) => match Ringer::start(&speaker, volume) {
                Ok(r) => {
                    tracing::info!("ringing");
                    ringer = Some(r);
                }
                Err(e) => tracing::error!("cannot play the ring tone: {e}"),
            },
            (Some(_), false) => {
                ringer = None;
                tracing::info!("ring tone stopped");
            }
            (Some(r), true) => r.set_volume(volume),
            (None, false) => {}
        }
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            changed = controls.changed() => if changed.is_err() { return },
            _ = shutdown.recv() => return,
        }
    }
}
