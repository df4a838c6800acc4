//! Phase 4, Validate: check staging signatures, then stop here unless `--confirm`.
//!
//! Staging signature verification is not implemented yet (its issue comes later); the
//! dry-run stop is.
use tracing::info;

use crate::error::KpromoError;

use super::Flow;
use super::state::PlanState;

pub async fn run(state: &mut PlanState) -> Result<Flow, KpromoError> {
    let sources: std::collections::BTreeSet<_> = state
        .decided()
        .filter(|(_, d)| d.writes())
        .map(|(e, _)| (e.src_registry, e.image, e.digest))
        .collect();
    info!(
        "staging signature verification is not implemented yet: skipped for {} source images",
        sources.len()
    );
    if !state.options.confirm {
        return Ok(Flow::Stop(
            "dry run complete, exiting before promotion (pass --confirm to promote)",
        ));
    }
    Ok(Flow::Continue)
}
