//! `kpromo policy test FILE`: table tests of a policy, so a policy repository can have
//! its own CI. A test file names the policy (relative to itself) and lists cases: a
//! context and the effect (and optionally the rule) expected.
//!
//! ```yaml
//! policy: policy.yaml
//! cases:
//! - name: release managers may promote kubernetes images
//!   actor: alice
//!   edge: {src_registry: gcr.io/k8s-staging-kubernetes, dst_registry: us-docker.pkg.dev/k8s-artifacts-prod/images, image: kubernetes/pause, tag: "3.10"}
//!   provenance: {verified: true, builder_id: "https://cloudbuild.googleapis.com/GoogleHostedWorker"}
//!   expect: allow
//! ```
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::digest::Digest;
use crate::manifest::load::LoadError;
use crate::manifest::{Position, Problem, yaml};

use super::{
    Actor, ActorSource, EdgeFacts, Effect, Evidence, Facts, ImageFacts, Policy, Provenance, StagingSignature, Verdict,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTests {
    policy: String,
    cases: Vec<Spanned<RawCase>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    /// Empty or absent: an unknown actor.
    #[serde(default)]
    actor: Option<String>,
    edge: RawEdge,
    /// The plan's decision; `copy` when absent.
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    image: Option<RawImage>,
    #[serde(default)]
    provenance: Option<RawProvenance>,
    #[serde(default)]
    staging_signature: Option<RawSignature>,
    /// RFC 3339; the time the test runs when absent.
    #[serde(default)]
    now: Option<Spanned<String>>,
    expect: Effect,
    /// The rule expected to decide (by name), when the case cares.
    #[serde(default)]
    rule: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    src_registry: String,
    dst_registry: String,
    image: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    size: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvenance {
    #[serde(default)]
    verified: bool,
    #[serde(default)]
    builder_id: String,
    #[serde(default)]
    source_repo: String,
    #[serde(default)]
    predicate_type: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    #[serde(default)]
    present: bool,
    #[serde(default)]
    verified: bool,
    #[serde(default)]
    identity: String,
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    /// Where the case is written.
    pub at: Position,
    pub passed: bool,
    /// What the policy said, in words (rule and position).
    pub got: String,
    pub expected: String,
}

/// Every case of a test file, run.
#[derive(Debug)]
pub struct TableReport {
    pub file: PathBuf,
    pub policy: Policy,
    pub cases: Vec<CaseResult>,
}

impl TableReport {
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.passed).count()
    }
}

/// Loads the test file at `path` and its policy, and runs every case.
pub fn run(path: &Path) -> Result<TableReport, LoadError> {
    let one = |problem| LoadError {
        problems: vec![problem],
    };
    let text = yaml::read_text(path).map_err(one)?;
    let raw = yaml::parse::<RawTests>(path, &text)
        .map_err(one)?
        .ok_or_else(|| one(Problem::file(path, "the test file is empty")))?;
    let policy_path = path.parent().unwrap_or(Path::new("")).join(&raw.policy);
    let policy = super::load(&policy_path)?;
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    for spanned in raw.cases {
        let at = position(&spanned);
        match run_case(&policy, spanned.value, at) {
            Ok(result) => cases.push(result),
            Err((pos, message)) => problems.push(Problem::at(path, pos, message)),
        }
    }
    if !problems.is_empty() {
        return Err(LoadError { problems });
    }
    Ok(TableReport {
        file: path.to_path_buf(),
        policy,
        cases,
    })
}

fn position<T>(spanned: &Spanned<T>) -> Position {
    let loc = spanned.referenced;
    Position {
        line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
        column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
    }
}

fn run_case(policy: &Policy, case: RawCase, at: Position) -> Result<CaseResult, (Position, String)> {
    let digest = match &case.edge.digest {
        None => Digest::of(b""),
        Some(d) => d
            .value
            .parse::<Digest>()
            .map_err(|e| (position(d), format!("case '{}': digest: {e}", case.name)))?,
    };
    let now = match &case.now {
        None => SystemTime::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t.value)
            .map(SystemTime::from)
            .map_err(|e| {
                (
                    position(t),
                    format!("case '{}': now: not an RFC 3339 time: {e}", case.name),
                )
            })?,
    };
    let actor = match case.actor.as_deref().filter(|a| !a.is_empty()) {
        Some(name) => Actor {
            name: name.to_string(),
            source: ActorSource::Flag,
        },
        None => Actor {
            name: String::new(),
            source: ActorSource::Unknown,
        },
    };
    let image = case.image.unwrap_or_default();
    let provenance = case.provenance.unwrap_or_default();
    let signature = case.staging_signature.unwrap_or_default();
    let evidence = Evidence {
        image: ImageFacts {
            media_type: image.media_type,
            platforms: image.platforms,
            size: image.size,
        },
        provenance: Provenance {
            verified: provenance.verified,
            builder_id: provenance.builder_id,
            source_repo: provenance.source_repo,
            predicate_type: provenance.predicate_type,
        },
        staging_signature: StagingSignature {
            present: signature.present,
            verified: signature.verified,
            identity: signature.identity,
        },
    };
    let facts = Facts {
        edge: EdgeFacts {
            src_registry: &case.edge.src_registry,
            dst_registry: &case.edge.dst_registry,
            image: &case.edge.image,
            digest,
            tag: case.edge.tag.as_deref().filter(|t| !t.is_empty()),
        },
        decision: Some(case.decision.as_deref().unwrap_or("copy")),
        evidence: Some(&evidence),
        now,
    };
    let verdict = super::decide(policy, &actor, &facts);
    let effect = match verdict {
        Verdict::Allow(_) => Effect::Allow,
        Verdict::Deny(_) | Verdict::Depends(_) => Effect::Deny,
    };
    let deciding_rule = verdict.rule().map(|id| policy.rules[id].name.as_str());
    let rule_ok = case.rule.as_deref().is_none_or(|want| deciding_rule == Some(want));
    let expected = match &case.rule {
        Some(rule) => format!("{} by rule '{rule}'", case.expect.label()),
        None => case.expect.label().to_string(),
    };
    Ok(CaseResult {
        name: case.name,
        at,
        passed: effect == case.expect && rule_ok,
        got: policy.explain(&verdict),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cases_and_reports_failures_with_the_deciding_rule() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            "roles:\n  rm: [alice]\nrules:\n- name: rm-promote\n  effect: allow\n  roles: [rm]\n- name: no-latest\n  effect: deny\n  tags: [latest]\n",
        )
        .unwrap();
        let edge = "{src_registry: s, dst_registry: d, image: i, tag: v1}";
        let latest = "{src_registry: s, dst_registry: d, image: i, tag: latest}";
        std::fs::write(
            dir.path().join("policy_test.yaml"),
            format!(
                "policy: policy.yaml\ncases:\n- name: alice\n  actor: alice\n  edge: {edge}\n  expect: allow\n  rule: rm-promote\n- name: latest\n  actor: alice\n  edge: {latest}\n  expect: allow\n- name: bob\n  actor: bob\n  edge: {edge}\n  expect: deny\n"
            ),
        )
        .unwrap();
        let report = run(&dir.path().join("policy_test.yaml")).unwrap();
        let outcomes: Vec<(&str, bool)> = report.cases.iter().map(|c| (c.name.as_str(), c.passed)).collect();
        assert_eq!(outcomes, [("alice", true), ("latest", false), ("bob", true)]);
        assert_eq!(report.failed(), 1);
        let latest = &report.cases[1];
        assert!(latest.got.starts_with("denied by rule 'no-latest' ("), "{}", latest.got);
        assert!(latest.got.ends_with("policy.yaml:7)"), "{}", latest.got);
        assert_eq!(latest.at, Position { line: 8, column: 3 });
    }
}
