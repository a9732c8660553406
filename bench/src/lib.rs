//! Benchmark tools for Cosmoguard: a Cosmos-shaped backend, a local OIDC issuer with a
//! managed-identity token endpoint, token minting, load and memory drivers, and the policy
//! generator that writes the same rules as a Cosmoguard policy and as Cedar. A minimal
//! hyper reverse proxy is the floor of any proxy built on hyper, measured next to them.
//!
//! `bench/run.sh` drives them; the criterion benches in `bench/benches/` use the issuer and
//! the policy generator directly.

pub mod backend;
pub mod body;
pub mod client;
pub mod idle;
pub mod idp;
pub mod load;
pub mod mint;
pub mod passthrough;
pub mod policy_gen;
pub mod stream;
pub mod tls;
