//! Small concurrency primitives shared by every layer.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `mutex`, recovering it if a panicking thread poisoned it.
///
/// Everything kpromo keeps behind a `std::sync::Mutex` is counters, logs and maps that
/// stay consistent after any single update, so a panic elsewhere is no reason to lose
/// them (or to panic again while writing the summary).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cooperative stop flag: set by Ctrl-C, checked between units of work so that no
/// manifest push or blob upload is ever cut in half.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
