//! The f32 matrix product `C = A·B` (or `C += A·B`, or `C = A·B + bias`), written for this
//! project's shapes: BLIS-style blocking with a register-tile microkernel, in AVX-512,
//! AVX2 + FMA or portable code chosen once at run time.
//!
//! - B is packed, block by block (`KC` rows × up to `NC` columns), into panels of `NR`
//!   columns stored row after row, so that the microkernel reads it contiguously; a
//!   transposed B (a linear layer's `x·Wᵀ`) is packed with in-register transposes.
//! - A is read in place when its rows are contiguous in the product's inner dimension or
//!   close together (the microkernel broadcasts one element per row and step); a
//!   transposed A far apart in memory, and the last rows of an `MR` panel, are copied into
//!   a small panel first.
//! - The microkernel keeps an `MR × NR` tile of C in registers for `KC` steps of the inner
//!   dimension, then writes it once: overwriting, accumulating, or adding a bias row (the
//!   epilogue of `linear`).
//! - Large products are split by columns (or rows) into chunks of whole tiles, claimed
//!   one at a time by the calling thread and helper threads that spin between products
//!   ([`super::spin_pool`]).
//!
//! Nothing here knows the tape; the safe entry point is [`super::matmul`]'s, which checks
//! every dimension against the slices before calling [`sgemm`].

mod simd;

use super::matmul::Operand;
use super::spin_pool::run_chunks;
#[cfg(target_arch = "x86_64")]
use simd::{Avx2, Avx512};
use simd::{Portable, Simd};
use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

/// Rows of the inner dimension per packed block of B (and per pass of the microkernel).
const KC: usize = 256;
/// Columns per packed block of B.
const NC: usize = 512;
/// Steps of the inner dimension per iteration of the microkernel's loop.
const UNROLL: usize = 4;
/// Products with fewer multiply-adds run on the calling thread alone. Lower than the
/// `gemm` crate's threshold (2²³, `matmul::PARALLEL_MIN_WORK`): with it, resmlp-M's
/// products (64·256·256 = 2²² multiply-adds) are shared by two threads, which made its
/// two-thread step 1.13–1.15× faster than one thread on Rayon's pool (0.9–1.0× on one
/// thread's products), and 1.79× on the spinning helper of [`super::spin_pool`]
/// (docs/performance.md).
const PARALLEL_MIN_WORK: usize = 1 << 21;
/// A chunk of a threaded product gets at least about this many multiply-adds.
const CHUNK_MIN_WORK: usize = 1 << 16;

/// How a product's first write treats the destination.
#[derive(Clone, Copy)]
pub(crate) enum Init<'a, T> {
    /// `C = A·B`: C is written without being read (it may be uninitialised).
    Overwrite,
    /// `C += A·B`: C is read (it must be initialised).
    Accumulate,
    /// `C = A·B + bias` with `bias` (one value per column) added to every row; C is not
    /// read.
    Bias(&'a [T]),
}

/// The instruction set the kernel runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512 F: 16 lanes, an 8 × 32 register tile.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 and FMA: 8 lanes, a 6 × 16 register tile.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Any CPU: plain arrays, a 4 × 16 tile.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU has, lowered by the environment variable
    /// `WENGERT_SGEMM_ISA` (`avx2` or `portable`; for measurements), read once.
    pub(crate) fn get() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let wanted = std::env::var("WENGERT_SGEMM_ISA").unwrap_or_default();
            Isa::supported()
                .into_iter()
                .find(|isa| isa.name() == wanted)
                .unwrap_or_else(|| Isa::supported()[0])
        })
    }

    /// Every instruction set this CPU can run, best first (the portable one is last).
    pub(crate) fn supported() -> Vec<Isa> {
        let mut isas = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                isas.push(Isa::Avx2);
            }
        }
        isas.push(Isa::Portable);
        isas
    }

    /// The name `WENGERT_SGEMM_ISA` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Rows and columns of the register tile.
    fn tile(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (AVX512_MR, AVX512_NV * 16),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (AVX2_MR, AVX2_NV * 8),
            Isa::Portable => (PORTABLE_MR, PORTABLE_NV * 8),
        }
    }
}

#[cfg(target_arch = "x86_64")]
const AVX512_MR: usize = 8;
#[cfg(target_arch = "x86_64")]
const AVX512_NV: usize = 2;
#[cfg(target_arch = "x86_64")]
const AVX2_MR: usize = 6;
#[cfg(target_arch = "x86_64")]
const AVX2_NV: usize = 2;
const PORTABLE_MR: usize = 4;
const PORTABLE_NV: usize = 2;

/// A product with its operands as raw parts, shared by the threads that compute it.
/// Element (i, p) of A is at `a + i·lda + p` (`a + p·lda + i` when `a_t`), (p, j) of B at
/// `b + p·ldb + j` (`b + j·ldb + p` when `b_t`), (i, j) of C at `c + i·n + j`.
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    a_t: bool,
    b: *const f32,
    ldb: usize,
    b_t: bool,
    c: *mut f32,
    init: RawInit,
}

/// [`Init`] with the bias as a pointer (to its column 0).
#[derive(Clone, Copy)]
enum RawInit {
    Overwrite,
    Accumulate,
    Bias(*const f32),
}

// SAFETY: a `Problem` is shared by the threads of one product, which read A, B and the
// bias (never written during the product) and write disjoint blocks of C (`compute`'s
// callers hand out disjoint row/column ranges); `sgemm` does not return before every
// thread is done with it.
unsafe impl Sync for Problem {}

/// `C (+)= A·B` for `a` (m × k) and `b` (k × n) into the row-major m × n `c`, on at most
/// `threads` threads.
///
/// # Safety
/// - `a.data` holds at least `m·k` and `b.data` at least `k·n` elements and `a.cols =
///   b.rows` (the caller checks these with checked arithmetic);
/// - `c` is valid for writes of `m·n` f32, aliases neither operand nor the bias, and is
///   initialised when `init` is `Accumulate`;
/// - a bias holds at least `n` elements.
pub(crate) unsafe fn sgemm(
    a: Operand<'_, f32>,
    b: Operand<'_, f32>,
    c: *mut f32,
    init: Init<'_, f32>,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let problem = Problem {
        m,
        n,
        k,
        a: a.data.as_ptr(),
        lda: if a.transposed { m } else { k },
        a_t: a.transposed,
        b: b.data.as_ptr(),
        ldb: if b.transposed { k } else { n },
        b_t: b.transposed,
        c,
        init: match init {
            Init::Overwrite => RawInit::Overwrite,
            Init::Accumulate => RawInit::Accumulate,
            Init::Bias(bias) => RawInit::Bias(bias.as_ptr()),
        },
    };
    let isa = Isa::get();
    let chunks = Chunks::plan(&problem, isa.tile(), threads, PARALLEL_MIN_WORK);
    let run = |chunk: usize| {
        let (rows, cols) = chunks.get(chunk);
        // SAFETY: `compute`'s contract: the problem's pointers are valid for the sizes
        // it states (this function's contract), `rows` and `cols` lie inside m × n
        // (`Chunks::get`), and chunks are disjoint blocks of C, so no two threads write
        // the same element. The ISA is one the CPU has (`Isa::get` only returns those).
        unsafe { compute(isa, &problem, rows, cols) }
    };
    run_chunks(threads, chunks.count, &run);
}

/// How a product is cut into chunks for the threads: `count` blocks of `step` rows (or
/// columns), each a whole number of register tiles.
struct Chunks {
    count: usize,
    step: usize,
    by_columns: bool,
    m: usize,
    n: usize,
}

impl Chunks {
    /// Products below `min_work` multiply-adds (or on one thread) are one chunk.
    fn plan(p: &Problem, (mr, nr): (usize, usize), threads: usize, min_work: usize) -> Chunks {
        let work = p.m.saturating_mul(p.n).saturating_mul(p.k);
        let whole = Chunks {
            count: 1,
            step: p.n,
            by_columns: true,
            m: p.m,
            n: p.n,
        };
        if threads <= 1 || work < min_work {
            return whole;
        }
        // Enough chunks that a busy thread's share can be taken by another, few enough
        // that each stays worth claiming.
        let wanted = (work / CHUNK_MIN_WORK).clamp(1, 4 * threads);
        // By columns, each thread packs only its own columns of B and reads A in place;
        // but a packed A (see `packs_a`) would be packed again by every thread, so such
        // products are split by rows.
        let (panels, tile, by_columns) = if p.n.div_ceil(nr) >= 2 * threads && !packs_a(p) {
            (p.n.div_ceil(nr), nr, true)
        } else {
            (p.m.div_ceil(mr), mr, false)
        };
        let per_chunk = panels.div_ceil(wanted.min(panels));
        let step = per_chunk * tile;
        let total = if by_columns { p.n } else { p.m };
        Chunks {
            count: total.div_ceil(step),
            step,
            by_columns,
            ..whole
        }
    }

    /// The rows and columns of chunk `i < count`.
    fn get(&self, i: usize) -> (Range<usize>, Range<usize>) {
        let total = if self.by_columns { self.n } else { self.m };
        let span = i * self.step..((i + 1) * self.step).min(total);
        if self.by_columns {
            (0..self.m, span)
        } else {
            (span, 0..self.n)
        }
    }
}

/// Whether A is read through packed panels: a transposed A whose steps lie far apart in
/// memory (in place, the `KC` steps of a panel would map to a few cache sets and evict
/// each other).
fn packs_a(p: &Problem) -> bool {
    p.a_t && p.lda >= 256
}

/// Packing buffers, one set per thread, kept between products.
struct Scratch {
    /// Packed B: `KC` rows of up to `NC` columns (rounded up to whole panels).
    b: Vec<f32>,
    /// One packed panel of A: `KC` steps of `MR` rows.
    a: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch { b: Vec::new(), a: Vec::new() }) };
}

/// Computes the block `rows × cols` of the product.
///
/// # Safety
/// `isa` runs on this CPU; the problem's pointers are valid as [`sgemm`] requires;
/// `rows ⊆ 0..m`, `cols ⊆ 0..n`; no other thread writes this block of C meanwhile.
unsafe fn compute(isa: Isa, p: &Problem, rows: Range<usize>, cols: Range<usize>) {
    SCRATCH.with(|scratch| {
        // A thread computes one block at a time (the pool never nests products), so the
        // buffers are free; if they are not (a product started from inside a product),
        // fresh ones serve.
        let mut fresh = Scratch {
            b: Vec::new(),
            a: Vec::new(),
        };
        let mut borrowed = scratch.try_borrow_mut();
        let scratch = match borrowed.as_deref_mut() {
            Ok(s) => s,
            Err(_) => &mut fresh,
        };
        // SAFETY: the ISA's target features are present (`isa` runs on this CPU), and
        // `block`'s other preconditions are this function's.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => block_avx512(p, rows, cols, scratch),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => block_avx2(p, rows, cols, scratch),
                Isa::Portable => {
                    block::<Portable, PORTABLE_MR, PORTABLE_NV>(p, rows, cols, scratch)
                }
            }
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(p: &Problem, rows: Range<usize>, cols: Range<usize>, s: &mut Scratch) {
    // SAFETY: this function's preconditions are `block`'s (AVX-512 F: this function's
    // target feature, checked by the dispatcher).
    unsafe { block::<Avx512, AVX512_MR, AVX512_NV>(p, rows, cols, s) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(p: &Problem, rows: Range<usize>, cols: Range<usize>, s: &mut Scratch) {
    // SAFETY: as `block_avx512`, for AVX2 and FMA.
    unsafe { block::<Avx2, AVX2_MR, AVX2_NV>(p, rows, cols, s) }
}

/// Resizes `v` to at least `len` elements (new ones 0) and returns its start.
fn room(v: &mut Vec<f32>, len: usize) -> *mut f32 {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v.as_mut_ptr()
}

/// The block `rows × cols` of the product, in instruction set `S` with an `MR × NV·LANES`
/// register tile: B packed block by block, A in place or panel by panel.
///
/// # Safety
/// As [`compute`], with `S` an instruction set this CPU has.
#[inline(always)]
unsafe fn block<S: Simd, const MR: usize, const NV: usize>(
    p: &Problem,
    rows: Range<usize>,
    cols: Range<usize>,
    scratch: &mut Scratch,
) {
    let nr = NV * S::LANES;
    if p.k == 0 {
        // SAFETY: `rows × cols` lies inside C (contract).
        unsafe { fill_without_product(p, rows, cols) };
        return;
    }
    let pack_a = packs_a(p);
    let b_panel_room = KC * NC.min(cols.len()).div_ceil(nr) * nr;
    let b_packed = room(&mut scratch.b, b_panel_room);
    let a_packed = room(&mut scratch.a, KC * MR);
    let mut jc = cols.start;
    while jc < cols.end {
        let nc = NC.min(cols.end - jc);
        let mut pc = 0;
        while pc < p.k {
            let kc = KC.min(p.k - pc);
            // SAFETY: the block `pc..pc+kc` × `jc..jc+nc` lies inside B (k × n), and the
            // buffer holds `kc · ⌈nc / nr⌉ · nr` elements (`b_panel_room`).
            unsafe { pack_b::<S, NV>(p, pc, kc, jc, nc, b_packed) };
            let init = if pc == 0 { p.init } else { RawInit::Accumulate };
            let mut ir = rows.start;
            while ir < rows.end {
                let mr = MR.min(rows.end - ir);
                let (a, lda, a_t) = if mr == MR && !pack_a {
                    let a = if p.a_t {
                        // SAFETY: (ir, pc) lies inside A (m × k).
                        unsafe { p.a.add(pc * p.lda + ir) }
                    } else {
                        // SAFETY: as above.
                        unsafe { p.a.add(ir * p.lda + pc) }
                    };
                    (a, p.lda, p.a_t)
                } else {
                    // SAFETY: rows `ir..ir+mr` and steps `pc..pc+kc` lie inside A; the
                    // panel buffer holds `KC · MR ≥ kc · MR` elements.
                    unsafe { pack_a_panel::<MR>(p, ir, mr, pc, kc, a_packed) };
                    (a_packed.cast_const(), MR, true)
                };
                let mut jr = 0;
                while jr < nc {
                    let nv = nr.min(nc - jr);
                    // SAFETY: the tile (ir..ir+mr) × (jc+jr..jc+jr+nv) lies inside this
                    // block of C (rows, cols ⊆ m × n; contract); the A panel holds `kc`
                    // steps of `MR` rows at stride `lda` (rows past `mr` were packed as
                    // zeros); the B panel at `jr · kc` holds `kc × nr` packed values.
                    unsafe {
                        let tile = Tile {
                            kc,
                            a,
                            lda,
                            b: b_packed.add(jr * kc),
                            c: p.c.add(ir * p.n + jc + jr),
                            ldc: p.n,
                            mr,
                            nv,
                            init: match init {
                                RawInit::Bias(bias) => RawInit::Bias(bias.add(jc + jr)),
                                other => other,
                            },
                        };
                        if a_t {
                            microkernel::<S, MR, NV, true>(&tile)
                        } else {
                            microkernel::<S, MR, NV, false>(&tile)
                        }
                    }
                    jr += nr;
                }
                ir += MR;
            }
            pc += kc;
        }
        jc += nc;
    }
}

/// `C = bias` (or 0, or unchanged) on the block: the product of an empty inner dimension.
///
/// # Safety
/// `rows × cols` lies inside C; a bias holds `n` values.
unsafe fn fill_without_product(p: &Problem, rows: Range<usize>, cols: Range<usize>) {
    for i in rows {
        for j in cols.clone() {
            // SAFETY: (i, j) lies inside C and j inside the bias (contract); `write`
            // does not read the old, maybe uninitialised, value.
            unsafe {
                match p.init {
                    RawInit::Overwrite => p.c.add(i * p.n + j).write(0.0),
                    RawInit::Bias(bias) => p.c.add(i * p.n + j).write(*bias.add(j)),
                    RawInit::Accumulate => {}
                }
            }
        }
    }
}

/// Packs rows `pc..pc+kc`, columns `jc..jc+nc` of B into panels of `nr = NV·LANES`
/// columns: panel `q` holds at `dst + q·nr·kc + p·nr + j` the element (pc + p,
/// jc + q·nr + j), zeros past column `nc`.
///
/// # Safety
/// The block lies inside B; `dst` is valid for writes of `kc · ⌈nc / nr⌉ · nr` f32; `S`
/// runs on this CPU.
#[inline(always)]
unsafe fn pack_b<S: Simd, const NV: usize>(
    p: &Problem,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    dst: *mut f32,
) {
    let (l, nr) = (S::LANES, NV * S::LANES);
    let mut q = 0;
    while q * nr < nc {
        let panel_cols = nr.min(nc - q * nr);
        // SAFETY (for the whole panel): panel `q` starts at `q·nr·kc` and holds `kc·nr`
        // elements, inside the buffer; source elements are read only for rows
        // `pc..pc+kc` and the panel's `panel_cols` columns, inside B.
        unsafe {
            let panel = dst.add(q * nr * kc);
            let j0 = jc + q * nr;
            if !p.b_t {
                // Row-major B: each step's `panel_cols` values are contiguous.
                for step in 0..kc {
                    let src = p.b.add((pc + step) * p.ldb + j0);
                    let out = panel.add(step * nr);
                    for v in 0..NV {
                        let have = panel_cols.saturating_sub(v * l);
                        let x = if have >= l {
                            S::load(src.add(v * l))
                        } else if have > 0 {
                            S::load_first(src.add(v * l), have)
                        } else {
                            S::zero()
                        };
                        S::store(out.add(v * l), x);
                    }
                }
            } else {
                // Transposed B (column j is row j of the stored matrix): `l × l` blocks
                // transposed in registers, the ragged edges one element at a time.
                for v in 0..NV {
                    let have = panel_cols.saturating_sub(v * l).min(l);
                    let out = panel.add(v * l);
                    let mut step = 0;
                    if have == l {
                        while step + l <= kc {
                            S::transpose(
                                p.b.add((j0 + v * l) * p.ldb + pc + step),
                                p.ldb,
                                out.add(step * nr),
                                nr,
                            );
                            step += l;
                        }
                    }
                    for s in step..kc {
                        for j in 0..l {
                            *out.add(s * nr + j) = if j < have {
                                *p.b.add((j0 + v * l + j) * p.ldb + pc + s)
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
        q += 1;
    }
}

/// Packs rows `ir..ir+mr` and steps `pc..pc+kc` of A into `dst`: (i, p) at `p·MR + i`,
/// zeros for rows `mr..MR`.
///
/// # Safety
/// The rows and steps lie inside A; `dst` is valid for writes of `kc · MR` f32.
#[inline(always)]
unsafe fn pack_a_panel<const MR: usize>(
    p: &Problem,
    ir: usize,
    mr: usize,
    pc: usize,
    kc: usize,
    dst: *mut f32,
) {
    if p.a_t && mr == MR {
        // The panel's rows are contiguous at each step: one copy of `MR` values per step.
        for step in 0..kc {
            // SAFETY: (ir..ir+MR, pc + step) lies inside A (contract: mr = MR rows), at
            // `(pc + step)·lda + ir`, contiguous in a transposed A; `step·MR + MR ≤
            // kc·MR`; the panel buffer and A do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    p.a.add((pc + step) * p.lda + ir),
                    dst.add(step * MR),
                    MR,
                )
            };
        }
        return;
    }
    for step in 0..kc {
        for i in 0..MR {
            // SAFETY: (ir + i, pc + step) lies inside A for i < mr (contract), and
            // `step·MR + i < kc·MR`.
            unsafe {
                *dst.add(step * MR + i) = if i >= mr {
                    0.0
                } else if p.a_t {
                    *p.a.add((pc + step) * p.lda + ir + i)
                } else {
                    *p.a.add((ir + i) * p.lda + pc + step)
                };
            }
        }
    }
}

/// One step `p` of the microkernel: `NV` loads of the B panel, `MR` broadcasts of A,
/// `MR·NV` multiply-adds into the tile.
///
/// # Safety
/// As [`microkernel`], for step `p < kc`.
#[inline(always)]
unsafe fn step<S: Simd, const MR: usize, const NV: usize, const A_T: bool>(
    acc: &mut [[S::V; NV]; MR],
    a: *const f32,
    lda: usize,
    b: *const f32,
    p: usize,
) {
    let l = S::LANES;
    // SAFETY: row `p` of the panel and A's (i, p) for i < MR are readable (contract).
    unsafe {
        let bp = b.add(p * NV * l);
        let bv: [S::V; NV] = std::array::from_fn(|v| S::load(bp.add(v * l)));
        for (i, row) in acc.iter_mut().enumerate() {
            let x = if A_T {
                *a.add(p * lda + i)
            } else {
                *a.add(i * lda + p)
            };
            let av = S::splat(x);
            for v in 0..NV {
                row[v] = S::mul_add(av, bv[v], row[v]);
            }
        }
    }
}

/// One call of the microkernel: `C[0..mr, 0..nv] (+)= Σ_p A[i, p]·B̃[p, j]` over `kc`
/// steps, with A's (i, p) at `a + i·lda + p` (`a + p·lda + i` when transposed) and the
/// packed panel's (p, j) at `b + p·NR + j`; C's (i, j) at `c + i·ldc + j`.
#[derive(Clone, Copy)]
struct Tile {
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nv: usize,
    init: RawInit,
}

/// The register tile: an `MR × NV·LANES` block of C accumulated in registers over the
/// tile's `kc` steps, then written once as `init` says.
///
/// # Safety
/// `S` runs on this CPU; A is readable at (i, p) for every i < MR, p < kc; the panel
/// holds `kc · NV·LANES` values; C is valid for writes (and reads, for `Accumulate`) at
/// (i, j) for i < mr ≤ MR, j < nv ≤ NV·LANES; a bias is readable for `nv` values.
#[inline(always)]
unsafe fn microkernel<S: Simd, const MR: usize, const NV: usize, const A_T: bool>(t: &Tile) {
    let Tile {
        kc,
        a,
        lda,
        b,
        c,
        ldc,
        mr,
        nv,
        init,
    } = *t;
    let l = S::LANES;
    // SAFETY (whole body): every read and write below is one the contract allows.
    unsafe {
        let mut acc = [[S::zero(); NV]; MR];
        // Four steps per loop iteration: fewer loop instructions per multiply-add.
        let mut p = 0;
        while p + UNROLL <= kc {
            for u in 0..UNROLL {
                step::<S, MR, NV, A_T>(&mut acc, a, lda, b, p + u);
            }
            p += UNROLL;
        }
        while p < kc {
            step::<S, MR, NV, A_T>(&mut acc, a, lda, b, p);
            p += 1;
        }
        for (i, row) in acc.iter().enumerate() {
            if i >= mr {
                break;
            }
            let cr = c.add(i * ldc);
            for (v, &x) in row.iter().enumerate() {
                let j = v * l;
                if j >= nv {
                    break;
                }
                let have = nv - j;
                let load = |p: *const f32| {
                    if have >= l {
                        S::load(p)
                    } else {
                        S::load_first(p, have)
                    }
                };
                let x = match init {
                    RawInit::Overwrite => x,
                    RawInit::Accumulate => S::add(x, load(cr.add(j))),
                    RawInit::Bias(bias) => S::add(x, load(bias.add(j))),
                };
                if have >= l {
                    S::store(cr.add(j), x);
                } else {
                    S::store_first(cr.add(j), x, have);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `C = A·B` by the definition, in f64, for A (m × k) and B (k × n) given as
    /// row-major data of their stored forms (transposed when `a_t` / `b_t`).
    #[allow(clippy::too_many_arguments)]
    fn naive(a: &[f32], a_t: bool, b: &[f32], b_t: bool, m: usize, k: usize, n: usize) -> Vec<f64> {
        let at = |i: usize, p: usize| f64::from(if a_t { a[p * m + i] } else { a[i * k + p] });
        let bt = |p: usize, j: usize| f64::from(if b_t { b[j * k + p] } else { b[p * n + j] });
        (0..m * n)
            .map(|ij| (0..k).map(|p| at(ij / n, p) * bt(p, ij % n)).sum())
            .collect()
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Products the tests run in chunks: from this many multiply-adds.
    const TEST_PARALLEL_MIN_WORK: usize = 1 << 17;

    /// Runs `C (+)= A·B` with the kernel for `isa` on one or more threads (chunks split as
    /// `sgemm` would), through `compute` and `Chunks` directly.
    #[allow(clippy::too_many_arguments)]
    fn product(
        isa: Isa,
        a: &[f32],
        a_t: bool,
        b: &[f32],
        b_t: bool,
        (m, k, n): (usize, usize, usize),
        c: &mut [f32],
        init: Init<'_, f32>,
        threads: usize,
    ) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() == m * n);
        let problem = Problem {
            m,
            n,
            k,
            a: a.as_ptr(),
            lda: if a_t { m } else { k },
            a_t,
            b: b.as_ptr(),
            ldb: if b_t { k } else { n },
            b_t,
            c: c.as_mut_ptr(),
            init: match init {
                Init::Overwrite => RawInit::Overwrite,
                Init::Accumulate => RawInit::Accumulate,
                Init::Bias(bias) => {
                    assert_eq!(bias.len(), n);
                    RawInit::Bias(bias.as_ptr())
                }
            },
        };
        if m == 0 || n == 0 {
            return;
        }
        // Split from a smaller size than `sgemm` does, so that the test shapes run in chunks.
        let chunks = Chunks::plan(&problem, isa.tile(), threads, TEST_PARALLEL_MIN_WORK);
        let run = |i: usize| {
            let (rows, cols) = chunks.get(i);
            // SAFETY: as in `sgemm`: sizes asserted above, chunks disjoint, `isa` one of
            // `Isa::supported()`.
            unsafe { compute(isa, &problem, rows, cols) }
        };
        run_chunks(threads, chunks.count, &run);
    }

    /// Every instruction set this CPU has, every layout, every way of writing C, on the
    /// odd sizes that exercise the edges of tiles, panels and blocks (1, 7, 17, 63, 65,
    /// 129 in each dimension; around `KC` and `NC`; A packed or read in place), on 1 and 2
    /// threads (the larger shapes are split into chunks).
    #[test]
    fn odd_shapes_match_the_naive_product_in_every_layout_and_mode() {
        let sizes = [1, 7, 17, 63, 65, 129];
        let shapes = sizes
            .iter()
            .flat_map(|&m| sizes.iter().map(move |&k| (m, k)))
            .flat_map(|(m, k)| sizes.iter().map(move |&n| (m, k, n)))
            .filter(|&(m, k, n)| m * k * n <= 65 * 129 * 17 || m == 1 || n == 1)
            .chain([
                (9, 300, 33),
                (33, 300, 65),
                (129, 17, 600),
                // Around KC = 256 and NC = 512, and a transposed A of ≥ 256 rows (packed).
                (9, 255, 511),
                (17, 256, 512),
                (7, 257, 513),
                (263, 33, 40),
                (257, 260, 70),
            ]);
        for isa in Isa::supported() {
            for (m, k, n) in shapes.clone() {
                for (a_t, b_t) in [(false, false), (false, true), (true, false), (true, true)] {
                    let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(n, 3));
                    let want = naive(&a, a_t, &b, b_t, m, k, n);
                    let start = values(m * n, 4);
                    let tol = 1e-5 * (k as f64 + 1.0);
                    let check = |c: &[f32], add: &dyn Fn(usize) -> f64, what: &str| {
                        for (ij, (&got, &w)) in c.iter().zip(&want).enumerate() {
                            let w = w + add(ij);
                            assert!(
                                (f64::from(got) - w).abs() <= tol,
                                "{isa:?} {what} {m}×{k}·{k}×{n} a_t {a_t} b_t {b_t} at {ij}: {got} vs {w}"
                            );
                        }
                    };
                    let nans = vec![f32::NAN; m * n];
                    type Expected<'a> = &'a dyn Fn(usize) -> f64;
                    let modes: [(Init<'_, f32>, &[f32], Expected<'_>); 3] = [
                        (Init::Overwrite, &nans, &|_| 0.0),
                        (Init::Accumulate, &start, &|ij| f64::from(start[ij])),
                        (Init::Bias(&bias), &nans, &|ij| f64::from(bias[ij % n])),
                    ];
                    for (init, before, add) in modes {
                        for threads in [1, 2] {
                            let mut c = before.to_vec();
                            product(isa, &a, a_t, &b, b_t, (m, k, n), &mut c, init, threads);
                            check(&c, add, if threads > 1 { "2 threads" } else { "1 thread" });
                        }
                    }
                }
            }
        }
    }

    /// Chunks of tiles run the same arithmetic whichever thread runs them: two threads
    /// give one thread's result bit for bit, at the resmlp-M products (every layout,
    /// twice in a row so that the second product finds the helper spinning).
    #[test]
    fn two_threads_give_the_one_thread_result_bit_for_bit() {
        for (m, k, n) in [(64, 256, 256), (256, 64, 256), (65, 129, 63)] {
            for (a_t, b_t) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(n, 3));
                let isa = Isa::get();
                let run = |threads| {
                    let mut c = vec![f32::NAN; m * n];
                    let init = Init::Bias(&bias);
                    product(isa, &a, a_t, &b, b_t, (m, k, n), &mut c, init, threads);
                    c
                };
                let one = run(1);
                for _ in 0..2 {
                    let two = run(2);
                    assert!(
                        one.iter()
                            .zip(&two)
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{m}×{k}·{k}×{n} a_t {a_t} b_t {b_t}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_sizes_write_what_the_mode_says_and_nothing_else() {
        for isa in Isa::supported() {
            for (m, n) in [(3, 5), (1, 1), (17, 33)] {
                let bias = values(n, 5);
                // An empty inner dimension, operands stored as is or transposed.
                let empty = |c: &mut [f32], t: bool, init: Init<'_, f32>, threads: usize| {
                    product(isa, &[], t, &[], t, (m, 0, n), c, init, threads)
                };
                let mut c = vec![f32::NAN; m * n];
                empty(&mut c, false, Init::Overwrite, 1);
                assert!(c.iter().all(|&x| x == 0.0), "{isa:?} k = 0 overwrite");
                let mut c = vec![f32::NAN; m * n];
                empty(&mut c, true, Init::Bias(&bias), 2);
                assert!(
                    c.iter().enumerate().all(|(ij, &x)| x == bias[ij % n]),
                    "{isa:?} k = 0 bias"
                );
                let mut c = values(m * n, 6);
                let before = c.clone();
                empty(&mut c, false, Init::Accumulate, 1);
                assert_eq!(c, before, "{isa:?} k = 0 accumulate");
            }
            // m = 0 or n = 0: nothing to write, nothing read.
            product(
                isa,
                &values(7, 1),
                false,
                &[],
                false,
                (0, 7, 0),
                &mut [],
                Init::Overwrite,
                2,
            );
            product(
                isa,
                &[],
                false,
                &values(21, 1),
                false,
                (0, 7, 3),
                &mut [],
                Init::Accumulate,
                1,
            );
        }
    }

    #[test]
    fn nan_and_infinity_propagate_through_the_product() {
        for isa in Isa::supported() {
            let (m, k, n) = (9, 20, 40);
            let mut a = values(m * k, 1);
            a[3 * k + 5] = f32::NAN; // row 3
            let mut b = values(k * n, 2);
            b[7 * n + 33] = f32::INFINITY; // column 33
            let mut c = vec![0.0; m * n];
            product(
                isa,
                &a,
                false,
                &b,
                false,
                (m, k, n),
                &mut c,
                Init::Overwrite,
                1,
            );
            for i in 0..m {
                for j in 0..n {
                    let x = c[i * n + j];
                    if i == 3 {
                        assert!(x.is_nan(), "{isa:?} ({i}, {j})");
                    } else if j == 33 {
                        assert!(x.is_infinite() || x.is_nan(), "{isa:?} ({i}, {j})");
                    } else {
                        assert!(x.is_finite(), "{isa:?} ({i}, {j})");
                    }
                }
            }
        }
    }

    #[test]
    fn chunks_cover_the_product_once_in_whole_tiles() {
        for (m, k, n, threads) in [
            (64, 256, 256, 2),
            (256, 1024, 1024, 2),
            (32, 64, 64, 2),
            (1000, 64, 7, 2),
            (65, 129, 63, 3),
            (4096, 4096, 1, 2),
        ] {
            let p = Problem {
                m,
                n,
                k,
                a: std::ptr::null(),
                lda: k,
                a_t: false,
                b: std::ptr::null(),
                ldb: n,
                b_t: false,
                c: std::ptr::null_mut(),
                init: RawInit::Overwrite,
            };
            for isa in Isa::supported() {
                let (mr, nr) = isa.tile();
                let chunks = Chunks::plan(&p, (mr, nr), threads, TEST_PARALLEL_MIN_WORK);
                let mut covered = vec![0u8; m * n];
                for i in 0..chunks.count {
                    let (rows, cols) = chunks.get(i);
                    assert!(rows.end <= m && cols.end <= n && !rows.is_empty() && !cols.is_empty());
                    let tile = if chunks.by_columns { nr } else { mr };
                    assert!(chunks.step.is_multiple_of(tile));
                    for r in rows {
                        for c in cols.clone() {
                            covered[r * n + c] += 1;
                        }
                    }
                }
                assert!(covered.iter().all(|&x| x == 1), "{m}×{n} on {threads}");
                if m * n * k < TEST_PARALLEL_MIN_WORK {
                    assert_eq!(chunks.count, 1);
                }
            }
        }
    }

    /// The dispatcher's precondition: only instruction sets this CPU runs are offered,
    /// the portable one always, the chosen one among them.
    #[test]
    fn precondition_only_instruction_sets_the_cpu_has_are_chosen() {
        let supported = Isa::supported();
        assert_eq!(supported.last(), Some(&Isa::Portable));
        assert!(supported.contains(&Isa::get()));
        #[cfg(target_arch = "x86_64")]
        for isa in supported {
            match isa {
                Isa::Avx512 => assert!(std::arch::is_x86_feature_detected!("avx512f")),
                Isa::Avx2 => assert!(
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                ),
                Isa::Portable => {}
            }
        }
    }

    /// The transposes the packing of a transposed B relies on, each instruction set
    /// against the definition.
    #[test]
    fn in_register_transposes_transpose() {
        fn check<S: Simd>(run: impl Fn(*const f32, usize, *mut f32, usize)) {
            let l = S::LANES;
            let (ld, dst_ld) = (l + 3, l + 5);
            let src = values(l * ld, 7);
            let mut dst = vec![f32::NAN; l * dst_ld];
            run(src.as_ptr(), ld, dst.as_mut_ptr(), dst_ld);
            for r in 0..l {
                for c in 0..l {
                    assert_eq!(dst[c * dst_ld + r], src[r * ld + c], "{l} lanes ({r}, {c})");
                }
            }
        }
        // SAFETY (each): the instruction set is present (checked by `Isa::supported`),
        // and `src`/`dst` hold `LANES` rows at strides `ld`/`dst_ld` of `LANES` values.
        check::<Portable>(|s, ld, d, dl| unsafe { Portable::transpose(s, ld, d, dl) });
        #[cfg(target_arch = "x86_64")]
        for isa in Isa::supported() {
            match isa {
                Isa::Avx512 => {
                    check::<Avx512>(|s, ld, d, dl| unsafe { transpose_avx512(s, ld, d, dl) })
                }
                Isa::Avx2 => check::<Avx2>(|s, ld, d, dl| unsafe { transpose_avx2(s, ld, d, dl) }),
                Isa::Portable => {}
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_avx512(s: *const f32, ld: usize, d: *mut f32, dl: usize) {
        // SAFETY: the caller's.
        unsafe { Avx512::transpose(s, ld, d, dl) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose_avx2(s: *const f32, ld: usize, d: *mut f32, dl: usize) {
        // SAFETY: the caller's.
        unsafe { Avx2::transpose(s, ld, d, dl) }
    }
}
