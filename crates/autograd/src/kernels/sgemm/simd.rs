//! The vector instructions the f32 GEMM is written in: one small trait, implemented for
//! AVX-512, AVX2 + FMA and a portable fallback (plain arrays the compiler may vectorise).
//!
//! Every method is `unsafe`: it may only run on a CPU that has the instruction set (the
//! dispatcher in `sgemm` checks that once, at run time, before calling any of them), and
//! the pointer arguments must be valid as each method says.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// A vector instruction set holding `LANES` f32 per register.
pub(super) trait Simd: Copy {
    /// One register.
    type V: Copy;
    /// f32 lanes per register.
    const LANES: usize;

    /// All lanes 0.
    ///
    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn zero() -> Self::V;
    /// `x` in every lane.
    ///
    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` values from `p`.
    ///
    /// # Safety
    /// The CPU has this instruction set; `p` is valid for reads of `LANES` f32 (any
    /// alignment).
    unsafe fn load(p: *const f32) -> Self::V;
    /// The first `n` lanes from `p`, the others 0.
    ///
    /// # Safety
    /// The CPU has this instruction set; `n < LANES`; `p` is valid for reads of `n` f32.
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V;
    /// `LANES` values to `p`.
    ///
    /// # Safety
    /// The CPU has this instruction set; `p` is valid for writes of `LANES` f32.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n` lanes to `p`.
    ///
    /// # Safety
    /// The CPU has this instruction set; `n < LANES`; `p` is valid for writes of `n` f32.
    unsafe fn store_first(p: *mut f32, v: Self::V, n: usize);
    /// `a · b + c`, lane by lane (fused where the instruction set has it).
    ///
    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`, lane by lane.
    ///
    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Transposes a `LANES × LANES` block: `dst[c · dst_ld + r] = src[r · ld + c]`.
    ///
    /// # Safety
    /// The CPU has this instruction set; for every `r < LANES`, `src + r · ld` is valid for
    /// reads of `LANES` f32 and `dst + r · dst_ld` for writes of `LANES` f32.
    unsafe fn transpose(src: *const f32, ld: usize, dst: *mut f32, dst_ld: usize);
}

/// AVX-512 (F): 16 lanes, 32 registers.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: the CPU has AVX-512 F (this method's contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: as `zero`.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: AVX-512 F is present and `p` is readable for 16 f32 (contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> __m512 {
        // SAFETY: AVX-512 F is present; the masked load touches only the first `n < 16`
        // lanes' memory (masked-off lanes never fault), readable by contract.
        unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: AVX-512 F is present and `p` is writable for 16 f32 (contract).
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: __m512, n: usize) {
        // SAFETY: as `load_first`, for writes.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: as `zero`.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: as `zero`.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, ld: usize, dst: *mut f32, dst_ld: usize) {
        // SAFETY: AVX-512 F is present, and every load and store below is one of the 16
        // rows of 16 f32 that the contract makes readable (`src + r·ld`) or writable
        // (`dst + c·dst_ld`).
        unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * ld)));
            // Pairs of rows interleaved, then pairs of pairs: u[4j + q] holds, in its
            // 128-bit lane l, rows 4j..4j+4 of column 4l + q.
            let t: [__m512; 16] = std::array::from_fn(|i| {
                let (a, b) = (r[i & !1], r[i | 1]);
                if i % 2 == 0 {
                    _mm512_unpacklo_ps(a, b)
                } else {
                    _mm512_unpackhi_ps(a, b)
                }
            });
            let u: [__m512; 16] = std::array::from_fn(|i| {
                let (j, q) = (i / 4, i % 4);
                let (a, b) = (
                    _mm512_castps_pd(t[4 * j + q / 2]),
                    _mm512_castps_pd(t[4 * j + 2 + q / 2]),
                );
                _mm512_castpd_ps(if q % 2 == 0 {
                    _mm512_unpacklo_pd(a, b)
                } else {
                    _mm512_unpackhi_pd(a, b)
                })
            });
            for q in 0..4 {
                let even_lo = _mm512_shuffle_f32x4::<0x88>(u[q], u[4 + q]);
                let even_hi = _mm512_shuffle_f32x4::<0x88>(u[8 + q], u[12 + q]);
                let odd_lo = _mm512_shuffle_f32x4::<0xdd>(u[q], u[4 + q]);
                let odd_hi = _mm512_shuffle_f32x4::<0xdd>(u[8 + q], u[12 + q]);
                let column = |l: usize| dst.add((4 * l + q) * dst_ld);
                _mm512_storeu_ps(column(0), _mm512_shuffle_f32x4::<0x88>(even_lo, even_hi));
                _mm512_storeu_ps(column(2), _mm512_shuffle_f32x4::<0xdd>(even_lo, even_hi));
                _mm512_storeu_ps(column(1), _mm512_shuffle_f32x4::<0x88>(odd_lo, odd_hi));
                _mm512_storeu_ps(column(3), _mm512_shuffle_f32x4::<0xdd>(odd_lo, odd_hi));
            }
        }
    }
}

/// AVX2 with FMA: 8 lanes, 16 registers.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx2;

/// Lane masks for AVX2's masked loads and stores: `MASKS[8 - n..16 - n]` enables the
/// first `n` lanes.
#[cfg(target_arch = "x86_64")]
static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The mask enabling the first `n < 8` lanes.
    #[inline(always)]
    unsafe fn first(n: usize) -> __m256i {
        // SAFETY: AVX is present (contract of the callers); `8 - n .. 16 - n` lies inside
        // `MASKS` for `n ≤ 8`.
        unsafe { _mm256_loadu_si256(MASKS.as_ptr().add(8 - n).cast()) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: the CPU has AVX2 and FMA (this method's contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: as `zero`.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: AVX is present and `p` is readable for 8 f32 (contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> __m256 {
        // SAFETY: AVX is present; the masked load touches only the first `n < 8` lanes'
        // memory (masked-off lanes never fault), readable by contract.
        unsafe { _mm256_maskload_ps(p, Self::first(n)) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: AVX is present and `p` is writable for 8 f32 (contract).
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
        // SAFETY: as `load_first`, for writes.
        unsafe { _mm256_maskstore_ps(p, Self::first(n), v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the CPU has FMA (contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: as `zero`.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, ld: usize, dst: *mut f32, dst_ld: usize) {
        // SAFETY: AVX is present, and every load and store below is one of the 8 rows of
        // 8 f32 that the contract makes readable (`src + r·ld`) or writable
        // (`dst + c·dst_ld`).
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * ld)));
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[i & !1], r[i | 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            // u[4j + q] holds, in its 128-bit lane l, rows 4j..4j+4 of column 4l + q.
            let u: [__m256; 8] = std::array::from_fn(|i| {
                let (j, q) = (i / 4, i % 4);
                let (a, b) = (
                    _mm256_castps_pd(t[4 * j + q / 2]),
                    _mm256_castps_pd(t[4 * j + 2 + q / 2]),
                );
                _mm256_castpd_ps(if q % 2 == 0 {
                    _mm256_unpacklo_pd(a, b)
                } else {
                    _mm256_unpackhi_pd(a, b)
                })
            });
            for q in 0..4 {
                _mm256_storeu_ps(
                    dst.add(q * dst_ld),
                    _mm256_permute2f128_ps::<0x20>(u[q], u[4 + q]),
                );
                _mm256_storeu_ps(
                    dst.add((4 + q) * dst_ld),
                    _mm256_permute2f128_ps::<0x31>(u[q], u[4 + q]),
                );
            }
        }
    }
}

/// Any CPU: 8 lanes as a plain array, arithmetic the compiler may vectorise (SSE2 on
/// x86-64). Multiply and add round separately here.
#[derive(Clone, Copy)]
pub(super) struct Portable;

impl Simd for Portable {
    type V = [f32; 8];
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> [f32; 8] {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 8] {
        // SAFETY: `p` is readable for 8 f32 (contract); `read_unaligned` allows any
        // alignment.
        unsafe { p.cast::<[f32; 8]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> [f32; 8] {
        let mut v = [0.0; 8];
        // SAFETY: `p` is readable for `n < 8` f32 (contract), `v` writable for 8.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n) };
        v
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 8]) {
        // SAFETY: `p` is writable for 8 f32 (contract).
        unsafe { p.cast::<[f32; 8]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: [f32; 8], n: usize) {
        // SAFETY: `p` is writable for `n < 8` f32 (contract); `v` is a local.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, n) };
    }
    #[inline(always)]
    unsafe fn mul_add(a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn add(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, ld: usize, dst: *mut f32, dst_ld: usize) {
        for r in 0..8 {
            for c in 0..8 {
                // SAFETY: `r, c < 8`: inside the rows the contract makes readable and
                // writable.
                unsafe { *dst.add(c * dst_ld + r) = *src.add(r * ld + c) };
            }
        }
    }
}
