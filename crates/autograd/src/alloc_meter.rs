//! Peak heap memory of a piece of code, measured by a counting global allocator.
//!
//! A program (an example, a bench, a test binary) installs [`CountingAllocator`] as its
//! global allocator:
//!
//! ```
//! use autograd::alloc_meter::{CountingAllocator, peak_bytes};
//!
//! #[global_allocator]
//! static ALLOCATOR: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     let (len, peak) = peak_bytes(|| vec![0u8; 1 << 20].len());
//!     assert_eq!(len, 1 << 20);
//!     assert!(peak.unwrap() >= 1 << 20); // the megabyte was live at the peak
//! }
//! ```
//!
//! [`peak_bytes`] then reports the most bytes live at once while a closure ran, above what
//! was live before it, and [`count_allocations`] how many allocations a closure made, how
//! many of them were at least a given size, and the largest. Where the allocator is not
//! installed, both return `None` (the tutorial's chapters then say that memory was not
//! measured).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Allocations made since the counters were last reset, of any size.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bytes asked for by those allocations.
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// The size from which an allocation is also counted in [`AT_LEAST`].
static THRESHOLD: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Allocations of at least [`THRESHOLD`] bytes.
static AT_LEAST: AtomicUsize = AtomicUsize::new(0);
/// The largest single allocation.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes live and their peak, and the allocations made
/// (a reallocation counts as one allocation of its new size).
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// atomics and never affect what is allocated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() >= THRESHOLD.load(Ordering::Relaxed) {
            AT_LEAST.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System.alloc` with this layout (above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Whether [`CountingAllocator`] is the global allocator of this program.
pub fn installed() -> bool {
    // Make sure at least one allocation has gone through whatever allocator is installed.
    drop(Box::new(0u8));
    INSTALLED.load(Ordering::Relaxed)
}

/// Runs `f` and returns its result with the peak number of bytes live during it, above
/// those live before it — or `None` when the counting allocator is not installed. Run one
/// measurement at a time (the counters are global). The tensor buffer cache
/// ([`crate::buffer_pool`]) is off while `f` runs, so every buffer `f` needs is counted.
pub fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, Option<usize>) {
    if !installed() {
        return (f(), None);
    }
    crate::buffer_pool::uncached(|| {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let r = f();
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        (r, Some(peak))
    })
}

/// What [`count_allocations`] saw: the allocations made while a closure ran, on every
/// thread of the program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocations {
    /// Allocations of any size.
    pub count: usize,
    /// Bytes asked for by them, in total.
    pub bytes: usize,
    /// Allocations of at least the `min_bytes` given to [`count_allocations`].
    pub at_least_min: usize,
    /// The largest single allocation, in bytes (0 when there was none).
    pub largest: usize,
}

/// Runs `f` and returns its result with the allocations it made — how many, how many bytes,
/// how many of at least `min_bytes` each, the largest — or `None` when the counting
/// allocator is not installed. A reallocation counts as one allocation of its new size.
///
/// The counters are global: run one measurement at a time, and know that allocations by
/// other threads while `f` runs are counted too. Buffers that the tensor buffer cache
/// ([`crate::buffer_pool`]) serves are not allocations; wrap `f` in
/// [`buffer_pool::uncached`](crate::buffer_pool::uncached) to count every buffer it asks
/// for.
///
/// ```
/// use autograd::alloc_meter::{CountingAllocator, count_allocations};
///
/// #[global_allocator]
/// static ALLOCATOR: CountingAllocator = CountingAllocator;
///
/// fn main() {
///     let (_, seen) = count_allocations(1000, || {
///         let small = std::hint::black_box(vec![0u8; 10]);
///         let large = std::hint::black_box(vec![0u8; 4000]);
///         small.len() + large.len()
///     });
///     let seen = seen.unwrap();
///     assert_eq!((seen.count, seen.at_least_min, seen.largest), (2, 1, 4000));
/// }
/// ```
pub fn count_allocations<R>(min_bytes: usize, f: impl FnOnce() -> R) -> (R, Option<Allocations>) {
    if !installed() {
        return (f(), None);
    }
    THRESHOLD.store(min_bytes, Ordering::Relaxed);
    for counter in [&COUNT, &BYTES, &AT_LEAST, &LARGEST] {
        counter.store(0, Ordering::Relaxed);
    }
    let r = f();
    let seen = Allocations {
        count: COUNT.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
        at_least_min: AT_LEAST.load(Ordering::Relaxed),
        largest: LARGEST.load(Ordering::Relaxed),
    };
    THRESHOLD.store(usize::MAX, Ordering::Relaxed);
    (r, Some(seen))
}

/// A byte count for people: `812 B`, `12.5 KiB`, `3.0 MiB`.
pub fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_allocator_nothing_is_measured() {
        let (value, peak) = peak_bytes(|| vec![0u8; 1000].len());
        assert_eq!(value, 1000);
        assert_eq!(peak, None);
        let (value, seen) = count_allocations(10, || vec![0u8; 1000].len());
        assert_eq!((value, seen), (1000, None));
        assert_eq!(human(812), "812 B");
        assert_eq!(human(12_800), "12.5 KiB");
    }
}
