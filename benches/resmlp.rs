//! resmlp-step (WORKLOADS.md): forward + backward + SGD of N residual blocks, f32, sizes
//! S, M and L, on 1 and 2 threads, three ways (`wengert::workloads`):
//! - `autograd`: the README's training loop (`nn::value_and_grad`, then `nn::Sgd`'s step);
//! - `manual`: `nn::manual`'s layer-by-layer reference with hand-written backward;
//! - `fused`: a step written by hand for speed (buffers allocated once, bias + ReLU +
//!   residual add fused into single loops, SGD in place, the same GEMM kernels).
//!
//! `cargo bench --features bench --bench resmlp` (add `-- resmlp/S` to run one size).
//! Printed once per size: the initial loss of each implementation (autograd's and fused's
//! checked against WORKLOADS.md's value: the bench stops if one differs) and the peak
//! bytes live during one step, measured with a counting global allocator.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use wengert::autograd::alloc_meter::{self, CountingAllocator};
use wengert::autograd::set_num_threads;
use wengert::machine_peak::f32_peak_gflops;
use wengert::workloads::fused::FusedResMlp;
use wengert::workloads::{ResMlp, UserLoop, manual_blocks, manual_step};

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
        let want = size.reference_initial_loss().expect("a standard size");
        // The first step of each: its initial loss, and the one-time allocations (the
        // optimizer's state, the GEMM's thread-local packing buffers) out of the way.
        let mut user = UserLoop::new(&size);
        let mut manual = manual_blocks(&size.blocks());
        let mut fused = FusedResMlp::new(&size, 0.01);
        let initial = [
            ("autograd", user.step()),
            ("fused", fused.step()),
            ("manual", manual_step(&mut manual, &x, &y, 0.01)),
        ];
        // nn::manual's MSE loss sums its f32 squares in sequence: at L it drifts from the
        // others' (0.7643414), so only the two compared implementations are held to it.
        for (name, loss) in &initial[..2] {
            assert!(
                (loss - want).abs() < 2e-6,
                "resmlp {}: {name}'s initial loss {loss} is not WORKLOADS.md's {want}",
                size.name
            );
        }
        let autograd_peak = peak_bytes(|| {
            user.step();
        });
        let manual_peak = peak_bytes(|| {
            manual_step(&mut manual, &x, &y, 0.01);
        });
        println!(
            "resmlp {}: B={} D={} N={}, {:.1} MFLOP/step, initial loss {:.7} (autograd) {:.7} (fused) {:.7} (manual); peak bytes per step: autograd {autograd_peak}, manual {manual_peak} (ratio {:.3})",
            size.name,
            size.batch,
            size.width,
            size.blocks,
            size.flops_per_step() / 1e6,
            initial[0].1,
            initial[1].1,
            initial[2].1,
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
            group.bench_function(format!("autograd/{threads}T"), |b| {
                b.iter(|| black_box(user.step()))
            });
            group.bench_function(format!("manual/{threads}T"), |b| {
                b.iter(|| black_box(manual_step(&mut manual, &x, &y, 0.01)))
            });
            group.bench_function(format!("fused/{threads}T"), |b| {
                b.iter(|| black_box(fused.step()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, resmlp);
criterion_main!(benches);
