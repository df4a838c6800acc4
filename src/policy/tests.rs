//! The decision function, case by case, and the evaluator against it.
use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::manifest::Manifest;

/// The policy of the issue, plus a freeze window and a provenance rule.
const POLICY: &str = r#"
roles:
  release-managers: [alice, "robot-*"]
  prod-promoters: [carol]
rules:
- name: release-managers-promote
  effect: allow
  roles: [release-managers]
  sources: ["gcr.io/k8s-staging-*"]
  destinations: ["*-docker.pkg.dev/*"]
  tags: ["v*"]
- name: kubernetes-needs-provenance
  effect: deny
  images: ["kubernetes/*"]
  condition: '!(provenance.verified && provenance.builder_id.startsWith("https://cloudbuild.googleapis.com/"))'
- name: no-latest
  effect: deny
  tags: ["latest"]
- name: freeze
  effect: deny
  roles: [prod-promoters]
  condition: 'now >= timestamp("2026-12-20T00:00:00Z") && now < timestamp("2027-01-04T00:00:00Z")'
- name: prod-promoters-anything
  effect: allow
  roles: [prod-promoters]
- name: retags-only-for-robots
  effect: allow
  roles: [release-managers]
  condition: 'decision == "retag" && actor.name.startsWith("robot-")'
default: deny
"#;

fn policy() -> Policy {
    parse(Path::new("policy.yaml"), POLICY).unwrap_or_else(|e| panic!("{e}"))
}

fn actor(name: &str) -> Actor {
    Actor {
        name: name.into(),
        source: ActorSource::Flag,
    }
}

fn at(rfc3339: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

fn verified() -> Evidence {
    Evidence {
        provenance: Provenance {
            verified: true,
            builder_id: "https://cloudbuild.googleapis.com/GoogleHostedWorker".into(),
            ..Provenance::default()
        },
        ..Evidence::default()
    }
}

struct Case<'a> {
    name: &'a str,
    actor: &'a str,
    src: &'a str,
    dst: &'a str,
    image: &'a str,
    tag: Option<&'a str>,
    decision: Option<&'a str>,
    evidence: Option<Evidence>,
    now: &'a str,
    want: &'a str,
}

const SRC: &str = "gcr.io/k8s-staging-foo";
const DST: &str = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images";
const NOW: &str = "2026-06-01T12:00:00Z";

fn base<'a>(name: &'a str, actor: &'a str, want: &'a str) -> Case<'a> {
    Case {
        name,
        actor,
        src: SRC,
        dst: DST,
        image: "foo",
        tag: Some("v1.0.0"),
        decision: Some("copy"),
        evidence: Some(Evidence::default()),
        now: NOW,
        want,
    }
}

fn verdict_of(policy: &Policy, case: &Case<'_>) -> String {
    let facts = Facts {
        edge: EdgeFacts {
            src_registry: case.src,
            dst_registry: case.dst,
            image: case.image,
            digest: crate::digest::Digest::of(b"x"),
            tag: case.tag,
        },
        decision: case.decision,
        evidence: case.evidence.as_ref(),
        now: at(case.now),
    };
    policy.explain(&decide(policy, &actor(case.actor), &facts))
}

#[test]
fn decision_table() {
    let policy = policy();
    let cases = [
        base(
            "a release manager promotes a tagged image",
            "alice",
            "allowed by rule 'release-managers-promote' (policy.yaml:6)",
        ),
        base(
            "a glob member of the role",
            "robot-ci",
            "allowed by rule 'release-managers-promote' (policy.yaml:6)",
        ),
        base(
            "an actor in no role is denied by default",
            "mallory",
            "denied: no rule allows it (default deny, policy.yaml:30)",
        ),
        Case {
            actor: "",
            ..base(
                "an unknown actor is denied by default",
                "",
                "denied: no rule allows it (default deny, policy.yaml:30)",
            )
        },
        Case {
            src: "docker.io/library",
            ..base(
                "a source outside the pattern",
                "alice",
                "denied: no rule allows it (default deny, policy.yaml:30)",
            )
        },
        Case {
            dst: "registry.k8s.io",
            ..base(
                "a destination outside the pattern",
                "alice",
                "denied: no rule allows it (default deny, policy.yaml:30)",
            )
        },
        Case {
            tag: None,
            ..base(
                "a tagless edge has the empty tag",
                "alice",
                "denied: no rule allows it (default deny, policy.yaml:30)",
            )
        },
        Case {
            tag: Some("latest"),
            ..base(
                "deny by pattern wins over an allow",
                "carol",
                "denied by rule 'no-latest' (policy.yaml:16)",
            )
        },
        Case {
            image: "kubernetes/pause",
            ..base(
                "deny by CEL on provenance: none yet",
                "alice",
                "denied by rule 'kubernetes-needs-provenance' (policy.yaml:12)",
            )
        },
        Case {
            image: "kubernetes/pause",
            evidence: Some(verified()),
            ..base(
                "verified provenance from the builder",
                "alice",
                "allowed by rule 'release-managers-promote' (policy.yaml:6)",
            )
        },
        Case {
            image: "kubernetes/pause",
            evidence: Some(Evidence {
                provenance: Provenance {
                    builder_id: "https://evil.example/".into(),
                    ..verified().provenance
                },
                ..Evidence::default()
            }),
            ..base(
                "verified provenance from another builder",
                "alice",
                "denied by rule 'kubernetes-needs-provenance' (policy.yaml:12)",
            )
        },
        Case {
            now: "2026-12-24T09:00:00Z",
            ..base(
                "the freeze window by now",
                "carol",
                "denied by rule 'freeze' (policy.yaml:19)",
            )
        },
        Case {
            now: "2027-01-04T00:00:00Z",
            ..base(
                "after the freeze",
                "carol",
                "allowed by rule 'prod-promoters-anything' (policy.yaml:23)",
            )
        },
        Case {
            tag: Some("1.0"),
            decision: Some("retag"),
            ..base(
                "a condition on the decision",
                "robot-ci",
                "allowed by rule 'retags-only-for-robots' (policy.yaml:26)",
            )
        },
        Case {
            tag: Some("1.0"),
            decision: Some("copy"),
            ..base(
                "the same edge as a copy",
                "robot-ci",
                "denied: no rule allows it (default deny, policy.yaml:30)",
            )
        },
    ];
    for case in &cases {
        assert_eq!(verdict_of(&policy, case), case.want, "{}", case.name);
    }
}

#[test]
fn offline_verdicts_depend_on_registry_state_only_when_they_must() {
    let policy = policy();
    let offline = |case: Case<'_>| {
        verdict_of(
            &policy,
            &Case {
                decision: None,
                evidence: None,
                ..case
            },
        )
    };
    // Nothing registry-dependent is in the way: a definite answer.
    assert_eq!(
        offline(base("", "alice", "")),
        "allowed by rule 'release-managers-promote' (policy.yaml:6)"
    );
    assert_eq!(
        offline(Case {
            tag: Some("latest"),
            ..base("", "alice", "")
        }),
        "denied by rule 'no-latest' (policy.yaml:16)"
    );
    // Only the provenance rule could deny: it depends.
    assert_eq!(
        offline(Case {
            image: "kubernetes/pause",
            ..base("", "alice", "")
        }),
        "depends on registry state (rule 'kubernetes-needs-provenance' (policy.yaml:12))"
    );
    // Denied whatever the registries say: no allow could match.
    assert_eq!(
        offline(Case {
            image: "kubernetes/pause",
            ..base("", "mallory", "")
        }),
        "denied: no rule allows it (default deny, policy.yaml:30)"
    );
    // Only an allow that reads the decision could let it through.
    assert_eq!(
        offline(Case {
            tag: Some("1.0"),
            ..base("", "robot-ci", "")
        }),
        "depends on registry state (rule 'retags-only-for-robots' (policy.yaml:26))"
    );
}

#[test]
fn a_condition_that_fails_at_run_time_denies_that_edge_and_says_why() {
    let policy = parse(
        Path::new("p.yaml"),
        "rules:\n- name: tag-number\n  effect: allow\n  condition: 'int(edge.tag) > 3'\n",
    )
    .unwrap();
    let case = |tag| Case {
        tag: Some(tag),
        ..base("", "alice", "")
    };
    assert_eq!(
        verdict_of(&policy, &case("4")),
        "allowed by rule 'tag-number' (p.yaml:2)"
    );
    let failed = verdict_of(&policy, &case("v4"));
    assert!(
        failed.starts_with("denied: the condition of rule 'tag-number' (p.yaml:2) failed: "),
        "{failed}"
    );
}

#[test]
fn default_allow_makes_rules_a_block_list() {
    let policy = parse(
        Path::new("p.yaml"),
        "rules:\n- name: no-latest\n  effect: deny\n  tags: [latest]\ndefault: allow\n",
    )
    .unwrap();
    assert_eq!(
        verdict_of(&policy, &base("", "x", "")),
        "allowed by the default (allow, p.yaml:5)"
    );
    assert_eq!(
        verdict_of(
            &policy,
            &Case {
                tag: Some("latest"),
                ..base("", "x", "")
            }
        ),
        "denied by rule 'no-latest' (p.yaml:2)"
    );
}

/// Edges over a small vocabulary, so names, tags and digests repeat as in real trees.
fn edge_set(entries: &[(usize, usize, usize, Option<usize>, u8)]) -> crate::edges::EdgeSet {
    const SRCS: [&str; 2] = ["gcr.io/k8s-staging-foo", "docker.io/library"];
    const DSTS: [&str; 2] = [
        "us-central1-docker.pkg.dev/k8s-artifacts-prod/images",
        "registry.k8s.io",
    ];
    const IMAGES: [&str; 3] = ["foo", "kubernetes/pause", "kubernetes/kube-proxy"];
    const TAGS: [&str; 4] = ["v1.0.0", "latest", "1.0", "v2"];
    let manifests: Vec<Manifest> = entries
        .iter()
        .enumerate()
        .map(|(i, &(src, dst, image, tag, digest))| {
            let digest = format!("sha256:{}", format!("{digest:02x}").repeat(32));
            let tags: Vec<&str> = tag.map(|t| TAGS[t % TAGS.len()]).into_iter().collect();
            Manifest::for_test(
                &format!("m{i}.yaml"),
                SRCS[src % SRCS.len()],
                &[DSTS[dst % DSTS.len()]],
                &[(IMAGES[image % IMAGES.len()], vec![(digest, tags)])],
            )
        })
        .collect();
    crate::edges::EdgeSet::from_manifests(&manifests)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fast path gives exactly the decision function's verdicts, memo and masks
    /// notwithstanding, online and offline.
    #[test]
    fn evaluator_agrees_with_decide(
        entries in proptest::collection::vec((0..2usize, 0..2usize, 0..3usize, proptest::option::of(0..4usize), 0..3u8), 1..24),
        actor_name in prop::sample::select(vec!["alice", "robot-ci", "carol", "mallory", ""]),
        online in any::<bool>(),
        provenance in any::<bool>(),
    ) {
        let policy = policy();
        let edges = edge_set(&entries);
        let actor = Actor { name: actor_name.into(), source: if actor_name.is_empty() { ActorSource::Unknown } else { ActorSource::Flag } };
        let now = at(NOW) + Duration::from_secs(1);
        let evidence = if provenance { verified() } else { Evidence::default() };
        let mut evaluator = Evaluator::new(&policy, &actor, &edges, now);
        for (i, edge) in edges.edges().iter().enumerate() {
            let decision = online.then_some(if i % 2 == 0 { "copy" } else { "retag" });
            let evidence = online.then_some(&evidence);
            let fast = evaluator.verdict(edge, decision, evidence);
            let facts = Facts {
                edge: EdgeFacts {
                    src_registry: edges.name(edge.src_registry),
                    dst_registry: edges.name(edge.dst_registry),
                    image: edges.name(edge.image),
                    digest: edge.digest,
                    tag: edges.tag(edge),
                },
                decision,
                evidence,
                now,
            };
            prop_assert_eq!(fast, decide(&policy, &actor, &facts));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// What `policy check` says offline never contradicts what `cip` will enforce: an
    /// offline allow is an allow, and an offline deny a deny, whatever the registries
    /// answer (the plan's decision, provenance, signatures, image facts).
    #[test]
    fn offline_verdicts_hold_for_every_registry_state(
        entries in proptest::collection::vec((0..2usize, 0..2usize, 0..3usize, proptest::option::of(0..4usize), 0..3u8), 1..12),
        actor_name in prop::sample::select(vec!["alice", "robot-ci", "carol", "mallory"]),
        hours in 0u64..24 * 400,
    ) {
        let policy = policy();
        let edges = edge_set(&entries);
        let actor = actor(actor_name);
        let now = at("2026-06-01T00:00:00Z") + Duration::from_secs(hours * 3600);
        let registry_states: Vec<(&str, Evidence)> = ["copy", "retag"]
            .into_iter()
            .flat_map(|d| [(d, Evidence::default()), (d, verified())])
            .collect();
        for edge in edges.edges() {
            let facts = |decision, evidence| Facts {
                edge: EdgeFacts {
                    src_registry: edges.name(edge.src_registry),
                    dst_registry: edges.name(edge.dst_registry),
                    image: edges.name(edge.image),
                    digest: edge.digest,
                    tag: edges.tag(edge),
                },
                decision,
                evidence,
                now,
            };
            let offline = decide(&policy, &actor, &facts(None, None));
            for (decision, evidence) in &registry_states {
                let online = decide(&policy, &actor, &facts(Some(decision), Some(evidence)));
                match &offline {
                    Verdict::Allow(_) => prop_assert!(matches!(online, Verdict::Allow(_)), "{offline:?} then {online:?}"),
                    Verdict::Deny(_) => prop_assert!(online.is_denied(), "{offline:?} then {online:?}"),
                    Verdict::Depends(_) => {}
                }
            }
        }
    }
}
