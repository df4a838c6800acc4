//! Read a blob from its source once and upload it to several destinations at the same
//! time.
//!
//! The uploads run as tasks of their own and may outlive the source read: a destination
//! still committing (or retrying its upload's start) when the read ends is the caller's
//! to wait for or to leave behind, so a slow mirror need not hold the others' next blob.
//!
//! Each destination gets its own small bounded channel, so memory stays at a few chunks
//! per destination whatever the layer size, and the slowest destination sets the pace
//! (backpressure) instead of the source racing ahead. The source stream verifies the
//! digest as it goes and ends with an error on a mismatch; that error is forwarded into
//! every upload body, so no destination can commit bad bytes.
//!
//! A destination that takes no chunk for [`LAG`] (a registry retrying its upload's start,
//! throttled, or gone) is cut loose: its upload ends with a transient error, so nothing is
//! committed there and the caller reads the source again for it alone, while the others
//! go on. Without this, one sick mirror would stall every healthy mirror's upload until
//! their bodies' stall timeout failed them too.
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::digest::Digest;
use crate::registry::{BlobStream, Error};

use super::Repo;

/// Chunks buffered per destination.
const CHANNEL_CHUNKS: usize = 8;
/// How long a destination may take no chunk before it is cut loose: well under the
/// other uploads' stall timeout (30 s by default), well over a healthy registry's pause.
const LAG: Duration = Duration::from_secs(10);

/// The outcome of one fan-out.
#[derive(Debug)]
pub(super) struct FanOut {
    /// Bytes read from the source, or why reading failed.
    pub read: Result<u64, Error>,
    /// One upload per target, in target order; they go on after the read ended.
    pub uploads: Vec<JoinHandle<Result<(), Error>>>,
}

/// Streams `source` (already opened on `source_name`) into every target concurrently.
/// `on_chunk` is called with the size of each chunk read from the source.
pub(super) async fn fan_out(
    source: BlobStream,
    source_name: &str,
    digest: Digest,
    size: u64,
    targets: &[Repo],
    on_chunk: impl Fn(u64),
) -> FanOut {
    let mut senders = Vec::with_capacity(targets.len());
    let mut uploads = Vec::with_capacity(targets.len());
    for target in targets {
        let (tx, rx) = mpsc::channel::<Result<Bytes, Error>>(CHANNEL_CHUNKS);
        let (cut_tx, cut_rx) = oneshot::channel::<()>();
        senders.push(Some((tx, cut_tx)));
        let lagged = Error::Transport {
            registry: target.registry.name().to_string(),
            operation: format!("upload blob {}@{digest}", target.path),
            message: format!(
                "took no data for {} s while other destinations of the same source read went on; \
                 it gets a source read of its own",
                LAG.as_secs()
            ),
        };
        // The relay forwards the source's chunks and its verdict in order, so it makes the
        // source's promise about its digest (the uploads need not hash again); or, once
        // this destination is cut loose, an error in place of the rest.
        let body = source.relay(stream::unfold(
            (rx, Some(cut_rx), Some(lagged)),
            |(mut rx, cut, lagged)| async move {
                let Some(mut cut) = cut else {
                    return rx.recv().await.map(|item| (item, (rx, None, lagged)));
                };
                tokio::select! {
                    biased;
                    was_cut = &mut cut => match (was_cut, lagged) {
                        (Ok(()), Some(error)) => Some((Err(error), (rx, None, None))),
                        // The driver finished without cutting it: the rest is in the channel.
                        _ => rx.recv().await.map(|item| (item, (rx, None, None))),
                    },
                    item = rx.recv() => item.map(|item| (item, (rx, Some(cut), lagged))),
                }
            },
        ));
        let target = target.clone();
        uploads.push(tokio::spawn(async move {
            target.registry.put_blob(&target.path, &digest, size, body).await
        }));
    }

    let driver = async move {
        let mut source = source;
        let mut read = 0u64;
        while let Some(item) = source.next().await {
            match item {
                Ok(chunk) => {
                    read += chunk.len() as u64;
                    on_chunk(chunk.len() as u64);
                    // A closed channel means that upload already ended (failed, or the
                    // blob turned out to exist); the others keep going. One that takes
                    // nothing for LAG is cut loose.
                    let sent = join_all(senders.iter().map(|target| async {
                        match target {
                            Some((tx, _)) => tokio::time::timeout(LAG, tx.send(Ok(chunk.clone()))).await.is_ok(),
                            None => true,
                        }
                    }))
                    .await;
                    for (target, sent) in senders.iter_mut().zip(sent) {
                        if !sent && let Some((_, cut)) = target.take() {
                            let _ = cut.send(());
                        }
                    }
                    if senders.iter().flatten().all(|(tx, _)| tx.is_closed()) {
                        break;
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    join_all(senders.iter().flatten().map(|(tx, _)| {
                        tx.send(Err(Error::Protocol {
                            registry: source_name.to_string(),
                            operation: format!("read blob {digest}"),
                            message: message.clone(),
                        }))
                    }))
                    .await;
                    return Err(err);
                }
            }
        }
        // Dropping the senders ends every upload body.
        drop(senders);
        Ok(read)
    };

    FanOut {
        read: driver.await,
        uploads,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::oci_layout;

    fn targets(dir: &std::path::Path) -> Vec<Repo> {
        ["a", "b"]
            .iter()
            .map(|name| Repo {
                registry: Arc::new(oci_layout::open(&dir.join(name)).expect("layout")),
                path: "app".into(),
                display: format!("{name}/app"),
            })
            .collect()
    }

    /// A source that vouches for `digest`, yielding `chunks` and then `end` (if any).
    fn source(digest: Digest, chunks: &[&'static [u8]], end: Option<Error>) -> BlobStream {
        let mut items: Vec<Result<Bytes, Error>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        items.extend(end.map(Err));
        BlobStream::vouched(stream::iter(items), digest)
    }

    #[tokio::test]
    async fn every_target_gets_the_bytes_of_a_vouched_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let targets = targets(dir.path());
        let digest = Digest::of(b"hello world");
        let source = source(digest, &[b"hello ", b"world"], None);
        let fan = fan_out(source, "src", digest, 11, &targets, |_| {}).await;
        assert_eq!(fan.read.expect("read"), 11);
        for (target, upload) in targets.iter().zip(fan.uploads) {
            upload.await.expect("task").expect("upload");
            assert_eq!(target.registry.blob_size("app", &digest).await.expect("head"), Some(11));
        }
    }

    #[tokio::test]
    async fn a_vouched_source_failing_its_verdict_leaves_no_blob_anywhere() {
        // The verdict comes in place of the last chunk; the layout store, which does not
        // hash a vouched body again, must still end up with nothing.
        let dir = tempfile::tempdir().expect("tempdir");
        let targets = targets(dir.path());
        let digest = Digest::of(b"hello world");
        let mismatch = Error::DigestMismatch {
            registry: "src".into(),
            operation: "get blob".into(),
            expected: digest,
            actual: Digest::of(b"hello World"),
        };
        let source = source(digest, &[b"hello "], Some(mismatch));
        let fan = fan_out(source, "src", digest, 11, &targets, |_| {}).await;
        assert!(fan.read.is_err());
        for (target, upload) in targets.iter().zip(fan.uploads) {
            assert!(upload.await.expect("task").is_err());
            assert_eq!(target.registry.blob_size("app", &digest).await.expect("head"), None);
        }
    }
}
