//! Filesystem primitives for a layout: atomic small-file writes, streamed blob
//! uploads and verified blob reads. Nothing here knows about repositories or tags.
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use tempfile::NamedTempFile;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::digest::{Digest, DigestWriter};
use crate::registry::{BlobStream, Error, RegistryStats};

/// Read size for blob streams: large enough that a 1 GB layer is ~4000 reads, small
/// enough that memory stays flat.
const CHUNK: usize = 256 * 1024;

/// Prefix of in-progress files; they live next to their final name (same filesystem,
/// so the final rename is atomic) and are removed when an upload fails.
const TEMP_PREFIX: &str = ".kpromo-tmp-";

/// Names the layout and the operation in every error, as the registry `Error` requires.
#[derive(Debug, Clone)]
pub struct Op {
    pub registry: String,
    pub operation: String,
}

impl Op {
    pub fn io(&self, source: io::Error) -> Error {
        Error::Io {
            registry: self.registry.clone(),
            operation: self.operation.clone(),
            source,
        }
    }

    /// An error about the layout's content rather than the OS.
    pub fn invalid(&self, message: impl Into<String>) -> Error {
        self.io(io::Error::new(io::ErrorKind::InvalidData, message.into()))
    }

    pub fn mismatch(&self, expected: Digest, actual: Digest) -> Error {
        Error::DigestMismatch {
            registry: self.registry.clone(),
            operation: self.operation.clone(),
            expected,
            actual,
        }
    }

    /// Runs blocking filesystem work off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| self.io(io::Error::other(e)))?
            .map_err(|e| self.io(e))
    }
}

/// Shared request counters (also updated from inside blob streams).
pub type Stats = Arc<Mutex<RegistryStats>>;

pub fn count(stats: &Stats, request: &str, read: u64, written: u64) {
    if let Ok(mut s) = stats.lock() {
        if !request.is_empty() {
            *s.requests.entry(request.to_string()).or_default() += 1;
        }
        s.bytes_read += read;
        s.bytes_written += written;
    }
}

/// Writes `bytes` to `target` so that readers see the old file or the new one, never
/// a partial one: temp file in the same directory, fsync, rename, fsync directory.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(target)?;
    let mut tmp = temp_file(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    persist(tmp, target)
}

/// A temp file that becomes a world-readable layout file once renamed (tempfile's
/// default 0600 would hide blobs from other users and from servers of the directory).
fn temp_file(dir: &Path) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder.tempfile_in(dir)
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no parent", path.display())))
}

fn persist(tmp: NamedTempFile, target: &Path) -> io::Result<()> {
    tmp.persist(target).map_err(|e| e.error)?;
    sync_dir(parent(target)?)
}

/// Makes a rename durable. Directories cannot be fsynced on every platform; where
/// they cannot, the rename is still atomic, only less durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a whole file of at most `limit` bytes; `None` when it does not exist.
/// Returns `Err(InvalidData)` when the file is larger than `limit`.
pub fn read_small(path: &Path, limit: u64) -> io::Result<Option<Bytes>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, more than the {limit} bytes allowed", path.display()),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    io::Read::read_to_end(&mut io::Read::take(file, limit + 1), &mut bytes)?;
    Ok(Some(Bytes::from(bytes)))
}

/// The size of a file, `None` when it does not exist.
pub async fn file_size(path: &Path) -> io::Result<Option<u64>> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Streams `body` into `target`: written to a temp file beside it, checked against
/// `digest` and `size`, fsynced, then renamed into place. On any failure (including the
/// caller dropping this future) the temp file is removed and `target` is untouched.
pub async fn upload(
    op: &Op,
    target: PathBuf,
    digest: Digest,
    size: u64,
    mut body: BlobStream,
    stats: &Stats,
) -> Result<(), Error> {
    let dir = parent(&target).map_err(|e| op.io(e))?.to_path_buf();
    let tmp = op.blocking(move || temp_file(&dir)).await?;
    let mut file = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(|e| op.io(e))?);
    // A body that vouches for this digest fails before its last byte on a mismatch;
    // anything else is hashed here.
    let mut hasher = (body.vouched_digest() != Some(digest)).then(DigestWriter::new);
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > size {
            return Err(op.invalid(format!("blob is longer than the announced {size} bytes")));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        file.write_all(&chunk).await.map_err(|e| op.io(e))?;
        count(stats, "", 0, chunk.len() as u64);
    }
    if written != size {
        return Err(op.invalid(format!("blob is {written} bytes, expected {size}")));
    }
    if let Some(actual) = hasher.map(DigestWriter::finish)
        && actual != digest
    {
        return Err(op.mismatch(digest, actual));
    }
    file.flush().await.map_err(|e| op.io(e))?;
    file.sync_all().await.map_err(|e| op.io(e))?;
    drop(file);
    op.blocking(move || persist(tmp, &target)).await
}

/// Opens a blob as a stream that hashes every chunk and ends with a digest-mismatch
/// error if the file's content is not `digest`. The verdict is made when the file's last
/// byte is read and replaces that chunk on a mismatch, so the stream vouches for its
/// digest (an upload stopping at the blob's length never sends a corrupt whole).
pub async fn read_verified(op: Op, path: PathBuf, digest: Digest, stats: Stats) -> Result<BlobStream, Error> {
    let file = tokio::fs::File::open(&path).await.map_err(|e| op.io(e))?;
    let length = file.metadata().await.map_err(|e| op.io(e))?.len();
    struct State {
        file: tokio::fs::File,
        /// Taken when the verdict is made; the stream ends after it.
        hasher: Option<DigestWriter>,
        seen: u64,
        length: u64,
        op: Op,
        digest: Digest,
        stats: Stats,
    }
    let state = State {
        file,
        hasher: Some(DigestWriter::new()),
        seen: 0,
        length,
        op,
        digest,
        stats,
    };
    let stream = futures_util::stream::try_unfold(state, |mut st| async move {
        let Some(hasher) = st.hasher.as_mut() else {
            return Ok(None);
        };
        let mut buf = BytesMut::with_capacity(CHUNK);
        let n = st.file.read_buf(&mut buf).await.map_err(|e| st.op.io(e))?;
        hasher.update(&buf);
        st.seen += n as u64;
        if (n == 0 || st.seen >= st.length)
            && let Some(hasher) = st.hasher.take()
        {
            let actual = hasher.finish();
            if actual != st.digest {
                return Err(st.op.mismatch(st.digest, actual));
            }
        }
        if n == 0 {
            return Ok(None);
        }
        count(&st.stats, "", n as u64, 0);
        Ok(Some((buf.freeze(), st)))
    });
    Ok(BlobStream::vouched(stream, digest))
}

/// Links `from` to `to` (same inode, no copy). `Ok(false)` when the filesystem cannot
/// link them (another device, no hard-link support), so the caller copies instead.
pub fn hard_link(from: &Path, to: &Path) -> io::Result<bool> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            sync_dir(parent(to)?)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => Ok(false),
    }
}
