//! kpromo: the Kubernetes image promoter, rewritten in Rust.
//!
//! Layering (each layer only knows the ones below it):
//! - [`cli`]: the clap front end; turns flags into [`pipeline::Options`] and errors into exit codes.
//! - [`pipeline`]: the seven promotion phases over one shared plan state.
//! - [`edges`] and [`snapshot`]: pure planning data (promotion edges, inventories, writers).
//! - [`manifest`]: manifest schema, strict loading and validation.
//! - [`registry`]: one rate-limited OCI distribution client; remote registries and OCI
//!   layout directories behind one trait.
pub mod cli;
pub mod digest;
pub mod edges;
pub mod error;
pub mod manifest;
pub mod pipeline;
pub mod registry;
pub mod snapshot;
pub mod sync;
