//! Phase 7, Attest: write promotion-record attestations for promoted images.
//!
//! Not implemented yet (its issue comes later): it logs what it would attest from the
//! plan state filled by Promote. Like Go, `--sign=false` also disables it.
use tracing::info;

use crate::error::KpromoError;

use super::Flow;
use super::state::PlanState;

pub async fn run(state: &mut PlanState) -> Result<Flow, KpromoError> {
    if !state.options.sign {
        info!("attestation disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    info!(
        "attestation is not implemented yet: skipped for {} promoted images",
        state.promote.promoted.len()
    );
    Ok(Flow::Continue)
}
