//! roomd-sim: the server side of every cloud protocol roomd speaks, on loopback, over real
//! TLS/HTTP/WebSocket/UDP. Used in-process by tests (`start` on port 0) and as the `roomd-sim` binary.
//!
//! Written from the wire profile only, never from the agent's code, so the two cannot silently share
//! a mistake.
//!
//! Module map:
//! - `server`: [`SimOptions`], [`start`], [`SimHandle`]; binds the listeners and wires the routers.
//! - `http`: serves a router over TLS (ALPN h2 + HTTP/1.1) or cleartext, with graceful shutdown.
//! - `tls`: the per-run test CA and the `localhost`/`127.0.0.1`/`::1` server certificate it signs.
//! - `scenario`: [`Scenario`], the TOML/JSON description of the simulated cloud.
//! - `state`: the shared state every service and the admin API use.
//! - `gds`: `GET /gds/health`, the bootstrap health document.
//! - `events`: the `GET /mercury` WebSocket and pushing frames to it.
//! - `udp`: UDP sockets (echo for now, STUN later).
//! - `recorder`: [`ReceivedRequest`], the bounded log of every HTTPS request.
//! - `faults`: [`Fault`], canned error answers for any HTTPS route.
//! - `admin`: the loopback JSON admin API that steers all of the above.
//! - `clock`, `shutdown`: time formatting and the shutdown signal.

mod admin;
mod clock;
mod events;
mod faults;
mod gds;
mod http;
mod recorder;
mod scenario;
mod server;
mod shutdown;
mod state;
pub mod tls;
mod udp;

pub use faults::Fault;
pub use recorder::ReceivedRequest;
pub use scenario::{Cluster, Device, GdsScenario, Scenario};
pub use server::{SimHandle, SimInfo, SimOptions, start};
pub use udp::UdpDatagram;
