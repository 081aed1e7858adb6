//! A per-thread cache of tensor buffers, so that a training loop stops asking the system
//! allocator (and the kernel) for memory once its first step has run.
//!
//! Every step of a training loop allocates and frees the same buffers: activations,
//! adjoints, weight gradients. The system allocator hands large blocks back to the OS and
//! takes them again, and each fresh page costs a page fault and a zero-fill — at the
//! resmlp-step M size that was a fifth of the step's time. So when a tensor's buffer is
//! freed, it is kept here (per thread, by byte size) and the next tensor of the same size
//! takes it. Like PyTorch's caching allocator, but for the CPU and bounded.
//!
//! Buffers below [`MIN_BYTES`] are left to the system allocator (it is fast for them). The
//! cache of each thread holds at most [`limit`] bytes (default [`DEFAULT_LIMIT`]);
//! [`set_limit`]`(0)` switches caching off, [`clear`] frees what this thread holds.
//!
//! ```
//! use autograd::{Tensor, buffer_pool};
//! buffer_pool::clear();
//! let a = Tensor::<f32>::ones(&[256, 256]);
//! let before = buffer_pool::stats();
//! drop(&a * 2.0);                 // a 256 KiB result, freed: kept in the cache
//! let again = &a * 3.0;           // same size: takes the cached buffer
//! let after = buffer_pool::stats();
//! assert_eq!(after.hits, before.hits + 1);
//! assert_eq!(again.get(&[0, 0]), 3.0);
//! ```

use std::alloc::Layout;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Buffers smaller than this many bytes are not cached.
pub const MIN_BYTES: usize = 4096;

/// The default bound on the bytes one thread's cache holds: 256 MiB.
pub const DEFAULT_LIMIT: usize = 256 << 20;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);

/// Sets how many bytes each thread's cache may hold (0: no caching). Takes effect for
/// buffers freed from now on; [`clear`] empties the calling thread's cache at once.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// How many bytes each thread's cache may hold.
pub fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Runs `f` with caching switched off (the limit is process-wide) and the calling
/// thread's cache emptied, then restores the limit. For measuring the memory a
/// computation itself keeps live with a counting allocator: cached buffers would hide
/// its allocations.
pub fn uncached<R>(f: impl FnOnce() -> R) -> R {
    struct RestoreLimit(usize);
    impl Drop for RestoreLimit {
        fn drop(&mut self) {
            set_limit(self.0);
        }
    }
    let _restore = RestoreLimit(limit());
    set_limit(0);
    clear();
    f()
}

/// Frees every buffer the calling thread's cache holds.
pub fn clear() {
    let bins = CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.bytes = 0;
        std::mem::take(&mut cache.bins)
    });
    drop(CacheBins(bins));
}

/// What the calling thread's cache holds and how often it served a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes held, ready for reuse.
    pub cached_bytes: usize,
    /// Buffers held.
    pub cached_buffers: usize,
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests (of at least [`MIN_BYTES`]) that went to the system allocator.
    pub misses: u64,
}

/// The calling thread's cache statistics.
pub fn stats() -> PoolStats {
    CACHE.with(|cache| {
        let cache = cache.borrow();
        PoolStats {
            cached_bytes: cache.bytes,
            cached_buffers: cache.bins.iter().map(|b| b.blocks.len()).sum(),
            hits: cache.hits.get(),
            misses: cache.misses.get(),
        }
    })
}

/// An empty `Vec` with room for exactly `len` elements, reusing a cached buffer of that
/// size when there is one. Nothing of the old contents is visible (the length is 0).
pub(crate) fn with_capacity<T: Copy>(len: usize) -> Vec<T> {
    let bytes = len * size_of::<T>();
    if bytes < MIN_BYTES {
        return Vec::with_capacity(len);
    }
    let align = align_of::<T>();
    let cached = CACHE
        .try_with(|cache| cache.try_borrow_mut().ok()?.take(bytes, align))
        .ok()
        .flatten();
    match cached {
        // SAFETY: the block was allocated by the global allocator with the layout of
        // `bytes` bytes aligned to `align` (it was a `Vec` of that byte capacity and that
        // alignment, see `give`), which is exactly `Layout::array::<T>(len)`: the same
        // alignment and `len · size_of::<T>() == bytes`. Length 0: no element is read.
        Some(ptr) => unsafe { Vec::from_raw_parts(ptr.as_ptr().cast::<T>(), 0, len) },
        None => Vec::with_capacity(len),
    }
}

/// A `Vec` of `len` zeros (a cached buffer, zero-filled, when there is one).
pub(crate) fn zeroed<T: Copy + num_traits::Zero>(len: usize) -> Vec<T> {
    let mut v = with_capacity(len);
    v.resize(len, T::zero());
    v
}

/// The `len` items of `items` in a buffer from the cache (`collect` for tensor kernels).
pub(crate) fn collect<T: Copy>(len: usize, items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = with_capacity(len);
    v.extend(items);
    v
}

/// `x` copied into a buffer from the cache.
pub(crate) fn copied<T: Copy>(x: &[T]) -> Vec<T> {
    let mut v = with_capacity(x.len());
    v.extend_from_slice(x);
    v
}

/// Hands a buffer that is being freed to the calling thread's cache, or frees it when it
/// is small, the cache is full, or the thread is exiting.
pub(crate) fn give<T>(v: Vec<T>) {
    let bytes = v.capacity() * size_of::<T>();
    if bytes < MIN_BYTES || std::mem::needs_drop::<T>() || bytes > limit() {
        return;
    }
    let mut v = std::mem::ManuallyDrop::new(v);
    let Some(ptr) = NonNull::new(v.as_mut_ptr().cast::<u8>()) else {
        return;
    };
    let block = Block {
        ptr,
        bytes,
        align: align_of::<T>(),
    };
    // Kept by the cache, or still here to free (cache full, or gone at thread exit).
    let mut left = Some(block);
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut()
            && let Some(block) = left.take()
        {
            left = cache.put(block);
        }
    });
    if let Some(block) = left {
        block.free();
    }
}

/// A freed buffer: `bytes` bytes aligned to `align`, from the global allocator.
struct Block {
    ptr: NonNull<u8>,
    bytes: usize,
    align: usize,
}

impl Block {
    fn free(self) {
        if let Ok(layout) = Layout::from_size_align(self.bytes, self.align) {
            // SAFETY: the block was allocated by the global allocator with exactly this
            // layout (a `Vec`'s buffer: capacity · size_of, align_of) and is owned here.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

/// The cached blocks of one size and alignment.
struct Bin {
    bytes: usize,
    align: usize,
    blocks: Vec<NonNull<u8>>,
}

/// The bins, freed on drop (thread exit or [`clear`]).
struct CacheBins(Vec<Bin>);

impl Drop for CacheBins {
    fn drop(&mut self) {
        for bin in self.0.drain(..) {
            for ptr in bin.blocks {
                Block {
                    ptr,
                    bytes: bin.bytes,
                    align: bin.align,
                }
                .free();
            }
        }
    }
}

struct Cache {
    /// One bin per distinct (size, alignment); a training loop has a handful.
    bins: Vec<Bin>,
    /// Bytes held in all bins.
    bytes: usize,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl Cache {
    fn take(&mut self, bytes: usize, align: usize) -> Option<NonNull<u8>> {
        let found = self
            .bins
            .iter_mut()
            .find(|b| b.bytes == bytes && b.align == align)
            .and_then(|b| b.blocks.pop());
        match found {
            Some(_) => {
                self.bytes -= bytes;
                self.hits.set(self.hits.get() + 1);
            }
            None => self.misses.set(self.misses.get() + 1),
        }
        found
    }

    /// Keeps `block`, or gives it back when the cache would exceed the limit.
    fn put(&mut self, block: Block) -> Option<Block> {
        if self.bytes + block.bytes > limit() {
            return Some(block);
        }
        self.bytes += block.bytes;
        match self
            .bins
            .iter_mut()
            .find(|b| b.bytes == block.bytes && b.align == block.align)
        {
            Some(bin) => bin.blocks.push(block.ptr),
            None => self.bins.push(Bin {
                bytes: block.bytes,
                align: block.align,
                blocks: vec![block.ptr],
            }),
        }
        None
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        drop(CacheBins(std::mem::take(&mut self.bins)));
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            bins: Vec::new(),
            bytes: 0,
            hits: Cell::new(0),
            misses: Cell::new(0),
        })
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_buffer_is_reused_for_the_same_size() {
        clear();
        let v: Vec<f32> = with_capacity(10_000);
        let ptr = v.as_ptr();
        give(v);
        assert_eq!(stats().cached_bytes, 40_000);
        let w: Vec<f32> = with_capacity(10_000);
        assert_eq!(w.as_ptr(), ptr);
        assert!(w.is_empty() && w.capacity() == 10_000);
        assert_eq!(stats().cached_bytes, 0);
        // Another size (or alignment) does not take it.
        give(w);
        let other: Vec<f32> = with_capacity(10_001);
        assert_ne!(other.as_ptr(), ptr);
        let other_align: Vec<f64> = with_capacity(5_000);
        assert_ne!(other_align.as_ptr().cast::<f32>(), ptr);
        assert_eq!(stats().cached_buffers, 1);
        clear();
        assert_eq!((stats().cached_bytes, stats().cached_buffers), (0, 0));
    }

    #[test]
    fn small_buffers_are_not_cached() {
        clear();
        give(Vec::<f32>::with_capacity(MIN_BYTES / 4 - 1));
        assert_eq!(stats().cached_buffers, 0);
    }

    #[test]
    fn zeroed_buffers_are_zero_even_when_reused() {
        clear();
        give(vec![7.0f64; 1000]);
        let z: Vec<f64> = zeroed(1000);
        assert!(z.iter().all(|&x| x == 0.0));
        assert_eq!(z.len(), 1000);
    }

    #[test]
    fn tensors_return_their_buffers_on_drop() {
        clear();
        let t = crate::Tensor::<f32>::zeros(&[64, 64]);
        let hits = stats().hits;
        drop(t.map(|x| x + 1.0));
        let u = t.map(|x| x + 2.0);
        assert_eq!(stats().hits, hits + 1);
        assert!(u.data().iter().all(|&x| x == 2.0));
    }

    #[test]
    fn each_thread_has_its_own_cache() {
        clear();
        std::thread::spawn(|| {
            give(vec![1.0f32; 10_000]);
            assert_eq!(stats().cached_buffers, 1);
        })
        .join()
        .expect("thread");
        assert_eq!(stats().cached_buffers, 0);
    }
}
