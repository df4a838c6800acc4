//! Phase 4, Validate: check staging signatures, then stop here unless `--confirm`.
//!
//! Staging signature verification is not implemented yet (its issue comes later); the
//! dry-run stop is.
use tracing::info;

use super::state::RunState;
use super::{Error, Flow};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
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
