//! Tests that measure the process or the clock, so they must not share either: the peak
//! RSS of a 1 GiB copy, and two adaptive limits whose outcome depends on the registry's
//! latency. Each is `#[ignore = "run alone by scripts/test.sh"]`, so the ordinary run lists
//! it as ignored (never silently skipped), and scripts/test.sh runs them afterwards in a
//! pass of their own, one at a time:
//!
//! `cargo test --locked --test e2e solo:: -- --ignored --test-threads=1`
//!
//! This keeps the isolation they had as one test binary each, without linking three more
//! binaries. A test added here must carry the same `#[ignore]`.

// A 1 GiB blob copied with flat memory (peak RSS of this process during the copy).
mod registry_big_blob;
// The concurrency limit grows under load up to its cap.
mod registry_concurrency;
// A 429 storm from nginx is absorbed at the allowed rate.
mod registry_rate_limit;
// Random faults, quota windows and a shared quota: promotions converge, budgets hold.
mod registry_throttle;
