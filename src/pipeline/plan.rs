//! Phase 2, Plan: load manifests, compute edges, refuse overlaps, read only the affected
//! repositories ([`super::inventory`]) and decide every edge (Go's
//! `GetPromotionCandidates`). The decided plan goes to the [`PlanSink`] the CLI passed
//! in, then tag moves and `_LOST_` edges with `--fail-on-lost` may refuse the whole plan,
//! before anything is written. The policy is asked later, in Validate, once Provenance
//! and the signature checks have gathered the evidence its conditions read; a sharded
//! run also asks it here about the whole plan, before the partition, so that a denial
//! the evidence cannot change refuses every shard ([`super::authorize`]).
use std::collections::BTreeSet;

use serde::Serialize;
use tracing::{debug, error, info};

use crate::edges::report::overlap_problems;
use crate::edges::shard::{Shard, partition};
use crate::edges::{Edge, EdgeSet, NameId};
use crate::manifest::load;

use super::decide::Decision;
use super::inventory::{affected_repos, decide_edges};
use super::record;
use super::rollout::{Wave, waves};
use super::state::RunState;
use super::{Error, Flow, authorize};

/// What a [`PlanSink`] may fail with; the pipeline reports it as [`Error::Report`].
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where the decided plan goes: the CLI prints it and writes `--plan-out`, as ripgrep's
/// searcher hands matches to a sink and the printer crate prints them.
pub trait PlanSink: Send {
    fn plan(&mut self, plan: &Plan<'_>) -> Result<(), SinkError>;
}

/// The decided plan: every edge with its decision.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub manifests: usize,
    pub edges: &'a EdgeSet,
    /// Index-aligned with `edges.edges()`.
    pub decisions: &'a [Decision],
    pub counts: Counts,
    /// The rollout waves, in order (empty when the run is not staged).
    pub waves: &'a [Wave],
}

impl<'a> Plan<'a> {
    /// Edges paired with their decisions.
    pub fn decided(&self) -> impl Iterator<Item = (&'a Edge, &'a Decision)> {
        self.edges.edges().iter().zip(self.decisions.iter())
    }
}

/// Edge counts by decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub copy: usize,
    pub retag: usize,
    pub skip: usize,
    pub lost: usize,
    pub tag_moves: usize,
}

impl Counts {
    pub fn of(decisions: &[Decision]) -> Self {
        let mut c = Self::default();
        for d in decisions {
            match d {
                Decision::Copy => c.copy += 1,
                Decision::Retag => c.retag += 1,
                Decision::Skip | Decision::SkipStillLost => c.skip += 1,
                Decision::Lost => c.lost += 1,
                Decision::TagMove { .. } => c.tag_moves += 1,
            }
        }
        c
    }
}

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    let manifests = load::load(&state.options.manifests, state.options.diff.as_ref()).map_err(|e| {
        // One log line per problem, so `--log-format json` output stays one object per line.
        for problem in &e.problems {
            error!("{problem}");
        }
        Error::Manifests(e)
    })?;
    if manifests.is_empty() {
        return Ok(Flow::Stop("no manifests to process, nothing to promote"));
    }
    state.manifests = manifests.len();
    let digests = record::manifest_digests(state, &manifests);
    record::run_start(state, digests)?;
    state.edges = EdgeSet::from_manifests(&manifests);
    // Validation refuses these names while loading; if one ever got through, nothing
    // may be written for it.
    if !state.edges.refused().is_empty() {
        for problem in state.edges.refused() {
            error!("{problem}");
        }
        return Err(Error::Manifests(load::LoadError {
            problems: state.edges.refused().to_vec(),
        }));
    }
    for redundant in state.edges.redundant() {
        debug!(
            "redundant edge {} ({}) kept once",
            redundant.destination, redundant.digest
        );
    }
    let overlaps = overlap_problems(&state.edges, &manifests);
    // The real tree's manifests are large; only the edges are needed from here on.
    drop(manifests);
    if !overlaps.is_empty() {
        for problem in &overlaps {
            error!("{problem}");
        }
        return Err(Error::Overlaps(overlaps));
    }
    // Before any registry is read: a --canary that names no destination is bad input.
    state.waves = waves(&state.edges, &state.options.rollout)?;
    open_roots(state)?;
    record::install(state);
    info!(
        "{} edges from {} manifests; reading {} repositories",
        state.edges.len(),
        state.manifests,
        affected_repos(state.edges.edges()).len()
    );
    plan_edges(state).await?;
    if state.options.parse_only {
        return Ok(Flow::Stop("--parse-only"));
    }
    Ok(Flow::Continue)
}

/// Resolves every registry an edge names. Tests that inject roots have no
/// [`crate::registry::Registries`] and skip this.
fn open_roots(state: &mut RunState) -> Result<(), Error> {
    let Some(registries) = &state.registries else {
        return Ok(());
    };
    let ids: BTreeSet<NameId> = state
        .edges
        .edges()
        .iter()
        .flat_map(|e| [e.src_registry, e.dst_registry])
        .collect();
    for id in ids {
        let name = state.edges.name(id);
        let root = registries.open(name).map_err(|source| Error::RegistryName {
            name: name.to_string(),
            source: Box::new(source),
        })?;
        state.roots.insert(id, root);
    }
    Ok(())
}

/// Decides every edge, reports the plan and refuses it when it is not clean. Split
/// from [`run`] so tests can start from injected edges and registries.
pub(super) async fn plan_edges(state: &mut RunState) -> Result<(), Error> {
    decide_edges(state).await?;
    log_findings(state);
    // Refusals are decided on the whole plan, so every shard refuses the same input:
    // the policy's too, as far as it can answer before the shard's evidence is gathered.
    // Unsharded, Validate asks it once, with all the evidence; `--parse-only` never.
    let whole = Counts::of(&state.decisions);
    let denials = match state.options.shard {
        Some(_) if !state.options.parse_only => authorize::whole_plan_denials(state),
        _ => Vec::new(),
    };
    let refused = whole.tag_moves > 0 || (whole.lost > 0 && state.options.fail_on_lost) || !denials.is_empty();
    if let Some(shard) = state.options.shard
        && !refused
    {
        keep_shard(state, shard);
    }
    record::decisions(state)?;
    let plan = Plan {
        manifests: state.manifests,
        edges: &state.edges,
        decisions: &state.decisions,
        counts: Counts::of(&state.decisions),
        waves: &state.waves,
    };
    state.sink.plan(&plan).map_err(Error::Report)?;
    if whole.tag_moves > 0 {
        return Err(Error::TagMoves(whole.tag_moves));
    }
    if whole.lost > 0 && state.options.fail_on_lost {
        return Err(Error::Lost(whole.lost));
    }
    authorize::refuse(state, &denials)
}

/// Drops the edges (and their decisions) of the other shards: from here on the run
/// plans, promotes, signs and reports only its own.
fn keep_shard(state: &mut RunState, shard: Shard) {
    let shards = partition(&state.edges, shard.count);
    let keep: Vec<bool> = shards.iter().map(|s| *s == shard.index).collect();
    let mut flags = keep.iter();
    state.decisions.retain(|_| flags.next().copied().unwrap_or(false));
    state.edges.retain(&keep);
    info!(
        "shard {shard}: {} of {} edges are this shard's",
        state.edges.len(),
        keep.len()
    );
}

/// Logs what the plan found wrong, in Go's words where Go has them, so log scrapers
/// find the same lines.
fn log_findings(state: &RunState) {
    let edges = &state.edges;
    for (edge, decision) in state.decided() {
        let src = || edges.src_reference(edge);
        let dst = || edges.destination(edge);
        match decision {
            Decision::SkipStillLost => error!(
                "{} is already promoted, but it is still _LOST_ (can't find {} in src registry! please backfill it!)",
                dst(),
                src()
            ),
            Decision::Lost => error!(
                "cannot promote {} to {} because it is _LOST_ (can't find it in src registry!)",
                src(),
                dst()
            ),
            Decision::TagMove {
                current,
                digest_in_dst: true,
            } => error!(
                "{}: tag {}: tag move detected (it points to {current})",
                dst(),
                edges.tag(edge).unwrap_or_default()
            ),
            Decision::TagMove {
                current,
                digest_in_dst: false,
            } => error!(
                "{}: tag '{}' in dest points to {current}, not {}; tag moves are not supported",
                dst(),
                edges.tag(edge).unwrap_or_default(),
                edge.digest
            ),
            Decision::Skip | Decision::Copy | Decision::Retag => {}
        }
    }
}
