//! The faults the soak injects, and the reconnect-schedule check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roomd_sim::{ClosedBy, ConnectionInfo, Fault as HttpFault, SimHandle};

use crate::rng::Rng;
use crate::roomd::RoomdFiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The event socket's TCP connection dropped without a close frame.
    WebsocketDrop,
    /// The server closes the event socket with a close code (every code of the profile's table).
    CloseCode,
    /// Half-open: the server neither reads nor writes, TCP stays up (ping timeout finds it).
    HalfOpen,
    /// Pongs withheld until roomd gives up on the socket.
    WithheldPongs,
    /// Every HTTPS listener closed and every connection dropped, back after a down time.
    SimRestart,
    /// 429 with `Retry-After` for the next requests, whatever their route.
    TooManyRequestsStorm,
    /// The KMS answers 503.
    KmsOutage,
    /// A calendar list page fails.
    CalendarPageFailure,
    /// roomd's wall clock jumps (libfaketime).
    ClockJump,
    /// Every access token expires (the next request gets 401, roomd refreshes).
    TokenExpiry,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::WebsocketDrop,
        FaultKind::CloseCode,
        FaultKind::HalfOpen,
        FaultKind::WithheldPongs,
        FaultKind::SimRestart,
        FaultKind::TooManyRequestsStorm,
        FaultKind::KmsOutage,
        FaultKind::CalendarPageFailure,
        FaultKind::ClockJump,
        FaultKind::TokenExpiry,
    ];

    /// Relative frequency.
    fn weight(self) -> u64 {
        match self {
            FaultKind::WebsocketDrop => 10,
            FaultKind::CloseCode => 14,
            FaultKind::HalfOpen => 3,
            FaultKind::WithheldPongs => 3,
            FaultKind::SimRestart => 6,
            FaultKind::TooManyRequestsStorm => 12,
            FaultKind::KmsOutage => 10,
            FaultKind::CalendarPageFailure => 10,
            FaultKind::ClockJump => 8,
            FaultKind::TokenExpiry => 7,
        }
    }

    /// Faults that only bite while they last: the soak always awaits the reconnect after them.
    pub fn needs_awaiting(self) -> bool {
        matches!(self, FaultKind::HalfOpen | FaultKind::WithheldPongs)
    }

    /// Whether the fault ends the event socket (the soak then awaits the reconnect).
    pub fn drops_socket(self) -> bool {
        matches!(
            self,
            FaultKind::WebsocketDrop
                | FaultKind::CloseCode
                | FaultKind::HalfOpen
                | FaultKind::WithheldPongs
                | FaultKind::SimRestart
        )
    }
}

/// Close codes and reasons: each row of the wire profile's close table (reconnect, refresh the
/// token, register again, stop, refused) and an unknown code.
pub const CLOSE_CODES: [(u16, &str); 11] = [
    (1000, "idle"),
    (1000, "bye"),
    (1001, "going away"),
    (1008, "policy violation"),
    (1011, "internal error"),
    (4000, "replaced"),
    (4001, "replaced after switchover"),
    (4400, "bad authorization frame"),
    (4401, "invalid token"),
    (4403, "unknown registration"),
    (4500, "unknown code"),
];

#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub kind: FaultKind,
    /// Close code index, down time, storm size, ... depending on the kind.
    param: u64,
}

impl Fault {
    pub fn pick(rng: &mut Rng) -> Self {
        let total: u64 = FaultKind::ALL.iter().map(|k| k.weight()).sum();
        let mut roll = rng.below(total);
        let mut kind = FaultKind::WebsocketDrop;
        for k in FaultKind::ALL {
            if roll < k.weight() {
                kind = k;
                break;
            }
            roll -= k.weight();
        }
        let param = match kind {
            FaultKind::CloseCode => rng.below(CLOSE_CODES.len() as u64),
            FaultKind::SimRestart => 50 + rng.below(600),
            // Each 429 that meets a reconnect costs a backoff step: 3–8 keeps the soak in bounds.
            FaultKind::TooManyRequestsStorm => 3 + rng.below(6),
            FaultKind::KmsOutage => 1 + rng.below(6),
            FaultKind::CalendarPageFailure => rng.below(3 * 3 * 3),
            // ±1 min … ±2 h, or back to true time one time in three.
            FaultKind::ClockJump => rng.below(3 * 7200),
            _ => 0,
        };
        Self { kind, param }
    }

    pub async fn inject(
        &self,
        sim: &SimHandle,
        files: &RoomdFiles,
        rng: &mut Rng,
        timeline: &mut Timeline,
    ) -> anyhow::Result<()> {
        match self.kind {
            FaultKind::WebsocketDrop => {
                sim.abort_websockets();
            }
            FaultKind::CloseCode => {
                let (code, reason) = CLOSE_CODES[self.param as usize];
                sim.close_websockets(code, reason)?;
            }
            FaultKind::HalfOpen => {
                sim.mercury_stall(true);
            }
            FaultKind::WithheldPongs => sim.mercury_set_pong_mode("withhold")?,
            FaultKind::SimRestart => {
                // A restart during a restart is refused (409): let the previous one end first.
                if let Some((start, down)) = timeline.restarts.last() {
                    let back = start + down + 100;
                    if back > now_ms() {
                        tokio::time::sleep(Duration::from_millis(back - now_ms())).await;
                    }
                }
                let down = Duration::from_millis(self.param);
                // The previous restart's re-bind may still be on its way.
                let mut tries = 0;
                while let Err(e) = sim.restart(down) {
                    tries += 1;
                    if tries > 50 || !e.to_string().contains("already under way") {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                timeline.restarts.push((now_ms(), self.param));
            }
            FaultKind::TooManyRequestsStorm => sim.arm_fault(http_fault("/*", 429, self.param))?,
            FaultKind::KmsOutage => sim.arm_fault(http_fault("/kms/*", 503, self.param))?,
            FaultKind::CalendarPageFailure => {
                let page = 1 + self.param % 3;
                let status = [500, 503, 429][(self.param / 3 % 3) as usize];
                let count = 1 + (self.param / 9) as u32;
                sim.calendar_fail_page(page, status, count)?;
            }
            FaultKind::ClockJump => {
                if let Some(f) = &files.faketime {
                    let offset = if self.param < 7200 {
                        0
                    } else {
                        let secs = 60 + (self.param % 7200) as i64;
                        if rng.below(2) == 0 { secs } else { -secs }
                    };
                    f.set_offset_secs(offset);
                }
            }
            FaultKind::TokenExpiry => sim.expire_access_tokens(),
        }
        Ok(())
    }

    /// Undoes what would keep every later socket failing too.
    pub fn after_reconnect(&self, sim: &SimHandle) {
        if self.kind == FaultKind::WithheldPongs {
            sim.mercury_set_pong_mode("answer")
                .expect("pong mode answer");
        }
    }
}

fn http_fault(path: &str, status: u16, count: u64) -> HttpFault {
    HttpFault {
        path: path.into(),
        method: None,
        status,
        count: count as u32,
        retry_after: Some(1),
        body: None,
    }
}

/// What the schedule check needs beyond the simulator's connection list.
#[derive(Debug, Default)]
pub struct Timeline {
    /// (start ms since the epoch, down ms) of every simulator restart.
    pub restarts: Vec<(u64, u64)>,
    /// When event-socket upgrade requests reached the simulator (ms since the epoch); those
    /// that did not become a connection were refused (429 storms).
    pub upgrades_at: Vec<u64>,
    /// When WDM registration requests (refreshes, re-registrations) reached the simulator.
    pub registrations_at: Vec<u64>,
}

impl Timeline {
    /// Moves the simulator's request log into the timeline (and empties the log, which is
    /// bounded to the last 10,000 requests).
    pub fn collect(&mut self, sim: &SimHandle) {
        let requests = sim.received();
        sim.clear_received();
        for r in &requests {
            if r.path.starts_with("/mercury/registrations/") {
                self.upgrades_at.push(r.at_ms);
            } else if r.path.starts_with("/wdm/api/v1/devices") {
                self.registrations_at.push(r.at_ms);
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Back to calm before an equality check: no armed faults, true time, pongs answered.
pub fn calm(sim: &SimHandle, files: &RoomdFiles) {
    sim.clear_faults();
    sim.calendar_clear_faults();
    sim.mercury_set_pong_mode("answer").expect("pong mode");
    if let Some(f) = &files.faketime {
        f.set_offset_secs(0);
    }
}

/// The reconnect gaps and how many broke the schedule.
#[derive(Debug, Default)]
pub struct Reconnects {
    pub gaps_ms: Vec<u64>,
    pub violations: Vec<String>,
    pub bound_note: String,
}

/// Every gap between a socket's close and the next socket's open, against the schedule: each
/// attempt waits at most `backoff_max` + 20 % jitter; after a close that stops reconnecting
/// (4000, 1000 with another reason, 4400, 4403) the next successful registration refresh
/// restarts it: the refresh interval, plus one cloud retry (`retry_max` + 20 %) for each WDM
/// request in the gap beyond the first (a refresh that met a 429 storm or a restart).
/// Attempts refused inside the gap (429 on the upgrade) and simulator down time add to the bound;
/// 1 s of slack covers the TLS, upgrade and token refresh of the attempt itself.
pub fn check_reconnects(
    conns: &[ConnectionInfo],
    files: &RoomdFiles,
    timeline: &Timeline,
) -> Reconnects {
    let ws = &files.config.websocket;
    let attempt_max_ms = ws.backoff_max_secs * 1000 * 12 / 10;
    let refresh_ms = files.config.cloud.registration_refresh_secs * 1000;
    let cloud_retry_ms = files.config.cloud.retry_max_secs * 1000 * 12 / 10;
    let slack_ms = 1000;
    let mut out = Reconnects {
        bound_note: format!(
            "each attempt ≤ {attempt_max_ms} ms (backoff cap {} s + 20 % jitter); after a stopping \
             close code + {refresh_ms} ms registration refresh + {cloud_retry_ms} ms per retried WDM \
             request; + simulator down time, + {slack_ms} ms slack",
            ws.backoff_max_secs
        ),
        ..Default::default()
    };
    for pair in conns.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        let Some(closed) = prev.closed_at_ms else {
            continue;
        };
        let gap = next.opened_at_ms.saturating_sub(closed);
        let refused_attempts = timeline
            .upgrades_at
            .iter()
            .filter(|&&t| t > closed && t < next.opened_at_ms)
            .count() as u64;
        let down: u64 = timeline
            .restarts
            .iter()
            .filter(|(start, down)| start + down > closed && *start < next.opened_at_ms)
            .map(|(_, down)| *down)
            .sum();
        let stopping = matches!(prev.close_code, Some(4000 | 4400 | 4403))
            || (prev.close_code == Some(1000)
                && prev.closed_by == Some(ClosedBy::Server)
                && prev.close_reason.as_deref() == Some("bye"));
        let retried_registrations = timeline
            .registrations_at
            .iter()
            .filter(|&&t| t > closed && t < next.opened_at_ms)
            .count()
            .saturating_sub(1) as u64;
        let bound = (refused_attempts + 1) * attempt_max_ms
            + down
            + slack_ms
            + if stopping {
                refresh_ms + retried_registrations * cloud_retry_ms
            } else {
                0
            };
        out.gaps_ms.push(gap);
        if gap > bound {
            out.violations.push(format!(
                "connection {} → {}: {gap} ms after close {:?} {:?} (bound {bound} ms, {refused_attempts} refused attempt(s), {retried_registrations} retried registration(s), {down} ms down)",
                prev.id, next.id, prev.close_code, prev.close_reason
            ));
        }
    }
    out
}
