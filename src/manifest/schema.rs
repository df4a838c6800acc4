//! The in-memory manifest model shared by validation, edge computation and snapshots.
//!
//! Values are kept as the strings found in the YAML (a digest with 63 hex digits is
//! still loaded) so that validation can report every problem with its file position
//! instead of failing on the first one during deserialisation.
use std::path::PathBuf;
use std::sync::Arc;

/// A 1-based line and column in a YAML file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// One entry of a manifest's `registries` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryContext {
    /// Registry host plus an optional path prefix, e.g.
    /// `us-central1-docker.pkg.dev/k8s-artifacts-prod/images/kubernetes`.
    pub name: String,
    /// Parsed for compatibility and ignored, as in Go kpromo since v4.
    pub service_account: Option<String>,
    pub src: bool,
    pub pos: Position,
}

/// One `dmap` entry: a digest and the tags it should carry (empty = promote by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    pub digest: String,
    pub tags: Vec<String>,
    pub pos: Position,
}

/// One image: a name (may contain `/`) and its digests in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub dmap: Vec<DigestEntry>,
    pub pos: Position,
}

/// A loaded promoter manifest with its images (from the same file for plain
/// manifests, from the sibling `images.yaml` for thin ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The promoter manifest file (plain manifest or `promoter-manifest.yaml`).
    pub path: Arc<PathBuf>,
    /// The file the images came from (equal to `path` for plain manifests).
    pub images_path: Arc<PathBuf>,
    pub registries: Vec<RegistryContext>,
    pub images: Vec<Image>,
}

impl Manifest {
    /// The first `src: true` registry (Go's `Finalize`: the first one wins).
    pub fn source(&self) -> Option<&RegistryContext> {
        self.registries.iter().find(|r| r.src)
    }

    /// Every registry that is not the source. Go compares whole contexts, so an entry
    /// with the source's name but another service account is still a destination;
    /// kpromo ignores service accounts and treats every non-`src` entry as a destination.
    pub fn destinations(&self) -> impl Iterator<Item = &RegistryContext> {
        self.registries.iter().filter(|r| !r.src)
    }
}

/// One image of a [`Manifest::for_test`]: its name and `(digest, tags)` entries.
#[cfg(test)]
pub(crate) type TestImageSpec<'a> = (&'a str, Vec<(String, Vec<&'a str>)>);

#[cfg(test)]
impl Manifest {
    /// A manifest built in code for unit tests: `src` and `dsts` registries (no
    /// positions), `images` with their digests and tags, read from `path`.
    pub(crate) fn for_test(path: &str, src: &str, dsts: &[&str], images: &[TestImageSpec]) -> Self {
        let registry = |name: &str, src: bool| RegistryContext {
            name: name.into(),
            service_account: None,
            src,
            pos: Position::default(),
        };
        let mut registries = vec![registry(src, true)];
        registries.extend(dsts.iter().map(|d| registry(d, false)));
        let images = images
            .iter()
            .map(|(name, dmap)| Image {
                name: name.to_string(),
                dmap: dmap
                    .iter()
                    .map(|(digest, tags)| DigestEntry {
                        digest: digest.clone(),
                        tags: tags.iter().map(|t| t.to_string()).collect(),
                        pos: Position::default(),
                    })
                    .collect(),
                pos: Position::default(),
            })
            .collect();
        let path = Arc::new(PathBuf::from(path));
        Manifest {
            path: path.clone(),
            images_path: path,
            registries,
            images,
        }
    }
}
