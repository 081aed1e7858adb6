//! The standard workloads of `WORKLOADS.md`, built exactly as specified so that timings and
//! initial losses compare with other implementations.
//!
//! **resmlp-step**: N residual blocks `relu(W2·relu(W1·h + b1) + b2 + h)` of width D on a
//! batch X `[B, D]`, loss = mean((out − Y)²), one step = forward + backward + SGD
//! (p ← p − 0.01·grad), with a deterministic closed-form initialisation.
//!
//! Three implementations of a step, timed side by side by `benches/resmlp.rs` and
//! `benches/peers/`:
//! - [`UserLoop`]: the README's training loop — the blocks as one `nn::Stack`,
//!   `nn::value_and_grad` and `nn::Sgd`; what a user of the library writes;
//! - [`manual_step`]: `nn::manual`'s layers with their hand-written backward, layer by layer;
//! - [`fused::FusedResMlp`]: a step written by hand for speed, every buffer allocated once
//!   and everything between the matrix products fused into single passes.

pub mod fused;

use autograd::Tensor;
use nn::manual::{self, Layer};
use nn::{Linear, Module, Optimizer, ResidualBlock, Sgd, Stack, loss};

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

    /// The initial loss (before the first update) that established libraries compute on
    /// this size, as WORKLOADS.md gives it: S 0.7557864, M 0.7661943, L 0.7643823.
    pub fn reference_initial_loss(&self) -> Option<f32> {
        match self.name {
            "S" => Some(0.7557864),
            "M" => Some(0.7661943),
            "L" => Some(0.7643823),
            _ => None,
        }
    }

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

/// resmlp-step as users write it: the README's training loop on the workload's blocks,
/// with `nn::Sgd` (learning rate 0.01) kept from step to step.
pub struct UserLoop {
    /// The N blocks, as one model.
    pub model: Stack<ResidualBlock<f32>>,
    opt: Sgd<f32>,
    x: Tensor<f32>,
    y: Tensor<f32>,
    step: u64,
}

impl UserLoop {
    /// The workload `size`, initialised as WORKLOADS.md says.
    pub fn new(size: &ResMlp) -> Self {
        let model = size
            .blocks()
            .into_iter()
            .fold(Stack::new(), |stack, block| stack.push(Box::new(block)));
        let opt = Sgd::new(model.parameters(), 0.01);
        UserLoop {
            model,
            opt,
            x: size.input(),
            y: size.target(),
            step: 0,
        }
    }

    /// One step of the loop; the loss before the update.
    pub fn step(&mut self) -> f32 {
        let (model, x, y, step) = (&self.model, &self.x, &self.y, self.step);
        // The README's loop body, line for line.
        let (loss, grads) = nn::value_and_grad(step, |cx| {
            let out = model.forward(cx, &cx.input(x.clone()));
            loss::mse(&out, &cx.input(y.clone()))
        });
        self.opt.step(&grads);
        self.step += 1;
        loss
    }
}

/// One resmlp step with autograd on borrowed blocks: the README's loop body, then a plain
/// `nn::Sgd` step at `lr` on every parameter (plain SGD keeps no state, so a new optimizer
/// each step updates exactly as one kept from step to step). Returns the loss before the
/// update.
pub fn autograd_step(
    blocks: &[ResidualBlock<f32>],
    x: &Tensor<f32>,
    y: &Tensor<f32>,
    lr: f32,
) -> f32 {
    // cell: autograd_step
    let (loss, grads) = nn::value_and_grad(0, |cx| {
        let out = blocks
            .iter()
            .fold(cx.input(x.clone()), |h, block| block.forward(cx, &h));
        loss::mse(&out, &cx.input(y.clone()))
    });
    let params = blocks
        .iter()
        .flat_map(|b| b.parameters())
        .collect::<Vec<_>>();
    Sgd::new(params, f64::from(lr)).step(&grads);
    // end cell
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use fused::FusedResMlp;

    #[test]
    fn initial_loss_matches_other_implementations() {
        for size in [ResMlp::S, ResMlp::M] {
            let want = size.reference_initial_loss().unwrap();
            let mut user = UserLoop::new(&size);
            let mut fused = FusedResMlp::new(&size, 0.01);
            for (name, loss, after) in [
                ("user loop", user.step(), user.step()),
                ("fused", fused.step(), fused.step()),
            ] {
                let at = size.name;
                assert!((loss - want).abs() < 2e-6, "{at} {name}: {loss} vs {want}");
                assert!(
                    after < loss,
                    "{at} {name}: SGD lowers the loss ({after} vs {loss})"
                );
            }
        }
    }

    #[test]
    fn the_four_implementations_agree_step_by_step() {
        let size = ResMlp::S;
        let (x, y) = (size.input(), size.target());
        let blocks = size.blocks();
        let mut manual = manual_blocks(&blocks);
        let mut user = UserLoop::new(&size);
        let mut fused = FusedResMlp::new(&size, 0.01);
        for step in 0..3 {
            let a = autograd_step(&blocks, &x, &y, 0.01);
            let others = [
                ("manual", manual_step(&mut manual, &x, &y, 0.01)),
                ("user loop", user.step()),
                ("fused", fused.step()),
            ];
            for (name, loss) in others {
                assert!(
                    (a - loss).abs() <= 1e-6 * a.abs(),
                    "step {step}: autograd {a} vs {name} {loss}"
                );
            }
        }
    }

    /// The one training loop is the same text in the README (a doc-test of this crate),
    /// docs/design.md (compiled as a doc-test too, see `lib.rs`) and nn's rustdoc: the
    /// block that calls `nn::value_and_grad(step`, without its `use` lines.
    #[test]
    fn the_training_loop_is_one_text_everywhere() {
        let root = env!("CARGO_MANIFEST_DIR");
        let read = |path: &str| {
            std::fs::read_to_string(format!("{root}/{path}"))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let loop_in = |path: &str| {
            let text = read(path);
            let lines: Vec<&str> = text
                .lines()
                .map(|l| {
                    l.strip_prefix("//!")
                        .map_or(l, |l| l.strip_prefix(' ').unwrap_or(l))
                })
                .collect();
            let call = lines
                .iter()
                .position(|l| l.contains("nn::value_and_grad(step"))
                .unwrap_or_else(|| panic!("{path}: no training loop"));
            let start = lines[..call]
                .iter()
                .rposition(|l| l.starts_with("```"))
                .unwrap();
            let end = call
                + lines[call..]
                    .iter()
                    .position(|l| l.starts_with("```"))
                    .unwrap();
            lines[start + 1..end]
                .iter()
                .filter(|l| !l.starts_with("use ") && !l.is_empty())
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
        };
        let readme = loop_in("README.md");
        assert!(readme.len() > 5, "{readme:?}");
        for path in [
            "docs/design.md",
            "crates/nn/src/lib.rs",
            "crates/nn/src/optim.rs",
            "crates/nn/src/training.rs",
        ] {
            assert_eq!(
                loop_in(path),
                readme,
                "{path} shows another loop than README.md"
            );
        }
    }
}
