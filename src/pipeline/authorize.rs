//! The policy check: every edge the plan would write, with the plan's decision and the
//! evidence gathered about its source image (`RunState::evidence`: image facts from Plan,
//! verified provenance from Provenance, the staging signature from Validate), before
//! anything is written. One denied edge refuses the whole plan; every denied edge is
//! logged with the rule that denied it.
//!
//! Validate calls it after its signature checks: the last moment every piece of evidence
//! is known and nothing has been written yet.
use std::time::SystemTime;

use tracing::{error, info};

use crate::audit::{Event, PolicyEvent};
use crate::policy::{Evaluator, Evidence, Verdict};

use super::Error;
use super::record::edge_record;
use super::state::{RepoKey, RunState};

pub(super) fn enforce(state: &mut RunState) -> Result<(), Error> {
    let Some(policy) = &state.policy else {
        return Ok(());
    };
    let actor = &state.options.actor;
    let mut evaluator = Evaluator::new(policy, actor, &state.edges, SystemTime::now());
    let mut batch = state.options.audit.as_ref().map(|log| log.batch());
    let unknown = Evidence::default();
    let (mut checked, mut denied) = (0usize, 0usize);
    let mut first_denied = None;
    for (edge, decision) in state.decided() {
        if !decision.writes() {
            continue;
        }
        checked += 1;
        let evidence = state
            .evidence
            .get(&(RepoKey::source_of(edge), edge.digest))
            .unwrap_or(&unknown);
        let verdict = evaluator.verdict(edge, Some(decision.label()), Some(evidence));
        let reason = policy.explain(&verdict);
        // Online, every part of the context is known; anything but an allow refuses.
        let allowed = matches!(verdict, Verdict::Allow(_));
        if !allowed {
            let destination = state.edges.destination(edge);
            error!("{destination} (from {}): {reason}", state.edges.src_reference(edge));
            denied += 1;
            first_denied.get_or_insert_with(|| format!("{destination}: {reason}"));
        }
        if let Some(batch) = &mut batch {
            batch.push(Event::Policy(PolicyEvent {
                edge: edge_record(&state.edges, edge),
                effect: if allowed { "allow" } else { "deny" }.to_string(),
                rule: verdict.rule().map(|id| policy.rules[id].name.clone()),
                at: Some(policy.position_of(&verdict)),
                reason,
            }))?;
        }
    }
    if let Some(batch) = batch {
        batch.finish()?;
    }
    info!(
        "policy {}: {checked} edges to write checked for {actor} (roles: {}): {denied} denied; {} distinct condition evaluations",
        policy.path.display(),
        evaluator.roles().join(", "),
        evaluator.evaluations()
    );
    state.policy_denied = denied;
    match first_denied {
        Some(first) => Err(Error::PolicyDenied { count: denied, first }),
        None => Ok(()),
    }
}
