//! A spool for staged promotions (`--canary`, `--rollout-waves`): what one wave reads from
//! a source registry, kept on local disk, so that the next waves copy the same bytes from
//! there instead of reading staging again.
//!
//! Why: a rollout runs the copy engine once per wave, and each run would read every
//! source blob it needs from staging. Over three mirrors written as a canary and then two,
//! that second read of staging was most of what the rollout cost beyond an unstaged run
//! (docs/performance.md, *Canary rollout and sharding*); on a real network it is also a
//! second download of every layer. With the spool, staging is read once for all waves.
//!
//! What makes it safe to copy from:
//! - A blob is kept only once its read from the source ended clean, which means its bytes
//!   matched its digest (every blob read verifies while it streams and ends with an
//!   error on a mismatch): a read cut short, failed or abandoned keeps nothing.
//! - A kept blob is served through the same digest-checked reader as a blob of an OCI
//!   layout. A spool file changed behind kpromo's back fails its digest; the blob is then
//!   forgotten, and the copy engine's retry reads the source.
//! - Kept per (registry, repository, digest): a repository is served only what it served
//!   itself, so the spool never hides a blob missing from a source repository.
//! - Keeping never slows a copy: a chunk the disk cannot take at once ends keeping that
//!   blob (the copy goes on from the source as before).
//! - Bounded: a byte budget, half the free space of the spool's filesystem when it opened
//!   (`TMPDIR`, else `/tmp`). Past it nothing more is kept. Manifests, small, are kept in
//!   memory under the same budget.
//! - Temporary: the directory is removed when the spool is dropped, at the end of Promote.
//!
//! It is a decorator ([`Spool::reading_through`]) on a source backend: everything else
//! (writes, HEADs, tag lists, counters) passes straight through, so the summary counts
//! exactly the requests staging saw.
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::digest::Digest;
use crate::sync::lock;

use super::oci_layout::store::{self, Op, Stats};
use super::{
    BlobStream, Descriptor, Error, ManifestRef, MountOutcome, RawManifest, Referrer, Registry, RegistryStats, TagList,
};

/// Chunks waiting for the disk per kept blob; one more and the blob is not kept.
const KEEP_CHUNKS: usize = 32;

/// A blob or manifest of one source repository: (registry, repository, digest).
type Key = (String, String, Digest);

/// What the spool kept and served so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpoolFigures {
    pub blobs_kept: u64,
    pub bytes_kept: u64,
    /// Blob reads answered from the spool instead of the source, and their bytes.
    pub blobs_served: u64,
    pub bytes_served: u64,
    /// Manifest reads answered from the spool.
    pub manifests_served: u64,
}

impl SpoolFigures {
    /// What `self` counted beyond `earlier`.
    pub fn since(self, earlier: SpoolFigures) -> SpoolFigures {
        SpoolFigures {
            blobs_kept: self.blobs_kept - earlier.blobs_kept,
            bytes_kept: self.bytes_kept - earlier.bytes_kept,
            blobs_served: self.blobs_served - earlier.blobs_served,
            bytes_served: self.bytes_served - earlier.bytes_served,
            manifests_served: self.manifests_served - earlier.manifests_served,
        }
    }
}

/// Source reads kept for later waves; see the module doc.
#[derive(Debug)]
pub struct Spool {
    dir: tempfile::TempDir,
    /// Bytes that may still be kept.
    left: AtomicU64,
    keeping: AtomicBool,
    blobs: Mutex<HashSet<Key>>,
    manifests: Mutex<HashMap<Key, RawManifest>>,
    figures: Mutex<SpoolFigures>,
    /// The digest-checked reader's byte counters (required by it; the figures count).
    read_stats: Stats,
}

impl Spool {
    /// A new, empty spool in the temp directory, keeping at most `budget` bytes (half the
    /// free space there when `None`).
    pub fn open(budget: Option<u64>) -> io::Result<Arc<Self>> {
        let dir = tempfile::Builder::new().prefix("kpromo-spool-").tempdir()?;
        let budget = match budget {
            Some(budget) => budget,
            None => free_space(dir.path())? / 2,
        };
        Ok(Arc::new(Self {
            dir,
            left: AtomicU64::new(budget),
            keeping: AtomicBool::new(true),
            blobs: Mutex::default(),
            manifests: Mutex::default(),
            figures: Mutex::default(),
            read_stats: Stats::default(),
        }))
    }

    /// Where the spool keeps its files.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `inner` (a source backend), with blob and manifest reads by digest answered from
    /// the spool when it holds them, and kept there otherwise.
    pub fn reading_through(self: &Arc<Self>, inner: Arc<dyn Registry>) -> Arc<dyn Registry> {
        Arc::new(Spooled {
            inner,
            spool: self.clone(),
        })
    }

    /// From now on reads are served but nothing more is kept: the last wave's reads are
    /// needed by no later one.
    pub fn stop_keeping(&self) {
        self.keeping.store(false, Ordering::Relaxed);
    }

    pub fn figures(&self) -> SpoolFigures {
        *lock(&self.figures)
    }

    fn reserve(&self, bytes: u64) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(bytes))
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.left.fetch_add(bytes, Ordering::Relaxed);
    }

    fn file(&self, digest: &Digest) -> PathBuf {
        self.dir.path().join(digest.hex())
    }

    fn holds(&self, key: &Key) -> bool {
        lock(&self.blobs).contains(key)
    }

    fn forget(&self, key: &Key) {
        lock(&self.blobs).remove(key);
    }

    /// `body` as read from the source, its bytes also written to the spool as they pass.
    fn keep(self: &Arc<Self>, key: Key, body: BlobStream) -> BlobStream {
        if !self.keeping.load(Ordering::Relaxed) || self.left.load(Ordering::Relaxed) == 0 {
            return body;
        }
        let vouched = body.vouched_digest();
        let (tx, rx) = mpsc::channel(KEEP_CHUNKS);
        tokio::spawn(self.clone().write(key, rx));
        let chunks = stream::unfold((body, Some(tx)), |(mut body, tx)| async move {
            match body.next().await {
                Some(Ok(chunk)) => {
                    // A full channel (a disk slower than the copy) ends keeping this blob.
                    let tx = tx.filter(|tx| tx.try_send(Some(chunk.clone())).is_ok());
                    Some((Ok(chunk), (body, tx)))
                }
                Some(Err(e)) => Some((Err(e), (body, None))),
                None => {
                    // Every blob read ends with an error, never clean, when its bytes
                    // do not match (`BlobStream`): a clean end is a verified blob.
                    if let Some(tx) = tx {
                        let _ = tx.send(None).await;
                    }
                    None
                }
            }
        });
        match vouched {
            Some(digest) => BlobStream::vouched(chunks, digest),
            None => BlobStream::new(chunks),
        }
    }

    /// Writes a kept blob's chunks (then `None`, for a clean end) to a temp file and
    /// renames it into place; anything else leaves nothing and gives its bytes back.
    async fn write(self: Arc<Self>, key: Key, mut chunks: mpsc::Receiver<Option<Bytes>>) {
        let mut reserved = 0u64;
        let dir = self.dir.path().to_path_buf();
        let target = self.file(&key.2);
        let op = self.op(format!("keep blob {}/{}@{}", key.0, key.1, key.2));
        let kept = async {
            let tmp = op.blocking(move || tempfile::NamedTempFile::new_in(dir)).await?;
            let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(|e| op.io(e))?);
            while let Some(chunk) = chunks.recv().await {
                let Some(chunk) = chunk else {
                    file.flush().await.map_err(|e| op.io(e))?;
                    drop(file);
                    op.blocking(move || tmp.persist(target).map_err(|e| e.error)).await?;
                    return Ok(true);
                };
                if !self.reserve(chunk.len() as u64) {
                    return Ok(false);
                }
                reserved += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(|e| op.io(e))?;
            }
            Ok::<_, Error>(false)
        }
        .await;
        if matches!(kept, Ok(true)) {
            lock(&self.blobs).insert(key);
            let mut figures = lock(&self.figures);
            figures.blobs_kept += 1;
            figures.bytes_kept += reserved;
        } else {
            if let Err(e) = kept {
                tracing::debug!("spool: not keeping blob {}: {e}", key.2);
            }
            self.release(reserved);
        }
    }

    /// A kept blob, read back digest-checked; a failed check forgets it, so the retry
    /// reads the source.
    fn served(self: &Arc<Self>, key: Key, body: BlobStream) -> BlobStream {
        lock(&self.figures).blobs_served += 1;
        let digest = key.2;
        let spool = self.clone();
        let chunks = body.map(move |chunk| {
            match &chunk {
                Ok(bytes) => lock(&spool.figures).bytes_served += bytes.len() as u64,
                Err(_) => spool.forget(&key),
            }
            chunk
        });
        BlobStream::vouched(chunks, digest)
    }

    fn manifest(&self, key: &Key) -> Option<RawManifest> {
        let found = lock(&self.manifests).get(key).cloned();
        if found.is_some() {
            lock(&self.figures).manifests_served += 1;
        }
        found
    }

    fn keep_manifest(&self, key: Key, manifest: &RawManifest) {
        if self.keeping.load(Ordering::Relaxed)
            && manifest.digest == key.2
            && Digest::of(&manifest.bytes) == key.2
            && self.reserve(manifest.bytes.len() as u64)
        {
            lock(&self.manifests).insert(key, manifest.clone());
        }
    }
}

impl Spool {
    /// Names the spool and the operation in errors, as the layout's file primitives want.
    fn op(&self, operation: String) -> Op {
        Op {
            registry: format!("spool {}", self.path().display()),
            operation,
        }
    }
}

/// Bytes an unprivileged process may still write on the filesystem holding `path`.
fn free_space(path: &Path) -> io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// A source backend read through a [`Spool`].
#[derive(Debug)]
struct Spooled {
    inner: Arc<dyn Registry>,
    spool: Arc<Spool>,
}

impl Spooled {
    fn key(&self, repo: &str, digest: &Digest) -> Key {
        (self.inner.name().to_string(), repo.to_string(), *digest)
    }
}

#[async_trait]
impl Registry for Spooled {
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
        let ManifestRef::Digest(digest) = reference else {
            return self.inner.get_manifest(repo, reference).await;
        };
        let key = self.key(repo, digest);
        if let Some(manifest) = self.spool.manifest(&key) {
            return Ok(Some(manifest));
        }
        let manifest = self.inner.get_manifest(repo, reference).await?;
        if let Some(manifest) = &manifest {
            self.spool.keep_manifest(key, manifest);
        }
        Ok(manifest)
    }

    async fn put_manifest(&self, repo: &str, reference: &ManifestRef, manifest: &RawManifest) -> Result<(), Error> {
        self.inner.put_manifest(repo, reference, manifest).await
    }

    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        self.inner.delete_manifest(repo, digest).await
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        self.inner.blob_size(repo, digest).await
    }

    async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, Error> {
        let key = self.key(repo, digest);
        if self.spool.holds(&key) {
            let op = self
                .spool
                .op(format!("read blob {}/{repo}@{digest}", self.inner.name()));
            match store::read_verified(op, self.spool.file(digest), *digest, self.spool.read_stats.clone()).await {
                Ok(body) => return Ok(self.spool.served(key, body)),
                Err(_) => self.spool.forget(&key),
            }
        }
        let body = self.inner.get_blob(repo, digest).await?;
        Ok(self.spool.keep(key, body))
    }

    async fn put_blob(&self, repo: &str, digest: &Digest, size: u64, body: BlobStream) -> Result<(), Error> {
        self.inner.put_blob(repo, digest, size, body).await
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<MountOutcome, Error> {
        self.inner.mount_blob(repo, digest, from_repo).await
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, Error> {
        self.inner.list_referrers(repo, subject, artifact_type).await
    }

    async fn put_referrer(&self, repo: &str, manifest: &RawManifest) -> Result<(), Error> {
        self.inner.put_referrer(repo, manifest).await
    }

    fn stats(&self) -> RegistryStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::MemoryRegistry;
    use crate::registry::oci_layout;
    use crate::registry::test_image::TestImage;

    /// A source whose reads vouch for their digest, as a remote registry's do: an OCI
    /// layout holding `blobs` in repository `app`.
    async fn source(dir: &Path, blobs: &[&[u8]]) -> (Arc<dyn Registry>, Vec<Digest>) {
        let layout: Arc<dyn Registry> = Arc::new(oci_layout::open(dir).unwrap());
        let mut digests = Vec::new();
        for blob in blobs {
            let digest = Digest::of(blob);
            let body = BlobStream::new(stream::iter([Ok(Bytes::copy_from_slice(blob))]));
            layout.put_blob("app", &digest, blob.len() as u64, body).await.unwrap();
            digests.push(digest);
        }
        (layout, digests)
    }

    async fn read_all(mut body: BlobStream) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn gets(registry: &dyn Registry) -> u64 {
        registry.stats().requests.get("GET 200").copied().unwrap_or(0)
    }

    /// Waits (bounded) until every background writer has finished: each holds the spool,
    /// besides the test (1) and its `readers`.
    async fn writers_done(spool: &Arc<Spool>, readers: usize) {
        for _ in 0..1000 {
            if Arc::strong_count(spool) == 1 + readers {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the spool's writers did not finish: {:?}", spool.figures());
    }

    #[tokio::test]
    async fn a_blob_read_once_is_served_from_the_spool_after() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, digests) = source(dir.path(), &[b"layer bytes"]).await;
        let spool = Spool::open(Some(1 << 20)).unwrap();
        let read = spool.reading_through(layout.clone());
        let digest = digests[0];
        assert_eq!(
            read_all(read.get_blob("app", &digest).await.unwrap()).await.unwrap(),
            b"layer bytes"
        );
        writers_done(&spool, 1).await;
        let before = gets(layout.as_ref());
        let again = read.get_blob("app", &digest).await.unwrap();
        assert_eq!(again.vouched_digest(), Some(digest));
        assert_eq!(read_all(again).await.unwrap(), b"layer bytes");
        assert_eq!(
            gets(layout.as_ref()),
            before,
            "the second read did not reach the source"
        );
        let figures = spool.figures();
        assert_eq!((figures.blobs_served, figures.bytes_served), (1, 11), "{figures:?}");
        // Another repository of the same registry is not served what it did not serve.
        assert!(read.get_blob("other", &digest).await.is_err());
    }

    #[tokio::test]
    async fn a_spool_file_changed_behind_its_back_fails_and_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, digests) = source(dir.path(), &[b"layer bytes"]).await;
        let spool = Spool::open(Some(1 << 20)).unwrap();
        let read = spool.reading_through(layout);
        let digest = digests[0];
        read_all(read.get_blob("app", &digest).await.unwrap()).await.unwrap();
        writers_done(&spool, 1).await;
        std::fs::write(spool.file(&digest), b"layer bytez").unwrap();
        let err = read_all(read.get_blob("app", &digest).await.unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
        // The retry goes to the source, which has the right bytes.
        assert_eq!(
            read_all(read.get_blob("app", &digest).await.unwrap()).await.unwrap(),
            b"layer bytes"
        );
    }

    #[tokio::test]
    async fn nothing_is_kept_past_the_budget_or_after_keeping_stops() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; 100];
        let (layout, digests) = source(dir.path(), &[b"0123456789", &big, b"late"]).await;
        let spool = Spool::open(Some(50)).unwrap();
        let read = spool.reading_through(layout);
        for digest in &digests[..2] {
            read_all(read.get_blob("app", digest).await.unwrap()).await.unwrap();
        }
        writers_done(&spool, 1).await;
        spool.stop_keeping();
        read_all(read.get_blob("app", &digests[2]).await.unwrap())
            .await
            .unwrap();
        writers_done(&spool, 1).await;
        let figures = spool.figures();
        assert_eq!((figures.blobs_kept, figures.bytes_kept), (1, 10), "{figures:?}");
        assert_eq!(
            std::fs::read_dir(spool.path()).unwrap().count(),
            1,
            "the refused blob left no file"
        );
    }

    #[tokio::test]
    async fn a_source_read_that_fails_its_digest_keeps_nothing() {
        // The memory registry's reads end with a mismatch error after the last chunk.
        let memory = Arc::new(MemoryRegistry::new("staging"));
        let claimed = Digest::of(b"good bytes");
        memory.seed_corrupt_blob("app", claimed, b"bad bytes");
        let spool = Spool::open(Some(1 << 20)).unwrap();
        let read = spool.reading_through(memory);
        assert!(read_all(read.get_blob("app", &claimed).await.unwrap()).await.is_err());
        writers_done(&spool, 1).await;
        assert_eq!(spool.figures().blobs_kept, 0);
        assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_read_abandoned_halfway_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, digests) = source(dir.path(), &[&vec![1u8; 4 << 20]]).await;
        let spool = Spool::open(Some(1 << 30)).unwrap();
        let read = spool.reading_through(layout);
        let mut body = read.get_blob("app", &digests[0]).await.unwrap();
        body.next().await.unwrap().unwrap();
        drop(body);
        writers_done(&spool, 1).await;
        assert_eq!(spool.figures().blobs_kept, 0);
        assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0, "no temp file left");
    }

    #[tokio::test]
    async fn manifests_by_digest_are_served_from_memory_and_tags_are_not() {
        let memory = Arc::new(MemoryRegistry::new("staging"));
        let image = TestImage::single("app", &[b"layer"]);
        memory.seed("app", &image, &["v1"]);
        let spool = Spool::open(Some(1 << 20)).unwrap();
        let read = spool.reading_through(memory.clone());
        let by_digest = ManifestRef::Digest(image.digest());
        for _ in 0..2 {
            let manifest = read.get_manifest("app", &by_digest).await.unwrap().unwrap();
            assert_eq!(manifest.digest, image.digest());
            assert!(
                read.get_manifest("app", &ManifestRef::Tag("v1".into()))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(spool.figures().manifests_served, 1);
        assert_eq!(memory.count("GET manifest"), 3, "{:?}", memory.log());
    }

    #[tokio::test]
    async fn the_directory_goes_with_the_spool() {
        let spool = Spool::open(None).unwrap();
        let path = spool.path().to_path_buf();
        assert!(path.is_dir());
        drop(spool);
        assert!(!path.exists());
    }
}
