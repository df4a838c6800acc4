//! [`Audited`]: any registry, with every write recorded in the audit log.
//!
//! A decorator rather than calls in the copy engine, so that every phase that writes
//! (Promote today, Sign and Attest next) is audited the same way, and nothing that
//! writes can forget to. Reads pass straight through.
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::digest::Digest;
use crate::registry::media::ManifestLinks;
use crate::registry::{
    BlobStream, Descriptor, Error, ManifestRef, MountOutcome, RawManifest, Referrer, Registry, RegistryStats, TagList,
};

use super::{AuditLog, Event, WriteEvent, WriteKind};

/// A registry whose writes are recorded in an [`AuditLog`].
#[derive(Debug)]
pub struct Audited {
    inner: Arc<dyn Registry>,
    log: Arc<AuditLog>,
}

impl Audited {
    pub fn new(inner: Arc<dyn Registry>, log: Arc<AuditLog>) -> Self {
        Self { inner, log }
    }

    /// Records one write. A record that cannot be written fails the write that it is
    /// about: the copy engine then stops what depends on it, and the run fails rather
    /// than going on unaudited.
    fn record<T>(&self, mut write: WriteEvent, started: Instant, result: Result<T, Error>) -> Result<T, Error> {
        write.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(e) = &result {
            write.result = "error".into();
            write.error = Some(e.to_string());
        }
        self.log.emit(Event::Write(write)).map_err(|e| Error::Io {
            registry: self.inner.name().to_string(),
            operation: format!("recording the write in the audit log {}", e.sink),
            source: e.source,
        })?;
        result
    }

    fn write(&self, kind: WriteKind, repo: &str, reference: String, digest: &Digest, bytes: u64) -> WriteEvent {
        WriteEvent {
            kind,
            registry: self.inner.name().to_string(),
            repository: repo.to_string(),
            reference,
            digest: digest.to_string(),
            bytes,
            mounted_from: None,
            result: "ok".into(),
            error: None,
            duration_ms: 0,
        }
    }
}

/// cosign's tag scheme says what a tag holds: `sha256-<hex>.sig` is an image's
/// signature, `sha256-<hex>.att` its attestations; any other tag is a plain tag.
fn tag_kind(tag: &str) -> WriteKind {
    match tag.strip_prefix("sha256-").and_then(|rest| rest.rsplit_once('.')) {
        Some((hex, "sig")) if hex.len() == 64 => WriteKind::Signature,
        Some((hex, "att")) if hex.len() == 64 => WriteKind::Attestation,
        _ => WriteKind::Tag,
    }
}

/// A referrer is a signature when its artifact type says so (cosign's, sigstore
/// bundles), an attestation otherwise.
fn referrer_kind(manifest: &RawManifest) -> WriteKind {
    let links = ManifestLinks::parse(&manifest.bytes).unwrap_or_default();
    let artifact_type = links
        .artifact_type
        .or_else(|| links.config.map(|c| c.media_type))
        .map(|t| t.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    if artifact_type.contains("sig") {
        WriteKind::Signature
    } else {
        WriteKind::Attestation
    }
}

#[async_trait]
impl Registry for Audited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn list_tags(&self, repo: &str) -> Result<Option<TagList>, Error> {
        self.inner.list_tags(repo).await
    }

    async fn catalog(&self) -> Result<Vec<String>, Error> {
        self.inner.catalog().await
    }

    async fn head_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<Descriptor>, Error> {
        self.inner.head_manifest(repo, reference).await
    }

    async fn get_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<Option<RawManifest>, Error> {
        self.inner.get_manifest(repo, reference).await
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        let (kind, shown) = match reference {
            ManifestRef::Tag(tag) => (tag_kind(tag), tag.clone()),
            ManifestRef::Digest(digest) => (WriteKind::Manifest, digest.to_string()),
        };
        let write = self.write(kind, repo, shown, &manifest.digest, manifest.bytes.len() as u64);
        let started = Instant::now();
        let result = self.inner.put_manifest(repo, reference, manifest).await;
        self.record(write, started, result)
    }

    /// A deletion that found nothing to delete is recorded too: it was asked for.
    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let write = self.write(WriteKind::ManifestDeletion, repo, digest.to_string(), digest, 0);
        let started = Instant::now();
        let result = self.inner.delete_manifest(repo, digest).await;
        self.record(write, started, result)
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        self.inner.blob_size(repo, digest).await
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        self.inner.get_blob(repo, digest).await
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        let write = self.write(WriteKind::Blob, repo, digest.to_string(), digest, size);
        let started = Instant::now();
        let result = self.inner.put_blob(repo, digest, size, body).await;
        self.record(write, started, result)
    }

    /// A mount the registry performed is a blob write; one it declined wrote nothing
    /// (the upload that follows is recorded on its own).
    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        let started = Instant::now();
        let result = self.inner.mount_blob(repo, digest, from_repo).await;
        if let Ok(MountOutcome::NotMounted) = result {
            return result;
        }
        let mut write = self.write(WriteKind::Blob, repo, digest.to_string(), digest, 0);
        write.mounted_from = Some(from_repo.to_string());
        self.record(write, started, result)
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, Error> {
        self.inner.list_referrers(repo, subject, artifact_type).await
    }

    /// One record per referrer: the backend may also update a fallback index, which is
    /// part of the same logical write.
    async fn put_referrer(&self, repo: &str, manifest: &RawManifest) -> Result<(), Error> {
        let write = self.write(
            referrer_kind(manifest),
            repo,
            manifest.digest.to_string(),
            &manifest.digest,
            manifest.bytes.len() as u64,
        );
        let started = Instant::now();
        let result = self.inner.put_referrer(repo, manifest).await;
        self.record(write, started, result)
    }

    fn stats(&self) -> RegistryStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::audit::memory::MemorySink;
    use crate::registry::memory::MemoryRegistry;

    #[tokio::test]
    async fn writes_are_recorded_with_their_result_and_reads_are_not() {
        let sink = Arc::new(MemorySink::default());
        let log = Arc::new(AuditLog::new(sink.clone(), &[]));
        let inner: Arc<dyn Registry> = Arc::new(MemoryRegistry::new("mem"));
        let audited = Audited::new(inner, log.clone());
        let blob = Bytes::from_static(b"layer");
        let digest = Digest::of(&blob);
        let body = BlobStream::new(futures_util::stream::iter([Ok(blob.clone())]));
        audited.put_blob("r", &digest, 5, body).await.unwrap();
        assert_eq!(audited.blob_size("r", &digest).await.unwrap(), Some(5));
        // A manifest whose blob is missing is refused, as distribution refuses it.
        let config = Digest::of(b"missing config");
        let manifest = RawManifest::new(
            "application/vnd.oci.image.manifest.v1+json",
            Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
            )),
        );
        let refused = audited
            .put_manifest("r", &ManifestRef::Tag("v1".into()), &manifest)
            .await;
        assert!(refused.is_err());
        let writes: Vec<(WriteKind, String, String)> = sink
            .records()
            .into_iter()
            .filter_map(|r| match r.event {
                Event::Write(w) => Some((w.kind, w.reference, w.result)),
                _ => None,
            })
            .collect();
        assert_eq!(
            writes,
            [
                (WriteKind::Blob, digest.to_string(), "ok".to_string()),
                (WriteKind::Tag, "v1".to_string(), "error".to_string()),
            ]
        );
        assert_eq!(log.write_counts(), (2, 1));
    }

    #[test]
    fn cosign_tags_are_signatures_and_attestations() {
        let hex = "a".repeat(64);
        assert_eq!(tag_kind(&format!("sha256-{hex}.sig")), WriteKind::Signature);
        assert_eq!(tag_kind(&format!("sha256-{hex}.att")), WriteKind::Attestation);
        assert_eq!(tag_kind("sha256-abc.sig"), WriteKind::Tag);
        assert_eq!(tag_kind("v1.0.sig"), WriteKind::Tag);
        assert_eq!(tag_kind("latest"), WriteKind::Tag);
    }

    #[tokio::test]
    async fn a_write_that_cannot_be_recorded_fails() {
        let sink = Arc::new(MemorySink::default());
        let audited = Audited::new(
            Arc::new(MemoryRegistry::new("mem")),
            Arc::new(AuditLog::new(sink.clone(), &[])),
        );
        sink.fail();
        let blob = Bytes::from_static(b"x");
        let digest = Digest::of(&blob);
        let err = audited
            .put_blob("r", &digest, 1, BlobStream::new(futures_util::stream::iter([Ok(blob)])))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("audit log"), "{err}");
    }
}
