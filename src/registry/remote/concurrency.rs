//! How many requests one registry host gets at once: slots whose number follows the
//! controller's limit (`control.rs` decides it; this enforces it).
//!
//! The limit lives in a tokio [`Semaphore`] whose permit count is kept equal to the limit.
//! Lowering it while requests are out forgets the free permits at once and the rest
//! ("debt") as [`Slot`]s come back, so requests in flight never exceed a lowered limit
//! once its debt is paid.
use crate::sync::lock;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One registry host's concurrency slots.
#[derive(Debug)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits still to forget as they come back, after a decrease.
    debt: usize,
    /// Slots handed out and not yet returned.
    held: usize,
    /// Of those, the ones whose request has gone out (past the rate limiter).
    sending: usize,
    held_peak: usize,
}

/// A concurrency slot, held while a request is in flight. Dropping it returns the slot,
/// or forgets it if the limit was lowered meanwhile.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Slots>,
    sending: bool,
}

impl Slots {
    /// `limit` slots (at least one).
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            state: Mutex::new(State {
                limit,
                debt: 0,
                held: 0,
                sending: 0,
                held_peak: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few numbers; a panic elsewhere cannot leave it inconsistent.
        lock(&self.state)
    }

    /// Waits for a slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Slot {
        // The semaphore is never closed, so this is always `Some`.
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        let mut state = self.lock();
        state.held += 1;
        state.held_peak = state.held_peak.max(state.held);
        Slot {
            permit,
            owner: self.clone(),
            sending: false,
        }
    }

    /// Changes the number of slots: new ones are free at once, removed ones are taken
    /// back as they come free.
    pub(crate) fn set_limit(&self, limit: usize) {
        let limit = limit.max(1);
        let mut state = self.lock();
        if limit > state.limit {
            let mut grow = limit - state.limit;
            let repaid = grow.min(state.debt);
            state.debt -= repaid;
            grow -= repaid;
            self.semaphore.add_permits(grow);
        } else {
            let cut = state.limit - limit;
            let forgotten = self.semaphore.forget_permits(cut);
            state.debt += cut - forgotten;
        }
        state.limit = limit;
    }

    /// The most slots held at once so far.
    pub(crate) fn held_peak(&self) -> usize {
        self.lock().held_peak
    }
}

impl Slot {
    /// The request is going out now. Returns whether every slot is then busy: the limit is
    /// what holds requests back.
    pub(crate) fn start(&mut self) -> bool {
        let mut state = self.owner.lock();
        if !self.sending {
            state.sending += 1;
            self.sending = true;
        }
        state.sending >= state.limit
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let pay_debt = {
            let mut state = self.owner.lock();
            state.held -= 1;
            if self.sending {
                state.sending -= 1;
            }
            let pay = state.debt > 0 && self.permit.is_some();
            if pay {
                state.debt -= 1;
            }
            pay
        };
        if let Some(permit) = self.permit.take() {
            if pay_debt {
                permit.forget();
            } else {
                drop(permit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `n` slots that have all gone out, as busy requests would.
    async fn take(s: &Arc<Slots>, n: usize) -> Vec<Slot> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut slot = s.acquire().await;
            slot.start();
            out.push(slot);
        }
        out
    }

    fn free(s: &Slots) -> usize {
        s.semaphore.available_permits()
    }

    #[tokio::test]
    async fn busy_is_every_slot_sending() {
        let s = Arc::new(Slots::new(3));
        let mut held = take(&s, 2).await;
        let mut third = s.acquire().await;
        assert!(third.start(), "the third of three fills the limit");
        drop(held.pop());
        let mut again = s.acquire().await;
        // Acquired, not yet sent: not counted.
        drop(third);
        assert!(!again.start());
        assert_eq!(s.held_peak(), 3);
    }

    #[tokio::test]
    async fn growing_adds_slots_at_once() {
        let s = Arc::new(Slots::new(2));
        let held = take(&s, 2).await;
        assert_eq!(free(&s), 0);
        s.set_limit(5);
        assert_eq!(free(&s), 3);
        drop(held);
        assert_eq!(free(&s), 5);
    }

    #[tokio::test]
    async fn a_decrease_with_requests_out_takes_effect_as_they_return() {
        let s = Arc::new(Slots::new(8));
        let mut out = take(&s, 6).await;
        assert_eq!(free(&s), 2);
        // Down to 4 with 6 out: the 2 free permits go at once, 2 more are owed.
        s.set_limit(4);
        assert_eq!(free(&s), 0);
        // The first two returned slots pay the debt instead of admitting anyone.
        out.truncate(4);
        assert_eq!(free(&s), 0);
        assert_eq!(s.lock().held, 4);
        out.pop();
        assert_eq!(free(&s), 1, "debt paid: slots circulate again");
        drop(out);
        assert_eq!(free(&s), 4);
        // Growing while in debt repays the debt first.
        let out = take(&s, 4).await;
        s.set_limit(2);
        s.set_limit(3);
        drop(out);
        assert_eq!(free(&s), 3);

        // Under load: many tasks, and never more than the new limit out at once after the
        // debt is paid.
        let s = Arc::new(Slots::new(8));
        let out = take(&s, 8).await;
        s.set_limit(6);
        drop(out);
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (s, in_flight, most) = (s.clone(), in_flight.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..10 {
                        let _slot = s.acquire().await;
                        let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 6);
    }
}
