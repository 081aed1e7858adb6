//! resmlp-step (WORKLOADS.md): forward + backward + SGD of N residual blocks, f32, sizes
//! S, M and L, on 1 and 2 threads — autograd (nn blocks on the tape).
//!
//! `cargo bench --bench resmlp` (add `-- S` to run one size). The initial loss of each size
//! is printed once so runs can be matched with other implementations.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use wengert::autograd::set_num_threads;
use wengert::workloads::{ResMlp, autograd_step};

fn resmlp(c: &mut Criterion) {
    for size in [ResMlp::S, ResMlp::M, ResMlp::L] {
        let (x, y) = (size.input(), size.target());
        let initial = autograd_step(&size.blocks(), &x, &y, 0.01);
        println!(
            "resmlp {}: B={} D={} N={}, {:.1} MFLOP/step, initial loss {initial:.7}",
            size.name,
            size.batch,
            size.width,
            size.blocks,
            size.flops_per_step() / 1e6
        );
        let mut group = c.benchmark_group(format!("resmlp/{}", size.name));
        if size == ResMlp::L {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(8));
        }
        for threads in [1, 2] {
            set_num_threads(threads);
            let blocks = size.blocks();
            group.bench_function(format!("autograd/{threads}T"), |b| {
                b.iter(|| black_box(autograd_step(&blocks, &x, &y, 0.01)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, resmlp);
criterion_main!(benches);
