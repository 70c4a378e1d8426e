//! The control socket: a Unix stream socket in the runtime directory (mode 0660, so the
//! `roomd` group may use it) through which `roomd status` and later field commands talk
//! to the running daemon. One JSON request line, one JSON response line, then close.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::activation::code::ActivationCode;
use crate::bookings::store::BookingsStore;
use crate::session::{FailureKind, SessionError, SessionHandle};
use crate::shutdown::Shutdown;
use crate::status::DeviceStatus;

/// Requests longer than this are refused: every real request is a few dozen bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// Activation waits for GDS and the SRP exchange; the client waits this long for the answer.
pub const LONG_COMMAND_DEADLINE: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    Ping,
    /// Activate with a code (validated on both ends; never logged).
    Activate {
        #[serde(serialize_with = "crate::secret::serialize_exposed")]
        code: crate::secret::Secret<String>,
    },
    /// Unregister and wipe credentials and state.
    FactoryReset,
    /// The bookings list (`bookings.txt`).
    Bookings,
    /// Set an xAPI user's password (`roomd passwd`; never logged).
    Passwd {
        user: String,
        #[serde(serialize_with = "crate::secret::serialize_exposed")]
        password: crate::secret::Secret<String>,
    },
    /// Apply a new `log.level` (the merged value after `roomd set-log-level` wrote its
    /// drop-in) to the running log filter; `--log-level` and `RUST_LOG` still win.
    SetLogLevel {
        level: String,
    },
}

impl ControlRequest {
    /// The request's name for the log (never its arguments: some are secrets).
    pub fn name(&self) -> &'static str {
        match self {
            ControlRequest::Status => "status",
            ControlRequest::Ping => "ping",
            ControlRequest::Activate { .. } => "activate",
            ControlRequest::FactoryReset => "factory_reset",
            ControlRequest::Bookings => "bookings",
            ControlRequest::Passwd { .. } => "passwd",
            ControlRequest::SetLogLevel { .. } => "set_log_level",
        }
    }
}

/// What the control socket answers from.
#[derive(Debug, Clone)]
pub struct ControlContext {
    pub status: watch::Receiver<DeviceStatus>,
    pub started: Instant,
    pub session: SessionHandle,
    pub bookings: BookingsStore,
    pub state: crate::store::StateDir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ControlResponse {
    Status {
        status: serde_json::Value,
    },
    Pong {
        version: String,
    },
    Done {
        message: String,
    },
    /// Preformatted text (`roomd bookings`).
    Text {
        text: String,
    },
    Error {
        message: String,
        /// What kind of failure, when the session refused a command (`roomd activate`,
        /// `roomd factory-reset`); the CLI's exit status follows it. Absent otherwise, and
        /// from daemons older than the field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<FailureKind>,
    },
}

impl ControlResponse {
    /// An error without a failure kind.
    pub fn error(message: impl Into<String>) -> Self {
        ControlResponse::Error {
            message: message.into(),
            kind: None,
        }
    }

    /// A session command's outcome.
    fn from_session<T: std::fmt::Display>(result: Result<T, SessionError>) -> Self {
        match result {
            Ok(done) => ControlResponse::Done {
                message: done.to_string(),
            },
            Err(e) => ControlResponse::Error {
                message: e.to_string(),
                kind: Some(e.kind()),
            },
        }
    }
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ControlError {
    /// roomd is not running (no control socket at {0})
    NotRunning(PathBuf),
    /// permission denied on {0}: run as root or as a member of the roomd group
    PermissionDenied(PathBuf),
    /// another roomd is already running (its control socket {0} answers)
    AlreadyRunning(PathBuf),
    /// control socket {path}: {source}
    Io { path: PathBuf, source: io::Error },
    /// roomd did not answer on {0} within {1:?}
    Timeout(PathBuf, Duration),
    /// roomd sent an answer that is not valid: {0}
    BadResponse(String),
}

fn io_error(path: &Path, source: io::Error) -> ControlError {
    match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.to_path_buf())
        }
        io::ErrorKind::PermissionDenied => ControlError::PermissionDenied(path.to_path_buf()),
        _ => ControlError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Binds the socket, replacing a stale one left by a crash, refusing if a daemon answers.
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| io_error(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io_error(path, e))?;
    Ok(listener)
}

/// Answers requests until shutdown, then removes the socket file.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    context: ControlContext,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let context = context.clone();
                    // Each client is bounded by a deadline, so no task outlives shutdown by much.
                    // The span keeps the client's events under ROOMD_EVENT=control.
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &context).await {
                            tracing::warn!(error = %e, "control client failed");
                        }
                    }.instrument(tracing::Span::current()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.recv() => break,
        }
    }
    drop(listener);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove control socket");
    }
}

async fn answer(stream: UnixStream, context: &ControlContext) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(
        CLIENT_DEADLINE,
        BufReader::new(read.take(MAX_REQUEST_BYTES as u64 + 1)).read_line(&mut line),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client sent no request"))??;
    let response = if read > MAX_REQUEST_BYTES {
        ControlResponse::error(format!("request longer than {MAX_REQUEST_BYTES} bytes"))
    } else {
        match parse_request(line.as_bytes()) {
            Ok(request) => {
                tracing::debug!(request = request.name(), "control request");
                handle(request, context).await
            }
            Err(message) => {
                tracing::warn!("{message}");
                ControlResponse::error(message)
            }
        }
    };
    let mut bytes = serde_json::to_vec(&response).map_err(io::Error::other)?;
    bytes.push(b'\n');
    tokio::time::timeout(CLIENT_DEADLINE, write.write_all(&bytes))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
    write.shutdown().await
}

/// Parses one request line (the bytes a local client sent).
pub fn parse_request(line: &[u8]) -> Result<ControlRequest, String> {
    serde_json::from_slice(line.trim_ascii()).map_err(|e| format!("bad request: {e}"))
}

async fn handle(request: ControlRequest, context: &ControlContext) -> ControlResponse {
    let ControlContext {
        status,
        started,
        session,
        bookings,
        state,
    } = context;
    match request {
        ControlRequest::Activate { code } => match ActivationCode::parse(code.expose()) {
            Ok(code) => ControlResponse::from_session(session.activate(code).await),
            Err(e) => ControlResponse::error(e.to_string()),
        },
        ControlRequest::FactoryReset => {
            ControlResponse::from_session(session.factory_reset().await)
        }
        ControlRequest::Status => ControlResponse::Status {
            status: crate::api::xstatus::tree(&status.borrow(), started.elapsed()),
        },
        ControlRequest::Bookings => ControlResponse::Text {
            text: bookings.text(),
        },
        ControlRequest::Passwd { user, password } => {
            let state = state.clone();
            let set = tokio::task::spawn_blocking(move || {
                crate::api::xapi::auth::set_password(&state, &user, password.expose())
                    .map(|()| user)
            })
            .await;
            match set {
                Ok(Ok(user)) => {
                    tracing::info!("xAPI password of user {user:?} changed");
                    ControlResponse::Done {
                        message: format!("password of xAPI user {user} set"),
                    }
                }
                Ok(Err(e)) => ControlResponse::error(e.to_string()),
                Err(e) => ControlResponse::error(format!("setting the password failed: {e}")),
            }
        }
        ControlRequest::SetLogLevel { level } => {
            match crate::platform::logging::apply_config_level(&level) {
                Ok(change) => {
                    tracing::info!("{change} (roomd set-log-level)");
                    ControlResponse::Done {
                        message: change.to_string(),
                    }
                }
                Err(e) => ControlResponse::error(e.to_string()),
            }
        }
        ControlRequest::Ping => ControlResponse::Pong {
            version: env!("CARGO_PKG_VERSION").into(),
        },
    }
}

/// Sends one request to the daemon at `path` and returns its answer.
pub async fn request(
    path: &Path,
    request: &ControlRequest,
) -> Result<ControlResponse, ControlError> {
    let deadline = match request {
        ControlRequest::Activate { .. } | ControlRequest::FactoryReset => LONG_COMMAND_DEADLINE,
        _ => CLIENT_DEADLINE,
    };
    let exchange = async {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| io_error(path, e))?;
        let (read, mut write) = stream.into_split();
        let mut bytes =
            serde_json::to_vec(request).map_err(|e| ControlError::BadResponse(e.to_string()))?;
        bytes.push(b'\n');
        write
            .write_all(&bytes)
            .await
            .map_err(|e| io_error(path, e))?;
        let mut line = String::new();
        BufReader::new(read)
            .read_line(&mut line)
            .await
            .map_err(|e| io_error(path, e))?;
        serde_json::from_str(line.trim()).map_err(|e| ControlError::BadResponse(e.to_string()))
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| ControlError::Timeout(path.to_path_buf(), deadline))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::Tasks;

    #[tokio::test]
    async fn status_ping_bad_request_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let listener = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(
            bind(&path).await,
            Err(ControlError::AlreadyRunning(_))
        ));

        let (_tx, rx) = watch::channel(DeviceStatus::new("sim", "https://gds.test"));
        let tasks = Tasks::new();
        let p = path.clone();
        // A session that is not running: commands that need it get a clear error.
        let (commands, _) = tokio::sync::mpsc::channel(1);
        let session = SessionHandle::new(commands);
        let state = crate::store::StateDir::open(dir.path().join("state")).unwrap();
        let (bookings, _) = BookingsStore::open(&state, 300);
        tasks.spawn(tracing::Span::none(), move |shutdown| {
            let context = ControlContext {
                status: rx,
                started: Instant::now(),
                session,
                bookings,
                state,
            };
            serve(listener, p, context, shutdown)
        });

        match request(&path, &ControlRequest::Status).await.unwrap() {
            ControlResponse::Status { status } => {
                assert_eq!(status["SystemUnit"]["State"], "Starting");
                assert_eq!(status["Webex"]["Discovery"]["Status"], "Unknown");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            request(&path, &ControlRequest::Ping).await.unwrap(),
            ControlResponse::Pong { .. }
        ));

        let mut raw = UnixStream::connect(&path).await.unwrap();
        raw.write_all(b"{\"command\":\"reboot\"}\n").await.unwrap();
        let mut answer = String::new();
        BufReader::new(&mut raw)
            .read_line(&mut answer)
            .await
            .unwrap();
        assert!(answer.contains("\"result\":\"error\""), "{answer}");
        assert!(answer.contains("unknown variant `reboot`"), "{answer}");

        // No `roomd run` filter in a unit test: the answer says why nothing changed.
        let answer = request(
            &path,
            &ControlRequest::SetLogLevel {
                level: "debug".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            answer,
            ControlResponse::error(
                "this process has no reloadable log filter (only `roomd run` installs one)"
            )
        );

        tasks.shutdown(Duration::from_secs(5)).await.unwrap();
        assert!(!path.exists(), "socket removed on shutdown");
        assert!(matches!(
            request(&path, &ControlRequest::Ping).await,
            Err(ControlError::NotRunning(_))
        ));
    }

    #[test]
    fn request_parsing_names_the_problem() {
        assert_eq!(
            parse_request(b" {\"command\":\"status\"}\n"),
            Ok(ControlRequest::Status)
        );
        assert_eq!(
            parse_request(b"{\"command\":\"set_log_level\",\"level\":\"debug\"}"),
            Ok(ControlRequest::SetLogLevel {
                level: "debug".into()
            })
        );
        let err = parse_request(b"{\"command\":\"reboot\"}").unwrap_err();
        assert!(
            err.starts_with("bad request: unknown variant `reboot`"),
            "{err}"
        );
        assert!(parse_request(b"\xff\xfe").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_request_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_request(&bytes);
        }
    }

    #[tokio::test]
    async fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        bind(&path).await.unwrap();
    }
}
