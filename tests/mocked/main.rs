//! HTTP-level tests of kpromo's remote registry client against wiremock (and, where wiremock
//! cannot misbehave enough, a raw socket), by subject.
//!
//! Fakes are used here for behaviours that no local registry offers or that cannot be
//! produced on demand with CNCF distribution 2.8 (the real-registry tests are the e2e
//! binary): Google's extended tags list, the referrers API, exact 401/429/5xx sequences,
//! corrupted bodies, and mount/Location edge cases; and Google's OAuth, metadata and IAM
//! Credentials endpoints, since no Google Cloud is reachable from tests.

mod mock;
/// The part of the shared harness (tests/support) these tests need: log capture.
#[path = "../support"]
mod support {
    pub mod logs;
}

// Bearer and Basic auth, refresh tokens, and credentials that never leak.
mod auth;
// Blob downloads and uploads: streaming verification, mounts, upload sessions.
mod blobs;
// Identity tokens minted by IAM Credentials with application-default credentials; no secret leaks.
mod gcp_token;
// Google's extended tags list.
mod google_listing;
// Manifest GET/HEAD/PUT: digests, Accept list, retries of races and cut-off bodies.
mod manifests;
// Tags and catalog pagination.
mod pagination;
// The referrers API and its tag-schema fallback.
mod referrers;
// 429/5xx/timeouts: what is retried, how long the registry pauses.
mod throttle;
