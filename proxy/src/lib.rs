//! Cosmoguard: an identity-aware reverse proxy for Azure Cosmos DB.
//!
//! A request passes these layers in order: the listener (TLS, HTTP/1.1 or HTTP/2), the
//! identity layer (the caller's OIDC token), classification (the Cosmos operation and
//! resource), the policy decision, upstream signing with the proxy's own credential, and
//! forwarding. The audit record and metrics wrap all of them; [`pipeline`] shows the order.

pub mod account;
pub mod audit;
pub mod body;
pub mod classify;
pub mod cli;
pub mod config;
pub mod error;
pub mod file_watch;
pub mod identity;
pub mod metrics;
pub mod pipeline;
pub mod policy_store;
pub mod rid;
pub mod run;
pub mod server;
pub mod telemetry;
pub mod upstream;

#[cfg(test)]
mod test_tls;
