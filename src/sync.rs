//! Small concurrency primitives shared by every layer.
use std::collections::BTreeMap;
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

/// One async mutex per key, created on first use and dropped when nobody holds or awaits
/// it any more: serialises read-modify-write sequences on one shared object (an
/// `index.json`, a referrers list) without a lock table that grows for the whole run.
#[derive(Debug)]
pub(crate) struct KeyedLocks<K> {
    locks: Mutex<BTreeMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K: Ord + Clone> KeyedLocks<K> {
    /// `const`, so that a process-wide table can be a plain `static`.
    pub(crate) const fn new() -> Self {
        Self {
            locks: Mutex::new(BTreeMap::new()),
        }
    }

    /// Waits for the lock of `key`; it is released when the guard is dropped.
    pub(crate) async fn lock(&self, key: K) -> KeyedGuard<'_, K> {
        let mutex = lock(&self.locks).entry(key.clone()).or_default().clone();
        let guard = mutex.lock_owned().await;
        KeyedGuard {
            locks: self,
            key,
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.locks).len()
    }
}

/// Holds one key of a [`KeyedLocks`].
#[derive(Debug)]
pub(crate) struct KeyedGuard<'a, K: Ord> {
    locks: &'a KeyedLocks<K>,
    key: K,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<K: Ord> Drop for KeyedGuard<'_, K> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let mutex = tokio::sync::OwnedMutexGuard::mutex(&guard).clone();
        drop(guard);
        let mut locks = lock(&self.locks.locks);
        // Two references, the table's and `mutex`: no task holds or awaits this lock (a
        // waiter clones it under the table lock, which is held here), so it can go.
        if Arc::strong_count(&mutex) == 2 && locks.get(&self.key).is_some_and(|m| Arc::ptr_eq(m, &mutex)) {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_no_entry_left_behind() {
        let locks = Arc::new(KeyedLocks::new());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (locks, inside) = (locks.clone(), inside.clone());
                tokio::spawn(async move {
                    let _guard = locks.lock(i % 2).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    now
                })
            })
            .collect();
        for task in tasks {
            // Two keys: at most one holder of each at a time.
            assert!(task.await.unwrap() <= 2);
        }
        assert_eq!(locks.len(), 0, "released locks are dropped from the table");

        let first = locks.lock(7).await;
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _second = locks.lock(7).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the same key waits");
        let other = locks.lock(8).await;
        drop(first);
        waiter.await.unwrap();
        drop(other);
        assert_eq!(locks.len(), 0);
    }
}
