//! Phase 7, Attest: write promotion-record attestations for promoted images.
//!
//! Not implemented yet (its issue comes later): it logs what it would attest from the
//! plan state filled by Promote. Like Go, `--sign=false` also disables it.
use tracing::info;

use super::state::RunState;
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if !state.options.sign {
        info!("attestation disabled (--sign=false)");
        return Ok(Flow::Continue);
    }
    info!(
        "attestation is not implemented yet: skipped for {} promoted images",
        state.promote.subjects.len()
    );
    Ok(Flow::Continue)
}
