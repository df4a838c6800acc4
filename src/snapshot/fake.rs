//! An in-memory, read-only [`Registry`] for the snapshot unit tests.
//!
//! It is a fake on purpose: these are unit tests of the walk and minimal-snapshot logic,
//! including Google's extended tags list, which no local registry serves. The real
//! backends are exercised against CNCF distribution in the end-to-end tests.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::digest::Digest;
use crate::registry::media::{OCI_INDEX, OCI_MANIFEST};
use crate::registry::{
    BlobStream, Descriptor, Error, GoogleManifestInfo, ManifestRef, MountOutcome, RawManifest, Registry, RegistryStats,
    TagList,
};

#[derive(Debug, Default)]
pub struct FakeRegistry {
    /// repo -> digests stored there (tagged or not).
    digests: BTreeMap<String, BTreeSet<Digest>>,
    /// repo -> tag -> digest.
    tags: BTreeMap<String, BTreeMap<String, Digest>>,
    manifests: HashMap<Digest, RawManifest>,
    google: bool,
    fail_catalog: bool,
    /// A repository whose tags list answers 403.
    fail_tags_for: Option<String>,
    /// Digests whose GET fails, to test that failures are skipped.
    broken: BTreeSet<Digest>,
    next: u32,
    stats: Mutex<RegistryStats>,
}

impl FakeRegistry {
    /// Answer tags lists with Google's extension (`manifest` map and `child`).
    pub fn with_google_listing(mut self) -> Self {
        self.google = true;
        self
    }

    pub fn failing_catalog(mut self) -> Self {
        self.fail_catalog = true;
        self
    }

    pub fn failing_tags_list(mut self, repo: &str) -> Self {
        self.fail_tags_for = Some(repo.to_string());
        self
    }

    pub fn break_manifest(&mut self, digest: Digest) {
        self.broken.insert(digest);
    }

    fn store(&mut self, repo: &str, manifest: RawManifest, tags: &[&str]) -> Digest {
        let digest = manifest.digest;
        self.manifests.insert(digest, manifest);
        self.digests.entry(repo.to_string()).or_default().insert(digest);
        for tag in tags {
            self.tags
                .entry(repo.to_string())
                .or_default()
                .insert(tag.to_string(), digest);
        }
        digest
    }

    /// Stores a distinct single-platform image manifest under `tags`.
    pub fn add_image(&mut self, repo: &str, tags: &[&str]) -> Digest {
        self.next += 1;
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":{{"n":"{}"}}}}"#,
            self.next
        );
        self.store(repo, RawManifest::new(OCI_MANIFEST, Bytes::from(body)), tags)
    }

    /// Stores an index with `children` tagless child manifests; returns the index digest.
    pub fn add_index(&mut self, repo: &str, tags: &[&str], children: usize) -> Digest {
        let entries: Vec<String> = (0..children)
            .map(|_| {
                let child = self.add_image(repo, &[]);
                format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":1}}"#)
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        self.store(repo, RawManifest::new(OCI_INDEX, Bytes::from(body)), tags)
    }

    pub fn children_of(&self, index: &Digest) -> Vec<Digest> {
        let Some(manifest) = self.manifests.get(index) else {
            return Vec::new();
        };
        let value: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
        value["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["digest"].as_str()?.parse().ok())
            .collect()
    }

    fn count(&self, key: &str) {
        if let Ok(mut stats) = self.stats.lock() {
            *stats.requests.entry(key.to_string()).or_default() += 1;
        }
    }

    fn resolve(&self, repo: &str, reference: &ManifestRef) -> Option<&RawManifest> {
        let digest = match reference {
            ManifestRef::Tag(t) => *self.tags.get(repo)?.get(t)?,
            ManifestRef::Digest(d) => *d,
        };
        self.digests
            .get(repo)?
            .contains(&digest)
            .then(|| self.manifests.get(&digest))?
    }

    fn read_only(operation: &str) -> Error {
        Error::Protocol {
            registry: "fake".into(),
            operation: operation.into(),
            message: "the snapshot test fake is read-only".into(),
        }
    }
}

#[async_trait]
impl Registry for FakeRegistry {
    fn name(&self) -> &str {
        "fake"
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        if self.fail_tags_for.as_deref() == Some(repo) {
            return Err(Error::Status {
                registry: "fake".into(),
                operation: format!("list tags of {repo}"),
                status: 403,
                message: "denied".into(),
                codes: Vec::new(),
            });
        }
        self.count("GET tags");
        let tags: Vec<String> = self
            .tags
            .get(repo)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        if !self.google {
            return Ok(self.digests.contains_key(repo).then_some(TagList {
                tags,
                ..Default::default()
            }));
        }
        let below = format!("{repo}/");
        let children: BTreeSet<String> = self
            .digests
            .keys()
            .filter_map(|r| r.strip_prefix(&below))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        if children.is_empty() && !self.digests.contains_key(repo) {
            return Ok(None);
        }
        let manifests = self
            .digests
            .get(repo)
            .into_iter()
            .flatten()
            .map(|d| GoogleManifestInfo {
                digest: *d,
                media_type: self.manifests[d].media_type.clone(),
                tags: self
                    .tags
                    .get(repo)
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| *v == d)
                    .map(|(t, _)| t.clone())
                    .collect(),
            })
            .collect();
        Ok(Some(TagList {
            tags,
            google_manifests: Some(manifests),
            children: children.into_iter().collect(),
        }))
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        if self.fail_catalog {
            return Err(Error::Status {
                registry: "fake".into(),
                operation: "catalog".into(),
                status: 401,
                message: "unauthorized".into(),
                codes: Vec::new(),
            });
        }
        self.count("GET catalog");
        Ok(self.digests.keys().cloned().collect())
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        let found = self.resolve(repo, reference).map(RawManifest::descriptor);
        self.count(if found.is_some() { "HEAD 200" } else { "HEAD 404" });
        Ok(found)
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        if let ManifestRef::Digest(d) = reference
            && self.broken.contains(d)
        {
            return Err(Error::Status {
                registry: "fake".into(),
                operation: format!("GET manifest {repo}@{d}"),
                status: 500,
                message: "broken on purpose".into(),
                codes: Vec::new(),
            });
        }
        let found = self.resolve(repo, reference).cloned();
        self.count(if found.is_some() { "GET 200" } else { "GET 404" });
        Ok(found)
    }

    async fn put_manifest(&self, _: &str, _: &ManifestRef, _: &RawManifest) -> Result<(), Error> {
        Err(Self::read_only("put_manifest"))
    }

    async fn blob_size(&self, _: &str, _: &Digest) -> Result<Option<u64>, Error> {
        Err(Self::read_only("blob_size"))
    }

    async fn get_blob(&self, _: &str, _: &Digest) -> Result<BlobStream, Error> {
        Err(Self::read_only("get_blob"))
    }

    async fn put_blob(&self, _: &str, _: &Digest, _: u64, _: BlobStream) -> Result<(), Error> {
        Err(Self::read_only("put_blob"))
    }

    async fn mount_blob(&self, _: &str, _: &Digest, _: &str) -> Result<MountOutcome, Error> {
        Err(Self::read_only("mount_blob"))
    }

    fn stats(&self) -> RegistryStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
