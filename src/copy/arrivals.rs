//! Which blobs have reached which destination repository, announced as they arrive: where
//! the blob copies ([`super::blobs`]) and the manifest pushes ([`super::push`]) meet.
//!
//! A destination repository pushes a manifest as soon as the blobs it references are in
//! *that* repository, not once every mirror has every blob, so a slow or throttled mirror
//! delays only itself.
use std::collections::HashMap;

use tokio::sync::watch;

use crate::digest::Digest;

use super::{Class, RepoId};

/// A blob's fate in one repository: there, or why not (what a write it blocks passes on).
pub(super) type Arrival = Result<(), Class>;

/// One slot per (destination repository, blob) the copy plan writes, each settled once.
pub(super) struct Arrivals {
    slots: HashMap<(RepoId, Digest), watch::Sender<Option<Arrival>>>,
}

impl Arrivals {
    /// Slots for the blobs to be copied; any other blob is already where it is wanted.
    pub fn expecting(copies: impl IntoIterator<Item = (RepoId, Digest)>) -> Self {
        let slots = copies.into_iter().map(|key| (key, watch::Sender::new(None))).collect();
        Self { slots }
    }

    /// Announces a blob's fate; the first word on a slot stands.
    pub fn settle(&self, at: (RepoId, Digest), arrival: Arrival) {
        if let Some(slot) = self.slots.get(&at) {
            slot.send_if_modified(|state| {
                if state.is_some() {
                    return false;
                }
                *state = Some(arrival);
                true
            });
        }
    }

    /// Waits until the blob's fate in that repository is known.
    pub async fn wait(&self, at: (RepoId, Digest)) -> Arrival {
        let Some(slot) = self.slots.get(&at) else {
            return Ok(());
        };
        let mut seen = slot.subscribe();
        // The sender lives in `self`, which outlives this borrow: the wait cannot fail.
        let settled = seen.wait_for(Option::is_some).await.map(|state| *state);
        settled.ok().flatten().unwrap_or(Err(Class::Transient))
    }

    /// The slots nobody settled: copies whose task ended without a word (it panicked).
    pub fn unsettled(&self) -> Vec<(RepoId, Digest)> {
        let mut keys: Vec<_> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.borrow().is_none())
            .map(|(key, _)| *key)
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_when_its_blob_is_settled_and_the_first_word_stands() {
        let blob = Digest::of(b"layer");
        let (here, there) = (RepoId(0), RepoId(1));
        let arrivals = Arrivals::expecting([(here, blob), (there, blob)]);
        let waiting = arrivals.wait((there, blob));
        arrivals.settle((there, blob), Err(Class::Permanent));
        arrivals.settle((there, blob), Ok(()));
        assert_eq!(waiting.await, Err(Class::Permanent));
        assert_eq!(arrivals.unsettled(), vec![(here, blob)]);
        // A blob no copy was planned for is already there.
        assert_eq!(arrivals.wait((here, Digest::of(b"other"))).await, Ok(()));
    }
}
