//! Activation: a 16-digit code, SRP-6a with the activation service, encrypted service data
//! (service URLs, extra CAs, tokens), then lock-down.

pub mod code;
pub mod crypto;
pub mod flow;
