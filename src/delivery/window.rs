//! The claim window: how many deliveries one actor may hold claimed until their outcomes
//! are written, and the spare slots busy webhooks share beyond their own.
//!
//! Every webhook has a window of its own, 2 × `HOOKD_MAX_IN_FLIGHT` claims (1 for a FIFO
//! webhook). A claim counts until its outcome's record commits, so the windows are what a
//! crash can send twice. During a burst to one webhook the window, not the sends, sets its
//! pace: each claim waits a commit or two on a writer kept busy by the API (README,
//! "Performance"). Yet ten busy webhooks' own windows already take as much of the writer as
//! the API can spare. So the windows of the busy webhooks (those holding claims) share one
//! budget of [`BUDGET_PER_IN_FLIGHT`] × `HOOKD_MAX_IN_FLIGHT` claims, split equally: alone,
//! a busy webhook's window grows to the whole budget (128 claims by default) while it has
//! more due than room; two get half each; from four on, each has only its own. A crash
//! therefore resends at most the budget for one webhook, and for many at most each one's
//! own window.
//!
//! A webhook counts as busy while it holds any claim, not only while it has a backlog:
//! ten webhooks in a burst each find their backlog cleared now and then, and counting only
//! those with one at that moment lent the few the budget of all (the ten together then
//! held more than their own windows, and the API's acknowledgements paid for it).
//!
//! A webhook has a backlog when its last claim came back full, or when it is asked to claim
//! with its window full (then no claim can come back to say so).
//!
//! The budget beyond the own windows is a pool of [`SpareSlots`], lent out as [`Loan`]s:
//! an actor sizes its loan after every message, and a loan dropped with its actor
//! (stopped or failed) returns every slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The windows of busy webhooks share this many times `HOOKD_MAX_IN_FLIGHT` claims.
pub const BUDGET_PER_IN_FLIGHT: usize = 8;

/// Claims a webhook may hold of its own: twice its attempts in flight, a prefetch.
pub fn own_window(max_in_flight: usize) -> usize {
    2 * max_in_flight
}

/// The slots of the budget beyond one webhook's own window, shared by the busy ones.
pub struct SpareSlots {
    /// The whole budget a single busy webhook may fill.
    budget: usize,
    /// A webhook's own window, which it never borrows.
    own: usize,
    /// The slots not lent out.
    free: Arc<Semaphore>,
    /// Actors of webhooks that may borrow and hold claims: the budget is split among them.
    busy: AtomicUsize,
}

impl SpareSlots {
    /// The pool for webhooks allowed `max_in_flight` attempts at once.
    pub fn new(max_in_flight: usize) -> Arc<Self> {
        Self::with_budget(max_in_flight, BUDGET_PER_IN_FLIGHT * max_in_flight)
    }

    /// A pool whose busy webhooks together may hold `budget` claims (at least their own
    /// windows: a budget below one window lends nothing).
    pub fn with_budget(max_in_flight: usize, budget: usize) -> Arc<Self> {
        let own = own_window(max_in_flight);
        Arc::new(Self {
            budget,
            own,
            free: Arc::new(Semaphore::new(budget.saturating_sub(own))),
            busy: AtomicUsize::new(0),
        })
    }

    /// Slots lent out now.
    pub fn lent(&self) -> usize {
        self.budget.saturating_sub(self.own) - self.free.available_permits()
    }

    /// What one busy webhook may hold beyond its own window: its equal part of the budget.
    fn share(&self) -> usize {
        let busy = self.busy.load(Ordering::Relaxed).max(1);
        (self.budget / busy).saturating_sub(self.own)
    }
}

/// One actor's slots beyond its own window.
pub struct Loan {
    pool: Arc<SpareSlots>,
    /// The slots held; `None` while none are.
    slots: Option<OwnedSemaphorePermit>,
    /// Whether this actor counts among the pool's busy ones.
    busy: bool,
}

impl Loan {
    pub fn new(pool: Arc<SpareSlots>) -> Self {
        Self {
            pool,
            slots: None,
            busy: false,
        }
    }

    /// Slots lent to this actor.
    pub fn slots(&self) -> usize {
        self.slots
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Sizes the loan of an actor that holds claims or not (`busy`): while its webhook has
    /// more due than room (`wanted`), up to its equal share of the pool, as far as slots
    /// are free; otherwise none. Slots its claims still occupy (`in_use`) are kept until
    /// their outcomes are written.
    pub fn fit(&mut self, busy: bool, wanted: bool, in_use: usize) {
        let busy = busy || wanted;
        if busy != self.busy {
            self.busy = busy;
            if busy {
                self.pool.busy.fetch_add(1, Ordering::Relaxed);
            } else {
                self.pool.busy.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let share = if wanted { self.pool.share() } else { 0 };
        let held = self.slots();
        let keep = share.max(in_use.min(held));
        if held > keep {
            if let Some(slots) = &mut self.slots {
                drop(slots.split(held - keep));
            }
        } else if held < share {
            let free = self.pool.free.available_permits().min(share - held);
            let Ok(more) = self.pool.free.clone().try_acquire_many_owned(free as u32) else {
                return; // another actor took them first: the next fit tries again
            };
            match &mut self.slots {
                Some(slots) => slots.merge(more),
                None => self.slots = Some(more),
            }
        }
        if self.slots() == 0 {
            self.slots = None;
        }
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        if self.busy {
            self.pool.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Loan, SpareSlots};

    #[test]
    fn one_busy_webhook_borrows_the_whole_pool_and_returns_it_when_its_backlog_ends() {
        let pool = SpareSlots::new(16);
        let mut loan = Loan::new(pool.clone());
        loan.fit(true, true, 0);
        assert_eq!(loan.slots(), 96, "8 × 16 budget, less its own 32");
        loan.fit(true, false, 40);
        assert_eq!(loan.slots(), 40, "slots its claims occupy are kept");
        loan.fit(true, false, 0);
        assert_eq!(loan.slots(), 0);
        assert_eq!(pool.lent(), 0);
    }

    #[test]
    fn busy_webhooks_split_the_budget_and_from_four_on_keep_only_their_own() {
        let pool = SpareSlots::new(16);
        let (mut a, mut b) = (Loan::new(pool.clone()), Loan::new(pool.clone()));
        a.fit(true, true, 0);
        b.fit(true, true, 0);
        assert_eq!(
            (a.slots(), b.slots()),
            (96, 0),
            "a came first and took the pool"
        );
        a.fit(true, true, 96);
        assert_eq!(a.slots(), 96, "what a's claims occupy stays lent");
        a.fit(true, true, 10);
        assert_eq!(a.slots(), 32, "then a shrinks to its share");
        b.fit(true, true, 0);
        assert_eq!(b.slots(), 32, "half the budget (64) less its own window");
        let (mut c, mut d) = (Loan::new(pool.clone()), Loan::new(pool.clone()));
        c.fit(true, true, 0);
        d.fit(true, true, 0);
        for loan in [&mut a, &mut b, &mut c, &mut d] {
            loan.fit(true, true, 0);
        }
        assert_eq!(
            pool.lent(),
            0,
            "four busy: a quarter of 128 is each one's own window"
        );
    }

    #[test]
    fn a_webhook_holding_claims_without_a_backlog_still_takes_its_part_of_the_budget() {
        let pool = SpareSlots::new(16);
        let (mut a, mut b) = (Loan::new(pool.clone()), Loan::new(pool.clone()));
        b.fit(true, false, 0);
        a.fit(true, true, 0);
        assert_eq!(a.slots(), 32, "b is busy too: a gets half the budget");
        assert_eq!(b.slots(), 0, "b borrows nothing while it has room");
        b.fit(false, false, 0);
        a.fit(true, true, 0);
        assert_eq!(a.slots(), 96, "b went idle: a has the budget to itself");
    }

    #[test]
    fn a_loan_dropped_with_its_actor_returns_its_slots_and_its_share() {
        let pool = SpareSlots::new(16);
        let mut a = Loan::new(pool.clone());
        a.fit(true, true, 0);
        let mut b = Loan::new(pool.clone());
        b.fit(true, true, 0);
        assert_eq!(b.slots(), 0, "a holds the whole pool");
        drop(a);
        b.fit(true, true, 0);
        assert_eq!(b.slots(), 96, "alone again, b takes it all");
    }

    #[test]
    fn a_budget_no_larger_than_a_window_lends_nothing() {
        let pool = SpareSlots::with_budget(16, 32);
        let mut loan = Loan::new(pool);
        loan.fit(true, true, 0);
        assert_eq!(loan.slots(), 0);
    }
}
