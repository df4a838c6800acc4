//! Phase 6, Sign: sign promoted images.
//!
//! Not implemented yet (its issue comes later): it logs what it would sign from the
//! plan state filled by Promote.
use tracing::info;

use super::state::RunState;
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if !state.options.sign {
        info!("signing disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    info!(
        "signing is not implemented yet: skipped for {} promoted images",
        state.promote.subjects.len()
    );
    Ok(Flow::Continue)
}
