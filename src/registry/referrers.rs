//! OCI 1.1 referrers through the tag-schema fallback, written once for every backend.
//!
//! A referrer is a manifest whose `subject` names another manifest (a signature, an
//! SBOM, an attestation). Registries with the referrers API keep the list of a subject's
//! referrers themselves; for the others (distribution 2.8, OCI layouts) the spec's
//! fallback is an OCI index tagged `sha256-<hex of the subject>` that lists them, which
//! clients read and extend. This module is that fallback, over
//! [`Registry::get_manifest`]/[`Registry::put_manifest`] only, so it is the default of
//! [`Registry::list_referrers`] and [`Registry::put_referrer`]; the remote backend
//! calls it when a registry shows no API (regclient's `ocidir/referrer.go` is the same
//! idea).
//!
//! Extending the list is a read-modify-write of one index, so writers are serialised per
//! (backend, repository, subject) in this process, and each write is read back (see
//! [`add_to_fallback_index`]): another process can still race, since the distribution API
//! has no compare-and-swap.
use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::registry::media::{ContentDescriptor, ImageIndex, ManifestError, ManifestLinks, MediaType};
use crate::registry::{Error, ManifestRef, RawManifest, Registry};
use crate::sync::KeyedLocks;

/// One manifest that names a subject, as the referrers list describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: MediaType,
    pub size: u64,
    /// The referrer's `artifactType`, else its config's media type (as the spec fills it).
    pub artifact_type: Option<MediaType>,
    pub annotations: BTreeMap<String, String>,
}

impl From<ContentDescriptor> for Referrer {
    fn from(d: ContentDescriptor) -> Self {
        Self {
            digest: d.digest,
            media_type: d.media_type,
            size: d.size,
            artifact_type: d.artifact_type,
            annotations: d.annotations.unwrap_or_default(),
        }
    }
}

/// Fallback index writers in this process, by (backend name, repository, subject).
static FALLBACK_WRITERS: KeyedLocks<(String, String, Digest)> = KeyedLocks::new();

/// The fallback tag of a subject: `sha256-<hex>`.
pub(crate) fn fallback_tag(subject: &Digest) -> ManifestRef {
    ManifestRef::Tag(format!("sha256-{}", subject.hex()))
}

/// A referrer about to be pushed: its parsed links and the subject they name.
pub(crate) struct Pushed<'a> {
    pub(crate) manifest: &'a RawManifest,
    pub(crate) links: ManifestLinks,
    pub(crate) subject: Digest,
}

impl<'a> Pushed<'a> {
    /// Reads the subject of `manifest`; a manifest without one is refused before
    /// anything is written.
    pub(crate) fn read(registry: &str, repo: &str, manifest: &'a RawManifest) -> Result<Self, Error> {
        let invalid = |source| Error::InvalidManifest {
            registry: registry.to_string(),
            operation: format!("push referrer {repo}@{}", manifest.digest),
            source,
        };
        let links = ManifestLinks::parse(&manifest.bytes).map_err(invalid)?;
        let subject = links
            .subject
            .as_ref()
            .ok_or_else(|| invalid(ManifestError::NoSubject))?
            .digest;
        Ok(Self {
            manifest,
            links,
            subject,
        })
    }

    /// The referrer's entry in a referrers list.
    fn entry(&self) -> ContentDescriptor {
        let artifact_type = self
            .links
            .artifact_type
            .clone()
            .or_else(|| self.links.config.as_ref().map(|c| c.media_type.clone()));
        ContentDescriptor {
            media_type: self.manifest.media_type.clone(),
            digest: self.manifest.digest,
            size: self.manifest.bytes.len() as u64,
            urls: Vec::new(),
            artifact_type,
            platform: None,
            annotations: self.links.annotations.clone(),
        }
    }
}

/// The referrers in a referrers list (an OCI index), only those of `artifact_type` when
/// given: filtered here too, because a registry may ignore the filter.
pub(crate) fn listed(index: &[u8], artifact_type: Option<&str>) -> Result<Vec<Referrer>, ManifestError> {
    Ok(ManifestLinks::parse(index)?
        .manifests
        .into_iter()
        .map(Referrer::from)
        .filter(|r| artifact_type.is_none_or(|wanted| r.artifact_type.as_ref().is_some_and(|t| t == wanted)))
        .collect())
}

/// [`Registry::list_referrers`] from the fallback index (none: no referrers), once
/// `accept` has passed the index as read (a backend's size cap, say).
pub(crate) async fn list_from_fallback<R: Registry + ?Sized>(
    registry: &R,
    repo: &str,
    subject: &Digest,
    artifact_type: Option<&str>,
    accept: impl FnOnce(&RawManifest) -> Result<(), Error>,
) -> Result<Vec<Referrer>, Error> {
    let tag = fallback_tag(subject);
    let Some(index) = registry.get_manifest(repo, &tag).await? else {
        return Ok(Vec::new());
    };
    accept(&index)?;
    listed(&index.bytes, artifact_type).map_err(|source| Error::InvalidManifest {
        registry: registry.name().to_string(),
        operation: format!("list referrers of {repo}@{subject} from {repo}{tag}"),
        source,
    })
}

/// [`Registry::put_referrer`] through the fallback index: the referrer by digest (unless
/// it is already there), then its entry in the list (unless already listed). A second
/// call therefore writes nothing.
pub(crate) async fn put_with_fallback<R: Registry + ?Sized>(
    registry: &R,
    repo: &str,
    manifest: &RawManifest,
) -> Result<(), Error> {
    let pushed = Pushed::read(registry.name(), repo, manifest)?;
    let by_digest = ManifestRef::Digest(manifest.digest);
    if registry.head_manifest(repo, &by_digest).await?.is_none() {
        registry.put_manifest(repo, &by_digest, manifest).await?;
    }
    add_to_fallback_index(registry, repo, &pushed).await
}

/// Times the fallback index is written before giving up on another writer that keeps
/// replacing it.
const FALLBACK_WRITES: usize = 3;

/// Adds a referrer, already pushed, to its subject's fallback index unless it is listed.
///
/// Writers in this process take turns (per backend, repository and subject). Another
/// process can still replace the index between this read and this write, dropping the
/// entry just added (the distribution API has no compare-and-swap), so the index is read
/// back after each write and the entry added again if it is gone. A writer elsewhere that
/// does not read back can still lose its own entry to this one: every entry in the index
/// names a manifest pushed before it, so what is lost is only findability, which that
/// writer's rerun restores.
pub(crate) async fn add_to_fallback_index<R: Registry + ?Sized>(
    registry: &R,
    repo: &str,
    pushed: &Pushed<'_>,
) -> Result<(), Error> {
    let key = (registry.name().to_string(), repo.to_string(), pushed.subject);
    let _writer = FALLBACK_WRITERS.lock(key).await;
    let tag = fallback_tag(&pushed.subject);
    let operation = format!("add referrer {} to {repo}{tag}", pushed.manifest.digest);
    let invalid = |source| Error::InvalidManifest {
        registry: registry.name().to_string(),
        operation: operation.clone(),
        source,
    };
    let read = || async {
        match registry.get_manifest(repo, &tag).await? {
            Some(index) => Ok(Some(ManifestLinks::parse(&index.bytes).map_err(invalid)?)),
            None => Ok(None),
        }
    };
    let lists_it = |index: &Option<ManifestLinks>| {
        index
            .as_ref()
            .is_some_and(|l| l.manifests.iter().any(|e| e.digest == pushed.manifest.digest))
    };
    let mut current = read().await?;
    for attempt in 0..FALLBACK_WRITES {
        if lists_it(&current) {
            return Ok(());
        }
        if attempt > 0 {
            tracing::warn!(
                "{}: {operation}: another writer replaced the index; adding the entry again",
                registry.name()
            );
        }
        let mut entries = current.as_ref().map(|l| l.manifests.clone()).unwrap_or_default();
        entries.push(pushed.entry());
        let index = ImageIndex::new(entries, current.as_ref())
            .to_manifest()
            .map_err(|e| invalid(ManifestError::Invalid(e)))?;
        registry.put_manifest(repo, &tag, &index).await?;
        current = read().await?;
        if current.is_none() {
            // No index at all right after writing one: not another writer (nothing here
            // deletes), a registry that cannot show what it just took. Believed.
            return Ok(());
        }
    }
    if lists_it(&current) {
        return Ok(());
    }
    Err(Error::Contended {
        registry: registry.name().to_string(),
        operation,
        what: format!("the referrers fallback index {repo}{tag}"),
        attempts: FALLBACK_WRITES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::MemoryRegistry;
    use crate::registry::oci_layout;
    use crate::registry::test_image::TestImage;

    #[tokio::test]
    async fn the_fallback_lists_each_referrer_once_and_filters_by_artifact_type() {
        let dir = tempfile::tempdir().unwrap();
        let layout = oci_layout::open(dir.path()).unwrap();
        let registry: &dyn Registry = &layout;
        let subject = TestImage::single("app", &[b"layer"]);
        subject.push(registry, "app", &["v1"]).await.unwrap();
        let sig = TestImage::referrer(&subject, "application/vnd.dev.sigstore.bundle.v0.3+json", 1);
        let sbom = TestImage::referrer(&subject, "application/spdx+json", 2);
        sig.push_blobs(registry, "app").await.unwrap();
        // The same referrer from two tasks, and another one, at once.
        let (sig, sbom) = (sig.manifest, sbom.manifest);
        let (a, b, c) = tokio::join!(
            registry.put_referrer("app", &sig),
            registry.put_referrer("app", &sig),
            registry.put_referrer("app", &sbom)
        );
        for outcome in [a, b, c] {
            outcome.unwrap();
        }
        let all = registry.list_referrers("app", &subject.digest(), None).await.unwrap();
        let mut digests: Vec<Digest> = all.iter().map(|r| r.digest).collect();
        digests.sort();
        let mut expected = vec![sig.digest, sbom.digest];
        expected.sort();
        assert_eq!(digests, expected, "each referrer listed exactly once");
        let sboms = registry
            .list_referrers("app", &subject.digest(), Some("application/spdx+json"))
            .await
            .unwrap();
        assert_eq!(sboms.len(), 1);
        assert_eq!(sboms[0].digest, sbom.digest);
        assert_eq!(sboms[0].annotations.get("n").map(String::as_str), Some("2"));
    }

    /// What another writer's index lists: its own referrer only.
    fn their_index(theirs: &TestImage) -> RawManifest {
        let entry = ContentDescriptor {
            media_type: theirs.manifest.media_type.clone(),
            digest: theirs.digest(),
            size: theirs.manifest.bytes.len() as u64,
            urls: Vec::new(),
            artifact_type: Some("application/spdx+json".into()),
            platform: None,
            annotations: None,
        };
        ImageIndex::new(vec![entry], None).to_manifest().unwrap()
    }

    #[tokio::test]
    async fn an_index_another_writer_replaces_gets_the_entry_back_and_never_lists_a_missing_manifest() {
        let registry = MemoryRegistry::new("mem");
        let subject = TestImage::single("app", &[b"layer"]);
        registry.seed("app", &subject, &["v1"]);
        let theirs = TestImage::referrer(&subject, "application/spdx+json", 1);
        let ours = TestImage::referrer(&subject, "application/vnd.dev.sigstore.bundle.v0.3+json", 2);
        theirs.push(&registry, "app", &[]).await.unwrap();
        ours.push_blobs(&registry, "app").await.unwrap();
        let tag = format!("sha256-{}", subject.digest().hex());
        // Right after our write, theirs lands: read back, ours is gone, and is added again.
        registry.rival_writer("app", &tag, their_index(&theirs), 1);
        registry.put_referrer("app", &ours.manifest).await.unwrap();
        let listed = registry.list_referrers("app", &subject.digest(), None).await.unwrap();
        let mut digests: Vec<Digest> = listed.iter().map(|r| r.digest).collect();
        digests.sort();
        let mut expected = vec![theirs.digest(), ours.digest()];
        expected.sort();
        assert_eq!(digests, expected, "both writers' entries");

        // A writer that keeps replacing it: a clear error naming the index; whatever the
        // index lists is there.
        let third = TestImage::referrer(&subject, "application/vnd.in-toto+json", 3);
        third.push_blobs(&registry, "app").await.unwrap();
        registry.rival_writer("app", &tag, their_index(&theirs), 10);
        let err = registry.put_referrer("app", &third.manifest).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("kept changing under another writer") && text.contains(&tag),
            "{text}"
        );
        assert!(err.rerun_helps(), "{text}");
        let stored = registry.repo("app");
        for listed in registry.list_referrers("app", &subject.digest(), None).await.unwrap() {
            assert!(
                stored.manifests.contains_key(&listed.digest),
                "{listed:?} is listed but missing"
            );
        }
    }

    #[tokio::test]
    async fn a_manifest_without_a_subject_is_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let layout = oci_layout::open(dir.path()).unwrap();
        let image = TestImage::single("app", &[b"layer"]);
        let err = layout.put_referrer("app", &image.manifest).await.unwrap_err();
        assert!(err.to_string().contains("names no `subject`"), "{err}");
        assert!(!dir.path().join("app").exists(), "nothing written");
    }
}
