//! A per-thread cache of tensor buffers, so that a training loop stops asking the system
//! allocator (and the kernel) for memory once its first step has run.
//!
//! Every step of a training loop allocates and frees the same buffers: activations,
//! adjoints, weight gradients. The system allocator hands large blocks back to the OS and
//! takes them again, and each fresh page costs a page fault and a zero-fill — at the
//! resmlp-step M size that was a fifth of the step's time. So when a tensor's buffer is
//! freed, it is kept here (per thread, by byte size) and the next tensor of the same size
//! takes it. Like PyTorch's caching allocator, but for the CPU and bounded. A dropped
//! tape's own lists (nodes, input ids, adjoints) are kept the same way for the next tape.
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
use std::cell::RefCell;
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
    // Nothing to free when the thread's cache is already gone (thread exit) or busy.
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            cache.release();
        }
    });
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

/// The calling thread's cache statistics (all zero once the thread's cache is gone, at
/// thread exit).
pub fn stats() -> PoolStats {
    CACHE
        .try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            Some(PoolStats {
                cached_bytes: cache.bytes,
                cached_buffers: cache.bins.iter().map(|b| b.blocks.len()).sum::<usize>()
                    + cache.spares.len(),
                hits: cache.hits,
                misses: cache.misses,
            })
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// An empty `Vec` with room for exactly `len` elements, reusing a cached buffer of that
/// size when there is one; `None` when the system cannot allocate it or its size in bytes
/// overflows (the arithmetic is checked: a wrapped size could match a smaller cached
/// block). Nothing of the old contents is visible (the length is 0).
pub(crate) fn try_with_capacity<T: Copy>(len: usize) -> Option<Vec<T>> {
    let bytes = len.checked_mul(size_of::<T>())?;
    if bytes < MIN_BYTES {
        return fresh(len);
    }
    let align = align_of::<T>();
    let cached = CACHE
        .try_with(|cache| cache.try_borrow_mut().ok()?.take(bytes, align))
        .ok()
        .flatten();
    match cached {
        // SAFETY: preconditions of `Vec::from_raw_parts(ptr, 0, len)`:
        // 1. `ptr` was allocated by the global allocator with the layout of
        //    `Layout::array::<T>(len)`: the block was a `Vec`'s buffer of `bytes` bytes
        //    aligned to `align` (see `give`, which caches a `Vec<U>`'s buffer under
        //    `capacity · size_of::<U>()` and `align_of::<U>()`), and `take` returns only a
        //    block of exactly that size and alignment; `bytes = len · size_of::<T>()` was
        //    computed with `checked_mul` above and `align = align_of::<T>()`. `T` is not
        //    zero-sized (then `bytes = 0 < MIN_BYTES`, handled above).
        // 2. length 0 ≤ capacity `len`: no element is read.
        // 3. the block is owned by nobody else: `take` removed it from the cache.
        Some(ptr) => Some(unsafe { Vec::from_raw_parts(ptr.as_ptr().cast::<T>(), 0, len) }),
        None => fresh(len),
    }
}

/// A new empty `Vec` of capacity `len` from the system allocator, or `None` when it
/// refuses (or the size overflows).
fn fresh<T>(len: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    Some(v)
}

/// [`try_with_capacity`] for buffers whose size is already known to be allocatable in
/// principle (a gradient of an existing tensor's shape, a kernel's scratch space).
///
/// # Panics
/// When the system cannot allocate the buffer, with a message naming the size (rather
/// than aborting the process as `Vec::with_capacity` does).
#[track_caller]
pub(crate) fn with_capacity<T: Copy>(len: usize) -> Vec<T> {
    match try_with_capacity(len) {
        Some(v) => v,
        None => panic!(
            "out of memory: cannot allocate {len} elements of {} bytes",
            size_of::<T>()
        ),
    }
}

/// A `Vec` of `len` zeros (a cached buffer, zero-filled, when there is one).
#[track_caller]
pub(crate) fn zeroed<T: Copy + num_traits::Zero>(len: usize) -> Vec<T> {
    let mut v = with_capacity(len);
    v.resize(len, T::zero());
    v
}

/// The `len` items of `items` in a buffer from the cache (`collect` for tensor kernels).
#[track_caller]
pub(crate) fn collect<T: Copy>(len: usize, items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = with_capacity(len);
    v.extend(items);
    v
}

/// `x` copied into a buffer from the cache.
#[track_caller]
pub(crate) fn copied<T: Copy>(x: &[T]) -> Vec<T> {
    let mut v = with_capacity(x.len());
    v.extend_from_slice(x);
    v
}

/// An empty `Vec` for the tape's own lists (nodes, input ids, adjoints), reusing the
/// largest spare list allocation kept for elements of `T`'s size and alignment by
/// [`keep_vec`]. A tape is rebuilt every step with the same length: reusing its lists
/// spares the allocator (and the kernel's page faults) a few megabytes per step.
pub(crate) fn spare_vec<T>() -> Vec<T> {
    if size_of::<T>() == 0 {
        return Vec::new();
    }
    let spare = CACHE
        .try_with(|cache| {
            cache
                .try_borrow_mut()
                .ok()?
                .take_spare(size_of::<T>(), align_of::<T>())
        })
        .ok()
        .flatten();
    match spare {
        // SAFETY: preconditions of `Vec::from_raw_parts(ptr, 0, capacity)`:
        // 1. `ptr` was allocated by the global allocator with the layout
        //    `Layout::array::<T>(capacity)`: the block was a `Vec`'s allocation of `bytes`
        //    bytes aligned to `align_of::<T>()` (see `keep_vec`; `take_spare` checks the
        //    alignment), and `bytes` is a multiple of `size_of::<T>()` (checked by
        //    `take_spare`), so `capacity · size_of::<T>() = bytes` exactly. `T` is not
        //    zero-sized (returned above).
        // 2. length 0 ≤ capacity: nothing is read.
        // 3. the block is owned by nobody else: `take_spare` removed it from the cache.
        Some(block) => unsafe {
            Vec::from_raw_parts(
                block.ptr.as_ptr().cast::<T>(),
                0,
                block.bytes / size_of::<T>(),
            )
        },
        None => Vec::new(),
    }
}

/// Empties `v` (dropping its elements) and keeps its allocation for [`spare_vec`].
pub(crate) fn keep_vec<T>(v: Vec<T>) {
    if let Some(block) = Block::of_vec(v) {
        let elem = size_of::<T>();
        stash(block, |cache, block| cache.put_spare(block, elem));
    }
}

/// Hands a buffer that is being freed to the calling thread's cache, or frees it when it
/// is small, the cache is full, or the thread is exiting.
pub(crate) fn give<T>(v: Vec<T>) {
    if let Some(block) = Block::of_vec(v) {
        stash(block, Cache::put);
    }
}

/// Offers `block` to the calling thread's cache with `put`; frees it if the cache does
/// not keep it (full, busy, or gone at thread exit).
fn stash(block: Block, put: impl FnOnce(&mut Cache, Block) -> Option<Block>) {
    let mut left = Some(block);
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut()
            && let Some(block) = left.take()
        {
            left = put(&mut cache, block);
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
    /// The allocation of `v`, emptied, when it is worth caching (at least [`MIN_BYTES`],
    /// at most the limit); otherwise `v` is simply freed.
    fn of_vec<T>(mut v: Vec<T>) -> Option<Block> {
        v.clear();
        let bytes = v.capacity() * size_of::<T>();
        if bytes < MIN_BYTES || bytes > limit() {
            return None;
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        let ptr = NonNull::new(v.as_mut_ptr().cast::<u8>())?;
        Some(Block {
            ptr,
            bytes,
            align: align_of::<T>(),
        })
    }

    fn free(self) {
        if let Ok(layout) = Layout::from_size_align(self.bytes, self.align) {
            // SAFETY: preconditions of `dealloc(ptr, layout)`: the block was allocated by
            // the global allocator with exactly this layout (a `Vec`'s buffer: `bytes =
            // capacity · size_of`, `align = align_of`, recorded by `Block::of_vec` from
            // the `Vec` itself), and it is owned here (moved out of the cache or never
            // put in), so it is freed once.
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

struct Cache {
    /// One bin per distinct (size, alignment); a training loop has a handful.
    bins: Vec<Bin>,
    /// Spare list allocations, with the element size they were kept for (at most
    /// `MAX_SPARES`: a tape has a few lists).
    spares: Vec<(Block, usize)>,
    /// Bytes held in all bins.
    bytes: usize,
    hits: u64,
    misses: u64,
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
                self.hits += 1;
            }
            None => self.misses += 1,
        }
        found
    }

    /// The largest spare for elements of `elem` bytes aligned to `align`.
    fn take_spare(&mut self, elem: usize, align: usize) -> Option<Block> {
        let (i, _) = self
            .spares
            .iter()
            .enumerate()
            .filter(|(_, (b, e))| *e == elem && b.align == align && b.bytes % elem == 0)
            .max_by_key(|(_, (b, _))| b.bytes)?;
        let (block, _) = self.spares.swap_remove(i);
        self.bytes -= block.bytes;
        self.hits += 1;
        Some(block)
    }

    /// Keeps a spare list allocation, or gives it back when full.
    fn put_spare(&mut self, block: Block, elem: usize) -> Option<Block> {
        if self.spares.len() >= MAX_SPARES || self.bytes.saturating_add(block.bytes) > limit() {
            return Some(block);
        }
        self.bytes += block.bytes;
        self.spares.push((block, elem));
        None
    }

    /// Keeps `block`, or gives it back when the cache would exceed the limit.
    fn put(&mut self, block: Block) -> Option<Block> {
        if self.bytes.saturating_add(block.bytes) > limit() {
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

impl Cache {
    /// Frees every cached buffer and spare list (statistics stay).
    fn release(&mut self) {
        for bin in self.bins.drain(..) {
            for ptr in bin.blocks {
                Block {
                    ptr,
                    bytes: bin.bytes,
                    align: bin.align,
                }
                .free();
            }
        }
        for (block, _) in self.spares.drain(..) {
            block.free();
        }
        self.bytes = 0;
    }
}

impl Drop for Cache {
    /// Thread exit: the thread's buffers go back to the system allocator.
    fn drop(&mut self) {
        self.release();
    }
}

/// How many spare list allocations a thread keeps (a tape has three lists, its backward
/// one more, and a second tape may be alive).
const MAX_SPARES: usize = 8;

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            bins: Vec::new(),
            spares: Vec::new(),
            bytes: 0,
            hits: 0,
            misses: 0,
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
    fn precondition_a_byte_size_that_wraps_never_takes_a_cached_block() {
        // `from_raw_parts` needs the cached block to hold exactly `len · size_of::<T>()`
        // bytes. Here `len · 4` wraps to 40 000 in release arithmetic: an unchecked size
        // would hand out the 40 000-byte block as a buffer of 2⁶² + 10 000 elements.
        clear();
        give(Vec::<f32>::with_capacity(10_000));
        assert_eq!(stats().cached_bytes, 40_000);
        let len = (1usize << 62) + 10_000;
        assert_eq!(len.wrapping_mul(4), 40_000);
        assert!(try_with_capacity::<f32>(len).is_none());
        assert_eq!(stats().cached_bytes, 40_000, "the block stays in the cache");
        // A size the system refuses is `None` too (not an abort).
        assert!(try_with_capacity::<f32>(1 << 60).is_none());
        clear();
    }

    #[test]
    fn precondition_a_block_is_only_taken_for_its_own_size_and_alignment() {
        // `from_raw_parts` needs the layout the block was allocated with.
        clear();
        give(Vec::<f32>::with_capacity(2048)); // 8192 bytes, aligned to 4
        let other_align: Vec<f64> = with_capacity(1024); // 8192 bytes, aligned to 8
        assert_eq!(
            stats().cached_buffers,
            1,
            "an f64 buffer never takes an f32 block"
        );
        drop(other_align);
        let same: Vec<f32> = with_capacity(2048);
        assert_eq!((same.capacity(), stats().hits > 0), (2048, true));
        clear();
    }

    #[test]
    fn precondition_a_spare_list_is_only_taken_for_its_own_element_size() {
        // `spare_vec`'s `from_raw_parts` needs the block's size to be a multiple of the
        // element size, with the same alignment: a 4100-byte list of `u32` (align 4) must
        // not become a list of `[u32; 2]` (align 4, 8 bytes: 4100 is not a multiple).
        clear();
        let list: Vec<u32> = Vec::with_capacity(1025);
        keep_vec(list);
        let other: Vec<[u32; 2]> = spare_vec();
        assert_eq!(other.capacity(), 0);
        let same: Vec<u32> = spare_vec();
        assert_eq!(same.capacity(), 1025);
        clear();
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

    #[test]
    fn a_kept_list_allocation_serves_the_next_list_of_that_element_layout() {
        clear();
        let mut nodes: Vec<(u64, String)> = spare_vec();
        for i in 0..1000 {
            nodes.push((i, i.to_string()));
        }
        let (ptr, capacity) = (nodes.as_ptr(), nodes.capacity());
        keep_vec(nodes); // drops the strings, keeps the allocation
        let again: Vec<(u64, String)> = spare_vec();
        assert_eq!(
            (again.as_ptr(), again.capacity(), again.len()),
            (ptr, capacity, 0)
        );
        // Another element layout does not take it.
        keep_vec(again);
        let other: Vec<u8> = spare_vec();
        assert_eq!(other.capacity(), 0);
        clear();
    }
}
