//! Step 1: read each source manifest graph once, and what each manifest references:
//! child manifests (for an index) and blobs (config and layers). Only the fields needed
//! to copy are read; the bytes are never re-serialised.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde::Deserialize;

use crate::digest::Digest;
use crate::registry::{ManifestRef, RawManifest};

use super::{Cause, Ctx, Failure, MAX_DEPTH, PENDING_REQUESTS, RepoId, Source};

/// A source manifest and what it references.
#[derive(Debug)]
pub(super) struct Node {
    pub raw: RawManifest,
    pub refs: Refs,
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
        Ok(Some(raw)) => match refs(&raw) {
            Ok(refs) => Some(Node { raw, refs }),
            Err(why) => {
                ctx.fail(Failure::new(at, Cause::Unreadable(why)));
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

/// A blob a manifest needs at the destination before it can be pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

/// The references of one manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Refs {
    /// Child manifests of an index, in index order.
    pub children: Vec<Digest>,
    /// Config and distributable layers.
    pub blobs: Vec<BlobRef>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    manifests: Vec<WireDescriptor>,
    config: Option<WireDescriptor>,
    #[serde(default)]
    layers: Vec<WireDescriptor>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
}

#[derive(Deserialize)]
struct WireDescriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    urls: Vec<String>,
}

impl WireDescriptor {
    /// Foreign (Windows base) and non-distributable layers live elsewhere; registries do
    /// not require them and go-containerregistry does not copy them either.
    fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || self.media_type.contains("foreign") || self.media_type.contains("nondistributable")
    }
}

/// Reads the references of `manifest`, or says why it cannot be copied.
pub(super) fn refs(manifest: &RawManifest) -> Result<Refs, String> {
    let wire: Wire = serde_json::from_slice(&manifest.bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    if wire.schema_version == Some(1) {
        return Err("Docker schema 1 manifests cannot be promoted byte-for-byte".into());
    }
    let parse = |d: &WireDescriptor| {
        d.digest
            .parse::<Digest>()
            .map_err(|e| format!("unsupported reference: {e}"))
    };
    let mut refs = Refs::default();
    for child in &wire.manifests {
        refs.children.push(parse(child)?);
    }
    for blob in wire.config.iter().chain(wire.layers.iter()) {
        if blob.is_foreign() {
            continue;
        }
        refs.blobs.push(BlobRef {
            digest: parse(blob)?,
            size: blob.size,
        });
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(json: &str) -> RawManifest {
        RawManifest::new("application/json", Bytes::from(json.to_string()))
    }

    #[test]
    fn image_manifest_lists_config_and_layers_but_not_foreign_layers() {
        let (c, l, f) = (Digest::of(b"c"), Digest::of(b"l"), Digest::of(b"f"));
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{c}","size":1}},"layers":[
            {{"digest":"{l}","size":2}},
            {{"digest":"{f}","size":3,"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","urls":["https://x"]}}]}}"#
        );
        let refs = refs(&raw(&json)).unwrap();
        assert!(refs.children.is_empty());
        assert_eq!(
            refs.blobs,
            [BlobRef { digest: c, size: 1 }, BlobRef { digest: l, size: 2 }]
        );
    }

    #[test]
    fn index_lists_children_in_order() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let json = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{b}"}},{{"digest":"{a}"}}]}}"#);
        assert_eq!(refs(&raw(&json)).unwrap().children, [b, a]);
    }

    #[test]
    fn garbage_and_schema1_are_errors_saying_why() {
        let err = refs(&raw("not json")).unwrap_err();
        assert!(err.starts_with("manifest is not valid JSON"), "{err}");
        assert!(refs(&raw(r#"{"schemaVersion":1,"fsLayers":[]}"#)).is_err());
    }
}
