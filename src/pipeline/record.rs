//! What the pipeline writes to the audit log (when `--audit-log` is set): who started
//! the run and on which inputs, phase boundaries, the plan's decisions, and, through the
//! [`Audited`] decorator installed on every registry here, every write.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Audited, DecisionEvent, EdgeRecord, Event, FileDigest, PhaseEvent, RunStart};
use crate::digest::Digest;
use crate::edges::{Edge, EdgeSet};
use crate::manifest::Manifest;
use crate::registry::Registry;

use super::Error;
use super::decide::Decision;
use super::state::RunState;

/// The sha256 of every file the manifests were read from, for `run_start`. Read again
/// here rather than threaded through loading: only audited runs pay for it.
pub(super) fn manifest_digests(state: &RunState, manifests: &[Manifest]) -> Vec<FileDigest> {
    if state.options.audit.is_none() {
        return Vec::new();
    }
    let mut paths: Vec<&std::path::Path> = manifests
        .iter()
        .flat_map(|m| [m.path.as_path(), m.images_path.as_path()])
        .collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .map(|path| FileDigest {
            path: path.display().to_string(),
            sha256: std::fs::read(path).map_or_else(|e| format!("unreadable: {e}"), |b| Digest::of(&b).to_string()),
        })
        .collect()
}

/// Writes `run_start` once per run: after the manifests are read, or at the end of a
/// run that stopped before reading them.
pub(super) fn run_start(state: &mut RunState, manifests: Vec<FileDigest>) -> Result<(), Error> {
    let Some(log) = &state.options.audit else {
        return Ok(());
    };
    if state.audit_started {
        return Ok(());
    }
    state.audit_started = true;
    let actor = &state.options.actor;
    let waiting = std::mem::take(&mut state.audit_waiting);
    log.emit(Event::RunStart(RunStart {
        actor: actor.name.clone(),
        actor_source: actor.source.label().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        arguments: log.arguments().to_vec(),
        manifests,
        policy: state.policy.as_ref().map(|p| FileDigest {
            path: p.path.display().to_string(),
            sha256: p.digest.to_string(),
        }),
    }))?;
    let mut batch = log.batch();
    for event in waiting {
        batch.push(event)?;
    }
    batch.finish()?;
    Ok(())
}

/// A phase boundary, durable. Boundaries before `run_start` (Setup, the start of Plan)
/// wait for it, so that every run's records begin with who started it.
pub(super) fn phase(state: &mut RunState, phase: &str, status: &str, took: Option<Duration>) -> Result<(), Error> {
    let Some(log) = &state.options.audit else {
        return Ok(());
    };
    let event = Event::Phase(PhaseEvent {
        phase: phase.to_string(),
        status: status.to_string(),
        duration_ms: took.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    });
    if !state.audit_started {
        state.audit_waiting.push(event);
        return Ok(());
    }
    log.emit(event)?;
    Ok(())
}

/// Wraps every registry backend in [`Audited`], once per backend, so that every write
/// any later phase makes is recorded.
pub(super) fn install(state: &mut RunState) {
    let Some(log) = &state.options.audit else {
        return;
    };
    let mut wrapped: HashMap<String, Arc<dyn Registry>> = HashMap::new();
    for root in state.roots.values_mut() {
        let backend = wrapped
            .entry(root.registry.name().to_string())
            .or_insert_with(|| Arc::new(Audited::new(root.registry.clone(), log.clone())));
        root.registry = backend.clone();
    }
}

/// How records name an edge.
pub(super) fn edge_record(edges: &EdgeSet, edge: &Edge) -> EdgeRecord {
    EdgeRecord {
        src_registry: edges.name(edge.src_registry).to_string(),
        dst_registry: edges.name(edge.dst_registry).to_string(),
        image: edges.name(edge.image).to_string(),
        digest: edge.digest.to_string(),
        tag: edges.tag(edge).unwrap_or_default().to_string(),
    }
}

/// One `decision` record per edge that is not already promoted. Already promoted
/// edges change nothing and are counted in `run_end`: on the real tree they are almost
/// all of its 600,000 edges on every run.
pub(super) fn decisions(state: &RunState) -> Result<(), Error> {
    let Some(log) = &state.options.audit else {
        return Ok(());
    };
    let mut batch = log.batch();
    for (edge, decision) in state.decided() {
        if *decision == Decision::Skip {
            continue;
        }
        batch.push(Event::Decision(DecisionEvent {
            edge: edge_record(&state.edges, edge),
            decision: decision.label().to_string(),
        }))?;
    }
    batch.finish()?;
    Ok(())
}
