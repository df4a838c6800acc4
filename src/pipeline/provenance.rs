//! Phase 3, Provenance: verify staging images' build provenance before promotion.
//!
//! Not implemented yet (its issue comes later). It reads the decided edges from the
//! plan state, so the log says exactly what it would have covered.
use tracing::info;

use crate::error::KpromoError;

use super::Flow;
use super::state::PlanState;

pub async fn run(state: &mut PlanState) -> Result<Flow, KpromoError> {
    let pending = state.decided().filter(|(_, d)| d.writes()).count();
    info!("provenance verification is not implemented yet: skipped for {pending} edges to promote");
    Ok(Flow::Continue)
}
