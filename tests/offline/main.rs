//! Tests that need no server: the command line, manifest loading and validation, OCI image
//! layouts (kpromo's layout backend, skopeo reading and writing them), snapshots computed
//! from manifests or layouts, and the bundled demo, all run in temporary directories.
//!
//! One test binary per kind of test (e2e, mocked, offline), with a module per subject, so a
//! build links the library once per kind rather than once per subject.

/// The part of the shared harness (tests/support) that needs no server.
#[path = "../support"]
#[allow(
    dead_code,
    reason = "offline tests build small OCI layout images only; synthetic big blobs, Docker formats and \
              pretty-printed manifests are for the e2e binary"
)]
mod support {
    pub mod images;
    pub mod kube_job;
}
// Harness images through kpromo's `Registry` trait, and the files a layout leaves on disk.
mod layout;

// The `kpromo` command line: help, removed flags, usage errors and exit codes.
mod cli_flags;
// The Indexed Job of docs/kubernetes.md against the Kubernetes OpenAPI schema.
mod kubernetes_job;
// scripts/demo.sh promotes the bundled demo into three layout mirrors; a rerun writes nothing.
mod demo;
// Diff-scoped loading (`--use-prow-manifest-diff`, `--manifest-diff-since`) in a git repository.
mod manifest_diff;
// The legacy Go fixture cases and the plain-manifest fixture.
mod manifest_fixtures;
// Names as a grammar: what a run refuses, `manifest validate` refuses, at file:line:col.
mod manifest_names;
// The real registry.k8s.io manifest tree, counted independently of kpromo's model.
mod manifest_realdata;
// Strict YAML and every validation rule: clear problems with positions, never a panic.
mod manifest_rules;
// `kpromo policy check` and `kpromo policy test`: exit codes, reports, positions.
mod policy_cli;
// Many concurrent writers into one layout repository.
mod oci_layout_concurrency;
// Generator and guard of the demo's committed staging layouts and images.yaml.
mod oci_layout_demo_staging;
// The layout backend through the `Registry` trait: round trips, verification, failures.
mod oci_layout_roundtrip;
// skopeo reads and copies what kpromo wrote, and kpromo reads what skopeo wrote.
mod oci_layout_skopeo;
// After promoting the demo, `--snapshot` of each mirror equals what the manifests promise.
mod snapshot_after_promotion;
// `--snapshot oci:DIR` of the demo staging layouts.
mod snapshot_layout;
// `--manifest-based-snapshot-of` on plain and thin manifests, in Go's exact formats.
mod snapshot_manifests;
// `--manifest-based-snapshot-of` over the real registry.k8s.io tree.
mod snapshot_realdata;
