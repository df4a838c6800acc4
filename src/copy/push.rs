//! Step 5: per destination repository, push manifests by digest from the leaves up, then
//! the tags. A manifest is skipped (and reported) when anything it references failed; a
//! tag only goes on an image whose every manifest and blob is there.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::{StreamExt, stream};

use crate::digest::Digest;
use crate::registry::ManifestRef;

use super::graph::Graphs;
use super::order::levels;
use super::progress::Progress;
use super::{Cause, Ctx, Delivered, Failure, Missing, PENDING_REQUESTS, Repo, RepoId, Source, Want, Write};

/// Manifest pushes in flight within one destination repository.
const PUSHES_PER_REPO: usize = 8;

/// Pushes every destination repository, concurrently.
pub(super) async fn all(
    ctx: &Ctx<'_>,
    graphs: &Graphs,
    by_dst: &BTreeMap<RepoId, Vec<(Source, &Want)>>,
    manifests: &BTreeMap<RepoId, BTreeSet<Source>>,
    failed_blobs: &BTreeSet<(RepoId, Digest)>,
    progress: &Progress,
) {
    let none = BTreeSet::new();
    stream::iter(by_dst)
        .for_each_concurrent(PENDING_REQUESTS, |(dst, images)| {
            let needed = manifests.get(dst).unwrap_or(&none);
            repo(ctx, graphs, *dst, images, needed, failed_blobs, progress)
        })
        .await;
}

/// One destination repository: its manifests level by level, then its tags.
async fn repo(
    ctx: &Ctx<'_>,
    graphs: &Graphs,
    dst: RepoId,
    images: &[(Source, &Want)],
    needed: &BTreeSet<Source>,
    failed_blobs: &BTreeSet<(RepoId, Digest)>,
    progress: &Progress,
) {
    let push = RepoPush {
        ctx,
        graphs,
        dst,
        to: ctx.repo(dst),
        needed,
        failed_blobs,
    };
    let children = |(repo, digest): Source| {
        graphs
            .get(&(repo, digest))
            .map(|node| node.refs.children.iter().map(|c| (repo, *c)).collect())
            .unwrap_or_default()
    };
    let mut failed: BTreeSet<Source> = BTreeSet::new();
    for level in levels(needed, children) {
        let results: Vec<(Source, Result<(), Failure>)> = stream::iter(level)
            .map(|m| {
                let (push, failed) = (&push, &failed);
                async move { (m, push.manifest(m, failed).await) }
            })
            .buffer_unordered(PUSHES_PER_REPO)
            .collect()
            .await;
        for (m, result) in results {
            match result {
                Ok(()) => ctx.count(|c| c.manifests_pushed += 1),
                Err(failure) => {
                    ctx.fail(failure);
                    failed.insert(m);
                }
            }
        }
    }

    stream::iter(images)
        .for_each_concurrent(PUSHES_PER_REPO, |(source, want)| {
            let (push, failed) = (&push, &failed);
            async move {
                if let Some(delivered) = push.tags(*source, want, failed).await {
                    ctx.with(|r| r.delivered.push(delivered));
                    progress.image_done();
                }
            }
        })
        .await;
}

/// What pushing into one destination repository needs to know.
struct RepoPush<'a> {
    ctx: &'a Ctx<'a>,
    graphs: &'a Graphs,
    dst: RepoId,
    to: &'a Repo,
    /// The manifests this repository gets (by source repository and digest).
    needed: &'a BTreeSet<Source>,
    failed_blobs: &'a BTreeSet<(RepoId, Digest)>,
}

impl RepoPush<'_> {
    /// Pushes one manifest by digest, unless something it needs is missing (`failed`:
    /// the manifests of earlier levels that could not be pushed).
    async fn manifest(&self, m: Source, failed: &BTreeSet<Source>) -> Result<(), Failure> {
        let at = format!("{}@{}", self.to.display, m.1);
        let blocked = |by| {
            Failure::new(
                at.clone(),
                Cause::Blocked {
                    write: Write::Manifest,
                    by,
                },
            )
        };
        if self.ctx.cancel.is_cancelled() {
            return Err(Failure::new(at, Cause::Interrupted));
        }
        let node = self.graphs.get(&m).ok_or_else(|| blocked(Missing::SourceManifest))?;
        let unavailable = |child: &&Digest| {
            let child = (m.0, **child);
            failed.contains(&child) || (self.needed.contains(&child) && !self.graphs.contains_key(&child))
        };
        if let Some(child) = node.refs.children.iter().find(unavailable) {
            return Err(blocked(Missing::Child(*child)));
        }
        if let Some(blob) = node
            .refs
            .blobs
            .iter()
            .find(|b| self.failed_blobs.contains(&(self.dst, b.digest)))
        {
            return Err(blocked(Missing::Blob(blob.digest)));
        }
        self.to
            .registry
            .put_manifest(&self.to.path, &ManifestRef::Digest(m.1), &node.raw)
            .await
            .map_err(|e| Failure::new(at, Cause::Registry(Arc::new(e))))
    }

    /// Writes the tags of one image once the image is complete; returns what was
    /// delivered.
    async fn tags(&self, source: Source, want: &Want, failed: &BTreeSet<Source>) -> Option<Delivered> {
        let at = format!("{}@{}", self.to.display, source.1);
        let blocked = |by| Failure::new(at.clone(), Cause::Blocked { write: Write::Tags, by });
        if failed.contains(&source) {
            self.ctx.fail(blocked(Missing::Image));
            return None;
        }
        let Some(node) = self.graphs.get(&source) else {
            self.ctx.fail(blocked(Missing::SourceManifest));
            return None;
        };
        for tag in &want.tags {
            if self.ctx.cancel.is_cancelled() {
                return None;
            }
            let reference = ManifestRef::Tag(tag.clone());
            match self
                .to
                .registry
                .put_manifest(&self.to.path, &reference, &node.raw)
                .await
            {
                Ok(()) => self.ctx.count(|c| c.tags_pushed += 1),
                Err(e) => {
                    let at = format!("{}:{tag}", self.to.display);
                    self.ctx.fail(Failure::new(at, Cause::Registry(Arc::new(e))));
                    return None;
                }
            }
        }
        Some(Delivered {
            source,
            destination: self.dst,
            media_type: node.raw.media_type.clone(),
            tags: want.tags.iter().cloned().collect(),
            copied: want.push,
        })
    }
}
