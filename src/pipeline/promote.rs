//! Phase 5, Promote: hand what the plan decided to the copy engine and keep what it
//! delivered, typed, for Sign and Attest. A staged run (`--canary`, `--rollout-waves`)
//! hands the copy engine one wave at a time (`waves.rs`).
use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;

use crate::copy::{self, Class, RepoId};
use crate::edges::Edge;
use crate::registry::Spool;

use super::decide::Decision;
use super::state::{FailedImage, PromoteReport, RepoKey, RunState, Subject};
use super::{Error, Flow, waves};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    if !state.waves.is_empty() {
        return waves::run(state).await;
    }
    let (request, keys) = copy_request(state, |_| true, None)?;
    if request.is_empty() {
        info!("nothing to promote");
        return Ok(Flow::Continue);
    }
    let report = copy::run(&request, &state.cancel).await;
    record(&mut state.promote, report, &keys);
    if state.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    match failed(&state.promote) {
        Some(error) => Err(error),
        None => Ok(Flow::Continue),
    }
}

/// Adds what one copy run did to the phase's report.
pub(super) fn record(promote: &mut PromoteReport, report: copy::Report, keys: &BTreeMap<RepoId, RepoKey>) {
    promote.counters.add(&report.counters);
    promote.subjects.extend(report.delivered.into_iter().map(|d| Subject {
        destination: keys[&d.destination],
        digest: d.source.1,
        media_type: d.media_type,
        size: d.size,
        tags: d.tags,
        copied: d.copied,
    }));
    promote
        .failed
        .extend(report.undelivered.into_iter().map(|u| FailedImage {
            destination: keys[&u.destination],
            digest: u.source.1,
            tags: u.tags,
            failure: u.failure,
        }));
    promote.failures.extend(report.failures);
}

/// The phase's error when any copy failed.
pub(super) fn failed(promote: &PromoteReport) -> Option<Error> {
    let failures = &promote.failures;
    let first = failures.first()?;
    // The failure to show first: a permanent one when there is one (that is what needs
    // fixing), and a root cause rather than something it blocked.
    let is_root = |f: &&copy::Failure| !matches!(f.cause, copy::Cause::Blocked { .. });
    let permanent = |f: &&copy::Failure| f.class() == Class::Permanent;
    let shown = failures
        .iter()
        .filter(permanent)
        .find(is_root)
        .or_else(|| failures.iter().find(permanent))
        .or_else(|| failures.iter().find(is_root))
        .unwrap_or(first);
    let images = |class| promote.failed.iter().filter(|f| f.failure.class() == class).count();
    Some(Error::Failed {
        count: failures.len(),
        permanent_images: images(Class::Permanent),
        transient_images: images(Class::Transient),
        first: shown.clone(),
    })
}

/// The copy request for every edge the plan decided to write that `include` keeps (a
/// rollout wave keeps its destination registries), and the repository each request id
/// stands for. Sources are read through `spool` when given (a rollout's waves).
pub(super) fn copy_request(
    state: &RunState,
    include: impl Fn(&Edge) -> bool,
    spool: Option<&Arc<Spool>>,
) -> Result<(copy::Request, BTreeMap<RepoId, RepoKey>), Error> {
    let mut request = copy::Request::default();
    request.transient_retries(state.options.registry.max_retries);
    let mut ids: BTreeMap<RepoKey, RepoId> = BTreeMap::new();
    let mut id_of = |request: &mut copy::Request, key: RepoKey, source: bool| -> Result<RepoId, Error> {
        if let Some(id) = ids.get(&key) {
            return Ok(*id);
        }
        let mut repo = state.repo(key)?;
        if let (true, Some(spool)) = (source, spool) {
            repo.registry = spool.reading_through(repo.registry);
        }
        let id = request.repo(repo);
        ids.insert(key, id);
        Ok(id)
    };
    for (edge, decision) in state.decided() {
        if !decision.writes() || !include(edge) {
            continue;
        }
        let source = id_of(&mut request, RepoKey::source_of(edge), true)?;
        let destination_key = RepoKey::destination_of(edge);
        let destination = id_of(&mut request, destination_key, false)?;
        if state.fresh_destinations.contains(&destination_key) {
            request.fresh(destination);
        }
        let tag = state.edges.tag(edge).map(str::to_string);
        request.want((source, edge.digest), destination, *decision == Decision::Copy, tag);
    }
    let keys = ids.into_iter().map(|(key, id)| (id, key)).collect();
    Ok((request, keys))
}
