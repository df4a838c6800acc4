//! Step 1: read each source manifest graph once, and what each manifest references
//! (through the one manifest reader, `registry::media::references`): child manifests of
//! an index, and the blobs a destination requires. The bytes are never re-serialised.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, stream};

use crate::digest::Digest;
use crate::registry::media::{References, references};
use crate::registry::{ManifestRef, RawManifest};

use super::{Cause, Ctx, Failure, MAX_DEPTH, PENDING_REQUESTS, RepoId, Source};

/// A source manifest and what it references.
#[derive(Debug)]
pub(super) struct Node {
    pub raw: RawManifest,
    pub refs: References,
}

/// Every source manifest read, by source repository and digest.
pub(super) type Graphs = HashMap<Source, Node>;

/// Reads every requested source image once, and the whole graph below it when any
/// destination lacks it (only the top, whose bytes the tags need, for a retag).
pub(super) async fn read(ctx: &Ctx<'_>) -> Graphs {
    let mut graphs = Graphs::new();
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
        let fetched: Vec<Option<(Source, bool, Node)>> = stream::iter(std::mem::take(&mut frontier))
            .map(|(source, recurse)| async move { fetch(ctx, source).await.map(|node| (source, recurse, node)) })
            .buffer_unordered(PENDING_REQUESTS)
            .collect()
            .await;
        for (source, recurse, node) in fetched.into_iter().flatten() {
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
            ctx.fail(Failure::new(ctx.request.reference(source), Cause::TooDeep));
        }
    }
    graphs
}

/// Reads one source manifest; a failure is recorded and blocks what needs it.
async fn fetch(ctx: &Ctx<'_>, source: Source) -> Option<Node> {
    let (repo, digest) = source;
    let at = ctx.request.reference(source);
    let from = ctx.repo(repo);
    match from
        .registry
        .get_manifest(&from.path, &ManifestRef::Digest(digest))
        .await
    {
        Ok(Some(raw)) => match references(&raw) {
            Ok(refs) => Some(Node { raw, refs }),
            Err(why) => {
                ctx.fail(Failure::new(at, Cause::Unreadable(Arc::new(why))));
                None
            }
        },
        Ok(None) => {
            ctx.fail(Failure::new(at, Cause::Vanished));
            None
        }
        Err(e) => {
            ctx.fail(Failure::new(at, Cause::Registry(Arc::new(e))));
            None
        }
    }
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
