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
//! was live before it. Where the allocator is not installed, it returns `None` (the
//! tutorial's chapters then say that memory was not measured).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting the bytes live and their peak.
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// atomics and never affect what is allocated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
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
        assert_eq!(human(812), "812 B");
        assert_eq!(human(12_800), "12.5 KiB");
    }
}
