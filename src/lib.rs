//! kpromo: the Kubernetes image promoter, rewritten in Rust.
//!
//! Layering (each layer only knows the ones below it):
//! - [`cli`]: the clap front end; the only place that knows flags, stdout and exit codes.
//! - Use cases: [`pipeline`] (the seven promotion phases over one shared run state),
//!   [`snapshot`] (registry and manifest inventories in Go's formats), [`check`]
//!   (`kpromo manifest validate`, offline).
//! - Domains: [`copy`] (the copy engine: image graphs, blobs and tags into destination
//!   repositories), [`edges`] (promotion edges, overlaps), [`manifest`] (schema, strict
//!   loading, validation), [`policy`] (who may promote what: rules, roles, CEL
//!   conditions), [`audit`] (the append-only record of decisions and writes).
//! - [`registry`]: one `Registry` trait; remote registries and OCI layout directories
//!   behind it.
pub mod audit;
pub mod check;
pub mod cli;
pub mod copy;
pub mod digest;
pub mod edges;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod manifest;
pub mod pipeline;
pub mod policy;
pub mod registry;
pub mod snapshot;
pub mod sync;
pub mod trust;
