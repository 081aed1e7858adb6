//! The wengert side of the peer comparison (benches/peers/README.md): runs one
//! implementation of resmlp-step at one size and thread count and prints one JSON line —
//! the initial loss and the time of each timed step. `peers.py` runs it in turns with JAX
//! and PyTorch; it can also be run by hand:
//!
//! ```sh
//! cargo bench --features bench --bench peers_wengert -- --impl user --size M --threads 1 --steps 20
//! ```
//!
//! `--impl user` is the README's training loop (`nn::value_and_grad` and `nn::Sgd`),
//! `fused` the step written by hand for speed, `manual` `nn::manual`'s layer-by-layer
//! reference. `--warmup` steps (at least 1: the first step gives the initial loss) run
//! before the `--steps` timed ones. `--kernel gemm-crate` computes f32 products with the
//! `gemm` crate instead of autograd's own kernel (docs/gemm-choice.md compares the two).

use std::time::Instant;
use wengert::autograd::{F32Kernel, set_f32_kernel, set_num_threads};
use wengert::workloads::fused::FusedResMlp;
use wengert::workloads::{ResMlp, UserLoop, manual_blocks, manual_step};

struct Options {
    implementation: String,
    size: ResMlp,
    threads: usize,
    warmup: usize,
    steps: usize,
    kernel: F32Kernel,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        implementation: "user".into(),
        size: ResMlp::S,
        threads: 1,
        warmup: 3,
        steps: 20,
        kernel: F32Kernel::Own,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue; // added by `cargo bench`
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--impl" => options.implementation = value.clone(),
            "--size" => {
                options.size = match value.as_str() {
                    "S" => ResMlp::S,
                    "M" => ResMlp::M,
                    "L" => ResMlp::L,
                    _ => return Err(format!("--size {value}: S, M or L")),
                }
            }
            "--threads" => options.threads = number()?,
            "--warmup" => options.warmup = number()?.max(1),
            "--steps" => options.steps = number()?,
            "--kernel" => {
                options.kernel = match value.as_str() {
                    "own" => F32Kernel::Own,
                    "gemm-crate" => F32Kernel::GemmCrate,
                    _ => return Err(format!("--kernel {value}: own or gemm-crate")),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// Runs `step` `warmup` times, then `steps` times timed; the first loss and the times (ms).
fn run(mut step: impl FnMut() -> f32, warmup: usize, steps: usize) -> (f32, Vec<f64>) {
    let initial = step();
    for _ in 1..warmup {
        step();
    }
    let times = (0..steps)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(step());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (initial, times)
}

fn main() {
    let o = parse().unwrap_or_else(|e| {
        eprintln!("peers_wengert: {e}");
        std::process::exit(2)
    });
    set_num_threads(o.threads);
    set_f32_kernel(o.kernel);
    let size = o.size;
    let (initial, times) = match o.implementation.as_str() {
        "user" => {
            let mut user = UserLoop::new(&size);
            run(|| user.step(), o.warmup, o.steps)
        }
        "fused" => {
            let mut fused = FusedResMlp::new(&size, 0.01);
            run(|| fused.step(), o.warmup, o.steps)
        }
        "manual" => {
            let (x, y) = (size.input(), size.target());
            let mut blocks = manual_blocks(&size.blocks());
            run(|| manual_step(&mut blocks, &x, &y, 0.01), o.warmup, o.steps)
        }
        other => {
            eprintln!("peers_wengert: --impl {other}: user, fused or manual");
            std::process::exit(2)
        }
    };
    let times: Vec<String> = times.iter().map(|t| format!("{t:.6}")).collect();
    println!(
        "{{\"impl\": \"wengert-{}\", \"size\": \"{}\", \"threads\": {}, \"initial_loss\": {initial:.9}, \"ms\": [{}]}}",
        o.implementation,
        size.name,
        o.threads,
        times.join(", ")
    );
}
