//! The read-back check of a rollout wave: what Promote just wrote, read again through
//! backends opened for the check (no connection, token or answer of the run's own
//! backends is reused), so a mirror that acknowledged a write it does not serve is
//! caught before the next wave.
//!
//! For every image delivered in the wave: each tag resolves to the planned digest; the
//! manifest and every child (by digest) is served and its bytes hash to its digest;
//! every blob `registry::media::references` names is there (HEAD), except a sample of
//! them (`--verify-sample`, chosen by digest), which is read in full (GET) with its digest
//! checked while streaming.
use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use futures_util::{StreamExt, stream};

use crate::copy::{PENDING_REQUESTS, Repo};
use crate::digest::Digest;
use crate::registry::media::references;
use crate::registry::{self, ManifestRef};
use crate::sync::{Cancel, lock};

use super::rollout::sampled;

/// One image to read back: where, which digest, and the tags that must point at it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub repo: Repo,
    pub digest: Digest,
    pub tags: Vec<String>,
}

/// Something the read-back found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `registry/image:tag`, `registry/image@digest` or `registry/image: blob sha256:…`.
    pub at: String,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// What one wave's read-back did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub problems: Vec<Problem>,
    pub manifests: usize,
    /// Blobs found present by HEAD, and blobs read in full (the sampled ones).
    pub blobs_headed: usize,
    pub blobs_read: usize,
}

/// Blob checks of one manifest in flight at once (the backends' gates bound the total).
const BLOBS_PER_MANIFEST: usize = 8;

/// Shared by the checks of one wave: what was already checked (an image's children and
/// blobs are often shared) and what was found.
#[derive(Default)]
struct Seen {
    manifests: HashSet<(String, Digest)>,
    blobs: HashSet<(String, Digest)>,
    outcome: Outcome,
}

/// Reads every target back; returns every problem found (none means the wave is sound).
/// After `cancel`, checks not yet started are skipped (the run then fails as interrupted).
pub(super) async fn verify(targets: Vec<Target>, sample: f64, cancel: &Cancel) -> Outcome {
    let seen = Mutex::new(Seen::default());
    let seen = &seen;
    stream::iter(targets)
        .for_each_concurrent(PENDING_REQUESTS, |target| async move {
            if !cancel.is_cancelled() {
                check_image(&target, sample, seen).await;
            }
        })
        .await;
    std::mem::take(&mut lock(seen).outcome)
}

fn problem(seen: &Mutex<Seen>, at: String, what: String) {
    tracing::error!("read-back: {at}: {what}");
    lock(seen).outcome.problems.push(Problem { at, what });
}

async fn check_image(target: &Target, sample: f64, seen: &Mutex<Seen>) {
    let repo = &target.repo;
    for tag in &target.tags {
        let at = format!("{}:{tag}", repo.display);
        match repo
            .registry
            .head_manifest(&repo.path, &ManifestRef::Tag(tag.clone()))
            .await
        {
            Ok(Some(d)) if d.digest == target.digest => {}
            Ok(Some(d)) => problem(seen, at, format!("points to {}, planned {}", d.digest, target.digest)),
            Ok(None) => problem(seen, at, "tag not found".into()),
            Err(e) => problem(seen, at, e.to_string()),
        }
    }
    let mut todo = vec![target.digest];
    while let Some(digest) = todo.pop() {
        if !lock(seen).manifests.insert((repo.display.clone(), digest)) {
            continue;
        }
        let at = format!("{}@{digest}", repo.display);
        let manifest = match repo
            .registry
            .get_manifest(&repo.path, &ManifestRef::Digest(digest))
            .await
        {
            Ok(Some(m)) => m,
            Ok(None) => {
                problem(seen, at, "manifest not found".into());
                continue;
            }
            Err(e) => {
                problem(seen, at, e.to_string());
                continue;
            }
        };
        lock(seen).outcome.manifests += 1;
        // The backends check this already; the read-back states it on its own.
        let actual = Digest::of(&manifest.bytes);
        if actual != digest {
            problem(seen, at, format!("served bytes hash to {actual}"));
            continue;
        }
        let refs = match references(&manifest) {
            Ok(refs) => refs,
            Err(e) => {
                problem(seen, at, e.to_string());
                continue;
            }
        };
        todo.extend(refs.children);
        stream::iter(refs.blobs)
            .for_each_concurrent(BLOBS_PER_MANIFEST, |blob| check_blob(repo, blob.digest, sample, seen))
            .await;
    }
}

/// A blob's presence (HEAD) or, when sampled, its whole body (GET, digest-checked while
/// streaming: a GET that succeeds proves presence too, so those are not HEADed first).
async fn check_blob(repo: &Repo, digest: Digest, sample: f64, seen: &Mutex<Seen>) {
    if !lock(seen).blobs.insert((repo.display.clone(), digest)) {
        return;
    }
    let at = format!("{}: blob {digest}", repo.display);
    if !sampled(&digest, sample) {
        match repo.registry.blob_size(&repo.path, &digest).await {
            Ok(Some(_)) => lock(seen).outcome.blobs_headed += 1,
            Ok(None) => problem(seen, at, "blob not found".into()),
            Err(e) => problem(seen, at, e.to_string()),
        }
        return;
    }
    let mut body = match repo.registry.get_blob(&repo.path, &digest).await {
        Ok(body) => body,
        Err(registry::Error::Status { status: 404, .. }) => return problem(seen, at, "blob not found".into()),
        Err(e) => return problem(seen, at, e.to_string()),
    };
    while let Some(chunk) = body.next().await {
        if let Err(e) = chunk {
            return problem(seen, at, e.to_string());
        }
    }
    lock(seen).outcome.blobs_read += 1;
}
