//! `kpromo policy check`: what a policy would say about every edge of a set of
//! manifests, offline (no registry is read), for CI on manifest pull requests. The
//! plan's decision and the evidence are unknown here, so a verdict that hinges on them
//! is reported as depending on registry state rather than guessed.
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

use crate::edges::EdgeSet;
use crate::manifest::ManifestSource;
use crate::manifest::load::{self, LoadError};

use super::{Actor, Evaluator, Policy, Verdict};

/// One edge the policy does not simply allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `dst-registry/image:tag` (or `@digest` when tagless).
    pub destination: String,
    /// `src-registry/image@digest`.
    pub source: String,
    /// The deciding rule, when one decided.
    pub rule: Option<String>,
    /// `file:line` of that rule (or of `default`).
    pub at: String,
    pub reason: String,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub policy: String,
    pub actor: String,
    pub actor_source: String,
    pub roles: Vec<String>,
    pub edges: usize,
    pub allowed: usize,
    pub denied: Vec<Finding>,
    pub depends: Vec<Finding>,
}

impl CheckReport {
    pub fn is_denied(&self) -> bool {
        !self.denied.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (label, findings) in [("deny", &self.denied), ("depends", &self.depends)] {
            for finding in findings {
                writeln!(
                    f,
                    "{label}: {} (from {}): {}",
                    finding.destination, finding.source, finding.reason
                )?;
            }
        }
        let roles = if self.roles.is_empty() {
            "no roles".to_string()
        } else {
            format!("roles: {}", self.roles.join(", "))
        };
        write!(
            f,
            "{} edges for {} ({roles}): {} allowed, {} denied, {} depend on registry state",
            self.edges,
            if self.actor.is_empty() {
                "an unknown actor"
            } else {
                &self.actor
            },
            self.allowed,
            self.denied.len(),
            self.depends.len()
        )
    }
}

/// Loads the manifests named by `source` and asks `policy` about every edge, for `actor`
/// at `now`.
pub fn check(
    policy: &Policy,
    actor: &Actor,
    source: &ManifestSource,
    now: SystemTime,
) -> Result<CheckReport, LoadError> {
    let manifests = load::load(source, None)?;
    let edges = EdgeSet::from_manifests(&manifests);
    drop(manifests);
    Ok(report(policy, actor, &edges, now))
}

/// The offline verdict of every edge of `edges`.
pub fn report(policy: &Policy, actor: &Actor, edges: &EdgeSet, now: SystemTime) -> CheckReport {
    let mut evaluator = Evaluator::new(policy, actor, edges, now);
    let mut report = CheckReport {
        policy: policy.path.display().to_string(),
        actor: actor.name.clone(),
        actor_source: actor.source.label().to_string(),
        roles: evaluator.roles().to_vec(),
        edges: edges.len(),
        allowed: 0,
        denied: Vec::new(),
        depends: Vec::new(),
    };
    for edge in edges.edges() {
        let verdict = evaluator.verdict(edge, None, None);
        let finding = || Finding {
            destination: edges.destination(edge),
            source: edges.src_reference(edge),
            rule: verdict.rule().map(|id| policy.rules[id].name.clone()),
            at: policy.position_of(&verdict),
            reason: policy.explain(&verdict),
        };
        match &verdict {
            Verdict::Allow(_) => report.allowed += 1,
            Verdict::Deny(_) => report.denied.push(finding()),
            Verdict::Depends(_) => report.depends.push(finding()),
        }
    }
    report
}
