//! The policy check: every edge the plan would write, with the plan's decision and the
//! evidence gathered about its source image (`RunState::evidence`: image facts from Plan,
//! verified provenance from Provenance, the staging signature from Validate), before
//! anything is written. One denied edge refuses the whole plan; every denied edge is
//! logged with the rule that denied it.
//!
//! Validate calls [`enforce`] after its signature checks: the last moment every piece of
//! evidence is known and nothing has been written yet.
//!
//! A sharded run (`--shard`) asks twice. Evidence exists only for the shard's own digests
//! (a shard reads no other shard's source images), so [`enforce`] sees only its own edges;
//! but every shard must refuse the same bad input. So Plan first asks about the *whole*
//! plan, before the partition, without evidence ([`whole_plan_denials`]): a verdict the
//! evidence cannot change (a `deny` rule or the default deny on names, tags, the decision)
//! is definite, and any such denial refuses every shard alike ([`refuse`]); a verdict
//! that hinges on evidence is left to the owning shard's [`enforce`].
use std::time::SystemTime;

use tracing::{error, info};

use crate::audit::{Event, PolicyEvent};
use crate::edges::Edge;
use crate::policy::{Evaluator, Evidence, Policy, Verdict};

use super::Error;
use super::record::edge_record;
use super::state::{RepoKey, RunState};

/// Validate's check of this run's edges, with all the evidence. Every verdict is
/// recorded (one `policy` audit record per edge to write).
pub(super) fn enforce(state: &mut RunState) -> Result<(), Error> {
    let Some(policy) = &state.policy else {
        return Ok(());
    };
    let unknown = Evidence::default();
    let asked = ask(state, policy, |edge| {
        Some(
            state
                .evidence
                .get(&(RepoKey::source_of(edge), edge.digest))
                .unwrap_or(&unknown),
        )
    });
    // Online, every part of the context is known; anything but an allow refuses.
    let (denied, first) = report(state, policy, &asked.verdicts, |v| !matches!(v, Verdict::Allow(_)))?;
    info!(
        "policy {}: {} edges to write checked for {} (roles: {}): {denied} denied; {} distinct condition evaluations",
        policy.path.display(),
        asked.verdicts.len(),
        state.options.actor,
        asked.roles.join(", "),
        asked.evaluations
    );
    state.policy_denied = denied;
    match first {
        Some(first) => Err(Error::PolicyDenied { count: denied, first }),
        None => Ok(()),
    }
}

/// Plan's check of the whole plan before the shard partition, without evidence: the
/// edges to write that the policy denies whatever the evidence, as (index into
/// `state.edges`, verdict). Logs and records nothing: [`refuse`] does, when Plan refuses.
pub(super) fn whole_plan_denials(state: &RunState) -> Vec<(usize, Verdict)> {
    let Some(policy) = &state.policy else {
        return Vec::new();
    };
    let asked = ask(state, policy, |_| None);
    let total = asked.verdicts.len();
    let denials: Vec<(usize, Verdict)> = asked.verdicts.into_iter().filter(|(_, v)| v.is_denied()).collect();
    info!(
        "policy {}: the whole plan (every shard's) pre-checked for {} without evidence: {total} edges to write, {} denied whatever the evidence; the rest are checked by the shard that owns them",
        policy.path.display(),
        state.options.actor,
        denials.len()
    );
    denials
}

/// Refuses the run for [`whole_plan_denials`]' definite denials (indexes into the
/// unpartitioned `state.edges`), each logged and recorded as Validate would.
pub(super) fn refuse(state: &mut RunState, denials: &[(usize, Verdict)]) -> Result<(), Error> {
    let Some(policy) = &state.policy else {
        return Ok(());
    };
    let (denied, first) = report(state, policy, denials, |_| true)?;
    state.policy_denied = denied;
    match first {
        Some(first) => Err(Error::PolicyDenied { count: denied, first }),
        None => Ok(()),
    }
}

/// The verdicts of one check, and what the evaluator says about it.
struct Asked {
    /// (index into `state.edges`, verdict) of every edge the plan writes, in edge order.
    verdicts: Vec<(usize, Verdict)>,
    roles: Vec<String>,
    evaluations: usize,
}

/// The policy's verdict on every edge the plan writes, with its decision and the
/// evidence `evidence` has for it (`None`: unknown, so conditions reading it are too).
fn ask<'s>(state: &'s RunState, policy: &Policy, evidence: impl Fn(&Edge) -> Option<&'s Evidence>) -> Asked {
    let mut evaluator = Evaluator::new(policy, &state.options.actor, &state.edges, SystemTime::now());
    let verdicts = state
        .decided()
        .enumerate()
        .filter(|(_, (_, decision))| decision.writes())
        .map(|(index, (edge, decision))| (index, evaluator.verdict(edge, Some(decision.label()), evidence(edge))))
        .collect();
    Asked {
        verdicts,
        roles: evaluator.roles().to_vec(),
        evaluations: evaluator.evaluations(),
    }
}

/// Logs every verdict `refuses` refuses and records every verdict given (one `policy`
/// audit record each); returns how many were refused and the first, in words.
fn report(
    state: &RunState,
    policy: &Policy,
    verdicts: &[(usize, Verdict)],
    refuses: impl Fn(&Verdict) -> bool,
) -> Result<(usize, Option<String>), Error> {
    let mut batch = state.options.audit.as_ref().map(|log| log.batch());
    let mut denied = 0usize;
    let mut first = None;
    for (index, verdict) in verdicts {
        let edge = &state.edges.edges()[*index];
        let reason = policy.explain(verdict);
        let refused = refuses(verdict);
        if refused {
            let destination = state.edges.destination(edge);
            error!("{destination} (from {}): {reason}", state.edges.src_reference(edge));
            denied += 1;
            first.get_or_insert_with(|| format!("{destination}: {reason}"));
        }
        if let Some(batch) = &mut batch {
            batch.push(Event::Policy(PolicyEvent {
                edge: edge_record(&state.edges, edge),
                effect: if refused { "deny" } else { "allow" }.to_string(),
                rule: verdict.rule().map(|id| policy.rules[id].name.clone()),
                at: Some(policy.position_of(verdict)),
                reason,
            }))?;
        }
    }
    if let Some(batch) = batch {
        batch.finish()?;
    }
    Ok((denied, first))
}
