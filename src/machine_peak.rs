//! The machine's measured floating-point peak: what "% of peak" in the benchmarks and the
//! tutorial is a percentage of.
//!
//! A matrix product cannot beat the rate at which the cores retire fused multiply-adds, so
//! that rate, measured on the spot, is the honest yardstick on a shared machine whose clock
//! and neighbours change from run to run. [`f32_peak_gflops`] runs a loop of independent
//! 8-lane f32 FMAs (AVX2 + FMA) on `threads` threads for a fixed number of iterations and
//! returns the total rate in GFLOP/s (one FMA = 2 FLOPs per lane).
//!
//! ```
//! if let Some(peak) = wengert::machine_peak::f32_peak_gflops(1) {
//!     assert!(peak > 1.0);
//! }
//! ```

use std::time::Instant;

/// Independent accumulators: enough to cover the FMA latency on both FMA ports.
const CHAINS: usize = 12;

/// The f32 multiply-add peak of `threads` threads in GFLOP/s, or `None` where the loop
/// cannot run (not x86-64, or no AVX2/FMA).
pub fn f32_peak_gflops(threads: usize) -> Option<f64> {
    let threads = threads.max(1);
    let iterations = 20_000_000;
    // Warm the cores up (clock ramp), then time all threads together.
    fma_seconds(iterations / 10)?;
    let start = Instant::now();
    let all_ran = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || fma_seconds(iterations)))
            .collect();
        workers
            .into_iter()
            .all(|w| w.join().ok().flatten().is_some())
    });
    let seconds = start.elapsed().as_secs_f64();
    all_ran.then(|| {
        let flops = (threads * iterations * CHAINS * 8 * 2) as f64;
        flops / seconds / 1e9
    })
}

/// The best f32 multiply-add rate of one thread over `samples` short measurements (about
/// 5 ms each), in GFLOP/s; `None` where the loop cannot run. On a machine other programs
/// share, a long measurement is likely to be interrupted and read low; a short one often
/// runs whole, and the best of several estimates the core's rate. (Divide a kernel's best
/// time by this, or its typical time by [`f32_peak_gflops`].)
///
/// ```
/// if let Some(peak) = wengert::machine_peak::f32_peak_gflops_best_of(3) {
///     assert!(peak > 1.0);
/// }
/// ```
pub fn f32_peak_gflops_best_of(samples: usize) -> Option<f64> {
    let iterations = 1_000_000;
    fma_seconds(iterations)?; // clock ramp
    (0..samples.max(1))
        .map(|_| fma_seconds(iterations))
        .map(|s| s.map(|s| (iterations * CHAINS * 8 * 2) as f64 / s / 1e9))
        .try_fold(0f64, |best, rate| rate.map(|r| best.max(r)))
}

/// Runs `iterations` rounds of `CHAINS` 8-lane FMAs; the time taken, or `None` when the
/// CPU cannot.
fn fma_seconds(iterations: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let start = Instant::now();
        // SAFETY: the CPU supports AVX2 and FMA (checked just above), the only
        // requirement of this `target_feature` function.
        let sum = unsafe { fma_loop(iterations) };
        std::hint::black_box(sum);
        return Some(start.elapsed().as_secs_f64());
    }
    let _ = iterations;
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop(iterations: usize) -> f32 {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let mut total = _mm256_setzero_ps();
    for a in acc {
        total = _mm256_add_ps(total, a);
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32, exactly one unaligned 256-bit store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_loop_computes_the_fused_recurrence_it_claims() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // Every lane runs a ← a·x + y (fused, one rounding): so does `f32::mul_add`.
            let mut a = 0f32;
            for _ in 0..1000 {
                a = a.mul_add(0.999_999, 1e-7);
            }
            let mut lane = 0f32;
            for _ in 0..super::CHAINS {
                lane += a;
            }
            let want: f32 = [lane; 8].iter().sum();
            // SAFETY: AVX2 and FMA are present (checked above).
            assert_eq!(unsafe { super::fma_loop(1000) }, want);
        }
    }

    #[test]
    fn the_peak_is_a_positive_rate_wherever_the_loop_runs() {
        let supported = cfg!(target_arch = "x86_64") && super::fma_seconds(1).is_some();
        match super::f32_peak_gflops(1) {
            Some(peak) => assert!(supported && peak > 0.0 && peak.is_finite()),
            None => assert!(!supported),
        }
    }
}
