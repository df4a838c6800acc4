//! Unit tests only: an in-memory registry, a third backend beside `remote` and
//! `oci_layout` (go-containerregistry's `pkg/registry` plays this part there).
//!
//! It stands in for a registry where the logic under test is above `registry` (planning,
//! graph ordering, snapshot walks) and for behaviour no local server offers (Google's
//! extended tags list); the real backends are tested against CNCF distribution. Where
//! tests rely on it, it behaves like distribution: a manifest whose children or blobs are
//! missing is refused (read through [`media::references`], the rule every backend uses),
//! so an ordering bug fails the push instead of passing silently; and a repository
//! without tags answers its tags list with NAME_UNKNOWN, unless it lists like Google.
//!
//! Every request is logged as `METHOD what` (`PUT manifest repo:tag`, `HEAD blob
//! repo@digest`, `POST mount repo@digest from other`) and counted by `METHOD STATUS` in
//! its stats, so tests check order and writes. Seeding is not logged.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::digest::{Digest, DigestWriter};
use crate::registry::test_image::TestImage;
use crate::registry::{
    BlobStream, Descriptor, Error, GoogleManifestInfo, ManifestRef, MountOutcome, OciCode, RawManifest, Registry,
    RegistryStats, TagList, media,
};
use crate::sync::lock;

/// What one repository holds.
#[derive(Debug, Default, Clone)]
pub struct Repo {
    pub tags: BTreeMap<String, Digest>,
    pub manifests: HashMap<Digest, RawManifest>,
    pub blobs: HashMap<Digest, Bytes>,
}

impl Repo {
    fn resolve(&self, reference: &ManifestRef) -> Option<&RawManifest> {
        let digest = match reference {
            ManifestRef::Tag(t) => self.tags.get(t)?,
            ManifestRef::Digest(d) => d,
        };
        self.manifests.get(digest)
    }
}

#[derive(Debug)]
struct Rival {
    repo: String,
    tag: String,
    manifest: RawManifest,
    times: usize,
}

#[derive(Debug, Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    /// Digests whose manifest GET fails (a registry error, not a missing manifest).
    broken: BTreeSet<Digest>,
    /// Another writer: after each of our next `times` PUTs of `repo:tag`, it puts its own
    /// manifest there (as a writer that read the tag before our write would).
    rival: Option<Rival>,
    log: Vec<String>,
    stats: RegistryStats,
}

impl State {
    fn record(&mut self, method: &str, status: u16, what: String) {
        *self.stats.requests.entry(format!("{method} {status}")).or_default() += 1;
        self.log.push(format!("{method} {what}"));
    }
}

/// The in-memory registry: build it with [`MemoryRegistry::new`] and the `with_`/`failing_`
/// knobs, fill it with `seed*`, then hand it out as a [`Registry`].
#[derive(Debug)]
pub struct MemoryRegistry {
    name: String,
    /// Answer tags lists like gcr.io and Artifact Registry (every digest, `child`).
    google: bool,
    fail_catalog: bool,
    /// A repository whose tags list is refused (403).
    fail_tags_for: Option<String>,
    /// Manifests naming a `subject` are refused (400), as by registries that predate OCI 1.1.
    refuse_subjects: bool,
    state: Mutex<State>,
}

impl MemoryRegistry {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            google: false,
            fail_catalog: false,
            fail_tags_for: None,
            refuse_subjects: false,
            state: Mutex::default(),
        }
    }

    /// Answers tags lists with Google's extension: a `manifest` map of every digest and
    /// the `child` repositories below.
    pub fn with_google_listing(mut self) -> Self {
        self.google = true;
        self
    }

    /// The catalog is refused (401), as on registries that do not offer it.
    pub fn failing_catalog(mut self) -> Self {
        self.fail_catalog = true;
        self
    }

    /// The tags list of `repo` is refused (403).
    pub fn failing_tags_list(mut self, repo: &str) -> Self {
        self.fail_tags_for = Some(repo.to_string());
        self
    }

    /// Refuses every manifest that names a `subject` (400 `MANIFEST_INVALID`).
    pub fn refusing_subjects(mut self) -> Self {
        self.refuse_subjects = true;
        self
    }

    /// Another writer that, right after each of our next `times` PUTs of `repo:tag`,
    /// stores `manifest` (already seeded) under that tag instead.
    pub fn rival_writer(&self, repo: &str, tag: &str, manifest: RawManifest, times: usize) {
        lock(&self.state).rival = Some(Rival {
            repo: repo.to_string(),
            tag: tag.to_string(),
            manifest,
            times,
        });
    }

    /// Makes every GET of the manifest `digest` fail with a 500.
    pub fn break_manifest(&self, digest: Digest) {
        lock(&self.state).broken.insert(digest);
    }

    /// Stores an image, its children and blobs directly (not logged), tagged `tags`.
    pub fn seed(&self, repo: &str, image: &TestImage, tags: &[&str]) {
        fn store(repo: &mut Repo, image: &TestImage) {
            for child in &image.children {
                store(repo, child);
            }
            for blob in &image.blobs {
                repo.blobs.insert(Digest::of(blob), blob.clone());
            }
            repo.manifests.insert(image.digest(), image.manifest.clone());
        }
        let mut state = lock(&self.state);
        let stored = state.repos.entry(repo.to_string()).or_default();
        store(stored, image);
        for tag in tags {
            stored.tags.insert(tag.to_string(), image.digest());
        }
    }

    pub fn seed_blob(&self, repo: &str, bytes: &[u8]) {
        self.seed_corrupt_blob(repo, Digest::of(bytes), bytes);
    }

    /// Stores `bytes` under a digest they may not match (a corrupt source).
    pub fn seed_corrupt_blob(&self, repo: &str, digest: Digest, bytes: &[u8]) {
        let mut state = lock(&self.state);
        let stored = state.repos.entry(repo.to_string()).or_default();
        stored.blobs.insert(digest, Bytes::copy_from_slice(bytes));
    }

    /// A copy of what `repo` holds now (empty if nothing).
    pub fn repo(&self, repo: &str) -> Repo {
        lock(&self.state).repos.get(repo).cloned().unwrap_or_default()
    }

    /// Every request so far, as `METHOD what`.
    pub fn log(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }

    /// Requests that change something.
    pub fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| ["PUT", "POST", "DELETE"].iter().any(|m| l.starts_with(m)))
            .collect()
    }

    /// Requests whose log line starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// Forgets the log and the stats (not the content).
    pub fn clear_log(&self) {
        let mut state = lock(&self.state);
        state.log.clear();
        state.stats = RegistryStats::default();
    }

    fn status(&self, operation: String, status: u16, code: OciCode, message: String) -> Error {
        Error::Status {
            registry: self.name.clone(),
            operation,
            status,
            message: format!("{code}: {message}"),
            codes: vec![code],
        }
    }

    fn unauthorized(&self, operation: String, status: u16) -> Error {
        Error::Unauthorized {
            registry: self.name.clone(),
            operation,
            status,
            message: "DENIED: refused on purpose".into(),
        }
    }

    /// Google's extended listing of `repo`: every digest with its tags, and the
    /// repositories one level below. `None` when there is nothing at or below `repo`.
    fn google_listing(&self, repos: &BTreeMap<String, Repo>, repo: &str) -> Option<TagList> {
        let below = format!("{repo}/");
        let children: BTreeSet<String> = repos
            .keys()
            .filter_map(|r| r.strip_prefix(&below))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        let here = repos.get(repo);
        if here.is_none() && children.is_empty() {
            return None;
        }
        let here = here.cloned().unwrap_or_default();
        let manifests = here
            .manifests
            .values()
            .map(|m| GoogleManifestInfo {
                digest: m.digest,
                media_type: m.media_type.clone(),
                tags: here
                    .tags
                    .iter()
                    .filter(|(_, d)| **d == m.digest)
                    .map(|(t, _)| t.clone())
                    .collect(),
            })
            .collect();
        Some(TagList {
            tags: here.tags.keys().cloned().collect(),
            google_manifests: Some(manifests),
            children: children.into_iter().collect(),
        })
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        let mut state = lock(&self.state);
        let what = format!("tags {repo}");
        if self.fail_tags_for.as_deref() == Some(repo) {
            state.record("GET", 403, what);
            return Err(self.unauthorized(format!("list tags of {repo}"), 403));
        }
        let found = if self.google {
            self.google_listing(&state.repos, repo)
        } else {
            state.repos.get(repo).filter(|r| !r.tags.is_empty()).map(|r| TagList {
                tags: r.tags.keys().cloned().collect(),
                ..TagList::default()
            })
        };
        state.record("GET", if found.is_some() { 200 } else { 404 }, what);
        Ok(found)
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        let mut state = lock(&self.state);
        if self.fail_catalog {
            state.record("GET", 401, "catalog".into());
            return Err(self.unauthorized("list catalog".into(), 401));
        }
        state.record("GET", 200, "catalog".into());
        Ok(state.repos.keys().cloned().collect())
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        let mut state = lock(&self.state);
        let found = state
            .repos
            .get(repo)
            .and_then(|r| r.resolve(reference))
            .map(RawManifest::descriptor);
        let status = if found.is_some() { 200 } else { 404 };
        state.record("HEAD", status, format!("manifest {repo}{reference}"));
        Ok(found)
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        let mut state = lock(&self.state);
        let what = format!("manifest {repo}{reference}");
        if let ManifestRef::Digest(d) = reference
            && state.broken.contains(d)
        {
            state.record("GET", 500, what.clone());
            return Err(Error::Status {
                registry: self.name.clone(),
                operation: format!("GET {what}"),
                status: 500,
                message: "broken on purpose".into(),
                codes: Vec::new(),
            });
        }
        let found = state.repos.get(repo).and_then(|r| r.resolve(reference)).cloned();
        state.record("GET", if found.is_some() { 200 } else { 404 }, what);
        Ok(found)
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        let mut state = lock(&self.state);
        let what = format!("manifest {repo}{reference}");
        let operation = format!("PUT {what}");
        let references = match media::references(manifest) {
            Ok(references) => references,
            Err(e) => {
                state.record("PUT", 400, what);
                return Err(self.status(operation, 400, OciCode::ManifestInvalid, e.to_string()));
            }
        };
        if self.refuse_subjects
            && media::ManifestLinks::parse(&manifest.bytes).is_ok_and(|links| links.subject.is_some())
        {
            state.record("PUT", 400, what);
            let message = "manifests with a subject are not supported".to_string();
            return Err(self.status(operation, 400, OciCode::ManifestInvalid, message));
        }
        let stored = state.repos.entry(repo.to_string()).or_default();
        let missing = references
            .children
            .iter()
            .find(|c| !stored.manifests.contains_key(c))
            .map(|c| (OciCode::ManifestUnknown, *c))
            .or_else(|| {
                references
                    .blobs
                    .iter()
                    .find(|b| !stored.blobs.contains_key(&b.digest))
                    .map(|b| (OciCode::ManifestBlobUnknown, b.digest))
            });
        if let Some((code, digest)) = missing {
            state.record("PUT", 400, what);
            return Err(self.status(operation, 400, code, format!("{digest} is not in {repo}")));
        }
        stored.manifests.insert(manifest.digest, manifest.clone());
        if let ManifestRef::Tag(t) = reference {
            stored.tags.insert(t.clone(), manifest.digest);
        }
        state.record("PUT", 201, what);
        let rival = state
            .rival
            .as_mut()
            .filter(|r| r.times > 0 && r.repo == repo && *reference == ManifestRef::Tag(r.tag.clone()));
        if let Some(rival) = rival {
            rival.times -= 1;
            let (tag, theirs) = (rival.tag.clone(), rival.manifest.clone());
            let stored = state.repos.entry(repo.to_string()).or_default();
            stored.tags.insert(tag, theirs.digest);
            stored.manifests.insert(theirs.digest, theirs);
        }
        Ok(())
    }

    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let mut state = lock(&self.state);
        let removed = state.repos.get_mut(repo).is_some_and(|stored| {
            stored.tags.retain(|_, d| d != digest);
            stored.manifests.remove(digest).is_some()
        });
        state.record(
            "DELETE",
            if removed { 202 } else { 404 },
            format!("manifest {repo}@{digest}"),
        );
        Ok(removed)
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let mut state = lock(&self.state);
        let found = state
            .repos
            .get(repo)
            .and_then(|r| r.blobs.get(digest))
            .map(|b| b.len() as u64);
        let status = if found.is_some() { 200 } else { 404 };
        state.record("HEAD", status, format!("blob {repo}@{digest}"));
        Ok(found)
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        let mut state = lock(&self.state);
        let what = format!("blob {repo}@{digest}");
        let Some(bytes) = state.repos.get(repo).and_then(|r| r.blobs.get(digest)).cloned() else {
            state.record("GET", 404, what.clone());
            return Err(self.status(format!("GET {what}"), 404, OciCode::BlobUnknown, what));
        };
        state.record("GET", 200, what.clone());
        // Small chunks, verified while streaming: a corrupt blob ends with an error after
        // its last chunk, as a download without a length would.
        let mut hasher = DigestWriter::new();
        let mut chunks: Vec<Result<Bytes, Error>> = bytes
            .chunks(3)
            .map(|c| {
                hasher.update(c);
                Ok(Bytes::copy_from_slice(c))
            })
            .collect();
        let actual = hasher.finish();
        if actual != *digest {
            chunks.push(Err(Error::DigestMismatch {
                registry: self.name.clone(),
                operation: format!("GET {what}"),
                expected: *digest,
                actual,
            }));
        }
        Ok(BlobStream::new(stream::iter(chunks)))
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, mut body: BlobStream) -> Result<(), Error> {
        let mut data = Vec::new();
        while let Some(chunk) = body.next().await {
            data.extend_from_slice(&chunk?);
        }
        let mut state = lock(&self.state);
        let what = format!("blob {repo}@{digest}");
        if Digest::of(&data) != *digest || data.len() as u64 != size {
            state.record("PUT", 400, what.clone());
            let message = format!("{} bytes do not hash to {digest}", data.len());
            return Err(self.status(format!("PUT {what}"), 400, OciCode::DigestInvalid, message));
        }
        let stored = state.repos.entry(repo.to_string()).or_default();
        stored.blobs.insert(*digest, Bytes::from(data));
        state.record("PUT", 201, what);
        Ok(())
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        let mut state = lock(&self.state);
        let what = format!("mount {repo}@{digest} from {from_repo}");
        let Some(blob) = state.repos.get(from_repo).and_then(|r| r.blobs.get(digest)).cloned() else {
            state.record("POST", 202, what);
            return Ok(MountOutcome::NotMounted);
        };
        state
            .repos
            .entry(repo.to_string())
            .or_default()
            .blobs
            .insert(*digest, blob);
        state.record("POST", 201, what);
        Ok(MountOutcome::Mounted)
    }

    fn stats(&self) -> RegistryStats {
        lock(&self.state).stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_digest(image: &TestImage) -> ManifestRef {
        ManifestRef::Digest(image.digest())
    }

    #[tokio::test]
    async fn refuses_a_manifest_whose_references_are_missing_as_distribution_does() {
        let registry = MemoryRegistry::new("mem");
        let image = TestImage::single("app", &[b"layer"]);
        let err = registry
            .put_manifest("app", &by_digest(&image), &image.manifest)
            .await
            .unwrap_err();
        assert!(err.has_code(OciCode::ManifestBlobUnknown), "{err}");
        let index = TestImage::index(vec![image.clone()]);
        let err = registry
            .put_manifest("app", &by_digest(&index), &index.manifest)
            .await
            .unwrap_err();
        assert!(err.has_code(OciCode::ManifestUnknown), "{err}");

        registry.clear_log();
        index.push(&registry, "app", &["v1"]).await.unwrap();
        assert_eq!(registry.repo("app").tags.get("v1"), Some(&index.digest()));
        // Children and blobs before the manifests that name them, tags last.
        let writes = registry.writes();
        let position = |line: &str| writes.iter().position(|w| w == line).unwrap();
        let child = format!("PUT manifest app@{}", image.digest());
        assert!(position(&format!("PUT blob app@{}", Digest::of(&image.blobs[0]))) < position(&child));
        assert!(position(&child) < position(&format!("PUT manifest app@{}", index.digest())));
        assert_eq!(writes.last().map(String::as_str), Some("PUT manifest app:v1"));
    }

    #[tokio::test]
    async fn requires_artifact_blobs_but_not_foreign_layers_with_urls() {
        let registry = MemoryRegistry::new("mem");
        let artifact = TestImage::artifact("application/spdx+json", &[b"sbom"]);
        let err = registry
            .put_manifest("app", &by_digest(&artifact), &artifact.manifest)
            .await
            .unwrap_err();
        assert!(err.has_code(OciCode::ManifestBlobUnknown), "{err}");
        artifact.push(&registry, "app", &[]).await.unwrap();
        let image = TestImage::with_foreign_layer("f", &[b"layer"]);
        image.push(&registry, "app", &["v1"]).await.unwrap();
    }

    #[tokio::test]
    async fn corrupt_blobs_end_their_stream_with_a_mismatch() {
        let registry = MemoryRegistry::new("mem");
        let claimed = Digest::of(b"the real bytes");
        registry.seed_corrupt_blob("app", claimed, b"other bytes");
        let mut stream = registry.get_blob("app", &claimed).await.unwrap();
        let mut last = None;
        while let Some(item) = stream.next().await {
            last = Some(item);
        }
        assert!(matches!(last, Some(Err(Error::DigestMismatch { .. }))), "{last:?}");
        let err = registry
            .put_blob(
                "dst",
                &claimed,
                11,
                BlobStream::new(stream::iter([Ok(Bytes::from_static(b"other bytes"))])),
            )
            .await
            .unwrap_err();
        assert!(err.has_code(OciCode::DigestInvalid), "{err}");
    }

    #[tokio::test]
    async fn listings_like_distribution_or_like_google() {
        let plain = MemoryRegistry::new("plain");
        plain.seed("a/tagless", &TestImage::single("x", &[]), &[]);
        assert_eq!(plain.list_tags("a/tagless").await.unwrap(), None, "NAME_UNKNOWN");

        let google = MemoryRegistry::new("gcr").with_google_listing();
        let image = TestImage::single("x", &[]);
        google.seed("a/tagless", &image, &[]);
        google.seed("a/deep/er", &image, &["v1"]);
        let root = google.list_tags("a").await.unwrap().expect("children make it exist");
        assert_eq!(root.children, ["deep", "tagless"]);
        let tagless = google.list_tags("a/tagless").await.unwrap().unwrap();
        let manifests = tagless.google_manifests.unwrap();
        assert_eq!(manifests.len(), 1);
        assert!(manifests[0].tags.is_empty());
        assert_eq!(google.list_tags("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_default_referrers_fallback_writes_once() {
        let registry = MemoryRegistry::new("mem");
        let subject = TestImage::single("app", &[b"layer"]);
        registry.seed("app", &subject, &["v1"]);
        let sig = TestImage::referrer(&subject, "application/vnd.dev.sigstore.bundle.v0.3+json", 1);
        sig.push_blobs(&registry, "app").await.unwrap();
        registry.put_referrer("app", &sig.manifest).await.unwrap();
        let fallback = format!("PUT manifest app:sha256-{}", subject.digest().hex());
        assert_eq!(
            registry.writes()[1..],
            [format!("PUT manifest app@{}", sig.digest()), fallback],
            "the referrer, then its subject's index"
        );
        registry.clear_log();
        registry.put_referrer("app", &sig.manifest).await.unwrap();
        assert!(registry.writes().is_empty(), "{:?}", registry.log());
        let listed = registry.list_referrers("app", &subject.digest(), None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].digest, sig.digest());
    }
}
