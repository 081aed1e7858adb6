//! The standard workloads of `WORKLOADS.md`, built exactly as specified so that timings and
//! initial losses compare with other implementations.
//!
//! **resmlp-step**: N residual blocks `relu(W2·relu(W1·h + b1) + b2 + h)` of width D on a
//! batch X `[B, D]`, loss = mean((out − Y)²), one step = forward + backward + SGD
//! (p ← p − 0.01·grad), with a deterministic closed-form initialisation.

use autograd::{Tape, Tensor};
use nn::manual::{self, Layer};
use nn::{Ctx, Linear, Module, ResidualBlock};

/// A size of the resmlp-step workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResMlp {
    /// Name ("S", "M", "L").
    pub name: &'static str,
    /// Batch size B.
    pub batch: usize,
    /// Width D.
    pub width: usize,
    /// Number of blocks N.
    pub blocks: usize,
}

impl ResMlp {
    /// B = 32, D = 64, N = 4 (6.3 MFLOP per step).
    pub const S: ResMlp = ResMlp {
        name: "S",
        batch: 32,
        width: 64,
        blocks: 4,
    };
    /// B = 64, D = 256, N = 8 (403 MFLOP per step).
    pub const M: ResMlp = ResMlp {
        name: "M",
        batch: 64,
        width: 256,
        blocks: 8,
    };
    /// B = 256, D = 1024, N = 8 (25.8 GFLOP per step).
    pub const L: ResMlp = ResMlp {
        name: "L",
        batch: 256,
        width: 1024,
        blocks: 8,
    };

    /// Approximate floating-point operations of one step: 12·B·D²·N.
    pub fn flops_per_step(&self) -> f64 {
        12.0 * (self.batch * self.width * self.width * self.blocks) as f64
    }

    /// `W[i][j] = 0.5/√D · sin(0.37·(i·D + j) + 1.3·k + 0.7·l)` for block `k`, layer `l ∈ {1, 2}`.
    pub fn weight(&self, k: usize, l: usize) -> Tensor<f32> {
        let d = self.width;
        let scale = 0.5 / (d as f64).sqrt();
        Tensor::from_fn(&[d, d], |ij| {
            let arg = 0.37 * (ij[0] * d + ij[1]) as f64 + 1.3 * k as f64 + 0.7 * l as f64;
            (scale * arg.sin()) as f32
        })
    }

    /// `b[i] = 0.1 · cos(0.11·i + k + l)`.
    pub fn bias(&self, k: usize, l: usize) -> Tensor<f32> {
        Tensor::from_fn(&[self.width], |i| {
            (0.1 * (0.11 * i[0] as f64 + (k + l) as f64).cos()) as f32
        })
    }

    /// `X[r][c] = sin(0.05·(r·D + c))`.
    pub fn input(&self) -> Tensor<f32> {
        let d = self.width;
        Tensor::from_fn(&[self.batch, d], |rc| {
            (0.05 * (rc[0] * d + rc[1]) as f64).sin() as f32
        })
    }

    /// `Y[r][c] = cos(0.03·(r·D + c))`.
    pub fn target(&self) -> Tensor<f32> {
        let d = self.width;
        Tensor::from_fn(&[self.batch, d], |rc| {
            (0.03 * (rc[0] * d + rc[1]) as f64).cos() as f32
        })
    }

    /// The N blocks as `nn::ResidualBlock`s (the notebook's block is exactly this workload's).
    pub fn blocks(&self) -> Vec<ResidualBlock<f32>> {
        (0..self.blocks)
            .map(|k| {
                ResidualBlock::from_layers(
                    Linear::from_tensors(self.weight(k, 1), Some(self.bias(k, 1))),
                    Linear::from_tensors(self.weight(k, 2), Some(self.bias(k, 2))),
                )
            })
            .collect()
    }
}

/// The same blocks as the manual-backward reference (hand-written `backward`, plain tensor
/// kernels, no tape), starting from the same parameters.
pub fn manual_blocks(blocks: &[ResidualBlock<f32>]) -> Vec<manual::ResidualBlock<f32>> {
    blocks
        .iter()
        .map(manual::ResidualBlock::from_autograd)
        .collect()
}

/// One resmlp step with the manual-backward reference: forward, MSE, the notebook's
/// `backward` block by block in reverse, SGD in place. Returns the loss before the update.
pub fn manual_step(
    blocks: &mut [manual::ResidualBlock<f32>],
    x: &Tensor<f32>,
    y: &Tensor<f32>,
    lr: f32,
) -> f32 {
    // cell: manual_step
    let mut h = x.clone();
    for block in blocks.iter_mut() {
        h = block.forward(&h);
    }
    let mut mse = manual::MSELoss::new();
    let loss = mse.forward(&h, y);
    let mut d = mse.backward();
    for block in blocks.iter_mut().rev() {
        d = block.backward(&d);
    }
    for block in blocks.iter_mut() {
        block.sgd_step(lr);
    }
    // end cell
    loss
}

/// One resmlp step with autograd: forward through `blocks`, MSE loss, backward from the
/// tape, SGD on every parameter. Returns the loss before the update.
pub fn autograd_step(
    blocks: &[ResidualBlock<f32>],
    x: &Tensor<f32>,
    y: &Tensor<f32>,
    lr: f32,
) -> f32 {
    // cell: autograd_step
    let (loss, grads) = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let mut h = cx.input(x.clone());
        for block in blocks {
            h = block.forward(&cx, &h);
        }
        let diff = &h - &cx.input(y.clone());
        let loss = (&diff * &diff).mean();
        let grads = cx.param_grads(&loss.backward_leaves());
        (loss.item(), grads)
    }; // the tape is gone: parameters are updated in place, without a copy
    for block in blocks {
        for p in block.parameters() {
            if let Some(g) = grads.get(&p) {
                p.update(|w| w.iter_mut().zip(g.data()).for_each(|(w, &g)| *w -= lr * g));
            }
        }
    }
    // end cell
    loss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_loss_matches_other_implementations() {
        // Initial losses measured by the established libraries on the same workload.
        for (size, want) in [(ResMlp::S, 0.7557864f32), (ResMlp::M, 0.7661943)] {
            let blocks = size.blocks();
            let loss = autograd_step(&blocks, &size.input(), &size.target(), 0.01);
            assert!(
                (loss - want).abs() < 2e-6,
                "{}: {loss} vs {want}",
                size.name
            );
            let after = autograd_step(&blocks, &size.input(), &size.target(), 0.01);
            assert!(
                after < loss,
                "{}: SGD lowers the loss ({after} vs {loss})",
                size.name
            );
        }
    }

    #[test]
    fn manual_and_autograd_steps_agree() {
        let size = ResMlp::S;
        let (x, y) = (size.input(), size.target());
        let blocks = size.blocks();
        let mut manual = manual_blocks(&blocks);
        for step in 0..3 {
            let a = autograd_step(&blocks, &x, &y, 0.01);
            let m = manual_step(&mut manual, &x, &y, 0.01);
            assert!((a - m).abs() <= 1e-6 * a.abs(), "step {step}: {a} vs {m}");
        }
    }
}
