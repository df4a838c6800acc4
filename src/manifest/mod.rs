//! Promotion manifests: schema, strict loading (plain files and thin-manifest trees),
//! validation and diff-scoped filtering.
//!
//! Loading never touches the network; everything here is usable from
//! `kpromo manifest validate` in a CI check.
pub mod schema;

pub use schema::{DigestEntry, Image, Manifest, Position, RegistryContext};
