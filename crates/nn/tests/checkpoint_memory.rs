//! Checkpointing saves memory: the peak bytes of one training step of a 64-block residual
//! MLP, counted by a global allocator (so in a test binary of its own), with the buffer
//! cache off. Checkpointing every √64 = 8 blocks keeps 8 segment inputs plus one segment's
//! activations while it is recomputed, against 64 blocks' activations (two per block: the
//! hidden ReLU's output and the block's output).

use autograd::alloc_meter::{CountingAllocator, peak_bytes};
use autograd::{Tape, Tensor, seeded_rng};
use nn::{Ctx, Init, Module, ResidualBlock, Stack};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const DEPTH: usize = 64;

fn blocks() -> Stack<ResidualBlock<f32>> {
    let mut rng = seeded_rng(1);
    (0..DEPTH)
        .map(|_| Box::new(ResidualBlock::new(16, Init::he(), &mut rng)))
        .collect()
}

/// Peak bytes of forward, loss and backward (leaf gradients only), after a warm-up step.
fn step_peak(model: &dyn Module<f32>, x: &Tensor<f32>) -> usize {
    let step = || {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let h = model.forward(&cx, &cx.input(x.clone()));
        let loss = (&h * &h).mean();
        cx.param_grads(&loss.backward_leaves()).len()
    };
    assert_eq!(step(), 4 * DEPTH);
    let (params, peak) = peak_bytes(step);
    assert_eq!(params, 4 * DEPTH);
    peak.expect("the counting allocator is installed")
}

#[test]
fn a_checkpointed_64_block_step_peaks_below_half_the_plain_step() {
    autograd::set_num_threads(1);
    let x = Tensor::uniform(&[128, 16], -1.0, 1.0, &mut seeded_rng(2));
    let plain = step_peak(&blocks(), &x);
    let every_block = step_peak(&blocks().checkpoint_every(1), &x);
    let sqrt = step_peak(&blocks().checkpoint_sqrt(), &x);
    println!(
        "peak bytes of a {DEPTH}-block step: plain {plain}, every block {every_block}, every 8 blocks {sqrt}"
    );
    assert!(sqrt < plain / 2, "{sqrt} vs {plain}");
    // Every block: one activation kept per block instead of two (and the same parameter
    // gradients): below the plain step, above the √N plan.
    assert!(every_block < plain, "{every_block} vs {plain}");
    assert!(sqrt < every_block, "{sqrt} vs {every_block}");
}
