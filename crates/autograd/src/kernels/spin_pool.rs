//! Persistent worker threads that split one job into chunks with the calling thread.
//!
//! A training step runs dozens of matrix products of 50–500 µs each, one after the other.
//! Waking a sleeping pool thread for each costs about as much as sharing the product
//! saves, so the workers here stay awake between the products of a step: after a job
//! they watch for the next one, spinning for [`SPIN`], then yielding their core to other
//! threads between looks for [`YIELD`], and only then sleep until a job wakes them.
//!
//! A job is a number of chunks and a function of the chunk index. The caller and the
//! workers claim chunks one at a time from a shared counter, so a worker that is not
//! running (its core busy with another program) costs the caller nothing but the chunks
//! it had already claimed; the caller never waits for a worker to start. One job runs at
//! a time: a caller that finds the pool busy (another thread's job) runs its own job
//! alone.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle worker spins (watching for a job without giving up its core).
const SPIN: Duration = Duration::from_micros(200);
/// How long an idle worker then keeps looking, yielding its core between looks.
const YIELD: Duration = Duration::from_millis(3);

/// A job: `count` chunks, `run(i)` for each. Lives on the caller's stack while it runs.
struct Job<'a> {
    run: &'a (dyn Fn(usize) + Sync),
}

/// The shared state of the pool.
struct Pool {
    /// Set while a caller's job runs.
    busy: AtomicBool,
    /// The current job (valid while some of its chunks are unclaimed or running).
    job: AtomicPtr<Job<'static>>,
    /// `count << 32 | next`: the current job's chunk count and the next unclaimed chunk.
    /// One word, so that a claim sees the count of the job it claims from.
    claim: AtomicU64,
    /// Chunks of the current job finished.
    done: AtomicUsize,
    /// Workers allowed to take part in the current job (the first `helpers` of them).
    helpers: AtomicUsize,
    /// Set when a chunk panicked in a worker (the caller panics in turn).
    panicked: AtomicBool,
    /// The worker threads (index = worker id), each with its sleeping flag.
    workers: Mutex<Vec<(Thread, &'static AtomicBool)>>,
    /// How many workers exist (read without the lock).
    spawned: AtomicUsize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        busy: AtomicBool::new(false),
        job: AtomicPtr::new(std::ptr::null_mut()),
        claim: AtomicU64::new(0),
        done: AtomicUsize::new(0),
        helpers: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        workers: Mutex::new(Vec::new()),
        spawned: AtomicUsize::new(0),
    })
}

/// Runs `run(i)` for every `i < count`, on the calling thread and up to `threads − 1`
/// workers; returns when all have finished.
///
/// # Panics
/// If a chunk panics (on a worker, the panic is reported here).
pub(crate) fn run(threads: usize, count: usize, run: &(dyn Fn(usize) + Sync)) {
    let pool = pool();
    if threads <= 1
        || count <= 1
        || u32::try_from(count).is_err()
        || pool
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        (0..count).for_each(run);
        return;
    }
    let helpers = ensure_workers(pool, threads - 1);
    if helpers == 0 {
        pool.busy.store(false, Ordering::Release);
        (0..count).for_each(run);
        return;
    }
    let job = Job { run };
    // The job is published through a `'static` pointer; it is only dereferenced while
    // one of its chunks is claimed and unfinished, and this function does not return
    // before all its chunks are finished (below), so the pointer never outlives `job`.
    pool.job.store(
        (&job as *const Job<'_>).cast_mut().cast::<Job<'static>>(),
        Ordering::Relaxed,
    );
    pool.done.store(0, Ordering::Relaxed);
    pool.helpers.store(helpers, Ordering::Relaxed);
    pool.claim.store((count as u64) << 32, Ordering::SeqCst);
    wake(pool, helpers);
    // A chunk that panics here must not end this function before the workers are done
    // with the job: count it, wait, then resume the panic.
    let own = catch_unwind(AssertUnwindSafe(|| claim_and_run(pool)));
    if own.is_err() {
        pool.done.fetch_add(1, Ordering::Release);
        // The chunks nobody claimed yet are dropped (counted, not run): a sleeping
        // worker would otherwise leave them, and this wait, forever.
        while (pool.claim.fetch_add(1, Ordering::AcqRel) & 0xffff_ffff) < count as u64 {
            pool.done.fetch_add(1, Ordering::Release);
        }
    }
    // Wait for the chunks the workers claimed: spin briefly, then yield (the worker may
    // be waiting for this very core).
    let start = Instant::now();
    while pool.done.load(Ordering::Acquire) < count {
        if start.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let panicked = pool.panicked.swap(false, Ordering::Relaxed);
    pool.busy.store(false, Ordering::Release);
    if let Err(payload) = own {
        std::panic::resume_unwind(payload);
    }
    if panicked {
        panic!("a matrix-product chunk panicked on a worker thread");
    }
}

/// Claims chunks of the current job until none is left, running each; true if it ran
/// any.
fn claim_and_run(pool: &Pool) -> bool {
    let mut ran = false;
    loop {
        let old = pool.claim.fetch_add(1, Ordering::AcqRel);
        let (count, next) = ((old >> 32) as usize, (old & 0xffff_ffff) as usize);
        if next >= count {
            return ran;
        }
        // SAFETY: chunk `next < count` of the job published with this claim word is now
        // ours and unfinished, so its caller is still waiting in `run` and the job (on
        // its stack) is alive; the pointer was stored before the claim word (release
        // store, acquired by this fetch_add).
        let job = unsafe { &*pool.job.load(Ordering::Relaxed) };
        (job.run)(next);
        pool.done.fetch_add(1, Ordering::Release);
        ran = true;
    }
}

/// Makes sure `wanted` workers exist (spawning what is missing); returns how many do.
fn ensure_workers(pool: &'static Pool, wanted: usize) -> usize {
    if pool.spawned.load(Ordering::Acquire) >= wanted {
        return wanted;
    }
    let Ok(mut workers) = pool.workers.lock() else {
        return 0;
    };
    while workers.len() < wanted {
        let id = workers.len();
        let sleeping: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let spawned = std::thread::Builder::new()
            .name(format!("wengert-gemm-{id}"))
            .spawn(move || worker(pool, id, sleeping));
        match spawned {
            Ok(handle) => workers.push((handle.thread().clone(), sleeping)),
            Err(_) => break,
        }
    }
    pool.spawned.store(workers.len(), Ordering::Release);
    workers.len().min(wanted)
}

/// Wakes the first `helpers` workers if they sleep.
fn wake(pool: &Pool, helpers: usize) {
    // Paired with the worker's SeqCst store of its flag and load of the claim word:
    // either the worker sees the new job before sleeping, or this sees it asleep.
    std::sync::atomic::fence(Ordering::SeqCst);
    if let Ok(workers) = pool.workers.try_lock() {
        for (thread, sleeping) in workers.iter().take(helpers) {
            if sleeping.load(Ordering::SeqCst) {
                thread.unpark();
            }
        }
    } else {
        // Spawning in progress elsewhere: unpark through the lock.
        if let Ok(workers) = pool.workers.lock() {
            for (thread, _) in workers.iter().take(helpers) {
                thread.unpark();
            }
        }
    }
}

/// Whether the current job has unclaimed chunks for worker `id`.
fn has_work(pool: &Pool, id: usize) -> bool {
    let word = pool.claim.load(Ordering::SeqCst);
    (word & 0xffff_ffff) < (word >> 32) && id < pool.helpers.load(Ordering::Relaxed)
}

/// A worker's life: take part in jobs; between jobs spin, then yield, then sleep.
fn worker(pool: &'static Pool, id: usize, sleeping: &'static AtomicBool) {
    let mut idle_since = Instant::now();
    loop {
        if has_work(pool, id) {
            let ran = catch_unwind(AssertUnwindSafe(|| claim_and_run(pool)));
            if ran.is_err() {
                // The chunk that panicked was claimed but never counted: count it, so
                // that the caller stops waiting, and tell it.
                pool.panicked.store(true, Ordering::Relaxed);
                pool.done.fetch_add(1, Ordering::Release);
            }
            idle_since = Instant::now();
            continue;
        }
        let idle = idle_since.elapsed();
        if idle < SPIN {
            std::hint::spin_loop();
        } else if idle < SPIN + YIELD {
            std::thread::yield_now();
        } else {
            sleeping.store(true, Ordering::SeqCst);
            if !has_work(pool, id) {
                std::thread::park();
            }
            sleeping.store(false, Ordering::SeqCst);
            idle_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Every chunk runs exactly once, whoever claims it.
    fn counts(threads: usize, count: usize) -> Vec<u32> {
        let hits: Vec<AtomicU32> = (0..count).map(|_| AtomicU32::new(0)).collect();
        run(threads, count, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        hits.into_iter().map(AtomicU32::into_inner).collect()
    }

    #[test]
    fn every_chunk_runs_once_on_any_number_of_threads() {
        for threads in [1, 2, 3] {
            for count in [0, 1, 2, 7, 64] {
                assert!(
                    counts(threads, count).iter().all(|&c| c == 1),
                    "{threads} {count}"
                );
            }
        }
    }

    /// The pool's precondition: a job (on its caller's stack) is only touched while it has
    /// a claimed, unfinished chunk. Many callers at once, each job checking its own stack
    /// data, and jobs back to back with workers that may still be finishing the last.
    #[test]
    fn precondition_jobs_from_many_threads_at_once_stay_on_their_own_data() {
        std::thread::scope(|s| {
            for t in 0..4u32 {
                s.spawn(move || {
                    for round in 0..200u32 {
                        let tag = t * 1000 + round;
                        let seen: Vec<AtomicU32> = (0..9).map(|_| AtomicU32::new(0)).collect();
                        run(2, 9, &|i| {
                            seen[i].store(tag, Ordering::Relaxed);
                        });
                        assert!(seen.iter().all(|x| x.load(Ordering::Relaxed) == tag));
                    }
                });
            }
        });
    }

    #[test]
    fn a_chunk_that_panics_on_the_caller_does_not_leave_the_job_to_the_workers() {
        // One thread asked: the caller runs every chunk, and the first panics; with two
        // threads the worker may be asleep. Either way `run` panics and returns.
        for threads in [1, 2] {
            let outcome = std::panic::catch_unwind(|| {
                run(threads, 8, &|i| {
                    if i == 0 {
                        panic!("chunk 0");
                    }
                })
            });
            assert!(outcome.is_err());
        }
        assert!(counts(2, 16).iter().all(|&c| c == 1));
    }

    #[test]
    fn a_chunk_that_panics_on_a_worker_panics_the_caller() {
        // Only chunk 5 panics; whoever runs it, the caller's `run` panics and the pool
        // stays usable.
        let outcome = std::panic::catch_unwind(|| {
            run(2, 64, &|i| {
                if i == 5 {
                    panic!("chunk 5");
                }
                std::thread::sleep(Duration::from_micros(50));
            })
        });
        assert!(outcome.is_err());
        assert!(counts(2, 16).iter().all(|&c| c == 1));
    }
}
