//! `kpromo policy check`: what a policy would say about every edge of a set of
//! manifests, offline (no registry is read), for CI on manifest pull requests. The
//! plan's decision and the evidence are unknown here, so a verdict that hinges on them
//! is reported as depending on registry state rather than guessed.
//!
//! The report keeps each finding as an edge index and a verdict, and renders names and
//! reasons only while it is written: on the real tree a broad rule can concern half a
//! million edges, which as strings would be hundreds of megabytes.
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

use crate::edges::EdgeSet;
use crate::manifest::ManifestSource;
use crate::manifest::load::{self, LoadError};

use super::{Actor, Evaluator, Policy, Verdict};

/// One edge the policy does not simply allow, rendered.
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

/// The whole answer, with what it needs to render itself.
#[derive(Debug)]
pub struct CheckReport {
    pub policy: Policy,
    pub actor: Actor,
    pub roles: Vec<String>,
    pub edges: EdgeSet,
    pub allowed: usize,
    /// Edge indexes (into `edges`) and verdicts.
    pub denied: Vec<(usize, Verdict)>,
    pub depends: Vec<(usize, Verdict)>,
}

impl CheckReport {
    pub fn is_denied(&self) -> bool {
        !self.denied.is_empty()
    }

    /// The findings of one list, rendered one at a time.
    pub fn findings<'a>(&'a self, list: &'a [(usize, Verdict)]) -> impl Iterator<Item = Finding> + 'a {
        list.iter().map(|(index, verdict)| {
            let edge = &self.edges.edges()[*index];
            Finding {
                destination: self.edges.destination(edge),
                source: self.edges.src_reference(edge),
                rule: verdict.rule().map(|id| self.policy.rules[id].name.clone()),
                at: self.policy.position_of(verdict),
                reason: self.policy.explain(verdict),
            }
        })
    }
}

/// Text: one line per finding, then a summary line.
impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (label, list) in [("deny", &self.denied), ("depends", &self.depends)] {
            for finding in self.findings(list) {
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
        let actor = if self.actor.is_known() {
            self.actor.name.as_str()
        } else {
            "an unknown actor"
        };
        write!(
            f,
            "{} edges for {actor} ({roles}): {} allowed, {} denied, {} depend on registry state",
            self.edges.len(),
            self.allowed,
            self.denied.len(),
            self.depends.len()
        )
    }
}

/// JSON (`--output json`), streamed: findings are rendered as they are written.
impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Findings<'a>(&'a CheckReport, &'a [(usize, Verdict)]);
        impl Serialize for Findings<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.1.len()))?;
                for finding in self.0.findings(self.1) {
                    seq.serialize_element(&finding)?;
                }
                seq.end()
            }
        }
        let mut s = serializer.serialize_struct("CheckReport", 8)?;
        s.serialize_field("policy", &self.policy.path.display().to_string())?;
        s.serialize_field("actor", &self.actor.name)?;
        s.serialize_field("actor_source", self.actor.source.label())?;
        s.serialize_field("roles", &self.roles)?;
        s.serialize_field("edges", &self.edges.len())?;
        s.serialize_field("allowed", &self.allowed)?;
        s.serialize_field("denied", &Findings(self, &self.denied))?;
        s.serialize_field("depends", &Findings(self, &self.depends))?;
        s.end()
    }
}

/// Loads the manifests named by `source` and asks `policy` about every edge, for `actor`
/// at `now`.
pub fn check(policy: Policy, actor: Actor, source: &ManifestSource, now: SystemTime) -> Result<CheckReport, LoadError> {
    let manifests = load::load(source, None)?;
    let edges = EdgeSet::from_manifests(&manifests);
    drop(manifests);
    Ok(report(policy, actor, edges, now))
}

/// The offline verdict of every edge of `edges`.
pub fn report(policy: Policy, actor: Actor, edges: EdgeSet, now: SystemTime) -> CheckReport {
    let mut evaluator = Evaluator::new(&policy, &actor, &edges, now);
    let roles = evaluator.roles().to_vec();
    let (mut allowed, mut denied, mut depends) = (0, Vec::new(), Vec::new());
    for (index, edge) in edges.edges().iter().enumerate() {
        match evaluator.verdict(edge, None, None) {
            Verdict::Allow(_) => allowed += 1,
            verdict @ Verdict::Deny(_) => denied.push((index, verdict)),
            verdict @ Verdict::Depends(_) => depends.push((index, verdict)),
        }
    }
    drop(evaluator);
    CheckReport {
        policy,
        actor,
        roles,
        edges,
        allowed,
        denied,
        depends,
    }
}
