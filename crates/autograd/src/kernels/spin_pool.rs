//! Helper threads for the f32 matrix kernel that wait for the next product by spinning
//! for a short while before they sleep.
//!
//! A product shared by two threads is worth it only if the second thread starts within a
//! few microseconds: resmlp-M's products take about 80 µs on one core. Rayon's pool (which
//! this kernel used before) puts its threads to sleep between products, and the caller
//! of a Rayon task from outside the pool sleeps too until the task is done; on the
//! virtual machine this project is measured on, waking a sleeping CPU took 20–80 µs,
//! so an M-sized product on two threads took as long as on one or longer
//! (docs/performance.md). Here the calling thread computes chunks itself, and
//! `threads − 1` helper threads, started on first use, claim the remaining chunks; after
//! each product a helper keeps watching for the next one for [`SPIN`], then parks until
//! a product wakes it.
//!
//! The protocol, for one product (callers take turns through a lock; a caller that finds
//! the pool busy — a product started from another thread meanwhile — computes alone):
//! 1. the caller writes the job (the chunk function and count) and opens it by making
//!    `epoch` odd;
//! 2. a helper that sees an odd epoch `e` enters (`inside += 1`), checks that the epoch
//!    is still `e`, and only then reads the job and claims chunks (`next`), one at a time;
//!    it leaves with `inside −= 1`;
//! 3. the caller claims chunks too; when none is left it closes the job (`epoch` even)
//!    and waits until `inside` is 0.
//!
//! All three counters use sequentially consistent operations: a helper's `inside += 1`
//! then its read of `epoch`, against the caller's close then its read of `inside`,
//! guarantee that either the caller waits for the helper or the helper sees the job
//! closed and never reads it. So no helper touches a job after its caller returned, and
//! the job is written only while no helper is inside.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper watches for the next product before it parks: longer than the gaps
/// between the products of a training step, short enough that an idle program soon
/// gives the core back.
const SPIN: Duration = Duration::from_micros(500);

/// Spinning waits yield the core once per this many pauses (a few microseconds).
const YIELD_EVERY: u32 = 64;

/// The chunk function of the open product, its lifetime erased (see [`run_chunks`]).
#[derive(Clone, Copy)]
struct Job {
    run: *const (dyn Fn(usize) + Sync + 'static),
    count: usize,
    /// Helpers `0..helpers` may take part.
    helpers: usize,
}

/// What the callers and the helpers share.
struct Shared {
    /// Odd while a job is open; advanced by 1 when a job opens and when it closes.
    epoch: AtomicUsize,
    /// The next chunk to claim.
    next: AtomicUsize,
    /// Helpers between `inside += 1` and `inside −= 1` (see the module's protocol).
    inside: AtomicUsize,
    /// Whether a helper's chunk panicked in the open job.
    panicked: AtomicBool,
    /// Written by the caller holding `callers` while the epoch is even and no helper is
    /// inside; read by helpers inside an open epoch.
    job: UnsafeCell<Job>,
    /// The helpers started so far; held by the caller of the open job.
    callers: Mutex<Vec<Arc<Helper>>>,
}

// SAFETY: `job` is the only field that is not `Sync` by itself; the module's protocol
// keeps its writes (by the one caller holding `callers`, while no helper is inside) and
// its reads (by helpers inside an open epoch) apart. The function it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as for `Sync`: the job's pointer is only dereferenced under the protocol, on
// whichever thread; nothing in `Shared` belongs to one thread.
unsafe impl Send for Shared {}

/// One helper thread, as the callers see it.
struct Helper {
    thread: Thread,
    /// Set by the helper before it parks; a caller that clears it unparks the helper.
    sleeping: AtomicBool,
}

/// Does nothing: the job before the first product.
fn no_chunk(_: usize) {}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared {
        epoch: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        inside: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        job: UnsafeCell::new(Job {
            run: &no_chunk,
            count: 0,
            helpers: 0,
        }),
        callers: Mutex::new(Vec::new()),
    })
}

/// Runs `run(i)` for every chunk `i < count`, on the calling thread and at most
/// `threads − 1` helper threads, which claim chunks one at a time (a helper that starts
/// late leaves its share to the others). Returns when every chunk is done.
///
/// # Panics
/// When a chunk panics (on a helper: with a message saying so).
pub(crate) fn run_chunks(threads: usize, count: usize, run: &(dyn Fn(usize) + Sync)) {
    let shared = shared();
    // No more threads than chunks, nor than the machine runs at once (a thread count set
    // far above it must not start thousands of spinning helpers).
    let threads = threads.min(count).min(machine_threads());
    if threads <= 1 || count <= 1 {
        (0..count).for_each(run);
        return;
    }
    // Another thread's product is open (or a chunk runs a product): compute alone.
    let mut helpers = match shared.callers.try_lock() {
        Ok(helpers) => helpers,
        // A chunk that panicked on the caller's thread: the job was closed all the same.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            (0..count).for_each(run);
            return;
        }
    };
    while helpers.len() < threads - 1 {
        match spawn_helper(helpers.len(), shared) {
            Some(helper) => helpers.push(helper),
            None => break, // no more threads to be had: fewer helpers
        }
    }
    let wanted = (threads - 1).min(helpers.len());
    // SAFETY: the lifetime erased here is not outlived: the job is closed, and no helper
    // is inside it, before this function returns or unwinds (`Close`).
    let run_static = unsafe {
        std::mem::transmute::<
            *const (dyn Fn(usize) + Sync + '_),
            *const (dyn Fn(usize) + Sync + 'static),
        >(run)
    };
    // SAFETY: the epoch is even (every job is closed before its caller unlocks
    // `callers`, which this thread holds) and no helper is inside (the previous caller
    // waited for that), so no helper reads the job meanwhile.
    unsafe {
        *shared.job.get() = Job {
            run: run_static,
            count,
            helpers: wanted,
        }
    };
    shared.next.store(0, SeqCst);
    shared.panicked.store(false, SeqCst);
    shared.epoch.fetch_add(1, SeqCst); // open
    let close = Close(shared);
    for helper in &helpers[..wanted] {
        if helper.sleeping.swap(false, SeqCst) {
            helper.thread.unpark();
        }
    }
    claim_all(shared, count, run);
    drop(close);
    drop(helpers);
    assert!(
        !shared.panicked.load(SeqCst),
        "a helper thread of the matrix kernel panicked while computing a product"
    );
}

/// How many threads the machine runs at once (asked once).
fn machine_threads() -> usize {
    static AVAILABLE: OnceLock<usize> = OnceLock::new();
    *AVAILABLE.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Closes the open job and waits until no helper is inside it, also when the caller's
/// own chunk panics (the job borrows the caller's stack).
struct Close(&'static Shared);

impl Drop for Close {
    fn drop(&mut self) {
        self.0.epoch.fetch_add(1, SeqCst);
        let mut spins = 0u32;
        while self.0.inside.load(SeqCst) != 0 {
            pause(&mut spins);
        }
    }
}

/// Claims and runs chunks until none is left.
fn claim_all(shared: &Shared, count: usize, run: &(dyn Fn(usize) + Sync)) {
    loop {
        let i = shared.next.fetch_add(1, SeqCst);
        if i >= count {
            break;
        }
        run(i);
    }
}

/// Starts helper `index`; `None` if the system refuses a thread.
fn spawn_helper(index: usize, shared: &'static Shared) -> Option<Arc<Helper>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("wengert-sgemm-{index}"))
        .spawn(move || {
            let me = Arc::new(Helper {
                thread: std::thread::current(),
                sleeping: AtomicBool::new(false),
            });
            if tx.send(Arc::clone(&me)).is_ok() {
                helper_loop(index, shared, &me);
            }
        })
        .ok()?;
    rx.recv().ok()
}

/// A helper's life: wait for an open job, take part in it, repeat.
fn helper_loop(index: usize, shared: &'static Shared, me: &Helper) {
    let mut seen = shared.epoch.load(SeqCst);
    loop {
        seen = wait_for_change(shared, seen, me);
        if seen.is_multiple_of(2) {
            continue; // a job opened and closed while this helper was away
        }
        shared.inside.fetch_add(1, SeqCst);
        if shared.epoch.load(SeqCst) == seen {
            // SAFETY: inside an open epoch the job is not written (module protocol), and
            // its function outlives the epoch (`run_chunks` closes it before returning).
            let job = unsafe { *shared.job.get() };
            if index < job.helpers {
                // SAFETY: as above: the caller keeps the function alive until this
                // helper leaves (`inside −= 1` below).
                let run = unsafe { &*job.run };
                if catch_unwind(AssertUnwindSafe(|| claim_all(shared, job.count, run))).is_err() {
                    shared.panicked.store(true, SeqCst);
                }
            }
        }
        shared.inside.fetch_sub(1, SeqCst);
    }
}

/// One pause of a spinning wait: a CPU hint, and every [`YIELD_EVERY`] pauses a yield
/// to any other thread waiting for this core (on a loaded machine the thread waited for
/// may be that one). Returns whether it yielded.
fn pause(spins: &mut u32) -> bool {
    *spins = spins.wrapping_add(1);
    if (*spins).is_multiple_of(YIELD_EVERY) {
        std::thread::yield_now();
        true
    } else {
        std::hint::spin_loop();
        false
    }
}

/// Waits until the epoch differs from `seen` and returns it: spinning for [`SPIN`], then
/// parked until a caller unparks this helper.
fn wait_for_change(shared: &Shared, seen: usize, me: &Helper) -> usize {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let now = shared.epoch.load(SeqCst);
        if now != seen {
            return now;
        }
        if pause(&mut spins) && start.elapsed() >= SPIN {
            break;
        }
    }
    loop {
        me.sleeping.store(true, SeqCst);
        let now = shared.epoch.load(SeqCst);
        if now != seen {
            me.sleeping.store(false, SeqCst);
            return now;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU8;

    #[test]
    fn every_chunk_runs_exactly_once_on_any_thread_count() {
        for threads in [1, 2, 3, 1000] {
            for count in [0, 1, 2, 7, 100] {
                for pause in [None, Some(Duration::from_millis(2))] {
                    if let Some(pause) = pause {
                        std::thread::sleep(pause); // helpers parked before the product
                    }
                    let runs: Vec<AtomicU8> = (0..count).map(|_| AtomicU8::new(0)).collect();
                    run_chunks(threads, count, &|i| {
                        runs[i].fetch_add(1, SeqCst);
                    });
                    assert!(
                        runs.iter().all(|r| r.load(SeqCst) == 1),
                        "{threads} threads, {count} chunks"
                    );
                }
            }
        }
    }

    #[test]
    fn products_from_several_threads_at_once_each_complete() {
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for round in 0..200 {
                        let count = 1 + (t + round) % 9;
                        let sum = AtomicUsize::new(0);
                        run_chunks(2, count, &|i| {
                            sum.fetch_add(i + 1, SeqCst);
                        });
                        assert_eq!(sum.load(SeqCst), count * (count + 1) / 2);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_chunk_panics_the_caller_and_leaves_the_pool_usable() {
        let result = std::panic::catch_unwind(|| {
            run_chunks(2, 64, &|i| {
                if i % 2 == 1 {
                    std::thread::sleep(Duration::from_micros(50));
                    panic!("chunk {i}");
                }
            })
        });
        assert!(result.is_err());
        let sum = AtomicUsize::new(0);
        run_chunks(2, 10, &|i| {
            sum.fetch_add(i, SeqCst);
        });
        assert_eq!(sum.load(SeqCst), 45);
    }
}
