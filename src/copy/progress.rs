//! Promotion progress: indicatif bars on a terminal, periodic log lines otherwise (CI
//! logs would be flooded by redraws).
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::info;

/// How often the plain-log variant reports.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Counters {
    source_bytes: AtomicU64,
    bytes: AtomicU64,
    images: AtomicU64,
}

/// Shared by every copy task; cheap to update from any thread.
#[derive(Debug, Clone)]
pub struct Progress {
    counters: Arc<Counters>,
    bars: Option<(ProgressBar, ProgressBar)>,
    total_bytes: u64,
    total_images: u64,
}

impl Progress {
    /// Starts reporting. `total_bytes` counts each upload (source bytes times the
    /// destinations that need them); `total_images` counts (destination, image) pairs.
    pub fn start(total_bytes: u64, total_images: u64) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        let counters = Arc::new(Counters::default());
        if std::io::stderr().is_terminal() {
            let multi = MultiProgress::new();
            let bytes = multi.add(ProgressBar::new(total_bytes));
            bytes.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bytes.set_prefix("bytes");
            let images = multi.add(ProgressBar::new(total_images));
            images.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            images.set_prefix("images");
            let progress = Self {
                counters,
                bars: Some((bytes, images)),
                total_bytes,
                total_images,
            };
            return (progress, None);
        }
        let progress = Self {
            counters,
            bars: None,
            total_bytes,
            total_images,
        };
        let ticker = progress.clone();
        let handle = tokio::spawn(async move {
            let mut interval = tokio::time::interval(LOG_EVERY);
            interval.tick().await;
            loop {
                interval.tick().await;
                ticker.log_line();
            }
        });
        (progress, Some(handle))
    }

    /// Records `n` bytes read from a source and streamed to `fan` destinations.
    pub fn add_read(&self, n: u64, fan: u64) {
        self.counters.source_bytes.fetch_add(n, Ordering::Relaxed);
        self.counters.bytes.fetch_add(n * fan, Ordering::Relaxed);
        if let Some((bytes, _)) = &self.bars {
            bytes.inc(n * fan);
        }
    }

    pub fn source_bytes(&self) -> u64 {
        self.counters.source_bytes.load(Ordering::Relaxed)
    }

    pub fn uploaded_bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }

    pub fn image_done(&self) {
        self.counters.images.fetch_add(1, Ordering::Relaxed);
        if let Some((_, images)) = &self.bars {
            images.inc(1);
        }
    }

    fn log_line(&self) {
        info!(
            "progress: {}/{} images, {}/{} MB uploaded",
            self.counters.images.load(Ordering::Relaxed),
            self.total_images,
            self.counters.bytes.load(Ordering::Relaxed) / 1_000_000,
            self.total_bytes / 1_000_000
        );
    }

    pub fn finish(&self, ticker: Option<tokio::task::JoinHandle<()>>) {
        if let Some(handle) = ticker {
            handle.abort();
            self.log_line();
        }
        if let Some((bytes, images)) = &self.bars {
            bytes.finish();
            images.finish();
        }
    }
}
