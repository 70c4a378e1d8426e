//! The "alt" listener: the primary host of the U2C hostmap, switchable at run time so the agent's
//! failover can be tested. The main and proxy listeners use the same switch (`serve`/`refuse`
//! only) for a front-end restart (`crate::restart`).
//!
//! Modes: `serve` (normal), `503` (every request answers 503 `{"message":"host failing"}`), `refuse`
//! (the listening socket is closed, so connects are refused, and open connections are dropped; set
//! back to `serve` or `503`, the same port is bound again).
//!
//! Switching is synchronous: when [`AltControl::set_mode`] returns, a connect already sees the new
//! state, because the listening socket is shut down (or bound) right there, not later by the task.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::shutdown::Shutdown;
use crate::state::lock;

/// How the alt host behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AltMode {
    Serve,
    Failing,
    Refuse,
}

impl AltMode {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "serve" => Ok(Self::Serve),
            "503" => Ok(Self::Failing),
            "refuse" => Ok(Self::Refuse),
            other => bail!("unknown alt host mode {other:?}; use serve, 503 or refuse"),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Failing => "503",
            Self::Refuse => "refuse",
        }
    }
}

#[derive(Debug)]
struct Inner {
    mode: AltMode,
    /// A duplicate of the listening socket's descriptor, kept to shut the socket down from here.
    active: Option<std::net::TcpListener>,
    /// A freshly bound socket the serving task has not picked up yet.
    pending: Option<std::net::TcpListener>,
}

/// The alt host's mode and listening socket; shared by the admin API, the handle and the task.
#[derive(Debug)]
pub(crate) struct AltControl {
    /// The listener's name in logs and recorded requests: `alt`, `https` or `proxy`.
    name: &'static str,
    addr: SocketAddr,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl AltControl {
    /// Binds `addr` (port 0 picks one) as the alt host and starts in `serve` mode.
    pub(crate) fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::bind_named(addr, "alt")
    }

    /// As [`AltControl::bind`], for the listener called `name`.
    pub(crate) fn bind_named(addr: SocketAddr, name: &'static str) -> anyhow::Result<Self> {
        let (listener, dup) = bind_std(addr, name)?;
        let addr = listener
            .local_addr()
            .with_context(|| format!("{name} listener address"))?;
        Ok(Self {
            name,
            addr,
            inner: Mutex::new(Inner {
                mode: AltMode::Serve,
                active: Some(dup),
                pending: Some(listener),
            }),
            changed: watch::Sender::new(0),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn mode(&self) -> AltMode {
        lock(&self.inner).mode
    }

    /// Switches the mode. Leaving `refuse` binds the same port again; an error leaves the mode as it was.
    pub(crate) fn set_mode(&self, mode: AltMode) -> anyhow::Result<()> {
        let mut inner = lock(&self.inner);
        let was = inner.mode;
        if mode == AltMode::Refuse && was != AltMode::Refuse {
            inner.pending = None;
            if let Some(sock) = inner.active.take() {
                // Shutting a listening socket down closes it for every descriptor (Linux): connects
                // are refused from now on and the task's accept fails. The task then drops its copy.
                if let Err(e) = socket2::SockRef::from(&sock).shutdown(std::net::Shutdown::Read) {
                    tracing::debug!(listener = self.name, error = %e, "listener shutdown; the task will close it");
                }
            }
        } else if mode != AltMode::Refuse && was == AltMode::Refuse {
            let (listener, dup) = bind_std(self.addr, self.name).with_context(|| {
                format!("re-binding the {} listener on {}", self.name, self.addr)
            })?;
            inner.active = Some(dup);
            inner.pending = Some(listener);
        }
        inner.mode = mode;
        drop(inner);
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
        tracing::info!(
            listener = self.name,
            from = was.as_str(),
            to = mode.as_str(),
            "listener mode changed"
        );
        Ok(())
    }

    fn take_pending(&self) -> Option<std::net::TcpListener> {
        lock(&self.inner).pending.take()
    }

    /// Resolves once the mode is `refuse`.
    async fn refused(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            if self.mode() == AltMode::Refuse {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves at the next mode change.
    async fn next_change(&self, rx: &mut watch::Receiver<u64>) {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn bind_std(
    addr: SocketAddr,
    name: &str,
) -> anyhow::Result<(std::net::TcpListener, std::net::TcpListener)> {
    // std sets SO_REUSEADDR on Unix, so re-binding right after a close works despite TIME_WAIT.
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the {name} listener on {addr}"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("{name} listener non-blocking"))?;
    let dup = listener
        .try_clone()
        .with_context(|| format!("duplicating the {name} listener"))?;
    Ok((listener, dup))
}

/// Serves the listener for the simulator's lifetime, following the mode.
pub(crate) async fn run(
    control: Arc<AltControl>,
    tls: TlsAcceptor,
    router: Router,
    shutdown: Shutdown,
) {
    let mut rx = control.changed.subscribe();
    loop {
        let Some(std_listener) = control.take_pending() else {
            tokio::select! {
                () = shutdown.wait() => return,
                () = control.next_change(&mut rx) => continue,
            }
        };
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listener = control.name, error = %e, "listener unusable; waiting for the next mode change");
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = control.next_change(&mut rx) => continue,
                }
            }
        };
        let stopped = crate::http::serve_until(
            listener,
            Some(tls.clone()),
            router.clone(),
            shutdown.clone(),
            control.refused(),
            control.name,
        )
        .await;
        if !stopped {
            return;
        }
    }
}

/// Middleware on the alt router: 503 unless the mode is `serve`.
pub(crate) async fn gate(
    State(control): State<Arc<AltControl>>,
    req: Request,
    next: Next,
) -> Response {
    if control.mode() == AltMode::Serve {
        return next.run(req).await;
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "message": "host failing" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        for m in ["serve", "503", "refuse"] {
            assert_eq!(AltMode::parse(m).expect(m).as_str(), m);
        }
        assert!(AltMode::parse("down").is_err());
    }

    #[tokio::test]
    async fn refuse_closes_and_serve_rebinds_the_same_port() {
        let control = AltControl::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = control.addr();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
        // Held as the serving task would hold it: the shutdown alone must refuse connects.
        let held = control.take_pending().expect("pending listener");
        control.set_mode(AltMode::Refuse).expect("refuse");
        let err = tokio::net::TcpStream::connect(addr)
            .await
            .expect_err("refused while a descriptor is still open");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        // Re-binding works even before the task has dropped its (shut down) descriptor.
        control.set_mode(AltMode::Failing).expect("503");
        drop(held);
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
        assert_eq!(control.mode(), AltMode::Failing);
    }
}
