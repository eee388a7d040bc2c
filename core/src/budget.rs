//! A time budget for CPU work over a payload a stranger wrote: a source's filter and
//! templates. The work runs on one thread of the pipeline's pool; [`run`] sets the deadline
//! for that thread, and the loops that can grow with the payload (the template writer,
//! handlebars' `each`, the filter's variable look-ups) call [`exceeded`] and stop. A stopped
//! template falls back to the next one; a stopped filter lets the event through with a
//! warning, as any filter error does.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `work` with `limit` to spend on this thread; nested calls keep the outer deadline
/// when it is sooner.
pub fn run<T>(limit: Duration, work: impl FnOnce() -> T) -> T {
    let outer = DEADLINE.with(Cell::get);
    let mine = Instant::now() + limit;
    DEADLINE.with(|d| d.set(Some(outer.map_or(mine, |o| o.min(mine)))));
    // Restored on unwind too, so a panicking render cannot leave a stale deadline behind.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(outer);
    work()
}

/// Whether the current budget is spent (never, outside [`run`]).
pub fn exceeded() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|d| Instant::now() >= d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_inside_run_only_and_nests_to_the_sooner() {
        assert!(!exceeded());
        run(Duration::ZERO, || {
            assert!(exceeded());
            run(Duration::from_secs(60), || {
                assert!(exceeded(), "the outer deadline is sooner")
            });
        });
        assert!(!exceeded());
        run(Duration::from_secs(60), || assert!(!exceeded()));
    }
}
