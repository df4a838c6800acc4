//! Step 1: read each source manifest graph once, and what each manifest references
//! (through the one manifest reader, `registry::media::references`): child manifests of
//! an index, and the blobs a destination requires. The bytes are never re-serialised.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, stream};

use crate::digest::Digest;
use crate::registry::media::{References, references};
use crate::registry::{ManifestRef, RawManifest};

use super::{Cause, Class, Ctx, Failure, MAX_DEPTH, PENDING_REQUESTS, RepoId, Source};

/// A source manifest and what it references.
#[derive(Debug)]
pub(super) struct Node {
    pub raw: RawManifest,
    pub refs: References,
}

/// Every source manifest read, by source repository and digest.
pub(super) type Graphs = HashMap<Source, Node>;

/// The source manifests that could not be read, and whether a rerun could read them.
pub(super) type Unread = HashMap<Source, Class>;

/// Reads every requested source image once, and the whole graph below it when any
/// destination lacks it (only the top, whose bytes the tags need, for a retag).
pub(super) async fn read(ctx: &Ctx<'_>) -> (Graphs, Unread) {
    let mut graphs = Graphs::new();
    let mut unread = Unread::new();
    let mut frontier: BTreeSet<(Source, bool)> = ctx
        .request
        .images
        .iter()
        .map(|(source, destinations)| (*source, destinations.values().any(|w| w.push)))
        .collect();
    for _depth in 0..=MAX_DEPTH {
        if frontier.is_empty() || ctx.cancel.is_cancelled() {
            break;
        }
        let fetched: Vec<(Source, bool, Result<Node, Class>)> = stream::iter(std::mem::take(&mut frontier))
            .map(|(source, recurse)| async move { (source, recurse, fetch(ctx, source).await) })
            .buffer_unordered(PENDING_REQUESTS)
            .collect()
            .await;
        for (source, recurse, node) in fetched {
            let node = match node {
                Ok(node) => node,
                Err(class) => {
                    unread.insert(source, class);
                    continue;
                }
            };
            if recurse {
                for child in &node.refs.children {
                    if !graphs.contains_key(&(source.0, *child)) {
                        frontier.insert(((source.0, *child), true));
                    }
                }
            }
            graphs.insert(source, node);
        }
    }
    if !ctx.cancel.is_cancelled() {
        for (source, _) in frontier {
            let failure = Failure::new(ctx.request.reference(source), Cause::TooDeep);
            unread.insert(source, failure.class());
            ctx.fail(failure);
        }
    }
    (graphs, unread)
}

/// Reads one source manifest; a failure is recorded (and its class returned) and blocks
/// what needs it.
async fn fetch(ctx: &Ctx<'_>, source: Source) -> Result<Node, Class> {
    let (repo, digest) = source;
    let at = ctx.request.reference(source);
    let from = ctx.repo(repo);
    let cause = match from
        .registry
        .get_manifest(&from.path, &ManifestRef::Digest(digest))
        .await
    {
        Ok(Some(raw)) => match references(&raw) {
            Ok(refs) => return Ok(Node { raw, refs }),
            Err(why) => Cause::Unreadable(Arc::new(why)),
        },
        Ok(None) => Cause::Vanished,
        Err(e) => Cause::Registry(Arc::new(e)),
    };
    let failure = Failure::new(at, cause);
    let class = failure.class();
    ctx.fail(failure);
    Err(class)
}

/// Every descendant manifest of `top` in `repo` (not `top` itself).
pub(super) fn descendants(graphs: &Graphs, repo: RepoId, top: Digest) -> BTreeSet<Digest> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![top];
    while let Some(d) = todo.pop() {
        if let Some(node) = graphs.get(&(repo, d)) {
            for child in &node.refs.children {
                if seen.insert(*child) {
                    todo.push(*child);
                }
            }
        }
    }
    seen
}
