//! The buffer cache hands every block it frees back to the system allocator with the
//! layout the block was allocated with (`dealloc`'s contract): when the cache is cleared,
//! when it is full, and when its thread exits. A checking global allocator records the
//! layout of every large allocation made while a test watches, and counts a block that
//! comes back with another size or alignment.
//!
//! A test binary of its own: the allocator sees every allocation of the process.

use autograd::{Tape, Tensor, buffer_pool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Room for the blocks one test keeps live at a time.
const SLOTS: usize = 64;

thread_local! {
    /// Whether this thread's large allocations are recorded.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    /// (address, size, alignment) of the live recorded blocks; address 0 is a free slot.
    /// A fixed array: recording must not allocate.
    static LIVE: RefCell<[(usize, usize, usize); SLOTS]> = const { RefCell::new([(0, 0, 0); SLOTS]) };
}

/// Recorded blocks given back, and those given back with another layout.
static FREED: AtomicUsize = AtomicUsize::new(0);
static WRONG_LAYOUT: AtomicUsize = AtomicUsize::new(0);

fn watching() -> bool {
    WATCHING.try_with(Cell::get).unwrap_or(false)
}

fn record(ptr: *mut u8, layout: Layout) {
    if ptr.is_null() || layout.size() < buffer_pool::MIN_BYTES || !watching() {
        return;
    }
    let _ = LIVE.try_with(|live| {
        if let Some(slot) = live.borrow_mut().iter_mut().find(|s| s.0 == 0) {
            *slot = (ptr as usize, layout.size(), layout.align());
        }
    });
}

/// A recorded block coming back (`freed`: to the system, else to be resized).
fn check(ptr: *mut u8, layout: Layout, freed: bool) {
    let _ = LIVE.try_with(|live| {
        let mut live = live.borrow_mut();
        if let Some(slot) = live.iter_mut().find(|s| s.0 == ptr as usize) {
            if freed {
                FREED.fetch_add(1, Ordering::SeqCst);
            }
            if (slot.1, slot.2) != (layout.size(), layout.align()) {
                WRONG_LAYOUT.fetch_add(1, Ordering::SeqCst);
            }
            *slot = (0, 0, 0);
        }
    });
}

struct Checking;

// SAFETY: forwards every call to the system allocator unchanged; the bookkeeping uses a
// const-initialised thread-local array and atomics, which never allocate.
unsafe impl GlobalAlloc for Checking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for this method is passed on unchanged.
        let ptr = unsafe { System.alloc(layout) };
        record(ptr, layout);
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        check(ptr, layout, true);
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(ptr, layout, false);
        // SAFETY: the caller's contract for this method is passed on unchanged.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        // SAFETY: `realloc`'s contract: the new size with the old alignment is a layout.
        record(new, unsafe {
            Layout::from_size_align_unchecked(new_size, layout.align())
        });
        new
    }
}

#[global_allocator]
static ALLOCATOR: Checking = Checking;

/// Buffers of three element layouts and the lists of a tape, dropped into this thread's
/// cache, then freed by `clear`, by a full cache, and by the thread's exit.
#[test]
fn the_cache_frees_every_block_with_the_layout_it_was_allocated_with() {
    let freed = || FREED.load(Ordering::SeqCst);
    WATCHING.with(|w| w.set(true));
    buffer_pool::clear();

    // Into the cache: nothing is freed yet.
    drop(Tensor::<f32>::ones(&[10_000]));
    drop(Tensor::<f64>::ones(&[3_000]));
    drop(Tensor::<f64>::ones(&[7, 1_000]));
    {
        let tape = Tape::<f64>::new();
        let mut h = tape.var(Tensor::scalar(1.0));
        for _ in 0..1_000 {
            h = &h * &h; // node, input and adjoint lists of a few thousand entries
        }
        let _ = h.backward();
    }
    assert_eq!(freed(), 0, "cached blocks are not freed");
    let held = buffer_pool::stats().cached_buffers;
    assert!(
        held >= 5,
        "3 buffers and the tape's lists are cached, {held} held"
    );

    // `clear` frees them all, each with its own layout.
    buffer_pool::clear();
    assert_eq!(freed(), held);

    // A full cache (limit 0) frees a buffer at once.
    buffer_pool::uncached(|| drop(Tensor::<f32>::ones(&[5_000])));
    assert_eq!(freed(), held + 1);

    // Thread exit frees what that thread's cache held.
    std::thread::spawn(|| {
        WATCHING.with(|w| w.set(true));
        drop(Tensor::<f64>::ones(&[2_000]));
        assert_eq!(buffer_pool::stats().cached_buffers, 1);
    })
    .join()
    .expect("the thread runs");
    assert_eq!(freed(), held + 2);

    assert_eq!(
        WRONG_LAYOUT.load(Ordering::SeqCst),
        0,
        "a block freed with another layout"
    );
}
