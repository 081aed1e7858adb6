//! Kernels: matrix products through `Var::matmul` (recorded on a tape) against the `gemm`
//! crate called directly, f32 and f64, at the resmlp shapes and 1024³; elementwise ops in
//! GB/s. Reported as GFLOP/s so they compare with the machine's measured GEMM peak.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wengert::autograd::{Element, Tape, Tensor, seeded_rng, set_num_threads};
use wengert::machine_peak::f32_peak_gflops;

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

criterion_group!(benches, matmul, elementwise);
criterion_main!(benches);
