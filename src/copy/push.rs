//! Step 5: per destination repository, push manifests by digest from the leaves up, then
//! the tags. A manifest is skipped (and reported) when anything it references failed; a
//! tag only goes on an image whose every manifest and blob is there.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::{StreamExt, stream};

use crate::digest::Digest;
use crate::registry::ManifestRef;

use super::arrivals::Arrivals;
use super::graph::{Graphs, Unread};
use super::order::levels;
use super::progress::Progress;
use super::{Cause, Class, Ctx, Delivered, Failure, Missing, Repo, RepoId, Source, Undelivered, Want, Write};

/// Manifest pushes in flight within one destination repository.
const PUSHES_PER_REPO: usize = 8;

/// The source manifests read in step 1, and those that could not be.
#[derive(Clone, Copy)]
pub(super) struct Sources<'a> {
    pub graphs: &'a Graphs,
    pub unread: &'a Unread,
}

impl Sources<'_> {
    /// The class a write blocked by the unread source manifest `m` passes on: that of the
    /// read's failure; a manifest never tried was skipped by Ctrl-C.
    fn unread_class(&self, m: &Source) -> Class {
        self.unread.get(m).copied().unwrap_or(Class::Transient)
    }
}

/// Pushes every destination repository, all at once: each waits for its own blobs, so
/// none may queue behind another (the registries' gates bound the requests).
pub(super) async fn all(
    ctx: &Ctx<'_>,
    sources: Sources<'_>,
    by_dst: &BTreeMap<RepoId, Vec<(Source, &Want)>>,
    manifests: &BTreeMap<RepoId, BTreeSet<Source>>,
    arrivals: &Arrivals,
    progress: &Progress,
) {
    let none = BTreeSet::new();
    stream::iter(by_dst)
        .for_each_concurrent(None, |(dst, images)| {
            let needed = manifests.get(dst).unwrap_or(&none);
            repo(ctx, sources, *dst, images, needed, arrivals, progress)
        })
        .await;
}

/// One destination repository: its manifests level by level, then its tags.
async fn repo(
    ctx: &Ctx<'_>,
    sources: Sources<'_>,
    dst: RepoId,
    images: &[(Source, &Want)],
    needed: &BTreeSet<Source>,
    arrivals: &Arrivals,
    progress: &Progress,
) {
    let referrers: BTreeSet<Source> = images
        .iter()
        .filter(|(_, want)| want.referrer)
        .map(|(source, _)| *source)
        .collect();
    let push = RepoPush {
        ctx,
        sources,
        dst,
        to: ctx.repo(dst),
        needed,
        referrers: &referrers,
        arrivals,
    };
    let children = |(repo, digest): Source| {
        sources
            .graphs
            .get(&(repo, digest))
            .map(|node| node.refs.children.iter().map(|c| (repo, *c)).collect())
            .unwrap_or_default()
    };
    let mut failed: BTreeMap<Source, Class> = BTreeMap::new();
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
                    failed.insert(m, failure.class());
                    ctx.fail(failure);
                }
            }
        }
    }

    stream::iter(images)
        .for_each_concurrent(PUSHES_PER_REPO, |(source, want)| {
            let (push, failed) = (&push, &failed);
            async move {
                match push.tags(*source, want, failed).await {
                    Ok(delivered) => {
                        ctx.with(|r| r.delivered.push(delivered));
                        progress.image_done();
                    }
                    Err(failure) => {
                        ctx.fail(failure.clone());
                        let undelivered = Undelivered {
                            source: *source,
                            destination: dst,
                            tags: want.tags.iter().cloned().collect(),
                            failure,
                        };
                        ctx.with(|r| r.undelivered.push(undelivered));
                    }
                }
            }
        })
        .await;
}

/// What pushing into one destination repository needs to know.
struct RepoPush<'a> {
    ctx: &'a Ctx<'a>,
    sources: Sources<'a>,
    dst: RepoId,
    to: &'a Repo,
    /// The manifests this repository gets (by source repository and digest).
    needed: &'a BTreeSet<Source>,
    /// Those of them that are referrers, pushed as such.
    referrers: &'a BTreeSet<Source>,
    arrivals: &'a Arrivals,
}

impl RepoPush<'_> {
    /// Pushes one manifest by digest, unless something it needs is missing (`failed`:
    /// the manifests of earlier levels that could not be pushed).
    async fn manifest(&self, m: Source, failed: &BTreeMap<Source, Class>) -> Result<(), Failure> {
        let at = format!("{}@{}", self.to.display, m.1);
        let blocked = |by, class| {
            Failure::new(
                at.clone(),
                Cause::Blocked {
                    write: Write::Manifest,
                    by,
                    class,
                },
            )
        };
        let graphs = self.sources.graphs;
        let node = graphs
            .get(&m)
            .ok_or_else(|| blocked(Missing::SourceManifest, self.sources.unread_class(&m)))?;
        let unavailable = |child: &Digest| {
            let child = (m.0, *child);
            match failed.get(&child) {
                Some(class) => Some(*class),
                None if self.needed.contains(&child) && !graphs.contains_key(&child) => {
                    Some(self.sources.unread_class(&child))
                }
                None => None,
            }
        };
        if let Some((child, class)) = node.refs.children.iter().find_map(|c| unavailable(c).map(|k| (c, k))) {
            return Err(blocked(Missing::Child(*child), class));
        }
        for blob in &node.refs.blobs {
            if let Err(class) = self.arrivals.wait((self.dst, blob.digest)).await {
                return Err(blocked(Missing::Blob(blob.digest), class));
            }
        }
        if self.ctx.cancel.is_cancelled() {
            return Err(Failure::new(at, Cause::Interrupted));
        }
        let registry = &self.to.registry;
        let pushed = if self.referrers.contains(&m) {
            registry.put_referrer(&self.to.path, &node.raw).await
        } else {
            registry
                .put_manifest(&self.to.path, &ManifestRef::Digest(m.1), &node.raw)
                .await
        };
        pushed.map_err(|e| Failure::new(at, Cause::Registry(Arc::new(e))))
    }

    /// Writes the tags of one image once the image is complete; returns what was
    /// delivered, or the one failure that kept the image from its destination.
    async fn tags(&self, source: Source, want: &Want, failed: &BTreeMap<Source, Class>) -> Result<Delivered, Failure> {
        let at = format!("{}@{}", self.to.display, source.1);
        let blocked = |by, class| {
            Failure::new(
                at.clone(),
                Cause::Blocked {
                    write: Write::Tags,
                    by,
                    class,
                },
            )
        };
        if let Some(class) = failed.get(&source) {
            return Err(blocked(Missing::Image, *class));
        }
        let Some(node) = self.sources.graphs.get(&source) else {
            return Err(blocked(Missing::SourceManifest, self.sources.unread_class(&source)));
        };
        for tag in &want.tags {
            if self.ctx.cancel.is_cancelled() {
                return Err(Failure::new(format!("{}:{tag}", self.to.display), Cause::Interrupted));
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
                    return Err(Failure::new(at, Cause::Registry(Arc::new(e))));
                }
            }
        }
        Ok(Delivered {
            source,
            destination: self.dst,
            media_type: node.raw.media_type.clone(),
            size: node.raw.bytes.len() as u64,
            tags: want.tags.iter().cloned().collect(),
            copied: want.push,
        })
    }
}
