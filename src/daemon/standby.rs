//! The standby timer: after `device.standby_delay_mins` with no call and no touch the room
//! goes to standby; a call wakes it (and keeps it awake while it lasts).

use std::time::{Duration, Instant};

use crate::room::Room;
use crate::shutdown::Shutdown;

pub async fn run(room: Room, delay: Duration, mut shutdown: Shutdown) {
    let mut activity = room.activity();
    let mut status = room.status();
    let mut controls = room.controls();
    let mut in_call = false;
    loop {
        let calls = !status.borrow_and_update().calls.active.is_empty();
        if calls != in_call {
            // A call wakes the room; after one the timer counts from its end.
            room.wake(if calls { "call" } else { "call ended" });
            in_call = calls;
        }
        let asleep = controls.borrow_and_update().standby;
        let last = *activity.borrow_and_update();
        let deadline = (!delay.is_zero() && !in_call && !asleep).then(|| last + delay);
        tokio::select! {
            changed = activity.changed() => if changed.is_err() { return },
            changed = status.changed() => if changed.is_err() { return },
            changed = controls.changed() => if changed.is_err() { return },
            () = sleep_until(deadline) => {
                let _ = room.standby(&format!("idle for {:.1} min", delay.as_secs_f64() / 60.0));
            }
            _ = shutdown.recv() => return,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
