//! [`super::decide`] over a whole edge set, fast: the real registry.k8s.io tree has
//! about 600,000 edges, and a policy is checked on every run.
//!
//! - Scopes: which rules match depends only on the actor and on interned names, so each
//!   rule's globs are matched once per distinct name (per source registry and image
//!   pair for `sources`), as a bit mask over the rules; an edge's matching rules are
//!   the AND of five masks.
//! - Conditions: each is evaluated once per distinct value of the parts of the context
//!   it reads ([`super::condition::Reads`]): `provenance.verified` once per distinct
//!   provenance, `edge.tag == "latest"` once per distinct tag, not once per edge.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::SystemTime;

use cel::{Context, Env, Value};
use serde::Serialize;

use crate::digest::Digest;
use crate::edges::{Edge, EdgeSet, NameId};

use super::condition::{self, Outcome, Part};
use super::facts::{EdgeFacts, Evidence, Facts};
use super::{Actor, Policy, RuleId, Scope, Verdict, combine, matches_any};

/// The CEL context of one question. Parts that are unknown (offline: the decision and
/// the evidence) are left out, so a condition that needs them is [`Outcome::Unknown`].
pub(crate) fn cel_context(
    env: &Arc<Env>,
    actor: &Actor,
    roles: &[String],
    facts: &Facts<'_>,
) -> Context<'static, 'static> {
    #[derive(Serialize)]
    struct ActorValue<'a> {
        name: &'a str,
        roles: &'a [String],
    }
    #[derive(Serialize)]
    struct EdgeValue<'a> {
        src_registry: &'a str,
        dst_registry: &'a str,
        image: &'a str,
        digest: String,
        tag: &'a str,
    }
    #[derive(Serialize)]
    struct ImageValue<'a> {
        media_type: &'a str,
        platforms: &'a [String],
        // CEL compares int with int: a uint here would make `image.size < 1000` an error.
        size: i64,
    }
    let mut context = Context::with_env(env.clone());
    let mut add = |name: &str, value: Result<Value, cel::SerializationError>| {
        // Serialising plain structs of strings and numbers cannot fail; if it ever did,
        // the variable would be missing and conditions reading it unknown, never allowed.
        if let Ok(value) = value {
            context.add_variable_from_value(name, value);
        }
    };
    add(
        "actor",
        cel::to_value(ActorValue {
            name: &actor.name,
            roles,
        }),
    );
    let edge = &facts.edge;
    add(
        "edge",
        cel::to_value(EdgeValue {
            src_registry: edge.src_registry,
            dst_registry: edge.dst_registry,
            image: edge.image,
            digest: edge.digest.to_string(),
            tag: edge.tag.unwrap_or(""),
        }),
    );
    if let Some(decision) = facts.decision {
        add("decision", Ok(Value::String(Arc::new(decision.to_string()))));
    }
    if let Some(evidence) = facts.evidence {
        add(
            "image",
            cel::to_value(ImageValue {
                media_type: &evidence.image.media_type,
                platforms: &evidence.image.platforms,
                size: i64::try_from(evidence.image.size).unwrap_or(i64::MAX),
            }),
        );
        add("provenance", cel::to_value(&evidence.provenance));
        add("staging_signature", cel::to_value(&evidence.staging_signature));
    }
    let now = chrono::DateTime::<chrono::Utc>::from(facts.now).fixed_offset();
    add("now", Ok(Value::Timestamp(now)));
    context
}

/// Dense ids for values, so a memo key is a few integers rather than strings.
#[derive(Debug)]
struct Ids<T>(HashMap<T, u32>);

impl<T: Hash + Eq> Ids<T> {
    fn new() -> Self {
        Self(HashMap::new())
    }

    /// The id of `value` (`0` is reserved for "unknown"); clones it only the first time.
    fn of<Q>(&mut self, value: &Q) -> u32
    where
        T: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if let Some(id) = self.0.get(value) {
            return *id;
        }
        let id = u32::try_from(self.0.len() + 1).unwrap_or(u32::MAX);
        self.0.insert(value.to_owned(), id);
        id
    }
}

/// One value id per [`Part`], in [`Part::ALL`] order: what a condition's answer can
/// vary by, for one edge.
type Key = [u32; Part::ALL.len()];

/// Evaluates a policy for one actor over the edges of one [`EdgeSet`].
pub struct Evaluator<'a> {
    policy: &'a Policy,
    actor: &'a Actor,
    roles: Vec<String>,
    edges: &'a EdgeSet,
    now: SystemTime,
    env: Arc<Env>,
    /// u64 words per rule mask.
    words: usize,
    /// Rules whose `roles` the actor satisfies.
    actor_mask: Vec<u64>,
    /// Every mask computed so far, `words` words each; the maps below index into it.
    masks: Vec<u64>,
    by_source: HashMap<(NameId, NameId), usize>,
    by_destination: HashMap<NameId, usize>,
    by_image: HashMap<NameId, usize>,
    by_tag: HashMap<Option<NameId>, usize>,
    memo: HashMap<(RuleId, Key), Outcome>,
    /// Reused per edge, so that a verdict allocates nothing once the caches are warm.
    mask: Vec<u64>,
    matching: Vec<(RuleId, Outcome)>,
    digests: Ids<Digest>,
    decisions: Ids<String>,
    images: Ids<super::ImageFacts>,
    provenances: Ids<super::Provenance>,
    signatures: Ids<super::StagingSignature>,
}

impl std::fmt::Debug for Evaluator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("actor", self.actor)
            .field("memo", &self.memo.len())
            .finish_non_exhaustive()
    }
}

/// Which of a scope's lists a mask is for.
#[derive(Clone, Copy)]
enum Dimension {
    Source,
    Destination,
    Image,
    Tag,
}

impl<'a> Evaluator<'a> {
    pub fn new(policy: &'a Policy, actor: &'a Actor, edges: &'a EdgeSet, now: SystemTime) -> Self {
        let roles = policy.roles_of(actor);
        let words = policy.rules.len().div_ceil(64).max(1);
        let mut actor_mask = vec![0u64; words];
        for (id, rule) in policy.rules.iter().enumerate() {
            if rule.scope.admits(&roles) {
                actor_mask[id / 64] |= 1 << (id % 64);
            }
        }
        Self {
            policy,
            actor,
            roles,
            edges,
            now,
            env: condition::env(),
            words,
            actor_mask,
            masks: Vec::new(),
            by_source: HashMap::new(),
            by_destination: HashMap::new(),
            by_image: HashMap::new(),
            by_tag: HashMap::new(),
            memo: HashMap::new(),
            mask: Vec::new(),
            matching: Vec::new(),
            digests: Ids::new(),
            decisions: Ids::new(),
            images: Ids::new(),
            provenances: Ids::new(),
            signatures: Ids::new(),
        }
    }

    /// The actor's roles under this policy.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Distinct condition evaluations so far (the rest were reused).
    pub fn evaluations(&self) -> usize {
        self.memo.len()
    }

    /// The verdict for `edge` (one of this evaluator's edge set), with the plan's
    /// decision label and the source image's evidence when known. Equal to
    /// [`super::decide`] on the same facts.
    pub fn verdict(&mut self, edge: &Edge, decision: Option<&str>, evidence: Option<&Evidence>) -> Verdict {
        let facts = Facts {
            edge: self.edge_facts(edge),
            decision,
            evidence,
            now: self.now,
        };
        let mut mask = std::mem::take(&mut self.mask);
        self.mask_of(edge, &facts.edge, &mut mask);
        let mut matching = std::mem::take(&mut self.matching);
        // Value ids of the parts read so far (0: not computed yet; ids start at 1).
        let mut parts: Key = [0; Part::ALL.len()];
        let mut context: Option<Context<'static, 'static>> = None;
        for id in set_bits(&mask) {
            let outcome = match &self.policy.rules[id].condition {
                None => Outcome::True,
                Some(condition) => {
                    let reads = condition.reads();
                    let mut key: Key = [0; Part::ALL.len()];
                    for (slot, part) in Part::ALL.into_iter().enumerate() {
                        if reads.contains(part) {
                            if parts[slot] == 0 {
                                parts[slot] = self.part_id(part, edge, decision, evidence);
                            }
                            key[slot] = parts[slot];
                        }
                    }
                    match self.memo.get(&(id, key)) {
                        Some(outcome) => outcome.clone(),
                        None => {
                            let context =
                                context.get_or_insert_with(|| cel_context(&self.env, self.actor, &self.roles, &facts));
                            let outcome = condition.evaluate(context);
                            self.memo.insert((id, key), outcome.clone());
                            outcome
                        }
                    }
                }
            };
            matching.push((id, outcome));
        }
        let verdict = combine(self.policy, matching.drain(..));
        self.mask = mask;
        self.matching = matching;
        verdict
    }

    fn edge_facts(&self, edge: &Edge) -> EdgeFacts<'a> {
        let edges = self.edges;
        EdgeFacts {
            src_registry: edges.name(edge.src_registry),
            dst_registry: edges.name(edge.dst_registry),
            image: edges.name(edge.image),
            digest: edge.digest,
            tag: edges.tag(edge),
        }
    }

    /// The value id of one part of `edge`'s context, never 0: ids of names are shifted
    /// by one, interned values start at 1, and an unknown part is `u32::MAX`.
    fn part_id(&mut self, part: Part, edge: &Edge, decision: Option<&str>, evidence: Option<&Evidence>) -> u32 {
        const UNKNOWN: u32 = u32::MAX;
        let name = |id: NameId| id.saturating_add(1);
        match part {
            Part::SrcRegistry => name(edge.src_registry),
            Part::DstRegistry => name(edge.dst_registry),
            Part::Image => name(edge.image),
            Part::Tag => edge.tag.map_or(UNKNOWN - 1, name),
            Part::Digest => self.digests.of(&edge.digest),
            Part::Decision => decision.map_or(UNKNOWN, |d| self.decisions.of(d)),
            Part::ImageFacts => evidence.map_or(UNKNOWN, |e| self.images.of(&e.image)),
            Part::Provenance => evidence.map_or(UNKNOWN, |e| self.provenances.of(&e.provenance)),
            Part::StagingSignature => evidence.map_or(UNKNOWN, |e| self.signatures.of(&e.staging_signature)),
        }
    }

    /// The rules whose scope matches `edge` for this actor, into `mask`.
    fn mask_of(&mut self, edge: &Edge, facts: &EdgeFacts<'_>, mask: &mut Vec<u64>) {
        let lookups = [
            self.cached(Dimension::Source, edge, facts),
            self.cached(Dimension::Destination, edge, facts),
            self.cached(Dimension::Image, edge, facts),
            self.cached(Dimension::Tag, edge, facts),
        ];
        mask.clear();
        mask.extend_from_slice(&self.actor_mask);
        for start in lookups {
            for (word, m) in mask.iter_mut().zip(&self.masks[start..start + self.words]) {
                *word &= m;
            }
        }
    }

    /// Where the mask of one dimension of `edge` starts in `masks`, computed on first use.
    fn cached(&mut self, dimension: Dimension, edge: &Edge, facts: &EdgeFacts<'_>) -> usize {
        let known = match dimension {
            Dimension::Source => self.by_source.get(&(edge.src_registry, edge.image)),
            Dimension::Destination => self.by_destination.get(&edge.dst_registry),
            Dimension::Image => self.by_image.get(&edge.image),
            Dimension::Tag => self.by_tag.get(&edge.tag),
        };
        if let Some(start) = known {
            return *start;
        }
        let start = self.masks.len();
        self.masks.resize(start + self.words, 0);
        let source = facts.source();
        for (id, rule) in self.policy.rules.iter().enumerate() {
            let Scope {
                sources,
                destinations,
                images,
                tags,
                ..
            } = &rule.scope;
            let (globs, subject) = match dimension {
                Dimension::Source => (sources, source.as_str()),
                Dimension::Destination => (destinations, facts.dst_registry),
                Dimension::Image => (images, facts.image),
                Dimension::Tag => (tags, facts.tag.unwrap_or("")),
            };
            if matches_any(globs, subject) {
                self.masks[start + id / 64] |= 1 << (id % 64);
            }
        }
        match dimension {
            Dimension::Source => self.by_source.insert((edge.src_registry, edge.image), start),
            Dimension::Destination => self.by_destination.insert(edge.dst_registry, start),
            Dimension::Image => self.by_image.insert(edge.image, start),
            Dimension::Tag => self.by_tag.insert(edge.tag, start),
        };
        start
    }
}

/// The indexes of the set bits, ascending (rule ids in file order).
fn set_bits(mask: &[u64]) -> impl Iterator<Item = RuleId> + '_ {
    mask.iter().enumerate().flat_map(|(w, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(w * 64 + bit)
        })
    })
}
