//! Strict loading of a policy file, like a manifest: the shared size-checked reader,
//! serde-saphyr with positions, unknown keys refused, and every problem collected with
//! its `file:line:col` before anything is evaluated.
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::digest::Digest;
use crate::manifest::load::LoadError;
use crate::manifest::{Position, Problem, yaml};

use super::condition::Condition;
use super::glob::Glob;
use super::{Effect, Policy, Role, Rule, Scope};

/// The policy file as written. Keys are fixed by the issue that introduced policies
/// (`roles`, `rules`, `default`); `description` is free text for humans.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    roles: Option<BTreeMap<String, Spanned<Vec<Spanned<String>>>>>,
    #[serde(default)]
    rules: Option<Vec<Spanned<RawRule>>>,
    #[serde(default)]
    default: Option<Spanned<Effect>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    effect: Effect,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    roles: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    destinations: Option<Vec<String>>,
    #[serde(default)]
    images: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    condition: Option<Spanned<String>>,
}

fn position<T>(spanned: &Spanned<T>) -> Position {
    let loc = spanned.referenced;
    Position {
        line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
        column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
    }
}

/// Reads and checks the policy at `path`; every problem is reported, each with its
/// position.
pub fn load(path: &Path) -> Result<Policy, LoadError> {
    let text = yaml::read_text(path).map_err(|problem| LoadError {
        problems: vec![problem],
    })?;
    parse(path, &text)
}

/// Parses a policy given as text (`kpromo policy test` cases and unit tests), reported
/// as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Policy, LoadError> {
    let one = |problem| LoadError {
        problems: vec![problem],
    };
    let raw = yaml::parse::<RawPolicy>(path, text).map_err(one)?.ok_or_else(|| {
        one(Problem::file(
            path,
            "the policy is empty: write at least `default: deny`",
        ))
    })?;
    from_raw(path, raw, Digest::of(text.as_bytes()))
}

fn from_raw(path: &Path, raw: RawPolicy, digest: Digest) -> Result<Policy, LoadError> {
    let mut problems = Vec::new();
    let roles: Vec<Role> = raw
        .roles
        .unwrap_or_default()
        .into_iter()
        .map(|(name, members)| Role {
            pos: position(&members),
            members: members.value.iter().map(|m| Glob::new(&m.value)).collect(),
            name,
        })
        .collect();
    let mut rules: Vec<Rule> = Vec::new();
    for spanned in raw.rules.unwrap_or_default() {
        let pos = position(&spanned);
        let raw_rule = spanned.value;
        let name = raw_rule.name.value.trim().to_string();
        let mut problem = |at: Position, message: String| problems.push(Problem::at(path, at, message));
        if name.is_empty() {
            problem(position(&raw_rule.name), "a rule needs a name".into());
        } else if let Some(first) = rules.iter().find(|r| r.name == name) {
            problem(
                position(&raw_rule.name),
                format!("duplicate rule name '{name}' (first at line {})", first.pos.line),
            );
        }
        for role in raw_rule.roles.iter().flatten() {
            if !roles.iter().any(|r| r.name == role.value) {
                let known: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
                problem(
                    position(role),
                    format!(
                        "rule '{name}' names role '{}', which `roles` does not define (defined: {})",
                        role.value,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        let condition = match &raw_rule.condition {
            None => None,
            Some(text) => match Condition::compile(&text.value) {
                Ok(condition) => Some(condition),
                Err(e) => {
                    problem(position(text), format!("rule '{name}': condition: {e}"));
                    None
                }
            },
        };
        let globs = |patterns: Option<Vec<String>>| patterns.map(|p| p.iter().map(|s| Glob::new(s)).collect());
        rules.push(Rule {
            name,
            effect: raw_rule.effect,
            description: raw_rule.description,
            pos,
            scope: Scope {
                roles: raw_rule.roles.map(|r| r.into_iter().map(|s| s.value).collect()),
                sources: globs(raw_rule.sources),
                destinations: globs(raw_rule.destinations),
                images: globs(raw_rule.images),
                tags: globs(raw_rule.tags),
            },
            condition,
        });
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(LoadError { problems });
    }
    let (default, default_pos) = match raw.default {
        Some(d) => (d.value, Some(position(&d))),
        None => (Effect::Deny, None),
    };
    Ok(Policy {
        path: path.to_path_buf(),
        digest,
        roles,
        rules,
        default,
        default_pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("p.yaml"), text) {
            Ok(p) => panic!("loaded: {p:?}"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn loads_the_documented_shape() {
        let text = r#"
roles:
  release-managers: [alice, "robot-*"]
rules:
- name: release-managers-promote
  effect: allow
  roles: [release-managers]
  sources: ["gcr.io/k8s-staging-*"]
  destinations: ["*-docker.pkg.dev/*"]
  images: ["kubernetes/*"]
  tags: ["v*"]
  condition: 'provenance.verified && provenance.builder_id.startsWith("https://")'
- name: no-latest
  effect: deny
  tags: ["latest"]
default: deny
"#;
        let policy = parse(Path::new("p.yaml"), text).unwrap();
        assert_eq!(policy.rules.len(), 2);
        assert_eq!(policy.rules[0].pos, Position { line: 5, column: 3 });
        assert_eq!(policy.rules[1].effect, Effect::Deny);
        assert_eq!(policy.roles[0].name, "release-managers");
        assert_eq!(policy.default, Effect::Deny);
        assert_eq!(policy.rule_location(1), "rule 'no-latest' (p.yaml:13)");
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = "roles:\n  rm: [a]\nrules:\n- name: a\n  effect: allow\n  roles: [nobody]\n- name: a\n  effect: deny\n  condition: provenance.verifed\n";
        assert_eq!(
            problems(text),
            [
                "p.yaml:6:11: rule 'a' names role 'nobody', which `roles` does not define (defined: rm)",
                "p.yaml:7:9: duplicate rule name 'a' (first at line 4)",
                "p.yaml:9:14: rule 'a': condition: column 11: provenance has no field 'verifed' (its fields: verified, builder_id, source_repo, predicate_type)",
            ]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_their_position() {
        let unknown = problems("rules:\n- name: a\n  effect: allow\n  tag: [x]\n");
        assert!(unknown[0].starts_with("p.yaml:4:3: unknown field `tag`"), "{unknown:?}");
        let effect = problems("rules:\n- name: a\n  effect: permit\n");
        assert!(
            effect[0].starts_with("p.yaml:3:11: unknown variant `permit`"),
            "{effect:?}"
        );
        let list = problems("rules:\n- name: a\n  effect: allow\n  tags: latest\n");
        assert!(list[0].starts_with("p.yaml:4:9:"), "{list:?}");
        assert_eq!(
            problems("# nothing yet\n"),
            ["p.yaml: the policy is empty: write at least `default: deny`"]
        );
    }
}
