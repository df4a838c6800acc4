//! Unit tests only: an in-memory [`Registry`]. A fake because the logic under test here
//! is pure planning and graph ordering; the real client against real distribution
//! instances is exercised by `tests/promote_*.rs`.
//!
//! Like distribution, it refuses a manifest whose blobs or children are missing, so an
//! ordering bug in Promote fails the push instead of passing silently. It logs every
//! request so tests can check order and count writes.
use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::digest::{Digest, DigestWriter};
use crate::registry::{
    BlobStream, Descriptor, Error, GoogleManifestInfo, ManifestRef, MountOutcome, RawManifest, Registry, RegistryStats,
    TagList,
};

use super::graph;

#[derive(Debug, Default, Clone)]
pub struct Repo {
    pub tags: BTreeMap<String, Digest>,
    pub manifests: HashMap<Digest, RawManifest>,
    pub blobs: HashMap<Digest, Bytes>,
}

#[derive(Debug, Default)]
struct Inner {
    repos: BTreeMap<String, Repo>,
    log: Vec<String>,
    stats: RegistryStats,
}

#[derive(Debug)]
pub struct FakeRegistry {
    name: String,
    mounts: bool,
    /// Answer tag listings like gcr.io / Artifact Registry (Google's extended list).
    google: bool,
    inner: Mutex<Inner>,
}

impl FakeRegistry {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            mounts: true,
            google: false,
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn google(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            mounts: true,
            google: true,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn record(&self, inner: &mut Inner, method: &str, status: u16, what: String) {
        *inner.stats.requests.entry(format!("{method} {status}")).or_default() += 1;
        inner.log.push(format!("{method} {what}"));
    }

    /// Stores blobs and manifests directly (test setup, not logged).
    pub fn seed(&self, repo: &str, image: &TestImage, tags: &[&str]) {
        let mut inner = self.lock();
        let r = inner.repos.entry(repo.to_string()).or_default();
        image.store(r);
        for t in tags {
            r.tags.insert(t.to_string(), image.manifest.digest);
        }
    }

    /// Stores a blob under a digest it does not match (a corrupt source).
    pub fn seed_corrupt_blob(&self, repo: &str, digest: Digest, bytes: &[u8]) {
        let mut inner = self.lock();
        let r = inner.repos.entry(repo.to_string()).or_default();
        r.blobs.insert(digest, Bytes::copy_from_slice(bytes));
    }

    pub fn seed_blob(&self, repo: &str, bytes: &[u8]) {
        let mut inner = self.lock();
        let r = inner.repos.entry(repo.to_string()).or_default();
        r.blobs.insert(Digest::of(bytes), Bytes::copy_from_slice(bytes));
    }

    pub fn repo(&self, repo: &str) -> Repo {
        self.lock().repos.get(repo).cloned().unwrap_or_default()
    }

    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.stats = RegistryStats::default();
    }

    /// Requests that change something.
    pub fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with("PUT") || l.starts_with("POST"))
            .collect()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }
}

fn resolve(repo: &Repo, reference: &ManifestRef) -> Option<RawManifest> {
    let digest = match reference {
        ManifestRef::Tag(t) => *repo.tags.get(t)?,
        ManifestRef::Digest(d) => *d,
    };
    repo.manifests.get(&digest).cloned()
}

#[async_trait]
impl Registry for FakeRegistry {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        let mut inner = self.lock();
        // Like distribution: a repository without tags is NAME_UNKNOWN, even when it
        // holds untagged manifests (Google's listing still shows them).
        let found = inner
            .repos
            .get(repo)
            .filter(|r| self.google || !r.tags.is_empty())
            .map(|r| TagList {
                tags: r.tags.keys().cloned().collect(),
                google_manifests: self.google.then(|| {
                    r.manifests
                        .values()
                        .map(|m| GoogleManifestInfo {
                            digest: m.digest,
                            media_type: m.media_type.clone(),
                            tags: r
                                .tags
                                .iter()
                                .filter(|(_, d)| **d == m.digest)
                                .map(|(t, _)| t.clone())
                                .collect(),
                        })
                        .collect()
                }),
                children: Vec::new(),
            });
        let status = if found.is_some() { 200 } else { 404 };
        self.record(&mut inner, "GET", status, format!("tags {repo}"));
        Ok(found)
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        Ok(self.lock().repos.keys().cloned().collect())
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        let mut inner = self.lock();
        let found = inner
            .repos
            .get(repo)
            .and_then(|r| resolve(r, reference))
            .map(|m| m.descriptor());
        let status = if found.is_some() { 200 } else { 404 };
        self.record(&mut inner, "HEAD", status, format!("manifest {repo}{reference}"));
        Ok(found)
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        let mut inner = self.lock();
        let found = inner.repos.get(repo).and_then(|r| resolve(r, reference));
        let status = if found.is_some() { 200 } else { 404 };
        self.record(&mut inner, "GET", status, format!("manifest {repo}{reference}"));
        Ok(found)
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        let mut inner = self.lock();
        let refs = graph::refs(manifest, repo).map_err(|e| Error::Protocol {
            registry: self.name.clone(),
            operation: "put manifest".into(),
            message: e.to_string(),
        })?;
        let r = inner.repos.entry(repo.to_string()).or_default();
        let missing = refs
            .children
            .iter()
            .find(|c| !r.manifests.contains_key(c))
            .map(|c| format!("MANIFEST_UNKNOWN {c}"))
            .or_else(|| {
                refs.blobs
                    .iter()
                    .find(|b| !r.blobs.contains_key(&b.digest))
                    .map(|b| format!("MANIFEST_BLOB_UNKNOWN {}", b.digest))
            });
        if let Some(message) = missing {
            self.record(&mut inner, "PUT", 400, format!("manifest {repo}{reference}"));
            return Err(Error::Status {
                registry: self.name.clone(),
                operation: format!("put manifest {repo}{reference}"),
                status: 400,
                message,
                codes: Vec::new(),
            });
        }
        r.manifests.insert(manifest.digest, manifest.clone());
        if let ManifestRef::Tag(t) = reference {
            r.tags.insert(t.clone(), manifest.digest);
        }
        self.record(&mut inner, "PUT", 201, format!("manifest {repo}{reference}"));
        Ok(())
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let mut inner = self.lock();
        let found = inner
            .repos
            .get(repo)
            .and_then(|r| r.blobs.get(digest))
            .map(|b| b.len() as u64);
        let status = if found.is_some() { 200 } else { 404 };
        self.record(&mut inner, "HEAD", status, format!("blob {repo}@{digest}"));
        Ok(found)
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        let mut inner = self.lock();
        let bytes = inner.repos.get(repo).and_then(|r| r.blobs.get(digest)).cloned();
        self.record(&mut inner, "GET", 200, format!("blob {repo}@{digest}"));
        let bytes = bytes.ok_or_else(|| Error::Status {
            registry: self.name.clone(),
            operation: format!("get blob {repo}@{digest}"),
            status: 404,
            message: "BLOB_UNKNOWN".into(),
            codes: Vec::new(),
        })?;
        // Small chunks, verified while streaming, ending in an error on a mismatch.
        let chunks: Vec<Bytes> = bytes.chunks(3).map(Bytes::copy_from_slice).collect();
        let expected = *digest;
        let name = self.name.clone();
        let mut hasher = DigestWriter::new();
        let mut items: Vec<Result<Bytes, Error>> = Vec::new();
        for c in chunks {
            hasher.update(&c);
            items.push(Ok(c));
        }
        let actual = hasher.finish();
        if actual != expected {
            items.push(Err(Error::DigestMismatch {
                registry: name,
                operation: format!("get blob {repo}@{digest}"),
                expected,
                actual,
            }));
        }
        Ok(BlobStream::new(stream::iter(items)))
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, mut body: BlobStream) -> Result<(), Error> {
        let mut data = Vec::new();
        while let Some(chunk) = body.next().await {
            data.extend_from_slice(&chunk?);
        }
        let mut inner = self.lock();
        if Digest::of(&data) != *digest || data.len() as u64 != size {
            self.record(&mut inner, "PUT", 400, format!("blob {repo}@{digest}"));
            return Err(Error::Status {
                registry: self.name.clone(),
                operation: format!("put blob {repo}@{digest}"),
                status: 400,
                message: "DIGEST_INVALID".into(),
                codes: Vec::new(),
            });
        }
        inner
            .repos
            .entry(repo.to_string())
            .or_default()
            .blobs
            .insert(*digest, Bytes::from(data));
        self.record(&mut inner, "PUT", 201, format!("blob {repo}@{digest}"));
        Ok(())
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        let mut inner = self.lock();
        let blob = inner.repos.get(from_repo).and_then(|r| r.blobs.get(digest)).cloned();
        match blob {
            Some(b) if self.mounts => {
                inner
                    .repos
                    .entry(repo.to_string())
                    .or_default()
                    .blobs
                    .insert(*digest, b);
                self.record(
                    &mut inner,
                    "POST",
                    201,
                    format!("mount {repo}@{digest} from {from_repo}"),
                );
                Ok(MountOutcome::Mounted)
            }
            _ => {
                self.record(
                    &mut inner,
                    "POST",
                    202,
                    format!("mount {repo}@{digest} from {from_repo}"),
                );
                Ok(MountOutcome::NotMounted)
            }
        }
    }

    fn stats(&self) -> RegistryStats {
        self.lock().stats.clone()
    }
}

/// A generated image: its manifest and every blob and child it needs.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub manifest: RawManifest,
    pub blobs: Vec<Bytes>,
    pub children: Vec<TestImage>,
}

impl TestImage {
    /// A single-platform OCI image with a config and the given layers.
    pub fn single(name: &str, layers: &[&[u8]]) -> Self {
        let config = Bytes::from(format!("{{\"name\":\"{name}\"}}"));
        let desc = |b: &Bytes, mt: &str| {
            format!(
                "{{\"mediaType\":\"{mt}\",\"digest\":\"{}\",\"size\":{}}}",
                Digest::of(b),
                b.len()
            )
        };
        let layers: Vec<Bytes> = layers.iter().map(|l| Bytes::copy_from_slice(l)).collect();
        let layer_descs: Vec<String> = layers
            .iter()
            .map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar+gzip"))
            .collect();
        let json = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{},\"layers\":[{}]}}",
            desc(&config, "application/vnd.oci.image.config.v1+json"),
            layer_descs.join(",")
        );
        let mut blobs = vec![config];
        blobs.extend(layers);
        Self {
            manifest: RawManifest::new("application/vnd.oci.image.manifest.v1+json", Bytes::from(json)),
            blobs,
            children: Vec::new(),
        }
    }

    /// An OCI index over `children`.
    pub fn index(children: Vec<TestImage>) -> Self {
        let descs: Vec<String> = children
            .iter()
            .map(|c| {
                format!(
                    "{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}}",
                    c.manifest.media_type,
                    c.manifest.digest,
                    c.manifest.bytes.len()
                )
            })
            .collect();
        let json = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{}]}}",
            descs.join(",")
        );
        Self {
            manifest: RawManifest::new("application/vnd.oci.image.index.v1+json", Bytes::from(json)),
            blobs: Vec::new(),
            children,
        }
    }

    pub fn digest(&self) -> Digest {
        self.manifest.digest
    }

    fn store(&self, repo: &mut Repo) {
        for child in &self.children {
            child.store(repo);
        }
        for b in &self.blobs {
            repo.blobs.insert(Digest::of(b), b.clone());
        }
        repo.manifests.insert(self.manifest.digest, self.manifest.clone());
    }

    /// Every distinct blob of the image and its children.
    pub fn all_blobs(&self) -> std::collections::BTreeSet<Digest> {
        let mut out: std::collections::BTreeSet<Digest> = self.blobs.iter().map(|b| Digest::of(b)).collect();
        for c in &self.children {
            out.extend(c.all_blobs());
        }
        out
    }
}
