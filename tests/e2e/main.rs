//! End-to-end tests against real servers on 127.0.0.1, started by the harness
//! (`tests/support`): CNCF distribution, the token server, the nginx rate-limit front and
//! the fault proxy, driven by kpromo's client or by the built `kpromo` binary. Results are
//! checked with clients independent of kpromo (the harness's pusher, skopeo), signatures and
//! attestations with verifiers independent of kpromo (`support::verifiers`).
//!
//! One test binary per kind of test (e2e, mocked, offline), with a module per subject, so a
//! build links the library once per kind rather than once per subject.

#[path = "../support/mod.rs"]
mod support;

// Attestations: one per promoted digest at the canonical mirror (fallback index and referrers
// API), staging provenance, staging referrers carried; proven by independent verifiers.
mod attest_e2e;
// The attestation benchmark, ignored here: scripts/bench-attest.sh runs it in release mode.
mod attest_bench;
// Policy and audit: allowed and denied runs, `policy check` against `cip`, the audit log
// against the mirrors' access logs, kill -9, no secrets.
mod governance;
// Registries that misbehave on purpose: endless listings, huge referrers lists, foreign realms.
mod hostile_registry;
// Names: what `manifest validate` accepts, a dry run against real distribution accepts.
mod names_dry_run;
// The promotion benchmark, ignored here: scripts/bench-promote.sh runs it in release mode.
mod promote_bench;
// `kpromo cip --confirm` promotes between staging and three mirrors; skopeo checks them.
mod promote_e2e;
// `kpromo cip` against registries that fail, lie, die part-way or are interrupted.
mod promote_failures;
// Basic and token credentials from a docker config; no secret in any log or error.
mod registry_auth;
// The client behind the fault proxy: corrupt bodies, retried failures, paged tags lists.
mod registry_faults;
// Self-tests of the harness: every registry variant, the pusher, every injected fault.
mod registry_harness;
// Every `Registry` operation over plain HTTP, Basic auth, token auth and TLS.
mod registry_operations;
// Referrers: the fallback index on distribution and layouts, the API on go-containerregistry's.
mod registry_referrers;
// The rollout and sharding benchmark, ignored here: scripts/bench-rollout.sh runs it in release mode.
mod rollout_bench;
// Canary rollout: waves, the read-back between them, the health gate, rollback.
mod rollout_e2e;
// Sharding: three `--shards 3` processes (an Indexed Job's command line) on one world.
mod shard_e2e;
// The signing benchmark, ignored here: scripts/bench-sign.sh runs it in release mode.
mod sign_bench;
// Signing during promotion and staging signature checks; every signature checked by
// verifiers kpromo did not write (OpenSSL, skopeo).
mod sign_e2e;
// The throttling benchmark, ignored here: scripts/bench-throttle.sh runs it.
mod throttle_bench;
// `kpromo cip --snapshot` of a real registry, in Go's exact output formats.
mod snapshot_registry;
// Self-tests of the signature and attestation oracles: skopeo, sigstore-js, sigstore-python,
// securesystemslib, in-toto-attestation, openssl, and the fake Fulcio/Rekor.
mod trust_harness;
// Tests that need the machine to themselves: ignored here, run one by one by scripts/test.sh.
mod solo;
