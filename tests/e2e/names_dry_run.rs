//! Names as a grammar, against real distribution (issue 14): for generated registry paths
//! and image names, hostile ones included, every manifest `kpromo manifest validate`
//! accepts makes a dry run against empty local registries that refuses nothing for syntax,
//! and every manifest a dry run refuses for a name, validate refused first.
use std::path::Path;

use kpromo::check::check_path;
use kpromo::manifest::ManifestSource;
use kpromo::pipeline::{self, Plan, PlanSink, SinkError};
use kpromo::registry::ClientOptions;
use kpromo::trust::TrustOptions;
use proptest::prelude::*;

use crate::support::{RegistryOptions, TestRegistry};

/// Path components as people write them, and as a hostile PR might.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-z0-9]{1,8}((\\.|_|__|-{1,2})[a-z0-9]{1,6}){0,2}",
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => "[A-Za-z0-9._%-]{0,10}",
        1 => "[a-z]{200,260}",
    ]
}

fn path(components: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(component(), components).prop_map(|c| c.join("/"))
}

struct Discard;

impl PlanSink for Discard {
    fn plan(&mut self, _: &Plan<'_>) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A plain manifest promoting one digest of `images` from `src` to `dst`.
fn manifest(src: &str, dst: &str, images: &[String]) -> String {
    let mut text = format!("registries:\n- name: \"{src}\"\n  src: true\n- name: \"{dst}\"\nimages:\n");
    for image in images {
        text.push_str(&format!(
            "- name: \"{image}\"\n  dmap:\n    \"sha256:{}\": [\"1.0\"]\n",
            "a".repeat(64)
        ));
    }
    text
}

#[test]
fn what_validate_accepts_a_dry_run_never_refuses_for_syntax() {
    // Generated names reach the 255-character limit: see `RegistryOptions::long_names`.
    let long_names = RegistryOptions {
        long_names: true,
        ..RegistryOptions::plain()
    };
    let staging = TestRegistry::start(long_names);
    let mirror = TestRegistry::start(long_names);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("manifest.yaml");
    let options = |file: &Path| pipeline::Options {
        manifests: ManifestSource::Plain(file.to_path_buf()),
        diff: None,
        confirm: false,
        parse_only: false,
        fail_on_lost: false,
        sign: false,
        trust: TrustOptions::default(),
        registry: ClientOptions {
            docker_config: Some(dir.path().join("no-docker-config")),
            ..ClientOptions::default()
        },
        rollout: Default::default(),
        shard: None,
        policy: None,
        // Nobody named: no policy asks, nothing is audited.
        actor: kpromo::policy::Actor::resolve(None, |_| None),
        audit: None,
    };
    let accepted = std::cell::Cell::new(0);
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        src_path in path(1..3),
        dst_path in path(1..4),
        images in prop::collection::vec(path(1..3), 1..4),
    )| {
        let src = format!("{}/{src_path}", staging.host());
        let dst = format!("{}/{dst_path}", mirror.host());
        std::fs::write(&file, manifest(&src, &dst, &images)).expect("write manifest");
        let report = check_path(&file);
        let outcome = runtime.block_on(pipeline::run(&options(&file), Box::new(Discard)));
        if report.is_clean() {
            accepted.set(accepted.get() + 1);
            prop_assert!(
                outcome.result.is_ok(),
                "validate accepted it, the dry run refused: {:?}\n{}",
                outcome.result,
                std::fs::read_to_string(&file).unwrap_or_default()
            );
        } else {
            // A run refuses it too, while loading, with validate's problems.
            let refused = outcome.result.as_ref().err().map(ToString::to_string).unwrap_or_default();
            prop_assert!(refused.starts_with("parsing manifests: "), "{refused}\n{report}");
        }
    });
    assert!(
        accepted.get() > 5,
        "too few accepted cases ({}) to show anything",
        accepted.get()
    );
}
