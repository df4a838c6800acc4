//! Steps 2 and 3: what each destination lacks. The answer is plain data ([`CopyPlan`]);
//! nothing is written here.
use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, stream};
use tracing::warn;

use crate::digest::Digest;
use crate::registry::ManifestRef;

use super::graph::{Graphs, descendants};
use super::{Ctx, PENDING_REQUESTS, RepoId, Source, Want};

/// What the copy has to write.
#[derive(Debug, Default)]
pub(super) struct CopyPlan {
    /// Per destination repository, the manifests to push (by source repository and digest).
    pub manifests: BTreeMap<RepoId, BTreeSet<Source>>,
    /// Every blob some destination lacks.
    pub blobs: Vec<BlobJob>,
    /// Bytes the blob copies will upload, all destinations together.
    pub bytes: u64,
}

/// One blob to copy: where it can be read, and every destination repository lacking it.
#[derive(Debug)]
pub(super) struct BlobJob {
    pub digest: Digest,
    pub size: u64,
    /// Source repositories holding it (any one will do).
    pub sources: BTreeSet<RepoId>,
    pub targets: BTreeSet<RepoId>,
}

/// Finds the manifests each destination lacks (HEADs of the children of copied images),
/// then the blobs those manifests need that the destination lacks (HEADs, except in
/// fresh repositories).
pub(super) async fn plan(ctx: &Ctx<'_>, graphs: &Graphs, by_dst: &BTreeMap<RepoId, Vec<(Source, &Want)>>) -> CopyPlan {
    let (manifests, fresh) = missing_manifests(ctx, graphs, by_dst).await;
    let (blobs, bytes) = missing_blobs(ctx, graphs, &manifests, &fresh).await;
    CopyPlan {
        manifests,
        blobs,
        bytes,
    }
}

/// Per destination repository, the manifests that must be pushed: copied tops, plus
/// their descendants the destination lacks; and the destinations still fresh.
async fn missing_manifests(
    ctx: &Ctx<'_>,
    graphs: &Graphs,
    by_dst: &BTreeMap<RepoId, Vec<(Source, &Want)>>,
) -> (BTreeMap<RepoId, BTreeSet<Source>>, BTreeSet<RepoId>) {
    let mut to_head: BTreeSet<(RepoId, Digest)> = BTreeSet::new();
    for (dst, images) in by_dst {
        for ((src, top), want) in images {
            if want.push {
                to_head.extend(descendants(graphs, *src, *top).into_iter().map(|d| (*dst, d)));
            }
        }
    }
    let present: BTreeSet<(RepoId, Digest)> = stream::iter(to_head)
        .map(|(dst, digest)| async move {
            let to = ctx.repo(dst);
            match to.registry.head_manifest(&to.path, &ManifestRef::Digest(digest)).await {
                Ok(found) => found.map(|_| (dst, digest)),
                Err(e) => {
                    // Unknown counts as missing: the push is idempotent.
                    warn!("{}@{digest}: {e}", to.display);
                    None
                }
            }
        })
        .buffer_unordered(PENDING_REQUESTS)
        .filter_map(|found| async move { found })
        .collect()
        .await;

    // A repository holding a child is not fresh: an earlier run got that far.
    let inhabited: BTreeSet<RepoId> = present.iter().map(|(dst, _)| *dst).collect();
    let fresh = ctx.request.fresh.difference(&inhabited).copied().collect();
    let mut manifests: BTreeMap<RepoId, BTreeSet<Source>> = BTreeMap::new();
    for (dst, images) in by_dst {
        for ((src, top), want) in images {
            if !want.push {
                continue;
            }
            let set = manifests.entry(*dst).or_default();
            let mut todo = vec![*top];
            while let Some(d) = todo.pop() {
                if !set.insert((*src, d)) {
                    continue;
                }
                if let Some(node) = graphs.get(&(*src, d)) {
                    todo.extend(node.refs.children.iter().filter(|c| !present.contains(&(*dst, **c))));
                }
            }
        }
    }
    (manifests, fresh)
}

/// HEADs the blobs of the manifests to push at their destinations and returns the copies
/// to make, with the number of bytes they will upload.
async fn missing_blobs(
    ctx: &Ctx<'_>,
    graphs: &Graphs,
    manifests: &BTreeMap<RepoId, BTreeSet<Source>>,
    fresh: &BTreeSet<RepoId>,
) -> (Vec<BlobJob>, u64) {
    let mut wanted: BTreeMap<(RepoId, Digest), (u64, RepoId)> = BTreeMap::new();
    for (dst, sources) in manifests {
        for source in sources {
            if let Some(node) = graphs.get(source) {
                for blob in &node.refs.blobs {
                    wanted.entry((*dst, blob.digest)).or_insert((blob.size, source.0));
                }
            }
        }
    }
    // A fresh repository lacks every blob: no HEADs there.
    let (fresh, known): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|((dst, _), _)| fresh.contains(dst));
    let mut lacking: Vec<((RepoId, Digest), (u64, RepoId))> = stream::iter(known)
        .map(|((dst, digest), info)| async move {
            let to = ctx.repo(dst);
            match to.registry.blob_size(&to.path, &digest).await {
                Ok(Some(_)) => {
                    ctx.count(|c| c.blobs_present += 1);
                    None
                }
                Ok(None) => Some(((dst, digest), info)),
                Err(e) => {
                    warn!("{}@{digest}: {e}", to.display);
                    Some(((dst, digest), info))
                }
            }
        })
        .buffer_unordered(PENDING_REQUESTS)
        .filter_map(|lacking| async move { lacking })
        .collect()
        .await;
    lacking.extend(fresh);

    let mut jobs: BTreeMap<Digest, BlobJob> = BTreeMap::new();
    let mut total = 0;
    for ((dst, digest), (size, src)) in lacking {
        total += size;
        let job = jobs.entry(digest).or_insert_with(|| BlobJob {
            digest,
            size,
            sources: BTreeSet::new(),
            targets: BTreeSet::new(),
        });
        job.sources.insert(src);
        job.targets.insert(dst);
    }
    (jobs.into_values().collect(), total)
}
