//! Phase 6, Sign: sign promoted images.
//!
//! Not implemented yet (its issue comes later): it logs what it would sign from the
//! plan state filled by Promote.
use tracing::info;

use crate::error::KpromoError;

use super::Flow;
use super::state::PlanState;

pub async fn run(state: &mut PlanState) -> Result<Flow, KpromoError> {
    if !state.options.sign {
        info!("signing disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    info!(
        "signing is not implemented yet: skipped for {} promoted images",
        state.promote.promoted.len()
    );
    Ok(Flow::Continue)
}
