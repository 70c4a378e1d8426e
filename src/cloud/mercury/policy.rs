//! What to do when the event socket closes: the close-code table of wire profile §3, as a
//! pure function so every row is tested without a socket.

/// How a socket ended, as the connection task saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The server's close code; `None` when the connection ended without a close frame
    /// (treated as 1006) or never opened.
    pub code: Option<u16>,
    pub reason: String,
    /// The socket had become online (first buffer_state / registration_status seen).
    pub was_online: bool,
    /// Closed by roomd itself (pong timeout, pong mismatch, forced after a switchover,
    /// stopping), or failed to connect at all.
    pub by_us: bool,
}

/// The supervisor's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseAction {
    /// Reconnect after the backoff delay.
    Retry,
    /// Refresh the access token, then reconnect after the backoff delay.
    RefreshTokenThenRetry,
    /// Do not reconnect; the server refused us for a reason a retry will not fix.
    Abort(String),
    /// Do not reconnect: this socket was replaced by another client, or closed normally.
    Stop(String),
    /// Register with WDM again (the socket URL may change), then reconnect slowly.
    ReregisterThenSlowRetry,
}

/// `1000` reasons after which a reconnect is expected (compared case-insensitively).
const NORMAL_RECONNECT_REASONS: [&str; 4] = [
    "idle",
    "done (forced)",
    "pong not received",
    "pong mismatch",
];

/// The profile's table. `old_socket_of_switchover` marks the socket a make-before-break
/// switch is retiring (its 4001 is expected and ignored by the caller).
pub fn on_close(info: &CloseInfo) -> CloseAction {
    if info.by_us {
        return CloseAction::Retry;
    }
    // A connection that ended without a close frame is an abnormal closure.
    let code = info.code.unwrap_or(1006);
    if !info.was_online {
        return match code {
            4400 | 4403 => CloseAction::Abort(format!(
                "the event service refused the connection ({code} {})",
                info.reason
            )),
            4401 => CloseAction::RefreshTokenThenRetry,
            _ => CloseAction::Retry,
        };
    }
    match code {
        4000 => CloseAction::Stop(format!("replaced by another connection ({})", info.reason)),
        // 4001 on the current socket (not the retired one): reconnect.
        4001 | 1001 | 1005 | 1006 | 1011 => CloseAction::Retry,
        4401 => CloseAction::RefreshTokenThenRetry,
        1000 => {
            let reason = info.reason.trim().to_ascii_lowercase();
            if NORMAL_RECONNECT_REASONS.contains(&reason.as_str()) {
                CloseAction::Retry
            } else {
                CloseAction::Stop(format!("closed normally by the server ({})", info.reason))
            }
        }
        _ => CloseAction::ReregisterThenSlowRetry,
    }
}

/// A refused upgrade's HTTP status as the close code it stands for (some servers refuse
/// before the upgrade rather than closing after it).
pub fn refused_status_as_code(status: u16) -> Option<u16> {
    match status {
        400 => Some(4400),
        401 => Some(4401),
        403 | 404 => Some(4403),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(code: Option<u16>, reason: &str, was_online: bool) -> CloseAction {
        on_close(&CloseInfo {
            code,
            reason: reason.into(),
            was_online,
            by_us: false,
        })
    }

    #[test]
    fn before_online() {
        assert!(matches!(
            closed(Some(4400), "bad", false),
            CloseAction::Abort(_)
        ));
        assert!(matches!(
            closed(Some(4403), "no", false),
            CloseAction::Abort(_)
        ));
        assert_eq!(
            closed(Some(4401), "", false),
            CloseAction::RefreshTokenThenRetry
        );
        for code in [Some(1000), Some(1008), Some(4000), Some(1011), None] {
            assert_eq!(closed(code, "x", false), CloseAction::Retry, "{code:?}");
        }
    }

    #[test]
    fn after_online() {
        assert!(matches!(
            closed(Some(4000), "replaced", true),
            CloseAction::Stop(_)
        ));
        for code in [
            Some(1001),
            Some(1005),
            Some(1006),
            Some(1011),
            Some(4001),
            None,
        ] {
            assert_eq!(closed(code, "", true), CloseAction::Retry, "{code:?}");
        }
        assert_eq!(
            closed(Some(4401), "", true),
            CloseAction::RefreshTokenThenRetry
        );
        for reason in [
            "idle",
            "Done (forced)",
            "Pong not received",
            "pong mismatch",
        ] {
            assert_eq!(
                closed(Some(1000), reason, true),
                CloseAction::Retry,
                "{reason}"
            );
        }
        assert!(matches!(
            closed(Some(1000), "bye", true),
            CloseAction::Stop(_)
        ));
        for code in [1003, 1008, 1002, 4500, 3000] {
            assert_eq!(
                closed(Some(code), "", true),
                CloseAction::ReregisterThenSlowRetry,
                "{code}"
            );
        }
    }

    #[test]
    fn our_own_closes_always_retry() {
        let info = CloseInfo {
            code: Some(1000),
            reason: "anything".into(),
            was_online: true,
            by_us: true,
        };
        assert_eq!(on_close(&info), CloseAction::Retry);
        assert_eq!(refused_status_as_code(401), Some(4401));
        assert_eq!(refused_status_as_code(502), None);
    }
}
