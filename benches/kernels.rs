//! Kernels: matrix products through `Var::matmul` (recorded on a tape) against the `gemm`
//! crate called directly, f32 and f64, at the resmlp shapes and 1024³; conv2d on a
//! ResNet-like layer; elementwise ops in GB/s. Products are reported as FLOP/s, to read
//! against the machine's f32 FMA peak printed first.

use criterion::{Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::time::Instant;
use wengert::autograd::{
    Element, F32Kernel, Tape, Tensor, bench_gemm_f32, seeded_rng, set_f32_kernel, set_num_threads,
};
use wengert::machine_peak::{f32_peak_gflops, f32_peak_gflops_best_of};

/// `out = a · b` with the gemm crate directly (row-major, no tape, no checks).
fn gemm_direct<T: Element>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    m: usize,
    k: usize,
    n: usize,
    threads: usize,
) {
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `a` is m×k, `b` is k×n and `out` is m×n, all row-major and distinct.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn matmul_for<T: Element>(c: &mut Criterion) {
    let shapes = [
        (32, 64, 64),
        (64, 256, 256),
        (256, 1024, 1024),
        (1024, 1024, 1024),
    ];
    for threads in [1, 2] {
        set_num_threads(threads);
        let mut group = c.benchmark_group(format!("matmul_{}/{threads}T", T::NAME));
        group.sample_size(10);
        for (m, k, n) in shapes {
            let a = Tensor::<T>::uniform(&[m, k], T::of(-1.0), T::one(), &mut seeded_rng(1));
            let b = Tensor::<T>::uniform(&[k, n], T::of(-1.0), T::one(), &mut seeded_rng(2));
            group.throughput(Throughput::Elements((2 * m * k * n) as u64)); // FLOP
            let label = format!("{m}x{k}x{n}");
            group.bench_function(format!("var/{label}"), |bench| {
                bench.iter(|| {
                    let tape = Tape::<T>::new();
                    let (x, w) = (tape.var(a.clone()), tape.var(b.clone()));
                    black_box(x.matmul(&w).value().numel())
                })
            });
            let mut out = vec![T::zero(); m * n];
            group.bench_function(format!("gemm/{label}"), |bench| {
                bench.iter(|| {
                    gemm_direct(a.data(), b.data(), &mut out, m, k, n, threads);
                    black_box(out[0])
                })
            });
        }
        group.finish();
    }
}

fn matmul(c: &mut Criterion) {
    print_machine_peak();
    matmul_for::<f32>(c);
    matmul_for::<f64>(c);
}

/// The yardstick for every GFLOP/s figure: the cores' f32 multiply-add rate, measured now.
fn print_machine_peak() {
    match (f32_peak_gflops(1), f32_peak_gflops(2)) {
        (Some(one), Some(two)) => println!(
            "machine f32 FMA peak (measured now): {one:.1} GFLOP/s on 1 thread, {two:.1} on 2 (f64: half)"
        ),
        _ => println!("machine f32 FMA peak: not measurable here (needs x86-64 with AVX2 and FMA)"),
    }
}

/// conv2d on a ResNet-like layer: N 8, 64 → 64 channels, 32×32, 3×3, stride 1, padding 1
/// (im2col + GEMM), forward alone and forward + backward on the tape, 1 and 2 threads.
fn conv2d(c: &mut Criterion) {
    let (n, ch, hw, k) = (8, 64, 32, 3);
    let x = Tensor::<f32>::uniform(&[n, ch, hw, hw], -1.0, 1.0, &mut seeded_rng(5));
    let w = Tensor::<f32>::uniform(&[ch, ch, k, k], -0.1, 0.1, &mut seeded_rng(6));
    let forward_flops = 2 * n * ch * hw * hw * ch * k * k;
    for threads in [1, 2] {
        set_num_threads(threads);
        let mut group = c.benchmark_group(format!("conv2d_f32_resnet_layer/{threads}T"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(forward_flops as u64)); // FLOP
        group.bench_function("forward", |b| {
            b.iter(|| black_box(x.conv2d(&w, None, (1, 1), (1, 1)).numel()))
        });
        // Backward is two more products of the same size (input and weight gradients).
        group.throughput(Throughput::Elements(3 * forward_flops as u64));
        group.bench_function("forward_backward", |b| {
            b.iter(|| {
                let tape = Tape::new();
                let (xv, wv) = (tape.var(x.clone()), tape.var(w.clone()));
                let y = xv.conv2d(&wv, None, (1, 1), (1, 1));
                let g = y.sum().backward_leaves();
                black_box(g.wrt(&wv).numel())
            })
        });
        group.finish();
    }
}

/// Elementwise ops on 1M f32 values (4 MiB in, 4 MiB out): throughput in bytes moved.
fn elementwise(c: &mut Criterion) {
    let n = 1 << 20;
    let x = Tensor::<f32>::uniform(&[n], -1.0, 1.0, &mut seeded_rng(3));
    let y = Tensor::<f32>::uniform(&[n], -1.0, 1.0, &mut seeded_rng(4));
    let mut group = c.benchmark_group("elementwise_f32_1M");
    group.throughput(Throughput::Bytes((3 * n * 4) as u64));
    group.bench_function("add", |b| b.iter(|| black_box((&x + &y).numel())));
    group.bench_function("mul", |b| b.iter(|| black_box((&x * &y).numel())));
    group.throughput(Throughput::Bytes((2 * n * 4) as u64));
    group.bench_function("relu", |b| b.iter(|| black_box(x.relu().numel())));
    group.bench_function("exp", |b| b.iter(|| black_box(x.exp().numel())));
    group.bench_function("sum", |b| b.iter(|| black_box(x.sum().item())));
    group.finish();
}

/// The f32 products of a resmlp step as its linear layers issue them, `(m, k, n, a_t, b_t,
/// what)`: forward `x·Wᵀ`, input gradient `G·W`, weight gradient `Gᵀ·x`, at M (B 64,
/// D 256) and L (B 256, D 1024).
const RESMLP_PRODUCTS: [(usize, usize, usize, bool, bool, &str); 6] = [
    (64, 256, 256, false, true, "M forward x·Wᵀ"),
    (64, 256, 256, false, false, "M input grad G·W"),
    (256, 64, 256, true, false, "M weight grad Gᵀ·x"),
    (256, 1024, 1024, false, true, "L forward x·Wᵀ"),
    (256, 1024, 1024, false, false, "L input grad G·W"),
    (1024, 256, 1024, true, false, "L weight grad Gᵀ·x"),
];

/// The calling thread's CPU time in seconds (Linux's `CLOCK_THREAD_CPUTIME_ID`): unlike
/// the wall clock, it does not run while other programs have the core.
#[cfg(target_os = "linux")]
fn thread_cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: `clock_gettime` writes one `struct timespec` (two 64-bit fields on 64-bit
    // Linux, the layout of `Timespec`) to a valid pointer; clock 3 always exists.
    let ok = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    t.seconds as f64 + t.nanoseconds as f64 * 1e-9
}

/// Seconds per call of `f`: the best of `samples` samples, each timing enough calls to
/// last about 2 ms, by the wall clock, or by this thread's CPU time when `cpu_time` (for
/// work done on this thread alone: another program taking the core then does not count).
fn best_seconds_per_call(mut f: impl FnMut(), samples: usize, cpu_time: bool) -> f64 {
    let wall = Instant::now();
    #[cfg(target_os = "linux")]
    let clock = || {
        if cpu_time {
            thread_cpu_seconds()
        } else {
            wall.elapsed().as_secs_f64()
        }
    };
    #[cfg(not(target_os = "linux"))]
    let clock = || wall.elapsed().as_secs_f64();
    f();
    let start = clock();
    f();
    let once = (clock() - start).max(1e-7);
    let calls = ((2e-3 / once) as usize).clamp(1, 10_000);
    (0..samples)
        .map(|_| {
            let start = clock();
            for _ in 0..calls {
                f();
            }
            (clock() - start) / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The median and the extremes of `xs`.
fn median_and_spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

/// The table of docs/gemm-choice.md: GFLOP/s ÷ the measured FMA peak of this crate's f32
/// kernel and of the `gemm` crate's, at the resmlp products, on 1 and 2 threads. The two
/// kernels alternate, `ROUNDS` rounds, each taking a kernel's best of 20 short samples
/// (a machine shared with other programs only slows a sample down), timed on one thread
/// by the thread's CPU time, on two by the wall clock; the figure is the
/// median over rounds (spread in brackets), divided by the best of 20 short peak
/// measurements per thread (2 threads: twice one thread's). Run with
/// `WENGERT_GEMM_TABLE=1 cargo bench --features bench --bench kernels`.
fn gemm_table() {
    const ROUNDS: usize = 5;
    let peak = f32_peak_gflops_best_of(20).unwrap_or(f64::NAN);
    // Two threads measuring at once: whether the second core adds a core's worth.
    let peak2: f64 = std::thread::scope(|s| {
        let both = [
            s.spawn(|| f32_peak_gflops_best_of(20)),
            s.spawn(|| f32_peak_gflops_best_of(20)),
        ];
        both.map(|t| t.join().ok().flatten().unwrap_or(f64::NAN))
            .iter()
            .sum()
    });
    println!(
        "f32 FMA peak (best of 20 short measurements, now): {peak:.1} GFLOP/s on one core, \
         {peak2:.1} on two threads at once; two-thread rows are against twice one core's"
    );
    println!("| product | m×k×n | threads | own kernel | gemm crate | own ÷ crate |");
    println!("|---|---|---|---|---|---|");
    for (m, k, n, a_t, b_t, what) in RESMLP_PRODUCTS {
        let a = Tensor::<f32>::uniform(&[m * k], -1.0, 1.0, &mut seeded_rng(1));
        let b = Tensor::<f32>::uniform(&[k * n], -1.0, 1.0, &mut seeded_rng(2));
        let mut out = vec![0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        for threads in [1, 2] {
            let mut rates = [Vec::new(), Vec::new()];
            let mut ratios = Vec::new();
            for _ in 0..ROUNDS {
                let mut round = [0.0; 2];
                for (i, kernel) in [F32Kernel::Own, F32Kernel::GemmCrate]
                    .into_iter()
                    .enumerate()
                {
                    set_f32_kernel(kernel);
                    let call = || {
                        bench_gemm_f32(a.data(), a_t, b.data(), b_t, (m, k, n), &mut out, threads);
                        black_box(out[0]);
                    };
                    let seconds = best_seconds_per_call(call, 20, threads == 1);
                    round[i] = flops / seconds / 1e9 / (peak * threads as f64);
                    rates[i].push(round[i]);
                }
                ratios.push(round[0] / round[1]);
            }
            let [own, krate] = rates.map(median_and_spread);
            let ratio = median_and_spread(ratios);
            let pct = |(mid, lo, hi): (f64, f64, f64)| {
                format!("{:.0} % [{:.0}–{:.0}]", 100.0 * mid, 100.0 * lo, 100.0 * hi)
            };
            println!(
                "| {what} | {m}×{k}×{n} | {threads} | {} | {} | {:.2} [{:.2}–{:.2}] |",
                pct(own),
                pct(krate),
                ratio.0,
                ratio.1,
                ratio.2
            );
        }
    }
    set_f32_kernel(F32Kernel::Own);
}

criterion_group!(benches, matmul, conv2d, elementwise);

fn main() {
    if std::env::var_os("WENGERT_GEMM_TABLE").is_some() {
        gemm_table();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
