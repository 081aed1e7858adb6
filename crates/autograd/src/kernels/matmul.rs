//! Matrix products: f32 through this crate's own kernel ([`super::sgemm`]), f64 through
//! the `gemm` crate (see the README for why).
//!
//! Transposed operands are passed to the GEMM as strides, never materialised.

use super::sgemm::{self, Init};
use crate::element::Element;
use std::any::TypeId;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The signature of the `gemm` family's kernels: `m, n, k, dst, dst_cs, dst_rs, read_dst,
/// lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, alpha, beta, conj_dst, conj_lhs, conj_rhs,
/// parallelism` (dst = alpha·dst + beta·lhs·rhs; alpha is ignored unless `read_dst`).
pub(crate) type GemmFn<T> = unsafe fn(
    usize,
    usize,
    usize,
    *mut T,
    isize,
    isize,
    bool,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    T,
    bool,
    bool,
    bool,
    gemm_common::Parallelism,
);

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads the matrix kernels may use (1 = single-threaded). The default is
/// the machine's available parallelism.
///
/// An f32 product of at least 2²¹ multiply-adds is shared between the calling thread and
/// up to `n − 1` helper threads, started on first use. After each product a helper keeps
/// watching for the next one for 500 µs (giving up its core to other threads now and
/// then) before it sleeps, so the products of one training step find it awake, as
/// OpenMP runtimes do with their block time. `set_num_threads(1)` uses no helper at all.
/// f64 products use the `gemm` crate's Rayon threads.
pub fn set_num_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// How many threads the matrix kernels may use.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            // Asked once: on Linux `available_parallelism` reads cgroup files, far too slow
            // to repeat for every matrix product.
            static AVAILABLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
            *AVAILABLE.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        }
        n => n,
    }
}

/// Which kernel computes f32 products. For benchmarks that compare them (the choice is
/// measured in docs/gemm-choice.md); not part of the stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F32Kernel {
    /// This crate's kernel (`kernels::sgemm`), threaded on Rayon's pool.
    Own,
    /// The `gemm` crate's kernel on its own (Rayon) threads, as f64 products run.
    GemmCrate,
}

static F32_KERNEL: AtomicU8 = AtomicU8::new(0);

/// Chooses the kernel of every later f32 product (all threads). For benchmarks.
#[doc(hidden)]
pub fn set_f32_kernel(kernel: F32Kernel) {
    F32_KERNEL.store(kernel as u8, Ordering::Relaxed);
}

/// The kernel f32 products use now.
fn f32_kernel() -> F32Kernel {
    match F32_KERNEL.load(Ordering::Relaxed) {
        0 => F32Kernel::Own,
        _ => F32Kernel::GemmCrate,
    }
}

/// `out = op(a) · op(b)` for row-major f32 data (`a` stored `m × k`, or `k × m` when
/// `a_t`; `b` stored `k × n`, or `n × k` when `b_t`) on at most `threads` threads, with
/// the kernel [`set_f32_kernel`] chose: the product alone, for benchmarks.
///
/// # Panics
/// When the slices do not hold the dimensions' elements.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn bench_gemm_f32(
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
    threads: usize,
) {
    let operand = |data, rows, cols, transposed| Operand {
        data,
        rows,
        cols,
        transposed,
    };
    gemm_threads(
        operand(a, m, k, a_t),
        operand(b, k, n, b_t),
        out,
        false,
        threads,
    );
}

/// Products smaller than this many multiply-adds run on one thread on the `gemm` crate
/// (f64, and f32 when switched to it): spreading them over Rayon's threads was measured
/// to cost more than it saves (docs/performance.md). The own f32 kernel has its own,
/// lower threshold.
pub(crate) const PARALLEL_MIN_WORK: usize = 1 << 23;

/// A row-major matrix operand: `rows × cols` as used in the product, stored either as is
/// (`transposed = false`, row stride `cols`) or as its transpose (stored `cols × rows`).
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub transposed: bool,
}

impl<T> Operand<'_, T> {
    /// (column stride, row stride) of the operand as it enters the product.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (stride(self.rows), 1)
        } else {
            (1, stride(self.cols))
        }
    }

    /// Whether `data` holds the `rows · cols` elements the product reads (checked
    /// arithmetic: a wrapped product must not pass for a short buffer).
    fn fits(&self) -> bool {
        self.rows
            .checked_mul(self.cols)
            .is_some_and(|len| len <= self.data.len())
    }
}

/// A dimension as a GEMM stride.
///
/// # Panics
/// Above `isize::MAX`, which no dimension of a non-empty operand reaches: such an operand
/// holds at most `isize::MAX` bytes.
fn stride(dim: usize) -> isize {
    isize::try_from(dim).unwrap_or_else(|_| panic!("gemm: dimension {dim} exceeds isize::MAX"))
}

/// `out = a · b` into a buffer that need not be initialised: the GEMM writes every element
/// without reading any (no zero-fill before the product).
///
/// # Panics
/// As [`gemm_raw`] when the dimensions do not fit the slices.
pub(crate) fn gemm_uninit<T: Element>(
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: &mut [std::mem::MaybeUninit<T>],
) {
    gemm_uninit_bias(a, b, out, None)
}

/// `out = a · b + bias` (`bias`, one value per column of the product, added to every row)
/// into a buffer that need not be initialised; without a bias as [`gemm_uninit`].
///
/// # Panics
/// As [`gemm_raw`] when the dimensions do not fit the slices, or when the bias does not
/// hold one value per column.
pub(crate) fn gemm_uninit_bias<T: Element>(
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: &mut [std::mem::MaybeUninit<T>],
    bias: Option<&[T]>,
) {
    let init = match bias {
        Some(bias) => {
            assert!(
                bias.len() == b.cols,
                "gemm: a bias of {} values for a product of {} columns",
                bias.len(),
                b.cols
            );
            Init::Bias(bias)
        }
        None => Init::Overwrite,
    };
    // SAFETY: preconditions of `gemm_raw` (see there): `out` is an exclusively borrowed
    // slice, valid for writes of `out.len()` elements of `T` (`MaybeUninit<T>` has `T`'s
    // layout) and not aliasing `a`, `b` or the bias (shared borrows); with `Overwrite` or
    // `Bias` it is never read, so it need not be initialised; a bias holds one value per
    // column (asserted above).
    unsafe {
        gemm_raw(
            a,
            b,
            out.as_mut_ptr().cast::<T>(),
            out.len(),
            init,
            num_threads(),
        )
    }
}

/// `out = a · b` (or `out += a · b` when `accumulate`), `out` row-major
/// `a.rows × b.cols`, on at most `threads` threads (1: on the calling thread only, for callers that
/// already run several products in parallel).
///
/// # Panics
/// As [`gemm_raw`] when the dimensions do not fit the slices.
pub(crate) fn gemm_threads<T: Element>(
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: &mut [T],
    accumulate: bool,
    threads: usize,
) {
    let init = if accumulate {
        Init::Accumulate
    } else {
        Init::Overwrite
    };
    // SAFETY: preconditions of `gemm_raw`: `out` is a valid, initialised, exclusively
    // borrowed slice of `out.len()` elements, so it is writable, readable when
    // accumulating, and does not alias `a` or `b` (shared borrows).
    unsafe { gemm_raw(a, b, out.as_mut_ptr(), out.len(), init, threads) }
}

/// The one place products are computed: checks the dimensions, then calls the f32 kernel
/// or the `gemm` crate's f64 kernel.
///
/// # Safety
/// `out` must be valid for writes of `out_len` elements, not alias `a`, `b` or the bias,
/// and be initialised for `Init::Accumulate` (it is read then); a bias holds `b.cols`
/// values.
///
/// # Panics
/// Unless the dimensions fit the slices — `a.cols = b.rows`, `out_len = m · n`,
/// `a.data.len() ≥ m · k`, `b.data.len() ≥ k · n` — computed with checked arithmetic, so
/// that dimensions whose products overflow are refused in release builds too (the GEMM
/// indexes with the same numbers and would otherwise read or write out of bounds).
unsafe fn gemm_raw<T: Element>(
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: *mut T,
    out_len: usize,
    init: Init<'_, T>,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        k, b.rows,
        "gemm: inner dimensions {k} and {} differ",
        b.rows
    );
    assert!(
        m.checked_mul(n) == Some(out_len),
        "gemm: an output of {out_len} elements for a {m} × {n} product"
    );
    assert!(
        a.fits() && b.fits(),
        "gemm: operands of {} and {} elements for a {m} × {k} by {k} × {n} product",
        a.data.len(),
        b.data.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if TypeId::of::<T>() == TypeId::of::<f32>() && f32_kernel() == F32Kernel::Own {
        // SAFETY: `T` is `f32` (same type id), so every cast below is the identity; then
        // `sgemm`'s preconditions: the operands hold `m·k` and `k·n` elements with
        // `a.cols = b.rows` (asserted above, checked arithmetic), and `out`, the bias
        // and the initialisation are as this function's contract requires.
        unsafe {
            let f32s = |op: Operand<'_, T>| Operand {
                data: std::slice::from_raw_parts(op.data.as_ptr().cast::<f32>(), op.data.len()),
                rows: op.rows,
                cols: op.cols,
                transposed: op.transposed,
            };
            let init = match init {
                Init::Overwrite => Init::Overwrite,
                Init::Accumulate => Init::Accumulate,
                Init::Bias(bias) => Init::Bias(std::slice::from_raw_parts(
                    bias.as_ptr().cast::<f32>(),
                    bias.len(),
                )),
            };
            sgemm::sgemm(f32s(a), f32s(b), out.cast::<f32>(), init, threads);
        }
        return;
    }
    let accumulate = match init {
        Init::Accumulate => true,
        Init::Overwrite => false,
        Init::Bias(bias) => {
            for row in 0..m {
                // SAFETY: row `row < m` of `out` is `n` elements inside the `out_len =
                // m·n` the caller guarantees writable, and the bias holds `n` values
                // (contract); the destination does not alias the bias.
                unsafe { std::ptr::copy_nonoverlapping(bias.as_ptr(), out.add(row * n), n) };
            }
            true
        }
    };
    if k == 0 {
        if !accumulate {
            for i in 0..out_len {
                // SAFETY: precondition of `ptr::write` at `out + i`: `i < out_len`, and
                // `out` is valid for writes of `out_len` elements (this function's
                // contract); `write` does not read or drop the old (maybe
                // uninitialised) value.
                unsafe { out.add(i).write(T::zero()) };
            }
        }
        return;
    }
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    let work = m.saturating_mul(n).saturating_mul(k);
    let parallelism = if threads > 1 && work >= PARALLEL_MIN_WORK {
        gemm_common::Parallelism::Rayon(threads)
    } else {
        gemm_common::Parallelism::None
    };
    // The kernels prefer a column-major destination: a row-major `out = a·b` (n > 1) is
    // computed as the column-major `outᵀ = bᵀ·aᵀ`, i.e. with the operands swapped and every
    // (column, row) stride pair exchanged (what the `gemm` umbrella crate does too).
    let (rows, cols, dst_cs, dst_rs, lhs, rhs) = if n > 1 {
        (
            n,
            m,
            stride(n),
            1,
            (b.data.as_ptr(), b_rs, b_cs),
            (a.data.as_ptr(), a_rs, a_cs),
        )
    } else {
        (
            m,
            n,
            1,
            stride(n),
            (a.data.as_ptr(), a_cs, a_rs),
            (b.data.as_ptr(), b_cs, b_rs),
        )
    };
    // SAFETY: preconditions of the `gemm` kernel (m, n, k ≥ 1 here):
    // 1. every element it reads of `lhs` / `rhs` lies inside `a.data` / `b.data`: it reads
    //    the m × k (k × n) elements at `i · row_stride + j · col_stride`, whose largest
    //    offset is `m · k − 1` (`k · n − 1`) for both layouts, and the asserts above
    //    checked, without overflow, that `a.data.len() ≥ m · k` and `b.data.len() ≥ k · n`;
    //    every stride fits `isize` (`stride` checks it).
    // 2. every element it writes of `out` lies inside the `out_len = m · n` elements
    //    (asserted above) that the caller guarantees are valid for writes, with row-major
    //    strides (n, 1) — or, swapped, column-major (1, n) of the transposed product, the
    //    same elements.
    // 3. `out` does not alias `a` or `b`, and is read only when `accumulate` is set, when
    //    the caller guarantees it is initialised (this function's contract).
    unsafe {
        T::gemm_fn()(
            rows,
            cols,
            k,
            out,
            dst_cs,
            dst_rs,
            accumulate,
            lhs.0,
            lhs.1,
            lhs.2,
            rhs.0,
            rhs.1,
            rhs.2,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemm<T: Element>(a: Operand<'_, T>, b: Operand<'_, T>, out: &mut [T], accumulate: bool) {
        gemm_threads(a, b, out, accumulate, num_threads());
    }

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(x: &[f64], r: usize, c: usize) -> Vec<f64> {
        (0..c * r).map(|i| x[(i % r) * c + i / r]).collect()
    }

    #[test]
    fn gemm_matches_naive_in_every_transpose_mode() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut out = vec![1.0; m * n];
            let op_a = Operand {
                data: if ta { &at } else { &a },
                rows: m,
                cols: k,
                transposed: ta,
            };
            let op_b = Operand {
                data: if tb { &bt } else { &b },
                rows: k,
                cols: n,
                transposed: tb,
            };
            gemm(op_a, op_b, &mut out, false);
            for (x, y) in out.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12, "{ta} {tb}");
            }
            let mut fresh = vec![std::mem::MaybeUninit::new(f64::NAN); m * n];
            gemm_uninit(op_a, op_b, &mut fresh);
            for (x, y) in fresh.iter().zip(&want) {
                // SAFETY: `gemm_uninit` wrote every element (they started as NaN, so a
                // missed or read element would show).
                assert!(
                    (unsafe { x.assume_init() } - y).abs() < 1e-12,
                    "uninit {ta} {tb}"
                );
            }
            gemm(op_a, op_b, &mut out, true);
            for (x, y) in out.iter().zip(&want) {
                assert!((x - 2.0 * y).abs() < 1e-12, "accumulate {ta} {tb}");
            }
        }
    }

    /// One test per precondition of the `unsafe` GEMM call: the safe wrappers check each
    /// (with checked arithmetic) and panic instead of reading or writing out of bounds.
    fn operand<T>(data: &[T], rows: usize, cols: usize) -> Operand<'_, T> {
        Operand {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    #[test]
    #[should_panic(expected = "gemm: inner dimensions 3 and 2 differ")]
    fn precondition_inner_dimensions_agree() {
        let (a, b) = (vec![1.0; 6], vec![1.0; 6]);
        gemm(operand(&a, 2, 3), operand(&b, 2, 3), &mut [0.0; 6], false);
    }

    #[test]
    #[should_panic(expected = "gemm: an output of 3 elements for a 2 × 2 product")]
    fn precondition_output_holds_m_times_n() {
        let (a, b) = (vec![1.0; 4], vec![1.0; 4]);
        gemm(operand(&a, 2, 2), operand(&b, 2, 2), &mut [0.0; 3], false);
    }

    #[test]
    #[should_panic(expected = "gemm: operands of 5 and 4 elements")]
    fn precondition_operands_hold_their_elements() {
        let (a, b) = (vec![1.0; 5], vec![1.0; 4]);
        gemm(operand(&a, 2, 3), operand(&b, 3, 2), &mut [0.0; 4], false);
    }

    #[test]
    #[should_panic(expected = "gemm: operands of 1 and 1 elements")]
    fn precondition_checks_dimension_products_without_wrapping() {
        // 3 · 0xAAAA_AAAA_AAAA_AAAB wraps to 1 in release arithmetic: a one-element buffer
        // would pass an unchecked `len >= m · k`, and the GEMM would read far past it.
        let (a, b) = (vec![1.0], vec![1.0]);
        let k = 0xAAAA_AAAA_AAAA_AAAB;
        gemm(operand(&a, 3, k), operand(&b, k, 0), &mut [], false);
    }

    #[test]
    #[should_panic(expected = "gemm: an output of 1 elements for a 3 × 12297829382473034411")]
    fn precondition_checks_the_output_product_without_wrapping() {
        let (a, b) = (vec![1.0; 3], vec![1.0; 1]);
        let n = 0xAAAA_AAAA_AAAA_AAAB;
        gemm(operand(&a, 3, 0), operand(&b, 0, n), &mut [0.0], false);
    }

    #[test]
    #[should_panic(expected = "gemm: a bias of 2 values for a product of 3 columns")]
    fn precondition_the_bias_holds_one_value_per_column() {
        let (a, b) = (vec![1.0f32; 4], vec![1.0f32; 6]);
        let mut out = vec![std::mem::MaybeUninit::uninit(); 6];
        gemm_uninit_bias(
            operand(&a, 2, 2),
            operand(&b, 2, 3),
            &mut out,
            Some(&[1.0; 2]),
        );
    }

    #[test]
    fn f32_products_reach_the_f32_kernel_with_every_mode_checked() {
        // The same preconditions guard the f32 kernel: a short operand panics before it.
        let short = std::panic::catch_unwind(|| {
            let (a, b) = (vec![1.0f32; 5], vec![1.0f32; 6]);
            gemm(
                operand(&a, 2, 3),
                operand(&b, 3, 2),
                &mut [0.0f32; 4],
                false,
            );
        });
        assert!(short.is_err());
        // And the f32 path computes what the f64 path does, bias included.
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let bias = [0.5, -1.0, 2.0];
        let want = naive(&a, &b, m, k, n);
        let (a32, b32): (Vec<f32>, Vec<f32>) = (
            a.iter().map(|&x| x as f32).collect(),
            b.iter().map(|&x| x as f32).collect(),
        );
        let bias32 = bias.map(|x| x as f32);
        /// The product with its bias, into NaNs (every element must be written).
        fn with_bias<T: Element>(
            a: &[T],
            b: &[T],
            bias: &[T],
            (m, k, n): (usize, usize, usize),
        ) -> Vec<std::mem::MaybeUninit<T>> {
            let mut out = vec![std::mem::MaybeUninit::new(T::nan()); m * n];
            gemm_uninit_bias(operand(a, m, k), operand(b, k, n), &mut out, Some(bias));
            out
        }
        let out = with_bias(&a32, &b32, &bias32, (m, k, n));
        let out64 = with_bias(&a, &b, &bias, (m, k, n));
        for (ij, (x, y)) in out.iter().zip(&out64).enumerate() {
            // SAFETY: both products wrote every element (they started as NaN).
            let (x, y) = unsafe { (x.assume_init(), y.assume_init()) };
            let w = want[ij] + bias[ij % n];
            assert!(
                (f64::from(x) - w).abs() < 1e-5 && (y - w).abs() < 1e-12,
                "{ij}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "gemm: dimension 18446744073709551615 exceeds isize::MAX")]
    fn precondition_strides_fit_isize() {
        let _ = stride(usize::MAX);
    }

    #[test]
    fn precondition_every_uninitialised_element_is_written_even_when_k_is_0() {
        // The destination starts as NaN (standing for uninitialised memory): with k = 0
        // every element must still be written (zeros), since the caller then `set_len`s.
        for (m, n) in [(2, 4), (1, 1), (3, 1), (1, 5)] {
            let mut out = vec![std::mem::MaybeUninit::new(f64::NAN); m * n];
            gemm_uninit(operand(&[], m, 0), operand(&[], 0, n), &mut out);
            // SAFETY: `gemm_uninit` wrote every element (checked: none is left NaN).
            assert!(
                out.iter().all(|x| unsafe { x.assume_init() } == 0.0),
                "{m} × {n}"
            );
        }
        // Accumulating over k = 0 leaves the destination as it was.
        let mut acc = vec![7.0; 6];
        gemm(operand(&[], 2, 0), operand(&[], 0, 3), &mut acc, true);
        assert_eq!(acc, vec![7.0; 6]);
    }

    #[test]
    fn products_large_enough_for_two_threads_match_the_naive_product() {
        // 256·128·256 = 2²³ multiply-adds: at the threshold, so two threads share it.
        let (m, k, n) = (256, 128, 256);
        assert!(m * k * n >= PARALLEL_MIN_WORK);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let at = transpose(&a, m, k);
        for (data, transposed) in [(&a, false), (&at, true)] {
            let lhs = Operand {
                data,
                rows: m,
                cols: k,
                transposed,
            };
            let rhs = Operand {
                data: &b,
                rows: k,
                cols: n,
                transposed: false,
            };
            let mut out = vec![0.5; m * n];
            gemm_threads(lhs, rhs, &mut out, true, 2);
            for (x, y) in out.iter().zip(&want) {
                assert!((x - 0.5 - y).abs() < 1e-9, "transposed lhs: {transposed}");
            }
        }
    }
}
