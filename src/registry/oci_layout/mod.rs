//! OCI image-layout directories as a registry (`oci:PATH`, `oci-layout://PATH`).
//!
//! The registry is a plain directory and every repository is its own OCI image layout
//! below it: repository `foo/bar` is `PATH/foo/bar/` with `oci-layout`, `index.json`
//! and `blobs/sha256/<hex>`. That is exactly what `skopeo … oci:PATH/foo/bar:TAG`
//! reads and writes, so promotions into a layout can be checked, copied or served
//! with standard tools. Design notes and limits: `docs/oci-layout.md`.
//!
//! - Tags are `index.json` entries annotated `org.opencontainers.image.ref.name`.
//! - A manifest pushed by digest only (index children, tagless promotions) is stored as
//!   a blob plus an `index.json` entry without a ref name, so it is found by digest.
//! - Blobs and `index.json` are written to a temp file, fsynced and renamed: readers and
//!   a crash only ever see complete files. `index.json` updates are serialised per
//!   repository within this process (one async mutex per repository).
//! - Counters mimic the HTTP requests a remote registry would have seen (`GET 200`,
//!   `HEAD 404`, `PUT 201`, `POST 201`…), so summaries and "a rerun writes nothing"
//!   checks read the same for both backends.
//!
//! Files follow the remote backend's: `manifests`, `blobs`, `tags`, each method named
//! after the trait method it implements; `index` models `index.json` and `store` holds the
//! filesystem primitives.
mod blobs;
mod index;
mod manifests;
pub(super) mod store;
mod tags;

use crate::sync::KeyedLocks;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::digest::Digest;
use crate::registry::{
    BlobStream, Descriptor, Error, ManifestRef, MountOutcome, RawManifest, Registry, RegistryStats, TagList,
};
use index::Index;
use store::{Op, Stats};

/// Largest manifest read or written, as in CNCF distribution: anything bigger is not
/// a manifest (and must never be read into memory whole).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";

/// A directory of OCI image layouts, one per repository.
#[derive(Debug)]
pub struct OciLayout {
    name: String,
    root: PathBuf,
    stats: Stats,
}

/// One `index.json` lock per repository directory for the whole process, not per
/// [`OciLayout`]: two names for one directory (`oci:./m`, `oci-layout://m`) open two
/// backends that must still not interleave their index updates.
static INDEX_LOCKS: KeyedLocks<PathBuf> = KeyedLocks::new();

/// Opens the layout directory at `path`. Nothing is created until the first write, and
/// a missing directory reads as an empty registry. A relative path is resolved against
/// the current directory now, so later `chdir`s do not move the registry.
pub fn open(path: &Path) -> Result<OciLayout, Error> {
    let invalid = |message: &str| Error::InvalidReference {
        reference: format!("oci:{}", path.display()),
        message: message.to_string(),
    };
    if path.as_os_str().is_empty() {
        return Err(invalid("empty layout path"));
    }
    let root = std::path::absolute(path).map_err(|e| invalid(&e.to_string()))?;
    if root.exists() && !root.is_dir() {
        return Err(invalid("exists and is not a directory"));
    }
    Ok(OciLayout {
        name: format!("oci:{}", path.display()),
        root,
        stats: Stats::default(),
    })
}

impl OciLayout {
    /// The absolute directory holding the repositories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn op(&self, operation: String) -> Op {
        Op {
            registry: self.name.clone(),
            operation,
        }
    }

    fn count(&self, request: &str, read: u64, written: u64) {
        store::count(&self.stats, request, read, written);
    }

    /// The directory of `repo`, after checking the name cannot escape the root.
    fn repo_dir(&self, op: &Op, repo: &str) -> Result<PathBuf, Error> {
        check_repo_name(repo).map_err(|m| op.io(io::Error::new(io::ErrorKind::InvalidInput, m)))?;
        Ok(self.root.join(repo))
    }

    fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
        dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// Reads `index.json`; `None` when the repository has none (not a repository).
    async fn read_index(&self, op: &Op, dir: &Path) -> Result<Option<Index>, Error> {
        let path = dir.join(INDEX_FILE);
        let Some(bytes) = op.blocking(move || store::read_small(&path, 64 * MAX_MANIFEST)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| op.invalid(format!("{}: {e}", dir.join(INDEX_FILE).display())))
    }

    /// Creates the repository's layout on first write. `oci-layout` is written last:
    /// its presence means the layout is complete.
    async fn ensure_layout(&self, op: &Op, dir: &Path) -> Result<(), Error> {
        let marker = dir.join(OCI_LAYOUT_FILE);
        if store::file_size(&marker).await.map_err(|e| op.io(e))?.is_some() {
            return Ok(());
        }
        let _guard = INDEX_LOCKS.lock(dir.to_path_buf()).await;
        let dir = dir.to_path_buf();
        op.blocking(move || {
            std::fs::create_dir_all(dir.join("blobs").join("sha256"))?;
            let index = dir.join(INDEX_FILE);
            if !index.exists() {
                store::write_atomic(
                    &index,
                    &serde_json::to_vec(&Index::default()).map_err(io::Error::other)?,
                )?;
            }
            let layout = dir.join(OCI_LAYOUT_FILE);
            if !layout.exists() {
                store::write_atomic(&layout, OCI_LAYOUT_CONTENT)?;
            }
            Ok(())
        })
        .await
    }

    /// Applies `change` to `index.json` under the repository lock and writes it back
    /// atomically when it changed.
    async fn update_index(&self, op: &Op, dir: &Path, change: impl FnOnce(&mut Index) -> bool) -> Result<(), Error> {
        let _guard = INDEX_LOCKS.lock(dir.to_path_buf()).await;
        let mut index = self.read_index(op, dir).await?.unwrap_or_default();
        if !change(&mut index) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&index).map_err(|e| op.io(io::Error::other(e)))?;
        let path = dir.join(INDEX_FILE);
        op.blocking(move || store::write_atomic(&path, &bytes)).await
    }
}

/// Repository names are paths below the root, in the grammar every backend shares
/// (`registry::reference`), so no name can escape the root; and no component below a
/// repository is named `blobs`, so none lands inside another repository's blob store.
fn check_repo_name(repo: &str) -> Result<(), String> {
    crate::registry::reference::check_layout_repository(repo).map_err(|why| {
        format!(
            "invalid repository name {}: {why}",
            crate::registry::reference::quoted(repo)
        )
    })
}

#[async_trait]
impl Registry for OciLayout {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        OciLayout::list_tags(self, repo).await
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        OciLayout::catalog(self).await
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        OciLayout::head_manifest(self, repo, reference).await
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        OciLayout::get_manifest(self, repo, reference).await
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        OciLayout::put_manifest(self, repo, reference, manifest).await
    }

    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        OciLayout::delete_manifest(self, repo, digest).await
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        OciLayout::blob_size(self, repo, digest).await
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        OciLayout::get_blob(self, repo, digest).await
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        OciLayout::put_blob(self, repo, digest, size, body).await
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        OciLayout::mount_blob(self, repo, digest, from_repo).await
    }

    fn stats(&self) -> RegistryStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
