//! What activation checkpointing saves and costs on the resmlp workload (WORKLOADS.md): the
//! peak memory of one training step and its time, without checkpointing, checkpointing
//! every block, and every ⌈√N⌉ blocks ([`nn::checkpoint`]). `benches/checkpoint.rs` prints
//! these measurements; tutorial chapter 8 runs the same plans and steps ([`Plan::model`],
//! [`step`], [`narrow`]) and plots them.
//!
//! Peak bytes need the counting allocator installed by the program
//! ([`autograd::alloc_meter`]); they are deterministic, and counted with the buffer cache
//! off. Times are wall-clock ratios from alternated runs, so that the plans see the same
//! load.
//!
//! ```
//! use wengert::checkpoint_cost::{Plan, memory, narrow};
//! let size = narrow(16);
//! let none = memory(&size, Plan::None);
//! let sqrt = memory(&size, Plan::Sqrt);
//! // What the tape keeps for backward (known without the counting allocator):
//! assert!(sqrt.tape_bytes < none.tape_bytes / 2);
//! assert!(sqrt.avoided_bytes > 0 && none.avoided_bytes == 0);
//! assert_eq!(none.peak_bytes, None); // this program does not count its allocations
//! ```

use crate::workloads::ResMlp;
use autograd::alloc_meter;
use autograd::{Tape, Tensor};
use nn::{Ctx, Module, ResidualBlock, Stack};
use std::time::Instant;

/// The depths of the comparison: N = 16, 64, 256 blocks.
pub const DEPTHS: [usize; 3] = [16, 64, 256];

/// The deep narrow residual MLP: N resmlp blocks of width D = 32 on a batch of B = 256
/// (WORKLOADS.md's closed-form initialisation). Its activations, 3·B·D values per block,
/// outweigh its 2·D² weights 12 to 1, so checkpointing decides its memory.
pub fn narrow(depth: usize) -> ResMlp {
    ResMlp {
        name: "narrow",
        batch: 256,
        width: 32,
        blocks: depth,
    }
}

/// resmlp-M's block (B = 64, D = 256) at depth N: its weights outweigh its activations,
/// so the parameter gradients bound what checkpointing can save.
pub fn resmlp_m(depth: usize) -> ResMlp {
    ResMlp {
        blocks: depth,
        ..ResMlp::M
    }
}

/// How a step checkpoints its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No checkpointing: the tape keeps every block's activations.
    None,
    /// Every block is a segment: the tape keeps each block's input.
    EveryBlock,
    /// Segments of ⌈√N⌉ blocks: √N segment inputs, and one segment's activations while it
    /// is recomputed.
    Sqrt,
}

impl Plan {
    /// The three plans, in the order above.
    pub const ALL: [Plan; 3] = [Plan::None, Plan::EveryBlock, Plan::Sqrt];

    /// A name for tables and legends.
    pub fn name(self) -> &'static str {
        match self {
            Plan::None => "no checkpointing",
            Plan::EveryBlock => "every block",
            Plan::Sqrt => "every ⌈√N⌉ blocks",
        }
    }

    /// Blocks per segment for a network of `n` blocks (`None`: not checkpointed).
    pub fn blocks_per_segment(self, n: usize) -> Option<usize> {
        match self {
            Plan::None => None,
            Plan::EveryBlock => Some(1),
            Plan::Sqrt => Some(nn::checkpoint::sqrt_segment(n)),
        }
    }

    /// The workload's blocks as one model, checkpointed by this plan.
    pub fn model(self, size: &ResMlp) -> Box<dyn Module<f32>> {
        // cell: checkpoint
        let stack: Stack<ResidualBlock<f32>> = size.blocks().into_iter().map(Box::new).collect();
        match self {
            Plan::None => Box::new(stack),
            Plan::EveryBlock => Box::new(stack.checkpoint_every(1)), // a segment per block
            Plan::Sqrt => Box::new(stack.checkpoint_sqrt()),         // √N segments of √N blocks
        }
        // end cell
    }
}

/// One training step of `model` on `x` and `y`: forward, mean squared error, backward
/// (leaf gradients only), SGD `p ← p − lr·grad`. Returns the loss before the update.
pub fn step(model: &dyn Module<f32>, x: &Tensor<f32>, y: &Tensor<f32>, lr: f32) -> f32 {
    let (loss, grads) = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let diff = &model.forward(&cx, &cx.input(x.clone())) - &cx.input(y.clone());
        let loss = (&diff * &diff).mean();
        (loss.item(), cx.param_grads(&loss.backward_leaves()))
    };
    for p in model.parameters() {
        if let Some(g) = grads.get(&p) {
            p.update(|w| w.iter_mut().zip(g.data()).for_each(|(w, &g)| *w -= lr * g));
        }
    }
    loss
}

/// The memory of one training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// Peak bytes live during the step above those live before it (`None` without the
    /// counting allocator).
    pub peak_bytes: Option<usize>,
    /// Bytes the tape keeps for backward once the forward pass is done
    /// ([`autograd::MemoryReport::total_bytes`]: parameters saved by the ops count, though
    /// they are not copies).
    pub tape_bytes: usize,
    /// Bytes the checkpointed segments did not keep ([`autograd::MemoryReport::avoided_bytes`]).
    pub avoided_bytes: usize,
}

/// The memory of one training step of `size` under `plan`, on a fresh model after one
/// warm-up step (one-time allocations such as the GEMM's packing buffers are not a step's).
pub fn memory(size: &ResMlp, plan: Plan) -> Memory {
    let (x, y) = (size.input(), size.target());
    let model = plan.model(size);
    step(model.as_ref(), &x, &y, 0.01);
    let report = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let _ = model.forward(&cx, &cx.input(x.clone()));
        tape.memory_report()
    };
    let (_, peak_bytes) = alloc_meter::peak_bytes(|| step(model.as_ref(), &x, &y, 0.01));
    Memory {
        peak_bytes,
        tape_bytes: report.total_bytes,
        avoided_bytes: report.avoided_bytes(),
    }
}

/// A step time relative to the step without checkpointing, over alternated rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeRatio {
    /// The median ratio over the rounds.
    pub median: f64,
    /// The smallest and largest ratio of a round (the spread on this machine now).
    pub min: f64,
    /// See `min`.
    pub max: f64,
    /// Median seconds of one step without checkpointing.
    pub plain_seconds: f64,
}

/// Step times of [`Plan::EveryBlock`] and [`Plan::Sqrt`] relative to [`Plan::None`] on
/// `size`: `rounds` rounds, each timing the three plans once (a few steps each, at least
/// ~20 ms), in an order that rotates from round to round so that drifting load falls on
/// every plan alike. Every plan runs one warm-up step first.
pub fn time_ratios(size: &ResMlp, rounds: usize) -> [TimeRatio; 2] {
    let (x, y) = (size.input(), size.target());
    let models: Vec<Box<dyn Module<f32>>> = Plan::ALL.iter().map(|p| p.model(size)).collect();
    let time = |model: &dyn Module<f32>, steps: usize| {
        let start = Instant::now();
        for _ in 0..steps {
            step(model, &x, &y, 0.01);
        }
        start.elapsed().as_secs_f64() / steps as f64
    };
    let warm_up: Vec<f64> = models.iter().map(|m| time(m.as_ref(), 1)).collect();
    let steps = (0.02 / warm_up[0]).ceil().max(1.0) as usize;
    let mut seconds = vec![Vec::new(); models.len()];
    for round in 0..rounds.max(1) {
        for k in 0..models.len() {
            let plan = (round + k) % models.len();
            seconds[plan].push(time(models[plan].as_ref(), steps));
        }
    }
    let ratio = |plan: usize| {
        let mut ratios: Vec<f64> = (0..seconds[0].len())
            .map(|r| seconds[plan][r] / seconds[0][r])
            .collect();
        ratios.sort_by(f64::total_cmp);
        TimeRatio {
            median: median(&ratios),
            min: ratios[0],
            max: ratios[ratios.len() - 1],
            plain_seconds: median(&seconds[0]),
        }
    };
    [ratio(1), ratio(2)]
}

/// The median of some numbers (the upper one of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpointed_steps_train_exactly_as_the_plain_step() {
        let size = narrow(9);
        let (x, y) = (size.input(), size.target());
        let losses = |plan: Plan| -> Vec<f32> {
            let model = plan.model(&size);
            (0..3).map(|_| step(model.as_ref(), &x, &y, 0.01)).collect()
        };
        let plain = losses(Plan::None);
        assert!(plain[2] < plain[0], "SGD lowers the loss: {plain:?}");
        assert_eq!(losses(Plan::EveryBlock), plain);
        assert_eq!(losses(Plan::Sqrt), plain);
        assert_eq!(Plan::Sqrt.blocks_per_segment(9), Some(3));
    }

    #[test]
    fn the_tape_keeps_less_the_more_is_checkpointed() {
        let size = narrow(16);
        let [none, every, sqrt] = Plan::ALL.map(|p| memory(&size, p));
        assert!(sqrt.tape_bytes < every.tape_bytes && every.tape_bytes < none.tape_bytes);
        assert_eq!(none.avoided_bytes, 0);
        // What a segment avoids is what the plain tape kept for its blocks.
        assert_eq!(every.avoided_bytes, sqrt.avoided_bytes);
    }
}
