//! `--rollback-on-failure`: after a rollout wave fails, delete from that wave's
//! destinations the manifests this run created there, by digest (which removes the
//! tags on them), indexes before the images they list.
//!
//! "Created by this run" is what Plan decided to copy: a digest Plan's inventory found
//! absent from that destination repository before the run. Nothing the inventory found
//! there is ever deleted. Tags this run added to manifests that were already there
//! (retags) are left in place and reported: distribution 2.8 cannot delete a tag alone,
//! and registries that accept `DELETE …/manifests/<tag>` differ on whether that deletes
//! the tag or the manifest, which existed before the run. Child manifests this run
//! pushed under a new index stay as untagged manifests (only the copy engine knows which
//! children were absent before; a registry's garbage collection removes them).
//!
//! Every deletion is logged (`rollback: deleted …`), and the run report lists them.
use std::collections::BTreeSet;

use futures_util::{StreamExt, stream};
use tracing::{error, info, warn};

use crate::copy::PENDING_REQUESTS;
use crate::digest::Digest;

use super::decide::Decision;
use super::report::RollbackReport;
use super::rollout::Wave;
use super::state::{RepoKey, RunState};

pub(super) async fn run(state: &RunState, wave: &Wave) -> RollbackReport {
    let mut report = RollbackReport::default();
    let mut created: BTreeSet<(RepoKey, Digest)> = BTreeSet::new();
    for (edge, decision) in state.decided() {
        if !wave.registries.contains(&edge.dst_registry) {
            continue;
        }
        match decision {
            Decision::Copy => {
                created.insert((RepoKey::destination_of(edge), edge.digest));
            }
            Decision::Retag => report.tags_left.push(state.edges.destination(edge)),
            _ => {}
        }
    }
    let is_index = |(key, digest): &(RepoKey, Digest)| {
        state
            .promote
            .subjects
            .iter()
            .any(|s| s.destination == *key && s.digest == *digest && s.media_type.is_index())
    };
    let (indexes, images): (Vec<_>, Vec<_>) = created.into_iter().partition(is_index);
    info!(
        "rollback: deleting up to {} manifests this run created in {}",
        indexes.len() + images.len(),
        wave.registries
            .iter()
            .map(|r| state.edges.name(*r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Indexes first, so no index is ever left listing a child that is gone.
    for round in [indexes, images] {
        let results: Vec<(String, Result<bool, String>)> = stream::iter(round)
            .map(|(key, digest)| async move {
                let reference = format!("{}@{digest}", state.repo_display(key));
                let deleted = match state.repo(key) {
                    Ok(repo) => repo
                        .registry
                        .delete_manifest(&repo.path, &digest)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (reference, deleted)
            })
            .buffer_unordered(PENDING_REQUESTS)
            .collect()
            .await;
        for (reference, deleted) in results {
            match deleted {
                Ok(true) => {
                    warn!("rollback: deleted {reference} (created by this run)");
                    report.deleted.push(reference);
                }
                // Never pushed: the wave stopped before it.
                Ok(false) => {}
                Err(why) => {
                    error!("rollback: could not delete {reference}: {why}");
                    report.failed.push(format!("{reference}: {why}"));
                }
            }
        }
    }
    for tag in &report.tags_left {
        warn!("rollback: left {tag} in place: the manifest existed before this run, and tags are not deleted alone");
    }
    report.deleted.sort();
    report.failed.sort();
    report
}
