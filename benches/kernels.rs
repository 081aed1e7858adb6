//! Kernels: matrix products through `Var::matmul` (recorded on a tape) against the `gemm`
//! crate called directly, f32 and f64, at the resmlp shapes and 1024³; conv2d on a
//! ResNet-like layer; elementwise ops in GB/s. Products are reported as FLOP/s, to read
//! against the machine's f32 FMA peak printed first.

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

criterion_group!(benches, matmul, conv2d, elementwise);
criterion_main!(benches);
