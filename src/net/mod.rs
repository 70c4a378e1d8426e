//! I/O plumbing shared by every cloud client: TLS trust, HTTP with tracking ids, WebSockets, backoff.

pub mod backoff;
pub mod http;
pub mod tls;
pub mod websocket;
