//! resmlp-step (WORKLOADS.md): forward + backward + SGD of N residual blocks, f32, sizes
//! S, M and L, on 1 and 2 threads — autograd (nn blocks, backward from the tape) against
//! the manual-backward reference (hand-written backward, the same kernels).
//!
//! `cargo bench --features bench --bench resmlp` (add `-- resmlp/S` to run one size). Printed once per size:
//! the initial loss (to match runs with other implementations) and the peak bytes live
//! during one step, measured with a counting global allocator.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use wengert::autograd::alloc_meter::{self, CountingAllocator};
use wengert::autograd::set_num_threads;
use wengert::machine_peak::f32_peak_gflops;
use wengert::workloads::{ResMlp, autograd_step, manual_blocks, manual_step};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes allocated at the peak of `f`, above what was live before it (the tutorial's
/// meter, which switches the buffer cache off while it counts).
fn peak_bytes(f: impl FnOnce()) -> usize {
    alloc_meter::peak_bytes(f)
        .1
        .expect("the counting allocator is installed above")
}

fn resmlp(c: &mut Criterion) {
    if let (Some(one), Some(two)) = (f32_peak_gflops(1), f32_peak_gflops(2)) {
        println!(
            "machine f32 FMA peak (measured now): {one:.1} GFLOP/s on 1 thread, {two:.1} on 2; \
             criterion's thrpt below is FLOP/s (12·B·D²·N per step)"
        );
    }
    for size in [ResMlp::S, ResMlp::M, ResMlp::L] {
        let (x, y) = (size.input(), size.target());
        set_num_threads(1);
        let blocks = size.blocks();
        let mut manual = manual_blocks(&size.blocks());
        // Warm-up on copies: one-time allocations (the GEMM's thread-local packing buffers)
        // are not part of a step's peak.
        autograd_step(&size.blocks(), &x, &y, 0.01);
        manual_step(&mut manual_blocks(&size.blocks()), &x, &y, 0.01);
        let mut initial = 0.0;
        let autograd_peak = peak_bytes(|| initial = autograd_step(&blocks, &x, &y, 0.01));
        let manual_peak = peak_bytes(|| {
            manual_step(&mut manual, &x, &y, 0.01);
        });
        println!(
            "resmlp {}: B={} D={} N={}, {:.1} MFLOP/step, initial loss {initial:.7}; peak bytes per step: autograd {autograd_peak}, manual {manual_peak} (ratio {:.3})",
            size.name,
            size.batch,
            size.width,
            size.blocks,
            size.flops_per_step() / 1e6,
            autograd_peak as f64 / manual_peak as f64
        );
        let mut group = c.benchmark_group(format!("resmlp/{}", size.name));
        group.throughput(Throughput::Elements(size.flops_per_step() as u64));
        if size == ResMlp::L {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        for threads in [1, 2] {
            set_num_threads(threads);
            let blocks = size.blocks();
            group.bench_function(format!("autograd/{threads}T"), |b| {
                b.iter(|| black_box(autograd_step(&blocks, &x, &y, 0.01)))
            });
            let mut manual = manual_blocks(&size.blocks());
            group.bench_function(format!("manual/{threads}T"), |b| {
                b.iter(|| black_box(manual_step(&mut manual, &x, &y, 0.01)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, resmlp);
criterion_main!(benches);
