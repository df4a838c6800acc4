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
mod index;
mod store;

use crate::sync::lock;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use serde::Deserialize;

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
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

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
static INDEX_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Mutex::default);

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

    fn lock(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&INDEX_LOCKS);
        locks.entry(dir.to_path_buf()).or_default().clone()
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
        let lock = Self::lock(dir);
        let _guard = lock.lock().await;
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
        let lock = Self::lock(dir);
        let _guard = lock.lock().await;
        let mut index = self.read_index(op, dir).await?.unwrap_or_default();
        if !change(&mut index) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&index).map_err(|e| op.io(io::Error::other(e)))?;
        let path = dir.join(INDEX_FILE);
        op.blocking(move || store::write_atomic(&path, &bytes)).await
    }

    /// Finds and reads a manifest, verifying its digest; `method` (`GET` or `HEAD`) names
    /// the counter.
    async fn load_manifest(
        &self,
        repo: &str,
        reference: &ManifestRef,
        method: &str,
    ) -> Result<Option<RawManifest>, Error> {
        let op = self.op(format!("{} manifest {repo}{reference}", method.to_lowercase()));
        let found = self.find_manifest(&op, repo, reference).await?;
        match &found {
            Some(m) => self.count(&format!("{method} 200"), m.bytes.len() as u64, 0),
            None => self.count(&format!("{method} 404"), 0, 0),
        }
        Ok(found)
    }

    async fn find_manifest(&self, op: &Op, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        let dir = self.repo_dir(op, repo)?;
        let Some(index) = self.read_index(op, &dir).await? else {
            return Ok(None);
        };
        let (digest, listed, media_type) = match reference {
            ManifestRef::Tag(tag) => {
                let Some(entry) = index.tagged(tag) else {
                    return Ok(None);
                };
                let digest = entry.digest().ok_or_else(|| {
                    op.invalid(format!(
                        "index.json tags {tag:?} with unsupported digest {:?}",
                        entry.digest
                    ))
                })?;
                (digest, true, entry.media_type.clone())
            }
            ManifestRef::Digest(digest) => {
                let entry = index.by_digest(digest);
                (*digest, entry.is_some(), entry.and_then(|e| e.media_type.clone()))
            }
        };
        let path = Self::blob_path(&dir, &digest);
        let read = op.blocking(move || store::read_small(&path, MAX_MANIFEST)).await;
        let bytes = match read {
            Ok(Some(bytes)) => bytes,
            // A blob that is not listed and too big is a layer, not a manifest.
            Ok(None) if !listed => return Ok(None),
            Err(Error::Io { source, .. }) if !listed && source.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Ok(None) => return Err(op.invalid(format!("index.json lists {digest} but its blob is missing"))),
            Err(e) => return Err(e),
        };
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(op.mismatch(digest, actual));
        }
        let media_type = match media_type.or_else(|| ManifestShape::parse(&bytes).and_then(|s| s.media_type())) {
            Some(m) => m,
            None if listed => return Err(op.invalid(format!("cannot tell the media type of manifest {digest}"))),
            // Found by digest but not a manifest: a config or layer blob.
            None => return Ok(None),
        };
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest,
        }))
    }

    /// Checks that every blob and child a manifest references is already stored, as a
    /// registry would (`MANIFEST_BLOB_UNKNOWN`): a tag must never point at an incomplete
    /// image.
    async fn check_references(&self, op: &Op, dir: &Path, manifest: &RawManifest) -> Result<(), Error> {
        let shape = ManifestShape::parse(&manifest.bytes).ok_or_else(|| {
            op.invalid(format!(
                "manifest {} is not a JSON image manifest or index",
                manifest.digest
            ))
        })?;
        for reference in shape.required() {
            let digest: Digest = reference
                .parse()
                .map_err(|_| op.invalid(format!("manifest references unsupported digest {reference:?}")))?;
            let path = Self::blob_path(dir, &digest);
            if store::file_size(&path).await.map_err(|e| op.io(e))?.is_none() {
                return Err(op.io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "manifest {} references {digest}, which is not in the repository",
                        manifest.digest
                    ),
                )));
            }
        }
        Ok(())
    }
}

/// Repository names are paths below the root: each component must be a lowercase OCI
/// name component, so no name can escape the root or land inside another
/// repository's `blobs/` directory.
fn check_repo_name(repo: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid repository name {repo:?}: {why}"));
    if repo.is_empty() {
        return bad("empty");
    }
    for (i, part) in repo.split('/').enumerate() {
        let valid_chars = part
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        let alnum_ends = part.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && part.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid_chars || !alnum_ends {
            return bad("components must be lowercase letters, digits and . _ - (starting and ending alphanumeric)");
        }
        if i > 0 && part == "blobs" {
            return bad("a component named \"blobs\" would collide with the parent repository's blob store");
        }
    }
    Ok(())
}

/// The few fields of a manifest or index that the layout needs: its media type and
/// what it references. Parsed leniently; the bytes are never re-serialised.
#[derive(Deserialize)]
struct ManifestShape {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Reference>,
    layers: Option<Vec<Reference>>,
    manifests: Option<Vec<Reference>>,
}

#[derive(Deserialize)]
struct Reference {
    digest: String,
    #[serde(default)]
    urls: Vec<String>,
}

impl ManifestShape {
    fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The declared media type, or the OCI type its shape implies (OCI makes the field
    /// optional).
    fn media_type(&self) -> Option<String> {
        if let Some(m) = &self.media_type {
            return Some(m.clone());
        }
        if self.manifests.is_some() {
            Some(index::OCI_INDEX.to_string())
        } else if self.config.is_some() && self.layers.is_some() {
            Some(OCI_MANIFEST.to_string())
        } else {
            None
        }
    }

    /// Digests that must exist first. Foreign layers (with `urls`) are fetched from
    /// elsewhere and may be absent, as in distribution.
    fn required(&self) -> impl Iterator<Item = &str> {
        let layers = self.layers.iter().flatten().filter(|l| l.urls.is_empty());
        self.config
            .iter()
            .chain(layers)
            .chain(self.manifests.iter().flatten())
            .map(|r| r.digest.as_str())
    }
}

#[async_trait]
impl Registry for OciLayout {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        let op = self.op(format!("list tags of {repo}"));
        let dir = self.repo_dir(&op, repo)?;
        let Some(index) = self.read_index(&op, &dir).await? else {
            self.count("GET 404", 0, 0);
            return Ok(None);
        };
        self.count("GET 200", 0, 0);
        Ok(Some(TagList {
            tags: index.tags(),
            ..TagList::default()
        }))
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        let op = self.op("catalog".into());
        let root = self.root.clone();
        let repos = op.blocking(move || walk_repositories(&root)).await?;
        self.count("GET 200", 0, 0);
        Ok(repos)
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        Ok(self
            .load_manifest(repo, reference, "HEAD")
            .await?
            .map(|m| m.descriptor()))
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        self.load_manifest(repo, reference, "GET").await
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        let op = self.op(format!("put manifest {repo}{reference}"));
        let dir = self.repo_dir(&op, repo)?;
        let actual = Digest::of(&manifest.bytes);
        if actual != manifest.digest {
            return Err(op.mismatch(manifest.digest, actual));
        }
        if let ManifestRef::Digest(expected) = reference
            && *expected != actual
        {
            return Err(op.mismatch(*expected, actual));
        }
        if manifest.bytes.len() as u64 > MAX_MANIFEST {
            return Err(op.invalid(format!("manifest is larger than {MAX_MANIFEST} bytes")));
        }
        self.ensure_layout(&op, &dir).await?;
        self.check_references(&op, &dir, manifest).await?;
        let path = Self::blob_path(&dir, &actual);
        let bytes = manifest.bytes.clone();
        op.blocking(move || match std::fs::metadata(&path) {
            // Content-addressed: an existing blob of the right size is this manifest.
            Ok(m) if m.len() == bytes.len() as u64 => Ok(()),
            _ => store::write_atomic(&path, &bytes),
        })
        .await?;
        let descriptor = manifest.descriptor();
        self.update_index(&op, &dir, |index| match reference {
            ManifestRef::Tag(tag) => index.set_tag(tag, &descriptor),
            ManifestRef::Digest(_) => index.add_untagged(&descriptor),
        })
        .await?;
        self.count("PUT 201", 0, manifest.bytes.len() as u64);
        Ok(())
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let op = self.op(format!("head blob {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        let size = store::file_size(&Self::blob_path(&dir, digest))
            .await
            .map_err(|e| op.io(e))?;
        self.count(if size.is_some() { "HEAD 200" } else { "HEAD 404" }, 0, 0);
        Ok(size)
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        let op = self.op(format!("get blob {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        let result = store::read_verified(op, Self::blob_path(&dir, digest), *digest, self.stats.clone()).await;
        self.count(if result.is_ok() { "GET 200" } else { "GET 404" }, 0, 0);
        result
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        let op = self.op(format!("put blob {repo}@{digest}"));
        let dir = self.repo_dir(&op, repo)?;
        self.ensure_layout(&op, &dir).await?;
        store::upload(&op, Self::blob_path(&dir, digest), *digest, size, body, &self.stats).await?;
        self.count("PUT 201", 0, 0);
        Ok(())
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        let op = self.op(format!("mount blob {repo}@{digest} from {from_repo}"));
        let dir = self.repo_dir(&op, repo)?;
        let from = Self::blob_path(&self.repo_dir(&op, from_repo)?, digest);
        let Some(size) = store::file_size(&from).await.map_err(|e| op.io(e))? else {
            self.count("POST 202", 0, 0);
            return Ok(MountOutcome::NotMounted);
        };
        self.ensure_layout(&op, &dir).await?;
        let to = Self::blob_path(&dir, digest);
        let (link_from, link_to) = (from.clone(), to.clone());
        if !op.blocking(move || store::hard_link(&link_from, &link_to)).await? {
            // No hard links here (another filesystem below the root, or none supported):
            // copy through the same verified path as any upload.
            let body = store::read_verified(op.clone(), from, *digest, self.stats.clone()).await?;
            store::upload(&op, to, *digest, size, body, &self.stats).await?;
        }
        self.count("POST 201", 0, 0);
        Ok(MountOutcome::Mounted)
    }

    fn stats(&self) -> RegistryStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Every directory below `root` holding an `oci-layout` file, as `/`-joined names,
/// sorted. Symlinks are not followed (no loops), and a layout's own `blobs/` is not
/// entered (it holds content, not repositories).
fn walk_repositories(root: &Path) -> io::Result<Vec<String>> {
    let mut repos = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, name)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && name.is_empty() => return Ok(repos),
            Err(e) => return Err(e),
        };
        let is_layout = !name.is_empty() && dir.join(OCI_LAYOUT_FILE).is_file();
        if is_layout {
            repos.push(name.clone());
        }
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let Some(child) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if (is_layout && child == "blobs") || check_repo_name(&child).is_err() {
                continue;
            }
            let child_name = if name.is_empty() {
                child
            } else {
                format!("{name}/{child}")
            };
            pending.push((entry.path(), child_name));
        }
    }
    repos.sort();
    Ok(repos)
}
