//! A thread team for short parallel loops: the calling thread leads, helpers spin while a run
//! is in progress, so that splitting a step of a few tens of microseconds costs well under a
//! microsecond instead of a futex wake-up per step.
//!
//! [`Team::install`] makes a team current on the calling thread for the duration of a closure
//! (a model run); inside it, [`for_each`] hands items `0..n` out through one atomic word that
//! every thread claims from, the caller included: the caller from the front, helpers from the
//! back, so that each thread runs the same end of every loop and a step finds most of its
//! input where the previous step wrote it, in its own core's cache (two threads on
//! MobileNetV2: 0.72–0.94 of the time with every thread claiming from the front). Helpers
//! never wait for one another and the caller never waits for a helper that has not started
//! an item, so a helper the OS has descheduled costs nothing but its share. Outside a team,
//! [`for_each`] falls back to the current rayon pool (the harness and the benchmarks size
//! theirs with `rayon::ThreadPool::install`). Nested calls (an item that splits again) run
//! inline.
//!
//! Between runs the helpers spin for [`IDLE_SPIN`] and then sleep on a condition variable, so an
//! idle session costs no CPU.

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// How long a helper keeps spinning after a run ends before it sleeps (back-to-back runs, as
/// in a camera loop or a benchmark, find it awake).
pub const IDLE_SPIN: Duration = Duration::from_micros(200);

/// Bits of the claim word: `epoch | back | front`, so that a claim is one compare-and-swap that
/// fails when the loop it read has been replaced.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Most items one published loop holds; longer loops are grouped into ranges.
const MAX_ITEMS: usize = INDEX_MASK as usize;

/// One published loop, on the caller's stack while it runs.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    /// Items finished (run or panicked).
    done: AtomicUsize,
    /// The first panic of an item, re-raised on the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    fn run(&self, i: usize) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
            self.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(p);
        }
        self.done.fetch_add(1, Ordering::Release);
    }
}

/// State shared by a team's threads.
struct Shared {
    /// Threads in the team, the leader included.
    threads: usize,
    /// `epoch << 40 | back << 20 | front`: the loop in progress and its unclaimed items
    /// `front..back`.
    claim: AtomicU64,
    /// The published loop (valid while `front < back` in the current epoch).
    job: AtomicPtr<Job<'static>>,
    /// A run is in progress: helpers spin rather than sleep.
    active: AtomicBool,
    shutdown: AtomicBool,
    sleep: Mutex<()>,
    wake: Condvar,
}

impl Shared {
    /// Claims an item of the current loop, if it has one left: the leader takes the lowest
    /// unclaimed item, helpers the highest, so that the leader runs a prefix of every loop and
    /// the helpers its suffix (the same part of consecutive steps' outputs stays in one core's
    /// caches). Returns the item and the job.
    fn claim(&self, leader: bool) -> Option<(usize, *const Job<'static>)> {
        let mut word = self.claim.load(Ordering::Acquire);
        loop {
            let (back, front) = ((word >> INDEX_BITS) & INDEX_MASK, word & INDEX_MASK);
            if front >= back {
                return None;
            }
            // Read before the claim: while an item of this epoch is unclaimed, the loop
            // cannot finish, so the caller has neither returned nor published another job.
            let job = self.job.load(Ordering::Acquire);
            let (next, item) = match leader {
                true => (word + 1, front),
                false => (word - (1 << INDEX_BITS), back - 1),
            };
            match self.claim.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some((item as usize, job)),
                Err(now) => word = now,
            }
        }
    }

    /// Claims and runs items until the current loop has none left.
    fn work(&self, leader: bool) {
        while let Some((i, job)) = self.claim(leader) {
            // SAFETY: the claim succeeded on this epoch's word, so the job it published is
            // alive until its `done` count reaches `n`, which needs this item's increment.
            unsafe { (*job).run(i) };
        }
    }

    fn helper(&self) {
        MODE.with(|m| m.set(Mode::Busy));
        let mut idle_since: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            self.work(false);
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            if self.active.load(Ordering::Acquire) {
                idle_since = None;
            } else {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= IDLE_SPIN {
                    let guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
                    let _guard = self
                        .wake
                        .wait_while(guard, |_| {
                            !self.active.load(Ordering::Acquire) && !self.shutdown.load(Ordering::Acquire)
                        })
                        .unwrap_or_else(|e| e.into_inner());
                    idle_since = None;
                    continue;
                }
            }
            pause(&mut spins);
        }
    }
}

/// One round of a spin wait: a spin hint, and now and then a yield, so that an oversubscribed
/// machine (tests in parallel) still runs the threads that have work.
fn pause(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if spins.is_multiple_of(1 << 12) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// What [`for_each`] does on this thread.
#[derive(Clone, Copy)]
enum Mode {
    /// No team: the current rayon pool.
    Outside,
    /// Leading the team (inside [`Team::install`]).
    Leader(*const Shared),
    /// A helper, or the leader inside an item: run inline.
    Busy,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Outside) };
}

/// A fixed set of threads for short parallel loops (see the module documentation).
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

impl Team {
    /// A team of `threads` threads: the caller of [`Team::install`] and `threads - 1` helpers.
    pub fn new(threads: usize) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            threads: threads.max(1),
            claim: AtomicU64::new(0),
            job: AtomicPtr::new(ptr::null_mut()),
            active: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut team = Team { shared, helpers: Vec::new() };
        for i in 1..threads.max(1) {
            let s = Arc::clone(&team.shared);
            // On error, dropping `team` stops the helpers already started.
            let handle = std::thread::Builder::new().name(format!("edgepack-team-{i}")).spawn(move || s.helper())?;
            team.helpers.push(handle);
        }
        Ok(team)
    }

    /// Threads in the team, the leader included.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Runs `f` on the calling thread with this team current: [`for_each`] inside it splits
    /// across the team's threads, which spin until `f` returns.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        {
            let _guard = self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.active.store(true, Ordering::Release);
        }
        self.shared.wake.notify_all();
        let previous = MODE.with(|m| m.replace(Mode::Leader(Arc::as_ptr(&self.shared))));
        /// Restores the thread's mode and lets the helpers sleep, on return or unwind.
        struct Restore<'a>(&'a Shared, Mode);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                MODE.with(|m| m.set(self.1));
                self.0.active.store(false, Ordering::Release);
            }
        }
        let _restore = Restore(&self.shared, previous);
        f()
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        {
            let _guard = self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.shutdown.store(true, Ordering::Release);
        }
        self.shared.wake.notify_all();
        for h in self.helpers.drain(..) {
            // A helper catches its items' panics, so joining cannot fail; there is nothing
            // to do if it did.
            let _ = h.join();
        }
    }
}

/// Threads a [`for_each`] on this thread would use: the current team's, 1 inside an item, or
/// the current rayon pool's outside a team.
pub fn current_threads() -> usize {
    match MODE.with(|m| m.get()) {
        Mode::Outside => rayon::current_num_threads(),
        // SAFETY: the leader mode is set only inside `Team::install`, which borrows the team
        // (and so its shared state) for as long as the mode is set.
        Mode::Leader(shared) => unsafe { (*shared).threads },
        Mode::Busy => 1,
    }
}

/// Runs `f(i)` for every `i` in `0..n`, split across the current team (see the module
/// documentation); sequentially inside an item of a split loop (a loop of one item runs on
/// the calling thread and leaves the team to it). Returns when every item has run; a panic in
/// an item is re-raised here after the others finish.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync + Send) {
    if n == 0 {
        return;
    }
    match MODE.with(|m| m.get()) {
        Mode::Outside if n > 1 => (0..n).into_par_iter().for_each(f),
        Mode::Leader(shared) if n > 1 => {
            // SAFETY: see `current_threads`: the team outlives its leader mode.
            let shared = unsafe { &*shared };
            if n > MAX_ITEMS {
                let per = n.div_ceil(MAX_ITEMS);
                lead(shared, n.div_ceil(per), &|g| (g * per..((g + 1) * per).min(n)).for_each(&f));
            } else {
                lead(shared, n, &f);
            }
        }
        _ => (0..n).for_each(f),
    }
}

/// Publishes a loop of `n ≤ MAX_ITEMS` items, works on it, and waits until every item ran.
fn lead(shared: &Shared, n: usize, f: &(dyn Fn(usize) + Sync)) {
    let job = Job { f, done: AtomicUsize::new(0), panic: Mutex::new(None) };
    // SAFETY (lifetime erasure): helpers dereference the job only after claiming one of its
    // items, and this function does not return before all `n` items are done.
    let ptr = (&job as *const Job<'_>).cast::<Job<'static>>().cast_mut();
    shared.job.store(ptr, Ordering::Release);
    let epoch = (shared.claim.load(Ordering::Relaxed) >> (2 * INDEX_BITS)).wrapping_add(1);
    shared.claim.store(epoch << (2 * INDEX_BITS) | (n as u64) << INDEX_BITS, Ordering::Release);
    MODE.with(|m| m.set(Mode::Busy));
    shared.work(true);
    MODE.with(|m| m.set(Mode::Leader(shared)));
    let mut spins = 0u32;
    while job.done.load(Ordering::Acquire) < n {
        pause(&mut spins);
    }
    if let Some(p) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        resume_unwind(p);
    }
}

/// Runs `f(i, chunk)` over the consecutive `chunk`-long pieces of `out` (the last may be
/// shorter), split across threads when `parallel` (see [`for_each`]); consecutive pieces are
/// grouped so that each thread gets a few contiguous runs.
pub fn chunks_mut(out: &mut [f32], chunk: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let chunk = chunk.max(1);
    let pieces = out.len().div_ceil(chunk);
    if !parallel || pieces <= 1 || current_threads() == 1 {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let (base, len) = (SharedMut(out.as_mut_ptr()), out.len());
    for_ranges(pieces, 8, true, |range| {
        for i in range {
            let start = i * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: pieces `[start, end)` lie inside `out`, which this call borrows
            // exclusively, and each index `i` is visited by one item only.
            let piece = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
            f(i, piece);
        }
    });
}

/// Runs `f` over consecutive ranges covering `0..n`: one range on this thread unless
/// `parallel`, else at most `per_thread` ranges per thread of the current team, split with
/// [`for_each`].
pub(crate) fn for_ranges(n: usize, per_thread: usize, parallel: bool, f: impl Fn(Range<usize>) + Sync + Send) {
    let items = if parallel { n.min(per_thread * current_threads()).max(1) } else { 1 };
    let per = n.div_ceil(items).max(1);
    for_each(n.div_ceil(per), |g| f(g * per..((g + 1) * per).min(n)));
}

/// A raw pointer that work items share; each writes a disjoint range through it (the GEMM
/// driver's tiles, [`chunks_mut`]'s pieces).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);

impl SharedMut {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: every user writes disjoint ranges through it from its items, so sharing is race-free.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_item_runs_once_in_and_out_of_a_team() {
        let team = Team::new(3).unwrap();
        assert_eq!(team.threads(), 3);
        for n in [0, 1, 2, 3, 7, 64, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            team.install(|| {
                assert_eq!(current_threads(), 3);
                for_each(n, |i| {
                    // A one-item loop leaves the team to the item.
                    assert_eq!(current_threads(), if n > 1 { 1 } else { 3 }, "nested loops run inline");
                    hits[i].fetch_add(1, Ordering::Relaxed);
                })
            });
            for_each(n, |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 2), "n = {n}");
        }
    }

    #[test]
    fn the_leader_runs_a_prefix_and_the_helpers_a_suffix() {
        let team = Team::new(2).unwrap();
        let leader = std::thread::current().id();
        for n in [2, 3, 16, 257] {
            let by_leader: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
            team.install(|| {
                for_each(n, |i| {
                    if std::thread::current().id() == leader {
                        by_leader[i].store(true, Ordering::Relaxed);
                    }
                    // Long enough items that the helper takes some.
                    std::thread::sleep(Duration::from_micros(50));
                })
            });
            let flags: Vec<bool> = by_leader.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let split = flags.iter().take_while(|&&b| b).count();
            assert!(split >= 1, "n = {n}: the leader ran no item ({flags:?})");
            assert!(flags[split..].iter().all(|&b| !b), "n = {n}: the leader's items are not a prefix: {flags:?}");
        }
    }

    #[test]
    fn many_short_loops_back_to_back() {
        let team = Team::new(2).unwrap();
        let total = AtomicUsize::new(0);
        team.install(|| {
            for round in 0..20_000 {
                for_each(1 + round % 5, |i| {
                    total.fetch_add(i + 1, Ordering::Relaxed);
                });
            }
        });
        let expect: usize = (0..20_000).map(|r| (1..=1 + r % 5).sum::<usize>()).sum();
        assert_eq!(total.load(Ordering::Relaxed), expect);
    }

    #[test]
    fn loops_longer_than_the_claim_word_are_grouped() {
        let team = Team::new(2).unwrap();
        let n = MAX_ITEMS * 2 + 3;
        let sum = AtomicUsize::new(0);
        team.install(|| for_each(n, |i| _ = sum.fetch_add(i, Ordering::Relaxed)));
        assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
    }

    #[test]
    fn a_panicking_item_reaches_the_caller_after_the_others() {
        let team = Team::new(2).unwrap();
        let ran = AtomicUsize::new(0);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            team.install(|| {
                for_each(100, |i| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    assert!(i != 37, "item 37 fails");
                })
            })
        }));
        assert!(caught.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 100);
        // The team still works afterwards.
        let again = AtomicUsize::new(0);
        team.install(|| for_each(10, |_| _ = again.fetch_add(1, Ordering::Relaxed)));
        assert_eq!(again.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn chunks_cover_the_slice_once() {
        let team = Team::new(2).unwrap();
        for (len, chunk) in [(0, 4), (1, 4), (10, 3), (1000, 7), (4096, 4096)] {
            let mut v = vec![f32::NAN; len];
            team.install(|| {
                chunks_mut(&mut v, chunk, true, |i, c| {
                    for (j, x) in c.iter_mut().enumerate() {
                        *x = (i * chunk + j) as f32;
                    }
                })
            });
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32), "len {len} chunk {chunk}");
        }
    }
}
