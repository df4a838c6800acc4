//! Policy: who may promote what, to where (roles, glob-scoped allow and deny rules,
//! CEL conditions), decided per edge.
//!
//! A pure domain below `pipeline`: [`load`] reads a policy file strictly with
//! positions, like manifests; [`decide`] is the decision function
//! `(actor, edge, decision, evidence) -> verdict`, table-tested; [`Evaluator`] gives
//! the same verdicts over a whole [`crate::edges::EdgeSet`] fast (rule scopes as bit
//! masks per name, each condition evaluated once per distinct context it reads).
//! The pipeline enforces it in Validate, once the evidence is gathered (a sharded run
//! also asks it in Plan about the whole plan, without evidence, so that every shard
//! refuses a definite denial); `kpromo policy check` asks it offline, where the
//! decision and the evidence are unknown and a verdict may "depend on registry state".
//!
//! Semantics: every rule whose scope matches is checked; a matching `deny` (or a
//! condition that fails at run time) denies, whatever allows; otherwise a matching
//! `allow` allows; otherwise `default` (deny unless the file says `default: allow`).
use std::path::PathBuf;

use serde::Deserialize;

use crate::digest::Digest;
use crate::manifest::Position;

mod actor;
pub mod check;
mod checker;
mod condition;
mod context;
mod evaluate;
mod facts;
mod glob;
mod load;
pub mod table;

pub use actor::{Actor, ActorSource};
pub use condition::{Condition, ConditionError, Outcome, Part};
pub use evaluate::Evaluator;
pub use facts::{EdgeFacts, Evidence, Facts, ImageFacts, Provenance, StagingSignature};
pub use glob::Glob;
pub use load::{load, parse};

/// What a rule (or the default) does to an edge it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn label(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// A named group of actors, by exact name or glob.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub members: Vec<Glob>,
    pub pos: Position,
}

/// Which edges a rule is about; an absent list matches everything.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The actor must hold one of these roles.
    pub roles: Option<Vec<String>>,
    /// Matched against `src-registry/image`.
    pub sources: Option<Vec<Glob>>,
    /// Matched against the destination registry as the manifests name it.
    pub destinations: Option<Vec<Glob>>,
    pub images: Option<Vec<Glob>>,
    /// Matched against the tag; a tagless edge has the empty tag.
    pub tags: Option<Vec<Glob>>,
}

/// One rule of a policy, in file order.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub effect: Effect,
    pub description: Option<String>,
    /// Where the rule starts in the policy file.
    pub pos: Position,
    pub scope: Scope,
    pub condition: Option<Condition>,
}

/// A loaded, checked policy.
#[derive(Debug)]
pub struct Policy {
    pub path: PathBuf,
    /// The sha256 of the file as read, for the audit log.
    pub digest: Digest,
    pub roles: Vec<Role>,
    pub rules: Vec<Rule>,
    pub default: Effect,
    /// Where `default` is written (`None`: not written, so deny).
    pub default_pos: Option<Position>,
}

/// Index of a rule in [`Policy::rules`].
pub type RuleId = usize;

/// Why an edge is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A matching `deny` rule.
    Rule(RuleId),
    /// A matching rule's condition failed at run time for this edge.
    ConditionFailed { rule: RuleId, error: std::sync::Arc<str> },
    /// No `allow` rule matched and the default is deny.
    Default,
}

/// The policy's answer for one edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by this rule, or by `default: allow` (`None`).
    Allow(Option<RuleId>),
    Deny(Denial),
    /// Offline only: the answer hinges on these rules' conditions, which read what only
    /// the registries can tell (the plan's decision, provenance, signatures, the image).
    Depends(Vec<RuleId>),
}

impl Verdict {
    pub fn effect_label(&self) -> &'static str {
        match self {
            Verdict::Allow(_) => "allow",
            Verdict::Deny(_) => "deny",
            Verdict::Depends(_) => "depends",
        }
    }

    pub fn is_denied(&self) -> bool {
        matches!(self, Verdict::Deny(_))
    }

    /// The rule that decided, if a rule did (not the default, not undecided).
    pub fn rule(&self) -> Option<RuleId> {
        match self {
            Verdict::Allow(Some(id)) | Verdict::Deny(Denial::Rule(id) | Denial::ConditionFailed { rule: id, .. }) => {
                Some(*id)
            }
            _ => None,
        }
    }
}

impl Policy {
    /// The actor's roles: every role with a member pattern that matches the name. An
    /// unknown actor has none.
    pub fn roles_of(&self, actor: &Actor) -> Vec<String> {
        if !actor.is_known() {
            return Vec::new();
        }
        self.roles
            .iter()
            .filter(|role| role.members.iter().any(|m| m.matches(&actor.name)))
            .map(|role| role.name.clone())
            .collect()
    }

    /// `rule 'name' (file:line)`, how reports name a rule.
    pub fn rule_location(&self, id: RuleId) -> String {
        let rule = &self.rules[id];
        format!("rule '{}' ({}:{})", rule.name, self.path.display(), rule.pos.line)
    }

    /// `file:line` of the rule that decided `verdict`, or of `default`.
    pub fn position_of(&self, verdict: &Verdict) -> String {
        match (verdict.rule(), self.default_pos) {
            (Some(id), _) => format!("{}:{}", self.path.display(), self.rules[id].pos.line),
            (None, Some(pos)) => format!("{}:{}", self.path.display(), pos.line),
            (None, None) => self.path.display().to_string(),
        }
    }

    /// What a verdict means, in a sentence naming the rule and where it is written.
    pub fn explain(&self, verdict: &Verdict) -> String {
        let default_at = || match self.default_pos {
            Some(pos) => format!(", {}:{}", self.path.display(), pos.line),
            None => format!(": {} sets no default", self.path.display()),
        };
        match verdict {
            Verdict::Allow(Some(id)) => format!("allowed by {}", self.rule_location(*id)),
            Verdict::Allow(None) => format!("allowed by the default (allow{})", default_at()),
            Verdict::Deny(Denial::Rule(id)) => format!("denied by {}", self.rule_location(*id)),
            Verdict::Deny(Denial::ConditionFailed { rule, error }) => {
                format!("denied: the condition of {} failed: {error}", self.rule_location(*rule))
            }
            Verdict::Deny(Denial::Default) => format!("denied: no rule allows it (default deny{})", default_at()),
            Verdict::Depends(ids) => {
                let rules: Vec<String> = ids.iter().map(|id| self.rule_location(*id)).collect();
                format!("depends on registry state ({})", rules.join(", "))
            }
        }
    }
}

impl Scope {
    /// Whether an actor holding `roles` falls under this scope.
    pub fn admits(&self, roles: &[String]) -> bool {
        self.roles
            .as_ref()
            .is_none_or(|wanted| wanted.iter().any(|r| roles.contains(r)))
    }

    /// Whether an edge and an actor holding `roles` fall under this scope.
    pub fn matches(&self, roles: &[String], edge: &EdgeFacts<'_>) -> bool {
        self.admits(roles)
            && matches_any(&self.sources, &edge.source())
            && matches_any(&self.destinations, edge.dst_registry)
            && matches_any(&self.images, edge.image)
            && matches_any(&self.tags, edge.tag.unwrap_or(""))
    }
}

/// Whether `subject` matches one of `globs`; an absent list matches everything.
pub(crate) fn matches_any(globs: &Option<Vec<Glob>>, subject: &str) -> bool {
    globs.as_ref().is_none_or(|g| g.iter().any(|g| g.matches(subject)))
}

/// Combines the outcomes of the matching rules, in file order, into a verdict:
/// deny wins, then allow, then the default. Shared by [`decide`] and [`Evaluator`] so
/// the fast path cannot drift from the definition.
pub(crate) fn combine(policy: &Policy, matching: impl IntoIterator<Item = (RuleId, Outcome)>) -> Verdict {
    let mut allowed_by = None;
    let mut unknown_denies = Vec::new();
    let mut unknown_allows = Vec::new();
    for (id, outcome) in matching {
        match (policy.rules[id].effect, outcome) {
            (_, Outcome::Error(error)) => return Verdict::Deny(Denial::ConditionFailed { rule: id, error }),
            (Effect::Deny, Outcome::True) => return Verdict::Deny(Denial::Rule(id)),
            (Effect::Deny, Outcome::Unknown) => unknown_denies.push(id),
            (Effect::Allow, Outcome::True) => {
                allowed_by.get_or_insert(id);
            }
            (Effect::Allow, Outcome::Unknown) => unknown_allows.push(id),
            (_, Outcome::False) => {}
        }
    }
    let default_allows = policy.default == Effect::Allow;
    if allowed_by.is_none() && unknown_allows.is_empty() && !default_allows {
        return Verdict::Deny(Denial::Default);
    }
    if !unknown_denies.is_empty() {
        return Verdict::Depends(unknown_denies);
    }
    match allowed_by {
        Some(id) => Verdict::Allow(Some(id)),
        None if default_allows => Verdict::Allow(None),
        None => Verdict::Depends(unknown_allows),
    }
}

/// The decision function: the verdict of `policy` for `actor` on one edge, with the
/// plan's decision and the evidence when known. Pure; [`Evaluator`] is the same
/// function made fast for hundreds of thousands of edges.
pub fn decide(policy: &Policy, actor: &Actor, facts: &Facts<'_>) -> Verdict {
    let roles = policy.roles_of(actor);
    let env = condition::env();
    let context = evaluate::cel_context(&env, actor, &roles, facts);
    let matching = policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.scope.matches(&roles, &facts.edge))
        .map(|(id, rule)| {
            let outcome = rule.condition.as_ref().map_or(Outcome::True, |c| c.evaluate(&context));
            (id, outcome)
        });
    combine(policy, matching)
}

#[cfg(test)]
mod tests;
