//! Phase 3, Provenance: verify staging images' build provenance before promotion.
//!
//! Not implemented yet (its issue comes later). It reads the decided edges from the
//! plan state, so the log says exactly what it would have covered.
use tracing::info;

use super::state::RunState;
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    let pending = state.decided().filter(|(_, d)| d.writes()).count();
    info!("provenance verification is not implemented yet: skipped for {pending} edges to promote");
    Ok(Flow::Continue)
}
